//! Delivery bookkeeping: what each sender was told (81 / error) and what each
//! recipient saw (pushes), and the reconciliation of the two at the end.
//!
//! Kept free of I/O so the rules that decide "lost", "duplicate" and
//! "out of order" are unit-tested, and so the fan-out scenario can reuse
//! them (one [`SendLog`] for the group sender, one [`RecvLog`] per member).
//!
//! Sequence numbers are the generator's own (1, 2, 3, … per sender, carried in
//! the `clientMsgId`), not the relay's `seq`: they identify a message
//! independently of anything the relay assigns, so a relay that invents,
//! repeats or drops a message is caught. Order is the exception: it is
//! judged by the relay's `seq` in the conversation when a push carries one
//! (the relay promises pushes in `seq` order, and after a reconnection a
//! resent message may be stored after a later one of the generator's), by
//! the generator's numbers otherwise. Times are on the run's [`Clock`].

use std::time::Instant;

/// The run's clock: one start instant shared by every task of the run (the
/// send times in message tags are µs since it) and the measured period on
/// it. Senders and recipients run in one process on one monotonic clock, so
/// a recipient computes a latency from a push alone.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// The shared start instant.
    pub t0: Instant,
    /// Start of the measured period, µs.
    pub warmup_us: u64,
    /// End of the measured period, µs.
    pub end_us: u64,
}

impl Clock {
    /// A clock from `t0` whose whole run is measured.
    pub fn unbounded(t0: Instant) -> Clock {
        Clock {
            t0,
            warmup_us: 0,
            end_us: u64::MAX,
        }
    }

    /// µs since `t0` (0 before it).
    #[inline]
    pub fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// Whether `t_us` falls in the measured period.
    #[inline]
    pub fn measured(&self, t_us: u64) -> bool {
        (self.warmup_us..self.end_us).contains(&t_us)
    }
}

/// Sets the figure of message `seq` (1, 2, 3, …) in a per-message list,
/// growing it with `None`s as needed.
pub fn put(per_message: &mut Vec<Option<u64>>, seq: u64, value: u64) {
    let Some(i) = seq.checked_sub(1).map(|i| i as usize) else {
        return;
    };
    if per_message.len() <= i {
        per_message.resize(i + 1, None);
    }
    per_message[i] = Some(value);
}

/// Highest sequence number accepted; anything above is treated as garbage so
/// a corrupt tag cannot make the logs allocate gigabytes.
pub const MAX_SEQ: u64 = 1 << 28;

/// What the sender knows about one of its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendState {
    /// Sent, no answer yet.
    Pending,
    /// 81 received.
    Stored,
    /// Type 0 error received: the relay says the frame had no effect.
    Refused,
}

/// The sender's view: one entry per message sent, indexed by sequence number.
#[derive(Debug, Default)]
pub struct SendLog {
    states: Vec<SendState>,
    /// `msgId` from the 81 (as `u128`; 0 until the 81 arrives).
    msg_ids: Vec<u128>,
    /// 81s for a message that already had one.
    pub repeated_resps: u64,
    /// 81s or errors naming a message this sender never sent, or an 81
    /// after an error (or vice versa) for the same message.
    pub stray_resps: u64,
    stored: u64,
    refused: u64,
}

/// What an answer to a CHAT did to the sender's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// First answer for a pending message: one window slot is free again.
    First,
    /// Not the first answer (or not for a pending message): counted only.
    Extra,
}

impl SendLog {
    /// A log sized for roughly `expected` messages.
    pub fn with_capacity(expected: usize) -> Self {
        SendLog {
            states: Vec::with_capacity(expected + 1),
            msg_ids: Vec::with_capacity(expected + 1),
            ..Default::default()
        }
    }

    /// Number of messages sent.
    pub fn sent(&self) -> u64 {
        self.states.len() as u64
    }

    /// Number of messages with an 81.
    pub fn stored(&self) -> u64 {
        self.stored
    }

    /// Number of messages refused with a type 0 error.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Records that message `seq` was sent. Sequence numbers start at 1 and
    /// must be consecutive: the generator produces them, so anything else is
    /// a generator bug.
    pub fn on_sent(&mut self, seq: u64) {
        assert_eq!(seq, self.sent() + 1, "sequence numbers must be consecutive");
        self.states.push(SendState::Pending);
        self.msg_ids.push(0);
    }

