//! Scenario `fanout`: one message to a group whose members are all online
//! must reach every one of them; how long does that take?
//!
//! Setup: `--members` + 1 accounts (account 0 is the sender and the group's
//! owner, accounts 1..=N its members; `--accounts FILE` skips registration
//! on reruns), one public group created by account 0 (or an existing one,
//! `--group`), joined by every member with `POST /api/groups/{id}/join`
//! (`--join-concurrency` at a time), then one logged-in socket per member,
//! each served by [`chat::run_recipient`](crate::chat::run_recipient): it
//! acks every push at once, ignores presence and group events, and keeps
//! the latency of each message's first arrival.
//!
//! Measurement: the sender posts `--messages` group messages one at a time.
//! Message k+1 leaves `--interval` after message k, and never before message
//! k has reached every member (or `--drain` has passed since it was sent),
//! so each fan-out is measured on its own rather than queued behind the
//! previous one. Every `clientMsgId` is a [`MsgTag`] carrying the send time
//! on the run's monotonic clock, which the members read too: a member's
//! latency is its receive time minus that send time, with no clock skew and
//! no shared state between the tasks.
//!
//! After the last message a drain of at most `--drain` waits for stragglers
//! and ACK answers; then every member's log is reconciled with the sender's
//! (81 received but never pushed to a member: lost), and the latencies are
//! summarised per message and across all (member, message) deliveries, with
//! exact percentiles (every sample is kept).

use crate::chat::{run_recipient, ProgressSink, RecvOut, RecvSpec};
use crate::client::{self, Account, Api, Target, Ws};
use crate::idle::{close_cleanly, ser_secs};
use crate::latency::LatencySummary;
use crate::report::{self, fmt_mib, fmt_pct, fmt_tally, fmt_us, line, ScenarioReport, Tally};
use crate::track::{reconcile, Reconciled, SendLog};
use crate::wire::{self, frame_type as ft, Lite, MsgTag};
use crate::{parse_duration, sys, Ctx, Error};
use bytes::Bytes;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shared::api::{GroupInfo, GroupSummary, MemberPage};
use shared::{GroupId, Target as To, UserId};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// The sender's number in message tags (members check it).
const SENDER: u32 = 0;

/// PING period on the sender's socket (members ping on their own).
const PING_EVERY: Duration = Duration::from_secs(10);

/// How often the waiting sender looks at the members' progress. It only
/// decides when the next message leaves; latencies are measured by the
/// members themselves.
const POLL: Duration = Duration::from_millis(1);

/// The relay's largest group, owner included (`docs/protocol.md`).
pub const MAX_GROUP_MEMBERS: usize = 20_000;

/// File descriptors needed besides one per socket (HTTP connections, the
/// sender, `/proc` reads, stdio).
const FD_MARGIN: u64 = 64;

/// Most messages per run: every member keeps one latency per message.
const MAX_MESSAGES: usize = 100_000;

/// Options of the `fanout` scenario.
#[derive(Args, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutArgs {
    /// Group members besides the sender, each a distinct user with one
    /// socket (at most 19,999; a member and the generator each need a file
    /// descriptor per socket).
    #[arg(long, default_value_t = 5000)]
    pub members: usize,
    /// Messages the sender posts to the group, one at a time.
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
    /// Time between two sends. A message never leaves before the previous
    /// one reached every member (or `--drain` passed since it was sent), so
    /// each fan-out is measured on its own.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub interval: Duration,
    /// Longest wait for one message to reach every member, and after the
    /// last one for stragglers and ACK answers. A member that has not got a
    /// message by the end of the final drain lost it.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub drain: Duration,
    /// Chat body size in bytes.
    #[arg(long, default_value_t = 32)]
    pub body_bytes: usize,
    /// Sessions opened concurrently before the run.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// `POST /api/groups/{id}/join` requests in flight.
    #[arg(long, default_value_t = 16)]
    pub join_concurrency: usize,
    /// Post to this existing public group instead of creating one; accounts
    /// that are not members yet join it (the report of a run names its
    /// group, so a rerun with `--accounts` can skip the joins).
    #[arg(long)]
    pub group: Option<i64>,
    /// WebSocket read buffer per connection, bytes.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
}

/// Live counters the members report into and the sender watches.
struct Progress {
    /// Members that got message k (index k−1) at least once.
    reached: Vec<AtomicU64>,
    /// First arrivals, all messages.
    delivered: AtomicU64,
    /// 91s received by members.
    ack_resps: AtomicU64,
}

impl Progress {
    fn new(messages: usize) -> Progress {
        Progress {
            reached: (0..messages).map(|_| AtomicU64::new(0)).collect(),
            delivered: AtomicU64::new(0),
            ack_resps: AtomicU64::new(0),
        }
    }

    fn reached(&self, seq: u64) -> u64 {
        seq.checked_sub(1)
            .and_then(|i| self.reached.get(i as usize))
            .map_or(0, |c| c.load(Relaxed))
    }
}

impl ProgressSink for Progress {
    fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Relaxed);
    }
    fn ack_resps(&self, n: u64) {
        self.ack_resps.fetch_add(n, Relaxed);
    }
    fn arrived(&self, seq: u64) {
        if let Some(c) = seq
            .checked_sub(1)
            .and_then(|i| self.reached.get(i as usize))
        {
            c.fetch_add(1, Relaxed);
        }
    }
}

