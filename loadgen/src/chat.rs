//! Scenario `chat`: sender→recipient pairs, each a separate user with one
//! socket, measuring throughput, end-to-end latency and delivery correctness.
//!
//! How a message is accounted for:
//! - its `clientMsgId` is a [`MsgTag`]: pair, sequence number and intended
//!   send time (µs since the run's shared start instant). Sender and
//!   recipient run in this process on one monotonic clock, so the recipient
//!   computes the end-to-end latency from the push alone, without any state
//!   shared with the sender;
//! - the sender keeps a [`SendLog`] (what got an 81, what was refused), the
//!   recipient a [`RecvLog`] (what arrived, in which order, how often); after
//!   the drain they are reconciled into lost / duplicate / out-of-order.
//!
//! Load shape: closed loop by default (each sender keeps `--window` messages
//! awaiting their 81), or open loop with `--rate`, where every message has an
//! intended send time on a fixed schedule and latency is measured from that
//! time. The open loop avoids coordinated omission: when the relay stalls,
//! the messages that should have been sent meanwhile are charged the stall
//! instead of silently not being sent. The window still applies in open loop
//! (it is the client's backpressure); when it holds messages back the report
//! says so.
//!
//! Phases on the shared clock: `[0, warmup)` warm-up (sent, checked, not in
//! the statistics), `[warmup, warmup+duration)` measured, then a drain of up
//! to `--drain` during which nothing new is sent and outstanding 81s and
//! pushes are awaited; it ends early once everything is accounted for.

use crate::client::{self, Account, Target, Ws};
use crate::idle::{close_cleanly, ser_secs};
use crate::latency::{new_histogram, record_us, LatencySummary};
use crate::report::{self, fmt_mib, fmt_pct, fmt_tally, line, ScenarioReport, Tally};
use crate::track::{reconcile, Answer, Arrival, Reconciled, RecvLog, SendLog};
use crate::wire::{self, frame_type as ft, Lite, MsgTag, NotOurs};
use crate::{parse_duration, sys, Ctx, Error};
use clap::Args;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use shared::Target as To;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames fed before a flush, and frames read before the task returns to
/// sending: large enough to amortise syscalls, small enough that reading and
/// writing interleave.
const BATCH: usize = 64;

/// PING period on every socket: a slow run must not trip the idle timeout.
const PING_EVERY: Duration = Duration::from_secs(10);

/// Options of the `chat` scenario.
#[derive(Args, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatArgs {
    /// Number of sender→recipient pairs (2 users and 2 sockets each).
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Most messages a sender may have awaiting their 81.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Total offered messages per second across all senders (open loop);
    /// 0 sends as fast as the window allows (closed loop).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Measured period.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
    /// Period before the measurement, excluded from the statistics.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub warmup: Duration,
    /// Longest wait after the last send for outstanding 81s and pushes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub drain: Duration,
    /// Chat body size in bytes.
    #[arg(long, default_value_t = 32)]
    pub body_bytes: usize,
    /// Sessions opened concurrently before the run.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// WebSocket read buffer per connection, bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    pub read_buffer: usize,
}

/// Counters the main task watches to report progress and end the drain.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    stored: AtomicU64,
    delivered: AtomicU64,
    /// 92s received by senders.
    receipts: AtomicU64,
    /// 91s received by recipients.
    ack_resps: AtomicU64,
    /// Senders that will send nothing more and await no answer (or whose
    /// socket died).
    senders_settled: AtomicU64,
}

/// Everything the sender and recipient tasks of a run share (read-only but
/// for the progress counters).
struct Run {
    t0: Instant,
    warmup_us: u64,
    end_us: u64,
    progress: Progress,
}

impl Run {
    #[inline]
    fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    #[inline]
    fn measured(&self, t_us: u64) -> bool {
        (self.warmup_us..self.end_us).contains(&t_us)
    }
}

/// When a sender's messages are due.
#[derive(Clone, Copy, Debug)]
enum Schedule {
    /// As soon as the window allows.
    Closed,
    /// Message `seq` is due at `phase_us + (seq-1) * interval_us`.
    Open {
        /// Offset of this sender's first message (senders are spread evenly
        /// within one interval so the aggregate rate is smooth).
        phase_us: f64,
        /// Time between two of this sender's messages.
        interval_us: f64,
    },
}

impl Schedule {
    /// The schedule of sender `pair` of `pairs` for a total `rate` msg/s.
    fn for_sender(pair: usize, pairs: usize, rate: f64) -> Schedule {
        if rate <= 0.0 {
            return Schedule::Closed;
        }
        Schedule::Open {
            phase_us: pair as f64 * 1e6 / rate,
            interval_us: pairs as f64 * 1e6 / rate,
        }
    }

    /// Intended send time of message `seq`, µs on the run clock; in closed
    /// loop, `now_us` (it is sent now).
    #[inline]
    fn due_us(&self, seq: u64, now_us: u64) -> u64 {
        match *self {
            Schedule::Closed => now_us,
            Schedule::Open {
                phase_us,
                interval_us,
            } => (phase_us + (seq - 1) as f64 * interval_us) as u64,
        }
    }
}

/// What a sender task hands back.
struct SenderOut {
    log: SendLog,
    /// CHAT → 81, µs, for messages due in the measured period.
    resp_hist: Histogram<u64>,
    /// Actual minus intended send time (open loop), µs.
    lag_hist: Histogram<u64>,
    sent_in_window: u64,
    stored_in_window: u64,
    receipts: u64,
    window_stalls: u64,
    window_delayed: u64,
    errors: Tally,
    problems: Tally,
}

impl SenderOut {
    /// Nothing counted yet; sends are recorded in `log`.
    fn new(log: SendLog) -> SenderOut {
        SenderOut {
            log,
            resp_hist: new_histogram(),
            lag_hist: new_histogram(),
            sent_in_window: 0,
            stored_in_window: 0,
            receipts: 0,
            window_stalls: 0,
            window_delayed: 0,
            errors: Tally::new(),
            problems: Tally::new(),
        }
    }
}

