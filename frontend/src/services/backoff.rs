//! Reconnect delays: exponential backoff with full jitter.
//!
//! Full jitter (a uniform delay between 0 and the exponential ceiling) keeps
//! a crowd of clients that lost the same relay from reconnecting in lockstep
//! when it comes back. The random source is injected so tests can pin it.

/// First ceiling, in milliseconds.
pub const BASE_MS: u32 = 500;
/// Largest ceiling, in milliseconds.
pub const CAP_MS: u32 = 30_000;

/// Reconnect delay generator; [`Backoff::reset`] after a successful login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    base_ms: u32,
    cap_ms: u32,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BASE_MS, CAP_MS)
    }
}

impl Backoff {
    /// A backoff with the given first and largest ceilings.
    pub fn new(base_ms: u32, cap_ms: u32) -> Self {
        Backoff {
            base_ms,
            cap_ms,
            attempt: 0,
        }
    }

    /// Failed attempts since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The ceiling for the next delay: `min(cap, base * 2^attempt)`.
    pub fn ceiling_ms(&self) -> u32 {
        let factor = 1u64 << self.attempt.min(31);
        (u64::from(self.base_ms) * factor).min(u64::from(self.cap_ms)) as u32
    }

    /// The next delay: uniform in `[0, ceiling]`, drawn from `random`
    /// (a source of numbers in `[0, 1)`, like `Math.random`). Out-of-range
    /// draws are clamped, so a bad source cannot exceed the cap.
    pub fn next_delay_ms(&mut self, random: &mut dyn FnMut() -> f64) -> u32 {
        let ceiling = self.ceiling_ms();
        self.attempt = self.attempt.saturating_add(1);
        let r = random();
        let r = if r.is_finite() {
            r.clamp(0.0, 1.0)
        } else {
            0.0
        };
        (r * f64::from(ceiling)).round() as u32
    }

    /// Back to the first ceiling (after a successful login).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_from_base_up_to_cap() {
        let mut b = Backoff::default();
        let mut ceilings = vec![];
        for _ in 0..10 {
            ceilings.push(b.ceiling_ms());
            b.next_delay_ms(&mut || 0.5);
        }
        assert_eq!(
            ceilings,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
        );
        // Far past the point where 2^attempt would overflow.
        for _ in 0..100 {
            b.next_delay_ms(&mut || 0.5);
        }
        assert_eq!(b.ceiling_ms(), CAP_MS);
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        let mut b = Backoff::default();
        assert_eq!(b.next_delay_ms(&mut || 0.0), 0);
        let mut b = Backoff::default();
        assert_eq!(b.next_delay_ms(&mut || 0.999_999), 500);
        let mut b = Backoff::default();
        b.next_delay_ms(&mut || 0.0);
        b.next_delay_ms(&mut || 0.0);
        // Third attempt: ceiling 2000, draw 0.25.
        assert_eq!(b.next_delay_ms(&mut || 0.25), 500);
    }

    #[test]
    fn delays_stay_within_bounds_for_any_draw() {
        // A deterministic pseudo-random sequence, including garbage draws.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rng = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 50 {
                0 => f64::NAN,
                1 => 7.0,
                2 => -3.0,
                _ => (x >> 11) as f64 / (1u64 << 53) as f64,
            }
        };
        let mut b = Backoff::default();
        let mut seen_nonzero_at_cap = false;
        for _ in 0..500 {
            let ceiling = b.ceiling_ms();
            let d = b.next_delay_ms(&mut rng);
            assert!(d <= ceiling && d <= CAP_MS, "{d} > {ceiling}");
            seen_nonzero_at_cap |= ceiling == CAP_MS && d > BASE_MS;
        }
        assert!(seen_nonzero_at_cap);
    }

    #[test]
    fn reset_returns_to_base() {
        let mut b = Backoff::default();
        for _ in 0..6 {
            b.next_delay_ms(&mut || 1.0);
        }
        assert_eq!(b.attempt(), 6);
        assert_eq!(b.ceiling_ms(), CAP_MS);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay_ms(&mut || 1.0), BASE_MS);
    }
}
