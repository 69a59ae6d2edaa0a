//! The backend's own clock, and tasks that must not die alone.
//!
//! The ticker writes the coalesced delivery cursors every
//! [`FLUSH_EVERY`] and purges expired tokens every [`PURGE_EVERY`]
//! (`DELETE … WHERE expires_at < now` is idempotent, so every relay of a
//! cluster may run it). A task whose death would leave the relay answering
//! without it (the writer, the ticker) is spawned with [`spawn_vital`]: if
//! it panics the process stops ([`crate::fatal::stop`]), as the SQLite
//! backend's threads do, and its supervisor restarts it.

use super::conn::with_conn;
use super::cursors::{Cursors, FLUSH_EVERY};
use crate::clock::now_ms;
use crate::fatal;
use crate::metrics::Metrics;
use deadpool_postgres::Pool;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often expired tokens are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Spawns `task`; if it panics, the process stops.
pub(super) fn spawn_vital(name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
    let handle = tokio::spawn(task);
    tokio::spawn(async move {
        if let Err(e) = handle.await {
            if e.is_panic() {
                fatal::stop(&format!("the {name} task panicked"));
            }
        }
    });
}

/// Flushes cursors and purges tokens until `stop` says so (or the store
/// is gone).
pub(super) async fn tick(
    pool: Pool,
    cursors: Arc<Cursors>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut purge = tokio::time::interval(PURGE_EVERY);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Said once per outage, not five times a second.
    let mut failing = false;
    loop {
        tokio::select! {
            _ = flush.tick() => {
                match cursors.flush(&pool, &metrics).await {
                    Ok(()) if failing => {
                        tracing::info!("delivery cursors written again");
                        failing = false;
                    }
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "could not write delivery cursors; keeping them for the next try");
                        failing = true;
                    }
                    _ => {}
                }
            }
            _ = purge.tick() => {
                let now = now_ms();
                let purged = with_conn!(&pool, |c| async {
                    let s = c.prepare_cached("DELETE FROM tokens WHERE expires_at < $1").await?;
                    c.execute(&s, &[&now]).await
                });
                match purged {
                    Ok(n) if n > 0 => tracing::info!(tokens = n, "purged expired tokens"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not purge expired tokens"),
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
}
