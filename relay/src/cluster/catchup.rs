//! Catch-ups: what events may have missed, read from the database.
//!
//! An event can be lost: published while this relay was not subscribed
//! (Redis restarted, the connection dropped), or never published (the
//! relay that stored the chat died between its commit and its publish).
//! A hole inside a conversation is found by the hub's gap rule; a lost
//! *last* message leaves no hole, so each online user's conversations are
//! compared with the database: after every (re)subscription, when a relay
//! is gone, and every `--cluster-check` anyway. What is found is pushed
//! like a gap fill, in order, never twice.
//!
//! A logout is an event too: a relay that missed one would keep that
//! session's sockets open. So each catch-up also asks the database which
//! of the tokens its sockets logged in with were revoked, and closes them.

use super::Shared;
use futures_util::StreamExt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Users caught up at once (each costs a few queries).
const CONCURRENCY: usize = 8;

/// Runs a catch-up when asked, and every `check_every`.
pub(super) async fn catch_up_loop(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            () = shared.catch_up.notified() => {}
            () = tokio::time::sleep(shared.check_every) => {}
        }
        catch_up(&shared).await;
    }
}

async fn catch_up(shared: &Shared) {
    shared.metrics.cluster_catchups_total.fetch_add(1, Relaxed);
    close_revoked(shared).await;
    let users: Vec<_> = shared
        .hub
        .local_users()
        .into_iter()
        .map(|(u, _, _)| u)
        .collect();
    futures_util::stream::iter(users)
        .for_each_concurrent(CONCURRENCY, |user| async move {
            let positions = match shared.store.positions(user).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, %user, "catch-up: could not read positions");
                    return;
                }
            };
            for gap in shared.hub.tail_gaps(user, &positions) {
                let found = shared
                    .store
                    .range(gap.user, gap.conv, gap.after, gap.before)
                    .await;
                match &found {
                    Ok(msgs) => {
                        shared
                            .metrics
                            .cluster_recovered_total
                            .fetch_add(msgs.len() as u64, Relaxed);
                    }
                    Err(e) => tracing::warn!(error = %e, ?gap, "catch-up: could not fetch"),
                }
                shared.hub.fill_gap(gap, found.as_deref().ok());
            }
        })
        .await;
}

/// Closes the sockets here whose tokens were revoked (one query).
async fn close_revoked(shared: &Shared) {
    let tokens = shared.hub.local_tokens();
    if tokens.is_empty() {
        return;
    }
    let hashes = tokens.iter().map(|(_, t)| *t).collect();
    match shared.store.revoked_tokens(hashes).await {
        Ok(revoked) if !revoked.is_empty() => {
            let revoked: Vec<_> = tokens
                .into_iter()
                .filter(|(_, t)| revoked.contains(t))
                .collect();
            tracing::info!(
                sockets = revoked.len(),
                "catch-up: closing sessions logged out elsewhere"
            );
            shared.hub.close_revoked(&revoked);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "catch-up: could not check tokens"),
    }
}
