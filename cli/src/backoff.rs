//! Reconnect delays: exponential backoff with full jitter, as the web app
//! (`frontend/src/services/backoff.rs`): a delay uniform in
//! `[0, min(cap, base * 2^attempt)]`, reset after a successful login.

use std::time::Duration;

/// First ceiling.
pub const BASE_MS: u64 = 500;
/// Largest ceiling.
pub const CAP_MS: u64 = 30_000;

/// Reconnect delay generator.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The ceiling of the next delay.
    pub fn ceiling_ms(&self) -> u64 {
        (BASE_MS << self.attempt.min(20)).min(CAP_MS)
    }

    /// The next delay, with `random` in `[0, 1)` (clamped).
    pub fn next_delay_with(&mut self, random: f64) -> Duration {
        let ceiling = self.ceiling_ms();
        self.attempt = self.attempt.saturating_add(1);
        let r = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Duration::from_millis((r * ceiling as f64).round() as u64)
    }

    /// The next delay, randomly drawn.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(rand::random::<f64>())
    }

    /// After a successful login.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::default();
        let full: Vec<u64> = (0..8)
            .map(|_| b.next_delay_with(1.0).as_millis() as u64)
            .collect();
        assert_eq!(full, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(b.next_delay_with(0.5), Duration::from_millis(15_000));
        assert_eq!(b.next_delay_with(f64::NAN), Duration::ZERO);
        b.reset();
        assert_eq!(b.next_delay_with(7.0), Duration::from_millis(500));
    }
}
