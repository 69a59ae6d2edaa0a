//! Application heartbeat: PING (40) every interval; a socket whose PONG (41)
//! does not come back within the timeout is dead, even if the browser still
//! reports it open (a half-open TCP connection can look alive for minutes).

use shared::limits::HEARTBEAT_INTERVAL_MS;

/// How long to wait for a PONG before giving up on the socket.
pub const PONG_TIMEOUT_MS: i64 = 5_000;

/// How long to wait for LOGIN_RESP after the socket opened (or for the socket
/// to open at all) before starting over.
pub const LOGIN_TIMEOUT_MS: i64 = 10_000;

/// What the connection should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    /// Nothing.
    Idle,
    /// Send a PING.
    SendPing,
    /// No PONG in time: drop the socket and reconnect.
    Dead,
}

/// Heartbeat clock for one logged-in socket. Times are milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    interval_ms: i64,
    timeout_ms: i64,
    next_ping_at: i64,
    awaiting_since: Option<i64>,
}

impl Heartbeat {
    /// Starts the clock at login: first PING one interval from `now`.
    pub fn new(now: i64) -> Self {
        Heartbeat::with(now, i64::from(HEARTBEAT_INTERVAL_MS), PONG_TIMEOUT_MS)
    }

    /// A heartbeat with explicit timings.
    pub fn with(now: i64, interval_ms: i64, timeout_ms: i64) -> Self {
        Heartbeat {
            interval_ms,
            timeout_ms,
            next_ping_at: now + interval_ms,
            awaiting_since: None,
        }
    }

    /// Called often (every second): decides whether to ping or give up.
    pub fn on_tick(&mut self, now: i64) -> Beat {
        if let Some(sent) = self.awaiting_since {
            if now - sent >= self.timeout_ms {
                return Beat::Dead;
            }
        }
        if now >= self.next_ping_at {
            self.next_ping_at = now + self.interval_ms;
            self.awaiting_since.get_or_insert(now);
            return Beat::SendPing;
        }
        Beat::Idle
    }

    /// A PONG arrived.
    pub fn on_pong(&mut self) {
        self.awaiting_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_every_interval_while_pongs_come_back() {
        let mut h = Heartbeat::new(0);
        let mut pings = vec![];
        for t in (0..=35_000).step_by(1_000) {
            match h.on_tick(t) {
                Beat::SendPing => {
                    pings.push(t);
                    h.on_pong();
                }
                Beat::Dead => panic!("dead at {t}"),
                Beat::Idle => {}
            }
        }
        assert_eq!(pings, [10_000, 20_000, 30_000]);
    }

    #[test]
    fn missing_pong_is_dead_after_timeout() {
        let mut h = Heartbeat::new(0);
        assert_eq!(h.on_tick(10_000), Beat::SendPing);
        assert_eq!(h.on_tick(14_000), Beat::Idle);
        assert_eq!(h.on_tick(14_999), Beat::Idle);
        assert_eq!(h.on_tick(15_000), Beat::Dead);
    }

    #[test]
    fn late_pong_before_timeout_keeps_it_alive() {
        let mut h = Heartbeat::new(0);
        assert_eq!(h.on_tick(10_000), Beat::SendPing);
        assert_eq!(h.on_tick(14_000), Beat::Idle);
        h.on_pong();
        assert_eq!(h.on_tick(16_000), Beat::Idle);
        assert_eq!(h.on_tick(20_000), Beat::SendPing);
    }

    #[test]
    fn a_stall_longer_than_the_timeout_is_dead_even_across_intervals() {
        // The tab was throttled: the next tick comes long after the ping.
        let mut h = Heartbeat::new(0);
        assert_eq!(h.on_tick(10_000), Beat::SendPing);
        assert_eq!(h.on_tick(40_000), Beat::Dead);
    }
}
