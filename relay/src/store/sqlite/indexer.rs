//! The indexer: the only SQLite writer, off the answering path for chats.
//!
//! It applies what the front hands it, in order. Logged chats, cursor
//! flushes, token purges and read markers are *quiet*: nobody waits for
//! them to reach the disk, so they gather in one open transaction, run as
//! they arrive (spreading the CPU work over the gathering instead of one
//! burst at its end: a one-second batch of 10,000 chats took ~27 ms of CPU
//! at once, and the other threads, left with one core, answered late), and
//! commit after [`INDEX_GATHER`] or [`INDEX_MAX_BATCH`] operations with
//! `synchronous=NORMAL`, which in WAL mode does not fsync. Anything someone
//! waits for (an account, a token, a group change, the first message of a
//! pair, a barrier) ends the gathering and is committed at once with the
//! configured level (`FULL` by default), then answered.
//!
//! Logged chats were answered already, so a transaction that fails is
//! retried until they are stored; the front waits once the log is full of
//! them. The last log sequence number applied is written in the same
//! transaction and published ([`Progress`]); the front prunes its
//! duplicate-key overlay and reuses the log up to it.

use super::log;
use super::recovery::{insert_message, set_applied_lsn};
use super::schema::sync_pragma;
use super::tasks::Task;
use super::{Fault, IdGen, PendingCursors, Progress};
use crate::clock::now_ms;
use crate::config::SyncMode;
use crate::error::Error;
use crate::fatal;
use crate::metrics::Metrics;
use crate::rules::group::GroupState;
use crate::store::ConvId;
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

/// How long the indexer lets quiet operations gather before it commits
/// them, and the most it gathers. At 10,000 msg/s, committing as soon as
/// anything arrived made 2.4 chats per transaction, 100 MB/s of disk
/// writes and a relay at 90 % CPU; gathering for a second makes 40 MB/s
/// and 62 %, and WAL writes fell from 15 to 5 MB/s once the cursor flush
/// stopped ending gatherings (docs/benchmarks.md, "Fifth round"). At
/// 10,000 msg/s the time bound ends it (the operation bound would take
/// 1.6 s).
pub(super) const INDEX_GATHER: Duration = Duration::from_millis(1000);
pub(super) const INDEX_MAX_BATCH: usize = 16_384;
/// Pause before retrying a transaction of logged chats that failed.
const RETRY_GAP: Duration = Duration::from_millis(100);
/// Pending cursor updates that force a write before the next flush.
const MAX_PENDING_CURSORS: usize = 50_000;

/// One operation for the indexer.
pub(super) enum Op {
    /// A chat already logged and answered: insert it.
    Logged(log::Record),
    /// A write with a result (quiet or not, see [`Task::quiet`]).
    Task(Box<dyn Task>),
    /// Write the coalesced delivery cursors (every 200 ms).
    FlushCursors,
    /// Delete expired tokens (hourly).
    PurgeTokens,
}

impl Op {
    /// Nobody waits for it to reach the disk: it may gather, and its
    /// commit need not fsync (logged chats are in the log; a lost cursor
    /// only re-pushes a message; a lost read marker is read again).
    pub fn is_quiet(&self) -> bool {
        match self {
            Op::Logged(_) | Op::FlushCursors | Op::PurgeTokens => true,
            Op::Task(t) => t.quiet(),
        }
    }
}

/// What reaches the indexer thread, from the front only.
pub(super) enum IndexCmd {
    /// With `behind`, the front found the indexer more than a gathering
    /// behind the log.
    Ops {
        ops: Vec<Op>,
        behind: bool,
    },
    /// Answered once everything before it is committed, pending cursor
    /// moves included; with `durable`, also on disk (the front rewinds the
    /// log after one).
    Barrier {
        reply: oneshot::Sender<()>,
        durable: bool,
    },
    Close(oneshot::Sender<()>),
}

