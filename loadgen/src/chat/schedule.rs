//! When a chat sender's messages are due: closed loop (as soon as the
//! window allows) or open loop (`--rate`: on a fixed schedule, so a relay
//! stall is charged to the messages that should have left meanwhile
//! instead of silently not sending them).

/// When a sender's messages are due.
#[derive(Clone, Copy, Debug)]
pub(super) enum Schedule {
    /// As soon as the window allows.
    Closed,
    /// Message `seq` is due at `phase_us + (seq-1) * interval_us`.
    Open {
        /// Offset of this sender's first message (senders are spread evenly
        /// within one interval so the aggregate rate is smooth).
        phase_us: f64,
        /// Time between two of this sender's messages.
        interval_us: f64,
    },
}

impl Schedule {
    /// The schedule of sender `pair` of `pairs` for a total `rate` msg/s.
    pub(super) fn for_sender(pair: usize, pairs: usize, rate: f64) -> Schedule {
        if rate <= 0.0 {
            return Schedule::Closed;
        }
        Schedule::Open {
            phase_us: pair as f64 * 1e6 / rate,
            interval_us: pairs as f64 * 1e6 / rate,
        }
    }

    /// Intended send time of message `seq`, µs on the run clock; in closed
    /// loop, `now_us` (it is sent now).
    #[inline]
    pub(super) fn due_us(&self, seq: u64, now_us: u64) -> u64 {
        match *self {
            Schedule::Closed => now_us,
            Schedule::Open {
                phase_us,
                interval_us,
            } => (phase_us + (seq - 1) as f64 * interval_us) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_schedule_spreads_senders_evenly() {
        // 4 senders at 1,000 msg/s total: each every 4 ms, offset by 1 ms.
        let s0 = Schedule::for_sender(0, 4, 1000.0);
        let s1 = Schedule::for_sender(1, 4, 1000.0);
        assert_eq!(s0.due_us(1, 999), 0);
        assert_eq!(s0.due_us(2, 999), 4000);
        assert_eq!(s1.due_us(1, 999), 1000);
        assert_eq!(s1.due_us(3, 999), 9000);
        assert!(matches!(Schedule::for_sender(0, 4, 0.0), Schedule::Closed));
        assert_eq!(Schedule::Closed.due_us(5, 1234), 1234);
    }
}
