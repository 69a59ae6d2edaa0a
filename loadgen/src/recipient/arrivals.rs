//! How a recipient accounts for each frame it gets: which pushes are first
//! arrivals of our messages (and their latency), which are redeliveries,
//! duplicates, misrouted or left over from an earlier run; and what to ack.

use super::RecvSpec;
use crate::latency::{new_histogram, record_us};
use crate::redial::Outage;
use crate::report::{self, Tally};
use crate::track::{self, Arrival, RecvLog};
use crate::wire::{self, frame_type as ft, Lite, MsgTag, NotOurs};
use hdrhistogram::Histogram;

/// What a recipient task hands back.
pub struct RecvOut {
    /// Arrivals of the stream this recipient expects.
    pub log: RecvLog,
    /// Intended send time → push received, µs, for messages due in the
    /// measured period.
    pub latency_hist: Histogram<u64>,
    /// Actual send time → push received, µs (the relay's part, without
    /// the generator's own scheduling lag).
    pub wire_hist: Histogram<u64>,
    /// First arrivals received during the measured period.
    pub delivered_in_window: u64,
    /// 91 answers.
    pub ack_resps: u64,
    /// ACKs sent (one per push, including redeliveries).
    pub acks_sent: u64,
    /// ACKs whose socket was lost before their 91 came.
    pub acks_lost: u64,
    /// Pushes tagged for another pair (misrouted) or not tagged at all.
    pub misrouted: u64,
    /// Pushes from an earlier run (a backlog left on reused accounts).
    pub stale: u64,
    /// Notices (presence, typing, read receipts, group events): ignored.
    pub notices: u64,
    /// With [`RecvSpec::keep_latencies`]: the latency of each message's
    /// first arrival (intended send → receive, µs), indexed by sequence
    /// number − 1; `None` for messages that have not arrived. The two
    /// histograms then stay empty (and small: a full-range histogram is
    /// ~180 KiB, too much for each of 10,000 fan-out members).
    pub latencies_us: Vec<Option<u64>>,
    /// Type 0 errors by code.
    pub errors: Tally,
    /// Unexpected events by kind.
    pub problems: Tally,
    /// Times the socket closed or failed before the end of the run.
    pub sockets_lost: u64,
    /// Each loss and how it was redialed (`chat --reconnect`).
    pub outages: Vec<Outage>,
}

impl RecvOut {
    /// An empty result for a recipient expecting about `expected` messages
    /// that keeps its latencies in histograms or, with `keep_latencies`, in
    /// [`latencies_us`](Self::latencies_us).
    pub fn new(expected: usize, keep_latencies: bool) -> RecvOut {
        let hist = || {
            if keep_latencies {
                Histogram::new(1).expect("valid histogram")
            } else {
                new_histogram()
            }
        };
        RecvOut {
            log: RecvLog::with_capacity(expected),
            latency_hist: hist(),
            wire_hist: hist(),
            delivered_in_window: 0,
            ack_resps: 0,
            acks_sent: 0,
            acks_lost: 0,
            misrouted: 0,
            stale: 0,
            notices: 0,
            latencies_us: Vec::new(),
            errors: Tally::new(),
            problems: Tally::new(),
            sockets_lost: 0,
            outages: Vec::new(),
        }
    }
}

/// What to do about one frame a recipient got.
#[derive(Debug, PartialEq)]
pub(super) enum PushOutcome {
    /// Send this ACK; `first` is our message number when this push was its
    /// first arrival (otherwise a redelivery, duplicate or foreign push).
    Ack { ack: String, first: Option<u64> },
    /// Not a push.
    Nothing,
}

