//! Scenario `chat`: sender→recipient pairs, each a separate user with one
//! socket, measuring throughput, end-to-end latency and delivery correctness.
//!
//! How a message is accounted for:
//! - its `clientMsgId` is a [`MsgTag`](crate::wire::MsgTag): pair, sequence
//!   number and intended send time (µs on the run's
//!   [`Clock`]). Sender and recipient run in this process on one monotonic
//!   clock, so the recipient computes the end-to-end latency from the push
//!   alone, without any state shared with the sender;
//! - the sender (`sender.rs`) keeps what it hears back in
//!   [`Answers`](crate::answers::Answers) (what got an 81, what was
//!   refused), the recipient ([`crate::recipient`], shared with fan-out) a
//!   [`RecvLog`](crate::track::RecvLog) (what arrived, in which order, how
//!   often); after the drain they are reconciled into lost / duplicate /
//!   out-of-order (`report.rs`).
//!
//! Load shape (`schedule.rs`): closed loop by default (each sender keeps
//! `--window` messages awaiting their 81), or open loop with `--rate`, where
//! every message has an intended send time on a fixed schedule and latency
//! is measured from that time. The open loop avoids coordinated omission:
//! when the relay stalls, the messages that should have been sent meanwhile
//! are charged the stall instead of silently not being sent. The window
//! still applies in open loop (it is the client's backpressure); when it
//! holds messages back the report says so.
//!
//! Phases on the shared clock: `[0, warmup)` warm-up (sent, checked, not in
//! the statistics), `[warmup, warmup+duration)` measured, then a drain of up
//! to `--drain` during which nothing new is sent and outstanding 81s and
//! pushes are awaited; it ends early once everything is accounted for.
//!
//! Several relays (`--url a,b`): each pair's sender and recipient are
//! placed on them by `--placement` (`placement.rs`). With `--reconnect`
//! every session survives the loss of its socket
//! ([`Redial`](crate::redial::Redial)): the sender resends what has no 81
//! yet under the same `clientMsgId`, the recipient gets from the relay
//! what it had not acked, and the accounting goes on across sockets (a
//! message answered before the loss and pushed after it is delivered, not
//! lost; a push seen again is a redelivery, not a duplicate).

mod args;
mod placement;
mod report;
mod schedule;
mod sender;

pub use args::ChatArgs;
pub use placement::{PairNodes, Placement};
pub use report::ChatReport;

use crate::client::{self, Account, Targets, Ws};
use crate::recipient::{run_recipient, ProgressSink, RecvSpec};
use crate::redial::Redial;
use crate::resources::Phase;
use crate::track::Clock;
use crate::{wire, Ctx, Error};
use futures_util::StreamExt;
use schedule::Schedule;
use sender::{run_sender, SenderCfg};
use shared::Target as To;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Counters the main task watches to report progress and end the drain.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    stored: AtomicU64,
    delivered: AtomicU64,
    /// 92s received by senders.
    receipts: AtomicU64,
    /// ACKs sent by recipients.
    acks_sent: AtomicU64,
    /// 91s received by recipients.
    ack_resps: AtomicU64,
    /// Senders that will send nothing more and await no answer (or whose
    /// socket died for good).
    senders_settled: AtomicU64,
    /// ACKs whose socket was lost before their 91 came.
    acks_lost: AtomicU64,
    /// Sessions without a socket right now (`--reconnect`: redialing).
    down: Arc<AtomicU64>,
}

/// Everything the sender and recipient tasks of a run share (read-only but
/// for the progress counters).
struct Run {
    clock: Clock,
    progress: Progress,
}

impl ProgressSink for Run {
    fn delivered(&self, n: u64) {
        self.progress.delivered.fetch_add(n, Relaxed);
    }
    fn acks_sent(&self, n: u64) {
        self.progress.acks_sent.fetch_add(n, Relaxed);
    }
    fn ack_resps(&self, n: u64) {
        self.progress.ack_resps.fetch_add(n, Relaxed);
    }
    fn acks_lost(&self, n: u64) {
        self.progress.acks_lost.fetch_add(n, Relaxed);
    }
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: ChatArgs) -> Result<ChatReport, Error> {
    args.check()?;
    let targets = ChatLoad::targets(ctx, &args).await?;
    let accounts = client::accounts(ctx, targets.first(), 2 * args.pairs).await?;
    let load = ChatLoad::open(ctx, args, targets, accounts).await?;
    // A moment ahead, so every task starts on the same instant.
    load.measure(ctx, Instant::now() + Duration::from_millis(200))
        .await
}

