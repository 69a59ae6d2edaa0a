//! The speaking side of a participant: audio frames on an absolute
//! schedule. Frame `seq` (1, 2, …) of speaker `g` (of `G` in the run) is
//! due at `g × interval / G + (seq − 1) × interval` on the run's clock: the
//! speakers are spread evenly over one interval, and a speaker that falls
//! behind sends what is due at once, so a stall is charged to the frames
//! that should have left meanwhile (latency counts from the intended time,
//! which the payload carries).

use crate::track::Clock;
use bytes::Bytes;
use shared::audio::{self, AudioHeader, KIND_OPUS};
use shared::GroupId;

/// A speaker's schedule and what it has sent.
pub struct Speaker {
    group: GroupId,
    phase_us: u64,
    interval_us: u64,
    frame_bytes: usize,
    next_seq: u32,
    /// Frames sent.
    pub sent: u64,
    /// Actual minus intended send time of every frame, µs.
    pub lag_us: Vec<u64>,
    /// The next frame would be due after the measured period.
    pub done: bool,
}

impl Speaker {
    /// Speaker `g` of `of` in the run, in `group`, one frame of
    /// `frame_bytes` payload every `interval_us`.
    pub fn new(group: GroupId, g: usize, of: usize, interval_us: u64, frame_bytes: usize) -> Self {
        Speaker {
            group,
            phase_us: (g as u64 * interval_us) / of.max(1) as u64,
            interval_us,
            frame_bytes,
            next_seq: 1,
            sent: 0,
            lag_us: Vec::new(),
            done: false,
        }
    }

    /// When the next frame is due, µs on the run's clock.
    pub fn due_us(&self) -> u64 {
        self.phase_us + (self.next_seq as u64 - 1) * self.interval_us
    }

    /// The next frame if it is due by `now_us` (and `None` otherwise);
    /// marks the speaker done once the next frame would be due at or after
    /// the end of `clock`'s measured period.
    pub fn next_frame(&mut self, clock: &Clock, now_us: u64) -> Option<Bytes> {
        let due = self.due_us();
        if due >= clock.end_us {
            self.done = true;
            return None;
        }
        if due > now_us {
            return None;
        }
        let mut payload = Vec::with_capacity(self.frame_bytes);
        payload.extend_from_slice(&due.to_be_bytes());
        payload.resize(self.frame_bytes, 0x5a);
        let frame = audio::encode_client(
            &AudioHeader {
                kind: KIND_OPUS,
                group_id: self.group,
                seq: self.next_seq,
                ts: (due / 1000) as u32,
            },
            &payload,
        );
        self.next_seq += 1;
        self.sent += 1;
        self.lag_us.push(now_us - due);
        Some(Bytes::from(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn frames_follow_an_absolute_schedule_and_carry_their_send_time() {
        let clock = Clock {
            t0: Instant::now(),
            warmup_us: 0,
            end_us: 100_000,
        };
        // Speaker 1 of 4 every 20 ms: due at 5, 25, 45, 65, 85 ms.
        let mut s = Speaker::new(GroupId(9), 1, 4, 20_000, 100);
        assert_eq!(s.due_us(), 5_000);
        assert!(s.next_frame(&clock, 4_999).is_none());
        let f = s.next_frame(&clock, 5_100).unwrap();
        assert_eq!(f.len(), audio::CLIENT_HEADER + 100);
        let (h, payload) = audio::parse_client(&f).unwrap();
        assert_eq!((h.group_id, h.seq, h.ts), (GroupId(9), 1, 5));
        assert_eq!(&payload[..8], &5_000u64.to_be_bytes());
        // Behind by two frames: both leave at once, late.
        assert!(s.next_frame(&clock, 50_000).is_some());
        assert!(s.next_frame(&clock, 50_000).is_some());
        assert!(s.next_frame(&clock, 50_000).is_none());
        assert_eq!(s.lag_us, [100, 25_000, 5_000]);
        assert!(s.next_frame(&clock, 99_000).is_some());
        assert!(s.next_frame(&clock, 99_000).is_some());
        assert!(!s.done);
        assert!(s.next_frame(&clock, 99_000).is_none());
        assert!(s.done, "105 ms is past the end");
        assert_eq!(s.sent, 5);
    }
}
