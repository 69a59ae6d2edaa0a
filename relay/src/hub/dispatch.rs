//! Where a fan-out runs: inline in the session that stored the chat, or
//! on the hub's own dispatch thread.
//!
//! A fan-out is CPU work (tracking and queueing a push per recipient: a
//! 5,000-member group takes milliseconds). Done on a tokio worker it holds
//! up every socket that worker serves, and under load it competes with
//! reading the next frames; handed to a thread of its own, it overlaps
//! with them. But a thread hand-off costs more than a small fan-out, so a
//! small one runs inline while the dispatch thread is idle, and everything
//! goes to the thread while it is busy (which keeps a session's fan-outs in
//! order: once one is queued, the next is queued behind it). Measured with
//! the load generator on the same two cores, fanning every chat out inline
//! delivered 9 % fewer messages a second than the relay with a dispatch
//! thread (docs/benchmarks.md, "Issue 12").

use super::Hub;
use crate::fatal;
use crate::store::Placed;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Weak};

/// Fan-outs to this many recipients at most, of chats committed in groups
/// of this many at most (a quiet relay), run inline when the thread is
/// idle (the old commit-dispatch thread's rule, per group commit).
const INLINE_RECIPIENTS: usize = 16;
const INLINE_BATCH: usize = 16;
/// Fan-outs queued to the thread at most; past it they run inline
/// (a tokio worker must never block on a full queue).
const QUEUE: usize = 4096;

/// One queued fan-out.
type Job = (Placed, Option<u64>);

/// The hub's dispatch thread, as the hub sees it.
pub(super) struct Dispatcher {
    tx: SyncSender<Job>,
    /// Fan-outs queued and not yet done.
    busy: Arc<AtomicUsize>,
}

impl Dispatcher {
    /// Starts the thread. It holds the hub weakly and stops when the hub
    /// (and with it the queue's sender) is gone.
    pub fn start(hub: Weak<Hub>) -> std::io::Result<Dispatcher> {
        let (tx, rx) = sync_channel(QUEUE);
        let busy = Arc::new(AtomicUsize::new(0));
        let b = busy.clone();
        std::thread::Builder::new()
            .name("hub-dispatch".into())
            .spawn(move || run(hub, rx, b))?;
        Ok(Dispatcher { tx, busy })
    }

    /// Hands `job` to the thread, or gives it back for the caller to run.
    pub fn offer(&self, job: Job, recipients: usize) -> Result<(), Job> {
        let small = recipients <= INLINE_RECIPIENTS && job.0.batch <= INLINE_BATCH;
        if small && self.busy.load(Ordering::Acquire) == 0 {
            return Err(job);
        }
        self.busy.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                self.busy.fetch_sub(1, Ordering::AcqRel);
                Err(job)
            }
        }
    }
}

fn run(hub: Weak<Hub>, rx: Receiver<Job>, busy: Arc<AtomicUsize>) {
    // Queued fan-outs are stored messages: if this thread died, recipients
    // online now would not get them until a reconnect.
    let _guard = fatal::Guard::new("hub-dispatch");
    while let Ok((placed, origin)) = rx.recv() {
        let Some(hub) = hub.upgrade() else {
            return;
        };
        hub.fan_out_now(&placed, origin);
        busy.fetch_sub(1, Ordering::AcqRel);
    }
}