/// Whether sending may move on from message `seq`: it was refused, or it
/// was stored and reached `members` members. (Pure, so it is tested.)
fn settled(answer: Option<bool>, reached: u64, members: u64) -> bool {
    match answer {
        None => false,
        Some(false) => true,
        Some(true) => reached >= members,
    }
}

/// What the sender hands back.
#[derive(Debug, Default)]
struct SenderOut {
    log: SendLog,
    /// Send → 81, µs, per message (index seq−1).
    resp_us: Vec<Option<u64>>,
    /// 92s (the relay sends none for group messages).
    receipts: u64,
    /// Presence, typing, read receipts, group events: ignored.
    notices: u64,
    /// Pushes to the sender (backlog of other scenarios), acked.
    pushes: u64,
    errors: Tally,
    problems: Tally,
}

/// The sender: account 0 on one socket, posting to the group.
struct Sender {
    ws: Ws,
    run_id: Arc<str>,
    t0: Instant,
    group: GroupId,
    body: String,
    out: SenderOut,
    alive: bool,
    next_ping: tokio::time::Instant,
}

impl Sender {
    fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// Sends message `seq`, stamped with the current time.
    async fn send(&mut self, seq: u64) {
        let tag = MsgTag {
            pair: SENDER,
            seq,
            t_us: self.now_us(),
            lag_us: 0,
        }
        .encode(&self.run_id);
        let mut frame = String::with_capacity(128 + self.body.len());
        wire::write_chat(&mut frame, To::Group(self.group), &tag, &self.body);
        match self.ws.send(Message::text(frame)).await {
            Ok(()) => self.out.log.on_sent(seq),
            Err(e) => {
                report::tally(&mut self.out.problems, &format!("sender send: {e}"), 1);
                self.alive = false;
            }
        }
    }

    /// Reads the socket (answers, notices; PINGs on time) until `done` holds
    /// or `until` passes.
    async fn pump(&mut self, until: tokio::time::Instant, done: impl Fn(&SenderOut) -> bool) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while self.alive && !done(&self.out) && tokio::time::Instant::now() < until {
            tokio::select! {
                biased;
                m = self.ws.next() => {
                    if let Some(ack) = self.on_message(m) {
                        if self.ws.send(Message::text(ack)).await.is_err() {
                            self.alive = false;
                        }
                    }
                }
                _ = tokio::time::sleep_until(self.next_ping) => {
                    self.next_ping += PING_EVERY;
                    if self.ws.send(Message::Text(Utf8Bytes::from_static(wire::PING))).await.is_err() {
                        self.alive = false;
                    }
                }
                _ = tick.tick() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Handles one frame; returns an ACK to send for a push.
    fn on_message(
        &mut self,
        m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Option<String> {
        let out = &mut self.out;
        let text = match m {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(c))) => {
                let why = c.map_or("sender closed by relay".into(), |c| {
                    format!("sender closed by relay: {}", u16::from(c.code))
                });
                report::tally(&mut out.problems, &why, 1);
                self.alive = false;
                return None;
            }
            Some(Ok(_)) => return None,
            Some(Err(e)) => {
                report::tally(&mut out.problems, &format!("sender read: {e}"), 1);
                self.alive = false;
                return None;
            }
            None => {
                report::tally(&mut out.problems, "sender socket ended", 1);
                self.alive = false;
                return None;
            }
        };
        if wire::fast_type(text.as_str()) == Some(ft::PONG) {
            return None;
        }
        let now_us = self.t0.elapsed().as_micros() as u64;
        let Ok(f) = Lite::parse(text.as_str()) else {
            report::tally(&mut out.problems, "unparsable frame", 1);
            return None;
        };
        let tag = f
            .client_msg_id
            .as_deref()
            .and_then(|c| MsgTag::decode(c, &self.run_id).ok())
            .filter(|t| t.pair == SENDER);
        match f.ty {
            ft::CHAT_RESP => {
                let id = f
                    .msg_id
                    .as_deref()
                    .and_then(|s| uuid::Uuid::try_parse(s).ok());
                let (Some(tag), Some(id)) = (tag, id) else {
                    report::tally(
                        &mut out.problems,
                        "81 without our clientMsgId or a msgId",
                        1,
                    );
                    return None;
                };
                if out.log.on_stored(tag.seq, id.as_u128()) == crate::track::Answer::First {
                    let i = (tag.seq - 1) as usize;
                    if out.resp_us.len() <= i {
                        out.resp_us.resize(i + 1, None);
                    }
                    out.resp_us[i] = Some(now_us.saturating_sub(tag.t_us));
                }
            }
            ft::ERROR => {
                report::tally(&mut out.errors, f.code.as_deref().unwrap_or("?"), 1);
                if let Some(tag) = tag {
                    out.log.on_refused(tag.seq);
                }
            }
            ft::CHAT => {
                out.pushes += 1;
                return f.msg_id.as_deref().map(wire::ack);
            }
            ft::DELIVERED => out.receipts += 1,
            ft::ACK_RESP | ft::PONG => {}
            t if wire::is_notice(t) => out.notices += 1,
            ft::HEARTBEAT_TIMEOUT => {
                report::tally(&mut out.problems, "sender heartbeat timeout", 1)
            }
            other => report::tally(&mut out.problems, &format!("sender got type {other}"), 1),
        }
        None
    }
}

/// The group as set up for the run.
struct GroupSetup {
    id: GroupId,
    /// Members as the relay counts them after the joins (owner included).
    member_count: u64,
    /// Join requests made (accounts that were not members yet).
    joins: u64,
    /// Bytes of all join answers.
    join_response_bytes: u64,
    secs: f64,
}

/// Per-message figures.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageFigures {
    /// The message's number, 1, 2, 3, …
    pub seq: u64,
    /// `"stored"` (81), `"refused"` (type 0) or `"unanswered"`.
    pub status: &'static str,
    /// Send → 81, µs.
    pub resp_us: Option<u64>,
    /// Members that got it.
    pub reached: u64,
    /// Members connected.
    pub expected: u64,
    /// Send → receive over the members that got it; `maxUs` is the time
    /// until the last of them had it.
    pub latency: LatencySummary,
}

