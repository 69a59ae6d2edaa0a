//! The playback schedule of one speaker: each decoded 20 ms chunk starts
//! where the previous one ends, behind a jitter buffer that absorbs the
//! network's unevenness. Pure (times in seconds on the `AudioContext`
//! clock), so it is tested natively.

/// The buffer a speaker's playback starts (and restarts) with: 60 ms,
/// inside the 40–80 ms that keeps a conversation natural while absorbing
/// the usual jitter of a WebSocket over the internet.
pub const TARGET_S: f64 = 0.060;
/// A chunk due this close to now is late (an underrun): the schedule
/// restarts [`TARGET_S`] ahead instead of playing it clipped.
pub const LATE_S: f64 = 0.005;
/// Past this much queued audio (a burst after a stall), chunks are
/// dropped until the queue shrinks, so latency does not stay high.
pub const MAX_AHEAD_S: f64 = 0.200;

/// One speaker's schedule.
#[derive(Debug, Default)]
pub struct Jitter {
    next: Option<f64>,
    /// Restarts after the queue ran dry.
    pub underruns: u32,
    /// Chunks dropped because too much was queued.
    pub dropped: u32,
}

impl Jitter {
    /// When to start a chunk of `duration` seconds that is ready at `now`;
    /// None: drop it.
    pub fn schedule(&mut self, now: f64, duration: f64) -> Option<f64> {
        let start = match self.next {
            Some(t) if t >= now + LATE_S => t,
            Some(_) => {
                self.underruns += 1;
                now + TARGET_S
            }
            None => now + TARGET_S,
        };
        if start - now > MAX_AHEAD_S + 1e-9 {
            self.dropped += 1;
            return None;
        }
        self.next = Some(start + duration);
        Some(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: f64 = 0.020;

    #[test]
    fn chunks_play_back_to_back_behind_the_target_buffer() {
        let mut j = Jitter::default();
        assert_eq!(j.schedule(1.0, D), Some(1.0 + TARGET_S));
        // Arriving 20 ms apart: each starts where the last ended.
        let s = j.schedule(1.02, D).unwrap();
        assert!((s - (1.0 + TARGET_S + D)).abs() < 1e-9);
        // Early arrivals (a burst) queue up behind.
        let s2 = j.schedule(1.021, D).unwrap();
        assert!((s2 - (s + D)).abs() < 1e-9);
        assert_eq!(j.underruns, 0);
    }

    #[test]
    fn an_underrun_restarts_the_buffer() {
        let mut j = Jitter::default();
        j.schedule(1.0, D);
        // Nothing for half a second: the queue ran dry.
        assert_eq!(j.schedule(1.5, D), Some(1.5 + TARGET_S));
        assert_eq!(j.underruns, 1);
    }

    #[test]
    fn a_burst_beyond_the_cap_is_dropped_to_stay_live() {
        let mut j = Jitter::default();
        let mut played = 0;
        for _ in 0..20 {
            if j.schedule(1.0, D).is_some() {
                played += 1;
            }
        }
        // 60 ms + 7 × 20 ms = 200 ms: the rest of the burst is dropped.
        assert_eq!(played, 8);
        assert_eq!(j.dropped, 12);
        // Once time catches up, chunks play again.
        assert!(j.schedule(1.1, D).is_some());
    }
}