/// What a recipient task hands back.
pub struct RecvOut {
    /// Arrivals of the stream this recipient expects.
    pub log: RecvLog,
    /// Intended send time → push received, µs, for messages due in the
    /// measured period.
    pub latency_hist: Histogram<u64>,
    /// Actual send time → push received, µs (the relay's part, without
    /// the generator's own scheduling lag).
    pub wire_hist: Histogram<u64>,
    /// First arrivals received during the measured period.
    pub delivered_in_window: u64,
    /// 91 answers.
    pub ack_resps: u64,
    /// ACKs sent (one per push, including redeliveries).
    pub acks_sent: u64,
    /// Pushes tagged for another pair (misrouted) or not tagged at all.
    pub misrouted: u64,
    /// Pushes from an earlier run (a backlog left on reused accounts).
    pub stale: u64,
    /// Notices (presence, typing, read receipts, group events): ignored.
    pub notices: u64,
    /// With [`RecvSpec::keep_latencies`]: the latency of each message's
    /// first arrival (intended send → receive, µs), indexed by sequence
    /// number − 1; `None` for messages that have not arrived. The two
    /// histograms then stay empty (and small: a full-range histogram is
    /// ~180 KiB, too much for each of 10,000 fan-out members).
    pub latencies_us: Vec<Option<u64>>,
    /// Type 0 errors by code.
    pub errors: Tally,
    /// Unexpected events by kind.
    pub problems: Tally,
}

impl RecvOut {
    /// An empty result for a recipient expecting about `expected` messages
    /// that keeps its latencies in histograms or, with `keep_latencies`, in
    /// [`latencies_us`](Self::latencies_us).
    pub fn new(expected: usize, keep_latencies: bool) -> RecvOut {
        let hist = || {
            if keep_latencies {
                Histogram::new(1).expect("valid histogram")
            } else {
                new_histogram()
            }
        };
        RecvOut {
            log: RecvLog::with_capacity(expected),
            latency_hist: hist(),
            wire_hist: hist(),
            delivered_in_window: 0,
            ack_resps: 0,
            acks_sent: 0,
            misrouted: 0,
            stale: 0,
            notices: 0,
            latencies_us: Vec::new(),
            errors: Tally::new(),
            problems: Tally::new(),
        }
    }
}

/// Results of a chat run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatReport {
    /// The options used.
    #[serde(skip)]
    pub args: ChatArgs,
    /// Offered rate (null in closed loop), msg/s.
    pub offered_rate: Option<f64>,
    /// Messages sent in total (warm-up, measured period).
    pub sent: u64,
    /// Messages sent during the measured period, per second.
    pub send_rate: f64,
    /// 81s received in total.
    pub stored: u64,
    /// Distinct messages delivered in total.
    pub delivered: u64,
    /// Distinct messages delivered during the measured period, per second.
    pub delivered_rate: f64,
    /// Intended send → push received.
    pub latency: LatencySummary,
    /// Actual send → push received (equal to `latency` in closed loop).
    pub wire_latency: LatencySummary,
    /// Intended send → 81.
    pub resp_latency: LatencySummary,
    /// Actual minus intended send time (open loop only): how far the
    /// generator itself fell behind its schedule.
    pub send_lag: Option<LatencySummary>,
    /// Got an 81 but never reached the recipient.
    pub lost: u64,
    /// A second distinct msgId for one clientMsgId.
    pub duplicates: u64,
    /// The same msgId pushed again (legal at-least-once redelivery).
    pub redeliveries: u64,
    /// Pushes that arrived after a later message of the same sender.
    pub out_of_order: u64,
    /// Neither 81 nor error by the end of the drain.
    pub unanswered: u64,
    /// Delivered although the relay answered with an error.
    pub delivered_after_error: u64,
    /// The 81 and the push carried different msgIds.
    pub id_mismatch: u64,
    /// Pushes for messages never sent, or for another pair.
    pub misrouted: u64,
    /// Pushes from earlier runs on the same accounts (acked, not counted).
    pub stale: u64,
    /// 81s for a message that already had one, or for nothing we sent.
    pub extra_resps: u64,
    /// Type 0 errors by code.
    pub errors: Tally,
    /// 92 receipts received by senders.
    pub receipts: u64,
    /// 91 answers received by recipients.
    pub ack_resps: u64,
    /// ACKs sent by recipients (one per push).
    pub acks_sent: u64,
    /// Messages refused with a type 0 error.
    pub refused: u64,
    /// Times a sender had a message due but a full window.
    pub window_stalls: u64,
    /// Messages sent more than 1 ms late because the window was full.
    pub window_delayed: u64,
    /// How long the drain took, seconds.
    pub drain_secs: f64,
    /// Relay VmRSS before the run and at the end of the measured period, KiB.
    pub relay_rss_before_kib: Option<u64>,
    /// See `relay_rss_before_kib`.
    pub relay_rss_after_kib: Option<u64>,
    /// Relay CPU during the measured period, percent of one core.
    pub relay_cpu_pct: Option<f64>,
    /// The generator's CPU during the measured period, percent of one core.
    pub loadgen_cpu_pct: Option<f64>,
    /// Unexpected events by kind (closed sockets, unparsable frames, …).
    pub problems: Tally,
}

