//! Every desk message's fate, both ways: sent, acknowledged by the relay
//! (81), pushed to the other side (and how often). Shared by the visitor
//! and agent tasks (atomics: a message's sender and receiver are different
//! tasks), reconciled at the end into lost and duplicate counts.
//!
//! A message is named by its visitor (the tag's `pair`) and its number in
//! that visitor's conversation (the tag's `seq`, 1..=K); the visitor's K-th
//! message and the agent's answer to it share the name and differ in
//! [`Dir`].

use serde::Serialize;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// A visitor's message, pushed to the agent.
    ToAgent = 0,
    /// An agent's answer, pushed to the visitor.
    ToVisitor = 1,
}

#[derive(Default)]
struct Slot {
    sent: AtomicU32,
    acked: AtomicU32,
    pushed: AtomicU32,
}

/// The bookkeeping of one run: visitors × messages × both ways.
pub struct Ledger {
    visitors: usize,
    messages: usize,
    slots: Vec<Slot>,
}

/// One direction's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    /// Messages sent.
    pub sent: u64,
    /// Acknowledged by the relay (81): durably stored.
    pub acked: u64,
    /// Pushed to the other side at least once.
    pub delivered: u64,
    /// Acknowledged but never pushed to the other side.
    pub lost: u64,
    /// Pushes beyond the first of one message.
    pub duplicates: u64,
    /// Sent but never acknowledged (no 81 by the end).
    pub unacked: u64,
}

impl Ledger {
    /// A ledger for `visitors` with `messages` each.
    pub fn new(visitors: usize, messages: usize) -> Ledger {
        Ledger {
            visitors,
            messages,
            slots: (0..visitors * messages * 2)
                .map(|_| Slot::default())
                .collect(),
        }
    }

    /// Message `seq` (1-based) of `visitor` going `dir`; `None` for a name
    /// outside the run (a corrupt or foreign tag).
    fn slot(&self, dir: Dir, visitor: u32, seq: u64) -> Option<&Slot> {
        let (v, s) = (visitor as usize, seq.checked_sub(1)? as usize);
        if v >= self.visitors || s >= self.messages {
            return None;
        }
        self.slots.get((v * self.messages + s) * 2 + dir as usize)
    }

    /// The message was sent; false when it is not a message of the run.
    pub fn sent(&self, dir: Dir, visitor: u32, seq: u64) -> bool {
        self.slot(dir, visitor, seq)
            .map(|s| s.sent.fetch_add(1, Relaxed))
            .is_some()
    }

    /// The relay stored it (81).
    pub fn acked(&self, dir: Dir, visitor: u32, seq: u64) -> bool {
        self.slot(dir, visitor, seq)
            .map(|s| s.acked.fetch_add(1, Relaxed))
            .is_some()
    }

    /// It was pushed to the other side: how many times so far, this one
    /// included (1: first delivery); `None` when it is not a message of
    /// the run.
    pub fn pushed(&self, dir: Dir, visitor: u32, seq: u64) -> Option<u32> {
        self.slot(dir, visitor, seq)
            .map(|s| s.pushed.fetch_add(1, Relaxed) + 1)
    }

    /// Messages acknowledged and not yet pushed (the drain waits for 0).
    pub fn in_flight(&self) -> u64 {
        (self.slots.iter())
            .filter(|s| s.acked.load(Relaxed) > 0 && s.pushed.load(Relaxed) == 0)
            .count() as u64
    }

    /// The totals of one direction.
    pub fn flow(&self, dir: Dir) -> Flow {
        let mut f = Flow::default();
        for s in self.slots.iter().skip(dir as usize).step_by(2) {
            let (sent, acked, pushed) = (
                s.sent.load(Relaxed),
                s.acked.load(Relaxed),
                s.pushed.load(Relaxed),
            );
            f.sent += u64::from(sent > 0);
            f.acked += u64::from(acked > 0);
            f.delivered += u64::from(pushed > 0);
            f.lost += u64::from(acked > 0 && pushed == 0);
            f.duplicates += u64::from(pushed.saturating_sub(1));
            f.unacked += u64::from(sent > 0 && acked == 0);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_duplicate_and_unacked_messages_are_told_apart() {
        let l = Ledger::new(2, 3);
        // Visitor 0: message 1 goes through; message 2 is stored but never
        // pushed; message 3 is pushed twice.
        for seq in 1..=3 {
            assert!(l.sent(Dir::ToAgent, 0, seq));
            assert!(l.acked(Dir::ToAgent, 0, seq));
        }
        assert_eq!(l.pushed(Dir::ToAgent, 0, 1), Some(1));
        assert_eq!(l.pushed(Dir::ToAgent, 0, 3), Some(1));
        assert_eq!(l.pushed(Dir::ToAgent, 0, 3), Some(2));
        assert_eq!(l.in_flight(), 1);
        // Visitor 1's answer 1: sent, pushed, never acked (81 missing).
        l.sent(Dir::ToVisitor, 1, 1);
        l.pushed(Dir::ToVisitor, 1, 1);
        // Outside the run.
        assert!(!l.sent(Dir::ToAgent, 2, 1));
        assert!(!l.sent(Dir::ToAgent, 0, 0));
        assert_eq!(l.pushed(Dir::ToVisitor, 0, 4), None);
        assert_eq!(
            l.flow(Dir::ToAgent),
            Flow {
                sent: 3,
                acked: 3,
                delivered: 2,
                lost: 1,
                duplicates: 1,
                unacked: 0
            }
        );
        assert_eq!(
            l.flow(Dir::ToVisitor),
            Flow {
                sent: 1,
                acked: 0,
                delivered: 1,
                lost: 0,
                duplicates: 0,
                unacked: 1
            }
        );
    }
}