/// Accounts for one frame received by a recipient; `now_us` reads the run's
/// clock (only for frames that need it).
pub(super) fn on_push(
    out: &mut RecvOut,
    text: &str,
    pair: u32,
    spec: &RecvSpec,
    now_us: impl FnOnce() -> u64,
) -> PushOutcome {
    match wire::fast_type(text) {
        Some(ft::ACK_RESP) => {
            out.ack_resps += 1;
            return PushOutcome::Nothing;
        }
        Some(ft::PONG) => return PushOutcome::Nothing,
        _ => {}
    }
    let now_us = now_us();
    let Ok(f) = Lite::parse(text) else {
        report::tally(&mut out.problems, "unparsable frame", 1);
        return PushOutcome::Nothing;
    };
    match f.ty {
        ft::CHAT => {}
        ft::ACK_RESP => {
            out.ack_resps += 1;
            return PushOutcome::Nothing;
        }
        ft::ERROR => {
            report::tally(&mut out.errors, f.code.as_deref().unwrap_or("?"), 1);
            return PushOutcome::Nothing;
        }
        ft::PONG => return PushOutcome::Nothing,
        t if wire::is_notice(t) => {
            out.notices += 1;
            return PushOutcome::Nothing;
        }
        other => {
            report::tally(&mut out.problems, &format!("recipient got type {other}"), 1);
            return PushOutcome::Nothing;
        }
    }
    let Some(msg_id) = f.msg_id.as_deref() else {
        report::tally(&mut out.problems, "push without msgId", 1);
        return PushOutcome::Nothing;
    };
    let ack = wire::ack(msg_id);
    let id = uuid::Uuid::try_parse(msg_id)
        .map(|u| u.as_u128())
        .unwrap_or(0);
    let tag = match f
        .client_msg_id
        .as_deref()
        .map(|c| MsgTag::decode(c, &spec.run_id))
    {
        Some(Ok(t)) if t.pair == pair && id != 0 => t,
        Some(Err(NotOurs::OtherRun)) => {
            out.stale += 1;
            return PushOutcome::Ack { ack, first: None };
        }
        _ => {
            out.misrouted += 1;
            return PushOutcome::Ack { ack, first: None };
        }
    };
    match out.log.record_at(tag.seq, id, f.seq) {
        Arrival::First { .. } => {
            let clock = &spec.clock;
            if spec.keep_latencies {
                track::put(
                    &mut out.latencies_us,
                    tag.seq,
                    now_us.saturating_sub(tag.t_us),
                );
            } else if clock.measured(tag.t_us) {
                record_us(&mut out.latency_hist, now_us.saturating_sub(tag.t_us));
                record_us(
                    &mut out.wire_hist,
                    now_us.saturating_sub(tag.t_us + tag.lag_us),
                );
            }
            if clock.measured(now_us) {
                out.delivered_in_window += 1;
            }
            PushOutcome::Ack {
                ack,
                first: Some(tag.seq),
            }
        }
        Arrival::Redelivery | Arrival::Duplicate => PushOutcome::Ack { ack, first: None },
        Arrival::Invalid => {
            out.misrouted += 1;
            PushOutcome::Ack { ack, first: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::Clock;
    use std::time::Instant;

    fn clock() -> RecvSpec {
        RecvSpec {
            run_id: "r".into(),
            clock: Clock::unbounded(Instant::now()),
            keep_latencies: false,
        }
    }

    /// A push of `tag` whose relay seq is the tag's own sequence number
    /// (1 for a foreign tag).
    fn push(tag: &str, id: uuid::Uuid) -> String {
        let seq = tag.split('.').nth(2).and_then(|s| s.parse().ok());
        push_at(tag, id, seq.unwrap_or(1))
    }

    /// A push of `tag` with relay seq `seq`.
    fn push_at(tag: &str, id: uuid::Uuid, seq: u64) -> String {
        shared::ServerFrame::Chat(shared::ChatMessage {
            msg_id: id,
            from_id: shared::UserId(1),
            from_name: "a".into(),
            to: shared::Target::User(shared::UserId(2)),
            content: shared::Content::text("x"),
            ts: 0,
            seq,
            client_msg_id: Some(tag.into()),
        })
        .encode()
    }

    /// Feeds `text` to `out` at `now_us` on the run clock.
    fn feed(out: &mut RecvOut, text: &str, spec: &RecvSpec, now_us: u64) -> PushOutcome {
        on_push(out, text, 0, spec, || now_us)
    }

    fn again(ack: String) -> PushOutcome {
        PushOutcome::Ack { ack, first: None }
    }

    #[test]
    fn pushes_are_acked_and_classified() {
        let mut out = RecvOut::new(0, false);
        let c = clock();
        let id1 = uuid::Uuid::now_v7();
        let id2 = uuid::Uuid::now_v7();
        let (ack1, ack2) = (wire::ack(&id1.to_string()), wire::ack(&id2.to_string()));
        let p1 = push("lgr.0.1.0", id1);
        assert_eq!(
            feed(&mut out, &p1, &c, 5),
            PushOutcome::Ack {
                ack: ack1.clone(),
                first: Some(1)
            }
        );
        // A redelivery, a duplicate, another pair's, a foreign and an
        // earlier run's push: all acked, none a first arrival.
        assert_eq!(feed(&mut out, &p1, &c, 6), again(ack1));
        for tag in ["lgr.0.1.0", "lgr.5.1.0", "a-1", "lgold.0.1.0"] {
            assert_eq!(feed(&mut out, &push(tag, id2), &c, 7), again(ack2.clone()));
        }
        for not_a_push in [
            r#"{"type":"91","msgId":"x"}"#,
            r#"{"type":"0","code":"rate_limited","message":"m"}"#,
        ] {
            assert_eq!(feed(&mut out, not_a_push, &c, 8), PushOutcome::Nothing);
        }
        assert_eq!(
            (
                out.log.unique,
                out.log.redeliveries,
                out.log.duplicates,
                out.misrouted,
                out.stale,
                out.ack_resps
            ),
            (1, 1, 1, 2, 1, 1)
        );
        assert_eq!(out.errors.get("rate_limited"), Some(&1));
        assert_eq!(out.latency_hist.len(), 1);
        assert_eq!(out.latency_hist.max(), 5);
        assert_eq!(out.delivered_in_window, 1);
    }

    #[test]
    fn notices_are_ignored_and_latencies_kept_per_message() {
        let mut out = RecvOut::new(0, true);
        let spec = RecvSpec {
            keep_latencies: true,
            ..clock()
        };
        for notice in [
            r#"{"type":"50","userId":"1","username":"a","online":true,"ts":1}"#,
            r#"{"type":"100","groupId":"3","event":"member_joined","userId":"2","username":"b","name":"g"}"#,
            r#"{"type":"71","byId":"2","groupId":"3","seq":1,"ts":1}"#,
            r#"{"type":"71","byId":"2","groupId":"3","prevSeq":1,"seq":4,"ts":1}"#,
        ] {
            assert_eq!(feed(&mut out, notice, &spec, 1), PushOutcome::Nothing);
        }
        assert_eq!(out.notices, 4);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        // Message 3 arrives first (sent at 100 µs, received at 400), then
        // 1 (sent at 0, received at 500); 2 never does.
        let id1 = uuid::Uuid::now_v7();
        let p3 = push("lgr.0.3.100", uuid::Uuid::now_v7());
        let p1 = push("lgr.0.1.0", id1);
        assert!(matches!(
            feed(&mut out, &p3, &spec, 400),
            PushOutcome::Ack { first: Some(3), .. }
        ));
        assert!(matches!(
            feed(&mut out, &p1, &spec, 500),
            PushOutcome::Ack { first: Some(1), .. }
        ));
        assert_eq!(out.latencies_us, [Some(500), None, Some(300)]);
        // A later redelivery does not move the first arrival's latency.
        feed(&mut out, &p1, &spec, 9_000);
        assert_eq!(out.latencies_us, [Some(500), None, Some(300)]);
        assert_eq!(out.log.redeliveries, 1);
        assert_eq!(out.latency_hist.len(), 0, "kept, not in the histogram");
        // Without the flag the histogram has it and nothing is kept.
        let mut plain = RecvOut::new(0, false);
        feed(&mut plain, &p1, &clock(), 500);
        assert!(plain.latencies_us.is_empty());
        assert_eq!(plain.latency_hist.len(), 1);
    }

    #[test]
    fn order_is_judged_by_the_relays_seq() {
        let mut out = RecvOut::new(0, false);
        let c = clock();
        // The generator's message 3 was resent after a reconnection and
        // stored after message 4: the relay pushes 4 (seq 3) then 3 (seq 4).
        for (tag, seq) in [("lgr.0.1.0", 1), ("lgr.0.2.0", 2), ("lgr.0.4.0", 3)] {
            feed(&mut out, &push_at(tag, uuid::Uuid::now_v7(), seq), &c, 1);
        }
        let p3 = push_at("lgr.0.3.0", uuid::Uuid::now_v7(), 4);
        feed(&mut out, &p3, &c, 2);
        assert_eq!((out.log.unique, out.log.out_of_order), (4, 0));
        // After a reconnection, the relay pushes again what was not acked:
        // redeliveries, never out of order.
        feed(&mut out, &p3, &c, 3);
        assert_eq!((out.log.redeliveries, out.log.out_of_order), (1, 0));
        // A first arrival below the highest seq is.
        feed(
            &mut out,
            &push_at("lgr.0.5.0", uuid::Uuid::now_v7(), 2),
            &c,
            4,
        );
        assert_eq!(out.log.out_of_order, 1);
    }

    #[test]
    fn warmup_arrivals_are_checked_but_not_measured() {
        let mut out = RecvOut::new(0, false);
        let c = RecvSpec {
            clock: Clock {
                t0: Instant::now(),
                warmup_us: 5_000_000,
                end_us: 10_000_000,
            },
            ..clock()
        };
        // Sent in the warm-up, received in the measured period: delivered in
        // the window, not in the latency histogram.
        feed(
            &mut out,
            &push("lgr.0.1.100", uuid::Uuid::now_v7()),
            &c,
            6_000_000,
        );
        // Sent in the measured period, received after it: measured, but not
        // delivered in the window.
        let p2 = push("lgr.0.2.5000000", uuid::Uuid::now_v7());
        feed(&mut out, &p2, &c, 10_000_001);
        assert_eq!(out.log.unique, 2);
        assert_eq!(out.latency_hist.len(), 1);
        let h = &out.latency_hist;
        assert!(h.equivalent(h.max(), 5_000_001), "{}", h.max());
        assert_eq!(out.delivered_in_window, 1);
    }
}
