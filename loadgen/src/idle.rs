//! Scenario `idle`: many logged-in, heartbeating, otherwise silent sockets.
//!
//! This is the shape of a real deployment most of the time (tabs left open),
//! so it answers "how many users fit in the box": the relay's resident
//! memory per connection, the CPU the heartbeats cost, and whether PONGs stay
//! fast when tens of thousands of sockets are open.
//!
//! Accounts are shared by `--tabs` sockets each (one user with many tabs),
//! because registration runs argon2 on the relay and 20,000 registrations
//! would take minutes; the relay treats every socket as its own session, so
//! per-connection costs are the same.

use crate::client::{self, Target};
use crate::latency::{new_histogram, record_us, LatencySummary};
use crate::report::{self, fmt_tally, line, ScenarioReport, Tally};
use crate::{parse_duration, sys, wire, Ctx, Error};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// How long after the hold the sockets stay open so PONGs for the last PINGs
/// of the hold can still arrive and be counted.
const PONG_GRACE: Duration = Duration::from_secs(3);

/// Options of the `idle` scenario.
#[derive(Args, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleArgs {
    /// Number of WebSocket connections to open and hold.
    #[arg(long, default_value_t = 20_000)]
    pub connections: usize,
    /// Connections per account (like browser tabs of one user).
    #[arg(long, default_value_t = 50)]
    pub tabs: usize,
    /// PING interval per connection (the protocol says 10 s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub ping_interval: Duration,
    /// How long to hold all connections open once established; relay CPU is
    /// measured over this period and its memory at the end of it.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub hold: Duration,
    /// Connection attempts (connect + handshake + LOGIN) in flight.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// WebSocket read buffer per connection, bytes. Small, so that the
    /// generator's own memory scales to tens of thousands of sockets.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
}

pub(crate) fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// State every connection task reports into. Counters are atomics and the
/// PONG histogram sits behind a mutex: at N/interval PONGs per second
/// (2,000/s for 20,000 sockets) neither is contended.
struct Shared {
    n: usize,
    interval: Duration,
    /// Ping schedules are laid out from this instant: connection i pings at
    /// `t0 + interval * i / n + k * interval`, so the aggregate rate is flat
    /// instead of arriving in bursts.
    t0: Instant,
    /// Whether the hold is on: PINGs sent now count as expected.
    measuring: AtomicBool,
    established: AtomicU64,
    connect_failed: AtomicU64,
    login_failed: AtomicU64,
    dropped: AtomicU64,
    pings_total: AtomicU64,
    pongs_total: AtomicU64,
    pings_measured: AtomicU64,
    pongs_measured: AtomicU64,
    closed_cleanly: AtomicU64,
    pong_hist: Mutex<Histogram<u64>>,
    /// Connect and login failures, drops, unexpected frames, by kind.
    problems: Mutex<Tally>,
    connect_slots: Semaphore,
}