/// Results of a fan-out run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutReport {
    /// The options used.
    #[serde(skip)]
    pub args: FanoutArgs,
    /// The group posted to.
    pub group_id: i64,
    /// Its members as the relay counted them (owner included).
    pub group_members: u64,
    /// Join requests made during setup.
    pub joins: u64,
    /// Total size of the join answers, bytes.
    pub join_response_bytes: u64,
    /// Group creation and joins, seconds.
    pub group_setup_secs: f64,
    /// Opening and logging in every member socket, seconds.
    pub connect_secs: f64,
    /// Members whose socket opened and logged in.
    pub members_connected: u64,
    /// Members that could not connect, by reason.
    pub connect_failures: Tally,
    /// Messages sent.
    pub sent: u64,
    /// Messages stored (81).
    pub stored: u64,
    /// Messages refused with a type 0 error.
    pub refused: u64,
    /// Messages with neither 81 nor error.
    pub unanswered: u64,
    /// (member, message) deliveries expected: connected members × stored
    /// messages.
    pub expected: u64,
    /// Distinct (member, message) deliveries.
    pub delivered: u64,
    /// Send → receive over every delivery.
    pub latency: LatencySummary,
    /// Per message, the time until its last member got it (p50 and max
    /// across messages).
    pub last_member: LatencySummary,
    /// Send → 81.
    pub resp_latency: LatencySummary,
    /// Stored messages a connected member never got.
    pub lost: u64,
    /// A second distinct msgId for one message at one member.
    pub duplicates: u64,
    /// The same msgId pushed again to a member (legal at-least-once
    /// redelivery, counted apart).
    pub redeliveries: u64,
    /// First arrivals after a later message.
    pub out_of_order: u64,
    /// A member got a msgId other than the 81's.
    pub id_mismatch: u64,
    /// Delivered although the relay answered with an error.
    pub delivered_after_error: u64,
    /// Pushes not tagged by this sender, or for messages never sent.
    pub misrouted: u64,
    /// Pushes of earlier runs (backlog on reused accounts), acked.
    pub stale: u64,
    /// Presence, typing, read-receipt and group-event frames, ignored.
    pub notices: u64,
    /// ACKs sent by members.
    pub acks_sent: u64,
    /// 91 answers received by members.
    pub ack_resps: u64,
    /// Type 0 errors by code.
    pub errors: Tally,
    /// How long the final drain took, seconds.
    pub drain_secs: f64,
    /// First send to the end of the final drain, seconds.
    pub send_phase_secs: f64,
    /// Relay VmRSS before the members connected, KiB.
    pub relay_rss_before_connect_kib: Option<u64>,
    /// Relay VmRSS with every member connected, before the first send, KiB.
    pub relay_rss_connected_kib: Option<u64>,
    /// Relay VmRSS after the final drain, KiB.
    pub relay_rss_after_kib: Option<u64>,
    /// Relay CPU during the send phase, percent of one core.
    pub relay_cpu_pct: Option<f64>,
    /// The generator's CPU during the send phase, percent of one core.
    pub loadgen_cpu_pct: Option<f64>,
    /// Unexpected events by kind (closed sockets, slow-consumer closes, …).
    pub problems: Tally,
    /// Figures of each message.
    pub per_message: Vec<MessageFigures>,
}

