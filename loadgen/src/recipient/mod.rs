//! The receiving side of the message scenarios, one piece of code for both:
//! chat runs a recipient per pair, fan-out one per group member.
//!
//! A recipient reads its socket, acks every push at once (redeliveries,
//! duplicates and foreign pushes too), ignores notices (presence, typing,
//! read receipts, group events) and accounts for every push from the
//! `clientMsgId` alone: it is a [`MsgTag`](crate::wire::MsgTag) with the sender's number, the
//! message's sequence number and its send time on the run's [`Clock`], so
//! a [`RecvLog`](crate::track::RecvLog) tells first arrivals from redeliveries, duplicates and
//! disorder, and the receive time minus the send time is the latency. It
//! keeps the latencies in histograms over the measured period (chat), or
//! each message's own (fan-out: `keep_latencies`).
//!
//! With `chat --reconnect` a recipient survives the loss of its socket
//! ([`Redial`]): it logs in again, on the next relay, and keeps one
//! account of the stream across its sockets.
//!
//! The task is here; accounting for each frame is in `arrivals.rs`. After
//! the run, [`Deliveries`] (`deliveries.rs`) sums the recipients and
//! reconciles each with what its sender was told: the delivery figures
//! both reports carry.

mod arrivals;
mod deliveries;

pub use arrivals::RecvOut;
pub use deliveries::Deliveries;

use crate::client::Ws;
use crate::redial::{Redial, Redialed, SILENCE};
use crate::report;
use crate::socket::{self, Gone, BATCH, PING_EVERY};
use crate::track::Clock;
use arrivals::{on_push, PushOutcome};
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// What a recipient needs to know about the run.
#[derive(Clone, Debug)]
pub struct RecvSpec {
    /// The run id in message tags; other runs' pushes are backlog.
    pub run_id: Arc<str>,
    /// The clock the tags' send times are on, and the measured period.
    pub clock: Clock,
    /// Keep every message's latency in [`RecvOut::latencies_us`] (fan-out:
    /// per-message figures), not only the histograms.
    pub keep_latencies: bool,
}

/// Where a recipient reports deliveries as they happen (for progress and to
/// end the drain early).
pub trait ProgressSink: Send + Sync + 'static {
    /// `n` more distinct messages arrived and were acked (told after the
    /// ACKs are flushed, once per batch).
    fn delivered(&self, _n: u64) {}
    /// `n` more ACKs were sent (told after they are flushed).
    fn acks_sent(&self, _n: u64) {}
    /// `n` more 91s arrived.
    fn ack_resps(&self, _n: u64) {}
    /// `n` ACKs will never be answered: their socket was lost before their
    /// 91 came.
    fn acks_lost(&self, _n: u64) {}
    /// Message `seq` arrived for the first time (called before its ACK is
    /// sent, so a waiter learns of it as early as possible).
    fn arrived(&self, _seq: u64) {}
}

/// How a recipient's socket ended.
enum End {
    /// The run told it to stop; the socket is still open.
    Stop,
    /// The socket closed or failed (why is in the problems).
    Lost,
}

/// A recipient: acks every push at once, records arrival time, order and
/// duplicates for the stream of sender `pair`, until told to stop. With
/// `redial` (`chat --reconnect`) a lost socket is replaced and the
/// accounting goes on across sockets (the relay pushes again what was not
/// acked: first arrivals count as deliveries, the rest as redeliveries);
/// without, the recipient ends with its socket.
pub async fn run_recipient(
    mut ws: Ws,
    pair: u32,
    expected: usize,
    spec: RecvSpec,
    progress: Option<Arc<dyn ProgressSink>>,
    mut stop: watch::Receiver<bool>,
    mut redial: Option<Redial>,
) -> RecvOut {
    let mut out = RecvOut::new(expected, spec.keep_latencies);
    loop {
        let silence = redial.as_ref().map(|_| SILENCE);
        match serve(
            &mut ws, &mut out, pair, &spec, &progress, &mut stop, silence,
        )
        .await
        {
            End::Stop => {
                socket::close_cleanly(&mut ws).await;
                break;
            }
            End::Lost => {
                out.sockets_lost += 1;
                let Some(r) = redial.as_mut() else { break };
                match r.redial(&mut stop).await {
                    Redialed::Back(new) => ws = *new,
                    Redialed::GaveUp | Redialed::Stopped => break,
                }
            }
        }
    }
    if let Some(r) = redial {
        out.outages = r.outages;
    }
    out
}

/// Reads one socket until the run says stop or the socket is lost (or, with
/// `silence`, nothing at all was read for that long).
async fn serve(
    ws: &mut Ws,
    out: &mut RecvOut,
    pair: u32,
    spec: &RecvSpec,
    progress: &Option<Arc<dyn ProgressSink>>,
    stop: &mut watch::Receiver<bool>,
    silence: Option<Duration>,
) -> End {
    let clock = spec.clock;
    let ping = tokio::time::sleep(PING_EVERY);
    tokio::pin!(ping);
    let mut last_read = Instant::now();
    // ACKs sent on this socket and 91s read from it: those without an
    // answer when it is lost never get one.
    let (acks_before, resps_before) = (out.acks_sent, out.ack_resps);
    // ACKs of this socket told to `progress` as sent.
    let mut acks_told = 0;
    let end = 'outer: loop {
        let first = tokio::select! {
            biased;
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break End::Stop;
                }
                continue;
            }
            m = ws.next() => m,
            _ = &mut ping => {
                if silence.is_some_and(|s| last_read.elapsed() >= s) {
                    report::tally(&mut out.problems, "recipient heard nothing (PONG) in time", 1);
                    break End::Lost;
                }
                if socket::ping(ws, ping.as_mut()).await.is_err() {
                    break End::Lost;
                }
                continue;
            }
        };
        last_read = Instant::now();
        let mut next = Some(first);
        let mut acks = 0u64;
        let mut delivered = 0u64;
        let ack_resps_before = out.ack_resps;
        let mut handled = 0;
        while let Some(m) = next.take() {
            let text = match socket::text(m, "recipient", &mut out.problems) {
                Ok(t) => t,
                Err(Gone) => break 'outer End::Lost,
            };
            let outcome = match &text {
                Some(t) => on_push(out, t.as_str(), pair, spec, || clock.now_us()),
                None => PushOutcome::Nothing,
            };
            if let PushOutcome::Ack { ack, first } = outcome {
                if let (Some(seq), Some(p)) = (first, progress) {
                    p.arrived(seq);
                }
                if ws.feed(Message::text(ack)).await.is_err() {
                    break 'outer End::Lost;
                }
                acks += 1;
                out.acks_sent += 1;
                delivered += u64::from(first.is_some());
            }
            handled += 1;
            if handled < BATCH {
                next = ws.next().now_or_never();
            }
        }
        if acks > 0 && ws.flush().await.is_err() {
            break End::Lost;
        }
        if let Some(p) = progress {
            if acks > 0 {
                p.acks_sent(acks);
                acks_told += acks;
            }
            if delivered > 0 {
                p.delivered(delivered);
            }
            if out.ack_resps > ack_resps_before {
                p.ack_resps(out.ack_resps - ack_resps_before);
            }
        }
    };
    if let End::Lost = end {
        let sent = out.acks_sent - acks_before;
        let answered = out.ack_resps - resps_before;
        let lost = sent.saturating_sub(answered);
        out.acks_lost += lost;
        if let Some(p) = progress {
            // Those of the batch the socket failed in were never told.
            p.acks_sent(sent - acks_told);
            p.acks_lost(lost);
        }
    }
    end
}
