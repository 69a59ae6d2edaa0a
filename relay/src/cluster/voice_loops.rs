//! The voice link's tasks, on the `cluster-voice` thread: the audio
//! publisher, the subscriber (control channel and the audio channels of
//! the rooms with participants here), and the voice round (a relay that is
//! gone loses its participants; rooms here are read again, for control
//! messages that were lost).
//!
//! Applying a room ([`apply`]): the change is pushed (125) to this relay's
//! online members of the group, and this relay's sockets the room no
//! longer has (and had when they joined) are taken out here too. A room
//! read at a change number not newer than one already applied is skipped:
//! control messages are published in change order, and a resync that
//! raced one says nothing new.

use super::voice::{VShared, View};
use super::voice_redis::{
    audio_channel, parse_ctl, room_of, Reply, Room, Script, AUDIO_PREFIX, CTL, NODES, NODE_PREFIX,
};
use super::{nodes::node_key, COMMAND_TIMEOUT};
use crate::voice::{announce_here, Change};
use bytes::Bytes;
use futures_util::StreamExt;
use redis::AsyncCommands;
use shared::{audio, GroupId, UserId};
use std::collections::HashSet;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

/// Audio frames published per pipeline, at most.
const BATCH: usize = 256;
/// How often the voice round runs.
const ROUND: Duration = Duration::from_secs(1);
/// The longest wait between two attempts to subscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Publishes queued audio frames, a pipeline per batch; while Redis is
/// unreachable they are dropped (and counted), never kept.
pub(super) async fn publish_loop(s: Arc<VShared>, mut rx: mpsc::Receiver<(GroupId, Bytes)>) {
    let mut conn = None;
    let mut batch = Vec::with_capacity(BATCH);
    let mut retry_at = tokio::time::Instant::now();
    let metrics = s.cluster.metrics.clone();
    loop {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let n = batch.len() as u64;
        if conn.is_none() && tokio::time::Instant::now() >= retry_at {
            conn = super::link::connect(&s.cluster.client).await;
            if conn.is_none() {
                retry_at = tokio::time::Instant::now() + Duration::from_millis(250);
            }
        }
        let Some(c) = conn.as_mut() else {
            batch.clear();
            metrics.cluster_voice_dropped_total.fetch_add(n, Relaxed);
            continue;
        };
        let mut pipe = redis::pipe();
        for (group, payload) in batch.drain(..) {
            pipe.publish(audio_channel(group), payload.as_ref())
                .ignore();
        }
        match timeout(COMMAND_TIMEOUT, pipe.query_async::<()>(c)).await {
            Ok(Ok(())) => metrics.cluster_voice_published_total.fetch_add(n, Relaxed),
            _ => {
                conn = None;
                metrics.cluster_voice_dropped_total.fetch_add(n, Relaxed)
            }
        };
    }
}

