//! The desk's notices: 131 to this relay's visitors, 133 to its agents,
//! each sent only when what that socket is shown changed.

use super::{Desk, Local, NOTICE_INTERVAL};
use crate::clock::now_ms;
use crate::rules::routing::closed;
use crate::socket::encode;
use shared::{ServerFrame, UserId};
use std::sync::Arc;

/// Waits to be woken, reads a snapshot, sends what changed; at most once
/// per [`NOTICE_INTERVAL`] however often it is woken.
pub(super) async fn run(desk: Arc<Desk>) {
    loop {
        desk.hub.desk_changed.notified().await;
        if let Err(e) = send_changes(&desk).await {
            tracing::warn!(error = %e, "desk: reading the desk for its notices failed");
            // Looks again at the next change or lease tick.
        }
        tokio::time::sleep(NOTICE_INTERVAL).await;
    }
}

async fn send_changes(desk: &Desk) -> crate::error::Result<()> {
    let (visitors, agents) = {
        let l = desk.local.lock();
        if l.visitors.is_empty() && l.agents.is_empty() {
            return Ok(());
        }
        let on = |h: &super::Here| h.sockets > 0;
        let v: Vec<UserId> = l
            .visitors
            .iter()
            .filter(|(_, h)| on(h))
            .map(|(u, _)| *u)
            .collect();
        let a: Vec<UserId> = l
            .agents
            .iter()
            .filter(|(_, h)| on(h))
            .map(|(u, _)| *u)
            .collect();
        (v, a)
    };
    let snap = desk.store.desk_snapshot(now_ms()).await?;
    let statuses = snap.statuses();
    let mut out: Vec<(UserId, ServerFrame)> = Vec::new();
    {
        let mut l = desk.local.lock();
        for v in visitors {
            let now = match (statuses.get(&v), l.statuses.get(&v)) {
                (Some(s), _) => s.clone(),
                // Sent before and in no list now: closed.
                (None, Some(last)) => closed(last.group_id),
                (None, None) => continue,
            };
            if l.force.remove(&v) || l.statuses.get(&v) != Some(&now) {
                l.statuses.insert(v, now.clone());
                out.push((v, ServerFrame::DeskStatus(now)));
            }
        }
        for a in agents {
            let board = snap.board(a);
            if l.force.remove(&a) || l.boards.get(&a) != Some(&board) {
                l.boards.insert(a, board.clone());
                out.push((a, ServerFrame::DeskBoard(Box::new(board))));
            }
        }
        // Forget what was sent to those who left for good.
        let Local {
            visitors,
            agents,
            statuses,
            boards,
            ..
        } = &mut *l;
        statuses.retain(|u, _| visitors.contains_key(u));
        boards.retain(|u, _| agents.contains_key(u));
        visitors.retain(|_, h| h.sockets > 0);
    }
    for (user, frame) in out {
        desk.hub.push_here(&[user], &encode(&frame));
    }
    Ok(())
}
