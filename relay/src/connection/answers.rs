//! Chats a session queued to the store, and how their answers reach the
//! client.
//!
//! The session queues each chat in the order it arrives
//! ([`crate::store::Store::submit_chat`]) with a [`Reply`] that runs where
//! the store answers (its commit thread): it queues the 81 to this socket
//! and fans the stored chat out through the hub. The session's task is not
//! woken once per chat, and a chat stored after its sender's socket closed
//! still reaches its recipients now, not at their next login.
//!
//! Reading goes on while chats are in flight, up to a bound ([`Slots`]): that
//! is what lets a client pipeline, and lets one group commit carry many
//! clients' chats. Each chat holds a slot until its answer is queued. An
//! answer that finds the socket's queue full (the client is not reading) is
//! handed to the session with its slot, and every later answer follows it
//! there, so 81s stay in order and are never dropped; the session waits for
//! room while it reads nothing new.

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::socket::{encode, SocketHandle};
use crate::store::{ChatOutcome, Reply};
use crate::App;
use shared::{close, frame_type, ErrorCode, ServerFrame};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::frames::{chat_resp, error_frame, naming, relay_error};

/// An answer the socket had no room for, with the slot its chat held.
pub(super) type Held = (Utf8Bytes, OwnedSemaphorePermit);

/// The bound on chats in flight, and the answers waiting for room.
pub(super) struct Slots {
    slots: Arc<Semaphore>,
    /// A slot taken ahead of reading the next frame.
    spare: Option<OwnedSemaphorePermit>,
    held_tx: mpsc::Sender<Held>,
    /// Answers handed to the session and not yet queued to the socket.
    backlog: Arc<AtomicUsize>,
}

/// The session's end of the answers that found no room.
pub(super) struct HeldAnswers {
    rx: mpsc::Receiver<Held>,
    backlog: Arc<AtomicUsize>,
}

impl HeldAnswers {
    /// The next answer that found no room.
    pub async fn next(&mut self) -> Held {
        self.rx.recv().await.expect("the session holds a sender")
    }

    /// An answer from [`HeldAnswers::next`] is on the socket's queue.
    pub fn queued(&self, held: Held) {
        self.backlog.fetch_sub(1, AcqRel);
        drop(held);
    }
}

impl Slots {
    pub fn new(cap: usize) -> (Slots, HeldAnswers) {
        // Every held answer carries a slot, so `cap` entries always fit.
        let (held_tx, rx) = mpsc::channel(cap);
        let backlog = Arc::new(AtomicUsize::new(0));
        let held = HeldAnswers {
            rx,
            backlog: backlog.clone(),
        };
        let slots = Slots {
            slots: Arc::new(Semaphore::new(cap)),
            spare: None,
            held_tx,
            backlog,
        };
        (slots, held)
    }

    /// Whether a slot is ready for the next frame.
    pub fn ready(&self) -> bool {
        self.spare.is_some()
    }

    /// A free slot, once there is one (holds no borrow of `self`).
    pub fn acquire(&self) -> impl std::future::Future<Output = OwnedSemaphorePermit> + 'static {
        let slots = self.slots.clone();
        async move {
            let permit = slots.acquire_owned().await;
            permit.expect("the semaphore is never closed")
        }
    }

    /// Keeps a slot from [`Slots::acquire`] for the next frame.
    pub fn reserve(&mut self, slot: OwnedSemaphorePermit) {
        self.spare = Some(slot);
    }

    /// The reply for the chat about to be queued: it takes this frame's
    /// slot.
    pub fn reply(
        &mut self,
        app: &App,
        handle: &SocketHandle,
        client_msg_id: Option<String>,
    ) -> Reply<ChatOutcome> {
        let slot = self.spare.take().expect("a slot was reserved");
        let (hub, metrics) = (app.hub.clone(), app.metrics.clone());
        self.reply_with(hub, metrics, handle.clone(), client_msg_id, slot)
    }

    fn reply_with(
        &self,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        handle: SocketHandle,
        client_msg_id: Option<String>,
        slot: OwnedSemaphorePermit,
    ) -> Reply<ChatOutcome> {
        let (held_tx, backlog) = (self.held_tx.clone(), self.backlog.clone());
        Reply::call(move |result| {
            let (frame, placed, closing) = outcome(&hub, &metrics, result, client_msg_id);
            let frame = encode(&frame);
            // The 81 goes first (a 5,000-member group's answer must not
            // wait for its fan-out) when the socket's queue has room.
            if backlog.load(Acquire) == 0 && handle.offer(frame.clone(), &metrics) {
                drop(slot);
            } else {
                backlog.fetch_add(1, AcqRel);
                if held_tx.try_send((frame, slot)).is_err() {
                    // The session is over; nobody reads this socket.
                    backlog.fetch_sub(1, AcqRel);
                }
            }
            if let Some(placed) = placed {
                hub.fanout(&placed, Some(handle.id()));
            }
            if closing {
                handle.kill(close::GOING_AWAY);
            }
        })
    }
}

