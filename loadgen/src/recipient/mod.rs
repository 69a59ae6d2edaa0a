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
//! The task is here; accounting for each frame is in `arrivals.rs`. After
//! the run, [`Deliveries`] (`deliveries.rs`) sums the recipients and
//! reconciles each with what its sender was told: the delivery figures
//! both reports carry.

mod arrivals;
mod deliveries;

pub use arrivals::RecvOut;
pub use deliveries::Deliveries;

use crate::client::Ws;
use crate::socket::{self, Gone, BATCH, PING_EVERY};
use crate::track::Clock;
use arrivals::{on_push, PushOutcome};
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::sync::Arc;
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
    /// `n` more 91s arrived.
    fn ack_resps(&self, _n: u64) {}
    /// Message `seq` arrived for the first time (called before its ACK is
    /// sent, so a waiter learns of it as early as possible).
    fn arrived(&self, _seq: u64) {}
}

/// A recipient: acks every push at once, records arrival time, order and
/// duplicates for the stream of sender `pair`, until told to stop.
pub async fn run_recipient(
    mut ws: Ws,
    pair: u32,
    expected: usize,
    spec: RecvSpec,
    progress: Option<Arc<dyn ProgressSink>>,
    mut stop: watch::Receiver<bool>,
) -> RecvOut {
    let mut out = RecvOut::new(expected, spec.keep_latencies);
    let clock = spec.clock;
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
                if socket::ping(&mut ws, ping.as_mut()).await.is_err() {
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
            let text = match socket::text(m, "recipient", &mut out.problems) {
                Ok(t) => t,
                Err(Gone) => {
                    alive = false;
                    break 'outer;
                }
            };
            let outcome = match &text {
                Some(t) => on_push(&mut out, t.as_str(), pair, &spec, || clock.now_us()),
                None => PushOutcome::Nothing,
            };
            if let PushOutcome::Ack { ack, first } = outcome {
                if let (Some(seq), Some(p)) = (first, &progress) {
                    p.arrived(seq);
                }
                if ws.feed(Message::text(ack)).await.is_err() {
                    alive = false;
                    break 'outer;
                }
                acks += 1;
                delivered += u64::from(first.is_some());
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
        socket::close_cleanly(&mut ws).await;
    }
    out
}