/// A chat load with its sessions open, ready to be measured: the `chat`
/// scenario itself, and the side load the `voice` scenario runs on the
/// same clock as its audio.
pub struct ChatLoad {
    args: ChatArgs,
    targets: Arc<Targets>,
    accounts: Vec<Account>,
    pairs: Vec<PairNodes>,
    recipients: Vec<(Ws, shared::UserId)>,
    senders: Vec<(Ws, shared::UserId)>,
}

impl ChatLoad {
    /// The relays of `--url`, with WebSocket settings for chat sockets.
    pub async fn targets(ctx: &Ctx, args: &ChatArgs) -> Result<Arc<Targets>, Error> {
        let ws_config = client::ws_config(args.read_buffer.max(1024), 16 * 1024);
        Ok(Arc::new(
            Targets::resolve(&ctx.common.url, ctx.common.source_ips, ws_config).await?,
        ))
    }

    /// Opens every pair's sessions (recipients first) with `accounts`
    /// (`2 × --pairs` of them: pair p's sender is account 2p, its
    /// recipient 2p + 1), placed on `targets` by `--placement`.
    pub async fn open(
        ctx: &Ctx,
        args: ChatArgs,
        targets: Arc<Targets>,
        accounts: Vec<Account>,
    ) -> Result<ChatLoad, Error> {
        args.check()?;
        if accounts.len() < 2 * args.pairs {
            return Err(format!(
                "{} chat pairs need {} accounts, got {}",
                args.pairs,
                2 * args.pairs,
                accounts.len()
            )
            .into());
        }
        let log = &ctx.log;
        let pairs: Vec<PairNodes> = (0..args.pairs)
            .map(|p| args.placement.pair(p, targets.len()))
            .collect();
        if targets.len() > 1 {
            log.say(format_args!(
                "{} relays, placement {}: {} of {} pairs cross relays",
                targets.len(),
                args.placement.name(),
                pairs.iter().filter(|p| p.crosses()).count(),
                args.pairs
            ));
        }
        // Recipients first, so every push of the run is live, not an
        // offline backlog; then senders.
        log.say(format_args!("opening {} chat sessions", 2 * args.pairs));
        let recipients = open_sessions(
            &targets,
            &accounts,
            |p| (2 * p + 1, pairs[p].recipient),
            &args,
        )
        .await?;
        let senders =
            open_sessions(&targets, &accounts, |p| (2 * p, pairs[p].sender), &args).await?;
        Ok(ChatLoad {
            args,
            targets,
            accounts,
            pairs,
            recipients,
            senders,
        })
    }

    /// Runs the load on a clock starting at `t0` (warm-up, measured
    /// period, drain) and reports it.
    pub async fn measure(self, ctx: &Ctx, t0: Instant) -> Result<ChatReport, Error> {
        let ChatLoad {
            args,
            targets,
            accounts,
            pairs,
            recipients,
            senders,
        } = self;
        let log = &ctx.log;
        let relay_before = ctx.relay_sample();
        let warmup_us = args.warmup.as_micros() as u64;
        let run = Arc::new(Run {
            clock: Clock {
                t0,
                warmup_us,
                end_us: warmup_us + args.duration.as_micros() as u64,
            },
            progress: Progress::default(),
        });
        let redial = |account: usize, node: usize| {
            args.reconnect.then(|| {
                Redial::new(
                    targets.clone(),
                    node,
                    account,
                    accounts[account].token.clone(),
                    args.reconnect_deadline,
                    run.clock,
                    run.progress.down.clone(),
                )
            })
        };
        let body: Arc<str> = wire::filler_body(args.body_bytes).into();
        let run_id: Arc<str> = ctx.run_id.as_str().into();
        let expected_per_pair = args.expected_per_pair();
        let (stop_tx, stop_rx) = watch::channel(false);
        let spec = RecvSpec {
            run_id: run_id.clone(),
            clock: run.clock,
            keep_latencies: false,
        };
        let recv_tasks: Vec<_> = (recipients.into_iter().enumerate())
            .map(|(p, (ws, _))| {
                tokio::spawn(run_recipient(
                    ws,
                    p as u32,
                    expected_per_pair,
                    spec.clone(),
                    Some(run.clone() as Arc<dyn ProgressSink>),
                    stop_rx.clone(),
                    redial(2 * p + 1, pairs[p].recipient),
                ))
            })
            .collect();
        let send_tasks: Vec<_> = (senders.into_iter().enumerate())
            .map(|(p, (ws, _))| {
                let cfg = SenderCfg {
                    pair: p as u32,
                    to: To::User(accounts[2 * p + 1].user_id),
                    window: args.window,
                    schedule: Schedule::for_sender(p, args.pairs, args.rate),
                    body: body.clone(),
                    expected: expected_per_pair,
                    run_id: run_id.clone(),
                };
                tokio::spawn(run_sender(
                    ws,
                    cfg,
                    run.clone(),
                    stop_rx.clone(),
                    redial(2 * p, pairs[p].sender),
                ))
            })
            .collect();

        // Measured period.
        let at = |us: u64| tokio::time::Instant::from_std(run.clock.t0 + Duration::from_micros(us));
        log.say(format_args!(
            "running: warmup {:?}, measuring {:?}",
            args.warmup, args.duration
        ));
        progress_until(&run, at(run.clock.warmup_us), log).await;
        let measured = Phase::start(ctx);
        progress_until(&run, at(run.clock.end_us), log).await;
        let measured = measured.end(ctx);

        let drain = drain(&run, &args, log).await;
        let _ = stop_tx.send(true);

        let mut outs_s = Vec::with_capacity(args.pairs);
        for t in send_tasks {
            outs_s.push(t.await?);
        }
        let mut outs_r = Vec::with_capacity(args.pairs);
        for t in recv_tasks {
            outs_r.push(t.await?);
        }
        log.say(format_args!("done; closing"));

        let mut r = report::assemble(&args, &targets.urls(), &pairs, &outs_s, &outs_r);
        r.drain_secs = crate::report::round_to(drain.as_secs_f64(), 2);
        r.relay_rss_before_kib = relay_before.map(|s| s.rss_kib);
        r.relay_rss_after_kib = measured.relay_end.map(|s| s.rss_kib);
        r.usage = measured.usage;
        Ok(r)
    }
}

