//! Embedded SQLite storage, the single-box default.
//!
//! - Every write enters the **front thread** (`front.rs`), in order. It
//!   places chats in memory, appends each group of them to the commit log
//!   (`log.rs`) with one `fdatasync`, and answers: a chat is durable once
//!   it is in the log. Everything, placed chats included, then goes on in
//!   the same order to:
//! - the **indexer thread** (`indexer.rs`), which owns the only write
//!   connection and applies it to SQLite (`tasks.rs`: the writes it
//!   answers). At start, log records past the applied number are replayed
//!   before anything else runs (`recovery.rs`).
//! - Reads run on a small pool of read-only connections (`reads.rs`,
//!   `listing.rs`); WAL mode lets them proceed while the indexer writes.
//! - A checkpointer thread copies the WAL back into the database file in
//!   the background (`checkpoint.rs`), and a ticker gives the front its
//!   clock (cursor flushes, token purges).
//!
//! Each of these threads holds a [`crate::fatal::Guard`]: if one dies the
//! process stops, and the restart replays everything answered. The
//! database file is locked for the process (`schema::lock`): a second relay
//! on it refuses to start.

mod accounts;
mod api;
mod bots;
mod checkpoint;
mod desk;
mod facts;
mod front;
mod ids;
mod indexer;
mod listing;
mod log;
#[cfg(target_os = "linux")]
mod priority;
#[cfg(not(target_os = "linux"))]
#[path = "priority_other.rs"]
mod priority;
mod reads;
mod recovery;
mod schema;
mod tasks;

use crate::auth::TokenHash;
use crate::config::SyncMode;
use crate::error::{Error, Result};
use crate::fatal::{self, Fault};
use crate::metrics::Metrics;
use crate::store::ids::IdGen;
use crate::store::{
    answer, ChatOutcome, ConvId, GroupChange, GroupOp, NewChat, ReadMoved, Reply, StoredMessage,
};
use reads::Readers;
use shared::{MsgId, Target, UserId};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Where the database lives.
pub enum Location {
    /// A file, created with its directory on first start.
    File(PathBuf),
    /// A throwaway database (a temporary file, deleted at close).
    Memory,
}

/// Write queue capacity; producers wait when it is full.
const QUEUE: usize = 8192;
/// Batches handed from the front to the indexer and not yet taken; the
/// front waits when it is full (backpressure).
const INDEX_QUEUE: usize = 4096;
/// The front's clock: how often held chats are handed to the indexer with
/// a cursor flush when nothing else hands them over.
const TICK: Duration = Duration::from_millis(200);
/// WAL pages after which the indexer checkpoints itself, in its own
/// thread, blocking the writes behind it. When it still answered chats, at
/// SQLite's default of 1,000 (4 MiB) this happened every ~30 ms at 10,000
/// msg/s; at 10,000 pages (~40 MiB of WAL, under `journal_size_limit`) the
/// store stage answers 92 % of messages within 1 ms instead of 77 %, and
/// the mean end-to-end latency drops by a quarter (docs/benchmarks.md,
/// "Third round"). Disabling it altogether is worse: the WAL never
/// restarts and grows until a truncating checkpoint stalls everything.
const WRITER_CHECKPOINT_PAGES: i64 = 10_000;

/// A write, as queued to the front.
pub(in crate::store::sqlite) enum Write {
    Chat(NewChat, Reply<ChatOutcome>),
    Read {
        user: UserId,
        to: Target,
        seq: u64,
        reply: Reply<Option<ReadMoved>>,
    },
    Group(GroupOp, Reply<GroupChange>),
    CreateUser {
        username: String,
        password_hash: String,
        reply: Reply<UserId>,
    },
    CreateToken {
        user: UserId,
        hash: TokenHash,
        expires_at: i64,
        reply: Reply<()>,
    },
    RevokeToken {
        hash: TokenHash,
        reply: Reply<Option<UserId>>,
    },
    /// An account change that no cache of the front depends on but the
    /// users it knows not to exist (roles, visitors: `accounts.rs`).
    Account(Box<dyn tasks::Task>),
    /// A support desk change (`desk.rs`): it may change any desk group's
    /// members, so the front's group caches are dropped after it.
    Desk(Box<dyn tasks::Task>),
}

/// What reaches the front thread.
pub(in crate::store::sqlite) enum Cmd {
    Write(Write),
    /// Answered once SQLite holds every write queued before it, cursor
    /// moves included: for reads that must see them.
    Fresh(oneshot::Sender<()>),
    /// From the ticker thread.
    Tick,
    Close(oneshot::Sender<()>),
}

/// How far the indexer has come: the last log sequence number committed to
/// SQLite. The front prunes its duplicate-key overlay up to it.
pub(super) struct Progress {
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
pub(super) struct PendingCursors(parking_lot::Mutex<HashMap<(ConvId, UserId), u64>>);

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

/// Where a chat is being put: what its log record and its message carry.
#[derive(Clone, Copy, Debug)]
pub(super) struct Placing {
    conv: ConvId,
    seq: u64,
    msg_id: MsgId,
    ts: i64,
}

impl Placing {
    fn record(&self, lsn: u64, c: &NewChat) -> log::Record {
        log::Record {
            lsn,
            conv: self.conv,
            seq: self.seq,
            msg_id: self.msg_id,
            from: c.from,
            ts: self.ts,
            client_msg_id: c.client_msg_id.clone(),
            content: c.content.clone(),
        }
    }

