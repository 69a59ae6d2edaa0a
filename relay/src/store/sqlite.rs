//! Embedded SQLite storage, the single-box default.
//!
//! - Every write enters the **front thread** (`front.rs`), in order. It
//!   resolves chats in memory, appends each group of them to the commit log
//!   (`log.rs`) with one `fdatasync`, and answers: a chat is durable once it
//!   is in the log. Everything, resolved chats included, then goes on in the
//!   same order to:
//! - the **indexer thread** (`Writer` below), which owns the only write
//!   connection. It gathers logged chats and cursor moves (nobody waits for
//!   them) and writes them in one transaction with `synchronous=NORMAL`;
//!   anything someone waits for is committed at once with the configured
//!   level (`FULL` by default). It records the last log sequence number
//!   applied in the same transaction, and hands the results of the other
//!   writes to the [`CommitSink`] in order. At start, log records past the
//!   applied number are replayed before anything else runs.
//! - Reads run on a small pool of read-only connections on tokio's blocking
//!   threads; WAL mode lets them proceed while the writer writes.
//! - A checkpointer thread copies the WAL back into the database file in the
//!   background, so the writer never stalls on a checkpoint.

mod front;
mod log;
mod priority;

use super::*;
use crate::clock::now_ms;
use crate::config::SyncMode;
use rusqlite::{params, Connection, ErrorCode as SqlErrorCode, OpenFlags, OptionalExtension};
use shared::api::{
    ConversationKind, ConversationSummary, Conversations, GroupInfo, GroupSummary, History,
    MemberInfo, UserSummary,
};
use shared::{ChatMessage, GroupEvent, GroupEventKind, GroupId, MsgId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// Where the database lives.
pub enum Location {
    /// A file, created with its directory on first start.
    File(PathBuf),
    /// A throwaway database (a temporary file, deleted at close).
    Memory,
}

/// Conversation kinds in `conversations.kind`.
const KIND_DIRECT: i64 = 1;
const KIND_GROUP: i64 = 2;
/// `members.role` of a group's owner.
const ROLE_OWNER: i64 = 1;
/// Most members a group may have.
pub const MAX_GROUP_MEMBERS: usize = 20_000;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run. Never edit a released migration: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE tokens (
    hash       BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX tokens_expiry ON tokens(expires_at);
-- One row per pair of users and per group. Messages, cursors and history
-- all hang off the conversation.
CREATE TABLE conversations (
    id         INTEGER PRIMARY KEY,
    kind       INTEGER NOT NULL,
    name       TEXT,
    owner_id   INTEGER REFERENCES users(id),
    is_public  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE direct_conversations (
    user_lo INTEGER NOT NULL REFERENCES users(id),
    user_hi INTEGER NOT NULL REFERENCES users(id),
    conv_id INTEGER NOT NULL REFERENCES conversations(id),
    PRIMARY KEY (user_lo, user_hi)
) WITHOUT ROWID;
-- Read fan-out: a message is stored once; each member has cursors.
-- delivered_seq: every message up to it (not sent by the member) was acked.
CREATE TABLE members (
    conv_id       INTEGER NOT NULL REFERENCES conversations(id),
    user_id       INTEGER NOT NULL REFERENCES users(id),
    joined_seq    INTEGER NOT NULL DEFAULT 0,
    delivered_seq INTEGER NOT NULL DEFAULT 0,
    read_seq      INTEGER NOT NULL DEFAULT 0,
    role          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conv_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members(user_id, conv_id);
CREATE TABLE messages (
    conv_id       INTEGER NOT NULL REFERENCES conversations(id),
    seq           INTEGER NOT NULL,
    msg_id        BLOB NOT NULL,
    from_id       INTEGER NOT NULL REFERENCES users(id),
    client_msg_id TEXT,
    content_type  INTEGER NOT NULL,
    body          TEXT NOT NULL,
    ts            INTEGER NOT NULL,
    PRIMARY KEY (conv_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_by_id ON messages(msg_id);
CREATE UNIQUE INDEX messages_idempotency ON messages(from_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
"#,
    r#"
-- Groups: searching public groups by name.
CREATE INDEX groups_by_name ON conversations(kind, is_public, name COLLATE NOCASE);
"#,
    r#"
-- The commit log (store/sqlite/log.rs): the last record applied here,
-- written in the same transaction as the record's message.
CREATE TABLE log_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    applied_lsn INTEGER NOT NULL
);
INSERT INTO log_state (id, applied_lsn) VALUES (1, 0);
"#,
];

/// Most operations the front takes from its queue at once.
const MAX_BATCH: usize = 4096;
/// Write queue capacity; producers wait when it is full.
const QUEUE: usize = 8192;
/// Batches handed from the front to the indexer and not yet taken; the
/// front waits when it is full (backpressure).
const INDEX_QUEUE: usize = 4096;
/// How long the indexer lets logged chats gather before it commits them,
/// and the most operations it gathers. They are durable and answered
/// already, so only CPU and disk time are at stake: at 10,000 msg/s,
/// committing as soon as anything arrived made 2.4 chats per transaction,
/// 100 MB/s of disk writes and a relay at 90 % CPU; gathering for a second
/// makes 40 MB/s and 62 %. Until the hub's 200 ms cursor flush was made
/// quiet too, it ended every gathering; at a full second WAL writes fell
/// from 15 to 5 MB/s (docs/benchmarks.md, "Fifth round"). Anything someone
/// waits for (a barrier, a fresh read, a reply) ends the gathering at once.
/// At 10,000 msg/s the time bound ends it (the operation bound would take
/// 1.6 s).
const INDEX_GATHER: Duration = Duration::from_millis(1000);
const INDEX_MAX_BATCH: usize = 16_384;
/// Logged records not yet committed to SQLite past which the front hands
/// batches over as urgent, so the indexer leaves `SCHED_IDLE` (one full
/// gathering). Below it an indexer on idle CPU keeps up; past it, it has
/// been starved by a busy machine, and once the log is full the front
/// would stop and wait for it (measured at saturation without this: a
/// median of 55.7k msg/s against 61.1k at nice 10, and 70.4k with it).
const INDEX_BEHIND: u64 = INDEX_MAX_BATCH as u64;
/// Pause before retrying an indexer transaction of logged chats that failed.
const RETRY_GAP: Duration = Duration::from_millis(100);
/// Pending cursor updates that force a write before the next flush tick.
const MAX_PENDING_CURSORS: usize = 50_000;
/// Batches up to this many chats are dispatched on the front's (or the
/// indexer's) own thread when the dispatch thread is idle.
const INLINE_DISPATCH: usize = 16;
/// Committed batches waiting for the dispatch thread.
const DISPATCH_QUEUE: usize = 64;
/// Read connections.
const READERS: usize = 4;
/// Background checkpoint cadence, and the WAL size that forces a
/// truncating one (only reached if long reads keep the WAL from restarting).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
const WAL_TRUNCATE_BYTES: u64 = 256 << 20;
/// WAL pages after which the indexer checkpoints itself, in its own
/// thread, blocking the writes behind it. When it still answered chats, at
/// SQLite's default of 1,000 (4 MiB) this happened every ~30 ms at 10,000
/// msg/s; at 10,000 pages (~40 MiB of
/// WAL, under `journal_size_limit`) the store stage answers 92 % of
/// messages within 1 ms instead of 77 %, and the mean end-to-end latency
/// drops by a quarter (docs/benchmarks.md, "Third round"). Disabling it
/// altogether is worse: the WAL never restarts and grows until a truncating
/// checkpoint stalls everything.
const WRITER_CHECKPOINT_PAGES: i64 = 10_000;

/// What reaches the front thread.
enum Cmd {
    Write(Write),
    /// Answered once SQLite holds every write queued before it, cursor
    /// moves included: for reads that must see them.
    Fresh(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

impl IndexCmd {
    /// Whether someone waits for it, or the indexer has fallen behind: it
    /// leaves `SCHED_IDLE` until it has taken it (`priority.rs`).
    fn is_urgent(&self) -> bool {
        match self {
            IndexCmd::Ops { ops, behind } => *behind || !ops.iter().all(Op::is_quiet),
            IndexCmd::Barrier { .. } => true,
            IndexCmd::Close(_) => false,
        }
    }
}

/// The front's end of the indexer's queue.
struct IndexQueue {
    tx: std::sync::mpsc::SyncSender<IndexCmd>,
    priority: Arc<priority::IndexerPriority>,
}

impl IndexQueue {
    /// Hands `cmd` over, raising the indexer's priority first if someone
    /// waits for it. Blocks while the queue is full (backpressure); fails
    /// only if the indexer is gone.
    fn send(&self, cmd: IndexCmd) -> std::result::Result<(), ()> {
        if cmd.is_urgent() {
            self.priority.urgent();
        }
        self.tx.send(cmd).map_err(|_| ())
    }
}

/// One operation for the indexer.
enum Op {
    /// Anything but a resolved chat; the indexer does it and answers.
    Write(Write),
    /// A chat already logged and answered: insert it.
    Logged(log::Record),
}

impl Op {
    /// Logged chats and cursor flushes: nobody waits for them, so they
    /// may gather, and their commits need not reach the disk (the chats
    /// are in the log, and a lost cursor only re-pushes a message).
    fn is_quiet(&self) -> bool {
        matches!(self, Op::Logged(_) | Op::Write(Write::FlushCursors))
    }
}

/// What reaches the indexer thread, from the front only.
enum IndexCmd {
    /// With `behind`, the front found the indexer more than
    /// [`INDEX_BEHIND`] records behind the log.
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

/// How far the indexer has come: the last log sequence number committed to
/// SQLite. The front prunes its duplicate-key overlay up to it.
struct Progress {
    applied: AtomicU64,
}

impl Progress {
    fn applied(&self) -> u64 {
        self.applied.load(Acquire)
    }
}

/// Delivery cursor moves from acks, coalesced (the highest `seq` wins)
/// until the indexer takes them.
#[derive(Default)]
struct PendingCursors(parking_lot::Mutex<HashMap<(ConvId, UserId), u64>>);

impl PendingCursors {
    fn moved(&self, user: UserId, conv: ConvId, seq: u64) {
        let mut map = self.0.lock();
        let e = map.entry((conv, user)).or_default();
        *e = (*e).max(seq);
    }

    fn take(&self) -> HashMap<(ConvId, UserId), u64> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// Hands answered batches to the [`CommitSink`], in order. Shared by the
/// front (logged chats) and the indexer (everything else); the front waits
/// for the indexer around the writes whose order matters, so one FIFO
/// keeps the order.
struct Dispatch {
    sink: Arc<dyn CommitSink>,
    /// To the dispatch thread.
    queue: std::sync::mpsc::SyncSender<Vec<Committed>>,
    /// Batches handed to the dispatch thread and not yet done.
    busy: Arc<AtomicUsize>,
}

impl Dispatch {
    /// Waits until the dispatch thread has handed over everything queued.
    /// Only while the front waits too (group changes), so it is brief.
    fn wait_idle(&self) {
        while self.busy.load(Acquire) > 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    fn send(&self, batch: Vec<Committed>) {
        if batch.is_empty() {
            return;
        }
        // A small batch with nothing ahead of it in the dispatch thread is
        // dispatched right here: a thread hand-off costs more latency than
        // the work. Big batches (load) go to the dispatch thread, so the
        // next group overlaps with their fan-out.
        if batch.len() <= INLINE_DISPATCH && self.busy.load(Acquire) == 0 {
            self.sink.committed(batch);
        } else {
            self.busy.fetch_add(1, Relaxed);
            // Blocks while the dispatcher is far behind: backpressure.
            let _ = self.queue.send(batch);
        }
    }
}

/// The SQLite backend.
pub struct SqliteStore {
    tx: mpsc::Sender<Cmd>,
    /// Cursor moves not yet taken by the indexer.
    cursors: Arc<PendingCursors>,
    readers: Arc<Readers>,
    stop_checkpointer: Arc<AtomicBool>,
    _temp: Option<TempFile>,
}

/// Deletes a memory-mode database file and its WAL at drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-log"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

fn temp_path() -> PathBuf {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).expect("OS random source");
    dir.join(format!(
        "ferrochat-mem-{}-{:016x}.db",
        std::process::id(),
        u64::from_le_bytes(r)
    ))
}

fn open_conn(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -32768)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn sync_pragma(sync: SyncMode) -> &'static str {
    match sync {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
        SyncMode::Off => "OFF",
    }
}

/// Applies the missing migrations; true if the database was new.
fn migrate(conn: &mut Connection) -> Result<bool> {
    let version: usize =
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        return Err(Error::Config(format!(
            "the database has schema version {version}, newer than this relay knows ({}); upgrade the relay",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(version == 0)
}

/// Inserts the log records SQLite does not have yet, in one transaction;
/// returns the last LSN in use.
fn replay(conn: &mut Connection, path: &Path) -> Result<u64> {
    let applied = applied_lsn(conn)?;
    let records = log::read(path)?;
    let last = records.last().map_or(applied, |r| r.lsn.max(applied));
    let todo: Vec<&log::Record> = records.iter().filter(|r| r.lsn > applied).collect();
    if todo.is_empty() {
        return Ok(last);
    }
    let replayed = (|| {
        let tx = conn.transaction()?;
        for r in &todo {
            insert_message(&tx, r)?;
        }
        set_applied_lsn(&tx, last)?;
        tx.commit()
    })();
    replayed.map_err(|e| {
        Error::Storage(format!(
            "replaying the commit log {} failed ({e}); it may not belong to this database",
            path.display()
        ))
    })?;
    tracing::warn!(
        records = todo.len(),
        last_lsn = last,
        "replayed chats from the commit log that SQLite did not have (the relay stopped without closing)"
    );
    Ok(last)
}

fn applied_lsn(c: &Connection) -> rusqlite::Result<u64> {
    c.query_row("SELECT applied_lsn FROM log_state WHERE id = 1", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|l| l as u64)
}

fn set_applied_lsn(c: &Connection, lsn: u64) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE log_state SET applied_lsn = MAX(applied_lsn, ?1) WHERE id = 1")?
        .execute([lsn as i64])?;
    Ok(())
}

/// Inserts a resolved message; 0 if it was there already.
fn insert_message(c: &Connection, r: &log::Record) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "INSERT OR IGNORE INTO messages (conv_id, seq, msg_id, from_id, client_msg_id, content_type, body, ts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        r.conv,
        r.seq as i64,
        &r.msg_id.as_bytes()[..],
        r.from.0,
        r.client_msg_id,
        r.content.content_type,
        r.content.body,
        r.ts
    ])
}

/// The stored message with this sender's idempotency key: id, time, seq.
fn find_by_key(
    c: &Connection,
    from: UserId,
    key: &str,
) -> rusqlite::Result<Option<(MsgId, i64, u64)>> {
    let found = c
        .prepare_cached(
            "SELECT msg_id, ts, seq FROM messages WHERE from_id = ?1 AND client_msg_id = ?2",
        )?
        .query_row(params![from.0, key], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    found
        .map(|(id, ts, seq)| Ok((uuid_from_blob(id)?, ts, seq as u64)))
        .transpose()
}

/// Whether a user exists.
fn user_exists(c: &Connection, user: UserId) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
        .exists([user.0])
}

/// A conversation's last stored `seq` (0 if empty).
fn last_stored_seq(c: &Connection, conv: ConvId) -> rusqlite::Result<u64> {
    c.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conv_id = ?1")?
        .query_row([conv], |r| r.get::<_, i64>(0))
        .map(|s| s as u64)
}

/// A group's members, sorted; `None` if `conv` is not a group.
fn load_members(c: &Connection, conv: ConvId) -> rusqlite::Result<Option<Vec<UserId>>> {
    let is_group = c
        .prepare_cached("SELECT 1 FROM conversations WHERE id = ?1 AND kind = ?2")?
        .exists(params![conv, KIND_GROUP])?;
    if !is_group {
        return Ok(None);
    }
    c.prepare_cached("SELECT user_id FROM members WHERE conv_id = ?1 ORDER BY user_id")?
        .query_map([conv], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<_>>()
        .map(Some)
}

impl SqliteStore {
    /// Opens (creating and migrating if needed), replays the commit log,
    /// and starts the front, indexer, dispatch and checkpointer threads.
    /// `log_bytes` is the commit log's size.
    pub fn open(
        location: Location,
        sync: SyncMode,
        log_bytes: u64,
        sink: Arc<dyn CommitSink>,
        metrics: Arc<Metrics>,
    ) -> Result<SqliteStore> {
        let (path, temp, sync) = match location {
            Location::File(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                (p, None, sync)
            }
            Location::Memory => {
                let p = temp_path();
                (p.clone(), Some(TempFile(p)), SyncMode::Off)
            }
        };
        let mut conn = open_conn(&path, false)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Config(format!(
                "SQLite refused WAL mode (got {mode})"
            )));
        }
        let level = sync_pragma(sync);
        conn.pragma_update(None, "synchronous", level)?;
        // The writer checkpoints itself every `WRITER_CHECKPOINT_PAGES`:
        // being the only writer, its checkpoint completes, so the WAL
        // restarts from the beginning and stays bounded. The background
        // checkpointer does most of the copying beforehand.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", 64 << 20)?;
        let fresh = migrate(&mut conn)?;
        let log_path = log::path_for(&path);
        if fresh {
            // A log left from another database must not be replayed here.
            match std::fs::remove_file(&log_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        let last_lsn = replay(&mut conn, &log_path)?;
        let log = log::CommitLog::open(&log_path, log_bytes, sync == SyncMode::Full)?;
        tracing::info!(path = %path.display(), synchronous = level, log = %log_path.display(), "SQLite store open");

        let ids = Arc::new(parking_lot::Mutex::new(IdGen::resume(&conn)?));
        let progress = Arc::new(Progress {
            applied: AtomicU64::new(last_lsn),
        });
        // Answered batches go to the hub on a thread of their own, so the
        // next group starts while this one's pushes are being queued. One
        // consumer: order is kept.
        let (queue, dispatched) = std::sync::mpsc::sync_channel::<Vec<Committed>>(DISPATCH_QUEUE);
        let busy = Arc::new(AtomicUsize::new(0));
        {
            let (sink, busy) = (sink.clone(), busy.clone());
            std::thread::Builder::new()
                .name("commit-dispatch".into())
                .spawn(move || {
                    while let Ok(batch) = dispatched.recv() {
                        sink.committed(batch);
                        busy.fetch_sub(1, std::sync::atomic::Ordering::Release);
                    }
                })?;
        }
        let dispatch = Arc::new(Dispatch { sink, queue, busy });
        let (index_tx, index_rx) = std::sync::mpsc::sync_channel(INDEX_QUEUE);
        let priority = Arc::new(priority::IndexerPriority::probe());
        let cursors = Arc::new(PendingCursors::default());
        let writer = Writer {
            conn,
            rx: index_rx,
            dispatch: dispatch.clone(),
            progress: progress.clone(),
            metrics: metrics.clone(),
            ids: ids.clone(),
            sync_level: sync,
            conn_level: sync,
            seqs: HashMap::new(),
            cursors: HashMap::new(),
            moved: cursors.clone(),
            cursors_written: false,
            gathering: None,
            directs: HashMap::new(),
            groups: HashMap::new(),
            priority: priority.clone(),
        };
        std::thread::Builder::new()
            .name("sqlite-indexer".into())
            .spawn(move || writer.run())?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let front = front::Front::new(
            rx,
            open_conn(&path, true)?,
            log,
            IndexQueue {
                tx: index_tx,
                priority,
            },
            dispatch,
            progress.clone(),
            metrics,
            ids,
            last_lsn + 1,
        );
        std::thread::Builder::new()
            .name("write-front".into())
            .spawn(move || front.run())?;

        let stop_checkpointer = Arc::new(AtomicBool::new(false));
        let checkpointer = Checkpointer {
            conn: open_conn(&path, false)?,
            wal: {
                let mut p = path.clone().into_os_string();
                p.push("-wal");
                p.into()
            },
            stop: stop_checkpointer.clone(),
        };
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpointer.run())?;

        Ok(SqliteStore {
            tx,
            readers: Arc::new(Readers {
                path,
                pool: parking_lot::Mutex::new(Vec::new()),
                permits: Semaphore::new(READERS),
            }),
            stop_checkpointer,
            cursors,
            _temp: temp,
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop_checkpointer.store(true, Relaxed);
    }
}

// ---------------------------------------------------------------- reads ----

struct Readers {
    path: PathBuf,
    pool: parking_lot::Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl SqliteStore {
    /// [`Readers::run`], once SQLite holds every write queued before this
    /// call: chats answered from the commit log and cursor moves. For reads
    /// that must see every message pushed and acked before they began.
    async fn fresh<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Fresh(done))
            .await
            .map_err(|_| Error::StoreClosed)?;
        rx.await.map_err(|_| Error::StoreClosed)?;
        self.readers.run(f).await
    }
}

impl Readers {
    /// Runs `f` on a pooled read-only connection on a blocking thread.
    async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::StoreClosed)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = this.pool.lock().pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_conn(&this.path, true)?,
            };
            let result = f(&conn);
            this.pool.lock().push(conn);
            Ok(result?)
        })
        .await
        .map_err(|e| Error::Storage(e.to_string()))?
    }
}

fn uuid_from_blob(b: Vec<u8>) -> rusqlite::Result<MsgId> {
    MsgId::from_slice(&b).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self, w: Write) -> Result<()> {
        self.tx
            .send(Cmd::Write(w))
            .await
            .map_err(|_| Error::StoreClosed)
    }

    fn move_cursor(&self, user: UserId, conv: ConvId, seq: u64) {
        self.cursors.moved(user, conv, seq);
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let name = username.to_string();
        self.readers
            .run(move |c| {
                c.prepare_cached(
                    "SELECT id, username, password_hash FROM users WHERE username = ?1",
                )?
                .query_row([name], |r| {
                    Ok(UserRecord {
                        id: UserId(r.get(0)?),
                        username: r.get(1)?,
                        password_hash: r.get(2)?,
                    })
                })
                .optional()
            })
            .await
    }

    async fn token_user(&self, hash: TokenHash, now: i64) -> Result<Option<UserRef>> {
        self.readers
            .run(move |c| {
                c.prepare_cached(
                    "SELECT u.id, u.username FROM tokens t JOIN users u ON u.id = t.user_id
                     WHERE t.hash = ?1 AND t.expires_at > ?2",
                )?
                .query_row(params![&hash[..], now], user_ref)
                .optional()
            })
            .await
    }

    async fn pending(
        &self,
        user: UserId,
        after: Option<MsgId>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        let after = after.map(|m| m.as_bytes().to_vec()).unwrap_or_default();
        self.fresh(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT m.conv_id, m.seq, m.msg_id, m.from_id, u.username, m.client_msg_id,
                            m.content_type, m.body, m.ts, c.kind
                     FROM members mb
                     JOIN messages m ON m.conv_id = mb.conv_id AND m.seq > mb.delivered_seq
                     JOIN users u ON u.id = m.from_id
                     JOIN conversations c ON c.id = mb.conv_id
                     WHERE mb.user_id = ?1 AND m.from_id != ?1 AND m.msg_id > ?2
                     ORDER BY m.msg_id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![user.0, after, limit], |r| {
                let conv: i64 = r.get(0)?;
                let kind: i64 = r.get(9)?;
                Ok(StoredMessage {
                    conv,
                    seq: r.get::<_, i64>(1)? as u64,
                    msg_id: uuid_from_blob(r.get(2)?)?,
                    from: UserId(r.get(3)?),
                    from_name: r.get::<_, String>(4)?.into(),
                    client_msg_id: r.get(5)?,
                    content: Content {
                        content_type: r.get(6)?,
                        body: r.get(7)?,
                    },
                    ts: r.get(8)?,
                    to: if kind == KIND_GROUP {
                        Target::Group(GroupId(conv))
                    } else {
                        Target::User(user)
                    },
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn message_for(&self, user: UserId, msg_id: MsgId) -> Result<Option<MessageRef>> {
        self.fresh(move |c| {
            c.prepare_cached(
                "SELECT m.conv_id, m.seq, m.from_id FROM messages m
                     JOIN members mb ON mb.conv_id = m.conv_id AND mb.user_id = ?2
                     WHERE m.msg_id = ?1",
            )?
            .query_row(params![&msg_id.as_bytes()[..], user.0], |r| {
                Ok(MessageRef {
                    conv: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    from: UserId(r.get(2)?),
                })
            })
            .optional()
        })
        .await
    }

    async fn search_users(&self, prefix: &str, limit: u32) -> Result<Vec<UserRef>> {
        let pattern = like_prefix(prefix);
        self.readers
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, username FROM users WHERE username LIKE ?1 ESCAPE '\\'
                     ORDER BY username COLLATE NOCASE LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![pattern, limit], user_ref)?;
                rows.collect()
            })
            .await
    }

    async fn contacts(&self, user: UserId, group_limit: u32) -> Result<Vec<UserRef>> {
        self.readers
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT DISTINCT u.id, u.username
                     FROM members me
                     JOIN conversations c ON c.id = me.conv_id
                     JOIN members other ON other.conv_id = me.conv_id AND other.user_id != me.user_id
                     JOIN users u ON u.id = other.user_id
                     WHERE me.user_id = ?1
                       AND (c.kind = ?2 OR (SELECT COUNT(*) FROM members x WHERE x.conv_id = c.id) <= ?3)",
                )?;
                let rows = stmt.query_map(params![user.0, KIND_DIRECT, group_limit], user_ref)?;
                rows.collect()
            })
            .await
    }

    async fn conversations(&self, user: UserId) -> Result<Conversations> {
        self.fresh(move |c| list_conversations(c, user)).await
    }

    async fn history(
        &self,
        user: UserId,
        to: Target,
        before: Option<u64>,
        limit: u32,
    ) -> Result<History> {
        self.fresh(move |c| Ok(load_history(c, user, to, before, limit)))
            .await?
    }

    async fn group_info(&self, viewer: UserId, group: GroupId) -> Result<GroupInfo> {
        self.readers
            .run(move |c| Ok(load_group(c, viewer, group)))
            .await?
    }

    async fn search_groups(&self, prefix: &str, limit: u32) -> Result<Vec<GroupSummary>> {
        let pattern = like_prefix(prefix);
        self.readers
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id FROM conversations
                     WHERE kind = ?1 AND is_public = 1 AND name LIKE ?2 ESCAPE '\\'
                     ORDER BY name COLLATE NOCASE LIMIT ?3",
                )?;
                let ids: Vec<i64> = stmt
                    .query_map(params![KIND_GROUP, pattern, limit], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                ids.into_iter().map(|id| group_summary(c, id)).collect()
            })
            .await
    }

    async fn group_members(
        &self,
        user: UserId,
        group: GroupId,
        cap: u32,
    ) -> Result<Option<Vec<UserId>>> {
        self.readers
            .run(move |c| {
                let member = c
                    .prepare_cached(
                        "SELECT 1 FROM members mb JOIN conversations c ON c.id = mb.conv_id
                         WHERE mb.conv_id = ?1 AND mb.user_id = ?2 AND c.kind = ?3",
                    )?
                    .exists(params![group.0, user.0, KIND_GROUP])?;
                if !member {
                    return Ok(Err(Error::NotMember));
                }
                let ids: Vec<UserId> = c
                    .prepare_cached("SELECT user_id FROM members WHERE conv_id = ?1 LIMIT ?2")?
                    .query_map(params![group.0, cap as i64 + 1], |r| Ok(UserId(r.get(0)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(Ok((ids.len() <= cap as usize).then_some(ids)))
            })
            .await?
    }

    async fn close(&self) -> Result<()> {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Cmd::Close(done)).await.is_ok() {
            let _ = rx.await;
        }
        self.stop_checkpointer.store(true, Relaxed);
        Ok(())
    }
}

/// A `UserRef` from a row of (id, username).
fn user_ref(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRef> {
    Ok(UserRef {
        id: UserId(r.get(0)?),
        username: r.get(1)?,
    })
}

/// The conversation of two users, if they have one.
fn direct_lookup(c: &Connection, a: UserId, b: UserId) -> rusqlite::Result<Option<ConvId>> {
    c.prepare_cached(
        "SELECT conv_id FROM direct_conversations WHERE user_lo = ?1 AND user_hi = ?2",
    )?
    .query_row(params![a.0.min(b.0), a.0.max(b.0)], |r| r.get(0))
    .optional()
}

/// A LIKE pattern matching names that start with `prefix` (wildcards
/// escaped with `\`).
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for ch in prefix.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// Reads a message row: seq, msg_id, from_id, username, client_msg_id,
/// content_type, body, ts (in that order, from column `at`).
fn message_view(r: &rusqlite::Row<'_>, at: usize, to: Target) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        seq: r.get::<_, i64>(at)? as u64,
        msg_id: uuid_from_blob(r.get(at + 1)?)?,
        from_id: UserId(r.get(at + 2)?),
        from_name: r.get(at + 3)?,
        client_msg_id: r.get(at + 4)?,
        content: Content {
            content_type: r.get(at + 5)?,
            body: r.get(at + 6)?,
        },
        ts: r.get(at + 7)?,
        to,
    })
}

