//! What a fan-out run reports: per message and over every (member,
//! message) delivery, with exact percentiles; and how the sender's and the
//! members' results combine into it.

use super::sender::SenderOut;
use super::setup::GroupSetup;
use super::FanoutArgs;
use crate::latency::LatencySummary;
use crate::recipient::{Deliveries, RecvOut};
use crate::report::{self, fmt_tally, fmt_us, Findings, ScenarioReport, Summary, Tally, ToJson};
use crate::resources::Usage;
use serde::Serialize;
use std::fmt::Write as _;

/// Per-message figures.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageFigures {
    /// The message's number, 1, 2, 3, …
    pub seq: u64,
    /// `"stored"` (81), `"refused"` (type 0) or `"unanswered"`.
    pub status: &'static str,
    /// Send → 81, µs.
    pub resp_us: Option<u64>,
    /// Members that got it.
    pub reached: u64,
    /// Members connected.
    pub expected: u64,
    /// Send → receive over the members that got it; `maxUs` is the time
    /// until the last of them had it.
    pub latency: LatencySummary,
}

/// Results of a fan-out run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutReport {
    /// The options used.
    #[serde(skip)]
    pub args: FanoutArgs,
    /// The group and what setting it up cost.
    #[serde(flatten)]
    pub group: GroupSetup,
    /// Opening and logging in every member socket, seconds.
    pub connect_secs: f64,
    /// Members whose socket opened and logged in.
    pub members_connected: u64,
    /// The relays (`--url`), node by node; the sender is on the first,
    /// the members round robin over all of them.
    pub nodes: Vec<String>,
    /// Members connected, per relay.
    pub members_per_node: Vec<u64>,
    /// Members that could not connect, by reason.
    pub connect_failures: Tally,
    /// Messages sent.
    pub sent: u64,
    /// Messages stored (81).
    pub stored: u64,
    /// Messages refused with a type 0 error.
    pub refused: u64,
    /// Messages with neither 81 nor error.
    pub unanswered: u64,
    /// (member, message) deliveries expected: connected members × stored
    /// messages.
    pub expected: u64,
    /// Send → receive over every delivery.
    pub latency: LatencySummary,
    /// Per message, the time until its last member got it (p50 and max
    /// across messages).
    pub last_member: LatencySummary,
    /// Send → 81.
    pub resp_latency: LatencySummary,
    /// What the members got: delivered, lost, duplicates, …
    #[serde(flatten)]
    pub deliveries: Deliveries,
    /// Presence, typing, read-receipt and group-event frames, ignored.
    pub notices: u64,
    /// Type 0 errors by code.
    pub errors: Tally,
    /// How long the final drain took, seconds.
    pub drain_secs: f64,
    /// First send to the end of the final drain, seconds.
    pub send_phase_secs: f64,
    /// Relay VmRSS before the members connected, KiB.
    pub relay_rss_before_connect_kib: Option<u64>,
    /// Relay VmRSS with every member connected, before the first send, KiB.
    pub relay_rss_connected_kib: Option<u64>,
    /// Relay VmRSS after the final drain, KiB.
    pub relay_rss_after_kib: Option<u64>,
    /// CPU during the send phase.
    #[serde(flatten)]
    pub usage: Usage,
    /// Unexpected events by kind (closed sockets, slow-consumer closes, …).
    pub problems: Tally,
    /// Figures of each message.
    pub per_message: Vec<MessageFigures>,
}

