//! A token bucket: per connection (WebSocket frames, audio), and per
//! user for `POST /api/messages` (kept in a bounded table,
//! `throttle::Throttle::api_send`).

use std::time::{Duration, Instant};

/// The longest wait a bucket reports (a zero rate never refills).
const MAX_WAIT: f32 = 86_400.0;

/// Allows `rate` events per second on average, in bursts of up to `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f32,
    burst: f32,
    tokens: f32,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            rate: rate as f32,
            burst: burst.max(1.0) as f32,
            tokens: burst.max(1.0) as f32,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.try_take_n(1.0, now)
    }

    /// Takes one token, or says how long until there is one.
    pub fn take_or_wait(&mut self, now: Instant) -> Result<(), Duration> {
        if self.try_take(now) {
            Ok(())
        } else {
            Err(self.seconds_until(1.0))
        }
    }

    /// When the bucket is full again, as good as a new one (and can be
    /// forgotten).
    pub fn full_at(&self) -> Instant {
        self.last + self.seconds_until(self.burst)
    }

    /// How long until the bucket holds `n` tokens, from its last use.
    fn seconds_until(&self, n: f32) -> Duration {
        let missing = (n - self.tokens).max(0.0);
        let secs = if missing == 0.0 {
            0.0
        } else if self.rate > 0.0 {
            (missing / self.rate).min(MAX_WAIT)
        } else {
            MAX_WAIT
        };
        Duration::from_secs_f32(secs)
    }

    /// Takes `n` tokens if there are that many.
    pub fn try_take_n(&mut self, n: f32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 5.0, t0);
        assert_eq!((0..8).filter(|_| b.try_take(t0)).count(), 5);
        // 0.3 s at 10/s refills 3 tokens
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!((0..8).filter(|_| b.try_take(t1)).count(), 3);
        // never more than the burst, however long it rested
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..8).filter(|_| b.try_take(t2)).count(), 5);
    }

    #[test]
    fn says_how_long_to_wait_and_when_it_is_full() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, 3.0, t0);
        assert_eq!(b.full_at(), t0);
        for _ in 0..3 {
            assert!(b.take_or_wait(t0).is_ok());
        }
        let wait = b.take_or_wait(t0).unwrap_err();
        assert!((490..=510).contains(&wait.as_millis()), "{wait:?}");
        let full = b.full_at().duration_since(t0).as_millis();
        assert!((1490..=1510).contains(&full), "{full}");
        let mut never = TokenBucket::new(0.0, 1.0, t0);
        assert!(never.take_or_wait(t0).is_ok());
        assert!(never.take_or_wait(t0).unwrap_err() >= Duration::from_secs(3600));
    }

    #[test]
    fn takes_many_tokens_at_once_for_byte_caps() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 1000.0, t0);
        assert!(b.try_take_n(600.0, t0));
        assert!(!b.try_take_n(600.0, t0), "only 400 left");
        assert!(b.try_take_n(400.0, t0));
        // 0.7 s at 1000/s refills 700 (capped at the burst)
        assert!(b.try_take_n(600.0, t0 + Duration::from_millis(700)));
    }
}
