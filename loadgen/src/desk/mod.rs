//! Scenario `desk`: the support desk under a stream of visitors. V visitors
//! arrive uniformly over `--arrival` and A agents of capacity C answer them;
//! how long does a visitor wait for an agent, how long is the queue over
//! time, and does every message reach the other side exactly once?
//!
//! Setup: A accounts (`--accounts FILE` skips registration on reruns)
//! granted the agent role with `<--relay-bin> admin grant-agent NAME --db
//! DB` (`agent.rs`); agent `i` logs in on node `i % N` of `--url`, sets its
//! capacity (132) and waits for the 133 showing it. Then the clock starts:
//! visitor `i` arrives at `i × arrival / V`, on node `i % N`
//! (`visitor.rs`): `POST /api/visitors`, LOGIN, 130, and the time until its
//! 131 `open` is its time to assignment. It sends `--messages` K messages
//! to the conversation one after another, each after the previous one's
//! 81 and answer; the agent answers each one (after `--reply-delay`) and
//! closes the conversation (135) when the last answer is stored, freeing
//! its capacity for the next visitor.
//!
//! Every message carries a tag (visitor, number, send time) as its
//! `clientMsgId`; `ledger.rs` counts per message and direction what was
//! sent, stored (81) and pushed. Once every visitor is served, or
//! `--serve-deadline` after the last arrival, a drain of at most `--drain`
//! waits for stored messages (and 131 `closed`s) still on their way; then a
//! stored message never pushed is lost. The queue is sampled once per second
//! (`queue.rs`). The run fails on a lost or duplicated message, a visitor
//! not served, a type 0 error or a lost socket.

mod agent;
mod args;
mod ledger;
mod queue;
mod report;
mod visitor;

pub use args::DeskArgs;
pub use ledger::Flow;
pub use queue::QueuePoint;
pub use report::{DeskReport, Waits};

use crate::client::{self, Api, Targets};
use crate::resources::Phase;
use crate::track::Clock;
use crate::{sys, Ctx, Error};
use ledger::Ledger;
use queue::Queue;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// What the tasks of a run share.
pub struct Shared {
    args: DeskArgs,
    run_id: String,
    /// Every chat body.
    body: String,
    /// Starts at the first arrival; message tags carry µs on it.
    clock: Clock,
    ledger: Ledger,
    queue: Queue,
    /// Time to assignment per assigned visitor, µs.
    assign_us: Mutex<Vec<u64>>,
    /// A visitor's message to its push to the agent, µs.
    push_us: Mutex<Vec<u64>>,
    /// A visitor's message to the agent's answer pushed back, µs.
    answer_us: Mutex<Vec<u64>>,
    /// Visitors served.
    served: AtomicU64,
    /// Visitors told their conversation closed.
    closed: AtomicU64,
    /// Visitors served or given up (failed before or during the
    /// conversation).
    finished: AtomicU64,
    all_finished: Notify,
}

