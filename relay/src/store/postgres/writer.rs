//! The writer: one task per relay that commits chats and read markers,
//! a batch per transaction (group commit).
//!
//! It takes everything waiting in its bounded queue (up to
//! [`MAX_BATCH`]), runs it in one transaction on a connection it keeps,
//! and answers each write after `COMMIT` returned, in queue order, so a
//! sender's chats are answered in the order they were queued. Under load,
//! batches grow by themselves while a commit is in flight: with an fsync of
//! ~3 ms per commit, one transaction per chat would cap a relay at a few
//! hundred chats a second; ~50 per transaction makes thousands.
//!
//! A transaction takes three round trips: `BEGIN`, the stored keys and
//! the row locks (and member lists) pipelined; the inserts, the counter
//! updates and `COMMIT` pipelined; more only for the first message of a
//! pair, a group whose members changed, or read markers.
//!
//! When it fails:
//! - a conflict with another relay (a deadlock, a key it inserted first):
//!   the whole batch is decided again from fresh facts, a few times;
//! - the database is unreachable: the batch is tried once more on a fresh
//!   connection if nothing had been committed yet (after a restart, a
//!   pooled connection fails its first query), then every write of the
//!   batch is answered [`Error::Unavailable`]. Never a stored outcome: if
//!   the connection broke during `COMMIT`, the chats may or may not be
//!   stored, and a resend with the same `clientMsgId` finds out without
//!   storing twice;
//! - anything else: every write of the batch gets the error.
//!
//! Read markers are quiet: when only markers are waiting, the writer lets
//! them gather for [`QUIET_GATHER`] (or until a chat comes) so a client
//! reading through a conversation does not cost a commit per marker.

use super::chats::{self, ChatCache, Placement, Slot};
use super::conn::{self, Failure, Pg};
use super::marks::{self, Mark, Marked};
use crate::metrics::Metrics;
use crate::store::ids::IdGen;
use crate::store::{ChatOutcome, NewChat, Placed, ReadMoved, Reply, StoredMessage};
use deadpool_postgres::{Object, Pool};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};

/// Most commands one transaction takes.
pub(super) const MAX_BATCH: usize = 1024;
/// How long read markers alone wait for company before they commit.
const QUIET_GATHER: Duration = Duration::from_millis(200);
/// Attempts at a batch that conflicts with other relays' transactions.
const MAX_TRIES: usize = 5;

/// What reaches the writer.
pub(super) enum Cmd {
    Chat(NewChat, Reply<ChatOutcome>),
    Read(Mark, Reply<Option<ReadMoved>>),
    /// Answered once every write queued before it was committed (or
    /// failed): for reads that must see them.
    Barrier(oneshot::Sender<()>),
    /// Write what is queued, then stop.
    Close(oneshot::Sender<()>),
}

/// The connection the writer keeps, with its statements.
struct Held {
    conn: Object,
    chats: chats::Statements,
    marks: marks::Statements,
}

impl Held {
    async fn open(pool: &Pool) -> Result<Held, Failure> {
        let conn = conn::get(pool).await?;
        let chats = chats::Statements::prepare(&conn).await?;
        let marks = marks::Statements::prepare(&conn).await?;
        Ok(Held { conn, chats, marks })
    }
}

/// The writes of a batch (shared with the transaction while the replies
/// wait apart).
#[derive(Default)]
struct Work {
    chats: Vec<NewChat>,
    marks: Vec<Mark>,
}

/// One transaction's worth of commands.
#[derive(Default)]
struct Batch {
    work: Work,
    chat_replies: Vec<Reply<ChatOutcome>>,
    mark_replies: Vec<Reply<Option<ReadMoved>>>,
    barriers: Vec<oneshot::Sender<()>>,
}