impl Shared {
    fn problem(&self, what: &str) {
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

/// Results of an idle run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleReport {
    /// The options used.
    #[serde(skip)]
    pub args: IdleArgs,
    /// Accounts registered.
    pub users: usize,
    /// Source addresses used.
    pub source_ips: usize,
    /// Connections logged in.
    pub established: u64,
    /// TCP connect or WebSocket handshake failures.
    pub connect_failed: u64,
    /// LOGIN answered with anything but `ok:true` (or not at all).
    pub login_failed: u64,
    /// Established connections the relay closed or lost before the end.
    pub dropped: u64,
    /// Time to open and log in all connections, seconds.
    pub ramp_secs: f64,
    /// Logged-in connections per second during the ramp.
    pub connect_rate: f64,
    /// Actual hold duration, seconds.
    pub hold_secs: f64,
    /// PINGs sent during the hold (each expects a PONG).
    pub pongs_expected: u64,
    /// PONGs received for those PINGs.
    pub pongs_received: u64,
    /// PING→PONG round trip for PINGs sent during the hold.
    pub pong_latency: LatencySummary,
    /// Relay VmRSS after registration, before any socket, KiB.
    pub relay_rss_baseline_kib: Option<u64>,
    /// Relay VmRSS at the end of the hold, KiB.
    pub relay_rss_after_kib: Option<u64>,
    /// (after − baseline) / established, KiB.
    pub relay_rss_per_conn_kib: Option<f64>,
    /// Relay VmRSS one second after all sockets closed, KiB.
    pub relay_rss_after_close_kib: Option<u64>,
    /// Relay CPU during the hold, percent of one core.
    pub relay_cpu_pct: Option<f64>,
    /// The generator's own CPU during the hold, percent of one core.
    pub loadgen_cpu_pct: Option<f64>,
    /// The generator's own VmRSS at the end of the hold, KiB.
    pub loadgen_rss_kib: Option<u64>,
    /// Sockets that completed the close handshake at the end.
    pub closed_cleanly: u64,
    /// Failures and unexpected events by kind.
    pub problems: Tally,
}

impl ScenarioReport for IdleReport {
    fn scenario(&self) -> &'static str {
        "idle"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.args).unwrap_or_default()
    }

    fn results(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn human(&self) -> String {
        let a = &self.args;
        let kib = |v: Option<u64>| {
            v.map_or("n/a (pass --relay-pid)".into(), |k| {
                format!("{:.1} MiB", k as f64 / 1024.0)
            })
        };
        let mut s = String::new();
        line(
            &mut s,
            "connections",
            format!(
                "{} established of {} ({} users × {} tabs, {} source IPs)",
                self.established, a.connections, self.users, a.tabs, self.source_ips
            ),
        );
        line(
            &mut s,
            "failures",
            format!(
                "connect {}, login {}, dropped {}",
                self.connect_failed, self.login_failed, self.dropped
            ),
        );
        line(
            &mut s,
            "ramp",
            format!("{:.1} s ({:.0} conn/s)", self.ramp_secs, self.connect_rate),
        );
        line(
            &mut s,
            "pongs",
            format!(
                "{} of {} expected (ping every {:?}, hold {:.1} s)",
                self.pongs_received, self.pongs_expected, a.ping_interval, self.hold_secs
            ),
        );
        line(&mut s, "pong latency", self.pong_latency.human());
        line(
            &mut s,
            "relay RSS baseline",
            kib(self.relay_rss_baseline_kib),
        );
        line(
            &mut s,
            "relay RSS after hold",
            kib(self.relay_rss_after_kib),
        );
        line(
            &mut s,
            "relay RSS per connection",
            self.relay_rss_per_conn_kib
                .map_or("n/a".into(), |k| format!("{k:.2} KiB")),
        );
        line(
            &mut s,
            "relay RSS after close",
            kib(self.relay_rss_after_close_kib),
        );
        line(
            &mut s,
            "relay CPU during hold",
            self.relay_cpu_pct
                .map_or("n/a".into(), |c| format!("{c:.1} % of one core")),
        );
        line(
            &mut s,
            "loadgen CPU / RSS",
            format!(
                "{} / {:.1} MiB",
                self.loadgen_cpu_pct
                    .map_or("n/a".into(), |c| format!("{c:.1} % of one core")),
                self.loadgen_rss_kib.unwrap_or(0) as f64 / 1024.0
            ),
        );
        line(
            &mut s,
            "closed cleanly",
            format!("{} of {}", self.closed_cleanly, self.established),
        );
        line(&mut s, "problems", fmt_tally(&self.problems));
        s
    }

    fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.connect_failed > 0 {
            f.push(format!(
                "{} connections failed to open",
                self.connect_failed
            ));
        }
        if self.login_failed > 0 {
            f.push(format!("{} LOGINs failed", self.login_failed));
        }
        if self.dropped > 0 {
            f.push(format!(
                "{} established connections were dropped",
                self.dropped
            ));
        }
        if self.pongs_received < self.pongs_expected {
            f.push(format!(
                "{} PONGs missing",
                self.pongs_expected - self.pongs_received
            ));
        }
        f
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.relay_rss_baseline_kib.is_none() {
            w.push("relay memory and CPU not measured (pass --relay-pid)".into());
        }
        w
    }
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: IdleArgs) -> Result<IdleReport, Error> {
    if args.connections == 0 || args.tabs == 0 {
        return Err("--connections and --tabs must be at least 1".into());
    }
    if args.ping_interval.is_zero() {
        return Err("--ping-interval must be positive".into());
    }
    let log = &ctx.log;
    let ws_config = client::ws_config(args.read_buffer.max(256), 0);
    let target = Target::resolve(&ctx.common.url, ctx.common.source_ips, ws_config).await?;
    if let Some(ports) = sys::ephemeral_port_count() {
        let cap = ports * target.source_ip_count() as u64;
        if args.connections as u64 > cap {
            log.say(format_args!(
                "warning: {} connections but only ~{cap} ephemeral ports for {} source IP(s); pass --source-ips",
                args.connections,
                target.source_ip_count()
            ));
        }
    }

    let users = args.connections.div_ceil(args.tabs);
    let accounts = client::accounts(ctx, &target, users).await?;

    let baseline = ctx.relay_sample();
    let shared = Arc::new(Shared {
        n: args.connections,
        interval: args.ping_interval,
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
        connect_slots: Semaphore::new(args.connect_concurrency.max(1)),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let target = Arc::new(target);

    log.say(format_args!(
        "opening {} connections ({} in flight)",
        args.connections, args.connect_concurrency
    ));
    let mut tasks = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let token = accounts[i / args.tabs].token.clone();
        tasks.push(tokio::spawn(connection(
            i,
            target.clone(),
            token,
            shared.clone(),
            stop_rx.clone(),
        )));
    }

    // Ramp: wait until every connection has either logged in or failed.
    let mut last_log = Instant::now();
    loop {
        let ok = shared.established.load(Relaxed);
        let failed = shared.connect_failed.load(Relaxed) + shared.login_failed.load(Relaxed);
        if ok + failed >= args.connections as u64 {
            break;
        }
        if last_log.elapsed() >= Duration::from_secs(2) {
            last_log = Instant::now();
            log.say(format_args!(
                "connected {ok}/{} (failed {failed})",
                args.connections
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ramp = shared.t0.elapsed();
    let established = shared.established.load(Relaxed);
    log.say(format_args!(
        "{established} connections logged in after {:.1} s; holding for {:?}",
        ramp.as_secs_f64(),
        args.hold
    ));

    // Hold.
    let relay_before = ctx.relay_sample();
    let self_before = sys::ProcSample::read_self().ok();
    let hold_start = Instant::now();
    shared.measuring.store(true, Relaxed);
    let mut next_log = hold_start + Duration::from_secs(10);
    while hold_start.elapsed() < args.hold {
        let left = args.hold.saturating_sub(hold_start.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(500))).await;
        if Instant::now() >= next_log {
            next_log += Duration::from_secs(10);
            log.say(format_args!(
                "holding: {} pongs of {} pings, {} dropped",
                shared.pongs_measured.load(Relaxed),
                shared.pings_measured.load(Relaxed),
                shared.dropped.load(Relaxed)
            ));
        }
    }
    shared.measuring.store(false, Relaxed);
    let hold = hold_start.elapsed();
    let relay_after = ctx.relay_sample();
    let self_after = sys::ProcSample::read_self().ok();
    tokio::time::sleep(PONG_GRACE).await;

    // Close everything.
    log.say(format_args!("closing {established} connections"));
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_close = ctx.relay_sample();

    let ticks = sys::clock_ticks_per_sec();
    let cpu = |a: Option<sys::ProcSample>, b: Option<sys::ProcSample>| {
        Some(report::round_to(
            report::cpu_percent(b?.cpu_ticks.saturating_sub(a?.cpu_ticks), ticks, hold),
            1,
        ))
    };
    let pong_latency = LatencySummary::of(&shared.pong_hist.lock().unwrap());
    let problems = shared.problems.lock().unwrap().clone();
    let baseline_kib = baseline.map(|s| s.rss_kib);
    let after_kib = relay_after.map(|s| s.rss_kib);
    Ok(IdleReport {
        users,
        source_ips: target.source_ip_count(),
        established,
        connect_failed: shared.connect_failed.load(Relaxed),
        login_failed: shared.login_failed.load(Relaxed),
        dropped: shared.dropped.load(Relaxed),
        ramp_secs: report::round_to(ramp.as_secs_f64(), 2),
        connect_rate: report::round_to(report::per_second(established, ramp), 1),
        hold_secs: report::round_to(hold.as_secs_f64(), 2),
        pongs_expected: shared.pings_measured.load(Relaxed),
        pongs_received: shared.pongs_measured.load(Relaxed),
        pong_latency,
        relay_rss_baseline_kib: baseline_kib,
        relay_rss_after_kib: after_kib,
        relay_rss_per_conn_kib: baseline_kib
            .zip(after_kib)
            .and_then(|(b, a)| report::kib_per_connection(b, a, established))
            .map(|k| report::round_to(k, 2)),
        relay_rss_after_close_kib: after_close.map(|s| s.rss_kib),
        relay_cpu_pct: cpu(relay_before, relay_after),
        loadgen_cpu_pct: cpu(self_before, self_after),
        loadgen_rss_kib: self_after.map(|s| s.rss_kib),
        closed_cleanly: shared.closed_cleanly.load(Relaxed),
        problems,
        args,
    })
}

/// One connection's life: open and log in (holding a connect slot), then
/// PING on its schedule and time the PONGs until told to stop, then close.
async fn connection(
    i: usize,
    target: Arc<Target>,
    token: Arc<str>,
    sh: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let permit = sh
        .connect_slots
        .acquire()
        .await
        .expect("semaphore is never closed");
    let mut ws = match target.open_session(i, &token).await {
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
    if alive && close_cleanly(&mut ws).await {
        sh.closed_cleanly.fetch_add(1, Relaxed);
    }
}

/// Sends a Close frame and reads until the relay's Close (or the end of the
/// stream) arrives, for at most 5 s. True when the handshake completed.
pub(crate) async fn close_cleanly(ws: &mut client::Ws) -> bool {
    let done = async {
        ws.close(None).await.ok()?;
        while let Some(m) = ws.next().await {
            if m.is_err() {
                break;
            }
        }
        Some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), done).await,
        Ok(Some(()))
    )
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
