//! The relay registry in Redis: who is alive, and who has which users
//! online.
//!
//! - `ferrochat:nodes`: the set of relay names;
//! - `ferrochat:node:<name>`: a relay's liveness key, refreshed every tick
//!   with a TTL of [`NODE_TTL`]: a relay killed with `kill -9` disappears
//!   within it;
//! - `ferrochat:online:<name>`: a hash of the users the relay has online
//!   (kept by the presence events it publishes, `link.rs`), rewritten
//!   whole after Redis comes back empty, with the same TTL.
//!
//! Every tick a relay also publishes a probe to itself (health), and looks
//! at the others: one that is gone takes its users offline (unless another
//! relay has them) and triggers a catch-up, since it may have committed
//! messages it never published; one that is new (or was missed while the
//! link was down) has its online users read once.

use super::link::{connect, online_key, probe};
use super::{Cluster, Shared, COMMAND_TIMEOUT, NODE_TTL, PROBE_DEADLINE, TICK};
use crate::clock::now_ms;
use redis::AsyncCommands;
use shared::UserId;
use std::collections::HashSet;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::Arc;
use tokio::time::timeout;

const NODES: &str = "ferrochat:nodes";

pub(super) fn node_key(node: &str) -> String {
    format!("ferrochat:node:{node}")
}

/// The registry tick; runs for the life of the relay.
pub(super) async fn registry_loop(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let mut conn = None;
    // Relays whose online users were read (or announced since).
    let mut known: HashSet<String> = HashSet::new();
    // Whether this relay's own online hash is known to be in Redis.
    let mut registered = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        cluster.send(probe());
        check_probe(&shared);
        if conn.is_none() {
            conn = connect(&shared.client).await;
        }
        let Some(c) = conn.as_mut() else {
            lost(&shared, &mut known, &mut registered);
            continue;
        };
        let ok = timeout(
            COMMAND_TIMEOUT * 4,
            round(&shared, c, &mut known, &mut registered),
        )
        .await;
        match ok {
            Ok(Ok(())) => shared.reachable.store(true, Release),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis registry round failed");
                conn = None;
                lost(&shared, &mut known, &mut registered);
            }
            Err(_) => {
                tracing::warn!("Redis registry round timed out");
                conn = None;
                lost(&shared, &mut known, &mut registered);
            }
        }
    }
}

/// Redis could not be reached: when it is again it may be empty (a
/// restart), so this relay registers again and rereads the others.
fn lost(shared: &Shared, known: &mut HashSet<String>, registered: &mut bool) {
    if shared.reachable.swap(false, Release) {
        tracing::warn!("Redis is unreachable; the relay goes on, degraded");
    }
    known.clear();
    *registered = false;
}

/// A subscription whose probes stopped coming back is dropped and made
/// again (a stall that would otherwise go unnoticed while publishing
/// still works).
fn check_probe(shared: &Shared) {
    if shared.subscribed.load(Acquire) {
        let age = now_ms() - shared.probe_seen.load(Acquire);
        if age > PROBE_DEADLINE.as_millis() as i64 {
            shared.resubscribe.notify_one();
        }
    }
}

async fn round(
    shared: &Shared,
    c: &mut redis::aio::MultiplexedConnection,
    known: &mut HashSet<String>,
    registered: &mut bool,
) -> redis::RedisResult<()> {
    let me = &*shared.node;
    let ttl = NODE_TTL.as_secs();
    // Register: alive, and (after Redis came back) who is online here.
    let mut pipe = redis::pipe();
    pipe.set_ex(node_key(me), now_ms(), ttl).ignore();
    pipe.sadd(NODES, me).ignore();
    if !*registered {
        let users = shared.hub.local_users();
        pipe.del(online_key(me)).ignore();
        for chunk in users.chunks(1000) {
            let fields: Vec<(i64, String)> = chunk
                .iter()
                .map(|(u, name, contacts)| {
                    let v = serde_json::to_string(&(name, contacts)).unwrap_or_default();
                    (u.0, v)
                })
                .collect();
            pipe.hset_multiple(online_key(me), &fields).ignore();
        }
    }
    pipe.expire(online_key(me), ttl as i64).ignore();
    pipe.query_async::<()>(c).await?;
    *registered = true;

    // Look at the others.
    let nodes: Vec<String> = c.smembers(NODES).await?;
    let others: Vec<String> = nodes.into_iter().filter(|n| n != me).collect();
    let alive: Vec<Option<i64>> = if others.is_empty() {
        Vec::new()
    } else {
        let keys: Vec<String> = others.iter().map(|n| node_key(n)).collect();
        redis::cmd("MGET").arg(&keys).query_async(c).await?
    };
    let mut live = HashSet::new();
    for (node, at) in others.into_iter().zip(alive) {
        if at.is_some() {
            live.insert(node);
        } else {
            let _: () = c.srem(NODES, &node).await?;
            gone(shared, &node);
        }
    }
    // Relays the hub heard of that are not alive any more.
    for node in shared.hub.remote_nodes() {
        if !live.contains(&*node) {
            gone(shared, &node);
        }
    }
    known.retain(|n| live.contains(n));
    for node in live {
        if known.contains(&node) {
            continue;
        }
        let users: Vec<(i64, String)> = c.hgetall(online_key(&node)).await?;
        let users = users
            .into_iter()
            .filter_map(|(u, v)| {
                let (name, contacts): (String, Vec<UserId>) = serde_json::from_str(&v).ok()?;
                Some((UserId(u), name, contacts))
            })
            .collect();
        shared.hub.remote_snapshot(&node.as_str().into(), users);
        known.insert(node);
    }
    Ok(())
}

/// A relay is gone: its users go offline, and what it may have committed
/// without publishing is caught up on.
fn gone(shared: &Shared, node: &str) {
    tracing::warn!(node, "a relay of the cluster is gone");
    shared.hub.node_gone(node);
    shared.catch_up.notify_one();
}
