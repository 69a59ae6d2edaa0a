//! Surviving the loss of a socket (`chat --reconnect`), for a relay killed
//! under load: a session whose socket closes or fails dials again, to the
//! next relay of `--url` each attempt (round robin; the same one when
//! there is one), with a short, growing, per-session jittered pause
//! between attempts, logs in with its token, and carries on; it gives up
//! after `--reconnect-deadline`.
//!
//! What a session does once back is its own affair (a chat sender resends
//! what has no 81 yet, a recipient just reads: the relay pushes whatever
//! was not acked). This module dials ([`Redial`]), keeps each loss of a
//! socket as an [`Outage`], and sums them into the [`Recovery`] figures a
//! report carries.

use crate::client::{Targets, Ws};
use crate::latency::LatencySummary;
use crate::report::{round_to, Findings, Summary};
use crate::track::Clock;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The pause after the first failed attempt; it doubles up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(500);
/// The longest one attempt (connect and LOGIN) may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// A session reading nothing at all (not even the PONG of its PING) for
/// this long counts its socket as lost: a relay that died without closing
/// its sockets (a host gone) would otherwise keep it waiting forever.
pub const SILENCE: Duration = Duration::from_secs(25);

/// One loss of a session's socket, on the run's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outage {
    /// When the socket was found lost, µs.
    pub lost_us: u64,
    /// When the session was logged in again, µs; `None` if it never was.
    pub back_us: Option<u64>,
    /// Connection attempts made.
    pub attempts: u32,
    /// The deadline passed (otherwise, without `back_us`, the run ended
    /// first).
    pub gave_up: bool,
}

/// How a [`Redial::redial`] ended.
pub enum Redialed {
    /// Logged in again on a new socket (boxed: the socket is large, the
    /// other outcomes empty).
    Back(Box<Ws>),
    /// `--reconnect-deadline` passed.
    GaveUp,
    /// The run told the session to stop.
    Stopped,
}

/// How one session gets a new socket, and what its losses were.
pub struct Redial {
    targets: Arc<Targets>,
    /// The node of the current (or last) socket.
    node: usize,
    /// The session's number (its source address with `--source-ips`).
    index: usize,
    token: Arc<str>,
    deadline: Duration,
    clock: Clock,
    /// Sessions of the run without a socket right now.
    down: Arc<AtomicU64>,
    /// This session's losses, in order.
    pub outages: Vec<Outage>,
    /// Why the last failed attempt failed.
    pub last_error: Option<String>,
}

impl Redial {
    /// For session `index`, logged in with `token` on node `node` of
    /// `targets`; it gives up after `deadline` and counts itself in `down`
    /// while it has no socket.
    pub fn new(
        targets: Arc<Targets>,
        node: usize,
        index: usize,
        token: Arc<str>,
        deadline: Duration,
        clock: Clock,
        down: Arc<AtomicU64>,
    ) -> Redial {
        Redial {
            targets,
            node,
            index,
            token,
            deadline,
            clock,
            down,
            outages: Vec::new(),
            last_error: None,
        }
    }

    /// The node of the current (or last) socket.
    pub fn node(&self) -> usize {
        self.node
    }

    /// The socket was just lost: dials the next relays in turn until a
    /// session is logged in, the deadline passes or `stop` says so.
    pub async fn redial(&mut self, stop: &mut watch::Receiver<bool>) -> Redialed {
        let started = Instant::now();
        let mut outage = Outage {
            lost_us: self.clock.now_us(),
            ..Outage::default()
        };
        self.down.fetch_add(1, Relaxed);
        let mut pause = FIRST_PAUSE;
        let result = loop {
            if *stop.borrow() {
                break Redialed::Stopped;
            }
            let Some(left) = self.deadline.checked_sub(started.elapsed()) else {
                break Redialed::GaveUp;
            };
            self.node = (self.node + 1) % self.targets.len();
            outage.attempts += 1;
            let within = left.min(ATTEMPT_TIMEOUT);
            let target = self.targets.node(self.node);
            let attempt = target.open_session_within(self.index, &self.token, within, within);
            tokio::select! {
                biased;
                _ = stop.changed() => break Redialed::Stopped,
                r = attempt => match r {
                    Ok((ws, _)) => break Redialed::Back(Box::new(ws)),
                    Err(e) => self.last_error = Some(e.to_string()),
                },
            }
            let Some(left) = self.deadline.checked_sub(started.elapsed()) else {
                break Redialed::GaveUp;
            };
            let wait = jittered(pause, self.index, outage.attempts).min(left);
            tokio::select! {
                biased;
                _ = stop.changed() => break Redialed::Stopped,
                _ = tokio::time::sleep(wait) => {}
            }
            pause = (pause * 2).min(MAX_PAUSE);
        };
        match result {
            Redialed::Back(_) => outage.back_us = Some(self.clock.now_us()),
            Redialed::GaveUp => outage.gave_up = true,
            Redialed::Stopped => {}
        }
        self.down.fetch_sub(1, Relaxed);
        self.outages.push(outage);
        result
    }
}

