//! The front of the write path: every write enters here, in order.
//!
//! A chat whose conversation the front knows is placed in memory: the
//! conversation's next `seq`, a UUIDv7, the group's members, and a check
//! for a duplicate `clientMsgId` (the decision is `rules::chat::resolve`,
//! over the facts below). Each group of placed chats is appended to the
//! commit log with one write and one `fdatasync` (`log.rs`), then answered,
//! then handed to the indexer with every other operation, in arrival
//! order. SQLite is off the answering path: measured on this VM, its
//! transactions were what kept the p99 at 5 ms (docs/benchmarks.md).
//!
//! The front is the only one that assigns `seq` in a conversation it has
//! cached, so its cache is exact. What it does not know it reads from
//! SQLite after [`Front::sync`], which waits until the indexer has applied
//! everything handed to it, so SQLite is exact too at that moment. Two
//! kinds of write still go through the indexer while the front waits:
//! group changes (later chats must see the new members) and the first
//! message between two users (the indexer creates the conversation).

use super::facts::{direct_lookup, find_by_key, last_stored_seq, load_members, user_exists};
use super::indexer::{IndexCmd, Op, INDEX_MAX_BATCH};
use super::log::CommitLog;
use super::priority::IndexerPriority;
use super::tasks;
use super::{Cmd, Fault, IdGen, Placing, Progress, Write};
use crate::clock::now_ms;
use crate::error::Error;
use crate::fatal;
use crate::metrics::Metrics;
use crate::rules::chat::{self, ChatFacts, Verdict};
use crate::store::{ChatOutcome, ConvId, NewChat, Original, Placed, Reply};
use rusqlite::Connection;
use shared::{GroupId, UserId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Most operations the front takes from its queue at once.
const MAX_BATCH: usize = 4096;
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
/// Logged records not yet committed to SQLite past which the front hands
/// batches over as urgent, so the indexer leaves `SCHED_IDLE` (one full
/// gathering). Below it an indexer on idle CPU keeps up; past it, it has
/// been starved by a busy machine, and once the log is full the front
/// would stop and wait for it (measured at saturation without this: a
/// median of 55.7k msg/s against 61.1k at nice 10, and 70.4k with it).
const INDEX_BEHIND: u64 = INDEX_MAX_BATCH as u64;
/// Ticks (one every `super::TICK`) between two purges of expired tokens.
const PURGE_EVERY_TICKS: u64 = 3600 * 5;

/// The front's end of the indexer's queue.
pub(super) struct IndexQueue {
    pub tx: std::sync::mpsc::SyncSender<IndexCmd>,
    pub priority: Arc<IndexerPriority>,
}

impl IndexQueue {
    /// Hands `cmd` over, raising the indexer's priority first if someone
    /// waits for it. Blocks while the queue is full (backpressure). If the
    /// indexer is gone the process stops: chats would be answered that
    /// SQLite never gets, and the log could be reused over them.
    fn send(&self, cmd: IndexCmd) {
        if cmd.is_urgent() {
            self.priority.urgent();
        }
        if self.tx.send(cmd).is_err() {
            fatal::stop("the SQLite indexer is gone");
        }
    }
}

/// The front thread's state.
pub(super) struct Front {
    pub rx: mpsc::Receiver<Cmd>,
    /// Read-only connection for cache misses and duplicate checks.
    pub read: Connection,
    pub log: CommitLog,
    pub indexer: IndexQueue,
    pub progress: Arc<Progress>,
    pub metrics: Arc<Metrics>,
    pub ids: Arc<parking_lot::Mutex<IdGen>>,
    /// The next record's LSN.
    pub next_lsn: u64,
    pub fault: Fault,
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
    /// Answers to send once `buf` is durable, in order.
    answers: Vec<(Reply<ChatOutcome>, crate::error::Result<ChatOutcome>)>,
    /// Arrival times of the chats in `answers` that were logged.
    arrived: Vec<Instant>,
    /// For the indexer, in order.
    ops: Vec<Op>,
    ticks: u64,
}

impl Front {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rx: mpsc::Receiver<Cmd>,
        read: Connection,
        log: CommitLog,
        indexer: IndexQueue,
        progress: Arc<Progress>,
        metrics: Arc<Metrics>,
        ids: Arc<parking_lot::Mutex<IdGen>>,
        next_lsn: u64,
        fault: Fault,
    ) -> Front {
        Front {
            rx,
            read,
            log,
            indexer,
            progress,
            metrics,
            ids,
            next_lsn,
            fault,
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
            ticks: 0,
        }
    }

    /// Takes whatever is queued, handles it in order, makes it durable and
    /// answers; repeats until closed. A panic stops the process
    /// ([`fatal::Guard`]).
    pub fn run(mut self) {
        let _guard = fatal::Guard::new("write-front");
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
                        self.indexer.send(IndexCmd::Barrier {
                            reply,
                            durable: false,
                        });
                    }
                    Cmd::Tick => self.tick(),
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
        self.indexer.send(IndexCmd::Close(done));
    }

    /// The backend's own clock: logged chats held for the indexer go to it
    /// at least this often, with a cursor flush; now and then a purge of
    /// expired tokens.
    fn tick(&mut self) {
        self.ticks += 1;
        self.ops.push(Op::FlushCursors);
        if self.ticks.is_multiple_of(PURGE_EVERY_TICKS) {
            self.ops.push(Op::PurgeTokens);
        }
        self.flush();
        self.handoff();
    }

    fn take(&mut self, w: Write) {
        match w {
            Write::Chat(c, reply) => self.chat(c, reply),
            Write::CreateUser {
                username,
                password_hash,
                reply,
            } => {
                self.not_users.clear();
                self.ops
                    .push(Op::Task(tasks::create_user(username, password_hash, reply)));
            }
            Write::Group(op, reply) => {
                let group = op.group();
                self.ops.push(Op::Task(tasks::group(op, reply)));
                self.flush();
                self.sync();
                match group {
                    Some(g) => {
                        self.groups.remove(&g.0);
                    }
                    None => self.not_groups.clear(),
                }
            }
            // Read markers and tokens: in order, without waiting.
            Write::Read {
                user,
                to,
                seq,
                reply,
            } => self.ops.push(Op::Task(tasks::read(user, to, seq, reply))),
            Write::CreateToken {
                user,
                hash,
                expires_at,
                reply,
            } => self
                .ops
                .push(Op::Task(tasks::create_token(user, hash, expires_at, reply))),
            Write::RevokeToken { hash, reply } => {
                self.ops.push(Op::Task(tasks::revoke_token(hash, reply)))
            }
            Write::Account(task) => {
                self.not_users.clear();
                self.ops.push(Op::Task(task));
            }
            Write::Desk(task) => {
                // Like a group change: chats after it see its members.
                self.ops.push(Op::Task(task));
                self.flush();
                self.sync();
                self.groups.clear();
                self.not_groups.clear();
            }
        }
    }

    fn chat(&mut self, c: NewChat, reply: Reply<ChatOutcome>) {
        if self.seqs.len() + self.not_groups.len() + self.not_users.len() > CACHE_LIMIT {
            self.flush();
            self.sync();
            self.directs.clear();
            self.seqs.clear();
            self.groups.clear();
            self.not_groups.clear();
            self.not_users.clear();
        }
        self.fault.check("front", &c.content.body);
        match chat::resolve(self, c.from, c.to, c.client_msg_id.as_deref()) {
            Ok(Verdict::Conv(conv, members)) => self.log_chat(c, reply, conv, members),
            Ok(Verdict::Duplicate(o)) => self.answers.push((reply, Ok(ChatOutcome::Duplicate(o)))),
            Ok(Verdict::Refused(error)) => self.answers.push((reply, Err(error))),
            Ok(Verdict::NewDirect(_)) => {
                // The first message between two users: the indexer creates
                // the conversation and answers; the next message finds it.
                self.ops.push(Op::Task(tasks::first_chat(c, reply)));
                self.flush();
                self.sync();
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the conversation for a chat failed");
                self.answers
                    .push((reply, Err(Error::Storage(e.to_string()))));
            }
        }
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
    fn log_chat(
        &mut self,
        c: NewChat,
        reply: Reply<ChatOutcome>,
        conv: ConvId,
        members: Option<Arc<Vec<UserId>>>,
    ) {
        let seq = self.seqs.get(&conv).copied().unwrap_or(0) + 1;
        self.seqs.insert(conv, seq);
        let (msg_id, ts) = self.ids.lock().next(now_ms());
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        let placing = Placing {
            conv,
            seq,
            msg_id,
            ts,
        };
        let record = placing.record(lsn, &c);
        record.encode(&mut self.buf);
        if let Some(key) = &c.client_msg_id {
            let key = (c.from.0, key.clone());
            self.overlay
                .insert(key.clone(), Original { msg_id, ts, seq });
            self.overlay_order.push_back((lsn, key));
        }
        self.ops.push(Op::Logged(record));
        self.arrived.push(c.received);
        let msg = Arc::new(placing.message(c));
        let placed = Placed {
            msg,
            members,
            batch: 0, // set when the group is flushed
        };
        self.answers.push((reply, Ok(ChatOutcome::Stored(placed))));
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
        for (reply, mut result) in self.answers.drain(..) {
            if let Ok(ChatOutcome::Stored(p)) = &mut result {
                p.batch = logged;
            }
            reply.send(result);
        }
        if self.ops.len() >= HANDOFF || self.ops.iter().any(|op| !matches!(op, Op::Logged(_))) {
            self.handoff();
        }
        self.prune(PRUNE_STEP + 2 * logged);
    }

    /// Hands the operations held so far to the indexer. Logged chats are
    /// held until [`HANDOFF`] of them pile up: each handoff wakes the
    /// indexer, and at one per log append that was ~2,500 wakeups a second
    /// at 10,000 msg/s, each costing a context switch on both sides. Any
    /// other operation (someone may wait for it, or it is the tick) goes at
    /// once, with everything before it.
    fn handoff(&mut self) {
        if !self.ops.is_empty() {
            let logged = self.next_lsn - 1;
            let behind = logged.saturating_sub(self.progress.applied()) > INDEX_BEHIND;
            // Blocks while the indexer is far behind: backpressure.
            self.indexer.send(IndexCmd::Ops {
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
    /// disk. An indexer that never answers stops the process: the log must
    /// not be reused over records SQLite may not have.
    fn barrier(&mut self, durable: bool) {
        self.handoff();
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.indexer.send(IndexCmd::Barrier { reply, durable });
        if rx.blocking_recv().is_err() {
            fatal::stop("the SQLite indexer stopped before answering a barrier");
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

/// The front's facts for `rules::chat`: its caches, and on a miss SQLite
/// after a sync (so the answer is exact).
impl ChatFacts for Front {
    type Error = rusqlite::Error;

    fn direct(&mut self, a: UserId, b: UserId) -> rusqlite::Result<Option<ConvId>> {
        let key = (a.0.min(b.0), a.0.max(b.0));
        if let Some(conv) = self.directs.get(&key) {
            return Ok(Some(*conv));
        }
        if self.not_users.contains(&a.0) || self.not_users.contains(&b.0) {
            return Ok(None);
        }
        self.flush();
        self.sync();
        let Some(conv) = direct_lookup(&self.read, a, b)? else {
            return Ok(None);
        };
        self.cache_seq(conv)?;
        self.directs.insert(key, conv);
        Ok(Some(conv))
    }

    fn user_exists(&mut self, user: UserId) -> rusqlite::Result<bool> {
        if self.not_users.contains(&user.0) {
            return Ok(false);
        }
        // `direct` synced just before on this path.
        let exists = user_exists(&self.read, user)?;
        if !exists {
            self.not_users.insert(user.0);
        }
        Ok(exists)
    }

    fn group_members(&mut self, g: GroupId) -> rusqlite::Result<Option<Arc<Vec<UserId>>>> {
        if let Some(m) = self.groups.get(&g.0) {
            return Ok(Some(m.clone()));
        }
        if self.not_groups.contains(&g.0) {
            return Ok(None);
        }
        self.flush();
        self.sync();
        let Some(members) = load_members(&self.read, g.0)? else {
            self.not_groups.insert(g.0);
            return Ok(None);
        };
        let members = Arc::new(members.into_iter().map(|m| m.0).collect::<Vec<_>>());
        self.cache_seq(g.0)?;
        self.groups.insert(g.0, members.clone());
        Ok(Some(members))
    }

    fn original(&mut self, from: UserId, key: &str) -> rusqlite::Result<Option<Original>> {
        if let Some(o) = self.overlay.get(&(from.0, key.to_string())) {
            return Ok(Some(*o));
        }
        find_by_key(&self.read, from, key)
    }
}
