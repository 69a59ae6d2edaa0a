//! Scenario `fanout`: one message to a group whose members are all online
//! must reach every one of them; how long does that take?
//!
//! With several relays in `--url`, the group is set up through the first,
//! the sender is on the first and the members are spread round robin over
//! all of them.
//!
//! Setup (`setup.rs`): `--members` + 1 accounts (account 0 is the sender and
//! the group's owner, accounts 1..=N its members; `--accounts FILE` skips
//! registration on reruns), one public group created by account 0 (or an
//! existing one, `--group`), joined by every member with
//! `POST /api/groups/{id}/join` (`--join-concurrency` at a time). Then
//! (`members.rs`) one logged-in socket per member, each served by the
//! shared [`recipient`](crate::recipient): it acks every push at once,
//! ignores presence and group events, and keeps the latency of each
//! message's first arrival.
//!
//! Measurement (`sender.rs`): the sender posts `--messages` group messages
//! one at a time. Message k+1 leaves `--interval` after message k, and never
//! before message k has reached every member (or `--drain` has passed since
//! it was sent), so each fan-out is measured on its own rather than queued
//! behind the previous one. Every `clientMsgId` is a
//! [`MsgTag`](crate::wire::MsgTag) carrying the send time on the run's
//! monotonic clock, which the members read too: a member's latency is its
//! receive time minus that send time, with no clock skew and no shared
//! state between the tasks.
//!
//! After the last message a drain of at most `--drain` waits for stragglers
//! and ACK answers; then every member's log is reconciled with the sender's
//! (81 received but never pushed to a member: lost), and the latencies are
//! summarised per message and across all (member, message) deliveries, with
//! exact percentiles (every sample is kept) (`report.rs`).

mod args;
mod members;
mod report;
mod sender;
mod setup;

pub use args::{FanoutArgs, MAX_GROUP_MEMBERS};
pub use report::{FanoutReport, MessageFigures};
pub use setup::GroupSetup;
pub(crate) use setup::{create_group, join_group};

use crate::client::{self, Api, Targets};
use crate::recipient::RecvSpec;
use crate::report::fmt_us;
use crate::resources::Phase;
use crate::track::Clock;
use crate::{sys, Ctx, Error};
use members::{drained, settled, Progress};
use sender::Sender;
use shared::GroupId;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The sender's number in message tags (members check it).
const SENDER: u32 = 0;

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: FanoutArgs) -> Result<FanoutReport, Error> {
    args.check()?;
    args.check_fd_limit(sys::nofile_limit()?)?;
    let log = &ctx.log;
    let ws_config = client::ws_config(args.read_buffer.max(1024), 4096);
    let targets = Targets::resolve(&ctx.common.url, ctx.common.source_ips, ws_config).await?;
    let target = targets.first();
    let accounts = client::accounts(ctx, target, args.members + 1).await?;
    let group = setup::setup_group(ctx, &Api::new(target), &accounts, &args).await?;

    let relay_idle = ctx.relay_sample();
    let run_id: Arc<str> = ctx.run_id.as_str().into();
    let clock = Clock::unbounded(Instant::now());
    let spec = RecvSpec {
        run_id: run_id.clone(),
        clock,
        keep_latencies: true,
    };
    let progress = Arc::new(Progress::new(args.messages));
    let (stop_tx, stop_rx) = watch::channel(false);
    let members =
        members::connect(ctx, &targets, &accounts, &args, &spec, &progress, &stop_rx).await;
    let connected = members.tasks.len() as u64;
    let sender_ws = match target.open_session(0, &accounts[0].token).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            let _ = stop_tx.send(true);
            return Err(format!("the sender could not connect: {e}").into());
        }
    };
    if connected == 0 {
        let _ = stop_tx.send(true);
        return Err(format!(
            "no member could connect: {}",
            crate::report::fmt_tally(&members.failures)
        )
        .into());
    }
    let mut sender = Sender::new(
        sender_ws,
        run_id,
        clock,
        GroupId(group.group_id),
        args.body_bytes,
    );
    // Let the logins' own traffic (backlogs, notices) pass first.
    sender
        .pump(
            tokio::time::Instant::now() + Duration::from_millis(500),
            |_| false,
        )
        .await;

    let send_phase = Phase::start(ctx);
    let mut next_at = tokio::time::Instant::now();
    for seq in 1..=args.messages as u64 {
        sender.pump(next_at, |_| false).await;
        if !sender.alive {
            break;
        }
        let sent_at = tokio::time::Instant::now();
        sender.send(seq).await;
        let p = &progress;
        sender
            .pump(sent_at + args.drain, |o| {
                settled(o.heard.log.answer(seq), p.reached(seq), connected)
            })
            .await;
        let out = &sender.out;
        log.say(format_args!(
            "message {seq}/{}: {}, reached {}/{connected} members after {}",
            args.messages,
            match (out.heard.log.answer(seq), out.resp_us.get(seq as usize - 1)) {
                (Some(true), Some(Some(us))) => format!("81 after {}", fmt_us(*us)),
                (Some(false), _) => "refused".to_string(),
                _ => "no 81".to_string(),
            },
            p.reached(seq),
            fmt_us(sent_at.elapsed().as_micros() as u64)
        ));
        next_at = sent_at + args.interval;
    }

    // Final drain: stragglers and ACK answers.
    let drain_start = tokio::time::Instant::now();
    let p = &progress;
    sender
        .pump(drain_start + args.drain, |o| {
            drained(&o.heard.log, p, connected)
        })
        .await;
    let drain = drain_start.elapsed();
    let send_phase = send_phase.end(ctx);
    let _ = stop_tx.send(true);
    sender.close().await;
    log.say(format_args!("closing {connected} member sessions"));
    let mut outs = Vec::with_capacity(members.tasks.len());
    for m in members.tasks {
        outs.push(m.await?);
    }

    let round = crate::report::round_to;
    let mut r = report::assemble(&args, connected, &sender.out, &outs);
    r.group = group;
    r.connect_secs = round(members.secs, 2);
    r.connect_failures = members.failures;
    r.nodes = targets.urls();
    r.members_per_node = members.per_node;
    r.drain_secs = round(drain.as_secs_f64(), 2);
    r.send_phase_secs = round(send_phase.wall.as_secs_f64(), 2);
    r.relay_rss_before_connect_kib = relay_idle.map(|s| s.rss_kib);
    r.relay_rss_connected_kib = send_phase.relay_start.map(|s| s.rss_kib);
    r.relay_rss_after_kib = send_phase.relay_end.map(|s| s.rss_kib);
    r.usage = send_phase.usage;
    Ok(r)
}