impl ScenarioReport for FanoutReport {
    fn scenario(&self) -> &'static str {
        "fanout"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.args).unwrap_or_default()
    }

    fn results(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn human(&self) -> String {
        let a = &self.args;
        let mut s = String::new();
        line(
            &mut s,
            "load",
            format!(
                "group {} ({} members), {} messages of {} B, interval {:?}, drain {:?}",
                self.group_id, self.group_members, a.messages, a.body_bytes, a.interval, a.drain
            ),
        );
        line(
            &mut s,
            "setup",
            format!(
                "{} joins in {:.1} s ({:.1} MiB of answers), {} members connected in {:.1} s",
                self.joins,
                self.group_setup_secs,
                self.join_response_bytes as f64 / (1024.0 * 1024.0),
                self.members_connected,
                self.connect_secs
            ),
        );
        if !self.connect_failures.is_empty() {
            line(
                &mut s,
                "connect failures",
                fmt_tally(&self.connect_failures),
            );
        }
        line(
            &mut s,
            "messages",
            format!(
                "sent {}, stored (81) {}, refused {}, unanswered {}",
                self.sent, self.stored, self.refused, self.unanswered
            ),
        );
        line(
            &mut s,
            "deliveries",
            format!("{} of {} expected", self.delivered, self.expected),
        );
        line(&mut s, "send → receive latency", self.latency.human());
        line(
            &mut s,
            "until the last member",
            if self.last_member.count == 0 {
                "no samples".to_string()
            } else {
                format!(
                    "p50 {}, max {} (over {} messages)",
                    fmt_us(self.last_member.p50_us),
                    fmt_us(self.last_member.max_us),
                    self.last_member.count
                )
            },
        );
        line(&mut s, "send → 81 latency", self.resp_latency.human());
        line(
            &mut s,
            "lost / duplicates / disorder",
            format!(
                "{} / {} / {}",
                self.lost, self.duplicates, self.out_of_order
            ),
        );
        line(&mut s, "redeliveries", self.redeliveries);
        line(
            &mut s,
            "misrouted / id mismatch",
            format!("{} / {}", self.misrouted, self.id_mismatch),
        );
        if self.stale > 0 {
            line(&mut s, "backlog of earlier runs", self.stale);
        }
        line(&mut s, "errors (type 0)", fmt_tally(&self.errors));
        line(
            &mut s,
            "acks answered / notices",
            format!(
                "{} of {} / {} ignored",
                self.ack_resps, self.acks_sent, self.notices
            ),
        );
        line(&mut s, "drain", format!("{:.2} s", self.drain_secs));
        line(
            &mut s,
            "relay RSS idle/conn/after",
            format!(
                "{} / {} / {}",
                fmt_mib(self.relay_rss_before_connect_kib),
                fmt_mib(self.relay_rss_connected_kib),
                fmt_mib(self.relay_rss_after_kib)
            ),
        );
        line(
            &mut s,
            "CPU relay / loadgen",
            format!(
                "{} / {} of one core (send phase)",
                fmt_pct(self.relay_cpu_pct),
                fmt_pct(self.loadgen_cpu_pct)
            ),
        );
        line(&mut s, "problems", fmt_tally(&self.problems));
        let _ = writeln!(
            s,
            "  {:>5} {:>13} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "msg", "reached", "81", "p50", "p99", "p99.9", "last"
        );
        for m in &self.per_message {
            let l = &m.latency;
            let t = |us: u64| if l.count == 0 { "-".into() } else { fmt_us(us) };
            let _ = writeln!(
                s,
                "  {:>5} {:>13} {:>10} {:>10} {:>10} {:>10} {:>10}{}",
                m.seq,
                format!("{}/{}", m.reached, m.expected),
                m.resp_us.map_or("-".into(), fmt_us),
                t(l.p50_us),
                t(l.p99_us),
                t(l.p999_us),
                t(l.max_us),
                if m.status == "stored" {
                    String::new()
                } else {
                    format!("  ({})", m.status)
                }
            );
        }
        s
    }

    fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let mut check = |n: u64, what: &str| {
            if n > 0 {
                f.push(format!("{n} {what}"));
            }
        };
        check(
            self.lost,
            "deliveries lost (a connected member never got a stored message)",
        );
        check(
            self.duplicates,
            "duplicate deliveries (second msgId for one message)",
        );
        check(self.out_of_order, "deliveries out of order");
        check(
            self.id_mismatch,
            "deliveries with a msgId other than the 81's",
        );
        check(self.delivered_after_error, "deliveries of refused messages");
        check(self.misrouted, "pushes misrouted or never sent");
        check(self.refused, "messages refused by the relay");
        check(self.unanswered, "messages got no 81 within the drain");
        let failed =
            self.args.members as u64 - self.members_connected.min(self.args.members as u64);
        check(failed, "members could not connect");
        if self.delivered == 0 {
            f.push("nothing was delivered".into());
        }
        f
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.redeliveries > 0 {
            w.push(format!(
                "{} redeliveries (same msgId pushed again to a member: an ACK was late)",
                self.redeliveries
            ));
        }
        if self.errors.contains_key("rate_limited") {
            w.push("rate limited: start the relay with a higher --rate-limit/--rate-burst".into());
        }
        if self.group_members > self.args.members as u64 + 1 {
            w.push(format!(
                "the group has {} members, {} of them not in this run (offline)",
                self.group_members,
                self.group_members - self.args.members as u64 - 1
            ));
        }
        report::delivery_warnings(
            &mut w,
            self.acks_sent,
            self.ack_resps,
            self.stale,
            &self.problems,
            self.relay_rss_connected_kib.is_some(),
        );
        w
    }
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: FanoutArgs) -> Result<FanoutReport, Error> {
    check_args(&args)?;
    let fds = sys::nofile_limit()?;
    let needed = args.members as u64 + 1 + FD_MARGIN;
    if needed > fds {
        return Err(format!(
            "--members {} needs about {needed} file descriptors but this process may hold {fds} (ulimit -n)",
            args.members
        )
        .into());
    }
    let log = &ctx.log;
    let ws_config = client::ws_config(args.read_buffer.max(1024), 4096);
    let target = Target::resolve(&ctx.common.url, ctx.common.source_ips, ws_config).await?;
    let accounts = client::accounts(ctx, &target, args.members + 1).await?;
    let api = Api::new(&target);
    let group = setup_group(ctx, &api, &accounts, &args).await?;

    // Members: each socket is served as soon as it has logged in, so the
    // first ones heartbeat while the rest connect.
    let relay_idle = ctx.relay_sample();
    let run_id: Arc<str> = ctx.run_id.as_str().into();
    let t0 = Instant::now();
    let spec = RecvSpec {
        run_id: run_id.clone(),
        t0,
        warmup_us: 0,
        end_us: u64::MAX,
        keep_latencies: true,
    };
    let progress = Arc::new(Progress::new(args.messages));
    let (stop_tx, stop_rx) = watch::channel(false);
    log.say(format_args!(
        "opening {} member sessions ({} at a time)",
        args.members, args.connect_concurrency
    ));
    let connect_start = Instant::now();
    let mut members = Vec::with_capacity(args.members);
    let mut connect_failures = Tally::new();
    {
        let mut opening = futures_util::stream::iter(1..=args.members)
            .map(|i| {
                let (target, token) = (&target, accounts[i].token.clone());
                async move { target.open_session(i, &token).await }
            })
            .buffer_unordered(args.connect_concurrency.max(1));
        let mut last_log = Instant::now();
        while let Some(r) = opening.next().await {
            match r {
                Ok((ws, _)) => members.push(tokio::spawn(run_recipient(
                    ws,
                    SENDER,
                    args.messages,
                    spec.clone(),
                    Some(progress.clone() as Arc<dyn ProgressSink>),
                    stop_rx.clone(),
                ))),
                Err(e) => report::tally(&mut connect_failures, &e.to_string(), 1),
            }
            if last_log.elapsed() >= Duration::from_secs(2) {
                last_log = Instant::now();
                log.say(format_args!(
                    "{} members connected, {} failed",
                    members.len(),
                    connect_failures.values().sum::<u64>()
                ));
            }
        }
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();
    let connected = members.len() as u64;
    log.say(format_args!(
        "{connected} members connected in {connect_secs:.1} s; failures: {}",
        fmt_tally(&connect_failures)
    ));
    let sender_ws = match target.open_session(0, &accounts[0].token).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            let _ = stop_tx.send(true);
            return Err(format!("the sender could not connect: {e}").into());
        }
    };
    if connected == 0 {
        let _ = stop_tx.send(true);
        return Err(format!("no member could connect: {}", fmt_tally(&connect_failures)).into());
    }
    let mut sender = Sender {
        ws: sender_ws,
        run_id,
        t0,
        group: group.id,
        body: wire::filler_body(args.body_bytes),
        out: SenderOut::default(),
        alive: true,
        next_ping: tokio::time::Instant::now() + PING_EVERY,
    };
    // Let the logins' own traffic (backlogs, notices) pass first.
    sender
        .pump(
            tokio::time::Instant::now() + Duration::from_millis(500),
            |_| false,
        )
        .await;

    let relay_connected = ctx.relay_sample();
    let self_start = sys::ProcSample::read_self().ok();
    let send_start = Instant::now();
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
                settled(o.log.answer(seq), p.reached(seq), connected)
            })
            .await;
        log.say(format_args!(
            "message {seq}/{}: {}, reached {}/{connected} members after {}",
            args.messages,
            match (
                sender.out.log.answer(seq),
                sender.out.resp_us.get(seq as usize - 1)
            ) {
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
            (1..=o.log.sent()).all(|q| settled(o.log.answer(q), p.reached(q), connected))
                && p.ack_resps.load(Relaxed) >= p.delivered.load(Relaxed)
        })
        .await;
    let drain = drain_start.elapsed();
    let send_wall = send_start.elapsed();
    let relay_end = ctx.relay_sample();
    let self_end = sys::ProcSample::read_self().ok();
    let _ = stop_tx.send(true);
    if sender.alive {
        close_cleanly(&mut sender.ws).await;
    }
    log.say(format_args!("closing {connected} member sessions"));
    let mut outs = Vec::with_capacity(members.len());
    for m in members {
        outs.push(m.await?);
    }

    let ticks = sys::clock_ticks_per_sec();
    let cpu = |a: Option<sys::ProcSample>, b: Option<sys::ProcSample>| {
        Some(report::round_to(
            report::cpu_percent(b?.cpu_ticks.saturating_sub(a?.cpu_ticks), ticks, send_wall),
            1,
        ))
    };
    let mut r = assemble(&args, connected, &sender.out, &outs);
    r.group_id = group.id.0;
    r.group_members = group.member_count;
    r.joins = group.joins;
    r.join_response_bytes = group.join_response_bytes;
    r.group_setup_secs = report::round_to(group.secs, 2);
    r.connect_secs = report::round_to(connect_secs, 2);
    r.connect_failures = connect_failures;
    r.drain_secs = report::round_to(drain.as_secs_f64(), 2);
    r.send_phase_secs = report::round_to(send_wall.as_secs_f64(), 2);
    r.relay_rss_before_connect_kib = relay_idle.map(|s| s.rss_kib);
    r.relay_rss_connected_kib = relay_connected.map(|s| s.rss_kib);
    r.relay_rss_after_kib = relay_end.map(|s| s.rss_kib);
    r.relay_cpu_pct = cpu(relay_connected, relay_end);
    r.loadgen_cpu_pct = cpu(self_start, self_end);
    Ok(r)
}

