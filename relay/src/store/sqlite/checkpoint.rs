//! Background WAL checkpoints.
//!
//! A checkpointer thread runs passive checkpoints every
//! [`CHECKPOINT_EVERY`] (and a truncating one if the WAL passes
//! [`WAL_TRUNCATE_BYTES`], which only long reads can cause), so the indexer
//! rarely has much to copy when it checkpoints itself (see
//! `WRITER_CHECKPOINT_PAGES` in `mod.rs`). Nobody waits for it: it runs at
//! `SCHED_IDLE`.

use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Background checkpoint cadence, and the WAL size that forces a
/// truncating one.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
const WAL_TRUNCATE_BYTES: u64 = 256 << 20;

pub(super) struct Checkpointer {
    pub conn: Connection,
    pub wal: PathBuf,
    pub stop: Arc<AtomicBool>,
}

impl Checkpointer {
    pub fn run(self) {
        let _guard = crate::fatal::Guard::new("sqlite-checkpoint");
        super::priority::idle_forever();
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