impl IndexCmd {
    /// Whether someone waits for it, or the indexer has fallen behind: it
    /// leaves `SCHED_IDLE` until it has taken it (`priority.rs`).
    pub fn is_urgent(&self) -> bool {
        match self {
            IndexCmd::Ops { ops, behind } => *behind || !ops.iter().all(Op::is_quiet),
            IndexCmd::Barrier { .. } => true,
            IndexCmd::Close(_) => false,
        }
    }
}

/// Bookkeeping of the transaction being built.
#[derive(Default)]
struct Txn {
    /// The last LSN applied (0 if none).
    applied: u64,
    /// Whether a cursor flush is among its operations.
    flush: bool,
}

/// The open transaction quiet operations gather in.
struct Gathering {
    /// Everything run in it, to answer after the commit or redo.
    ops: Vec<Op>,
    txn: Txn,
    started: Instant,
    /// Time spent running its operations.
    busy: Duration,
    /// Something failed and was rolled back: `ops` are redone at the end.
    failed: bool,
}

/// The indexer thread's state. Its caches are exact because everything
/// that writes passes through here in order; they are dropped whenever a
/// transaction fails.
pub(super) struct Indexer {
    pub conn: Connection,
    pub rx: std::sync::mpsc::Receiver<IndexCmd>,
    pub progress: Arc<Progress>,
    pub metrics: Arc<Metrics>,
    /// Shared with the front; used here only for the first message between
    /// two users, while the front waits.
    pub ids: Arc<parking_lot::Mutex<IdGen>>,
    /// The configured durability, and the connection's current one.
    pub sync_level: SyncMode,
    pub conn_level: SyncMode,
    /// Last `seq` per conversation.
    pub seqs: HashMap<ConvId, u64>,
    /// Conversation of each pair of users (lower id first).
    pub directs: HashMap<(i64, i64), ConvId>,
    /// Groups as the rules see them.
    pub groups: HashMap<ConvId, GroupState>,
    /// Delivery cursors acked but not yet written, coalesced: an UPDATE per
    /// ack would cost as much as the message insert itself.
    pub cursors: HashMap<(ConvId, shared::UserId), u64>,
    /// Where `Store::move_cursor` leaves them; taken at every commit.
    pub moved: Arc<PendingCursors>,
    /// Whether the transaction being committed writes `cursors`.
    pub cursors_written: bool,
    gathering: Option<Gathering>,
    /// At `SCHED_IDLE` while nobody waits for it (`priority.rs`).
    pub priority: Arc<super::priority::IndexerPriority>,
    /// Test-only failure injection.
    pub fault: Fault,
    /// Whether the open transaction queued webhook deliveries, and whom
    /// to tell once it is committed (the dispatcher, `crate::webhook`).
    pub deliveries_queued: bool,
    queued: Arc<Notify>,
}