    fn slot(&self, seq: u64) -> Option<usize> {
        (seq >= 1 && seq <= self.sent()).then(|| (seq - 1) as usize)
    }

    /// Whether message `seq` was sent and got its 81 (`Some(true)`) or an
    /// error (`Some(false)`); `None` while it awaits an answer or was never
    /// sent.
    pub fn answer(&self, seq: u64) -> Option<bool> {
        match self.states[self.slot(seq)?] {
            SendState::Pending => None,
            SendState::Stored => Some(true),
            SendState::Refused => Some(false),
        }
    }

    /// An 81 for message `seq` with the relay's `msgId`.
    pub fn on_stored(&mut self, seq: u64, msg_id: u128) -> Answer {
        let Some(i) = self.slot(seq) else {
            self.stray_resps += 1;
            return Answer::Extra;
        };
        match self.states[i] {
            SendState::Pending => {
                self.states[i] = SendState::Stored;
                self.msg_ids[i] = msg_id;
                self.stored += 1;
                Answer::First
            }
            SendState::Stored => {
                self.repeated_resps += 1;
                Answer::Extra
            }
            SendState::Refused => {
                self.stray_resps += 1;
                Answer::Extra
            }
        }
    }

    /// A type 0 error for message `seq`.
    pub fn on_refused(&mut self, seq: u64) -> Answer {
        match self.slot(seq) {
            Some(i) if self.states[i] == SendState::Pending => {
                self.states[i] = SendState::Refused;
                self.refused += 1;
                Answer::First
            }
            _ => {
                self.stray_resps += 1;
                Answer::Extra
            }
        }
    }
}

/// How a push relates to what the recipient already saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// First time this message arrives. `in_order` is false when a message
    /// with a higher sequence number (the relay's, when the pushes carry
    /// one) arrived before it.
    First {
        /// Whether it arrived after every lower-numbered message seen so far.
        in_order: bool,
    },
    /// The same `msgId` again: at-least-once redelivery, legal.
    Redelivery,
    /// A different `msgId` for a `clientMsgId` already delivered: the relay
    /// stored the message twice, which idempotency forbids.
    Duplicate,
    /// Sequence number 0 or above [`MAX_SEQ`]: not one of ours.
    Invalid,
}

/// The recipient's view of one sender's stream.
#[derive(Debug, Default)]
pub struct RecvLog {
    /// `msgId` of the first arrival per sequence number (0 = not yet).
    msg_ids: Vec<u128>,
    max_seq: u64,
    /// Highest relay `seq` of a first arrival so far.
    max_relay_seq: u64,
    /// Distinct messages received.
    pub unique: u64,
    /// Same `msgId` received again.
    pub redeliveries: u64,
    /// A second distinct `msgId` for one message.
    pub duplicates: u64,
    /// First arrivals below the highest sequence number already seen (the
    /// relay's `seq` when the push has one).
    pub out_of_order: u64,
}

impl RecvLog {
    /// A log sized for roughly `expected` messages.
    pub fn with_capacity(expected: usize) -> Self {
        RecvLog {
            msg_ids: Vec::with_capacity(expected + 1),
            ..Default::default()
        }
    }

    /// Records a push of message `seq` with the relay's `msg_id` (non-zero:
    /// UUIDv7s never are), ordered by the generator's numbers.
    pub fn record(&mut self, seq: u64, msg_id: u128) -> Arrival {
        self.record_at(seq, msg_id, None)
    }

    /// Records a push of message `seq` with the relay's `msg_id` and, when
    /// the push has one, its `seq` in the conversation, by which its order
    /// is then judged. Only first arrivals are judged: a redelivery (after
    /// a reconnection, the relay pushes again what was not acked) is never
    /// out of order.
    pub fn record_at(&mut self, seq: u64, msg_id: u128, relay_seq: Option<u64>) -> Arrival {
        if seq == 0 || seq > MAX_SEQ {
            return Arrival::Invalid;
        }
        let i = (seq - 1) as usize;
        if i >= self.msg_ids.len() {
            self.msg_ids.resize(i + 1, 0);
        }
        let seen = self.msg_ids[i];
        if seen == 0 {
            self.msg_ids[i] = msg_id;
            self.unique += 1;
            let in_order = match relay_seq {
                Some(r) => r > self.max_relay_seq,
                None => seq > self.max_seq,
            };
            self.max_seq = self.max_seq.max(seq);
            if let Some(r) = relay_seq {
                self.max_relay_seq = self.max_relay_seq.max(r);
            }
            if !in_order {
                self.out_of_order += 1;
            }
            Arrival::First { in_order }
        } else if seen == msg_id {
            self.redeliveries += 1;
            Arrival::Redelivery
        } else {
            self.duplicates += 1;
            Arrival::Duplicate
        }
    }

