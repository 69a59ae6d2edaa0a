//! Scenario `voice` (issue 14): R voice rooms of P participants, S of them
//! speaking, each speaker sending an Opus-sized binary audio frame every
//! `--interval`; how long does a frame take to reach the other
//! participants, how many are lost, and what does it cost the relay (and
//! the chat traffic next to it)?
//!
//! Setup (`setup.rs`): R × P accounts (`--accounts FILE` skips
//! registration on reruns) plus two per chat pair; one public group per
//! room, created by its first participant and joined by the others over
//! HTTP; one socket per participant (participant `i` of the run on node
//! `i % N` of `--url`), which sends VOICE_JOIN (120) and waits for its 121,
//! then reads without pause (`participant.rs`).
//!
//! Measurement: once everyone is in, the run's clock starts (warm-up, then
//! the measured period). Speakers (`speaker.rs`) send on an absolute
//! schedule, spread evenly over one interval; each frame carries its
//! per-speaker sequence number in the header and its intended send time
//! (µs on the run's clock) at the start of its payload. Every participant
//! (`listener.rs`) accounts per speaker of its room for distinct,
//! duplicate and out-of-order frames, and records the latency of the
//! frames due in the measured period from their intended send time (so a
//! stalled generator is charged, as in chat's open loop). After the last
//! frame a drain of at most `--drain` waits for frames on their way; then
//! the logs are reconciled per (speaker, listener) pair: expected = frames
//! sent × the other participants (`report.rs`).
//!
//! `--chat-pairs` adds the chat scenario's open-loop load
//! ([`ChatLoad`](crate::chat::ChatLoad)) on the same clock, so chat
//! latency with voice can be compared with the same chat load alone
//! (`--rooms 0`). Audio is lossy by design: the run fails only when the
//! loss exceeds `--max-loss`, the p99 `--max-p99` (when given), a frame
//! arrives twice, or sockets fail.

mod args;
mod listener;
mod participant;
mod relay_metrics;
mod report;
mod setup;
mod speaker;

pub use args::VoiceArgs;
pub use relay_metrics::RelayAudio;
pub use report::{Delivery, VoiceReport};

