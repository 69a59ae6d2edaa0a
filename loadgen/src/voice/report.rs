//! What a voice run reports: the participants' logs reconciled per
//! (speaker, listener) pair, latency, the relay's cost, and the chat side
//! load measured in the same run.

use super::args::VoiceArgs;
use super::listener::Route;
use super::participant::SeatOut;
use super::relay_metrics::RelayAudio;
use crate::chat::ChatReport;
use crate::latency::LatencySummary;
use crate::report::{self, fmt_tally, Findings, ScenarioReport, Summary, Tally, ToJson};
use crate::resources::Usage;
use serde::Serialize;

/// Frames expected and received over one kind of route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Frames sent × the listeners that should hear them.
    pub expected: u64,
    /// Distinct frames received.
    pub received: u64,
}

/// Results of a voice run.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceReport {
    /// The options used.
    #[serde(skip)]
    pub args: Option<VoiceArgs>,
    /// The relays (`--url`), node by node.
    pub nodes: Vec<String>,
    /// Participants in their rooms, per node.
    pub participants_per_node: Vec<u64>,
    /// Participants that joined their room.
    pub participants_joined: u64,
    /// Why the others did not, tallied.
    pub connect_failures: Tally,
    /// Group creation and joins over HTTP, seconds.
    pub group_setup_secs: f64,
    /// Sockets, logins and VOICE_JOINs, seconds.
    pub connect_secs: f64,
    /// Offered audio frames per second into the relay.
    pub frames_in_per_sec: f64,
    /// Offered audio frames per second out of it.
    pub frames_out_per_sec: f64,
    /// Audio frames the speakers sent (warm-up included).
    pub frames_sent: u64,
    /// Frames sent × the other participants of the room.
    pub expected: u64,
    /// Distinct frames received.
    pub received: u64,
    /// Expected but never received.
    pub lost: u64,
    /// `lost / expected`, percent.
    pub loss_pct: f64,
    /// The largest loss of one (speaker, listener) pair, percent.
    pub worst_pair_loss_pct: f64,
    /// A frame received again.
    pub duplicates: u64,
    /// A first arrival below a frame of the same speaker received before.
    pub out_of_order: u64,
    /// Frames from a non-speaker, for another group, or unparsable.
    pub stray: u64,
    /// With several relays: speaker and listener on one relay.
    pub same_node: Option<Delivery>,
    /// With several relays: speaker and listener on two.
    pub cross_node: Option<Delivery>,
    /// Intended send → received, frames due in the measured period.
    pub latency: LatencySummary,
    /// The same, speaker and listener on one relay (several relays only).
    pub latency_same_node: Option<LatencySummary>,
    /// The same, across relays (several relays only).
    pub latency_cross_node: Option<LatencySummary>,
    /// Actual minus intended send time: how far the generator fell behind.
    pub send_lag: LatencySummary,
    /// Type 0 errors by code (e.g. `audio_rate_limited`).
    pub errors: Tally,
    /// Unexpected events by kind.
    pub problems: Tally,
    /// Participants whose socket ended before the run did.
    pub sockets_lost: u64,
    /// 125s received (setup's joins, mostly).
    pub room_updates: u64,
    /// How long the drain took, seconds.
    pub drain_secs: f64,
    /// Relay VmRSS before the participants connected, KiB.
    pub relay_rss_before_connect_kib: Option<u64>,
    /// Relay VmRSS with everyone in their rooms, KiB.
    pub relay_rss_connected_kib: Option<u64>,
    /// Relay VmRSS at the end of the measured period, KiB.
    pub relay_rss_after_kib: Option<u64>,
    /// CPU during the measured period.
    #[serde(flatten)]
    pub usage: Usage,
    /// The relays' own audio counters over the run (`GET /metrics`),
    /// summed; null when they could not be read.
    pub relay_audio: Option<RelayAudio>,
    /// The chat side load (`--chat-pairs`), same clock.
    pub chat: Option<ChatReport>,
}

