//! Chats a session queued to the store and has not answered yet.
//!
//! The session queues each chat in the order it arrives
//! (`Store::submit_chat`) and keeps its [`Answer`] here; the answers are
//! taken in the same order, so a client gets its 81s in the order it sent.
//! Reading goes on while chats are in flight, up to a bound: that is what
//! lets a client pipeline, and lets one group commit carry many clients'
//! chats.

use crate::error::Result;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::{Answer, ChatOutcome};
use std::collections::VecDeque;
use std::future::{poll_fn, Future as _};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// One chat waiting for its answer.
pub(super) struct Waiting {
    pub answer: Answer<ChatOutcome>,
    /// The sender's idempotency key, for the answer.
    pub client_msg_id: Option<String>,
}

/// A chat's answer, with its key.
pub(super) type Answered = (Result<ChatOutcome>, Option<String>);

/// The queue.
pub(super) struct Inflight {
    queue: VecDeque<Waiting>,
    cap: usize,
}

impl Inflight {
    pub fn new(cap: usize) -> Inflight {
        Inflight {
            queue: VecDeque::new(),
            cap,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.queue.len() >= self.cap
    }

    pub fn push(&mut self, w: Waiting) {
        self.queue.push_back(w);
    }

    /// The oldest chat's answer, once it has one. Pending while the queue
    /// is empty.
    pub async fn next(&mut self) -> Answered {
        let result = poll_fn(|cx| match self.queue.front_mut() {
            Some(w) => Pin::new(&mut w.answer).poll(cx),
            None => std::task::Poll::Pending,
        })
        .await;
        let w = self.queue.pop_front().expect("polled a queued answer");
        (result, w.client_msg_id)
    }

    /// The session is over: what is still in flight is handed to a task
    /// that waits for each answer and fans the stored chats out. Their
    /// sender's socket is gone, but their recipients must still get them
    /// now, not at their next login.
    pub fn drain(mut self, hub: Arc<Hub>, metrics: Arc<Metrics>) {
        if self.queue.is_empty() {
            return;
        }
        tokio::spawn(async move {
            while !self.queue.is_empty() {
                if let (Ok(ChatOutcome::Stored(placed)), _) = self.next().await {
                    metrics.messages_in_total.fetch_add(1, Relaxed);
                    hub.new_pair(&placed);
                    hub.fanout(&placed, None);
                }
            }
        });
    }
}
