//! Sending a chat on behalf of someone: what a WebSocket CHAT does after
//! its checks, shared by `POST /api/messages` and the replies webhooks
//! post back. The store decides and makes it durable (idempotent by
//! `clientMsgId`); a new message is then counted, its pair made contacts
//! and fanned out through the hub (which publishes to the other relays of
//! a cluster) exactly as a session's chat ([`accepted`] is used by both).

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::{answer, ChatOutcome, NewChat, Original, Placed};
use crate::App;
use std::sync::atomic::Ordering::Relaxed;

/// What a durable outcome means to the sender: the answer (`msgId`, `ts`,
/// `seq`) and, for a new message, what to fan out. Counts it, and makes a
/// new pair contacts before the sender hears back.
pub fn accepted(hub: &Hub, m: &Metrics, outcome: ChatOutcome) -> (Original, Option<Placed>) {
    match outcome {
        ChatOutcome::Stored(placed) => {
            m.messages_in_total.fetch_add(1, Relaxed);
            hub.new_pair(&placed);
            let p = &placed.msg;
            let o = Original {
                msg_id: p.msg_id,
                ts: p.ts,
                seq: p.seq,
            };
            (o, Some(placed))
        }
        ChatOutcome::Duplicate(o) => {
            m.messages_deduplicated_total.fetch_add(1, Relaxed);
            (o, None)
        }
    }
}

/// Stores `chat` and fans it out; answers once it is durable: the
/// original and whether this was a repeat of its `clientMsgId`.
pub async fn send(app: &App, chat: NewChat) -> Result<(Original, bool)> {
    // In a cluster whose link is behind, wait for it, like a session.
    app.hub.publish_room().await;
    let (reply, answer) = answer();
    app.store.submit_chat(chat, reply).await;
    let outcome = answer.await.inspect_err(|e| {
        if !matches!(e, Error::StoreClosed) {
            app.metrics.errors_total.fetch_add(1, Relaxed);
        }
    })?;
    let (original, placed) = accepted(&app.hub, &app.metrics, outcome);
    let repeat = placed.is_none();
    if let Some(placed) = placed {
        app.hub.fanout(&placed, None);
    }
    Ok((original, repeat))
}
