//! The events channel: publishing what this relay's hub applied, and
//! applying what the other relays publish.
//!
//! One channel for every relay: a stored chat is published once, whatever
//! the number of recipients or relays (a 5,000-member group costs one
//! publish), and each relay applies it to the recipients it has. Events
//! are JSON envelopes naming the relay that sent them; a relay skips its
//! own, except its probe, which tells it the subscription works end to
//! end.
//!
//! The subscriber owns a dedicated connection (pub/sub blocks it) and
//! makes it again after any loss. On every (re)subscription it subscribes
//! **first**, then re-registers this relay and catches up (what was
//! published while it was not listening is gone; the database has it).

use super::{Outgoing, Shared, COMMAND_TIMEOUT, EVENTS};
use crate::clock::now_ms;
use crate::hub::Remote;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

/// Events published per message, at most. Under load a relay's queue is
/// drained in few, large messages: a round trip per few thousand events.
const BATCH: usize = 4096;
/// The longest wait between two attempts to reach Redis.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What goes over the channel: every event a relay had queued when it
/// published, in order, in one message (a Redis message costs far more to
/// deliver and receive than its bytes; under load a publish carries
/// hundreds of events).
#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The sending relay.
    n: String,
    /// Events for the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    e: Vec<Remote>,
    /// A probe, for the sender itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<i64>,
}

/// The Redis key of the users a relay has online (a hash: user id to
/// `[username, contacts]`).
pub(super) fn online_key(node: &str) -> String {
    format!("ferrochat:online:{node}")
}

/// A command connection, or `None` if Redis cannot be reached now.
pub(super) async fn connect(client: &redis::Client) -> Option<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .ok()
}

/// Publishes queued events in pipelines. While Redis is unreachable,
/// events are dropped (and counted): chats among them are recovered by
/// the catch-up that follows the reconnection.
pub(super) async fn publish_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut conn = None;
    let mut batch = Vec::with_capacity(BATCH);
    let mut retry_at = tokio::time::Instant::now();
    loop {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        shared.drained.notify_waiters();
        if conn.is_none() && tokio::time::Instant::now() >= retry_at {
            conn = connect(&shared.client).await;
            if conn.is_none() {
                retry_at = tokio::time::Instant::now() + Duration::from_millis(250);
            }
            shared.set_publishing(conn.is_some());
        }
        let n = batch.len() as u64;
        let Some(c) = conn.as_mut() else {
            batch.clear();
            shared
                .metrics
                .cluster_publish_dropped_total
                .fetch_add(n, Relaxed);
            continue;
        };
        let mut pipe = redis::pipe();
        let mut envelope = Envelope {
            n: shared.node.to_string(),
            e: Vec::with_capacity(batch.len()),
            p: None,
        };
        for out in batch.drain(..) {
            match out {
                Outgoing::Event(e) => {
                    register_presence(&mut pipe, &shared.node, &e);
                    envelope.e.push(e);
                }
                Outgoing::Probe(p) => envelope.p = Some(p),
            }
        }
        match serde_json::to_string(&envelope) {
            Ok(payload) => {
                pipe.publish(EVENTS, payload).ignore();
            }
            Err(e) => tracing::error!(error = %e, "could not encode cluster events"),
        }
        match timeout(COMMAND_TIMEOUT, pipe.query_async::<()>(c)).await {
            Ok(Ok(())) => shared.metrics.cluster_published_total.fetch_add(n, Relaxed),
            _ => {
                conn = None;
                shared.set_publishing(false);
                shared
                    .metrics
                    .cluster_publish_dropped_total
                    .fetch_add(n, Relaxed)
            }
        };
    }
}

/// The registry's view of who is online here follows presence events.
fn register_presence(pipe: &mut redis::Pipeline, node: &str, e: &Remote) {
    if let Remote::Presence {
        user,
        username,
        online,
        contacts,
    } = e
    {
        if *online {
            let value = serde_json::to_string(&(username, contacts)).unwrap_or_default();
            pipe.hset(online_key(node), user.0, value).ignore();
        } else {
            pipe.hdel(online_key(node), user.0).ignore();
        }
    }
}

/// Queues this relay's probe (see [`subscribe_loop`]).
pub(super) fn probe() -> Outgoing {
    Outgoing::Probe(now_ms())
}

/// Subscribes, applies what arrives, and subscribes again after any loss.
pub(super) async fn subscribe_loop(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    let mut names: HashMap<String, Arc<str>> = HashMap::new();
    loop {
        if let Some(mut pubsub) = subscribe(&shared.client).await {
            if pubsub.subscribe(EVENTS).await.is_ok() {
                backoff = Duration::from_millis(100);
                // The probe clock starts now: a subscription that never
                // delivers is noticed one deadline later.
                shared.probe_seen.store(now_ms(), Release);
                shared.set_subscribed(true);
                tracing::info!(node = %shared.node, "subscribed to the cluster's events");
                // Subscribed first; now what was missed meanwhile.
                shared.catch_up.notify_one();
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        m = messages.next() => match m {
                            Some(m) => receive(&shared, &mut names, m.get_payload_bytes()),
                            None => break,
                        },
                        () = shared.resubscribe.notified() => {
                            tracing::warn!("dropping a stalled Redis subscription");
                            break;
                        }
                    }
                }
                shared.set_subscribed(false);
                tracing::warn!(node = %shared.node, "lost the cluster's events; subscribing again");
            }
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(client: &redis::Client) -> Option<redis::aio::PubSub> {
    timeout(COMMAND_TIMEOUT, client.get_async_pubsub())
        .await
        .ok()?
        .ok()
}

fn receive(shared: &Shared, names: &mut HashMap<String, Arc<str>>, payload: &[u8]) {
    let envelope: Envelope = match serde_json::from_slice(payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "an unreadable cluster event; skipped");
            return;
        }
    };
    if envelope.n == *shared.node {
        if envelope.p.is_some() {
            shared.probe_seen.store(now_ms(), Release);
        }
        return;
    }
    shared
        .metrics
        .cluster_received_total
        .fetch_add(envelope.e.len() as u64, Relaxed);
    let node = names
        .entry(envelope.n)
        .or_insert_with_key(|n| n.as_str().into())
        .clone();
    for event in envelope.e {
        shared.hub.apply_remote(&node, event);
    }
}