impl ScenarioReport for FanoutReport {
    fn scenario(&self) -> &'static str {
        "fanout"
    }

    fn args(&self) -> &dyn ToJson {
        &self.args
    }

    fn human(&self) -> String {
        let (a, g, d) = (&self.args, &self.group, &self.deliveries);
        let mut s = Summary::new();
        s.line(
            "load",
            format!(
                "group {} ({} members), {} messages of {} B, interval {:?}, drain {:?}",
                g.group_id, g.group_members, a.messages, a.body_bytes, a.interval, a.drain
            ),
        );
        s.line(
            "setup",
            format!(
                "{} joins in {:.1} s ({:.1} MiB of answers), {} members connected in {:.1} s",
                g.joins,
                g.group_setup_secs,
                g.join_response_bytes as f64 / (1024.0 * 1024.0),
                self.members_connected,
                self.connect_secs
            ),
        );
        if !self.connect_failures.is_empty() {
            s.line("connect failures", fmt_tally(&self.connect_failures));
        }
        if self.nodes.len() > 1 {
            let per: Vec<String> = (self.nodes.iter().zip(&self.members_per_node))
                .map(|(url, n)| format!("{url} {n}"))
                .collect();
            s.line("members per relay", per.join(", "));
        }
        s.line(
            "messages",
            format!(
                "sent {}, stored (81) {}, refused {}, unanswered {}",
                self.sent, self.stored, self.refused, self.unanswered
            ),
        );
        s.line(
            "deliveries",
            format!("{} of {} expected", d.delivered, self.expected),
        );
        s.line("send → receive latency", self.latency.human());
        let last = &self.last_member;
        s.line(
            "until the last member",
            if last.count == 0 {
                "no samples".to_string()
            } else {
                format!(
                    "p50 {}, max {} (over {} messages)",
                    fmt_us(last.p50_us),
                    fmt_us(last.max_us),
                    last.count
                )
            },
        );
        s.line("send → 81 latency", self.resp_latency.human());
        d.losses(&mut s);
        s.line(
            "misrouted / id mismatch",
            format!("{} / {}", d.misrouted, d.id_mismatch),
        );
        d.backlog(&mut s);
        s.errors(&self.errors);
        s.line(
            "acks answered / notices",
            format!(
                "{} of {} / {} ignored",
                d.ack_resps, d.acks_sent, self.notices
            ),
        );
        s.line("drain", format!("{:.2} s", self.drain_secs));
        s.relay_rss(
            "relay RSS idle/conn/after",
            &[
                self.relay_rss_before_connect_kib,
                self.relay_rss_connected_kib,
                self.relay_rss_after_kib,
            ],
        );
        s.cpu(&self.usage, "send phase");
        s.problems(&self.problems);
        per_message_table(s.text(), &self.per_message);
        s.finish()
    }

    fn failures(&self) -> Vec<String> {
        let d = &self.deliveries;
        let mut f = Findings::new();
        f.count(
            d.lost,
            "deliveries lost (a connected member never got a stored message)",
        );
        f.count(
            d.duplicates,
            "duplicate deliveries (second msgId for one message)",
        );
        f.count(d.out_of_order, "deliveries out of order");
        f.count(d.id_mismatch, "deliveries with a msgId other than the 81's");
        f.count(d.delivered_after_error, "deliveries of refused messages");
        f.count(d.misrouted, "pushes misrouted or never sent");
        f.count(self.refused, "messages refused by the relay");
        f.count(self.unanswered, "messages got no 81 within the drain");
        let members = self.args.members as u64;
        f.count(
            members - self.members_connected.min(members),
            "members could not connect",
        );
        if d.delivered == 0 {
            f.push("nothing was delivered");
        }
        f.into_vec()
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = Findings::new();
        w.count(
            self.deliveries.redeliveries,
            "redeliveries (same msgId pushed again to a member: an ACK was late)",
        );
        w.rate_limited(&self.errors);
        let in_run = self.args.members as u64 + 1;
        if self.group.group_members > in_run {
            w.push(format!(
                "the group has {} members, {} of them not in this run (offline)",
                self.group.group_members,
                self.group.group_members - in_run
            ));
        }
        self.deliveries.warnings(&mut w);
        w.problems(&self.problems);
        w.relay_unmeasured(self.relay_rss_connected_kib.is_some());
        w.into_vec()
    }
}