impl Batch {
    fn add(&mut self, cmd: Cmd, closing: &mut Option<oneshot::Sender<()>>) {
        match cmd {
            Cmd::Chat(chat, reply) => {
                self.work.chats.push(chat);
                self.chat_replies.push(reply);
            }
            Cmd::Read(mark, reply) => {
                self.work.marks.push(mark);
                self.mark_replies.push(reply);
            }
            Cmd::Barrier(b) => self.barriers.push(b),
            Cmd::Close(done) => *closing = Some(done),
        }
    }

    fn writes(&self) -> usize {
        self.work.chats.len() + self.work.marks.len()
    }
}

/// The writer task's state.
pub(super) struct Writer {
    pub rx: mpsc::Receiver<Cmd>,
    pub pool: Pool,
    pub ids: IdGen,
    pub metrics: Arc<Metrics>,
    held: Option<Held>,
    cache: ChatCache,
    /// Told after a commit that queued webhook deliveries.
    queued: Arc<Notify>,
}

impl Writer {
    pub fn new(
        rx: mpsc::Receiver<Cmd>,
        pool: Pool,
        ids: IdGen,
        metrics: Arc<Metrics>,
        queued: Arc<Notify>,
    ) -> Writer {
        Writer {
            rx,
            pool,
            ids,
            metrics,
            held: None,
            cache: ChatCache::default(),
            queued,
        }
    }

