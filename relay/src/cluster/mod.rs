//! Cluster mode: several relays on one PostgreSQL database, linked by Redis.
//!
//! PostgreSQL is the source of truth (accounts, conversations, messages,
//! cursors); every relay writes to it directly and answers a chat once its
//! transaction commits. Redis carries what must cross relays and may be
//! lost without losing data:
//!
//! - **events** (`link.rs`): every relay publishes what its hub applied
//!   (stored chats, receipts, read markers, typing, group events, presence,
//!   logouts; see `hub/remote.rs`) once, on one channel, and applies what
//!   the others publish to its own sockets. Pub/sub is at-most-once, so it
//!   is only the fast path: a relay that misses a chat finds the hole in
//!   the conversation's `seq` (the hub's gap fetch) or, for a lost last
//!   message, by a catch-up (`catchup.rs`);
//! - **the relay registry** (`nodes.rs`): a liveness key per relay with a
//!   TTL, and the users each relay has online, so a relay that dies is
//!   noticed within the TTL, its users go offline, and the others catch up
//!   on what it committed but never published;
//! - **voice rooms** (`voice.rs`, `voice_loops.rs`, `voice_redis.rs`): the
//!   rooms' rosters in Redis, changed by Lua scripts (capacity holds
//!   across relays), a control channel for their changes, and a channel
//!   per room for audio, on connections and a thread of their own;
//! - **health**: `/healthz` answers 503 with the reason while Redis is
//!   unreachable or this relay's own probe event stops coming back (a
//!   subscription that stalled silently is dropped and made again).
//!
//! Why Redis and not ZooKeeper plus a message queue (as S2–S4 of the
//! designs ferrochat comes from use): routing and presence here are soft
//! state that every relay can rebuild, and delivery is recovered from the
//! database, so neither needs consensus or a durable queue; one Redis with
//! no persistence does both jobs, and a restart of it loses nothing.

mod catchup;
mod link;
mod nodes;
mod voice;
mod voice_loops;
mod voice_redis;

pub use voice::{Joined, VoiceError, VoiceLink};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::hub::{Hub, Peers, Remote};
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// The channel every relay publishes its events on.
const EVENTS: &str = "ferrochat:events";
/// Events waiting to be published, at most; past it they are dropped (and
/// counted): a relay never blocks on Redis.
const QUEUE: usize = 65_536;
/// Events waiting past which new chats wait for the publisher
/// ([`crate::hub::Hub::publish_room`]): well below [`QUEUE`], so the
/// receipts, presence and group events that other work still makes find
/// room, and nothing is dropped while Redis keeps up.
const HIGH_WATER: usize = QUEUE / 4;
/// A relay whose liveness key is older than this is gone.
const NODE_TTL: Duration = Duration::from_secs(10);
/// How often a relay refreshes its liveness key, probes its subscription
/// and looks for relays that are gone.
const TICK: Duration = Duration::from_secs(2);
/// A probe not back after this long means the subscription stalled.
const PROBE_DEADLINE: Duration = Duration::from_secs(6);
/// How long one Redis command may take before the connection counts as
/// broken.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// What the publisher sends.
enum Outgoing {
    Event(Remote),
    Probe(i64),
}

/// The state the cluster's tasks share.
struct Shared {
    node: Arc<str>,
    client: redis::Client,
    hub: Arc<Hub>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    /// Subscribed to [`EVENTS`].
    subscribed: AtomicBool,
    /// The publisher has a Redis connection (events queued now will be
    /// published, not dropped).
    publishing: AtomicBool,
    /// The publisher took events off its queue.
    drained: Notify,
    /// The last Redis command of the registry tick succeeded.
    reachable: AtomicBool,
    /// When this relay's last probe came back (ms since the epoch).
    probe_seen: AtomicI64,
    /// Asks the subscriber to drop its connection and subscribe again.
    resubscribe: Notify,
    /// Asks for a catch-up of every local user.
    catch_up: Notify,
    /// How often the catch-up runs anyway.
    check_every: Duration,
}

/// This relay's membership of a cluster.
pub struct Cluster {
    shared: Arc<Shared>,
    voice: VoiceLink,
    tx: mpsc::Sender<Outgoing>,
    /// Test-only: chats not to publish (`FERROCHAT_FAULT=publish:<body>`).
    fault: crate::fatal::Fault,
}