/// `pause` scaled by a factor in [0.5, 1.5) that depends on the session
/// and the attempt, so sessions that lost their sockets together do not
/// dial again in lockstep.
fn jittered(pause: Duration, index: usize, attempt: u32) -> Duration {
    let h = (index as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(attempt).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let frac = (h >> 11) as f64 / (1u64 << 53) as f64;
    pause.mul_f64(0.5 + frac)
}

/// The reconnection figures of a run (flattened into its report).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// Sockets that closed or failed before the end of the run (every
    /// session, every time).
    pub sockets_lost: u64,
    /// Losses after which the session logged in again.
    pub reconnected: u64,
    /// Losses after which the session gave up (`--reconnect-deadline`).
    pub reconnect_gave_up: u64,
    /// Losses the session was still redialing when the run ended.
    pub reconnect_unfinished: u64,
    /// Connection attempts made while reconnecting.
    pub reconnect_attempts: u64,
    /// From the first loss to the last session logged in again, seconds;
    /// `null` without a loss, or when a session did not come back.
    pub recovery_secs: Option<f64>,
    /// Loss → logged in again, per reconnection.
    pub reconnect_time: LatencySummary,
}

impl Recovery {
    /// The figures of `sockets_lost` losses, of which `outages` were
    /// redialed (none without `--reconnect`).
    pub fn of<'a>(sockets_lost: u64, outages: impl IntoIterator<Item = &'a Outage>) -> Recovery {
        let mut r = Recovery {
            sockets_lost,
            ..Recovery::default()
        };
        let mut times = Vec::new();
        let (mut first_loss, mut last_back) = (u64::MAX, 0);
        let mut all_back = true;
        for o in outages {
            r.reconnect_attempts += u64::from(o.attempts);
            first_loss = first_loss.min(o.lost_us);
            match o.back_us {
                Some(b) => {
                    r.reconnected += 1;
                    times.push(b.saturating_sub(o.lost_us));
                    last_back = last_back.max(b);
                }
                None if o.gave_up => r.reconnect_gave_up += 1,
                None => r.reconnect_unfinished += 1,
            }
            all_back &= o.back_us.is_some();
        }
        r.reconnect_time = LatencySummary::of_values(&mut times);
        if all_back && !times.is_empty() {
            r.recovery_secs = Some(round_to((last_back - first_loss) as f64 / 1e6, 3));
        }
        r
    }

    /// The summary lines (only when a socket was lost).
    pub fn lines(&self, s: &mut Summary) {
        if self.sockets_lost == 0 {
            return;
        }
        s.line(
            "sockets lost / reconnected",
            format!(
                "{} / {} (gave up {}, unfinished {}; {} attempts)",
                self.sockets_lost,
                self.reconnected,
                self.reconnect_gave_up,
                self.reconnect_unfinished,
                self.reconnect_attempts
            ),
        );
        if self.reconnected > 0 {
            s.line("reconnect time", self.reconnect_time.human());
        }
        s.line(
            "recovery (first loss → last back)",
            match self.recovery_secs {
                Some(secs) => format!("{secs:.3} s"),
                None => "n/a".into(),
            },
        );
    }

    /// Failures, with `--reconnect`: sessions that did not come back.
    pub fn failures(&self, f: &mut Findings) {
        f.count(
            self.reconnect_gave_up,
            "sessions did not reconnect within --reconnect-deadline",
        );
        f.count(
            self.reconnect_unfinished,
            "sessions were still reconnecting when the run ended",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage(lost_us: u64, back_us: Option<u64>, attempts: u32, gave_up: bool) -> Outage {
        Outage {
            lost_us,
            back_us,
            attempts,
            gave_up,
        }
    }

    #[test]
    fn recovery_spans_first_loss_to_last_return() {
        let o = [
            outage(8_000_000, Some(9_500_000), 4, false),
            outage(8_001_000, Some(10_201_000), 6, false),
            outage(8_002_000, Some(8_502_000), 1, false),
        ];
        let r = Recovery::of(3, &o);
        assert_eq!(
            (r.sockets_lost, r.reconnected, r.reconnect_attempts),
            (3, 3, 11)
        );
        assert_eq!(r.recovery_secs, Some(2.201));
        assert_eq!(r.reconnect_time.count, 3);
        assert_eq!(r.reconnect_time.p50_us, 1_500_000);
        assert_eq!(r.reconnect_time.max_us, 2_200_000);
        let mut f = Findings::new();
        r.failures(&mut f);
        assert!(f.into_vec().is_empty());
        let mut s = Summary::new();
        r.lines(&mut s);
        let text = s.finish();
        assert!(
            text.contains("3 / 3 (gave up 0, unfinished 0; 11 attempts)"),
            "{text}"
        );
        assert!(text.contains("2.201 s"), "{text}");
    }

    #[test]
    fn sessions_that_do_not_come_back_fail_the_run() {
        let o = [
            outage(1_000, Some(2_000), 1, false),
            outage(1_000, None, 30, true),
            outage(5_000, None, 2, false),
        ];
        let r = Recovery::of(3, &o);
        assert_eq!(
            (r.reconnected, r.reconnect_gave_up, r.reconnect_unfinished),
            (1, 1, 1)
        );
        assert_eq!(r.recovery_secs, None);
        let mut f = Findings::new();
        r.failures(&mut f);
        assert_eq!(f.into_vec().len(), 2);
        // Without --reconnect: losses, nothing redialed.
        let r = Recovery::of(2, &[]);
        assert_eq!(
            (r.sockets_lost, r.reconnected, r.recovery_secs),
            (2, 0, None)
        );
        let mut s = Summary::new();
        Recovery::default().lines(&mut s);
        assert_eq!(s.finish(), "", "nothing to say without a loss");
    }

    #[test]
    fn pauses_are_jittered_within_half_to_one_and_a_half() {
        let p = Duration::from_millis(100);
        let all: Vec<Duration> = (0..200).map(|i| jittered(p, i, 1)).collect();
        assert!(all.iter().all(|d| *d >= p / 2 && *d < p * 3 / 2), "{all:?}");
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert!(distinct.len() > 150, "sessions spread out");
        assert_ne!(jittered(p, 3, 1), jittered(p, 3, 2));
    }

    #[tokio::test]
    async fn a_session_gives_up_or_stops_when_no_relay_answers() {
        // Nothing listens on port 1; two "nodes" so the round robin turns.
        let targets = Targets::resolve(
            "http://127.0.0.1:1,http://127.0.0.1:1",
            1,
            crate::client::ws_config(4096, 4096),
        )
        .await
        .unwrap();
        let down = Arc::new(AtomicU64::new(0));
        let clock = Clock::unbounded(Instant::now());
        let mut r = Redial::new(
            Arc::new(targets),
            0,
            0,
            "t".into(),
            Duration::from_millis(300),
            clock,
            down.clone(),
        );
        let (tx, mut rx) = watch::channel(false);
        assert!(matches!(r.redial(&mut rx).await, Redialed::GaveUp));
        assert_eq!(down.load(Relaxed), 0);
        let o = r.outages[0];
        assert!(o.gave_up && o.back_us.is_none() && o.attempts >= 2, "{o:?}");
        assert!(r.last_error.as_deref().unwrap().starts_with("connect"));
        // Told to stop: it stops at once, not at the deadline.
        r.deadline = Duration::from_secs(60);
        tx.send(true).unwrap();
        let t = Instant::now();
        assert!(matches!(r.redial(&mut rx).await, Redialed::Stopped));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(!r.outages[1].gave_up && r.outages[1].back_us.is_none());
        assert_eq!(Recovery::of(2, &r.outages).reconnect_unfinished, 1);
    }
}
