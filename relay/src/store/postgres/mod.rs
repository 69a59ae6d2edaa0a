//! PostgreSQL storage: the source of truth of a cluster of relays.
//!
//! Several relays share one database; each runs this backend. What they
//! guarantee together, and how:
//!
//! - **An answer only after `COMMIT`.** Every connection runs with
//!   `synchronous_commit=on` (`conn.rs`); a chat's `Reply` is sent after
//!   the transaction that stored it committed, never before.
//! - **Group commit.** Chats and read markers go through one writer task
//!   per relay (`writer.rs`), which takes everything waiting in its bounded
//!   queue and commits it in one transaction (`chats.rs`: a multi-row
//!   insert), so throughput is not one fsync per message.
//! - **Per-conversation order across relays.** `seq` is taken from the
//!   conversation's counter row (`conversations.last_seq`), locked in the
//!   same transaction (in id order when a batch covers several, so writers
//!   never deadlock) and advanced with the insert: no gaps, and commit
//!   order is `seq` order. Two relays writing into one group produce one
//!   gap-free sequence.
//! - **Exactly-once by `(sender, clientMsgId)`.** Stored keys are looked up
//!   inside the transaction before any `seq` is taken; a key another relay
//!   inserts at the same moment hits the unique index, and the batch is
//!   decided again (then the key is found): a resend through any relay gets
//!   the original `msgId`, `seq` and `ts`, and stores nothing.
//! - **Group changes serialised with chats** (`groups.rs`): a change locks
//!   the group's counter row too, so a message's recipients are exactly
//!   the members at its `seq`, and a member who joined at `seq` N sees what
//!   comes after N.
//! - **PostgreSQL down or restarting:** writes are answered
//!   [`crate::error::Error::Unavailable`] (`storage_unavailable` on the
//!   wire, retryable), never with a stored outcome; the pool opens fresh
//!   connections once the server is back; nothing answered as stored is
//!   lost (it was committed).
//! - **Migrations** run at start under an advisory lock, versioned in
//!   `schema_version` (`schema.rs`): several relays may start at once. A
//!   relay does not start while PostgreSQL cannot be reached (its
//!   supervisor starts it again); once running, it rides out outages.
//!
//! The rules stay above the seam: each runs over facts gathered inside
//! the transaction (`facts.rs`: gather, decide, apply). Reads run on the
//! pool (`reads.rs`, `listing.rs`); the ones that must see every write
//! queued before them pass a barrier through the writer's queue first, and
//! write the delivery cursors coalesced in memory (`cursors.rs`). The
//! ticker (`tasks.rs`) writes cursors every 200 ms and purges expired
//! tokens. Message ids are UUIDv7 from the relay (`store::ids`), `ts` in
//! ms, user and conversation ids from PostgreSQL identity columns.
//!
//! Not here: TLS to PostgreSQL (connect over a private network or a local
//! socket), and telling other relays about a stored chat (cross-node
//! delivery is the caller's business; a relay that dies between commit and
//! publish leaves a gap the next message of that conversation reveals).

mod accounts;
mod api;
mod bots;
mod chats;
mod conn;
mod cursors;
mod desk;
mod desk_sql;
mod facts;
mod groups;
mod listing;
mod marks;
mod reads;
mod schema;
mod tasks;
#[cfg(test)]
mod tests;
mod writer;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::ids::IdGen;
use conn::with_conn;
use cursors::Cursors;
use deadpool_postgres::Pool;
use shared::MsgId;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use writer::{Cmd, Writer};

/// The writer's queue: producers wait while it is full (backpressure).
const QUEUE: usize = 8192;

/// The PostgreSQL backend.
pub struct PostgresStore {
    tx: mpsc::Sender<Cmd>,
    pool: Pool,
    cursors: Arc<Cursors>,
    metrics: Arc<Metrics>,
    /// Tells the ticker to stop (and stops it when dropped).
    stop: watch::Sender<bool>,
    closed: AtomicBool,
    /// Notified by the writer after a commit that queued webhook
    /// deliveries.
    deliveries_queued: Arc<tokio::sync::Notify>,
}

impl PostgresStore {
    /// Connects to `url`, migrates the schema (waiting for any other relay
    /// migrating it), and starts the writer and the ticker. `pool` is the
    /// most connections this relay opens.
    pub async fn open(url: &str, pool: usize, metrics: Arc<Metrics>) -> Result<PostgresStore> {
        let config = conn::config(url)?;
        schema::migrate(&config).await?;
        let (hosts, db) = (
            format!("{:?}", config.get_hosts()),
            config.get_dbname().unwrap_or_default().to_string(),
        );
        let pool = conn::pool(config, pool)?;
        let last: Option<MsgId> = with_conn!(&pool, |c| async {
            let s = c
                .prepare_cached("SELECT msg_id FROM messages ORDER BY msg_id DESC LIMIT 1")
                .await?;
            c.query_opt(&s, &[]).await
        })?
        .map(|r| r.get(0));
        let (tx, rx) = mpsc::channel(QUEUE);
        let deliveries_queued = Arc::new(tokio::sync::Notify::new());
        let writer = Writer::new(
            rx,
            pool.clone(),
            IdGen::after(last),
            metrics.clone(),
            deliveries_queued.clone(),
        );
        tasks::spawn_vital("PostgreSQL writer", writer.run());
        let cursors = Arc::new(Cursors::default());
        let (stop, stopped) = watch::channel(false);
        tasks::spawn_vital(
            "PostgreSQL ticker",
            tasks::tick(pool.clone(), cursors.clone(), metrics.clone(), stopped),
        );
        tracing::info!(hosts, db, "PostgreSQL store open");
        Ok(PostgresStore {
            tx,
            pool,
            cursors,
            metrics,
            stop,
            closed: AtomicBool::new(false),
            deliveries_queued,
        })
    }

    /// Queues a command for the writer.
    async fn queue(&self, cmd: Cmd) -> Result<()> {
        self.tx.send(cmd).await.map_err(|_| Error::StoreClosed)
    }

    /// Waits until every write queued before this call is committed (or
    /// failed).
    async fn barrier(&self) -> Result<()> {
        let (done, passed) = oneshot::channel();
        self.queue(Cmd::Barrier(done)).await?;
        passed.await.map_err(|_| Error::StoreClosed)
    }

    /// [`Self::barrier`], and every cursor move recorded before this call
    /// written: for reads that must see them.
    async fn fresh(&self) -> Result<()> {
        let (passed, flushed) = tokio::join!(
            self.barrier(),
            self.cursors.flush(&self.pool, &self.metrics)
        );
        passed.and(flushed)
    }
}