/// Subscribes to the control channel and follows the audio channels of
/// the rooms with participants here; subscribes again after any loss.
pub(super) async fn subscribe_loop(s: Arc<VShared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let pubsub = timeout(COMMAND_TIMEOUT, s.cluster.client.get_async_pubsub())
            .await
            .ok()
            .and_then(Result::ok);
        if let Some(pubsub) = pubsub {
            let (mut sink, mut stream) = pubsub.split();
            if let Ok(Ok(())) = timeout(COMMAND_TIMEOUT, sink.subscribe(CTL)).await {
                backoff = Duration::from_millis(100);
                s.subscribed.store(true, Release);
                tracing::info!(node = %s.node, "subscribed to the cluster's voice rooms");
                // What was missed while not subscribed: read again.
                s.resync.notify_one();
                s.rooms_changed.notify_one();
                let mut audio = HashSet::new();
                loop {
                    tokio::select! {
                        m = stream.next() => match m {
                            Some(m) => receive(&s, &m),
                            None => break,
                        },
                        () = s.rooms_changed.notified() => {
                            if follow(&s, &mut sink, &mut audio).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                s.subscribed.store(false, Release);
                tracing::warn!(node = %s.node, "lost the voice subscription; subscribing again");
            }
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Subscribes to the audio of the rooms with participants here, and
/// unsubscribes from the others.
async fn follow(
    s: &VShared,
    sink: &mut redis::aio::PubSubSink,
    subscribed: &mut HashSet<GroupId>,
) -> Result<(), ()> {
    let wanted: HashSet<GroupId> = s.voice.groups().into_iter().collect();
    for g in wanted.difference(subscribed) {
        match timeout(COMMAND_TIMEOUT, sink.subscribe(audio_channel(*g))).await {
            Ok(Ok(())) => {}
            _ => return Err(()),
        }
    }
    for g in subscribed.difference(&wanted) {
        match timeout(COMMAND_TIMEOUT, sink.unsubscribe(audio_channel(*g))).await {
            Ok(Ok(())) => {}
            _ => return Err(()),
        }
    }
    *subscribed = wanted;
    Ok(())
}

fn receive(s: &VShared, m: &redis::Msg) {
    let channel = m.get_channel_name();
    let payload = m.get_payload_bytes();
    if channel == CTL {
        match parse_ctl(payload) {
            Some(room) => apply(s, room, false),
            None => tracing::warn!("an unreadable voice control message; skipped"),
        }
    } else if channel.starts_with(AUDIO_PREFIX) {
        forward(s, payload);
    }
}

/// Another relay's speaker: forwarded as it is to every participant here.
fn forward(s: &VShared, payload: &[u8]) {
    let Some((&len, rest)) = payload.split_first() else {
        return;
    };
    let Some((node, frame)) = rest.split_at_checked(len as usize) else {
        return;
    };
    if node == s.node.as_bytes() {
        return; // this relay's own, already forwarded here
    }
    let Ok((header, _, _)) = audio::parse_listener(frame) else {
        return;
    };
    let metrics = &s.cluster.metrics;
    metrics.cluster_voice_received_total.fetch_add(1, Relaxed);
    let handles = s.voice.handles(header.group_id);
    if handles.is_empty() {
        return;
    }
    let frame = Bytes::copy_from_slice(frame);
    for h in handles {
        h.push_audio(frame.clone(), metrics);
    }
}

/// Applies a room read from Redis (a control message, or a resync when
/// `resync`): the sockets here it no longer has leave, and, if it is news,
/// this relay's members of the group get a 125.
pub(super) fn apply(s: &VShared, room: Room, resync: bool) {
    let me = &*s.node;
    let group = room.group;
    let present: HashSet<u64> = room
        .entries
        .iter()
        .filter(|e| e.node == me)
        .map(|e| e.socket)
        .collect();
    let locals = s.voice.sockets(group);
    let mut out: Vec<(u64, UserId)> = Vec::new();
    let newer = {
        let mut views = s.views.lock();
        match views.get_mut(&group) {
            None => !resync,
            Some(View { seq, .. }) if *seq >= room.seq => false,
            Some(v) => {
                for &(socket, user) in &locals {
                    // Absent from a room read after its join: taken out.
                    let joined_before = v.joined.get(&socket).is_some_and(|j| *j < room.seq);
                    if !present.contains(&socket) && joined_before {
                        out.push((socket, user));
                    }
                }
                v.seq = room.seq;
                v.elsewhere = room.elsewhere(me);
                true
            }
        }
    };
    if !newer {
        return;
    }
    s.cluster
        .metrics
        .cluster_voice_changes_total
        .fetch_add(1, Relaxed);
    for &(socket, _) in &out {
        s.leave_here(group, socket);
    }
    let roster = room.roster();
    let mut users: Vec<UserId> = room.entries.iter().map(|e| e.user).collect();
    users.extend(room.gone.iter().copied());
    users.extend(out.iter().map(|(_, u)| *u));
    users.sort_unstable();
    users.dedup();
    let change = Change {
        roster,
        users,
        seq: room.seq,
    };
    let (store, hub) = (s.cluster.store.clone(), s.cluster.hub.clone());
    s.main
        .spawn(async move { announce_here(&*store, &hub, group, change).await });
}

/// Runs the voice round every [`ROUND`], and when asked.
pub(super) async fn round_loop(s: Arc<VShared>) {
    let mut conn = None;
    loop {
        tokio::select! {
            () = sleep(ROUND) => {}
            () = s.resync.notified() => {}
        }
        if conn.is_none() {
            conn = super::link::connect(&s.cluster.client).await;
        }
        let Some(c) = conn.as_mut() else { continue };
        match timeout(COMMAND_TIMEOUT * 4, round(&s, c)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "voice round failed");
                conn = None;
            }
            Err(_) => {
                tracing::warn!("voice round timed out");
                conn = None;
            }
        }
    }
}

async fn round(s: &VShared, c: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<()> {
    let me = &*s.node;
    // A previous run of this relay (same node id) may have left entries.
    if !s.purged.load(Acquire) {
        purge(c, me).await?;
        s.purged.store(true, Release);
    }
    // Relays that are gone: their participants leave, everywhere.
    let nodes: Vec<String> = c.smembers(NODES).await?;
    let others: Vec<String> = nodes.into_iter().filter(|n| n != me).collect();
    if !others.is_empty() {
        let keys: Vec<String> = others.iter().map(|n| node_key(n)).collect();
        let alive: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(c).await?;
        for (node, at) in others.iter().zip(alive) {
            if at.is_none() {
                tracing::warn!(node, "voice: a relay is gone; its participants leave");
                purge(c, node).await?;
                let left: usize = c.scard(format!("{NODE_PREFIX}{node}")).await?;
                if left == 0 {
                    let _: () = c.srem(NODES, node).await?;
                }
            }
        }
    }
    // Leaves that could not be made when they happened.
    let orphans = std::mem::take(&mut *s.orphans.lock());
    for (i, (group, field)) in orphans.iter().enumerate() {
        let done = Script::Leave
            .cmd(*group, std::slice::from_ref(field))
            .query_async::<Reply>(c)
            .await;
        if let Err(e) = done {
            s.orphans.lock().extend(orphans[i..].iter().cloned());
            return Err(e);
        }
    }
    // The rooms here, read again: a control message may have been lost.
    for group in s.voice.groups() {
        let reply: Reply = Script::Read.cmd(group, &[]).query_async(c).await?;
        apply(s, room_of(group, &reply), true);
    }
    Ok(())
}

/// Takes every participant of `node` out of every room it had any in.
async fn purge(c: &mut redis::aio::MultiplexedConnection, node: &str) -> redis::RedisResult<()> {
    let groups: Vec<i64> = c.smembers(format!("{NODE_PREFIX}{node}")).await?;
    for g in groups {
        let _: Reply = Script::Purge
            .cmd(GroupId(g), &[node.to_string()])
            .query_async(c)
            .await?;
    }
    Ok(())
}