const MESSAGE_COLUMNS: &str =
    "m.seq, m.msg_id, m.from_id, u.username, m.client_msg_id, m.content_type, m.body, m.ts";

/// A group's summary; errors if it does not exist.
fn group_summary(c: &Connection, id: i64) -> rusqlite::Result<GroupSummary> {
    c.prepare_cached(
        "SELECT name, owner_id, is_public, (SELECT COUNT(*) FROM members WHERE conv_id = ?1)
         FROM conversations WHERE id = ?1 AND kind = ?2",
    )?
    .query_row(params![id, KIND_GROUP], |r| {
        Ok(GroupSummary {
            group_id: GroupId(id),
            name: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
            owner_id: UserId(r.get::<_, Option<i64>>(1)?.unwrap_or(0)),
            public: r.get::<_, i64>(2)? != 0,
            member_count: r.get::<_, i64>(3)? as u32,
        })
    })
}

fn list_conversations(c: &Connection, user: UserId) -> rusqlite::Result<Conversations> {
    struct Row {
        conv: i64,
        kind: i64,
        read_seq: i64,
        joined_seq: i64,
        created_at: i64,
    }
    let rows: Vec<Row> = c
        .prepare_cached(
            "SELECT mb.conv_id, c.kind, mb.read_seq, mb.joined_seq, c.created_at FROM members mb
             JOIN conversations c ON c.id = mb.conv_id WHERE mb.user_id = ?1",
        )?
        .query_map([user.0], |r| {
            Ok(Row {
                conv: r.get(0)?,
                kind: r.get(1)?,
                read_seq: r.get(2)?,
                joined_seq: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    // Each with its last activity, for the order: newest first; a
    // conversation without messages yet (a group just created) ranks by
    // when it was created, not below every other.
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (peer, group, to) = if row.kind == KIND_GROUP {
            let g = group_summary(c, row.conv)?;
            (None, Some(g), Target::Group(GroupId(row.conv)))
        } else {
            let p = c
                .prepare_cached(
                    "SELECT u.id, u.username, mb.read_seq, mb.delivered_seq FROM members mb
                     JOIN users u ON u.id = mb.user_id WHERE mb.conv_id = ?1 AND mb.user_id != ?2",
                )?
                .query_row(params![row.conv, user.0], |r| {
                    Ok((
                        UserId(r.get(0)?),
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .optional()?;
            let Some(p) = p else { continue };
            let to = Target::User(p.0);
            (Some(p), None, to)
        };
        // Only what the viewer may read: a group's history starts at their join.
        let last = c
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.from_id
                 WHERE m.conv_id = ?1 AND m.seq > ?2 ORDER BY m.seq DESC LIMIT 1"
            ))?
            .query_row([row.conv, row.joined_seq], |r| {
                // As the viewer names the conversation: a one-to-one message
                // is "to" whoever did not send it.
                let from: i64 = r.get(2)?;
                let to = match to {
                    Target::User(peer) => Target::User(if from == user.0 { peer } else { user }),
                    g => g,
                };
                message_view(r, 0, to)
            })
            .optional()?;
        let unread: i64 = c
            .prepare_cached(
                "SELECT COUNT(*) FROM messages WHERE conv_id = ?1 AND seq > ?2 AND from_id != ?3",
            )?
            .query_row(params![row.conv, row.read_seq, user.0], |r| r.get(0))?;
        let activity = last.as_ref().map_or(row.created_at, |m| m.ts);
        out.push((
            activity,
            ConversationSummary {
                kind: if group.is_some() {
                    ConversationKind::Group
                } else {
                    ConversationKind::Direct
                },
                peer: peer.as_ref().map(|p| UserSummary {
                    user_id: p.0,
                    username: p.1.clone(),
                }),
                group,
                last_seq: last.as_ref().map_or(0, |m| m.seq),
                last_message: last,
                unread: unread as u64,
                read_seq: row.read_seq as u64,
                peer_read_seq: peer.as_ref().map(|p| p.2 as u64),
                peer_delivered_seq: peer.as_ref().map(|p| p.3 as u64),
            },
        ));
    }
    out.sort_by_key(|(activity, _)| std::cmp::Reverse(*activity));
    Ok(Conversations {
        conversations: out.into_iter().map(|(_, s)| s).collect(),
    })
}

fn load_history(
    c: &Connection,
    user: UserId,
    to: Target,
    before: Option<u64>,
    limit: u32,
) -> Result<History> {
    let conv: Option<i64> = match to {
        Target::User(peer) => {
            let conv = direct_lookup(c, user, peer)?;
            if conv.is_none() {
                let exists = c
                    .prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
                    .exists([peer.0])?;
                if !exists || peer == user {
                    return Err(Error::UnknownRecipient);
                }
                return Ok(History {
                    messages: vec![],
                    has_more: false,
                    read_by: Vec::new(),
                });
            }
            conv
        }
        Target::Group(g) => Some(g.0),
    };
    let conv = conv.expect("resolved above");
    let joined: Option<i64> = c
        .prepare_cached("SELECT joined_seq FROM members WHERE conv_id = ?1 AND user_id = ?2")?
        .query_row(params![conv, user.0], |r| r.get(0))
        .optional()?;
    let Some(joined) = joined else {
        return Err(match to {
            Target::Group(_) => Error::NotMember,
            Target::User(_) => Error::UnknownRecipient,
        });
    };
    let before = before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.from_id
         WHERE m.conv_id = ?1 AND m.seq > ?2 AND m.seq < ?3 ORDER BY m.seq DESC LIMIT ?4"
    ))?;
    let mut messages: Vec<ChatMessage> = stmt
        .query_map(params![conv, joined, before, limit as i64 + 1], |r| {
            let from: i64 = r.get(2)?;
            let target = match to {
                Target::User(peer) => Target::User(if from == user.0 { peer } else { user }),
                g => g,
            };
            message_view(r, 0, target)
        })?
        .collect::<rusqlite::Result<_>>()?;
    let has_more = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    messages.reverse();
    Ok(History {
        messages,
        has_more,
        read_by: Vec::new(),
    })
}

fn load_group(c: &Connection, viewer: UserId, group: GroupId) -> Result<GroupInfo> {
    let Some(summary) = group_summary(c, group.0).optional()? else {
        return Err(Error::NoSuchGroup);
    };
    let mut members: Vec<MemberInfo> = c
        .prepare_cached(
            "SELECT mb.user_id, u.username, mb.read_seq, mb.delivered_seq FROM members mb
             JOIN users u ON u.id = mb.user_id WHERE mb.conv_id = ?1",
        )?
        .query_map([group.0], |r| {
            Ok(MemberInfo {
                user_id: UserId(r.get(0)?),
                username: r.get(1)?,
                owner: false,
                read_seq: r.get::<_, i64>(2)? as u64,
                delivered_seq: r.get::<_, i64>(3)? as u64,
                online: false,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let is_member = members.iter().any(|m| m.user_id == viewer);
    if !is_member && !summary.public {
        return Err(Error::NoSuchGroup);
    }
    for m in &mut members {
        m.owner = m.user_id == summary.owner_id;
    }
    members.sort_by(|a, b| {
        b.owner
            .cmp(&a.owner)
            .then_with(|| a.username.to_lowercase().cmp(&b.username.to_lowercase()))
    });
    Ok(GroupInfo {
        summary,
        members,
        next: None,
    })
}

// --------------------------------------------------------------- writes ----

/// Message ids: UUIDv7 (RFC 9562), strictly increasing even within one
/// millisecond (a 12-bit counter in `rand_a`) and across restarts (it
/// resumes after the largest stored id, even if the clock went back).
struct IdGen {
    last_ms: i64,
    counter: u16,
    rng: u64,
}

impl IdGen {
    fn resume(conn: &Connection) -> Result<IdGen> {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("OS random source");
        let mut g = IdGen {
            last_ms: 0,
            counter: 0,
            rng: u64::from_le_bytes(seed) | 1,
        };
        let last: Option<Vec<u8>> = conn
            .query_row(
                "SELECT msg_id FROM messages ORDER BY msg_id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(b) = last.filter(|b| b.len() == 16) {
            let mut ms = [0u8; 8];
            ms[2..].copy_from_slice(&b[..6]);
            g.last_ms = i64::from_be_bytes(ms);
            g.counter = u16::from_be_bytes([b[6] & 0x0f, b[7]]);
        }
        Ok(g)
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*: ids need uniqueness and spread, not secrecy.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next id and its millisecond timestamp.
    fn next(&mut self, now: i64) -> (MsgId, i64) {
        let mut ms = now.max(self.last_ms);
        if ms == self.last_ms {
            self.counter += 1;
            if self.counter > 0x0fff {
                ms += 1;
                self.counter = (self.rand() & 0x3ff) as u16;
            }
        } else {
            // Start low in the counter range so bursts have room.
            self.counter = (self.rand() & 0x3ff) as u16;
        }
        self.last_ms = ms;
        let r = self.rand();
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&(ms as u64).to_be_bytes()[2..]);
        b[6] = 0x70 | ((self.counter >> 8) as u8 & 0x0f);
        b[7] = self.counter as u8;
        b[8] = 0x80 | ((r >> 56) as u8 & 0x3f);
        b[9..].copy_from_slice(&r.to_be_bytes()[1..]);
        (MsgId::from_bytes(b), ms)
    }
}

/// Where a chat was put: what its answer and its push carry.
#[derive(Clone, Copy, Debug)]
struct Placed {
    conv: ConvId,
    seq: u64,
    msg_id: MsgId,
    ts: i64,
}

/// The answers to a chat, built the same way by the front and the indexer.
impl ChatWrite {
    fn record(&self, lsn: u64, p: Placed) -> log::Record {
        log::Record {
            lsn,
            conv: p.conv,
            seq: p.seq,
            msg_id: p.msg_id,
            from: self.from,
            ts: p.ts,
            client_msg_id: self.client_msg_id.clone(),
            content: self.content.clone(),
        }
    }

    fn stored(self, p: Placed, members: Option<Arc<Vec<UserId>>>) -> Committed {
        Committed::Chat {
            msg: Arc::new(StoredMessage {
                conv: p.conv,
                seq: p.seq,
                msg_id: p.msg_id,
                from: self.from,
                from_name: self.from_name,
                to: self.to,
                client_msg_id: self.client_msg_id,
                content: self.content,
                ts: p.ts,
            }),
            origin: self.origin,
            slot: self.slot,
            members,
        }
    }

    fn duplicate(self, msg_id: MsgId, ts: i64, seq: u64) -> Committed {
        Committed::Duplicate {
            msg_id,
            ts,
            seq,
            client_msg_id: self.client_msg_id,
            origin: self.origin,
            slot: self.slot,
        }
    }

    fn rejected(self, error: Error) -> Committed {
        Committed::Rejected {
            error,
            client_msg_id: self.client_msg_id,
            origin: self.origin,
            slot: self.slot,
        }
    }
}

/// What one operation did inside the transaction.
/// Results of the operations run so far in the open transaction.
#[derive(Default)]
struct Txn {
    done: Vec<Done>,
    /// The last LSN applied (0 if none).
    applied: u64,
    /// Whether a cursor flush is among them.
    flush: bool,
}

/// The open transaction that quiet operations gather in. They are run as
/// they arrive, so the indexer's work is spread over the gathering instead
/// of coming in one burst at its end: a one-second batch of 10,000 chats
/// took ~27 ms of CPU at once, and the relay's other threads, squeezed
/// onto the remaining core, answered late meanwhile.
struct Gathering {
    /// Everything run in it, for a retry should it fail.
    ops: Vec<Op>,
    txn: Txn,
    started: Instant,
    /// Time spent running its operations.
    busy: Duration,
    /// Something failed and was rolled back: `ops` are redone at the end.
    failed: bool,
}

enum Done {
    Stored {
        placed: Placed,
        members: Option<Arc<Vec<UserId>>>,
    },
    Duplicate {
        msg_id: MsgId,
        ts: i64,
        seq: u64,
    },
    Rejected(Error),
    User(Result<UserId>),
    Token,
    Revoked(Option<UserId>),
    Group(Result<(GroupId, GroupChange)>),
    Read(Result<Option<ReadMoved>>),
    Nothing,
}

/// The indexer: the only SQLite writer. It applies what the front hands it,
/// in order.
struct Writer {
    conn: Connection,
    rx: std::sync::mpsc::Receiver<IndexCmd>,
    dispatch: Arc<Dispatch>,
    /// Where the applied LSN is published.
    progress: Arc<Progress>,
    metrics: Arc<Metrics>,
    /// Shared with the front; the indexer uses it only for the first
    /// message between two users, while the front waits.
    ids: Arc<parking_lot::Mutex<IdGen>>,
    /// The configured durability, and the connection's current one.
    sync_level: SyncMode,
    conn_level: SyncMode,
    /// Last `seq` per conversation. Everything that stores a message passes
    /// through here in order, so the cache is exact; it is dropped whenever
    /// a transaction fails.
    seqs: HashMap<ConvId, u64>,
    /// Conversation of each pair of users (lower id first).
    directs: HashMap<(i64, i64), ConvId>,
    /// Members of each group, sorted; exact for the same reason as `seqs`.
    groups: HashMap<ConvId, Arc<Vec<UserId>>>,
    /// Delivery cursors acked but not yet written, coalesced: an UPDATE per
    /// ack would cost as much as the message insert itself. They are written
    /// on `Write::FlushCursors` (a timer, every 200 ms) or when many pile
    /// up; losing them in a crash only means re-pushing a few messages,
    /// which clients dedupe.
    cursors: HashMap<(ConvId, UserId), u64>,
    /// Where [`Store::move_cursor`] leaves them; taken at every commit.
    moved: Arc<PendingCursors>,
    /// Whether the transaction being committed writes `cursors`.
    cursors_written: bool,
    /// The open transaction of quiet operations, if any.
    gathering: Option<Gathering>,
    /// At `SCHED_IDLE` while nobody waits for it (`priority.rs`).
    priority: Arc<priority::IndexerPriority>,
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == SqlErrorCode::ConstraintViolation)
}

impl Writer {
    fn run(mut self) {
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
                break; // the front is gone
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
                    self.gather(vec![Op::Write(Write::FlushCursors)]);
                } else {
                    batch.push(Op::Write(Write::FlushCursors));
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
        self.commit(vec![Op::Write(Write::FlushCursors)], true);
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %e, "final checkpoint failed");
        }
        tracing::info!("SQLite indexer stopped");
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    /// Commits `ops`. Logged chats were already answered, so if their
    /// transaction fails they are retried until it succeeds; the front
    /// waits once the log is full of them.
    ///
    /// Only writes that someone is answered about (accounts, tokens, groups,
    /// read markers, the first message of a pair) and `durable` commits wait
    /// for the disk (`synchronous` as configured). Logged chats are durable
    /// in the log until a durable commit covers them, and cursor moves only
    /// save re-pushes; their commits use `NORMAL`, which in WAL mode does
    /// not fsync, so they do not compete with the log's `fdatasync`.
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
    fn commit_once(&mut self, ops: Vec<Op>, durable: bool) -> Vec<Op> {
        let started = Instant::now();
        let result = self.apply(&ops, durable);
        let result = result.and_then(|done| {
            self.conn.execute_batch("COMMIT")?;
            Ok(done)
        });
        let mut retry = Vec::new();
        let done = match result {
            Ok((done, applied)) => {
                self.committed(applied, ops.len(), started.elapsed());
                let m = &self.metrics;
                let now = Instant::now();
                for op in &ops {
                    if let Op::Write(Write::Chat(c)) = op {
                        m.store_latency
                            .observe(now.saturating_duration_since(c.received));
                    }
                }
                done
            }
            Err(e) => {
                self.roll_back(&e, ops.len());
                retry.extend(ops.iter().filter_map(|op| match op {
                    Op::Logged(r) => Some(Op::Logged(r.clone())),
                    Op::Write(_) => None,
                }));
                let msg = e.to_string();
                (0..ops.len())
                    .map(|_| Done::Rejected(Error::Storage(msg.clone())))
                    .collect()
            }
        };
        self.deliver(ops, done);
        retry
    }

    /// Bookkeeping after a successful commit.
    fn committed(&mut self, applied: u64, ops: usize, busy: Duration) {
        if self.cursors_written {
            self.cursors.clear();
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
        self.seqs.clear();
        self.directs.clear();
        self.groups.clear();
    }

    /// Adds quiet operations to the gathering transaction, beginning it if
    /// needed, and runs them at once.
    fn gather(&mut self, ops: Vec<Op>) {
        let mut g = self.gathering.take().unwrap_or_else(|| {
            self.set_sync(false);
            let failed = match self.conn.execute_batch("BEGIN IMMEDIATE") {
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
        });
        let from = g.ops.len();
        g.ops.extend(ops);
        if !g.failed {
            let started = Instant::now();
            if let Err(e) = self.apply_ops(&g.ops[from..], &mut g.txn) {
                self.roll_back(&e, g.ops.len());
                g.failed = true;
            }
            g.busy += started.elapsed();
        }
        self.gathering = Some(g);
    }

    /// Commits the gathering transaction, if any. If any part of it
    /// failed, its operations go through [`Writer::commit`] again, which
    /// retries the logged chats until they are stored.
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
                    return;
                }
                Err(e) => self.roll_back(&e, g.ops.len()),
            }
        }
        self.commit(g.ops, false);
    }

    /// Hands results out: oneshot replies, then the batch to the sink.
    fn deliver(&mut self, ops: Vec<Op>, done: Vec<Done>) {
        let mut committed = Vec::new();
        let mut group_replies = Vec::new();
        for (op, d) in ops.into_iter().zip(done) {
            let Op::Write(op) = op else {
                continue; // logged chats were answered by the front
            };
            match op {
                Write::Chat(c) => committed.push(match d {
                    Done::Stored { placed, members } => c.stored(placed, members),
                    Done::Duplicate { msg_id, ts, seq } => c.duplicate(msg_id, ts, seq),
                    Done::Rejected(error) => c.rejected(error),
                    _ => unreachable!("chat ops produce chat results"),
                }),
                Write::CreateUser { reply, .. } => {
                    let _ = reply.send(match d {
                        Done::User(r) => r,
                        Done::Rejected(e) => Err(e),
                        _ => unreachable!(),
                    });
                }
                Write::CreateToken { reply, .. } => {
                    let _ = reply.send(match d {
                        Done::Rejected(e) => Err(e),
                        _ => Ok(()),
                    });
                }
                Write::RevokeToken { reply, .. } => {
                    let _ = reply.send(match d {
                        Done::Revoked(u) => Ok(u),
                        Done::Rejected(e) => Err(e),
                        _ => unreachable!(),
                    });
                }
                Write::Group { reply, .. } => group_replies.push((
                    reply,
                    match d {
                        Done::Group(Ok((group, change))) => {
                            committed.push(Committed::Group(change));
                            Ok(group)
                        }
                        Done::Group(Err(e)) | Done::Rejected(e) => Err(e),
                        _ => unreachable!(),
                    },
                )),
                Write::Read { origin, .. } => match d {
                    Done::Read(Ok(Some(moved))) => committed.push(Committed::Read(moved)),
                    Done::Read(Ok(None)) => {}
                    Done::Read(Err(error)) | Done::Rejected(error) => {
                        committed.push(Committed::ReadRejected { error, origin })
                    }
                    _ => unreachable!(),
                },
                Write::FlushCursors | Write::PurgeExpiredTokens { .. } => {}
            }
        }
        self.dispatch.send(committed);
        if !group_replies.is_empty() {
            // A change is answered only once the hub has announced it: a
            // client that acts on the answer (a login, say) must not get
            // the announcement afterwards.
            self.dispatch.wait_idle();
            for (reply, result) in group_replies {
                let _ = reply.send(result);
            }
        }
    }

    /// Runs every operation inside one new transaction; also returns the
    /// last LSN applied (0 if none). `durable` writes the applied LSN even
    /// if unchanged: a commit must write something to sync the WAL.
    fn apply(&mut self, ops: &[Op], durable: bool) -> rusqlite::Result<(Vec<Done>, u64)> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut txn = Txn::default();
        self.apply_ops(ops, &mut txn)?;
        self.finish(&txn, durable)?;
        Ok((txn.done, txn.applied))
    }

    /// Runs `ops` in the open transaction, recording their results in `txn`.
    fn apply_ops(&mut self, ops: &[Op], txn: &mut Txn) -> rusqlite::Result<()> {
        let now = now_ms();
        let Txn {
            done,
            applied,
            flush,
        } = txn;
        done.reserve(ops.len());
        for op in ops {
            let op = match op {
                Op::Logged(r) => {
                    if insert_message(&self.conn, r)? == 0 {
                        // The front resolved it against exact caches: this
                        // is a bug, and the message is already answered.
                        tracing::error!(conv = r.conv, seq = r.seq, msg_id = %r.msg_id, "a logged message conflicts with a stored one");
                    }
                    if let Some(s) = self.seqs.get_mut(&r.conv) {
                        *s = (*s).max(r.seq);
                    }
                    *applied = r.lsn;
                    done.push(Done::Nothing);
                    continue;
                }
                Op::Write(w) => w,
            };
            done.push(match op {
                Write::Chat(c) => self.chat(c, now)?,
                Write::FlushCursors => {
                    *flush = true;
                    Done::Nothing
                }
                Write::CreateUser {
                    username,
                    password_hash,
                    ..
                } => {
                    let r = self
                        .conn
                        .prepare_cached(
                            "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![username, password_hash, now]);
                    match r {
                        Ok(_) => Done::User(Ok(UserId(self.conn.last_insert_rowid()))),
                        Err(e) if is_unique_violation(&e) => Done::User(Err(Error::UsernameTaken)),
                        Err(e) => return Err(e),
                    }
                }
                Write::CreateToken {
                    user,
                    hash,
                    expires_at,
                    ..
                } => {
                    self.conn
                        .prepare_cached(
                            "INSERT INTO tokens (hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![&hash[..], user.0, now, expires_at])?;
                    Done::Token
                }
                Write::RevokeToken { hash, .. } => Done::Revoked(
                    self.conn
                        .prepare_cached("DELETE FROM tokens WHERE hash = ?1 RETURNING user_id")?
                        .query_row([&hash[..]], |r| r.get(0))
                        .optional()?
                        .map(UserId),
                ),
                Write::Group { op, .. } => Done::Group(self.group_op(op, now)?),
                Write::Read { user, to, seq, .. } => Done::Read(self.read(*user, *to, *seq)?),
                Write::PurgeExpiredTokens { now } => {
                    let n = self
                        .conn
                        .prepare_cached("DELETE FROM tokens WHERE expires_at <= ?1")?
                        .execute([now])?;
                    if n > 0 {
                        tracing::info!(tokens = n, "purged expired tokens");
                    }
                    Done::Nothing
                }
            });
        }
        Ok(())
    }

    /// Ends the open transaction's work: the cursor moves (on a flush, or
    /// when many piled up) and the applied LSN.
    fn finish(&mut self, txn: &Txn, durable: bool) -> rusqlite::Result<()> {
        let (flush, applied) = (txn.flush, txn.applied);
        self.cursors_written = false;
        for (key, seq) in self.moved.take() {
            let e = self.cursors.entry(key).or_default();
            *e = (*e).max(seq);
        }
        if !self.cursors.is_empty() && (flush || self.cursors.len() >= MAX_PENDING_CURSORS) {
            let mut stmt = self.conn.prepare_cached(
                "UPDATE members SET delivered_seq = MAX(delivered_seq, ?1)
                 WHERE conv_id = ?2 AND user_id = ?3",
            )?;
            for (&(conv, user), &seq) in &self.cursors {
                stmt.execute(params![seq as i64, conv, user.0])?;
            }
            self.cursors_written = true;
        }
        if applied > 0 || durable {
            set_applied_lsn(&self.conn, applied.max(self.progress.applied()))?;
        }
        Ok(())
    }

    fn chat(&mut self, c: &ChatWrite, now: i64) -> rusqlite::Result<Done> {
        let mut members = None;
        let conv = match c.to {
            Target::User(to) if to == c.from => {
                return Ok(Done::Rejected(Error::UnknownRecipient));
            }
            Target::User(to) => match self.direct_conv(c.from, to, now)? {
                Some(conv) => conv,
                None => return Ok(Done::Rejected(Error::UnknownRecipient)),
            },
            Target::Group(g) => match self.group_members(g.0)? {
                Some(m) if m.binary_search(&c.from).is_ok() => {
                    members = Some(m);
                    g.0
                }
                _ => return Ok(Done::Rejected(Error::NotMember)),
            },
        };
        let seq = self.last_seq(conv)? + 1;
        let (msg_id, ts) = self.ids.lock().next(now);
        // The idempotency check is the unique index itself: a resend of a
        // stored (sender, clientMsgId) inserts nothing.
        let placed = Placed {
            conv,
            seq,
            msg_id,
            ts,
        };
        if insert_message(&self.conn, &c.record(0, placed))? == 0 {
            let existing = match &c.client_msg_id {
                Some(key) => find_by_key(&self.conn, c.from, key)?,
                None => None,
            };
            let Some((msg_id, ts, seq)) = existing else {
                // Some other constraint held: fail (and roll back) the batch.
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                    Some(format!("message {conv}/{seq} conflicts with a stored one")),
                ));
            };
            return Ok(Done::Duplicate { msg_id, ts, seq });
        }
        self.seqs.insert(conv, seq);
        Ok(Done::Stored { placed, members })
    }

    /// A group's members (sorted), or `None` if `conv` is not a group.
    fn group_members(&mut self, conv: ConvId) -> rusqlite::Result<Option<Arc<Vec<UserId>>>> {
        if let Some(m) = self.groups.get(&conv) {
            return Ok(Some(m.clone()));
        }
        let Some(members) = load_members(&self.conn, conv)? else {
            return Ok(None);
        };
        let members = Arc::new(members);
        self.groups.insert(conv, members.clone());
        Ok(Some(members))
    }

    fn group_name_owner(&mut self, conv: ConvId) -> rusqlite::Result<(String, Option<UserId>)> {
        self.conn
            .prepare_cached("SELECT name, owner_id FROM conversations WHERE id = ?1")?
            .query_row([conv], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    r.get::<_, Option<i64>>(1)?.map(UserId),
                ))
            })
    }

    fn set_members(&mut self, conv: ConvId, f: impl FnOnce(&mut Vec<UserId>)) -> Arc<Vec<UserId>> {
        let mut m = self
            .groups
            .get(&conv)
            .map(|m| (**m).clone())
            .unwrap_or_default();
        f(&mut m);
        m.sort_unstable();
        m.dedup();
        let m = Arc::new(m);
        self.groups.insert(conv, m.clone());
        m
    }

    fn add_member(
        &mut self,
        conv: ConvId,
        user: UserId,
        role: i64,
    ) -> rusqlite::Result<Arc<Vec<UserId>>> {
        // A newcomer starts at the current end: history and pushes begin
        // with the next message.
        let last = self.last_seq(conv)? as i64;
        self.conn
            .prepare_cached(
                "INSERT INTO members (conv_id, user_id, joined_seq, delivered_seq, read_seq, role)
                 VALUES (?1, ?2, ?3, ?3, ?3, ?4)",
            )?
            .execute(params![conv, user.0, last, role])?;
        Ok(self.set_members(conv, |m| m.push(user)))
    }

    fn remove_member(&mut self, conv: ConvId, user: UserId) -> rusqlite::Result<Arc<Vec<UserId>>> {
        self.conn
            .prepare_cached("DELETE FROM members WHERE conv_id = ?1 AND user_id = ?2")?
            .execute(params![conv, user.0])?;
        Ok(self.set_members(conv, |m| m.retain(|u| *u != user)))
    }

    fn username(&mut self, user: UserId) -> rusqlite::Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT username FROM users WHERE id = ?1")?
            .query_row([user.0], |r| r.get(0))
            .optional()
    }

    /// Applies a group change. The outer error aborts the batch (storage
    /// failure); the inner one refuses just this change.
    fn group_op(
        &mut self,
        op: &GroupOp,
        now: i64,
    ) -> rusqlite::Result<Result<(GroupId, GroupChange)>> {
        let event = |group: GroupId,
                     kind,
                     user: Option<(UserId, String)>,
                     by: Option<UserId>,
                     name: &str| GroupEvent {
            group_id: group,
            kind,
            user_id: user.as_ref().map(|u| u.0),
            username: user.map(|u| u.1),
            by_id: by,
            name: Some(name.to_string()),
        };
        // Loads an existing group and checks `actor`'s standing in it.
        macro_rules! group {
            ($g:expr) => {
                match self.group_members($g.0)? {
                    Some(m) => m,
                    None => return Ok(Err(Error::NoSuchGroup)),
                }
            };
        }
        match op {
            GroupOp::Create {
                owner,
                name,
                public,
            } => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO conversations (kind, name, owner_id, is_public, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![KIND_GROUP, name, owner.0, *public as i64, now])?;
                let conv = self.conn.last_insert_rowid();
                self.groups.insert(conv, Arc::new(Vec::new()));
                let members = self.add_member(conv, *owner, ROLE_OWNER)?;
                let g = GroupId(conv);
                let me = self.username(*owner)?.map(|n| (*owner, n));
                Ok(Ok((
                    g,
                    GroupChange {
                        events: vec![event(g, GroupEventKind::Created, me, Some(*owner), name)],
                        members,
                        former: vec![],
                    },
                )))
            }
            GroupOp::Add {
                group,
                actor,
                username,
            } => {
                let members = group!(group);
                if members.binary_search(actor).is_err() {
                    return Ok(Err(Error::NotMember));
                }
                let found: Option<(i64, String)> = self
                    .conn
                    .prepare_cached("SELECT id, username FROM users WHERE username = ?1")?
                    .query_row([username], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((uid, uname)) = found else {
                    return Ok(Err(Error::UnknownRecipient));
                };
                let user = UserId(uid);
                if members.binary_search(&user).is_ok() {
                    return Ok(Ok((
                        *group,
                        GroupChange {
                            events: vec![],
                            members,
                            former: vec![],
                        },
                    )));
                }
                if members.len() >= MAX_GROUP_MEMBERS {
                    return Ok(Err(Error::Forbidden("the group is full")));
                }
                let members = self.add_member(group.0, user, 0)?;
                let (name, _) = self.group_name_owner(group.0)?;
                let e = event(
                    *group,
                    GroupEventKind::MemberAdded,
                    Some((user, uname)),
                    Some(*actor),
                    &name,
                );
                Ok(Ok((
                    *group,
                    GroupChange {
                        events: vec![e],
                        members,
                        former: vec![],
                    },
                )))
            }
            GroupOp::Join { group, user } => {
                let members = group!(group);
                let public: bool = self
                    .conn
                    .prepare_cached("SELECT is_public FROM conversations WHERE id = ?1")?
                    .query_row([group.0], |r| r.get::<_, i64>(0))?
                    != 0;
                if members.binary_search(user).is_ok() {
                    return Ok(Ok((
                        *group,
                        GroupChange {
                            events: vec![],
                            members,
                            former: vec![],
                        },
                    )));
                }
                if !public {
                    // Private groups are invisible to outsiders.
                    return Ok(Err(Error::NoSuchGroup));
                }
                if members.len() >= MAX_GROUP_MEMBERS {
                    return Ok(Err(Error::Forbidden("the group is full")));
                }
                let members = self.add_member(group.0, *user, 0)?;
                let (name, _) = self.group_name_owner(group.0)?;
                let me = self.username(*user)?.map(|n| (*user, n));
                let e = event(*group, GroupEventKind::MemberJoined, me, None, &name);
                Ok(Ok((
                    *group,
                    GroupChange {
                        events: vec![e],
                        members,
                        former: vec![],
                    },
                )))
            }
            GroupOp::Leave { group, user } => self.depart(*group, *user, None),
            GroupOp::Remove { group, actor, user } => {
                let members = group!(group);
                let (_, owner) = self.group_name_owner(group.0)?;
                if members.binary_search(actor).is_err() {
                    return Ok(Err(Error::NotMember));
                }
                if owner != Some(*actor) {
                    return Ok(Err(Error::Forbidden("only the owner can remove members")));
                }
                if actor == user {
                    return self.depart(*group, *user, None);
                }
                self.depart(*group, *user, Some(*actor))
            }
            GroupOp::Rename { group, actor, name } => {
                let members = group!(group);
                let (_, owner) = self.group_name_owner(group.0)?;
                if members.binary_search(actor).is_err() {
                    return Ok(Err(Error::NotMember));
                }
                if owner != Some(*actor) {
                    return Ok(Err(Error::Forbidden("only the owner can rename the group")));
                }
                self.conn
                    .prepare_cached("UPDATE conversations SET name = ?1 WHERE id = ?2")?
                    .execute(params![name, group.0])?;
                let e = event(*group, GroupEventKind::Renamed, None, Some(*actor), name);
                Ok(Ok((
                    *group,
                    GroupChange {
                        events: vec![e],
                        members,
                        former: vec![],
                    },
                )))
            }
        }
    }

    /// `user` leaves (or, with `by`, is removed by the owner). An owner who
    /// leaves hands the group to the longest-standing member.
    fn depart(
        &mut self,
        group: GroupId,
        user: UserId,
        by: Option<UserId>,
    ) -> rusqlite::Result<Result<(GroupId, GroupChange)>> {
        let Some(members) = self.group_members(group.0)? else {
            return Ok(Err(Error::NoSuchGroup));
        };
        if members.binary_search(&user).is_err() {
            return Ok(Err(Error::NotMember));
        }
        let (name, owner) = self.group_name_owner(group.0)?;
        let uname = self.username(user)?.unwrap_or_default();
        let members = self.remove_member(group.0, user)?;
        let kind = if by.is_some() {
            GroupEventKind::MemberRemoved
        } else {
            GroupEventKind::MemberLeft
        };
        let mut events = vec![GroupEvent {
            group_id: group,
            kind,
            user_id: Some(user),
            username: Some(uname),
            by_id: by,
            name: Some(name.clone()),
        }];
        if owner == Some(user) {
            let heir: Option<i64> = self
                .conn
                .prepare_cached("SELECT user_id FROM members WHERE conv_id = ?1 ORDER BY joined_seq, user_id LIMIT 1")?
                .query_row([group.0], |r| r.get(0))
                .optional()?;
            self.conn
                .prepare_cached("UPDATE conversations SET owner_id = ?1 WHERE id = ?2")?
                .execute(params![heir, group.0])?;
            if let Some(h) = heir {
                self.conn
                    .prepare_cached(
                        "UPDATE members SET role = ?1 WHERE conv_id = ?2 AND user_id = ?3",
                    )?
                    .execute(params![ROLE_OWNER, group.0, h])?;
                let hname = self.username(UserId(h))?;
                events.push(GroupEvent {
                    group_id: group,
                    kind: GroupEventKind::OwnerChanged,
                    user_id: Some(UserId(h)),
                    username: hname,
                    by_id: None,
                    name: Some(name),
                });
            }
        }
        Ok(Ok((
            group,
            GroupChange {
                events,
                members,
                former: vec![user],
            },
        )))
    }

    /// Moves `user`'s read cursor in a conversation forward.
    fn read(
        &mut self,
        user: UserId,
        to: Target,
        seq: u64,
    ) -> rusqlite::Result<Result<Option<ReadMoved>>> {
        let conv = match to {
            Target::User(peer) => {
                let key = (user.0.min(peer.0), user.0.max(peer.0));
                let found = match self.directs.get(&key) {
                    Some(c) => Some(*c),
                    None => direct_lookup(&self.conn, user, peer)?,
                };
                match found {
                    Some(c) => c,
                    None => return Ok(Ok(None)), // nothing was ever said: nothing to read
                }
            }
            Target::Group(g) => match self.group_members(g.0)? {
                Some(m) if m.binary_search(&user).is_ok() => g.0,
                _ => return Ok(Err(Error::NotMember)),
            },
        };
        let seq = seq.min(self.last_seq(conv)?);
        let old: Option<i64> = self
            .conn
            .prepare_cached("SELECT read_seq FROM members WHERE conv_id = ?1 AND user_id = ?2")?
            .query_row(params![conv, user.0], |r| r.get(0))
            .optional()?;
        let Some(old) = old else {
            return Ok(Err(Error::NotMember));
        };
        if seq as i64 <= old {
            return Ok(Ok(None));
        }
        self.conn
            .prepare_cached("UPDATE members SET read_seq = ?1 WHERE conv_id = ?2 AND user_id = ?3")?
            .execute(params![seq as i64, conv, user.0])?;
        let senders: Vec<UserId> = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT from_id FROM messages WHERE conv_id = ?1 AND seq > ?2 AND seq <= ?3 AND from_id != ?4",
            )?
            .query_map(params![conv, old, seq as i64, user.0], |r| Ok(UserId(r.get(0)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Ok(Some(ReadMoved {
            reader: user,
            to,
            seq,
            senders,
        })))
    }

    fn last_seq(&mut self, conv: ConvId) -> rusqlite::Result<u64> {
        if let Some(s) = self.seqs.get(&conv) {
            return Ok(*s);
        }
        last_stored_seq(&self.conn, conv)
    }

    /// The conversation between two users, created on first use; `None`
    /// when `to` does not exist.
    fn direct_conv(
        &mut self,
        from: UserId,
        to: UserId,
        now: i64,
    ) -> rusqlite::Result<Option<ConvId>> {
        let key = (from.0.min(to.0), from.0.max(to.0));
        if let Some(c) = self.directs.get(&key) {
            return Ok(Some(*c));
        }
        let found = direct_lookup(&self.conn, from, to)?;
        let conv = match found {
            Some(c) => c,
            None => {
                if !user_exists(&self.conn, to)? {
                    return Ok(None);
                }
                self.conn
                    .prepare_cached("INSERT INTO conversations (kind, created_at) VALUES (?1, ?2)")?
                    .execute(params![KIND_DIRECT, now])?;
                let conv = self.conn.last_insert_rowid();
                self.conn
                    .prepare_cached(
                        "INSERT INTO direct_conversations (user_lo, user_hi, conv_id) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![key.0, key.1, conv])?;
                let mut add = self
                    .conn
                    .prepare_cached("INSERT INTO members (conv_id, user_id) VALUES (?1, ?2)")?;
                add.execute(params![conv, key.0])?;
                add.execute(params![conv, key.1])?;
                conv
            }
        };
        self.directs.insert(key, conv);
        Ok(Some(conv))
    }
}

// ---------------------------------------------------------- checkpoints ----

struct Checkpointer {
    conn: Connection,
    wal: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Checkpointer {
    fn run(self) {
        priority::idle_forever();
        while !self.stop.load(Relaxed) {
            std::thread::sleep(CHECKPOINT_EVERY);
            let big =
                std::fs::metadata(&self.wal).map(|m| m.len()).unwrap_or(0) > WAL_TRUNCATE_BYTES;
            let mode = if big { "TRUNCATE" } else { "PASSIVE" };
            if let Err(e) =
                self.conn
                    .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
            {
                tracing::debug!(error = %e, "checkpoint skipped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indexer leaves `SCHED_IDLE` for what someone waits for and when
    /// the front finds it behind, and only then.
    #[test]
    fn commands_are_urgent_when_someone_waits_or_the_indexer_is_behind() {
        let quiet = || vec![Op::Write(Write::FlushCursors)];
        let waited = vec![
            Op::Write(Write::FlushCursors),
            Op::Write(Write::PurgeExpiredTokens { now: 0 }),
        ];
        let ops = |ops, behind| IndexCmd::Ops { ops, behind };
        assert!(!ops(quiet(), false).is_urgent());
        assert!(ops(quiet(), true).is_urgent());
        assert!(ops(waited, false).is_urgent());
        let (reply, _rx) = oneshot::channel();
        assert!(IndexCmd::Barrier {
            reply,
            durable: false
        }
        .is_urgent());
        assert!(!IndexCmd::Close(oneshot::channel().0).is_urgent());
    }

    #[test]
    fn ids_increase_strictly_and_carry_the_time() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        let mut g = IdGen::resume(&conn).unwrap();
        let mut last = MsgId::nil();
        for i in 0..10_000 {
            // the clock stalls and even goes back: ids still increase
            let now = 1_700_000_000_000 - (i % 3);
            let (id, ts) = g.next(now);
            assert!(id > last, "{id} <= {last}");
            assert_eq!(id.get_version_num(), 7);
            assert!(ts >= 1_700_000_000_000);
            last = id;
        }
    }
}
