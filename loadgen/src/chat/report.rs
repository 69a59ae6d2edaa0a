//! What a chat run reports, and how the pairs' results combine into it.

use super::args::ChatArgs;
use super::placement::{PairNodes, PlacementReport};
use super::sender::SenderOut;
use crate::latency::{new_histogram, LatencySummary};
use crate::recipient::{Deliveries, RecvOut};
use crate::redial::Recovery;
use crate::report::{self, Findings, ScenarioReport, Summary, Tally, ToJson};
use crate::resources::Usage;
use serde::Serialize;

/// Results of a chat run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatReport {
    /// The options used.
    #[serde(skip)]
    pub args: ChatArgs,
    /// Offered rate (null in closed loop), msg/s.
    pub offered_rate: Option<f64>,
    /// Messages sent in total (warm-up, measured period).
    pub sent: u64,
    /// Messages sent during the measured period, per second.
    pub send_rate: f64,
    /// 81s received in total.
    pub stored: u64,
    /// Distinct messages delivered during the measured period, per second.
    pub delivered_rate: f64,
    /// Intended send → push received.
    pub latency: LatencySummary,
    /// Actual send → push received (equal to `latency` in closed loop).
    pub wire_latency: LatencySummary,
    /// Intended send → 81.
    pub resp_latency: LatencySummary,
    /// Actual minus intended send time (open loop only): how far the
    /// generator itself fell behind its schedule.
    pub send_lag: Option<LatencySummary>,
    /// What the recipients got: delivered, lost, duplicates, …
    #[serde(flatten)]
    pub deliveries: Deliveries,
    /// The same msgId pushed again, as `redeliveries` (kept for the
    /// scripts that read it): legal, and expected after a reconnection.
    /// `duplicates` (a second msgId for one clientMsgId: the message stored
    /// twice) must stay 0.
    pub raw_duplicates: u64,
    /// Messages sent again on a new socket after a reconnection, under the
    /// same clientMsgId.
    pub resent: u64,
    /// Sockets lost and reconnections.
    #[serde(flatten)]
    pub recovery: Recovery,
    /// The relays and which of them each pair used.
    #[serde(flatten)]
    pub placement: PlacementReport,
    /// Neither 81 nor error by the end of the drain.
    pub unanswered: u64,
    /// 81s for a message that already had one, or for nothing we sent.
    pub extra_resps: u64,
    /// Type 0 errors by code.
    pub errors: Tally,
    /// 92 receipts received by senders.
    pub receipts: u64,
    /// Messages refused with a type 0 error.
    pub refused: u64,
    /// Times a sender had a message due but a full window.
    pub window_stalls: u64,
    /// Messages sent more than 1 ms late because the window was full.
    pub window_delayed: u64,
    /// How long the drain took, seconds.
    pub drain_secs: f64,
    /// Relay VmRSS before the run and at the end of the measured period, KiB.
    pub relay_rss_before_kib: Option<u64>,
    /// See `relay_rss_before_kib`.
    pub relay_rss_after_kib: Option<u64>,
    /// CPU during the measured period.
    #[serde(flatten)]
    pub usage: Usage,
    /// Unexpected events by kind (closed sockets, unparsable frames, …).
    pub problems: Tally,
}