    /// Commits batches until closed (or every sender is gone).
    pub async fn run(mut self) {
        let mut cmds = Vec::with_capacity(MAX_BATCH);
        let mut closing = None;
        while closing.is_none() {
            if self.rx.recv_many(&mut cmds, MAX_BATCH).await == 0 {
                break;
            }
            if cmds.iter().all(|c| matches!(c, Cmd::Read(..))) {
                self.gather_quiet(&mut cmds).await;
            }
            let mut batch = Batch::default();
            for cmd in cmds.drain(..) {
                batch.add(cmd, &mut closing);
            }
            self.commit(batch).await;
        }
        // Closing: whatever was queued before is still written.
        self.rx.close();
        let mut batch = Batch::default();
        while let Ok(cmd) = self.rx.try_recv() {
            batch.add(cmd, &mut closing);
        }
        self.commit(batch).await;
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    /// Lets read markers gather until something else arrives, the batch
    /// is full, or [`QUIET_GATHER`] has passed.
    async fn gather_quiet(&mut self, cmds: &mut Vec<Cmd>) {
        let until = tokio::time::Instant::now() + QUIET_GATHER;
        let mut seen = 0;
        while cmds.len() < MAX_BATCH && cmds[seen..].iter().all(|c| matches!(c, Cmd::Read(..))) {
            seen = cmds.len();
            let more = self.rx.recv_many(cmds, MAX_BATCH - cmds.len());
            match tokio::time::timeout_at(until, more).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Runs a batch in one transaction (again after a conflict) and
    /// answers every command in it.
    async fn commit(&mut self, batch: Batch) {
        if batch.writes() == 0 {
            for b in batch.barriers {
                let _ = b.send(());
            }
            return;
        }
        let started = Instant::now();
        let mut tries = 0;
        let result = loop {
            tries += 1;
            match self.attempt(&batch.work).await {
                Ok(done) => break Ok(done),
                Err((failure, committing)) => {
                    self.metrics.store_failures_total.fetch_add(1, Relaxed);
                    self.recover(&failure).await;
                    match failure {
                        Failure::Conflict(m) if tries < MAX_TRIES => {
                            tracing::debug!(error = %m, tries, "batch conflicted; deciding it again");
                        }
                        Failure::Unavailable(m) if tries == 1 && !committing => {
                            tracing::warn!(error = %m, "PostgreSQL connection lost; trying the batch on a fresh one");
                        }
                        f => break Err(f),
                    }
                }
            }
        };
        let m = &self.metrics;
        match &result {
            Ok(_) => {
                m.store_commits_total.fetch_add(1, Relaxed);
                m.store_ops_total.fetch_add(batch.writes() as u64, Relaxed);
                m.store_commit_micros_total
                    .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
            }
            Err(f) => {
                tracing::error!(error = ?f, writes = batch.writes(), "batch failed; answered with the error")
            }
        }
        answer(batch, result, m);
    }

    /// One try: the transaction from `BEGIN` to `COMMIT`. On failure, also
    /// whether `COMMIT` had been sent.
    async fn attempt(&mut self, b: &Work) -> Result<(Placement, Marked), (Failure, bool)> {
        let held = match self.held.take() {
            Some(h) => h,
            None => Held::open(&self.pool).await.map_err(|f| (f, false))?,
        };
        let c: &Pg = &held.conn;
        let (cache, ids) = (&mut self.cache, &mut self.ids);
        let decide = async {
            let marked = marks::decide(c, &b.marks, cache).await?;
            let placement = chats::place(c, &held.chats, &b.chats, cache, ids).await?;
            Ok::<_, Failure>((marked, placement))
        };
        // `BEGIN` goes out first; the rest follows on the same connection.
        let (begun, decided) = tokio::join!(c.batch_execute("BEGIN"), decide);
        let decided = begun.map_err(Failure::from).and(decided);
        let (marked, placement) = match decided {
            Ok(d) => d,
            Err(f) => {
                self.held = Some(held);
                return Err((f, false));
            }
        };
        let written = futures_util::try_join!(
            chats::write(c, &held.chats, &b.chats, &placement),
            marks::write(c, &held.marks, &marked),
            c.batch_execute("COMMIT"),
        );
        self.held = Some(held);
        match written {
            Ok((queued, _, _)) => {
                if queued > 0 {
                    self.queued.notify_one();
                }
                Ok((placement, marked))
            }
            Err(e) => Err((Failure::from(e), true)),
        }
    }

    /// After a failed try: roll back on a connection that still works,
    /// drop one that does not.
    async fn recover(&mut self, failure: &Failure) {
        let Some(held) = self.held.take() else { return };
        if matches!(failure, Failure::Unavailable(_)) {
            conn::discard(held.conn);
            return;
        }
        match held.conn.batch_execute("ROLLBACK").await {
            Ok(()) => self.held = Some(held),
            Err(_) => conn::discard(held.conn),
        }
    }
}

/// Answers every command of a batch, in order: what was placed once it
/// is committed, or the failure.
fn answer(batch: Batch, result: Result<(Placement, Marked), Failure>, m: &Metrics) {
    let now = Instant::now();
    match result {
        Ok((placement, marked)) => {
            let stored = placement.stored();
            let chats = batch.work.chats.into_iter().zip(batch.chat_replies);
            for ((chat, reply), slot) in chats.zip(placement.slots) {
                m.store_latency
                    .observe(now.saturating_duration_since(chat.received));
                reply.send(match slot {
                    Slot::Stored(spot) => Ok(ChatOutcome::Stored(Placed {
                        msg: Arc::new(StoredMessage {
                            conv: spot.conv,
                            seq: spot.seq,
                            msg_id: spot.msg_id,
                            from: chat.from,
                            from_name: chat.from_name,
                            to: chat.to,
                            client_msg_id: chat.client_msg_id,
                            content: chat.content,
                            ts: spot.ts,
                        }),
                        members: spot.members,
                        batch: stored,
                    })),
                    Slot::Duplicate(o) => Ok(ChatOutcome::Duplicate(o)),
                    Slot::Refused(e) => Err(e),
                });
            }
            for (reply, r) in batch.mark_replies.into_iter().zip(marked.results) {
                reply.send(r);
            }
        }
        Err(f) => {
            for reply in batch.chat_replies {
                reply.send(Err(f.clone().into_error()));
            }
            for reply in batch.mark_replies {
                reply.send(Err(f.clone().into_error()));
            }
        }
    }
    for b in batch.barriers {
        let _ = b.send(());
    }
}