impl Shared {
    fn visitor_finished(&self) {
        if self.finished.fetch_add(1, Relaxed) + 1 == self.args.visitors as u64 {
            self.all_finished.notify_one();
        }
    }
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: DeskArgs) -> Result<DeskReport, Error> {
    args.check()?;
    args.check_fd_limit(sys::nofile_limit()?)?;
    let log = &ctx.log;
    let targets = Targets::resolve(
        &ctx.common.url,
        ctx.common.source_ips,
        client::ws_config(16 * 1024, 4096),
    )
    .await?;
    let accounts = client::accounts(ctx, targets.first(), args.agents).await?;
    if !args.no_grant {
        agent::grant(&args, &accounts, log).await?;
    }
    let relay_idle = ctx.relay_sample();

    let ready = futures_util::future::join_all(accounts.iter().enumerate().map(|(i, a)| {
        let target = targets.node(i);
        async move { agent::ready(i, target, a, args.capacity).await }
    }))
    .await;
    let mut agent_failures = crate::report::Tally::new();
    let mut agent_socks = Vec::new();
    for (i, r) in ready.into_iter().enumerate() {
        match r {
            Ok(s) => agent_socks.push((i, s)),
            Err(e) => crate::report::tally(&mut agent_failures, &e, 1),
        }
    }
    if agent_socks.is_empty() {
        return Err(format!(
            "no agent got ready: {}",
            crate::report::fmt_tally(&agent_failures)
        )
        .into());
    }
    log.say(format_args!(
        "{} agents ready (capacity {}); {} visitors arriving over {:?}",
        agent_socks.len(),
        args.capacity,
        args.visitors,
        args.arrival
    ));

    let t0 = Instant::now() + Duration::from_millis(100);
    let shared = Arc::new(Shared {
        run_id: ctx.run_id.clone(),
        body: crate::wire::filler_body(args.body_bytes),
        clock: Clock::unbounded(t0),
        ledger: Ledger::new(args.visitors, args.messages as usize),
        queue: Queue::default(),
        assign_us: Mutex::default(),
        push_us: Mutex::default(),
        answer_us: Mutex::default(),
        served: AtomicU64::new(0),
        closed: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        all_finished: Notify::new(),
        args: args.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let agent_nodes: Vec<usize> = agent_socks.iter().map(|(i, _)| i % targets.len()).collect();
    let agents: Vec<_> = (agent_socks.into_iter())
        .map(|(_, (ws, me))| tokio::spawn(agent::run(ws, me, shared.clone(), stop_rx.clone())))
        .collect();
    let apis: Vec<Api> = (0..targets.len())
        .map(|n| Api::new(targets.node(n)))
        .collect();
    let at = |d: Duration| tokio::time::Instant::from_std(t0 + d);
    let visitors: Vec<_> = (0..args.visitors)
        .map(|i| {
            let (target, api) = (targets.node(i).clone(), apis[i % apis.len()].clone());
            let (shared, stop) = (shared.clone(), stop_rx.clone());
            let start = at(args.arrival_of(i));
            tokio::spawn(async move {
                tokio::time::sleep_until(start).await;
                visitor::visitor(i as u32, target, api, shared, stop).await
            })
        })
        .collect();

    tokio::time::sleep_until(at(Duration::ZERO)).await;
    let phase = Phase::start(ctx);
    let sampler = {
        let shared = shared.clone();
        tokio::spawn(async move { shared.queue.sample_every_second().await })
    };
    let deadline = at(args.arrival + args.serve_deadline);
    let progress = async {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            log.say(format_args!(
                "t={:.0}s assigned {}, served {}, waiting {}",
                shared.clock.now_us() as f64 / 1e6,
                shared.assign_us.lock().unwrap().len(),
                shared.served.load(Relaxed),
                shared.queue.waiting()
            ));
        }
    };
    let all_finished = shared.all_finished.notified();
    tokio::select! {
        _ = all_finished => {}
        _ = tokio::time::sleep_until(deadline) => log.say(format_args!("serve deadline reached")),
        _ = progress => {}
    }
    let served_secs = t0.elapsed().as_secs_f64();
    let phase = phase.end(ctx);
    let drain_started = Instant::now();
    // Until every stored message has arrived and every served visitor has
    // heard their conversation closed.
    let drained = || {
        shared.ledger.in_flight() == 0 && shared.closed.load(Relaxed) >= shared.served.load(Relaxed)
    };
    while !drained() && drain_started.elapsed() < args.drain {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    sampler.abort();
    let _ = stop_tx.send(true);
    log.say(format_args!(
        "closing {} sockets",
        visitors.len() + agents.len()
    ));
    let mut visitor_outs = Vec::with_capacity(visitors.len());
    for v in visitors {
        visitor_outs.push(v.await?);
    }
    let mut agent_outs = Vec::with_capacity(agents.len());
    for a in agents {
        agent_outs.push(a.await?);
    }
    let mut r = DeskReport {
        nodes: targets.urls(),
        agents_per_node: client::per_node(agent_nodes, targets.len()),
        visitors_per_node: client::per_node(0..args.visitors, targets.len()),
        agent_failures,
        served_secs: crate::report::round_to(served_secs, 2),
        drain_secs: crate::report::round_to(drain_secs, 2),
        relay_rss_before_kib: relay_idle.map(|s| s.rss_kib),
        relay_rss_after_kib: phase.relay_end.map(|s| s.rss_kib),
        usage: phase.usage,
        ..DeskReport::default()
    };
    r.reconcile(&shared, &visitor_outs, &agent_outs);
    r.args = Some(args);
    Ok(r)
}