impl VoiceReport {
    /// Reconciles the participants' logs: for every room, every listener
    /// that joined should have heard every frame of every other speaker
    /// that joined. `nodes` relays; participant `room × P + index` is on
    /// node `(room × P + index) % nodes`.
    pub fn reconcile(&mut self, args: &VoiceArgs, nodes: usize, outs: &[SeatOut]) {
        let p = args.participants;
        let mut routes = [Delivery::default(); 2];
        let mut lags = Vec::new();
        let mut rooms: Vec<Vec<&SeatOut>> = vec![Vec::new(); args.rooms];
        for o in outs {
            rooms[o.room].push(o);
            let l = &o.listener;
            self.duplicates += l.heard.iter().map(|h| h.duplicates).sum::<u64>();
            self.out_of_order += l.heard.iter().map(|h| h.out_of_order).sum::<u64>();
            self.stray += l.stray;
            report::merge_tally(&mut self.errors, &o.errors);
            report::merge_tally(&mut self.problems, &o.problems);
            self.sockets_lost += o.lost as u64;
            self.room_updates += o.room_updates;
            if let Some(s) = &o.speaker {
                self.frames_sent += s.sent;
                lags.extend_from_slice(&s.lag_us);
            }
        }
        for (r, seats) in rooms.iter().enumerate() {
            for s in seats {
                let Some(sent) = s.speaker.as_ref().map(|x| x.sent) else {
                    continue;
                };
                for l in seats.iter().filter(|l| l.index != s.index) {
                    let got = l.listener.heard[s.index].received.min(sent);
                    let same = (r * p + s.index) % nodes == (r * p + l.index) % nodes;
                    let d = &mut routes[if same { Route::Same } else { Route::Cross } as usize];
                    d.expected += sent;
                    d.received += got;
                    if sent > 0 {
                        let loss = (sent - got) as f64 * 100.0 / sent as f64;
                        self.worst_pair_loss_pct = self.worst_pair_loss_pct.max(loss);
                    }
                }
            }
        }
        self.expected = routes[0].expected + routes[1].expected;
        self.received = routes[0].received + routes[1].received;
        self.lost = self.expected - self.received;
        self.loss_pct = match self.expected {
            0 => 0.0,
            e => report::round_to(self.lost as f64 * 100.0 / e as f64, 4),
        };
        self.worst_pair_loss_pct = report::round_to(self.worst_pair_loss_pct, 2);
        if nodes > 1 {
            (self.same_node, self.cross_node) = (Some(routes[0]), Some(routes[1]));
        }
        self.send_lag = LatencySummary::of_values(&mut lags);
    }
}