    /// The `msgId` first received for `seq`, if any.
    pub fn received(&self, seq: u64) -> Option<u128> {
        let i = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.msg_ids.get(i).copied().filter(|&id| id != 0)
    }

    /// Highest sequence number received so far.
    pub fn max_seq(&self) -> u64 {
        self.max_seq
    }
}

/// The verdict on one sender→recipient stream after the drain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Got an 81 (a durability promise) but never reached the recipient.
    pub lost: u64,
    /// Neither 81 nor error by the end.
    pub unanswered: u64,
    /// Reached the recipient though no 81 arrived (81 still in flight, or
    /// the relay pushed before answering).
    pub delivered_unanswered: u64,
    /// Refused with a type 0 error, yet delivered: the error claimed the
    /// frame had no effect.
    pub delivered_after_refusal: u64,
    /// The 81's `msgId` differs from the pushed one.
    pub id_mismatch: u64,
    /// Pushes for sequence numbers the sender never sent.
    pub phantom: u64,
}

impl Reconciled {
    /// Adds another stream's verdict.
    pub fn add(&mut self, o: &Reconciled) {
        self.lost += o.lost;
        self.unanswered += o.unanswered;
        self.delivered_unanswered += o.delivered_unanswered;
        self.delivered_after_refusal += o.delivered_after_refusal;
        self.id_mismatch += o.id_mismatch;
        self.phantom += o.phantom;
    }
}