impl ScenarioReport for ChatReport {
    fn scenario(&self) -> &'static str {
        "chat"
    }

    fn args(&self) -> &dyn ToJson {
        &self.args
    }

    fn human(&self) -> String {
        let a = &self.args;
        let d = &self.deliveries;
        let mut s = Summary::new();
        s.line(
            "load",
            format!(
                "{} pairs, window {}, {}, body {} B, warmup {:?}, measured {:?}",
                a.pairs,
                a.window,
                match self.offered_rate {
                    Some(r) => format!("open loop at {r:.0} msg/s"),
                    None => "closed loop".into(),
                },
                a.body_bytes,
                a.warmup,
                a.duration
            ),
        );
        self.placement.lines(a.placement, &mut s);
        s.line("send rate", format!("{:.0} msg/s", self.send_rate));
        s.line(
            "delivered rate",
            format!("{:.0} msg/s", self.delivered_rate),
        );
        s.line(
            "totals",
            format!(
                "sent {}, stored (81) {}, refused {}, delivered {}",
                self.sent, self.stored, self.refused, d.delivered
            ),
        );
        s.line("send → receive latency", self.latency.human());
        if self.send_lag.is_some() {
            s.line("  from actual send", self.wire_latency.human());
        }
        s.line("send → 81 latency", self.resp_latency.human());
        if let Some(l) = &self.send_lag {
            s.line("generator send lag", l.human());
        }
        d.losses(&mut s);
        self.recovery.lines(&mut s);
        if self.resent > 0 {
            s.line("resent after reconnecting", self.resent);
        }
        s.line(
            "unanswered / id mismatch",
            format!("{} / {}", self.unanswered, d.id_mismatch),
        );
        s.line(
            "misrouted / after error",
            format!("{} / {}", d.misrouted, d.delivered_after_error),
        );
        d.backlog(&mut s);
        s.errors(&self.errors);
        s.line(
            "receipts 92 / acks 91",
            format!(
                "{} / {} (of {} acks sent)",
                self.receipts, d.ack_resps, d.acks_sent
            ),
        );
        s.line(
            "window stalls / delayed",
            format!("{} / {}", self.window_stalls, self.window_delayed),
        );
        s.line("drain", format!("{:.2} s", self.drain_secs));
        s.relay_rss(
            "relay RSS before / after",
            &[self.relay_rss_before_kib, self.relay_rss_after_kib],
        );
        s.cpu(&self.usage, "measured period");
        s.problems(&self.problems);
        s.finish()
    }

    fn failures(&self) -> Vec<String> {
        let d = &self.deliveries;
        let mut f = Findings::new();
        f.count(d.lost, "messages lost (81 received, never delivered)");
        f.count(
            d.duplicates,
            "duplicate messages (second msgId for one clientMsgId)",
        );
        f.count(d.out_of_order, "messages delivered out of order");
        f.count(
            d.delivered_after_error,
            "messages delivered although refused",
        );
        f.count(
            d.id_mismatch,
            "messages pushed with a msgId other than the 81's",
        );
        f.count(d.misrouted, "pushes misrouted or never sent");
        if d.delivered == 0 {
            f.push("nothing was delivered");
        }
        if self.args.reconnect {
            self.recovery.failures(&mut f);
        }
        f.into_vec()
    }

    fn warnings(&self) -> Vec<String> {
        let d = &self.deliveries;
        let mut w = Findings::new();
        w.count(
            self.unanswered,
            "messages got neither 81 nor error within the drain",
        );
        w.rate_limited(&self.errors);
        if self.offered_rate.is_some() && self.window_delayed > 0 {
            w.push(format!(
                "window throttled: {} messages were sent late because {} were awaiting their 81 (latency includes that wait)",
                self.window_delayed, self.args.window
            ));
        }
        w.count(
            d.delivered.saturating_sub(self.receipts),
            if self.recovery.sockets_lost > 0 {
                "delivery receipts (92) missing (none is sent while the sender is reconnecting)"
            } else {
                "delivery receipts (92) missing"
            },
        );
        if self.args.placement != super::Placement::Spread && self.placement.nodes.len() < 2 {
            w.push("--placement has no effect with one relay in --url");
        }
        d.warnings(&mut w);
        w.problems(&self.problems);
        w.relay_unmeasured(self.relay_rss_before_kib.is_some());
        w.into_vec()
    }
}