fn check_args(args: &FanoutArgs) -> Result<(), Error> {
    if args.members == 0 || args.members + 1 > MAX_GROUP_MEMBERS {
        return Err(format!(
            "--members must be 1..={} (the relay's largest group is {MAX_GROUP_MEMBERS}, sender included)",
            MAX_GROUP_MEMBERS - 1
        )
        .into());
    }
    if args.messages == 0 || args.messages > MAX_MESSAGES {
        return Err(format!("--messages must be 1..={MAX_MESSAGES}").into());
    }
    if args.drain.is_zero() {
        return Err("--drain must be positive".into());
    }
    if args.body_bytes == 0 || args.body_bytes > shared::limits::MAX_BODY_BYTES {
        return Err(format!(
            "--body-bytes must be 1..={}",
            shared::limits::MAX_BODY_BYTES
        )
        .into());
    }
    Ok(())
}

/// Creates the group as account 0 (or takes `--group`), has every account
/// that is not a member yet join it, and checks that all of them are.
///
/// Group changes answer with a [`GroupSummary`] alone; the members are read
/// a page at a time: the first page with `GET /api/groups/{id}`, the rest
/// with `GET /api/groups/{id}/members?after=&limit=`.
async fn setup_group(
    ctx: &Ctx,
    api: &Api,
    accounts: &[Account],
    args: &FanoutArgs,
) -> Result<GroupSetup, Error> {
    let log = &ctx.log;
    let started = Instant::now();
    let owner = &accounts[0];
    let group = match args.group {
        None => {
            let name = format!("lg{} fanout {}", ctx.run_id, args.members);
            create_group(api, owner, &name).await?.group_id
        }
        Some(id) => GroupId(id),
    };
    let (_, members) = group_members(api, owner, group).await?;
    let to_join: Vec<&Account> = accounts
        .iter()
        .filter(|a| !members.contains(&a.user_id))
        .collect();
    log.say(format_args!(
        "group {}: {} accounts join ({} in flight)",
        group.0,
        to_join.len(),
        args.join_concurrency
    ));
    let path = format!("/api/groups/{}/join", group.0);
    let total = to_join.len();
    let done = AtomicUsize::new(0);
    let last_log = std::sync::Mutex::new(Instant::now());
    let results: Vec<Result<u64, Error>> = futures_util::stream::iter(&to_join)
        .map(|a| {
            let (path, done, last_log) = (&path, &done, &last_log);
            async move {
                let r = api
                    .request(hyper::Method::POST, path, Some(&a.token), None)
                    .await?;
                if r.status != 200 {
                    return Err(format!("join as {}: {}", a.username, r.describe()).into());
                }
                let joined: GroupSummary = parse(&r.body, "join answer")?;
                if joined.group_id != group {
                    return Err(format!(
                        "join as {}: answered for group {}",
                        a.username, joined.group_id.0
                    )
                    .into());
                }
                let n = done.fetch_add(1, Relaxed) + 1;
                let mut last = last_log.lock().unwrap();
                if last.elapsed() >= Duration::from_secs(2) {
                    *last = Instant::now();
                    log.say(format_args!("joined {n}/{total}"));
                }
                Ok(r.body.len() as u64)
            }
        })
        .buffer_unordered(args.join_concurrency.max(1))
        .collect()
        .await;
    let mut join_response_bytes = 0;
    for r in results {
        join_response_bytes += r?;
    }
    let (summary, now_in) = group_members(api, owner, group).await?;
    let missing = accounts
        .iter()
        .filter(|a| !now_in.contains(&a.user_id))
        .count();
    if missing > 0 {
        return Err(format!(
            "group {}: {missing} of the run's accounts are not members after joining",
            group.0
        )
        .into());
    }
    let secs = started.elapsed().as_secs_f64();
    log.say(format_args!(
        "group {} has {} members; setup took {secs:.1} s ({:.1} MiB of join answers)",
        group.0,
        summary.member_count,
        join_response_bytes as f64 / (1024.0 * 1024.0)
    ));
    Ok(GroupSetup {
        id: group,
        member_count: summary.member_count as u64,
        joins: to_join.len() as u64,
        join_response_bytes,
        secs,
    })
}