    fn message(&self, c: NewChat) -> StoredMessage {
        StoredMessage {
            conv: self.conv,
            seq: self.seq,
            msg_id: self.msg_id,
            from: c.from,
            from_name: c.from_name,
            to: c.to,
            client_msg_id: c.client_msg_id,
            content: c.content,
            ts: self.ts,
        }
    }
}

/// The SQLite backend.
pub struct SqliteStore {
    tx: mpsc::Sender<Cmd>,
    /// Cursor moves not yet taken by the indexer.
    cursors: Arc<PendingCursors>,
    readers: Arc<Readers>,
    stop: Arc<AtomicBool>,
    /// Notified by the indexer after a commit that queued webhook
    /// deliveries.
    deliveries_queued: Arc<tokio::sync::Notify>,
    /// The exclusive lock on the database file, held while open.
    _lock: File,
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

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new().name(name.into()).spawn(f)?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) after taking the database's
    /// lock, replays the commit log, and starts the front, indexer,
    /// checkpointer and ticker threads. `log_bytes` is the commit log's
    /// size.
    pub fn open(
        location: Location,
        sync: SyncMode,
        log_bytes: u64,
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
        let lock = schema::lock(&path)?;
        let mut conn = schema::open_conn(&path, false)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Config(format!(
                "SQLite refused WAL mode (got {mode})"
            )));
        }
        let level = schema::sync_pragma(sync);
        conn.pragma_update(None, "synchronous", level)?;
        // The writer checkpoints itself every `WRITER_CHECKPOINT_PAGES`:
        // being the only writer, its checkpoint completes, so the WAL
        // restarts from the beginning and stays bounded. The background
        // checkpointer does most of the copying beforehand.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", 64 << 20)?;
        let fresh = schema::migrate(&mut conn)?;
        let log_path = log::path_for(&path);
        if fresh {
            // A log left from another database must not be replayed here.
            match std::fs::remove_file(&log_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        let last_lsn = recovery::replay(&mut conn, &log_path)?;
        bots::release_leases(&conn)?;
        let log = log::CommitLog::open(&log_path, log_bytes, sync == SyncMode::Full)?;
        tracing::info!(path = %path.display(), synchronous = level, log = %log_path.display(), "SQLite store open");

        let fault = Fault::from_env();
        let ids = Arc::new(parking_lot::Mutex::new(ids::resume(&conn)?));
        let progress = Arc::new(Progress {
            applied: AtomicU64::new(last_lsn),
        });
        let (index_tx, index_rx) = std::sync::mpsc::sync_channel(INDEX_QUEUE);
        let priority = Arc::new(priority::IndexerPriority::probe());
        let cursors = Arc::new(PendingCursors::default());
        let deliveries_queued = Arc::new(tokio::sync::Notify::new());
        let indexer = indexer::Indexer::new(
            conn,
            index_rx,
            progress.clone(),
            metrics.clone(),
            ids.clone(),
            sync,
            cursors.clone(),
            priority.clone(),
            fault.clone(),
            deliveries_queued.clone(),
        );
        spawn("sqlite-indexer", move || indexer.run())?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let front = front::Front::new(
            rx,
            schema::open_conn(&path, true)?,
            log,
            front::IndexQueue {
                tx: index_tx,
                priority,
            },
            progress,
            metrics,
            ids,
            last_lsn + 1,
            fault,
        );
        spawn("write-front", move || front.run())?;

        let stop = Arc::new(AtomicBool::new(false));
        let checkpointer = checkpoint::Checkpointer {
            conn: schema::open_conn(&path, false)?,
            wal: {
                let mut p = path.clone().into_os_string();
                p.push("-wal");
                p.into()
            },
            stop: stop.clone(),
        };
        spawn("sqlite-checkpoint", move || checkpointer.run())?;
        let (ticks, stopped) = (tx.clone(), stop.clone());
        spawn("sqlite-ticker", move || {
            let _guard = fatal::Guard::new("sqlite-ticker");
            while !stopped.load(Relaxed) && !ticks.is_closed() {
                std::thread::sleep(TICK);
                // A full queue hands work over by itself.
                let _ = ticks.try_send(Cmd::Tick);
            }
        })?;

        Ok(SqliteStore {
            tx,
            readers: Arc::new(Readers::new(path)),
            stop,
            cursors,
            deliveries_queued,
            _lock: lock,
            _temp: temp,
        })
    }

    async fn queue(&self, w: Write) -> Result<()> {
        self.tx
            .send(Cmd::Write(w))
            .await
            .map_err(|_| Error::StoreClosed)
    }

    /// Queues `w` built around a fresh reply and waits for its answer.
    async fn call<T>(&self, w: impl FnOnce(Reply<T>) -> Write) -> Result<T> {
        let (reply, answer) = answer();
        self.queue(w(reply)).await?;
        answer.await
    }

    /// Runs `f` on a reader once SQLite holds every write queued before
    /// this call: chats answered from the commit log and cursor moves. For
    /// reads that must see every message pushed and acked before they
    /// began.
    async fn fresh<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
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

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}