/// Compares what the sender was promised with what the recipient got.
pub fn reconcile(send: &SendLog, recv: &RecvLog) -> Reconciled {
    let mut r = Reconciled::default();
    for (i, (&state, &promised)) in send.states.iter().zip(&send.msg_ids).enumerate() {
        let got = recv.received(i as u64 + 1);
        match (state, got) {
            (SendState::Stored, None) => r.lost += 1,
            (SendState::Stored, Some(id)) if id != promised => r.id_mismatch += 1,
            (SendState::Stored, Some(_)) => {}
            (SendState::Pending, None) => r.unanswered += 1,
            (SendState::Pending, Some(_)) => r.delivered_unanswered += 1,
            (SendState::Refused, Some(_)) => r.delivered_after_refusal += 1,
            (SendState::Refused, None) => {}
        }
    }
    r.phantom = recv
        .msg_ids
        .iter()
        .skip(send.states.len())
        .filter(|&&id| id != 0)
        .count() as u64;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_per_message_figures() {
        let c = Clock {
            t0: Instant::now() + std::time::Duration::from_secs(60),
            warmup_us: 10,
            end_us: 20,
        };
        assert_eq!(c.now_us(), 0, "before the start");
        assert!(!c.measured(9) && c.measured(10) && c.measured(19) && !c.measured(20));
        assert!(Clock::unbounded(Instant::now()).measured(u64::MAX - 1));
        let mut v = Vec::new();
        put(&mut v, 3, 30);
        put(&mut v, 1, 10);
        put(&mut v, 0, 99); // not a message number
        assert_eq!(v, [Some(10), None, Some(30)]);
    }

    #[test]
    fn in_order_stream_is_clean() {
        let mut r = RecvLog::default();
        for s in 1..=5 {
            assert_eq!(
                r.record(s, 100 + s as u128),
                Arrival::First { in_order: true }
            );
        }
        assert_eq!(
            (r.unique, r.out_of_order, r.duplicates, r.redeliveries),
            (5, 0, 0, 0)
        );
        assert_eq!(r.max_seq(), 5);
    }

    #[test]
    fn gaps_are_not_disorder_but_going_back_is() {
        let mut r = RecvLog::default();
        assert_eq!(r.record(1, 1), Arrival::First { in_order: true });
        assert_eq!(r.record(3, 3), Arrival::First { in_order: true });
        assert_eq!(r.record(2, 2), Arrival::First { in_order: false });
        assert_eq!(r.record(4, 4), Arrival::First { in_order: true });
        assert_eq!(r.out_of_order, 1);
        assert_eq!(r.unique, 4);
    }

    #[test]
    fn order_is_the_relays_seq_when_pushes_carry_it() {
        let mut r = RecvLog::default();
        // Messages 3 and 4 were resent after a reconnection and stored
        // (relay seq 3, 4) after message 5 (seq 2): in order.
        for (q, relay) in [(1, 1), (5, 2), (3, 3), (4, 4)] {
            assert_eq!(
                r.record_at(q, q as u128, Some(relay)),
                Arrival::First { in_order: true }
            );
        }
        assert_eq!(
            r.record_at(5, 5, Some(2)),
            Arrival::Redelivery,
            "never out of order"
        );
        assert_eq!(
            r.record_at(2, 2, Some(3)),
            Arrival::First { in_order: false }
        );
        assert_eq!((r.unique, r.out_of_order, r.max_seq()), (5, 1, 5));
    }

    #[test]
    fn redelivery_and_duplicate_are_told_apart() {
        let mut r = RecvLog::default();
        r.record(1, 11);
        r.record(2, 22);
        assert_eq!(r.record(1, 11), Arrival::Redelivery);
        assert_eq!(r.record(1, 99), Arrival::Duplicate);
        assert_eq!(
            (r.redeliveries, r.duplicates, r.unique, r.out_of_order),
            (1, 1, 2, 0)
        );
        assert_eq!(r.received(1), Some(11));
        assert_eq!(r.received(3), None);
        assert_eq!(r.received(0), None);
    }

    #[test]
    fn invalid_sequence_numbers_are_refused() {
        let mut r = RecvLog::default();
        assert_eq!(r.record(0, 1), Arrival::Invalid);
        assert_eq!(r.record(MAX_SEQ + 1, 1), Arrival::Invalid);
        assert_eq!(r.unique, 0);
    }

    #[test]
    fn send_log_frees_the_window_once_per_message() {
        let mut s = SendLog::with_capacity(4);
        for q in 1..=3 {
            s.on_sent(q);
        }
        assert_eq!(s.on_stored(1, 7), Answer::First);
        assert_eq!(s.on_stored(1, 7), Answer::Extra);
        assert_eq!(s.on_refused(2), Answer::First);
        assert_eq!(s.on_stored(2, 8), Answer::Extra);
        assert_eq!(s.on_stored(9, 9), Answer::Extra);
        assert_eq!(s.on_refused(1), Answer::Extra);
        assert_eq!((s.repeated_resps, s.stray_resps), (1, 3));
        assert_eq!((s.sent(), s.stored(), s.refused()), (3, 1, 1));
        assert_eq!(
            [0, 1, 2, 3, 4].map(|q| s.answer(q)),
            [None, Some(true), Some(false), None, None]
        );
    }

    #[test]
    #[should_panic(expected = "consecutive")]
    fn send_log_rejects_skipped_sequence_numbers() {
        let mut s = SendLog::default();
        s.on_sent(2);
    }

    #[test]
    fn reconcile_classifies_every_case() {
        let mut s = SendLog::default();
        let mut r = RecvLog::default();
        for q in 1..=7 {
            s.on_sent(q);
        }
        s.on_stored(1, 101); // delivered fine
        s.on_stored(2, 102); // lost
        s.on_stored(3, 103); // delivered with another id
        s.on_refused(4); // refused, yet delivered
        s.on_refused(5); // refused, not delivered: fine
                         // 6: unanswered, delivered
                         // 7: unanswered, not delivered
        r.record(1, 101);
        r.record(3, 333);
        r.record(4, 104);
        r.record(6, 106);
        r.record(9, 109); // never sent
        let v = reconcile(&s, &r);
        assert_eq!(
            v,
            Reconciled {
                lost: 1,
                unanswered: 1,
                delivered_unanswered: 1,
                delivered_after_refusal: 1,
                id_mismatch: 1,
                phantom: 1,
            }
        );
        let mut sum = Reconciled::default();
        sum.add(&v);
        sum.add(&v);
        assert_eq!(sum.lost, 2);
        assert_eq!(sum.phantom, 2);
    }
}