/// Creates a public group owned by `owner`.
async fn create_group(api: &Api, owner: &Account, name: &str) -> Result<GroupSummary, Error> {
    let body = serde_json::json!({ "name": name, "public": true });
    let r = api
        .request(
            hyper::Method::POST,
            "/api/groups",
            Some(&owner.token),
            Some(Bytes::from(serde_json::to_vec(&body)?)),
        )
        .await?;
    if !matches!(r.status, 200 | 201) {
        return Err(format!("create group: {}", r.describe()).into());
    }
    parse(&r.body, "group summary")
}

/// The group's summary and all its members as `viewer` sees them, page by
/// page.
async fn group_members(
    api: &Api,
    viewer: &Account,
    group: GroupId,
) -> Result<(GroupSummary, HashSet<UserId>), Error> {
    let info: GroupInfo = get(api, viewer, &format!("/api/groups/{}", group.0)).await?;
    let mut members: HashSet<UserId> = info.members.iter().map(|m| m.user_id).collect();
    let mut next = info.next;
    while let Some(after) = next {
        let path = members_page_path(group, &after);
        let page: MemberPage = get(api, viewer, &path).await?;
        if page.next.as_deref() == Some(after.as_str()) {
            return Err(format!(
                "group {}: member pages do not advance past {after:?}",
                group.0
            )
            .into());
        }
        members.extend(page.members.iter().map(|m| m.user_id));
        next = page.next;
    }
    Ok((info.summary, members))
}

/// `GET /api/groups/{id}/members` for the page after `after`, as large as
/// the relay allows.
fn members_page_path(group: GroupId, after: &str) -> String {
    let mut path = format!(
        "/api/groups/{}/members?limit={}&after=",
        group.0,
        shared::limits::MAX_MEMBER_PAGE
    );
    for b in after.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path
}

/// A `GET` of the API as `viewer`, its JSON answer parsed.
async fn get<T: DeserializeOwned>(api: &Api, viewer: &Account, path: &str) -> Result<T, Error> {
    let r = api
        .request(hyper::Method::GET, path, Some(&viewer.token), None)
        .await?;
    if r.status != 200 {
        return Err(format!("GET {path}: {}", r.describe()).into());
    }
    parse(&r.body, path)
}

fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| format!("unexpected {what}: {e}").into())
}

