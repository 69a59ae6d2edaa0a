//! One idle connection's life: open and log in, PING on a staggered
//! schedule and time the PONGs, close cleanly; and the counters every
//! connection reports into.

use crate::client::{self, Targets};
use crate::latency::{new_histogram, record_us};
use crate::report::{self, Tally};
use crate::{socket, wire};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// State every connection task reports into. Counters are atomics and the
/// PONG histogram sits behind a mutex: at N/interval PONGs per second
/// (2,000/s for 20,000 sockets) neither is contended.
pub(super) struct Shared {
    n: usize,
    interval: Duration,
    /// Ping schedules are laid out from this instant: connection i pings at
    /// `t0 + interval * i / n + k * interval`, so the aggregate rate is flat
    /// instead of arriving in bursts.
    pub t0: Instant,
    /// Whether the hold is on: PINGs sent now count as expected.
    pub measuring: AtomicBool,
    pub established: AtomicU64,
    /// Connections logged in, per relay (connection i is on node i % N).
    pub established_per_node: Vec<AtomicU64>,
    pub connect_failed: AtomicU64,
    pub login_failed: AtomicU64,
    pub dropped: AtomicU64,
    pings_total: AtomicU64,
    pongs_total: AtomicU64,
    pub pings_measured: AtomicU64,
    pub pongs_measured: AtomicU64,
    pub closed_cleanly: AtomicU64,
    pub pong_hist: Mutex<Histogram<u64>>,
    /// Connect and login failures, drops, unexpected frames, by kind.
    pub problems: Mutex<Tally>,
    connect_slots: Semaphore,
}

impl Shared {
    /// Counters for `n` connections to `nodes` relays pinging every
    /// `interval`, at most `connect_concurrency` of them connecting at a
    /// time; the ping schedule starts now.
    pub fn new(n: usize, nodes: usize, interval: Duration, connect_concurrency: usize) -> Shared {
        Shared {
            established_per_node: (0..nodes.max(1)).map(|_| AtomicU64::new(0)).collect(),
            n,
            interval,
            t0: Instant::now(),
            measuring: AtomicBool::new(false),
            established: AtomicU64::new(0),
            connect_failed: AtomicU64::new(0),
            login_failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            pings_total: AtomicU64::new(0),
            pongs_total: AtomicU64::new(0),
            pings_measured: AtomicU64::new(0),
            pongs_measured: AtomicU64::new(0),
            closed_cleanly: AtomicU64::new(0),
            pong_hist: Mutex::new(new_histogram()),
            problems: Mutex::new(Tally::new()),
            connect_slots: Semaphore::new(connect_concurrency.max(1)),
        }
    }

    /// Counts an unexpected event.
    pub fn problem(&self, what: &str) {
        report::tally(&mut self.problems.lock().unwrap(), what, 1);
    }

    /// The first PING time for connection `i` that is not before `now`.
    fn first_ping(&self, i: usize, now: Instant) -> Instant {
        first_slot_after(self.t0, self.interval, i, self.n, now)
    }
}

/// `t0 + interval*i/n + k*interval` for the smallest k ≥ 0 that is ≥ `now`.
fn first_slot_after(t0: Instant, interval: Duration, i: usize, n: usize, now: Instant) -> Instant {
    let offset = interval.mul_f64(i as f64 / n.max(1) as f64);
    let first = t0 + offset;
    if now <= first || interval.is_zero() {
        return first;
    }
    let behind = now - first;
    let k = behind.as_nanos().div_ceil(interval.as_nanos());
    first + interval * k as u32
}