/// A chat's answer: the frame for its sender, what to fan out, and whether
/// the session must close (the store stopped).
fn outcome(
    hub: &Hub,
    m: &Metrics,
    result: Result<ChatOutcome>,
    client_msg_id: Option<String>,
) -> (ServerFrame, Option<crate::store::Placed>, bool) {
    match result {
        Ok(outcome) => {
            let (o, placed) = crate::sending::accepted(hub, m, outcome);
            (
                chat_resp((o.msg_id, o.ts, o.seq), client_msg_id),
                placed,
                false,
            )
        }
        Err(Error::StoreClosed) => {
            let e = error_frame(
                ErrorCode::ShuttingDown,
                "the relay is shutting down; reconnect and resend",
                Some(frame_type::CHAT),
            );
            (naming(e, client_msg_id, None), None, true)
        }
        Err(e) => {
            m.errors_total.fetch_add(1, Relaxed);
            let frame = naming(relay_error(&e, frame_type::CHAT), client_msg_id, None);
            (frame, None, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::HubConfig;
    use crate::store::Original;
    use std::time::Duration;

    fn original(seq: u64) -> ChatOutcome {
        ChatOutcome::Duplicate(Original {
            msg_id: uuid::Uuid::now_v7(),
            ts: 1,
            seq,
        })
    }

    fn seq_of(frame: &Utf8Bytes) -> u64 {
        match ServerFrame::decode(frame.as_str()) {
            Ok(ServerFrame::ChatResp { seq, .. }) => seq,
            other => panic!("not an 81: {other:?}"),
        }
    }

    /// A socket whose queue is full gets its answers through the session,
    /// in order, each holding its chat's slot until it is queued; once the
    /// backlog is empty, answers go straight to the socket again.
    #[tokio::test]
    async fn answers_that_find_no_room_keep_their_order_and_their_slots() {
        let metrics = Arc::new(Metrics::default());
        let hub = Arc::new(Hub::new(
            HubConfig {
                ack_timeout: Duration::from_secs(5),
                max_retry_interval: Duration::from_secs(60),
                retry_budget: 8,
                presence_grace: Duration::from_secs(3),
                gap_wait: Duration::from_secs(1),
            },
            metrics.clone(),
        ));
        let (handle, mut socket) = SocketHandle::new(1, 1);
        let (slots, mut held) = Slots::new(3);
        let mut replies = Vec::new();
        for _ in 0..3 {
            let slot = slots.acquire().await;
            replies.push(slots.reply_with(
                hub.clone(),
                metrics.clone(),
                handle.clone(),
                None,
                slot,
            ));
        }
        assert_eq!(slots.slots.available_permits(), 0);
        for (seq, reply) in (1..=3).zip(replies) {
            reply.send(Ok(original(seq)));
        }
        // 1 fit in the queue and gave its slot back; 2 and 3 are held.
        assert_eq!(slots.slots.available_permits(), 1);
        assert_eq!(seq_of(&socket.recv().await.unwrap()), 1);
        // A later answer must not overtake the held ones.
        let slot = slots.acquire().await;
        slots
            .reply_with(hub.clone(), metrics.clone(), handle.clone(), None, slot)
            .send(Ok(original(4)));
        for expected in 2..=4 {
            let h = held.next().await;
            assert!(handle.send(h.0.clone(), &metrics).await);
            held.queued(h);
            assert_eq!(seq_of(&socket.recv().await.unwrap()), expected);
        }
        assert_eq!(slots.slots.available_permits(), 3);
        // The backlog is empty: the next answer goes straight out.
        let slot = slots.acquire().await;
        slots
            .reply_with(hub, metrics.clone(), handle, None, slot)
            .send(Ok(original(5)));
        assert_eq!(seq_of(&socket.recv().await.unwrap()), 5);
        assert_eq!(slots.slots.available_permits(), 3);
    }
}