/// Waits until every sender is settled and every stored message has
/// arrived, been receipted and had its ACK answered, or `--drain` passes;
/// returns how long it waited. With `--reconnect`, also until every
/// session has a socket again and every ACK sent on a socket that is still
/// open has its 91 (after a reconnection the relay pushes again what it
/// had not acked, and these ACKs are answered too); receipts are not
/// awaited then (a 92 for an ACK made while its sender was reconnecting is
/// never sent).
async fn drain(run: &Run, args: &ChatArgs, log: &crate::Log) -> Duration {
    let started = Instant::now();
    let pairs = args.pairs as u64;
    let p = &run.progress;
    loop {
        let delivered = p.delivered.load(Relaxed);
        let (receipts, acked) = (p.receipts.load(Relaxed), p.ack_resps.load(Relaxed));
        let answers_done = if args.reconnect {
            acked + p.acks_lost.load(Relaxed) >= p.acks_sent.load(Relaxed).max(delivered)
                && p.down.load(Relaxed) == 0
        } else {
            receipts >= delivered && acked >= delivered
        };
        if p.senders_settled.load(Relaxed) >= pairs
            && delivered >= p.stored.load(Relaxed)
            && answers_done
        {
            return started.elapsed();
        }
        if started.elapsed() >= args.drain {
            log.say(format_args!("drain limit reached"));
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Logs progress every 2 s until `until`.
async fn progress_until(run: &Run, until: tokio::time::Instant, log: &crate::Log) {
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            return;
        }
        tokio::time::sleep_until(until.min(now + Duration::from_secs(2))).await;
        let p = &run.progress;
        let down = p.down.load(Relaxed);
        log.say(format_args!(
            "t={:.1}s sent {} stored {} delivered {}{}",
            run.clock.now_us() as f64 / 1e6,
            p.sent.load(Relaxed),
            p.stored.load(Relaxed),
            p.delivered.load(Relaxed),
            if down > 0 {
                format!(", {down} sessions reconnecting")
            } else {
                String::new()
            }
        ));
    }
}

/// Opens one logged-in socket per pair, for account and node
/// `session(pair)`.
async fn open_sessions(
    targets: &Targets,
    accounts: &[Account],
    session: impl Fn(usize) -> (usize, usize),
    args: &ChatArgs,
) -> Result<Vec<(Ws, shared::UserId)>, Error> {
    let jobs = (0..args.pairs).map(|p| {
        let (i, node) = session(p);
        let token = accounts[i].token.clone();
        let target = targets.node(node);
        async move { target.open_session(i, &token).await }
    });
    let results: Vec<_> = futures_util::stream::iter(jobs)
        .buffered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let mut ok = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(s) => ok.push(s),
            Err(e) => return Err(format!("could not open a session: {e:?}").into()),
        }
    }
    Ok(ok)
}