/// One line per message: reach, send→81, latency percentiles.
fn per_message_table(s: &mut String, per_message: &[MessageFigures]) {
    let _ = writeln!(
        s,
        "  {:>5} {:>13} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "msg", "reached", "81", "p50", "p99", "p99.9", "last"
    );
    for m in per_message {
        let l = &m.latency;
        let t = |us: u64| if l.count == 0 { "-".into() } else { fmt_us(us) };
        let _ = writeln!(
            s,
            "  {:>5} {:>13} {:>10} {:>10} {:>10} {:>10} {:>10}{}",
            m.seq,
            format!("{}/{}", m.reached, m.expected),
            m.resp_us.map_or("-".into(), fmt_us),
            t(l.p50_us),
            t(l.p99_us),
            t(l.p999_us),
            t(l.max_us),
            if m.status == "stored" {
                String::new()
            } else {
                format!("  ({})", m.status)
            }
        );
    }
}

/// Combines the sender's and the members' results (pure, so it is tested);
/// the caller adds what the run measured around them (setup, relay).
pub(super) fn assemble(
    args: &FanoutArgs,
    connected: u64,
    sender: &SenderOut,
    members: &[RecvOut],
) -> FanoutReport {
    let log = &sender.heard.log;
    let sent = log.sent();
    let mut deliveries = Deliveries::default();
    let mut errors = sender.heard.errors.clone();
    let mut problems = sender.heard.problems.clone();
    let mut notices = sender.heard.notices;
    for m in members {
        deliveries.add(log, m);
        notices += m.notices;
        report::merge_tally(&mut errors, &m.errors);
        report::merge_tally(&mut problems, &m.problems);
    }
    if sender.pushes > 0 {
        report::tally(&mut problems, "pushes to the sender (acked)", sender.pushes);
    }
    if sender.heard.receipts > 0 {
        report::tally(
            &mut problems,
            "92 receipts for group messages",
            sender.heard.receipts,
        );
    }
    let mut all = Vec::with_capacity((connected * sent) as usize);
    let mut last = Vec::with_capacity(sent as usize);
    let mut resp = Vec::with_capacity(sent as usize);
    let mut per_message = Vec::with_capacity(sent as usize);
    for seq in 1..=sent {
        let i = (seq - 1) as usize;
        let mut lat: Vec<u64> = members
            .iter()
            .filter_map(|m| m.latencies_us.get(i).copied().flatten())
            .collect();
        all.extend_from_slice(&lat);
        let latency = LatencySummary::of_values(&mut lat);
        if latency.count > 0 {
            last.push(latency.max_us);
        }
        let resp_us = sender.resp_us.get(i).copied().flatten();
        resp.extend(resp_us);
        per_message.push(MessageFigures {
            seq,
            status: match log.answer(seq) {
                Some(true) => "stored",
                Some(false) => "refused",
                None => "unanswered",
            },
            resp_us,
            reached: latency.count,
            expected: connected,
            latency,
        });
    }
    FanoutReport {
        group: GroupSetup::default(),
        connect_secs: 0.0,
        members_connected: connected,
        nodes: Vec::new(),
        members_per_node: Vec::new(),
        connect_failures: Tally::new(),
        sent,
        stored: log.stored(),
        refused: log.refused(),
        unanswered: sent - log.stored() - log.refused(),
        expected: connected * log.stored(),
        latency: LatencySummary::of_values(&mut all),
        last_member: LatencySummary::of_values(&mut last),
        resp_latency: LatencySummary::of_values(&mut resp),
        deliveries,
        notices,
        errors,
        drain_secs: 0.0,
        send_phase_secs: 0.0,
        relay_rss_before_connect_kib: None,
        relay_rss_connected_kib: None,
        relay_rss_after_kib: None,
        usage: Usage::default(),
        problems,
        per_message,
        args: args.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::args::tests::args;
    use super::*;
    use crate::track::{self, Arrival};

    fn member(arrivals: &[(u64, u128, u64)]) -> RecvOut {
        let mut m = RecvOut::new(4, true);
        for &(seq, id, us) in arrivals {
            if let Arrival::First { .. } = m.log.record(seq, id) {
                track::put(&mut m.latencies_us, seq, us);
            }
        }
        m
    }

    #[test]
    fn assemble_summarises_per_message_and_finds_loss() {
        let mut s = SenderOut::default();
        for q in 1..=3 {
            s.heard.log.on_sent(q);
        }
        s.heard.log.on_stored(1, 101);
        s.heard.log.on_stored(2, 102);
        s.heard.log.on_refused(3);
        s.resp_us = vec![Some(900), Some(700)];
        // Three members: the third never gets message 2 (lost), the second
        // gets message 1 twice (a redelivery) and message 2 under another
        // msgId as well (a duplicate).
        let mut m1 = member(&[(1, 101, 1_000), (2, 102, 2_000)]);
        let mut m2 = member(&[(1, 101, 3_000), (1, 101, 9_999), (2, 102, 4_000)]);
        m2.log.record(2, 999);
        let m3 = member(&[(1, 101, 5_000)]);
        m1.acks_sent = 2;
        m1.ack_resps = 2;
        m1.notices = 4;
        let r = assemble(&args(3, 3), 3, &s, &[m1, m2, m3]);
        let d = &r.deliveries;
        assert_eq!((r.sent, r.stored, r.refused, r.unanswered), (3, 2, 1, 0));
        assert_eq!((r.expected, d.delivered, d.lost), (6, 5, 1));
        assert_eq!((d.duplicates, d.redeliveries, d.out_of_order), (1, 1, 0));
        assert_eq!((r.notices, d.acks_sent, d.ack_resps), (4, 2, 2));
        let m = &r.per_message;
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].reached, m[0].expected, m[0].status), (3, 3, "stored"));
        assert_eq!(
            (m[0].latency.p50_us, m[0].latency.max_us),
            (3_000, 5_000),
            "the redelivery's later time must not count"
        );
        assert_eq!((m[1].reached, m[1].latency.max_us), (2, 4_000));
        assert_eq!(
            (m[2].reached, m[2].status, m[2].resp_us),
            (0, "refused", None)
        );
        assert_eq!(r.latency.count, 5);
        assert_eq!((r.latency.p50_us, r.latency.max_us), (3_000, 5_000));
        // Last member per message: 5 ms and 4 ms.
        assert_eq!((r.last_member.count, r.last_member.max_us), (2, 5_000));
        assert_eq!((r.resp_latency.count, r.resp_latency.max_us), (2, 900));
        let f = r.failures();
        assert!(f.iter().any(|x| x.contains("lost")), "{f:?}");
        assert!(f.iter().any(|x| x.contains("duplicate")), "{f:?}");
        assert!(f.iter().any(|x| x.contains("refused")), "{f:?}");
        assert!(r.warnings().iter().any(|w| w.contains("redeliveries")));
        let v = r.results();
        assert_eq!(v["perMessage"][0]["latency"]["maxUs"], 5_000);
        assert_eq!(v["lost"], 1);
        assert!(v.get("group").is_none() && v["groupId"].is_number());
        assert!(r.human().contains("3/3"));
    }

    #[test]
    fn a_clean_run_passes_and_missing_members_fail_it() {
        let mut s = SenderOut::default();
        s.heard.log.on_sent(1);
        s.heard.log.on_stored(1, 7);
        s.resp_us = vec![Some(100)];
        let ms: Vec<RecvOut> = (0..4).map(|k| member(&[(1, 7, 1_000 + k)])).collect();
        let r = assemble(&args(4, 1), 4, &s, &ms);
        assert!(r.failures().is_empty(), "{:?}", r.failures());
        assert_eq!(
            (r.expected, r.deliveries.delivered, r.deliveries.lost),
            (4, 4, 0)
        );
        // Five members wanted, four connected: the run fails although
        // every connected member got everything.
        let r = assemble(&args(5, 1), 4, &s, &ms);
        assert_eq!(
            r.failures(),
            vec!["1 members could not connect".to_string()]
        );
        // An unanswered message fails it too.
        let mut s2 = SenderOut::default();
        s2.heard.log.on_sent(1);
        let r = assemble(&args(4, 1), 4, &s2, &[RecvOut::new(1, true)]);
        assert_eq!(r.unanswered, 1);
        assert!(r.failures().iter().any(|f| f.contains("no 81")));
        // A member log that saw nothing is not a loss for an unstored message.
        assert_eq!(r.deliveries.lost, 0);
    }
}