impl Indexer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        conn: Connection,
        rx: std::sync::mpsc::Receiver<IndexCmd>,
        progress: Arc<Progress>,
        metrics: Arc<Metrics>,
        ids: Arc<parking_lot::Mutex<IdGen>>,
        sync: SyncMode,
        moved: Arc<PendingCursors>,
        priority: Arc<super::priority::IndexerPriority>,
        fault: Fault,
        queued: Arc<Notify>,
    ) -> Indexer {
        Indexer {
            conn,
            rx,
            progress,
            metrics,
            ids,
            sync_level: sync,
            conn_level: sync,
            seqs: HashMap::new(),
            directs: HashMap::new(),
            groups: HashMap::new(),
            cursors: HashMap::new(),
            moved,
            cursors_written: false,
            gathering: None,
            priority,
            fault,
            deliveries_queued: false,
            queued,
        }
    }

    /// The thread's body. A panic anywhere in it stops the process
    /// ([`fatal::Guard`]): answered chats must not wait for an indexer that
    /// is gone while the front goes on answering.
    pub fn run(mut self) {
        let _guard = fatal::Guard::new("sqlite-indexer");
        self.priority.start();
        let mut batch = Vec::with_capacity(256);
        let mut urgent = 0;
        let mut barriers = Vec::new();
        let mut durable = false;
        let mut closing = None;
        while closing.is_none() {
            let cmd = match &self.gathering {
                None => self.rx.recv().ok(),
                Some(g) => {
                    let left = INDEX_GATHER.saturating_sub(g.started.elapsed());
                    match self.rx.recv_timeout(left) {
                        Ok(cmd) => Some(cmd),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            if cmd.is_none() && self.gathering.is_none() {
                break; // the front is gone (the store was dropped)
            }
            let mut next = cmd;
            while let Some(cmd) = next.take() {
                urgent += u64::from(cmd.is_urgent());
                match cmd {
                    IndexCmd::Ops { ops, .. } => batch.extend(ops),
                    IndexCmd::Barrier { reply, durable: d } => {
                        barriers.push(reply);
                        durable |= d;
                    }
                    IndexCmd::Close(done) => closing = Some(done),
                }
                if batch.len() < INDEX_MAX_BATCH && closing.is_none() {
                    next = self.rx.try_recv().ok();
                }
            }
            // Quiet operations at the head join the open transaction now.
            let quiet = batch.iter().take_while(|op| op.is_quiet()).count();
            if quiet > 0 {
                let rest = batch.split_off(quiet);
                self.gather(std::mem::replace(&mut batch, rest));
            }
            let full = self.gathering.as_ref().is_some_and(|g| {
                g.ops.len() >= INDEX_MAX_BATCH || g.started.elapsed() >= INDEX_GATHER
            });
            if batch.is_empty() && barriers.is_empty() && closing.is_none() && !full {
                continue;
            }
            if !barriers.is_empty() {
                // Whoever waits may read cursors: write them too.
                if batch.is_empty() && self.gathering.is_some() {
                    self.gather(vec![Op::FlushCursors]);
                } else {
                    batch.push(Op::FlushCursors);
                }
            }
            self.end_gathering();
            if !batch.is_empty() || durable {
                self.commit(std::mem::take(&mut batch), durable);
            }
            durable = false;
            for b in barriers.drain(..) {
                let _ = b.send(());
            }
            self.priority.served(std::mem::take(&mut urgent));
        }
        self.end_gathering();
        // The front sends nothing after the close: write the pending
        // cursors and stop.
        self.commit(vec![Op::FlushCursors], true);
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %e, "final checkpoint failed");
        }
        tracing::info!("SQLite indexer stopped");
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    /// Commits `ops` in a transaction of their own, retrying the logged
    /// chats among them until they are stored. Only writes that someone is
    /// answered about, and `durable` commits, wait for the disk.
    fn commit(&mut self, mut ops: Vec<Op>, durable: bool) {
        self.set_sync(durable || !ops.iter().all(Op::is_quiet));
        loop {
            let retry = self.commit_once(ops, durable);
            if retry.is_empty() {
                return;
            }
            std::thread::sleep(RETRY_GAP);
            ops = retry;
        }
    }

    /// Sets `synchronous` for the next transaction: as configured if
    /// `full`, else at most `NORMAL`.
    fn set_sync(&mut self, full: bool) {
        let level = match self.sync_level {
            SyncMode::Full if !full => SyncMode::Normal,
            configured => configured,
        };
        if level != self.conn_level {
            let name = sync_pragma(level);
            match self.conn.pragma_update(None, "synchronous", name) {
                Ok(()) => self.conn_level = level,
                Err(e) => tracing::warn!(error = %e, "could not set synchronous={name}"),
            }
        }
    }

    /// One transaction; returns the logged chats to retry if it failed.
    fn commit_once(&mut self, mut ops: Vec<Op>, durable: bool) -> Vec<Op> {
        let started = Instant::now();
        let result = self.begin().and_then(|()| {
            let mut txn = Txn::default();
            self.apply_ops(&mut ops, &mut txn)?;
            self.finish(&txn, durable)?;
            self.conn.execute_batch("COMMIT")?;
            Ok(txn.applied)
        });
        match result {
            Ok(applied) => {
                self.committed(applied, ops.len(), started.elapsed());
                answer(ops, &self.metrics);
                Vec::new()
            }
            Err(e) => {
                self.roll_back(&e, ops.len());
                let msg = e.to_string();
                let mut retry = Vec::new();
                for op in ops {
                    match op {
                        Op::Logged(r) => retry.push(Op::Logged(r)),
                        Op::Task(t) => t.fail(Error::Storage(msg.clone())),
                        Op::FlushCursors | Op::PurgeTokens => {}
                    }
                }
                retry
            }
        }
    }

    fn begin(&mut self) -> rusqlite::Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")
    }

    /// Bookkeeping after a successful commit.
    fn committed(&mut self, applied: u64, ops: usize, busy: Duration) {
        if self.cursors_written {
            self.cursors.clear();
        }
        if std::mem::take(&mut self.deliveries_queued) {
            self.queued.notify_one();
        }
        if applied > self.progress.applied() {
            self.progress
                .applied
                .store(applied, std::sync::atomic::Ordering::Release);
        }
        let m = &self.metrics;
        m.store_commits_total.fetch_add(1, Relaxed);
        m.store_ops_total.fetch_add(ops as u64, Relaxed);
        m.store_commit_micros_total
            .fetch_add(busy.as_micros() as u64, Relaxed);
    }

    /// Rolls the open transaction back and forgets what it cached.
    fn roll_back(&mut self, e: &rusqlite::Error, ops: usize) {
        tracing::error!(error = %e, ops, "storage transaction failed; rolled back");
        self.metrics.store_failures_total.fetch_add(1, Relaxed);
        let _ = self.conn.execute_batch("ROLLBACK");
        self.deliveries_queued = false;
        self.seqs.clear();
        self.directs.clear();
        self.groups.clear();
    }

    /// Adds quiet operations to the gathering transaction, beginning it if
    /// needed, and runs them at once.
    fn gather(&mut self, ops: Vec<Op>) {
        let mut g = match self.gathering.take() {
            Some(g) => g,
            None => {
                self.set_sync(false);
                let failed = match self.begin() {
                    Ok(()) => false,
                    Err(e) => {
                        self.roll_back(&e, 0);
                        true
                    }
                };
                Gathering {
                    ops: Vec::new(),
                    txn: Txn::default(),
                    started: Instant::now(),
                    busy: Duration::ZERO,
                    failed,
                }
            }
        };
        let from = g.ops.len();
        g.ops.extend(ops);
        if !g.failed {
            let started = Instant::now();
            if let Err(e) = self.apply_ops(&mut g.ops[from..], &mut g.txn) {
                self.roll_back(&e, g.ops.len());
                g.failed = true;
            }
            g.busy += started.elapsed();
        }
        self.gathering = Some(g);
    }

    /// Commits the gathering transaction, if any, and answers what is in
    /// it. If any part of it failed, its operations go through
    /// [`Indexer::commit`] again.
    fn end_gathering(&mut self) {
        let Some(g) = self.gathering.take() else {
            return;
        };
        if !g.failed {
            let started = Instant::now();
            let r = self
                .finish(&g.txn, false)
                .and_then(|()| self.conn.execute_batch("COMMIT"));
            match r {
                Ok(()) => {
                    self.committed(g.txn.applied, g.ops.len(), g.busy + started.elapsed());
                    answer(g.ops, &self.metrics);
                    return;
                }
                Err(e) => self.roll_back(&e, g.ops.len()),
            }
        }
        self.commit(g.ops, false);
    }

    /// Runs `ops` in the open transaction.
    fn apply_ops(&mut self, ops: &mut [Op], txn: &mut Txn) -> rusqlite::Result<()> {
        let now = now_ms();
        for op in ops {
            match op {
                Op::Logged(r) => {
                    self.fault.check("indexer", &r.content.body);
                    let (inserted, queued) = insert_message(&self.conn, r)?;
                    self.deliveries_queued |= queued > 0;
                    if inserted == 0 {
                        // The front resolved it against exact caches: this
                        // is a bug, and the message is already answered.
                        tracing::error!(conv = r.conv, seq = r.seq, msg_id = %r.msg_id, "a logged message conflicts with a stored one");
                    }
                    if let Some(s) = self.seqs.get_mut(&r.conv) {
                        *s = (*s).max(r.seq);
                    }
                    txn.applied = r.lsn;
                }
                Op::Task(t) => t.run(self, now)?,
                Op::FlushCursors => txn.flush = true,
                Op::PurgeTokens => {
                    let n = self
                        .conn
                        .prepare_cached("DELETE FROM tokens WHERE expires_at <= ?1")?
                        .execute([now])?;
                    if n > 0 {
                        tracing::info!(tokens = n, "purged expired tokens");
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the open transaction's work: the cursor moves (on a flush, or
    /// when many piled up) and the applied LSN.
    fn finish(&mut self, txn: &Txn, durable: bool) -> rusqlite::Result<()> {
        self.cursors_written = false;
        for (key, seq) in self.moved.take() {
            let e = self.cursors.entry(key).or_default();
            *e = (*e).max(seq);
        }
        if !self.cursors.is_empty() && (txn.flush || self.cursors.len() >= MAX_PENDING_CURSORS) {
            let mut stmt = self.conn.prepare_cached(
                "UPDATE members SET delivered_seq = MAX(delivered_seq, ?1)
                 WHERE conv_id = ?2 AND user_id = ?3",
            )?;
            for (&(conv, user), &seq) in &self.cursors {
                stmt.execute(params![seq as i64, conv, user.0])?;
            }
            self.cursors_written = true;
        }
        if txn.applied > 0 || durable {
            set_applied_lsn(&self.conn, txn.applied.max(self.progress.applied()))?;
        }
        Ok(())
    }
}

/// Answers the tasks among committed operations.
fn answer(ops: Vec<Op>, metrics: &Metrics) {
    let now = Instant::now();
    for op in ops {
        if let Op::Task(t) = op {
            if let Some(received) = t.received() {
                metrics
                    .store_latency
                    .observe(now.saturating_duration_since(received));
            }
            t.answer();
        }
    }
}

/// Whether a SQLite error is a unique-constraint violation.
pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indexer leaves `SCHED_IDLE` for what someone waits for and when
    /// the front finds it behind, and only then.
    #[test]
    fn commands_are_urgent_when_someone_waits_or_the_indexer_is_behind() {
        let quiet = || vec![Op::FlushCursors, Op::PurgeTokens];
        let (reply, _rx) = crate::store::answer::<shared::UserId>();
        let waited = vec![
            Op::FlushCursors,
            Op::Task(super::super::tasks::create_user(
                "u".into(),
                "h".into(),
                reply,
            )),
        ];
        let ops = |ops, behind| IndexCmd::Ops { ops, behind };
        assert!(!ops(quiet(), false).is_urgent());
        assert!(ops(quiet(), true).is_urgent());
        assert!(ops(waited, false).is_urgent());
        // A read marker is quiet: nobody waits for it (issue: they ended
        // every gathering with a FULL commit).
        let (reply, _rx) = crate::store::answer();
        let read = super::super::tasks::read(
            shared::UserId(1),
            shared::Target::User(shared::UserId(2)),
            3,
            reply,
        );
        assert!(!ops(vec![Op::Task(read)], false).is_urgent());
        let (reply, _rx) = oneshot::channel();
        assert!(IndexCmd::Barrier {
            reply,
            durable: false
        }
        .is_urgent());
        assert!(!IndexCmd::Close(oneshot::channel().0).is_urgent());
    }
}