impl ScenarioReport for ChatReport {
    fn scenario(&self) -> &'static str {
        "chat"
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
                "{} pairs, window {}, {}, body {} B, warmup {:?}, measured {:?}",
                a.pairs,
                a.window,
                match self.offered_rate {
                    Some(r) => format!("open loop at {r:.0} msg/s"),
                    None => "closed loop".into(),
                },
                a.body_bytes,
                a.warmup,
                a.duration
            ),
        );
        line(&mut s, "send rate", format!("{:.0} msg/s", self.send_rate));
        line(
            &mut s,
            "delivered rate",
            format!("{:.0} msg/s", self.delivered_rate),
        );
        line(
            &mut s,
            "totals",
            format!(
                "sent {}, stored (81) {}, refused {}, delivered {}",
                self.sent, self.stored, self.refused, self.delivered
            ),
        );
        line(&mut s, "send → receive latency", self.latency.human());
        if self.send_lag.is_some() {
            line(&mut s, "  from actual send", self.wire_latency.human());
        }
        line(&mut s, "send → 81 latency", self.resp_latency.human());
        if let Some(l) = &self.send_lag {
            line(&mut s, "generator send lag", l.human());
        }
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
            "unanswered / id mismatch",
            format!("{} / {}", self.unanswered, self.id_mismatch),
        );
        line(
            &mut s,
            "misrouted / after error",
            format!("{} / {}", self.misrouted, self.delivered_after_error),
        );
        if self.stale > 0 {
            line(&mut s, "backlog of earlier runs", self.stale);
        }
        line(&mut s, "errors (type 0)", fmt_tally(&self.errors));
        line(
            &mut s,
            "receipts 92 / acks 91",
            format!(
                "{} / {} (of {} acks sent)",
                self.receipts, self.ack_resps, self.acks_sent
            ),
        );
        line(
            &mut s,
            "window stalls / delayed",
            format!("{} / {}", self.window_stalls, self.window_delayed),
        );
        line(&mut s, "drain", format!("{:.2} s", self.drain_secs));
        line(
            &mut s,
            "relay RSS before / after",
            format!(
                "{} / {}",
                fmt_mib(self.relay_rss_before_kib),
                fmt_mib(self.relay_rss_after_kib)
            ),
        );
        line(
            &mut s,
            "CPU relay / loadgen",
            format!(
                "{} / {} of one core",
                fmt_pct(self.relay_cpu_pct),
                fmt_pct(self.loadgen_cpu_pct)
            ),
        );
        line(&mut s, "problems", fmt_tally(&self.problems));
        s
    }

    fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let mut check = |n: u64, what: &str| {
            if n > 0 {
                f.push(format!("{n} {what}"));
            }
        };
        check(self.lost, "messages lost (81 received, never delivered)");
        check(
            self.duplicates,
            "duplicate messages (second msgId for one clientMsgId)",
        );
        check(self.out_of_order, "messages delivered out of order");
        check(
            self.delivered_after_error,
            "messages delivered although refused",
        );
        check(
            self.id_mismatch,
            "messages pushed with a msgId other than the 81's",
        );
        check(self.misrouted, "pushes misrouted or never sent");
        if self.delivered == 0 {
            f.push("nothing was delivered".into());
        }
        f
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.unanswered > 0 {
            w.push(format!(
                "{} messages got neither 81 nor error within the drain",
                self.unanswered
            ));
        }
        if let Some(n) = self.errors.get("rate_limited") {
            w.push(format!(
                "{n} messages were rate limited: start the relay with a higher --rate-limit/--rate-burst"
            ));
        }
        if self.offered_rate.is_some() && self.window_delayed > 0 {
            w.push(format!(
                "window throttled: {} messages were sent late because {} were awaiting their 81 (latency includes that wait)",
                self.window_delayed, self.args.window
            ));
        }
        if self.receipts < self.delivered {
            w.push(format!(
                "{} delivery receipts (92) missing",
                self.delivered - self.receipts
            ));
        }
        report::delivery_warnings(
            &mut w,
            self.acks_sent,
            self.ack_resps,
            self.stale,
            &self.problems,
            self.relay_rss_before_kib.is_some(),
        );
        w
    }
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: ChatArgs) -> Result<ChatReport, Error> {
    if args.pairs == 0 || args.window == 0 {
        return Err("--pairs and --window must be at least 1".into());
    }
    if args.duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        return Err("--rate must be a non-negative number".into());
    }
    if args.body_bytes == 0 || args.body_bytes > shared::limits::MAX_BODY_BYTES {
        return Err(format!(
            "--body-bytes must be 1..={}",
            shared::limits::MAX_BODY_BYTES
        )
        .into());
    }
    let log = &ctx.log;
    let ws_config = client::ws_config(args.read_buffer.max(1024), 16 * 1024);
    let target = Target::resolve(&ctx.common.url, ctx.common.source_ips, ws_config).await?;
    let accounts = client::accounts(ctx, &target, 2 * args.pairs).await?;

    // Recipients first, so every push of the run is live, not an offline
    // backlog; then senders.
    log.say(format_args!("opening {} sessions", 2 * args.pairs));
    let recipients = open_sessions(&target, &accounts, |p| 2 * p + 1, &args).await?;
    let senders = open_sessions(&target, &accounts, |p| 2 * p, &args).await?;

    let relay_before = ctx.relay_sample();
    let warmup_us = args.warmup.as_micros() as u64;
    let run = Arc::new(Run {
        // A moment ahead, so every task starts on the same instant.
        t0: Instant::now() + Duration::from_millis(200),
        warmup_us,
        end_us: warmup_us + args.duration.as_micros() as u64,
        progress: Progress::default(),
    });
    let body: Arc<str> = wire::filler_body(args.body_bytes).into();
    let run_id: Arc<str> = ctx.run_id.as_str().into();
    let expected_per_pair = match args.rate {
        r if r > 0.0 => {
            ((r / args.pairs as f64) * (args.warmup + args.duration).as_secs_f64()) as usize + 16
        }
        _ => 1024,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut send_tasks = Vec::with_capacity(args.pairs);
    let mut recv_tasks = Vec::with_capacity(args.pairs);
    for (p, (ws, _)) in recipients.into_iter().enumerate() {
        recv_tasks.push(tokio::spawn(run_recipient(
            ws,
            p as u32,
            expected_per_pair,
            RecvSpec {
                run_id: run_id.clone(),
                t0: run.t0,
                warmup_us: run.warmup_us,
                end_us: run.end_us,
                keep_latencies: false,
            },
            Some(run.clone() as Arc<dyn ProgressSink>),
            stop_rx.clone(),
        )));
    }
    for (p, (ws, _)) in senders.into_iter().enumerate() {
        let cfg = SenderCfg {
            pair: p as u32,
            to: To::User(accounts[2 * p + 1].user_id),
            window: args.window,
            schedule: Schedule::for_sender(p, args.pairs, args.rate),
            body: body.clone(),
            expected: expected_per_pair,
            run_id: run_id.clone(),
        };
        send_tasks.push(tokio::spawn(run_sender(
            ws,
            cfg,
            run.clone(),
            stop_rx.clone(),
        )));
    }

    // Measured period.
    let at = |us: u64| tokio::time::Instant::from_std(run.t0 + Duration::from_micros(us));
    log.say(format_args!(
        "running: warmup {:?}, measuring {:?}",
        args.warmup, args.duration
    ));
    progress_until(&run, at(run.warmup_us), log).await;
    let relay_start = ctx.relay_sample();
    let self_start = sys::ProcSample::read_self().ok();
    let measure_start = Instant::now();
    progress_until(&run, at(run.end_us), log).await;
    let measured_wall = measure_start.elapsed();
    let relay_end = ctx.relay_sample();
    let self_end = sys::ProcSample::read_self().ok();

    // Drain: until every sender is settled and every stored message has
    // arrived, or the limit.
    let drain_start = Instant::now();
    let pairs = args.pairs as u64;
    loop {
        let p = &run.progress;
        let settled = p.senders_settled.load(Relaxed) >= pairs;
        let delivered = p.delivered.load(Relaxed);
        if settled
            && delivered >= p.stored.load(Relaxed)
            && p.receipts.load(Relaxed) >= delivered
            && p.ack_resps.load(Relaxed) >= delivered
        {
            break;
        }
        if drain_start.elapsed() >= args.drain {
            log.say(format_args!("drain limit reached"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain = drain_start.elapsed();
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

    let ticks = sys::clock_ticks_per_sec();
    let cpu = |a: Option<sys::ProcSample>, b: Option<sys::ProcSample>| {
        Some(report::round_to(
            report::cpu_percent(
                b?.cpu_ticks.saturating_sub(a?.cpu_ticks),
                ticks,
                measured_wall,
            ),
            1,
        ))
    };
    let mut r = assemble(&args, &outs_s, &outs_r);
    r.drain_secs = report::round_to(drain.as_secs_f64(), 2);
    r.relay_rss_before_kib = relay_before.map(|s| s.rss_kib);
    r.relay_rss_after_kib = relay_end.map(|s| s.rss_kib);
    r.relay_cpu_pct = cpu(relay_start, relay_end);
    r.loadgen_cpu_pct = cpu(self_start, self_end);
    Ok(r)
}

/// Combines the per-pair results into the report (pure, so it is tested).
fn assemble(args: &ChatArgs, senders: &[SenderOut], recipients: &[RecvOut]) -> ChatReport {
    let mut latency = new_histogram();
    let mut wire = new_histogram();
    let mut resp = new_histogram();
    let mut lag = new_histogram();
    let mut verdict = Reconciled::default();
    let mut errors = Tally::new();
    let mut problems = Tally::new();
    let (mut sent, mut sent_in_window, mut stored, mut delivered, mut delivered_in_window) =
        (0, 0, 0, 0, 0);
    let (mut duplicates, mut redeliveries, mut out_of_order, mut misrouted, mut stale) =
        (0, 0, 0, 0, 0);
    let (mut extra_resps, mut receipts, mut ack_resps, mut stalls, mut delayed) = (0, 0, 0, 0, 0);
    let (mut acks_sent, mut refused) = (0, 0);
    for (s, r) in senders.iter().zip(recipients) {
        verdict.add(&reconcile(&s.log, &r.log));
        let _ = latency.add(&r.latency_hist);
        let _ = wire.add(&r.wire_hist);
        let _ = resp.add(&s.resp_hist);
        let _ = lag.add(&s.lag_hist);
        report::merge_tally(&mut errors, &s.errors);
        report::merge_tally(&mut errors, &r.errors);
        report::merge_tally(&mut problems, &s.problems);
        report::merge_tally(&mut problems, &r.problems);
        sent += s.log.sent();
        sent_in_window += s.sent_in_window;
        stored += s.log.stored();
        extra_resps += s.log.repeated_resps + s.log.stray_resps;
        receipts += s.receipts;
        stalls += s.window_stalls;
        delayed += s.window_delayed;
        delivered += r.log.unique;
        delivered_in_window += r.delivered_in_window;
        duplicates += r.log.duplicates;
        redeliveries += r.log.redeliveries;
        out_of_order += r.log.out_of_order;
        misrouted += r.misrouted;
        stale += r.stale;
        ack_resps += r.ack_resps;
        acks_sent += r.acks_sent;
        refused += s.log.refused();
    }
    ChatReport {
        offered_rate: (args.rate > 0.0).then_some(args.rate),
        sent,
        send_rate: report::round_to(report::per_second(sent_in_window, args.duration), 1),
        stored,
        delivered,
        delivered_rate: report::round_to(report::per_second(delivered_in_window, args.duration), 1),
        latency: LatencySummary::of(&latency),
        wire_latency: LatencySummary::of(&wire),
        resp_latency: LatencySummary::of(&resp),
        send_lag: (args.rate > 0.0).then(|| LatencySummary::of(&lag)),
        lost: verdict.lost,
        duplicates,
        redeliveries,
        out_of_order,
        unanswered: verdict.unanswered,
        delivered_after_error: verdict.delivered_after_refusal,
        id_mismatch: verdict.id_mismatch,
        misrouted: misrouted + verdict.phantom,
        stale,
        extra_resps,
        errors,
        receipts,
        ack_resps,
        acks_sent,
        refused,
        window_stalls: stalls,
        window_delayed: delayed,
        drain_secs: 0.0,
        relay_rss_before_kib: None,
        relay_rss_after_kib: None,
        relay_cpu_pct: None,
        loadgen_cpu_pct: None,
        problems,
        args: args.clone(),
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
        log.say(format_args!(
            "t={:.1}s sent {} stored {} delivered {}",
            run.now_us() as f64 / 1e6,
            p.sent.load(Relaxed),
            p.stored.load(Relaxed),
            p.delivered.load(Relaxed)
        ));
    }
}

/// Opens one logged-in socket per pair for the accounts `index(pair)`.
async fn open_sessions(
    target: &Target,
    accounts: &[Account],
    index: impl Fn(usize) -> usize,
    args: &ChatArgs,
) -> Result<Vec<(Ws, shared::UserId)>, Error> {
    let jobs = (0..args.pairs).map(|p| {
        let i = index(p);
        let token = accounts[i].token.clone();
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

/// A sender's fixed configuration.
struct SenderCfg {
    pair: u32,
    to: To,
    window: usize,
    schedule: Schedule,
    body: Arc<str>,
    expected: usize,
    run_id: Arc<str>,
}

/// A sender's mutable state while running.
struct Sender {
    cfg: SenderCfg,
    run: Arc<Run>,
    out: SenderOut,
    inflight: usize,
    next_seq: u64,
    /// False once the next message would be due after the measured period.
    sending: bool,
    /// A message is due but the window is full.
    blocked: bool,
    settled: bool,
    alive: bool,
    /// Receipts already added to the shared progress counter.
    receipts_reported: u64,
}

impl Sender {
    /// Marks this sender as settled (nothing more to send or to await) once.
    fn settle_if_done(&mut self) {
        if !self.settled && ((!self.sending && self.inflight == 0) || !self.alive) {
            self.settled = true;
            self.run.progress.senders_settled.fetch_add(1, Relaxed);
        }
    }

    /// Feeds every message that is due and fits in the window (at most
    /// [`BATCH`]), then flushes once.
    async fn send_due(&mut self, ws: &mut Ws) {
        let mut fed = 0u64;
        let mut tag = String::with_capacity(40);
        while self.sending && fed < BATCH as u64 {
            let now_us = self.run.now_us();
            let due = self.cfg.schedule.due_us(self.next_seq, now_us);
            if due >= self.run.end_us {
                self.sending = false;
                break;
            }
            if due > now_us {
                self.blocked = false;
                break;
            }
            if self.inflight >= self.cfg.window {
                if !self.blocked {
                    self.blocked = true;
                    self.out.window_stalls += 1;
                }
                break;
            }
            let lag = now_us - due;
            match self.cfg.schedule {
                Schedule::Open { .. } => {
                    record_us(&mut self.out.lag_hist, lag);
                    // `blocked` stays set until the sender has caught up with
                    // its schedule, so every message the full window held
                    // back is counted.
                    if self.blocked && lag > 1_000 {
                        self.out.window_delayed += 1;
                    }
                }
                Schedule::Closed => self.blocked = false,
            }
            MsgTag {
                pair: self.cfg.pair,
                seq: self.next_seq,
                t_us: due,
                lag_us: lag,
            }
            .write(&self.cfg.run_id, &mut tag);
            let mut frame = String::with_capacity(96 + tag.len() + self.cfg.body.len());
            wire::write_chat(&mut frame, self.cfg.to, &tag, &self.cfg.body);
            if let Err(e) = ws.feed(Message::text(frame)).await {
                report::tally(&mut self.out.problems, &format!("send: {e}"), 1);
                self.alive = false;
                return;
            }
            self.out.log.on_sent(self.next_seq);
            if self.run.measured(now_us) {
                self.out.sent_in_window += 1;
            }
            self.next_seq += 1;
            self.inflight += 1;
            fed += 1;
        }
        if fed > 0 {
            self.run.progress.sent.fetch_add(fed, Relaxed);
            if let Err(e) = ws.flush().await {
                report::tally(&mut self.out.problems, &format!("send: {e}"), 1);
                self.alive = false;
            }
        }
    }

    /// True when another message could be sent right now.
    fn can_send_now(&self) -> bool {
        self.sending
            && self.inflight < self.cfg.window
            && matches!(self.cfg.schedule, Schedule::Closed)
    }

    /// When the next message falls due (open loop, window not full).
    fn next_due(&self) -> Option<tokio::time::Instant> {
        match self.cfg.schedule {
            Schedule::Open { .. } if self.sending && self.inflight < self.cfg.window => {
                let due = self.cfg.schedule.due_us(self.next_seq, 0);
                Some(tokio::time::Instant::from_std(
                    self.run.t0 + Duration::from_micros(due),
                ))
            }
            _ => None,
        }
    }

    /// Handles one message from the relay.
    fn on_message(&mut self, m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) {
        let text = match m {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(c))) => {
                let why = c.map_or("closed by relay".into(), |c| {
                    format!("sender closed by relay: {}", u16::from(c.code))
                });
                report::tally(&mut self.out.problems, &why, 1);
                self.alive = false;
                return;
            }
            Some(Ok(_)) => return,
            Some(Err(e)) => {
                report::tally(&mut self.out.problems, &format!("sender read: {e}"), 1);
                self.alive = false;
                return;
            }
            None => {
                report::tally(&mut self.out.problems, "sender socket ended", 1);
                self.alive = false;
                return;
            }
        };
        let text = text.as_str();
        match wire::fast_type(text) {
            Some(ft::DELIVERED) => {
                self.out.receipts += 1;
                return;
            }
            Some(ft::PONG) => return,
            _ => {}
        }
        let Ok(f) = Lite::parse(text) else {
            report::tally(&mut self.out.problems, "unparsable frame", 1);
            return;
        };
        let tag = f
            .client_msg_id
            .as_deref()
            .and_then(|c| MsgTag::decode(c, &self.cfg.run_id).ok())
            .filter(|t| t.pair == self.cfg.pair);
        match f.ty {
            ft::CHAT_RESP => {
                let (Some(tag), Some(id)) = (
                    tag,
                    f.msg_id
                        .as_deref()
                        .and_then(|s| uuid::Uuid::try_parse(s).ok()),
                ) else {
                    report::tally(
                        &mut self.out.problems,
                        "81 without our clientMsgId or a msgId",
                        1,
                    );
                    return;
                };
                if self.out.log.on_stored(tag.seq, id.as_u128()) == Answer::First {
                    self.inflight -= 1;
                    self.run.progress.stored.fetch_add(1, Relaxed);
                    if self.run.measured(tag.t_us) {
                        self.out.stored_in_window += 1;
                        record_us(
                            &mut self.out.resp_hist,
                            self.run.now_us().saturating_sub(tag.t_us),
                        );
                    }
                }
            }
            ft::ERROR => {
                report::tally(&mut self.out.errors, f.code.as_deref().unwrap_or("?"), 1);
                if let Some(tag) = tag {
                    if self.out.log.on_refused(tag.seq) == Answer::First {
                        self.inflight -= 1;
                    }
                }
            }
            ft::DELIVERED => self.out.receipts += 1,
            ft::PONG => {}
            ft::HEARTBEAT_TIMEOUT => {
                report::tally(&mut self.out.problems, "sender heartbeat timeout", 1)
            }
            t if wire::is_notice(t) => {}
            other => report::tally(
                &mut self.out.problems,
                &format!("sender got type {other}"),
                1,
            ),
        }
    }
}

async fn run_sender(
    mut ws: Ws,
    cfg: SenderCfg,
    run: Arc<Run>,
    mut stop: watch::Receiver<bool>,
) -> SenderOut {
    let expected = cfg.expected;
    let mut s = Sender {
        cfg,
        run: run.clone(),
        out: SenderOut::new(SendLog::with_capacity(expected)),
        inflight: 0,
        next_seq: 1,
        sending: true,
        blocked: false,
        settled: false,
        alive: true,
        receipts_reported: 0,
    };
    let start = tokio::time::Instant::from_std(run.t0);
    tokio::time::sleep_until(start).await;
    // Both timers live across iterations and are re-armed only when their
    // deadline changes: creating a timer per loop turn would cost a timer
    // wheel insertion per message.
    let ping = tokio::time::sleep_until(start + PING_EVERY);
    tokio::pin!(ping);
    let due_timer = tokio::time::sleep_until(start);
    tokio::pin!(due_timer);
    let mut armed: Option<tokio::time::Instant> = None;
    while s.alive {
        s.send_due(&mut ws).await;
        s.settle_if_done();
        if !s.alive {
            break;
        }
        let wake = s.next_due();
        if let Some(w) = wake.filter(|&w| armed != Some(w)) {
            due_timer.as_mut().reset(w);
            armed = Some(w);
        }
        let send_now = s.can_send_now();
        tokio::select! {
            biased;
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break;
                }
            }
            m = ws.next() => {
                s.on_message(m);
                // Take whatever else is already buffered before sending more.
                for _ in 0..BATCH {
                    if !s.alive {
                        break;
                    }
                    match ws.next().now_or_never() {
                        Some(m) => s.on_message(m),
                        None => break,
                    }
                }
                if s.out.receipts > s.receipts_reported {
                    run.progress.receipts.fetch_add(s.out.receipts - s.receipts_reported, Relaxed);
                    s.receipts_reported = s.out.receipts;
                }
            }
            _ = std::future::ready(()), if send_now => {}
            _ = &mut due_timer, if wake.is_some() => armed = None,
            _ = &mut ping => {
                let next = ping.deadline() + PING_EVERY;
                ping.as_mut().reset(next);
                if ws.send(Message::Text(Utf8Bytes::from_static(wire::PING))).await.is_err() {
                    s.alive = false;
                }
            }
        }
        s.settle_if_done();
    }
    s.settle_if_done();
    if s.alive {
        close_cleanly(&mut ws).await;
    }
    s.out
}

/// The run clock and id as a recipient needs them. Separate from [`Run`] so
/// a recipient can serve other scenarios (fan-out members).
#[derive(Clone, Debug)]
pub struct RecvSpec {
    /// The run id in message tags; other runs' pushes are backlog.
    pub run_id: Arc<str>,
    /// The shared start instant that message tags are relative to.
    pub t0: Instant,
    /// Start of the measured period, µs.
    pub warmup_us: u64,
    /// End of the measured period, µs.
    pub end_us: u64,
    /// Keep every message's latency in [`RecvOut::latencies_us`] (fan-out:
    /// per-message figures), not only the histograms.
    pub keep_latencies: bool,
}

/// A recipient: acks every push at once, records arrival time, order and
/// duplicates for the stream of sender `pair`, until told to stop. Public so
/// the fan-out scenario can run one per group member.
pub async fn run_recipient(
    mut ws: Ws,
    pair: u32,
    expected: usize,
    spec: RecvSpec,
    progress: Option<Arc<dyn ProgressSink>>,
    mut stop: watch::Receiver<bool>,
) -> RecvOut {
    let mut out = RecvOut::new(expected, spec.keep_latencies);
    let ping = tokio::time::sleep(PING_EVERY);
    tokio::pin!(ping);
    let mut alive = true;
    'outer: loop {
        let first = tokio::select! {
            biased;
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break;
                }
                continue;
            }
            m = ws.next() => m,
            _ = &mut ping => {
                let next = ping.deadline() + PING_EVERY;
                ping.as_mut().reset(next);
                if ws.send(Message::Text(Utf8Bytes::from_static(wire::PING))).await.is_err() {
                    alive = false;
                    break;
                }
                continue;
            }
        };
        let mut next = Some(first);
        let mut acks = 0u64;
        let mut delivered = 0u64;
        let ack_resps_before = out.ack_resps;
        let mut handled = 0;
        while let Some(m) = next.take() {
            let text = match m {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(c))) => {
                    let why = c.map_or("closed by relay".into(), |c| {
                        format!("recipient closed by relay: {}", u16::from(c.code))
                    });
                    report::tally(&mut out.problems, &why, 1);
                    alive = false;
                    break 'outer;
                }
                Some(Ok(_)) => Utf8Bytes::from_static(""),
                Some(Err(e)) => {
                    report::tally(&mut out.problems, &format!("recipient read: {e}"), 1);
                    alive = false;
                    break 'outer;
                }
                None => {
                    report::tally(&mut out.problems, "recipient socket ended", 1);
                    alive = false;
                    break 'outer;
                }
            };
            if !text.is_empty() {
                match on_push(&mut out, text.as_str(), pair, &spec) {
                    PushOutcome::Ack(ack) => {
                        if ws.feed(Message::text(ack)).await.is_err() {
                            alive = false;
                            break 'outer;
                        }
                        acks += 1;
                    }
                    PushOutcome::AckNew(ack, seq) => {
                        if let Some(p) = &progress {
                            p.arrived(seq);
                        }
                        if ws.feed(Message::text(ack)).await.is_err() {
                            alive = false;
                            break 'outer;
                        }
                        acks += 1;
                        delivered += 1;
                    }
                    PushOutcome::Nothing => {}
                }
            }
            handled += 1;
            if handled < BATCH {
                next = ws.next().now_or_never();
            }
        }
        out.acks_sent += acks;
        if acks > 0 && ws.flush().await.is_err() {
            alive = false;
            break;
        }
        if let Some(p) = &progress {
            if delivered > 0 {
                p.delivered(delivered);
            }
            if out.ack_resps > ack_resps_before {
                p.ack_resps(out.ack_resps - ack_resps_before);
            }
        }
    }
    if alive {
        close_cleanly(&mut ws).await;
    }
    out
}