impl Cluster {
    /// Joins the cluster named by `config.redis`: starts the publisher, the
    /// subscriber, the registry tick and the catch-up task. Redis need not
    /// be reachable yet; the relay works (degraded) until it is.
    pub fn start(
        config: &Config,
        url: &str,
        hub: Arc<Hub>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        rooms: Arc<crate::voice::Voice>,
    ) -> Result<Arc<Cluster>> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::Config(format!("Redis URL {url:?}: {e}")))?;
        let node: Arc<str> = match &config.node_id {
            Some(id) if !id.is_empty() && id.len() <= 200 && !id.contains([':', '\n', '|']) => {
                id.as_str().into()
            }
            Some(id) => return Err(Error::Config(format!("bad node id {id:?}"))),
            None => generated_node_id().into(),
        };
        let shared = Arc::new(Shared {
            node,
            client,
            hub,
            store,
            metrics,
            subscribed: AtomicBool::new(false),
            publishing: AtomicBool::new(false),
            drained: Notify::new(),
            reachable: AtomicBool::new(false),
            probe_seen: AtomicI64::new(0),
            resubscribe: Notify::new(),
            catch_up: Notify::new(),
            check_every: config.cluster_check,
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let (voice_tx, voice_rx) = mpsc::channel(voice::AUDIO_QUEUE);
        let vs = Arc::new(voice::VShared {
            node: shared.node.clone(),
            cluster: shared.clone(),
            voice: rooms,
            main: tokio::runtime::Handle::current(),
            conn: parking_lot::Mutex::new(None),
            subscribed: AtomicBool::new(false),
            purged: AtomicBool::new(false),
            views: parking_lot::Mutex::new(Default::default()),
            rooms_changed: Notify::new(),
            resync: Notify::new(),
            orphans: parking_lot::Mutex::new(Vec::new()),
        });
        let cluster = Arc::new(Cluster {
            shared,
            voice: VoiceLink {
                s: vs.clone(),
                tx: voice_tx,
            },
            tx,
            fault: crate::fatal::Fault::from_env(),
        });
        let s = &cluster.shared;
        tracing::info!(node = %s.node, "joining the cluster");
        // The link's two loops get a thread of their own: on the relay's
        // runtime they queue behind every socket's task at each hop, which
        // a chat crossing relays makes four times.
        let link = own_runtime("cluster-link")?;
        spawn_fatal_on(
            &link,
            "cluster-publisher",
            link::publish_loop(s.clone(), rx),
        );
        spawn_fatal_on(&link, "cluster-subscriber", link::subscribe_loop(s.clone()));
        spawn_fatal(
            "cluster-registry",
            nodes::registry_loop(s.clone(), cluster.clone()),
        );
        spawn_fatal("cluster-catch-up", catchup::catch_up_loop(s.clone()));
        // Voice has its own thread and connections: audio never queues
        // behind chat events, nor chat events behind audio.
        let vrt = own_runtime("cluster-voice")?;
        spawn_fatal_on(
            &vrt,
            "cluster-voice-publisher",
            voice_loops::publish_loop(vs.clone(), voice_rx),
        );
        spawn_fatal_on(
            &vrt,
            "cluster-voice-subscriber",
            voice_loops::subscribe_loop(vs.clone()),
        );
        spawn_fatal_on(&vrt, "cluster-voice-round", voice_loops::round_loop(vs));
        Ok(cluster)
    }

    /// This relay's name.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// The cluster's voice rooms.
    pub fn voice(&self) -> &VoiceLink {
        &self.voice
    }

    /// Why the link is not healthy, if it is not.
    pub fn unhealthy(&self) -> Option<String> {
        let s = &self.shared;
        if !s.reachable.load(Acquire) {
            return Some("Redis is unreachable".into());
        }
        if !s.subscribed.load(Acquire) {
            return Some("not subscribed to Redis".into());
        }
        if !self.voice.ready() {
            return Some("the voice rooms' link to Redis is not up".into());
        }
        let age = crate::clock::now_ms() - s.probe_seen.load(Acquire);
        if age > PROBE_DEADLINE.as_millis() as i64 {
            return Some(format!(
                "this relay's probe has not come back through Redis for {:.1}s",
                age as f64 / 1000.0
            ));
        }
        None
    }

    fn send(&self, out: Outgoing) {
        if self.tx.try_send(out).is_err() {
            self.shared
                .metrics
                .cluster_publish_dropped_total
                .fetch_add(1, Relaxed);
        }
    }
}

impl Peers for Cluster {
    fn publish(&self, event: Remote) {
        if let Remote::Chat { msg, .. } = &event {
            if self.fault.armed("publish", &msg.content.body) {
                return;
            }
        }
        self.send(Outgoing::Event(event));
    }

    fn congested(&self) -> bool {
        self.shared.publishing.load(Acquire) && QUEUE - self.tx.capacity() > HIGH_WATER
    }

    fn drained(&self) -> &Notify {
        &self.shared.drained
    }
}

impl Shared {
    /// Whether published events reach Redis; while they cannot, nothing
    /// waits for the publisher (it drops what it is given).
    fn set_publishing(&self, up: bool) {
        self.publishing.store(up, Release);
        if !up {
            self.drained.notify_waiters();
        }
    }

    fn set_subscribed(&self, up: bool) {
        self.subscribed.store(up, Release);
        self.metrics.cluster_link_up.store(up as i64, Relaxed);
    }
}

/// Runs a cluster task; if it ever ends, the relay stops (a relay that no
/// longer hears the others must not go on answering as if it did).
fn spawn_fatal(name: &'static str, task: impl std::future::Future<Output = ()> + Send + 'static) {
    spawn_fatal_on(&tokio::runtime::Handle::current(), name, task);
}

/// [`spawn_fatal`] on a given runtime.
fn spawn_fatal_on(
    rt: &tokio::runtime::Handle,
    name: &'static str,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) {
    rt.spawn(async move {
        let guard = crate::fatal::Guard::new(name);
        task.await;
        drop(guard);
        crate::fatal::stop(&format!("the {name} task ended"));
    });
}

/// A single-threaded runtime on a thread of its own (`name`), for the
/// link's loops or the voice link's. It runs until the process ends; if the
/// thread dies, the loops' guards stop the relay.
fn own_runtime(name: &str) -> Result<tokio::runtime::Handle> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("{name} runtime: {e}")))?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .map_err(|e| Error::Config(format!("{name} thread: {e}")))?;
    Ok(handle)
}

/// A node id for a relay started without one: the host name, the process
/// id and a few random bits (a restarted relay is a new node).
fn generated_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace(':', "-"))
        .unwrap_or_else(|_| "relay".into());
    let mut bytes = [0u8; 3];
    let _ = getrandom::fill(&mut bytes);
    format!(
        "{host}-{}-{:02x}{:02x}{:02x}",
        std::process::id(),
        bytes[0],
        bytes[1],
        bytes[2]
    )
}
