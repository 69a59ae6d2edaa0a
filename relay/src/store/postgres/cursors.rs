//! Delivery cursors: moved once per ack (the hot path of a busy relay),
//! coalesced in memory, and written in batches.
//!
//! A move only records the highest `seq` per (conversation, user) under a
//! short lock. [`Cursors::flush`] writes everything recorded with one
//! statement (`GREATEST`, so a cursor never moves back, whichever relay
//! writes last); the backend's ticker flushes every [`FLUSH_EVERY`], and
//! the reads that must see every ack made before them (`positions`,
//! `pending`, `range`, ...) flush first. Flushes are serialised, so a read
//! that flushes also waits for a flush already under way: the moves it
//! took are committed before the read runs. Moves a failed flush could
//! not write are put back for the next one; moves lost in a crash only
//! re-push a few messages, which clients dedupe by `msgId`.

use super::conn::with_conn;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::store::ConvId;
use deadpool_postgres::Pool;
use shared::UserId;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// How often the ticker writes the moves recorded since the last flush.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Cursor moves not written yet.
#[derive(Default)]
pub(super) struct Cursors {
    moved: parking_lot::Mutex<HashMap<(ConvId, UserId), u64>>,
    /// Held while a flush writes, so flushes never overlap.
    writing: tokio::sync::Mutex<()>,
}

impl Cursors {
    /// Records a move (the highest `seq` wins).
    pub fn moved(&self, user: UserId, conv: ConvId, seq: u64) {
        let mut map = self.moved.lock();
        let e = map.entry((conv, user)).or_default();
        *e = (*e).max(seq);
    }

    fn put_back(&self, moves: HashMap<(ConvId, UserId), u64>) {
        let mut map = self.moved.lock();
        for (k, seq) in moves {
            let e = map.entry(k).or_default();
            *e = (*e).max(seq);
        }
    }

    /// Writes every move recorded so far, after any flush under way.
    pub async fn flush(&self, pool: &Pool, metrics: &Metrics) -> Result<()> {
        let _writing = self.writing.lock().await;
        let moves = std::mem::take(&mut *self.moved.lock());
        if moves.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<_> = moves
            .iter()
            .map(|(k, s)| (k.0, k.1 .0, *s as i64))
            .collect();
        rows.sort_unstable();
        let convs: Vec<ConvId> = rows.iter().map(|r| r.0).collect();
        let users: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.2).collect();
        // Safe to run twice: it only moves cursors forward.
        let written = with_conn!(pool, |c| async {
            let s = c.prepare_cached(SET_DELIVERED).await?;
            c.execute(&s, &[&convs, &users, &seqs]).await
        });
        match written {
            Ok(_) => {
                metrics.store_commits_total.fetch_add(1, Relaxed);
                metrics
                    .store_ops_total
                    .fetch_add(rows.len() as u64, Relaxed);
                Ok(())
            }
            Err(e) => {
                metrics.store_failures_total.fetch_add(1, Relaxed);
                self.put_back(moves);
                Err(e)
            }
        }
    }
}

/// Only members' cursors move: a late ack from someone who left the group
/// must not make them a member again.
const SET_DELIVERED: &str = "UPDATE members m SET delivered_seq = GREATEST(m.delivered_seq, v.seq)
     FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS v(conv, usr, seq)
     WHERE m.conv_id = v.conv AND m.user_id = v.usr";