use crate::chat::ChatLoad;
use crate::client::{self, Api, Targets};
use crate::latency::LatencySummary;
use crate::resources::Phase;
use crate::track::Clock;
use crate::{sys, Ctx, Error};
use listener::Shards;
use participant::Shared;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: VoiceArgs) -> Result<VoiceReport, Error> {
    args.check()?;
    args.check_fd_limit(sys::nofile_limit()?)?;
    let log = &ctx.log;
    let ws_config = client::ws_config(args.read_buffer.max(1024), 4096);
    let targets = Targets::resolve(&ctx.common.url, ctx.common.source_ips, ws_config).await?;
    let seats = args.rooms * args.participants;
    let accounts = client::accounts(ctx, targets.first(), args.sockets()).await?;
    let group_setup = Instant::now();
    let groups = setup::groups(ctx, &Api::new(targets.first()), &accounts, &args).await?;
    let group_setup_secs = group_setup.elapsed().as_secs_f64();

    let relay_idle = ctx.relay_sample();
    let shared = Arc::new(Shared {
        latency: [Shards::new(16), Shards::new(16)],
        sent: (0..args.rooms).map(|_| AtomicU64::new(0)).collect(),
        received: AtomicU64::new(0),
        speakers_done: AtomicU64::new(0),
    });
    let (start_tx, start_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let connect = Instant::now();
    let seated = setup::seat_all(
        ctx,
        setup::Plan {
            targets: &targets,
            accounts: &accounts[..seats],
            groups: &groups,
            args: &args,
            shared: shared.clone(),
            start: start_rx,
            stop: stop_rx,
        },
    )
    .await;
    let connect_secs = connect.elapsed().as_secs_f64();
    let chat = match args.chat_pairs {
        0 => None,
        _ => {
            let chat_args = args.chat_args();
            let chat_targets = ChatLoad::targets(ctx, &chat_args).await?;
            let chat_accounts = accounts[seats..].to_vec();
            Some(ChatLoad::open(ctx, chat_args, chat_targets, chat_accounts).await?)
        }
    };
    if args.rooms > 0 && seated.tasks.is_empty() {
        let _ = stop_tx.send(true);
        return Err(format!(
            "no participant could join: {}",
            crate::report::fmt_tally(&seated.failures)
        )
        .into());
    }

    // Everyone is in: start the clock a moment ahead, for every task alike.
    let warmup_us = args.warmup.as_micros() as u64;
    let clock = Clock {
        t0: Instant::now() + Duration::from_millis(300),
        warmup_us,
        end_us: warmup_us + args.duration.as_micros() as u64,
    };
    let relay_connected = ctx.relay_sample();
    let counters_before = relay_metrics::read(&targets).await;
    let _ = start_tx.send(Some(clock));
    log.say(format_args!(
        "running: warmup {:?}, measuring {:?}; {:.0} audio frames/s in, {:.0} out",
        args.warmup,
        args.duration,
        args.frames_in_per_sec(),
        args.frames_out_per_sec()
    ));
    let voice = async {
        let at = |us: u64| tokio::time::Instant::from_std(clock.t0 + Duration::from_micros(us));
        tokio::time::sleep_until(at(clock.warmup_us)).await;
        let phase = Phase::start(ctx);
        progress_until(&shared, &clock, at(clock.end_us), log).await;
        let phase = phase.end(ctx);
        let drain = drain(&shared, &seated, &args, log).await;
        (phase, drain)
    };
    let (chat, (phase, drain)) = match chat {
        Some(c) => {
            let (c, v) = tokio::join!(c.measure(ctx, clock.t0), voice);
            (Some(c?), v)
        }
        None => (None, voice.await),
    };
    let counters_after = relay_metrics::read(&targets).await;
    let _ = stop_tx.send(true);
    log.say(format_args!(
        "closing {} participant sessions",
        seated.tasks.len()
    ));
    let mut outs = Vec::with_capacity(seated.tasks.len());
    for t in seated.tasks {
        outs.push(t.await?);
    }

    let round = crate::report::round_to;
    let mut r = VoiceReport {
        nodes: targets.urls(),
        participants_per_node: seated.per_node,
        participants_joined: outs.len() as u64,
        connect_failures: seated.failures,
        group_setup_secs: round(group_setup_secs, 2),
        connect_secs: round(connect_secs, 2),
        frames_in_per_sec: args.frames_in_per_sec(),
        frames_out_per_sec: args.frames_out_per_sec(),
        drain_secs: round(drain.as_secs_f64(), 2),
        relay_rss_before_connect_kib: relay_idle.map(|s| s.rss_kib),
        relay_rss_connected_kib: relay_connected.map(|s| s.rss_kib),
        relay_rss_after_kib: phase.relay_end.map(|s| s.rss_kib),
        usage: phase.usage,
        relay_audio: relay_metrics::between(counters_before, counters_after),
        chat,
        ..VoiceReport::default()
    };
    r.reconcile(&args, targets.len(), &outs);
    let [same, cross] = &shared.latency;
    let (same, cross) = (same.merged(), cross.merged());
    let mut all = same.clone();
    all.add(&cross).expect("same bounds");
    r.latency = LatencySummary::of(&all);
    if targets.len() > 1 {
        r.latency_same_node = Some(LatencySummary::of(&same));
        r.latency_cross_node = Some(LatencySummary::of(&cross));
    }
    r.args = Some(args);
    Ok(r)
}

/// Frames expected so far: each room's frames sent × its other
/// participants.
fn expected(shared: &Shared, joined: &[u64]) -> u64 {
    (shared.sent.iter().zip(joined))
        .map(|(s, &n)| s.load(Relaxed) * n.saturating_sub(1))
        .sum()
}

/// Waits until every speaker is done and every frame sent has arrived
/// everywhere, or `--drain` passes; returns how long it waited.
async fn drain(
    shared: &Shared,
    seated: &setup::Seated,
    args: &VoiceArgs,
    log: &crate::Log,
) -> Duration {
    let started = Instant::now();
    loop {
        if shared.speakers_done.load(Relaxed) >= seated.speakers
            && shared.received.load(Relaxed) >= expected(shared, &seated.joined)
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
async fn progress_until(
    shared: &Shared,
    clock: &Clock,
    until: tokio::time::Instant,
    log: &crate::Log,
) {
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            return;
        }
        tokio::time::sleep_until(until.min(now + Duration::from_secs(2))).await;
        let sent: u64 = shared.sent.iter().map(|s| s.load(Relaxed)).sum();
        log.say(format_args!(
            "t={:.1}s audio frames sent {sent}, received {}",
            clock.now_us() as f64 / 1e6,
            shared.received.load(Relaxed)
        ));
    }
}