/// Combines the per-pair results into the report (pure, so it is tested);
/// the caller adds what the run measured around them (drain, relay).
/// `nodes` are the relays' URLs, `pairs` where each pair's sessions were.
pub(super) fn assemble(
    args: &ChatArgs,
    nodes: &[String],
    pairs: &[PairNodes],
    senders: &[SenderOut],
    recipients: &[RecvOut],
) -> ChatReport {
    let mut latency = new_histogram();
    // [same relay, across relays], with several relays.
    let mut by_route = [new_histogram(), new_histogram()];
    let mut routes_seen = [false; 2];
    let (mut sockets_lost, mut resent) = (0, 0);
    let mut outages = Vec::new();
    let mut wire = new_histogram();
    let mut resp = new_histogram();
    let mut lag = new_histogram();
    let mut deliveries = Deliveries::default();
    let mut errors = Tally::new();
    let mut problems = Tally::new();
    let (mut sent, mut sent_in_window, mut stored, mut delivered_in_window) = (0, 0, 0, 0);
    let (mut unanswered, mut extra_resps, mut receipts, mut refused) = (0, 0, 0, 0);
    let (mut stalls, mut delayed) = (0, 0);
    for (p, (s, r)) in senders.iter().zip(recipients).enumerate() {
        let log = &s.heard.log;
        unanswered += deliveries.add(log, r).unanswered;
        let _ = latency.add(&r.latency_hist);
        if let Some(route) = pairs.get(p).map(|n| usize::from(n.crosses())) {
            let _ = by_route[route].add(&r.latency_hist);
            routes_seen[route] = true;
        }
        sockets_lost += s.sockets_lost + r.sockets_lost;
        resent += s.resent;
        outages.extend(s.outages.iter().chain(&r.outages).copied());
        let _ = wire.add(&r.wire_hist);
        let _ = resp.add(&s.resp_hist);
        let _ = lag.add(&s.lag_hist);
        for (e, p) in [
            (&s.heard.errors, &s.heard.problems),
            (&r.errors, &r.problems),
        ] {
            report::merge_tally(&mut errors, e);
            report::merge_tally(&mut problems, p);
        }
        sent += log.sent();
        sent_in_window += s.sent_in_window;
        stored += log.stored();
        refused += log.refused();
        extra_resps += log.repeated_resps + log.stray_resps;
        receipts += s.heard.receipts;
        stalls += s.window_stalls;
        delayed += s.window_delayed;
        delivered_in_window += r.delivered_in_window;
    }
    let open = args.rate > 0.0;
    let mut placement = PlacementReport::new(nodes.to_vec(), pairs);
    if nodes.len() > 1 {
        let [same, cross] = &by_route;
        placement.latency_same_node = routes_seen[0].then(|| LatencySummary::of(same));
        placement.latency_cross_node = routes_seen[1].then(|| LatencySummary::of(cross));
    }
    ChatReport {
        raw_duplicates: deliveries.redeliveries,
        resent,
        recovery: Recovery::of(sockets_lost, &outages),
        placement,
        offered_rate: open.then_some(args.rate),
        sent,
        send_rate: report::round_to(report::per_second(sent_in_window, args.duration), 1),
        stored,
        delivered_rate: report::round_to(report::per_second(delivered_in_window, args.duration), 1),
        latency: LatencySummary::of(&latency),
        wire_latency: LatencySummary::of(&wire),
        resp_latency: LatencySummary::of(&resp),
        send_lag: open.then(|| LatencySummary::of(&lag)),
        deliveries,
        unanswered,
        extra_resps,
        errors,
        receipts,
        refused,
        window_stalls: stalls,
        window_delayed: delayed,
        drain_secs: 0.0,
        relay_rss_before_kib: None,
        relay_rss_after_kib: None,
        usage: Usage::default(),
        problems,
        args: args.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::args::tests::args;
    use super::*;
    use crate::answers::Answers;

    #[test]
    fn assemble_finds_loss_and_duplicates_across_pairs() {
        let mut s0 = Answers::default();
        let mut s1 = Answers::default();
        for q in 1..=3 {
            s0.log.on_sent(q);
            s1.log.on_sent(q);
            s0.log.on_stored(q, q as u128);
            s1.log.on_stored(q, 10 + q as u128);
        }
        let mut r0 = RecvOut::new(0, false);
        let mut r1 = RecvOut::new(0, false);
        for q in 1..=3 {
            r0.log.record(q, q as u128);
        }
        r0.log.record(2, 99); // duplicate
        r1.log.record(1, 11);
        r1.log.record(3, 13); // 2 is lost
        r0.delivered_in_window = 3;
        r1.delivered_in_window = 2;
        let a = args();
        let nodes = ["http://127.0.0.1:9".to_string()];
        let pairs = [super::super::Placement::Spread.pair(0, 1); 2];
        let rep = assemble(
            &a,
            &nodes,
            &pairs,
            &[SenderOut::new(s0), SenderOut::new(s1)],
            &[r0, r1],
        );
        let d = &rep.deliveries;
        assert_eq!((rep.sent, d.delivered, d.lost, d.duplicates), (6, 5, 1, 1));
        assert_eq!(rep.delivered_rate, 2.5);
        assert_eq!((d.out_of_order, rep.unanswered), (0, 0));
        let f = rep.failures();
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("lost") && f[1].contains("duplicate"));
        let v = rep.results();
        assert_eq!(v["lost"], 1);
        assert_eq!(v["delivered"], 5);
        assert!(v.get("args").is_none() && v.get("deliveries").is_none());
        assert_eq!(rep.params()["pairs"], 2);
    }

    #[test]
    fn assemble_splits_latency_by_route_and_sums_the_reconnections() {
        use crate::latency::record_us;
        use crate::redial::Outage;
        // Pair 0 crosses relays, pair 1 does not; each delivered message 1
        // once and again after a reconnection (a redelivery).
        let pairs = [
            PairNodes {
                sender: 0,
                recipient: 1,
            },
            PairNodes {
                sender: 1,
                recipient: 1,
            },
        ];
        let mut senders = Vec::new();
        let mut recipients = Vec::new();
        for (p, us) in [(0u128, 5_000), (1, 1_000)] {
            let mut a = Answers::default();
            a.log.on_sent(1);
            a.log.on_stored(1, 100 + p);
            let mut s = SenderOut::new(a);
            s.sockets_lost = 1;
            s.resent = 3;
            s.outages.push(Outage {
                lost_us: 8_000_000,
                back_us: Some(9_000_000 + p as u64 * 500_000),
                attempts: 2,
                gave_up: false,
            });
            senders.push(s);
            let mut r = RecvOut::new(0, false);
            r.log.record(1, 100 + p);
            r.log.record(1, 100 + p);
            record_us(&mut r.latency_hist, us);
            recipients.push(r);
        }
        let nodes = ["http://a:1".to_string(), "http://b:1".to_string()];
        let a = ChatArgs {
            reconnect: true,
            ..args()
        };
        let rep = assemble(&a, &nodes, &pairs, &senders, &recipients);
        assert!(rep.failures().is_empty(), "{:?}", rep.failures());
        let v = rep.results();
        assert_eq!(v["crossPairs"], 1);
        assert_eq!(v["pairNodes"], serde_json::json!([[0, 1], [1, 1]]));
        assert_eq!(v["latencyCrossNode"]["count"], 1);
        assert_eq!(v["latencySameNode"]["count"], 1);
        assert!(v["latencySameNode"]["maxUs"].as_u64().unwrap() < 1_100);
        assert_eq!(
            (v["rawDuplicates"].as_u64(), v["redeliveries"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(
            (v["duplicates"].as_u64(), v["lost"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(
            (v["socketsLost"].as_u64(), v["reconnected"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(v["resent"], 6);
        assert_eq!(v["recoverySecs"], 1.5);
        assert_eq!(v["reconnectTime"]["maxUs"], 1_500_000);
        let human = rep.human();
        assert!(human.contains("1 of 2 pairs cross relays"), "{human}");
        assert!(human.contains("sockets lost / reconnected"), "{human}");
        // A session that never came back fails a --reconnect run.
        senders[1].outages[0].back_us = None;
        senders[1].outages[0].gave_up = true;
        let rep = assemble(&a, &nodes, &pairs, &senders, &recipients);
        let f = rep.failures();
        assert!(f.iter().any(|f| f.contains("did not reconnect")), "{f:?}");
        assert_eq!(rep.results()["recoverySecs"], serde_json::Value::Null);
    }
}
