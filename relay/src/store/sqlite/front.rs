//! The front of the write path: every write enters here, in order.
//!
//! A chat whose conversation the front knows is resolved in memory: the
//! conversation's next `seq`, a UUIDv7, the group's members, and a check
//! for a duplicate `clientMsgId`. Each group of resolved chats is appended
//! to the commit log with one write and one `fdatasync` (`log.rs`), then
//! answered and pushed, then handed to the indexer (today's SQLite writer)
//! with every other operation, in arrival order. SQLite is off the
//! answering path: measured on this VM, its transactions were what kept the
//! p99 at 5 ms (docs/benchmarks.md).
//!
//! The front is the only one that assigns `seq` in a conversation it has
//! cached, so its cache is exact. What it does not know it reads from
//! SQLite after [`Front::sync`], which waits until the indexer has applied
//! everything handed to it, so SQLite is exact too at that moment. Two
//! kinds of write still go through the indexer while the front waits:
//! group changes (later chats must see the new members) and the first
//! message between two users (the indexer creates the conversation).

use super::log::CommitLog;
use super::{
    direct_lookup, find_by_key, last_stored_seq, load_members, user_exists, Dispatch, IdGen,
    IndexCmd, IndexQueue, Op, Placed, Progress, INDEX_BEHIND, MAX_BATCH,
};
use super::{ChatWrite, Cmd, Committed, ConvId, Error, Metrics, Write};
use crate::clock::now_ms;
use rusqlite::Connection;
use shared::{MsgId, Target, UserId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Conversations the front caches before it starts over (after a sync,
/// so reloading is exact). Bounds memory on a box with millions of them.
const CACHE_LIMIT: usize = 200_000;
/// Pause before retrying a failed log append.
const RETRY_GAP: Duration = Duration::from_millis(100);
/// Logged chats held before they are handed to the indexer.
const HANDOFF: usize = 256;
/// Overlay keys dropped at least per group, on top of twice the group's
/// own chats, so pruning always outpaces growth (see [`Front::prune`]).
const PRUNE_STEP: usize = 1024;

/// A logged chat's answer, should the same key come again.
#[derive(Clone, Copy)]
struct Original {
    msg_id: MsgId,
    ts: i64,
    seq: u64,
}

/// The front thread's state.
pub(super) struct Front {
    pub rx: mpsc::Receiver<Cmd>,
    /// Read-only connection for cache misses and duplicate checks.
    pub read: Connection,
    pub log: CommitLog,
    pub indexer: IndexQueue,
    pub dispatch: Arc<Dispatch>,
    pub progress: Arc<Progress>,
    pub metrics: Arc<Metrics>,
    pub ids: Arc<parking_lot::Mutex<IdGen>>,
    /// The next record's LSN.
    pub next_lsn: u64,
    /// Conversation of each pair of users (lower id first).
    directs: HashMap<(i64, i64), ConvId>,
    /// Last `seq` of every conversation in `directs` or `groups`.
    seqs: HashMap<ConvId, u64>,
    /// Members of each group, sorted.
    groups: HashMap<ConvId, Arc<Vec<UserId>>>,
    /// Ids found not to be a group, and users found not to exist, since
    /// the last group creation or registration: a client sending to them
    /// over and over must not cost a wait for the indexer each time.
    not_groups: HashSet<ConvId>,
    not_users: HashSet<i64>,
    /// `(sender, clientMsgId)` of chats logged but not yet applied; the
    /// applied ones are found in SQLite. Pruned only up to the indexer's
    /// published LSN, so a key is always in one place or the other.
    overlay: HashMap<(i64, String), Original>,
    overlay_order: VecDeque<(u64, (i64, String))>,
    /// Records of the group being built.
    buf: Vec<u8>,
    /// Answers to dispatch once `buf` is durable, in order.
    answers: Vec<Committed>,
    /// Arrival times of the chats in `answers` that were logged.
    arrived: Vec<Instant>,
    /// For the indexer, in order.
    ops: Vec<Op>,
}

impl Front {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rx: mpsc::Receiver<Cmd>,
        read: Connection,
        log: CommitLog,
        indexer: IndexQueue,
        dispatch: Arc<Dispatch>,
        progress: Arc<Progress>,
        metrics: Arc<Metrics>,
        ids: Arc<parking_lot::Mutex<IdGen>>,
        next_lsn: u64,
    ) -> Front {
        Front {
            rx,
            read,
            log,
            indexer,
            dispatch,
            progress,
            metrics,
            ids,
            next_lsn,
            directs: HashMap::new(),
            seqs: HashMap::new(),
            groups: HashMap::new(),
            not_groups: HashSet::new(),
            not_users: HashSet::new(),
            overlay: HashMap::new(),
            overlay_order: VecDeque::new(),
            buf: Vec::with_capacity(1 << 16),
            answers: Vec::new(),
            arrived: Vec::new(),
            ops: Vec::new(),
        }
    }

    /// Takes whatever is queued, handles it in order, makes it durable and
    /// answers; repeats until closed.
    pub fn run(mut self) {
        let mut batch = Vec::with_capacity(256);
        let mut closing = None;
        while closing.is_none() && self.rx.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
            for cmd in batch.drain(..) {
                match cmd {
                    Cmd::Write(w) => self.take(w),
                    Cmd::Fresh(reply) => {
                        // Everything before it goes to the indexer first;
                        // the reader, not the front, waits.
                        self.flush();
                        self.handoff();
                        let _ = self.indexer.send(IndexCmd::Barrier {
                            reply,
                            durable: false,
                        });
                    }
                    Cmd::Close(done) => closing = Some(done),
                }
            }
            self.flush();
        }
        // Whatever was queued before the close is still written.
        self.rx.close();
        while let Ok(cmd) = self.rx.try_recv() {
            if let Cmd::Write(w) = cmd {
                self.take(w);
            }
        }
        self.flush();
        self.handoff();
        let done = closing.unwrap_or_else(|| tokio::sync::oneshot::channel().0);
        let _ = self.indexer.send(IndexCmd::Close(done));
    }

    fn take(&mut self, w: Write) {
        match w {
            Write::Chat(c) => self.chat(c),
            Write::CreateUser { .. } => {
                self.not_users.clear();
                self.ops.push(Op::Write(w));
            }
            Write::Group { ref op, .. } => {
                let group = op.group();
                self.ops.push(Op::Write(w));
                self.flush();
                self.sync();
                match group {
                    Some(g) => {
                        self.groups.remove(&g.0);
                    }
                    None => self.not_groups.clear(),
                }
            }
            // Read markers, tokens and the cursor flush: in order, without
            // waiting.
            w => self.ops.push(Op::Write(w)),
        }
    }

    fn chat(&mut self, c: ChatWrite) {
        if self.seqs.len() + self.not_groups.len() + self.not_users.len() > CACHE_LIMIT {
            self.flush();
            self.sync();
            self.directs.clear();
            self.seqs.clear();
            self.groups.clear();
            self.not_groups.clear();
            self.not_users.clear();
        }
        match self.resolve(&c) {
            Ok(Resolved::Conv(conv, members)) => self.log_chat(c, conv, members),
            Ok(Resolved::Duplicate(o)) => self.answers.push(c.duplicate(o.msg_id, o.ts, o.seq)),
            Ok(Resolved::Refused(error)) => self.refuse(c, error),
            Ok(Resolved::Unknown) => {
                // The first message between two users: the indexer creates
                // the conversation (or refuses an unknown recipient) and
                // answers; the next message finds it.
                self.ops.push(Op::Write(Write::Chat(c)));
                self.flush();
                self.sync();
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the conversation for a chat failed");
                self.refuse(c, Error::Storage(e.to_string()))
            }
        }
    }

    fn refuse(&mut self, c: ChatWrite, error: Error) {
        self.answers.push(c.rejected(error));
    }

    /// Finds the chat's conversation and checks its key, in the same order
    /// of refusals as the indexer's own path.
    fn resolve(&mut self, c: &ChatWrite) -> rusqlite::Result<Resolved> {
        let (conv, members) = match c.to {
            Target::User(to) if to == c.from => {
                return Ok(Resolved::Refused(Error::UnknownRecipient))
            }
            Target::User(to) => {
                let key = (c.from.0.min(to.0), c.from.0.max(to.0));
                let conv = match self.directs.get(&key) {
                    Some(conv) => *conv,
                    None if self.not_users.contains(&to.0) => {
                        return Ok(Resolved::Refused(Error::UnknownRecipient))
                    }
                    None => {
                        self.flush();
                        self.sync();
                        let Some(conv) = direct_lookup(&self.read, c.from, to)? else {
                            if !user_exists(&self.read, to)? {
                                self.not_users.insert(to.0);
                                return Ok(Resolved::Refused(Error::UnknownRecipient));
                            }
                            return Ok(Resolved::Unknown);
                        };
                        self.cache_seq(conv)?;
                        self.directs.insert(key, conv);
                        conv
                    }
                };
                (conv, None)
            }
            Target::Group(g) => match self.group(g.0)? {
                Some(m) if m.binary_search(&c.from).is_ok() => (g.0, Some(m)),
                _ => return Ok(Resolved::Refused(Error::NotMember)),
            },
        };
        if let Some(key) = &c.client_msg_id {
            if let Some(o) = self.overlay.get(&(c.from.0, key.clone())) {
                return Ok(Resolved::Duplicate(*o));
            }
            if let Some((msg_id, ts, seq)) = find_by_key(&self.read, c.from, key)? {
                return Ok(Resolved::Duplicate(Original { msg_id, ts, seq }));
            }
        }
        Ok(Resolved::Conv(conv, members))
    }

    /// A group's members, loaded after a sync on a miss; `None` if `conv`
    /// is not a group.
    fn group(&mut self, conv: ConvId) -> rusqlite::Result<Option<Arc<Vec<UserId>>>> {
        if let Some(m) = self.groups.get(&conv) {
            return Ok(Some(m.clone()));
        }
        if self.not_groups.contains(&conv) {
            return Ok(None);
        }
        self.flush();
        self.sync();
        let Some(members) = load_members(&self.read, conv)? else {
            self.not_groups.insert(conv);
            return Ok(None);
        };
        let members = Arc::new(members);
        self.cache_seq(conv)?;
        self.groups.insert(conv, members.clone());
        Ok(Some(members))
    }

    /// Loads a conversation's last `seq`. Only right after a sync.
    fn cache_seq(&mut self, conv: ConvId) -> rusqlite::Result<()> {
        if !self.seqs.contains_key(&conv) {
            let last = last_stored_seq(&self.read, conv)?;
            self.seqs.insert(conv, last);
        }
        Ok(())
    }

    /// Assigns the chat its place and adds it to the group being logged.
    fn log_chat(&mut self, c: ChatWrite, conv: ConvId, members: Option<Arc<Vec<UserId>>>) {
        let seq = self.seqs.get(&conv).copied().unwrap_or(0) + 1;
        self.seqs.insert(conv, seq);
        let (msg_id, ts) = self.ids.lock().next(now_ms());
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        let placed = Placed {
            conv,
            seq,
            msg_id,
            ts,
        };
        let record = c.record(lsn, placed);
        record.encode(&mut self.buf);
        if let Some(key) = &c.client_msg_id {
            let key = (c.from.0, key.clone());
            self.overlay
                .insert(key.clone(), Original { msg_id, ts, seq });
            self.overlay_order.push_back((lsn, key));
        }
        self.ops.push(Op::Logged(record));
        self.arrived.push(c.received);
        self.answers.push(c.stored(placed, members));
        // Bounded groups: a quarter of the log at most, so one always fits.
        if self.buf.len() >= self.log.capacity() / 4 {
            self.flush();
        }
    }

    /// Makes the group durable and answers it; hands what is held to the
    /// indexer once enough piled up or anything but a logged chat is among
    /// it (see [`Front::handoff`]).
    fn flush(&mut self) {
        let logged = self.arrived.len();
        if !self.buf.is_empty() {
            if !self.log.fits(self.buf.len()) {
                // Start over at offset 0 once everything in the log is in
                // SQLite and on disk there.
                self.barrier(true);
                self.log.rewind();
            }
            let started = Instant::now();
            while let Err(e) = self.log.append(&self.buf) {
                // Nothing was answered: retry the same bytes (rewriting
                // them, so a failed fsync cannot pass for a good one).
                tracing::error!(error = %e, "commit log append failed; retrying");
                self.metrics.log_failures_total.fetch_add(1, Relaxed);
                std::thread::sleep(RETRY_GAP);
            }
            self.buf.clear();
            let m = &self.metrics;
            m.log_appends_total.fetch_add(1, Relaxed);
            m.log_records_total
                .fetch_add(self.arrived.len() as u64, Relaxed);
            let now = Instant::now();
            m.log_append_latency.observe(now - started);
            for t in self.arrived.drain(..) {
                m.store_latency.observe(now.saturating_duration_since(t));
            }
        }
        self.dispatch.send(std::mem::take(&mut self.answers));
        if self.ops.len() >= HANDOFF || self.ops.iter().any(|op| matches!(op, Op::Write(_))) {
            self.handoff();
        }
        self.prune(PRUNE_STEP + 2 * logged);
    }

    /// Hands the operations held so far to the indexer. Logged chats are
    /// held until [`HANDOFF`] of them pile up: each handoff wakes the
    /// indexer, and at one per log append that was ~2,500 wakeups a second
    /// at 10,000 msg/s, each costing a context switch on both sides. Any
    /// other write (someone may wait for it, or it is the cursor flush
    /// timer) goes at once, with everything before it.
    fn handoff(&mut self) {
        if !self.ops.is_empty() {
            let logged = self.next_lsn - 1;
            let behind = logged.saturating_sub(self.progress.applied()) > INDEX_BEHIND;
            // Blocks while the indexer is far behind: backpressure.
            let _ = self.indexer.send(IndexCmd::Ops {
                ops: std::mem::take(&mut self.ops),
                behind,
            });
        }
    }

    /// Waits until the indexer has applied everything handed to it.
    /// Callers flush first.
    fn sync(&mut self) {
        self.barrier(false);
    }

    /// [`Front::sync`], and with `durable` also until SQLite has it on
    /// disk.
    fn barrier(&mut self, durable: bool) {
        self.handoff();
        let (reply, rx) = tokio::sync::oneshot::channel();
        if self
            .indexer
            .send(IndexCmd::Barrier { reply, durable })
            .is_ok()
        {
            let _ = rx.blocking_recv();
        }
        self.prune(PRUNE_STEP);
    }

    /// Drops up to `limit` overlay keys the indexer has committed. A commit
    /// covers up to a second of chats, and dropping all of their keys at
    /// once (~1 ms at 10,000 msg/s) would delay the group being answered.
    /// A key kept a little longer gives the same answer SQLite would.
    fn prune(&mut self, limit: usize) {
        let applied = self.progress.applied();
        for _ in 0..limit {
            let Some((lsn, _)) = self.overlay_order.front() else {
                break;
            };
            if *lsn > applied {
                break;
            }
            let (_, key) = self.overlay_order.pop_front().expect("front exists");
            self.overlay.remove(&key);
        }
    }
}

/// Where a chat goes.
enum Resolved {
    /// Log it in this conversation.
    Conv(ConvId, Option<Arc<Vec<UserId>>>),
    /// Its key was logged or stored before.
    Duplicate(Original),
    /// Refused.
    Refused(Error),
    /// No conversation between the two users yet.
    Unknown,
}