/// Combines the sender's and the members' results (pure, so it is tested).
fn assemble(
    args: &FanoutArgs,
    connected: u64,
    sender: &SenderOut,
    members: &[RecvOut],
) -> FanoutReport {
    let sent = sender.log.sent();
    let mut verdict = Reconciled::default();
    let mut errors = sender.errors.clone();
    let mut problems = sender.problems.clone();
    let (mut delivered, mut duplicates, mut redeliveries, mut out_of_order) = (0, 0, 0, 0);
    let (mut misrouted, mut stale, mut notices, mut acks_sent, mut ack_resps) =
        (0, 0, sender.notices, 0, 0);
    for m in members {
        verdict.add(&reconcile(&sender.log, &m.log));
        delivered += m.log.unique;
        duplicates += m.log.duplicates;
        redeliveries += m.log.redeliveries;
        out_of_order += m.log.out_of_order;
        misrouted += m.misrouted;
        stale += m.stale;
        notices += m.notices;
        acks_sent += m.acks_sent;
        ack_resps += m.ack_resps;
        report::merge_tally(&mut errors, &m.errors);
        report::merge_tally(&mut problems, &m.problems);
    }
    if sender.pushes > 0 {
        report::tally(&mut problems, "pushes to the sender (acked)", sender.pushes);
    }
    if sender.receipts > 0 {
        report::tally(
            &mut problems,
            "92 receipts for group messages",
            sender.receipts,
        );
    }
    let mut all = Vec::with_capacity((connected * sent) as usize);
    let mut last = Vec::with_capacity(sent as usize);
    let mut resp = Vec::with_capacity(sent as usize);
    let mut per_message = Vec::with_capacity(sent as usize);
    for seq in 1..=sent {
        let i = (seq - 1) as usize;
        let mut lat: Vec<u64> = members
            .iter()
            .filter_map(|m| m.latencies_us.get(i).copied().flatten())
            .collect();
        all.extend_from_slice(&lat);
        let latency = LatencySummary::of_values(&mut lat);
        if latency.count > 0 {
            last.push(latency.max_us);
        }
        let resp_us = sender.resp_us.get(i).copied().flatten();
        resp.extend(resp_us);
        per_message.push(MessageFigures {
            seq,
            status: match sender.log.answer(seq) {
                Some(true) => "stored",
                Some(false) => "refused",
                None => "unanswered",
            },
            resp_us,
            reached: latency.count,
            expected: connected,
            latency,
        });
    }
    let stored = sender.log.stored();
    FanoutReport {
        group_id: 0,
        group_members: 0,
        joins: 0,
        join_response_bytes: 0,
        group_setup_secs: 0.0,
        connect_secs: 0.0,
        members_connected: connected,
        connect_failures: Tally::new(),
        sent,
        stored,
        refused: sender.log.refused(),
        unanswered: sent - stored - sender.log.refused(),
        expected: connected * stored,
        delivered,
        latency: LatencySummary::of_values(&mut all),
        last_member: LatencySummary::of_values(&mut last),
        resp_latency: LatencySummary::of_values(&mut resp),
        lost: verdict.lost,
        duplicates,
        redeliveries,
        out_of_order,
        id_mismatch: verdict.id_mismatch,
        delivered_after_error: verdict.delivered_after_refusal,
        misrouted: misrouted + verdict.phantom,
        stale,
        notices,
        acks_sent,
        ack_resps,
        errors,
        drain_secs: 0.0,
        send_phase_secs: 0.0,
        relay_rss_before_connect_kib: None,
        relay_rss_connected_kib: None,
        relay_rss_after_kib: None,
        relay_cpu_pct: None,
        loadgen_cpu_pct: None,
        problems,
        per_message,
        args: args.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(members: usize, messages: usize) -> FanoutArgs {
        FanoutArgs {
            members,
            messages,
            interval: Duration::from_millis(10),
            drain: Duration::from_secs(1),
            body_bytes: 8,
            connect_concurrency: 4,
            join_concurrency: 4,
            group: None,
            read_buffer: 4096,
        }
    }

    fn member(arrivals: &[(u64, u128, u64)]) -> RecvOut {
        let mut m = RecvOut::new(4, true);
        for &(seq, id, us) in arrivals {
            if let crate::track::Arrival::First { .. } = m.log.record(seq, id) {
                let i = (seq - 1) as usize;
                if m.latencies_us.len() <= i {
                    m.latencies_us.resize(i + 1, None);
                }
                m.latencies_us[i] = Some(us);
            }
        }
        m
    }

    #[test]
    fn sending_moves_on_when_a_message_is_refused_or_reached_everyone() {
        assert!(!settled(None, 10, 10));
        assert!(settled(Some(false), 0, 10));
        assert!(!settled(Some(true), 9, 10));
        assert!(settled(Some(true), 10, 10));
        assert!(settled(Some(true), 11, 10));
    }

    #[test]
    fn progress_counts_first_arrivals_per_message() {
        let p = Progress::new(3);
        p.arrived(1);
        p.arrived(3);
        p.arrived(3);
        p.arrived(0); // not a message number
        p.arrived(4); // beyond the run
        assert_eq!(
            (
                p.reached(0),
                p.reached(1),
                p.reached(2),
                p.reached(3),
                p.reached(4)
            ),
            (0, 1, 0, 2, 0)
        );
    }

    #[test]
    fn assemble_summarises_per_message_and_finds_loss() {
        let mut s = SenderOut::default();
        for q in 1..=3 {
            s.log.on_sent(q);
        }
        s.log.on_stored(1, 101);
        s.log.on_stored(2, 102);
        s.log.on_refused(3);
        s.resp_us = vec![Some(900), Some(700)];
        // Three members: the third never gets message 2 (lost), the second
        // gets message 1 twice (a redelivery) and message 2 under another
        // msgId as well (a duplicate).
        let mut m1 = member(&[(1, 101, 1_000), (2, 102, 2_000)]);
        let mut m2 = member(&[(1, 101, 3_000), (1, 101, 9_999), (2, 102, 4_000)]);
        m2.log.record(2, 999);
        let m3 = member(&[(1, 101, 5_000)]);
        m1.acks_sent = 2;
        m1.ack_resps = 2;
        m1.notices = 4;
        let r = assemble(&args(3, 3), 3, &s, &[m1, m2, m3]);
        assert_eq!((r.sent, r.stored, r.refused, r.unanswered), (3, 2, 1, 0));
        assert_eq!((r.expected, r.delivered, r.lost), (6, 5, 1));
        assert_eq!((r.duplicates, r.redeliveries, r.out_of_order), (1, 1, 0));
        assert_eq!((r.notices, r.acks_sent, r.ack_resps), (4, 2, 2));
        let m = &r.per_message;
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].reached, m[0].expected, m[0].status), (3, 3, "stored"));
        assert_eq!(
            (m[0].latency.p50_us, m[0].latency.max_us),
            (3_000, 5_000),
            "the redelivery's later time must not count"
        );
        assert_eq!((m[1].reached, m[1].latency.max_us), (2, 4_000));
        assert_eq!(
            (m[2].reached, m[2].status, m[2].resp_us),
            (0, "refused", None)
        );
        assert_eq!(r.latency.count, 5);
        assert_eq!((r.latency.p50_us, r.latency.max_us), (3_000, 5_000));
        // Last member per message: 5 ms and 4 ms.
        assert_eq!((r.last_member.count, r.last_member.max_us), (2, 5_000));
        assert_eq!((r.resp_latency.count, r.resp_latency.max_us), (2, 900));
        let f = r.failures();
        assert!(f.iter().any(|x| x.contains("lost")), "{f:?}");
        assert!(f.iter().any(|x| x.contains("duplicate")), "{f:?}");
        assert!(f.iter().any(|x| x.contains("refused")), "{f:?}");
        assert!(r.warnings().iter().any(|w| w.contains("redeliveries")));
        let v = r.results();
        assert_eq!(v["perMessage"][0]["latency"]["maxUs"], 5_000);
        assert_eq!(v["lost"], 1);
        assert!(r.human().contains("3/3"));
    }

    #[test]
    fn a_clean_run_passes_and_missing_members_fail_it() {
        let mut s = SenderOut::default();
        s.log.on_sent(1);
        s.log.on_stored(1, 7);
        s.resp_us = vec![Some(100)];
        let ms: Vec<RecvOut> = (0..4).map(|k| member(&[(1, 7, 1_000 + k)])).collect();
        let r = assemble(&args(4, 1), 4, &s, &ms);
        assert!(r.failures().is_empty(), "{:?}", r.failures());
        assert_eq!((r.expected, r.delivered, r.lost), (4, 4, 0));
        // Five members wanted, four connected: the run fails although
        // every connected member got everything.
        let r = assemble(&args(5, 1), 4, &s, &ms);
        assert_eq!(
            r.failures(),
            vec!["1 members could not connect".to_string()]
        );
        // An unanswered message fails it too.
        let mut s2 = SenderOut::default();
        s2.log.on_sent(1);
        let r = assemble(&args(4, 1), 4, &s2, &[RecvOut::new(1, true)]);
        assert_eq!(r.unanswered, 1);
        assert!(r.failures().iter().any(|f| f.contains("no 81")));
        // A member log that saw nothing is not a loss for an unstored message.
        assert_eq!(r.lost, 0);
    }

    #[test]
    fn member_page_cursors_are_escaped() {
        let page = format!(
            "/api/groups/7/members?limit={}&after=",
            shared::limits::MAX_MEMBER_PAGE
        );
        assert_eq!(
            members_page_path(GroupId(7), "lgab12u9"),
            format!("{page}lgab12u9")
        );
        assert_eq!(
            members_page_path(GroupId(7), "a b&c=d/é~"),
            format!("{page}a%20b%26c%3Dd%2F%C3%A9~")
        );
    }

    #[test]
    fn answers_parse_as_the_shared_api_types() {
        let summary = GroupSummary {
            group_id: GroupId(3),
            name: "g".into(),
            owner_id: UserId(1),
            public: true,
            member_count: 2,
        };
        let body = serde_json::to_vec(&summary).unwrap();
        assert_eq!(parse::<GroupSummary>(&body, "x").unwrap(), summary);
        let err = parse::<GroupSummary>(b"[]", "join answer").unwrap_err();
        assert!(
            err.to_string().starts_with("unexpected join answer"),
            "{err}"
        );
    }

    #[test]
    fn options_are_checked() {
        assert!(check_args(&args(5000, 20)).is_ok());
        assert!(check_args(&args(19_999, 1)).is_ok());
        assert!(check_args(&args(20_000, 1)).is_err());
        assert!(check_args(&args(0, 1)).is_err());
        assert!(check_args(&args(1, 0)).is_err());
        let mut a = args(1, 1);
        a.body_bytes = 0;
        assert!(check_args(&a).is_err());
    }
}