/// Where a recipient reports deliveries as they happen (for progress and to
/// end the drain early).
pub trait ProgressSink: Send + Sync + 'static {
    /// `n` more distinct messages arrived.
    fn delivered(&self, n: u64);
    /// `n` more 91s arrived.
    fn ack_resps(&self, _n: u64) {}
    /// Message `seq` arrived for the first time (called before its ACK is
    /// sent, so a waiter learns of it as early as possible).
    fn arrived(&self, _seq: u64) {}
}

impl ProgressSink for Run {
    fn delivered(&self, n: u64) {
        self.progress.delivered.fetch_add(n, Relaxed);
    }
    fn ack_resps(&self, n: u64) {
        self.progress.ack_resps.fetch_add(n, Relaxed);
    }
}

enum PushOutcome {
    /// Ack this (a redelivery, duplicate or foreign push).
    Ack(String),
    /// Ack this; it was the first arrival of our message number `.1`.
    AckNew(String, u64),
    /// Not a push.
    Nothing,
}

/// Accounts for one frame received by a recipient.
fn on_push(out: &mut RecvOut, text: &str, pair: u32, spec: &RecvSpec) -> PushOutcome {
    match wire::fast_type(text) {
        Some(ft::ACK_RESP) => {
            out.ack_resps += 1;
            return PushOutcome::Nothing;
        }
        Some(ft::PONG) => return PushOutcome::Nothing,
        _ => {}
    }
    let now_us = spec.t0.elapsed().as_micros() as u64;
    let Ok(f) = Lite::parse(text) else {
        report::tally(&mut out.problems, "unparsable frame", 1);
        return PushOutcome::Nothing;
    };
    match f.ty {
        ft::CHAT => {}
        ft::ACK_RESP => {
            out.ack_resps += 1;
            return PushOutcome::Nothing;
        }
        ft::ERROR => {
            report::tally(&mut out.errors, f.code.as_deref().unwrap_or("?"), 1);
            return PushOutcome::Nothing;
        }
        ft::PONG => return PushOutcome::Nothing,
        t if wire::is_notice(t) => {
            out.notices += 1;
            return PushOutcome::Nothing;
        }
        other => {
            report::tally(&mut out.problems, &format!("recipient got type {other}"), 1);
            return PushOutcome::Nothing;
        }
    }
    let Some(msg_id) = f.msg_id.as_deref() else {
        report::tally(&mut out.problems, "push without msgId", 1);
        return PushOutcome::Nothing;
    };
    let ack = wire::ack(msg_id);
    let id = uuid::Uuid::try_parse(msg_id)
        .map(|u| u.as_u128())
        .unwrap_or(0);
    let tag = match f
        .client_msg_id
        .as_deref()
        .map(|c| MsgTag::decode(c, &spec.run_id))
    {
        Some(Ok(t)) if t.pair == pair && id != 0 => t,
        Some(Err(NotOurs::OtherRun)) => {
            out.stale += 1;
            return PushOutcome::Ack(ack);
        }
        _ => {
            out.misrouted += 1;
            return PushOutcome::Ack(ack);
        }
    };
    match out.log.record(tag.seq, id) {
        Arrival::First { .. } => {
            if spec.keep_latencies {
                let i = (tag.seq - 1) as usize;
                if out.latencies_us.len() <= i {
                    out.latencies_us.resize(i + 1, None);
                }
                out.latencies_us[i] = Some(now_us.saturating_sub(tag.t_us));
            } else if (spec.warmup_us..spec.end_us).contains(&tag.t_us) {
                record_us(&mut out.latency_hist, now_us.saturating_sub(tag.t_us));
                record_us(
                    &mut out.wire_hist,
                    now_us.saturating_sub(tag.t_us + tag.lag_us),
                );
            }
            if (spec.warmup_us..spec.end_us).contains(&now_us) {
                out.delivered_in_window += 1;
            }
            PushOutcome::AckNew(ack, tag.seq)
        }
        Arrival::Redelivery | Arrival::Duplicate => PushOutcome::Ack(ack),
        Arrival::Invalid => {
            out.misrouted += 1;
            PushOutcome::Ack(ack)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ChatArgs {
        ChatArgs {
            pairs: 2,
            window: 8,
            rate: 0.0,
            duration: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            drain: Duration::from_secs(1),
            body_bytes: 10,
            connect_concurrency: 4,
            read_buffer: 4096,
        }
    }

    fn clock() -> RecvSpec {
        RecvSpec {
            run_id: "r".into(),
            t0: Instant::now(),
            warmup_us: 0,
            end_us: u64::MAX,
            keep_latencies: false,
        }
    }

    fn push(tag: &str, id: uuid::Uuid) -> String {
        shared::ServerFrame::Chat(shared::ChatMessage {
            msg_id: id,
            from_id: shared::UserId(1),
            from_name: "a".into(),
            to: To::User(shared::UserId(2)),
            content: shared::Content::text("x"),
            ts: 0,
            seq: 1,
            client_msg_id: Some(tag.into()),
        })
        .encode()
    }

    fn recv_out() -> RecvOut {
        RecvOut::new(0, false)
    }

    #[test]
    fn open_loop_schedule_spreads_senders_evenly() {
        // 4 senders at 1,000 msg/s total: each every 4 ms, offset by 1 ms.
        let s0 = Schedule::for_sender(0, 4, 1000.0);
        let s1 = Schedule::for_sender(1, 4, 1000.0);
        assert_eq!(s0.due_us(1, 999), 0);
        assert_eq!(s0.due_us(2, 999), 4000);
        assert_eq!(s1.due_us(1, 999), 1000);
        assert_eq!(s1.due_us(3, 999), 9000);
        assert!(matches!(Schedule::for_sender(0, 4, 0.0), Schedule::Closed));
        assert_eq!(Schedule::Closed.due_us(5, 1234), 1234);
    }

    #[test]
    fn pushes_are_acked_and_classified() {
        let mut out = recv_out();
        let c = clock();
        let id1 = uuid::Uuid::now_v7();
        let id2 = uuid::Uuid::now_v7();
        let p1 = push("lgr.0.1.0", id1);
        match on_push(&mut out, &p1, 0, &c) {
            PushOutcome::AckNew(a, seq) => {
                assert_eq!(a, wire::ack(&id1.to_string()));
                assert_eq!(seq, 1);
            }
            _ => panic!("first arrival not acked as new"),
        }
        assert!(matches!(on_push(&mut out, &p1, 0, &c), PushOutcome::Ack(_)));
        assert!(matches!(
            on_push(&mut out, &push("lgr.0.1.0", id2), 0, &c),
            PushOutcome::Ack(_)
        ));
        assert!(matches!(
            on_push(&mut out, &push("lgr.5.1.0", id2), 0, &c),
            PushOutcome::Ack(_)
        ));
        assert!(matches!(
            on_push(&mut out, &push("a-1", id2), 0, &c),
            PushOutcome::Ack(_)
        ));
        assert!(matches!(
            on_push(&mut out, &push("lgold.0.1.0", id2), 0, &c),
            PushOutcome::Ack(_)
        ));
        assert!(matches!(
            on_push(&mut out, r#"{"type":"91","msgId":"x"}"#, 0, &c),
            PushOutcome::Nothing
        ));
        assert!(matches!(
            on_push(
                &mut out,
                r#"{"type":"0","code":"rate_limited","message":"m"}"#,
                0,
                &c
            ),
            PushOutcome::Nothing
        ));
        assert_eq!(
            (
                out.log.unique,
                out.log.redeliveries,
                out.log.duplicates,
                out.misrouted,
                out.stale,
                out.ack_resps
            ),
            (1, 1, 1, 2, 1, 1)
        );
        assert_eq!(out.errors.get("rate_limited"), Some(&1));
        assert_eq!(out.latency_hist.len(), 1);
        assert_eq!(out.delivered_in_window, 1);
    }

    #[test]
    fn notices_are_ignored_and_latencies_kept_per_message() {
        let mut out = RecvOut::new(0, true);
        let spec = RecvSpec {
            keep_latencies: true,
            ..clock()
        };
        for notice in [
            r#"{"type":"50","userId":"1","username":"a","online":true,"ts":1}"#,
            r#"{"type":"100","groupId":"3","event":"member_joined","userId":"2","username":"b","name":"g"}"#,
            r#"{"type":"71","byId":"2","groupId":"3","seq":1,"ts":1}"#,
        ] {
            assert!(matches!(
                on_push(&mut out, notice, 0, &spec),
                PushOutcome::Nothing
            ));
        }
        assert_eq!(out.notices, 3);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        // Message 3 arrives first, then 1; 2 never does.
        let id1 = uuid::Uuid::now_v7();
        for (tag, id) in [("lgr.0.3.0", uuid::Uuid::now_v7()), ("lgr.0.1.0", id1)] {
            assert!(matches!(
                on_push(&mut out, &push(tag, id), 0, &spec),
                PushOutcome::AckNew(..)
            ));
        }
        let kept = out.latencies_us.clone();
        assert_eq!(kept.len(), 3);
        assert!(kept[0].is_some() && kept[1].is_none() && kept[2].is_some());
        // A redelivery does not move the first arrival's latency.
        std::thread::sleep(Duration::from_millis(2));
        on_push(&mut out, &push("lgr.0.1.0", id1), 0, &spec);
        assert_eq!(out.latencies_us, kept);
        assert_eq!(out.log.redeliveries, 1);
        assert_eq!(out.latency_hist.len(), 0, "kept, not in the histogram");
        // Without the flag the histogram has it and nothing is kept.
        let mut plain = recv_out();
        on_push(&mut plain, &push("lgr.0.1.0", id1), 0, &clock());
        assert!(plain.latencies_us.is_empty());
        assert_eq!(plain.latency_hist.len(), 1);
    }

    #[test]
    fn warmup_arrivals_are_checked_but_not_measured() {
        let mut out = recv_out();
        let c = RecvSpec {
            run_id: "r".into(),
            t0: Instant::now(),
            warmup_us: 5_000_000,
            end_us: 10_000_000,
            keep_latencies: false,
        };
        on_push(&mut out, &push("lgr.0.1.100", uuid::Uuid::now_v7()), 0, &c);
        on_push(
            &mut out,
            &push("lgr.0.2.5000000", uuid::Uuid::now_v7()),
            0,
            &c,
        );
        assert_eq!(out.log.unique, 2);
        assert_eq!(out.latency_hist.len(), 1);
        // Received now (t < warmup), so not in the measured delivery count.
        assert_eq!(out.delivered_in_window, 0);
    }

    #[test]
    fn assemble_finds_loss_and_duplicates_across_pairs() {
        let mut s0 = SendLog::default();
        let mut s1 = SendLog::default();
        for q in 1..=3 {
            s0.on_sent(q);
            s1.on_sent(q);
            s0.on_stored(q, q as u128);
            s1.on_stored(q, 10 + q as u128);
        }
        let mut r0 = recv_out();
        let mut r1 = recv_out();
        for q in 1..=3 {
            r0.log.record(q, q as u128);
        }
        r0.log.record(2, 99); // duplicate
        r1.log.record(1, 11);
        r1.log.record(3, 13); // 2 is lost
        r0.delivered_in_window = 3;
        r1.delivered_in_window = 2;
        let a = args();
        let rep = assemble(&a, &[SenderOut::new(s0), SenderOut::new(s1)], &[r0, r1]);
        assert_eq!(
            (rep.sent, rep.delivered, rep.lost, rep.duplicates),
            (6, 5, 1, 1)
        );
        assert_eq!(rep.delivered_rate, 2.5);
        assert_eq!(rep.out_of_order, 0);
        let f = rep.failures();
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("lost") && f[1].contains("duplicate"));
        let v = rep.results();
        assert_eq!(v["lost"], 1);
        assert!(v.get("args").is_none());
        assert_eq!(rep.params()["pairs"], 2);
    }
}