impl ScenarioReport for VoiceReport {
    fn scenario(&self) -> &'static str {
        "voice"
    }

    fn args(&self) -> &dyn ToJson {
        &self.args
    }

    fn human(&self) -> String {
        let mut s = Summary::new();
        let Some(a) = &self.args else {
            return String::new();
        };
        s.line(
            "load",
            format!(
                "{} rooms × {} participants, {} speakers each, {} B payload every {:?}; warmup {:?}, measured {:?}",
                a.rooms, a.participants, a.speakers, a.frame_bytes, a.interval, a.warmup, a.duration
            ),
        );
        if self.nodes.len() > 1 {
            s.line(
                "relays",
                format!(
                    "{} (participants per node: {:?})",
                    self.nodes.join(", "),
                    self.participants_per_node
                ),
            );
        }
        if a.rooms > 0 {
            s.line(
                "offered audio",
                format!(
                    "{:.0} frames/s in, {:.0} frames/s out",
                    self.frames_in_per_sec, self.frames_out_per_sec
                ),
            );
            s.line(
                "participants",
                format!(
                    "{} joined (setup: groups {:.1} s, sockets {:.1} s); failures: {}",
                    self.participants_joined,
                    self.group_setup_secs,
                    self.connect_secs,
                    fmt_tally(&self.connect_failures)
                ),
            );
            s.line(
                "frames",
                format!(
                    "sent {}, expected {}, received {}, lost {} ({:.3} %, worst pair {:.2} %)",
                    self.frames_sent,
                    self.expected,
                    self.received,
                    self.lost,
                    self.loss_pct,
                    self.worst_pair_loss_pct
                ),
            );
            s.line(
                "duplicates / out of order / stray",
                format!(
                    "{} / {} / {}",
                    self.duplicates, self.out_of_order, self.stray
                ),
            );
            for (label, d) in [
                ("  same relay", &self.same_node),
                ("  across relays", &self.cross_node),
            ] {
                if let Some(d) = d {
                    s.line(label, format!("received {} of {}", d.received, d.expected));
                }
            }
            s.line("speaker → listener latency", self.latency.human());
            for (label, l) in [
                ("  same relay", &self.latency_same_node),
                ("  across relays", &self.latency_cross_node),
            ] {
                if let Some(l) = l {
                    s.line(label, l.human());
                }
            }
            s.line("generator send lag", self.send_lag.human());
            if let Some(m) = &self.relay_audio {
                s.line(
                    "relay counters",
                    format!(
                        "in {}, out {}, dropped (full lane) {}, refused {}",
                        m.frames_in, m.frames_out, m.dropped, m.refused
                    ),
                );
            }
        }
        if let Some(c) = &self.chat {
            s.line(
                "chat side load",
                format!(
                    "{} pairs at {:.0} msg/s: sent {}, delivered {}, lost {}",
                    c.args.pairs, c.args.rate, c.sent, c.deliveries.delivered, c.deliveries.lost
                ),
            );
            s.line("  chat send → receive", c.latency.human());
        }
        s.relay_rss(
            "relay RSS before/joined/end",
            &[
                self.relay_rss_before_connect_kib,
                self.relay_rss_connected_kib,
                self.relay_rss_after_kib,
            ],
        );
        s.cpu(&self.usage, "measured period");
        s.errors(&self.errors);
        s.problems(&self.problems);
        s.finish()
    }

    fn failures(&self) -> Vec<String> {
        let mut f = Findings::new();
        let Some(a) = &self.args else {
            return Vec::new();
        };
        if a.rooms > 0 {
            let failed: u64 = self.connect_failures.values().sum();
            f.count(failed, "participants could not connect or join their room");
            if self.received == 0 {
                f.push("no audio frame was received");
            }
            if self.loss_pct > a.max_loss {
                f.push(format!(
                    "{:.3} % of the audio frames lost ({} of {}), over --max-loss {} %",
                    self.loss_pct, self.lost, self.expected, a.max_loss
                ));
            }
            if let Some(max) = a.max_p99 {
                if self.latency.p99_us > max.as_micros() as u64 {
                    f.push(format!(
                        "audio latency p99 {} is over --max-p99 {}",
                        report::fmt_us(self.latency.p99_us),
                        report::fmt_us(max.as_micros() as u64)
                    ));
                }
            }
            f.count(self.duplicates, "audio frames received twice");
            f.count(self.sockets_lost, "participant sockets lost");
        }
        let mut out = f.into_vec();
        if let Some(c) = &self.chat {
            out.extend(c.failures().into_iter().map(|x| format!("chat: {x}")));
        }
        out
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = Findings::new();
        w.relay_unmeasured(self.usage.relay_cpu_pct.is_some());
        if !self.errors.is_empty() {
            w.push(format!(
                "errors from the relay: {}",
                fmt_tally(&self.errors)
            ));
        }
        w.count(self.out_of_order, "audio frames arrived out of order");
        w.count(self.stray, "stray audio frames");
        if let Some(m) = self.relay_audio {
            w.count(
                m.dropped,
                "audio frames dropped by the relay (a listener's full audio lane)",
            );
        }
        if let Some(d) = self
            .cross_node
            .filter(|d| d.expected > 0 && d.received == 0)
        {
            w.push(format!(
                "none of the {} frames across relays arrived: does this cluster carry voice between nodes?",
                d.expected
            ));
        }
        let mut out = w.into_vec();
        if let Some(c) = &self.chat {
            out.extend(c.warnings().into_iter().map(|x| format!("chat: {x}")));
        }
        out
    }
}
