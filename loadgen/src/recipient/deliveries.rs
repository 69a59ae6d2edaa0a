//! The delivery figures of the message scenarios, summed over their
//! recipients: what chat and fan-out report alike.

use super::RecvOut;
use crate::report::{Findings, Summary};
use crate::track::{reconcile, Reconciled, SendLog};
use serde::Serialize;

/// The delivery figures of a message scenario: what its recipients saw,
/// summed, each stream reconciled with what its sender was told.
/// Flattened into the chat and fan-out reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deliveries {
    /// Distinct deliveries (chat: messages; fan-out: (member, message)
    /// pairs).
    pub delivered: u64,
    /// Got an 81 (a durability promise) but never reached a recipient.
    pub lost: u64,
    /// A second distinct msgId for one message at one recipient.
    pub duplicates: u64,
    /// The same msgId pushed again (legal at-least-once redelivery).
    pub redeliveries: u64,
    /// First arrivals after a later message of the same sender.
    pub out_of_order: u64,
    /// Pushed with a msgId other than the 81's.
    pub id_mismatch: u64,
    /// Delivered although the relay answered with an error.
    pub delivered_after_error: u64,
    /// Pushes not tagged for their recipient, or for messages never sent.
    pub misrouted: u64,
    /// Pushes of earlier runs on the same accounts (acked, not counted).
    pub stale: u64,
    /// ACKs sent by recipients (one per push).
    pub acks_sent: u64,
    /// 91 answers received by recipients.
    pub ack_resps: u64,
    /// ACKs whose socket was lost before their 91 came (they get none).
    pub acks_lost: u64,
}

impl Deliveries {
    /// Adds recipient `r`, whose sender's answers are `sent`; returns that
    /// stream's verdict (for figures a scenario counts its own way).
    pub fn add(&mut self, sent: &SendLog, r: &RecvOut) -> Reconciled {
        let v = reconcile(sent, &r.log);
        self.delivered += r.log.unique;
        self.lost += v.lost;
        self.duplicates += r.log.duplicates;
        self.redeliveries += r.log.redeliveries;
        self.out_of_order += r.log.out_of_order;
        self.id_mismatch += v.id_mismatch;
        self.delivered_after_error += v.delivered_after_refusal;
        self.misrouted += r.misrouted + v.phantom;
        self.stale += r.stale;
        self.acks_sent += r.acks_sent;
        self.ack_resps += r.ack_resps;
        self.acks_lost += r.acks_lost;
        v
    }

    /// The summary lines for losses, duplicates, disorder and redeliveries.
    pub fn losses(&self, s: &mut Summary) {
        s.line(
            "lost / duplicates / disorder",
            format!(
                "{} / {} / {}",
                self.lost, self.duplicates, self.out_of_order
            ),
        );
        s.line("redeliveries", self.redeliveries);
    }

    /// The summary line for a backlog of earlier runs, when there was one.
    pub fn backlog(&self, s: &mut Summary) {
        if self.stale > 0 {
            s.line("backlog of earlier runs", self.stale);
        }
    }

    /// Warnings: ACKs without an answer, a backlog of earlier runs.
    pub fn warnings(&self, w: &mut Findings) {
        w.count(
            (self.acks_sent.saturating_sub(self.ack_resps)).saturating_sub(self.acks_lost),
            "ACKs got no 91",
        );
        w.count(
            self.stale,
            "pushes left over from earlier runs on these accounts were acked and ignored",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_sum_recipients_and_reconcile_each_stream() {
        let mut sent = SendLog::default();
        for q in 1..=3 {
            sent.on_sent(q);
        }
        sent.on_stored(1, 11);
        sent.on_stored(2, 12);
        sent.on_refused(3);
        // One recipient got everything stored, once more and once as a
        // duplicate; the other missed message 2 and got a push for message 9,
        // never sent, and one of an earlier run.
        let mut a = RecvOut::new(3, false);
        a.log.record(1, 11);
        a.log.record(2, 12);
        a.log.record(1, 11);
        a.log.record(2, 99);
        a.acks_sent = 4;
        a.ack_resps = 4;
        let mut b = RecvOut::new(3, false);
        b.log.record(1, 11);
        b.log.record(9, 19);
        b.stale = 1;
        b.misrouted = 1;
        b.acks_sent = 4;
        b.ack_resps = 2;
        let mut d = Deliveries::default();
        assert_eq!(d.add(&sent, &a), Reconciled::default());
        assert_eq!(d.add(&sent, &b).lost, 1);
        assert_eq!(
            d,
            Deliveries {
                delivered: 4,
                lost: 1,
                duplicates: 1,
                redeliveries: 1,
                out_of_order: 0,
                id_mismatch: 0,
                delivered_after_error: 0,
                misrouted: 2,
                stale: 1,
                acks_sent: 8,
                ack_resps: 6,
                acks_lost: 0,
            }
        );
        let mut s = Summary::new();
        d.losses(&mut s);
        d.backlog(&mut s);
        assert_eq!(
            s.finish(),
            "  lost / duplicates / disorder 1 / 1 / 0\n\
             \x20 redeliveries                 1\n\
             \x20 backlog of earlier runs      1\n"
        );
        let mut w = Findings::new();
        d.warnings(&mut w);
        assert_eq!(
            w.into_vec(),
            [
                "2 ACKs got no 91",
                "1 pushes left over from earlier runs on these accounts were acked and ignored"
            ]
        );
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            (v["outOfOrder"].as_u64(), v["ackResps"].as_u64()),
            (Some(0), Some(6))
        );
    }
}
