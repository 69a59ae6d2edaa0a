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
//! per-connection costs are the same. With several relays in `--url`,
//! connection i is on relay i % N. Each socket is one task
//! (`connection.rs`); this module ramps them up, holds, and closes them.

mod args;
mod connection;
mod report;

pub use args::IdleArgs;
pub use report::IdleReport;

use crate::client::{self, Targets};
use crate::latency::LatencySummary;
use crate::resources::Phase;
use crate::{sys, Ctx, Error};
use connection::{connection, Shared};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long after the hold the sockets stay open so PONGs for the last PINGs
/// of the hold can still arrive and be counted.
const PONG_GRACE: Duration = Duration::from_secs(3);

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
    let targets = Targets::resolve(&ctx.common.url, ctx.common.source_ips, ws_config).await?;
    let target = targets.first();
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
    let accounts = client::accounts(ctx, target, users).await?;

    let baseline = ctx.relay_sample();
    let shared = Arc::new(Shared::new(
        args.connections,
        targets.len(),
        args.ping_interval,
        args.connect_concurrency,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let source_ips = target.source_ip_count();
    let nodes = targets.urls();
    let targets = Arc::new(targets);

    log.say(format_args!(
        "opening {} connections ({} in flight)",
        args.connections, args.connect_concurrency
    ));
    let mut tasks = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let token = accounts[i / args.tabs].token.clone();
        tasks.push(tokio::spawn(connection(
            i,
            targets.clone(),
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
    let hold = Phase::start(ctx);
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
    let hold = hold.end(ctx);
    tokio::time::sleep(PONG_GRACE).await;

    // Close everything.
    log.say(format_args!("closing {established} connections"));
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_close = ctx.relay_sample();

    let round = crate::report::round_to;
    let pong_latency = LatencySummary::of(&shared.pong_hist.lock().unwrap());
    let problems = shared.problems.lock().unwrap().clone();
    let baseline_kib = baseline.map(|s| s.rss_kib);
    let after_kib = hold.relay_end.map(|s| s.rss_kib);
    Ok(IdleReport {
        users,
        source_ips,
        established,
        established_per_node: (shared.established_per_node.iter())
            .map(|n| n.load(Relaxed))
            .collect(),
        nodes,
        connect_failed: shared.connect_failed.load(Relaxed),
        login_failed: shared.login_failed.load(Relaxed),
        dropped: shared.dropped.load(Relaxed),
        ramp_secs: round(ramp.as_secs_f64(), 2),
        connect_rate: round(crate::report::per_second(established, ramp), 1),
        hold_secs: round(hold.wall.as_secs_f64(), 2),
        pongs_expected: shared.pings_measured.load(Relaxed),
        pongs_received: shared.pongs_measured.load(Relaxed),
        pong_latency,
        relay_rss_baseline_kib: baseline_kib,
        relay_rss_after_kib: after_kib,
        relay_rss_per_conn_kib: baseline_kib
            .zip(after_kib)
            .and_then(|(b, a)| crate::report::kib_per_connection(b, a, established))
            .map(|k| round(k, 2)),
        relay_rss_after_close_kib: after_close.map(|s| s.rss_kib),
        usage: hold.usage,
        loadgen_rss_kib: hold.own_end.map(|s| s.rss_kib),
        closed_cleanly: shared.closed_cleanly.load(Relaxed),
        problems,
        args,
    })
}