/// One connection's life: open and log in (holding a connect slot) on
/// relay i % N, then PING on its schedule and time the PONGs until told to
/// stop, then close.
pub(super) async fn connection(
    i: usize,
    targets: Arc<Targets>,
    token: Arc<str>,
    sh: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let permit = sh
        .connect_slots
        .acquire()
        .await
        .expect("semaphore is never closed");
    let node = i % targets.len();
    let mut ws = match targets.node(node).open_session(i, &token).await {
        Ok((ws, _)) => ws,
        Err(client::SessionError::Connect(e)) => {
            sh.connect_failed.fetch_add(1, Relaxed);
            sh.problem(&e);
            return;
        }
        Err(client::SessionError::Login(e)) => {
            sh.login_failed.fetch_add(1, Relaxed);
            sh.problem(&format!("login: {e}"));
            return;
        }
    };
    drop(permit);
    sh.established.fetch_add(1, Relaxed);
    sh.established_per_node[node].fetch_add(1, Relaxed);

    let mut next_ping = tokio::time::Instant::from_std(sh.first_ping(i, Instant::now()));
    // PINGs awaiting their PONG: send time and whether it counts (hold).
    // PONGs come back in order, so a queue pairs them up.
    let mut outstanding: VecDeque<(Instant, bool)> = VecDeque::new();
    let mut alive = true;
    loop {
        tokio::select! {
            biased;
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break;
                }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let ty = wire::fast_type(t.as_str())
                        .or_else(|| wire::Lite::parse(t.as_str()).ok().map(|l| l.ty));
                    match ty {
                        Some(wire::frame_type::PONG) => {
                            sh.pongs_total.fetch_add(1, Relaxed);
                            match outstanding.pop_front() {
                                Some((sent, true)) => {
                                    let us = sent.elapsed().as_micros() as u64;
                                    record_us(&mut sh.pong_hist.lock().unwrap(), us);
                                    sh.pongs_measured.fetch_add(1, Relaxed);
                                }
                                Some((_, false)) => {}
                                None => sh.problem("PONG without PING"),
                            }
                        }
                        Some(other) => sh.problem(&format!("unexpected frame type {other}")),
                        None => sh.problem("unparsable frame"),
                    }
                }
                Some(Ok(Message::Close(c))) => {
                    sh.dropped.fetch_add(1, Relaxed);
                    sh.problem(&match c {
                        Some(c) => format!("closed by relay: {}", u16::from(c.code)),
                        None => "closed by relay".into(),
                    });
                    alive = false;
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    sh.dropped.fetch_add(1, Relaxed);
                    sh.problem(&format!("read: {e}"));
                    alive = false;
                    break;
                }
                None => {
                    sh.dropped.fetch_add(1, Relaxed);
                    sh.problem("connection ended");
                    alive = false;
                    break;
                }
            },
            _ = tokio::time::sleep_until(next_ping) => {
                next_ping += sh.interval;
                let measured = sh.measuring.load(Relaxed);
                outstanding.push_back((Instant::now(), measured));
                if let Err(e) = ws.send(Message::Text(Utf8Bytes::from_static(wire::PING))).await {
                    sh.dropped.fetch_add(1, Relaxed);
                    sh.problem(&format!("send PING: {e}"));
                    alive = false;
                    break;
                }
                sh.pings_total.fetch_add(1, Relaxed);
                if measured {
                    sh.pings_measured.fetch_add(1, Relaxed);
                }
            }
        }
    }
    if alive && socket::close_cleanly(&mut ws).await {
        sh.closed_cleanly.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_slots_are_staggered_over_the_interval() {
        let t0 = Instant::now();
        let iv = Duration::from_secs(10);
        // Before the schedule starts: the connection's own offset.
        assert_eq!(first_slot_after(t0, iv, 0, 4, t0), t0);
        assert_eq!(
            first_slot_after(t0, iv, 1, 4, t0),
            t0 + Duration::from_millis(2500)
        );
        assert_eq!(
            first_slot_after(t0, iv, 3, 4, t0),
            t0 + Duration::from_millis(7500)
        );
        // Joining late: the next slot on the same grid.
        let late = t0 + Duration::from_secs(23);
        assert_eq!(
            first_slot_after(t0, iv, 1, 4, late),
            t0 + Duration::from_millis(32_500)
        );
        assert_eq!(
            first_slot_after(t0, iv, 0, 4, t0 + Duration::from_secs(20)),
            t0 + Duration::from_secs(20)
        );
    }
}
