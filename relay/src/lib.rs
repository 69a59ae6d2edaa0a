//! ferrochat relay: accounts over HTTP, chat over WebSockets, durable
//! delivery with acks and retries.
//!
//! Map of the crate:
//! - [`server`]: accept loop, connection cap, graceful shutdown;
//! - [`filters`] / [`handlers`]: HTTP routes and their handlers;
//! - [`connection`]: one WebSocket session (login, heartbeat, chat, acks);
//! - [`socket`]: the bounded outbound queue of a socket;
//! - [`hub`]: who is online, pushes, acks, retries;
//! - [`rules`]: the chat's rules, above the storage seam;
//! - [`store`]: the storage trait and its SQLite backend (group commit);
//! - [`cluster`]: several relays on one database, linked by Redis;
//! - [`fatal`]: threads that must not die alone;
//! - [`throttle`]: failed-login lockouts and the registration cap;
//! - [`admin`]: the admin command (roles, bots) and the relay's admin channel;
//! - [`sending`]: a chat sent over HTTP or by a webhook's reply, as on `/ws`;
//! - [`webhook`]: bots' outgoing webhooks, delivered from a durable outbox;
//! - [`auth`], [`ratelimit`], [`metrics`], [`static_files`], [`config`].

pub mod admin;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod desk;
pub mod error;
pub mod fatal;
pub mod filters;
pub mod handlers;
pub mod hub;
pub mod metrics;
pub mod ratelimit;
pub mod rules;
pub mod sending;
pub mod server;
pub mod socket;
pub mod static_files;
pub mod store;
pub mod throttle;
pub mod voice;
pub mod webhook;

pub use config::Config;
pub use error::{Error, Result};

use auth::PasswordHashing;
use hub::{Hub, HubConfig};
use metrics::Metrics;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::net::TcpListener;

/// Everything a request or a session needs, passed around as `Arc<App>`
/// (no globals).
pub struct App {
    /// Settings.
    pub config: Config,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Online users and delivery state.
    pub hub: Arc<Hub>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// argon2, bounded.
    pub hashing: PasswordHashing,
    /// Failed-login lockouts and the registration cap.
    pub throttle: throttle::Throttle,
    /// This relay's cluster membership, when run with `--redis`.
    pub cluster: Option<Arc<cluster::Cluster>>,
    /// Voice rooms on this relay (in a cluster: this relay's participants;
    /// the rooms themselves are in Redis, `cluster.voice()`).
    pub voice: Arc<voice::Voice>,
    /// The support desk's sockets, leases and notices on this relay.
    pub desk: Arc<desk::Desk>,
    shutting_down: AtomicBool,
}

impl App {
    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }
}

/// Runs the relay on `listener` until `shutdown` resolves, then shuts down
/// gracefully. Tests call this with a listener bound to `127.0.0.1:0`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::start(
        HubConfig {
            ack_timeout: config.ack_timeout,
            max_retry_interval: config.max_retry_interval.max(config.ack_timeout),
            retry_budget: (config.outbound_queue / 4).max(1),
            presence_grace: config.presence_grace,
            gap_wait: GAP_WAIT,
        },
        metrics.clone(),
    )?;
    let (store, hashing) = {
        let (config, metrics) = (config.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || -> Result<_> {
            let store = store::open(&config, metrics)?;
            let hashing = PasswordHashing::new(config.max_hashing)?;
            Ok((store, hashing))
        })
        .await
        .map_err(|e| Error::Config(e.to_string()))??
    };
    let _admin = admin::serve_channel(&config, store.clone())?;
    let rooms = Arc::new(voice::Voice::new(config.voice_capacity));
    let cluster = match &config.redis {
        Some(url) => {
            if !config.db.starts_with("postgres") {
                return Err(Error::Config(
                    "--redis (cluster mode) needs a shared postgres:// database".into(),
                ));
            }
            let c = cluster::Cluster::start(
                &config,
                url,
                hub.clone(),
                store.clone(),
                metrics.clone(),
                rooms.clone(),
            )?;
            hub.link(c.clone());
            Some(c)
        }
        None => None,
    };
    let desk = desk::Desk::new(store.clone(), hub.clone(), config.presence_grace);
    let app = Arc::new(App {
        desk,
        throttle: throttle::Throttle::new(&config),
        cluster,
        voice: rooms,
        config,
        store,
        hub,
        metrics,
        hashing,
        shutting_down: AtomicBool::new(false),
    });
    server::serve(listener, app, shutdown).await
}

/// How long pushes wait behind a missing `seq` before the gap is fetched
/// from the store. On one box a gap closes within microseconds (two
/// sessions fanning out the same group commit); it stays open only if a
/// push was lost.
const GAP_WAIT: Duration = Duration::from_secs(1);

/// Periodic work: retries of unacked pushes, presence timeouts, gaps in
/// what was pushed, fetched from the store, and the support desk's leases
/// and notices. (The store's own maintenance is the store's business.)
fn spawn_background(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    let desk = app.desk.clone().run();
    tokio::spawn(async move {
        tokio::join!(hub_timers(app), desk);
    })
}

async fn hub_timers(app: Arc<App>) {
    {
        let tick = (app.config.ack_timeout / 5)
            .clamp(Duration::from_millis(10), Duration::from_millis(250));
        let mut retry = tokio::time::interval(tick);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            retry.tick().await;
            let now = std::time::Instant::now();
            app.hub.retry_due(now);
            app.hub.presence_tick(now);
            for gap in app.hub.due_gaps(now) {
                let app = app.clone();
                tokio::spawn(async move {
                    let found = app
                        .store
                        .range(gap.user, gap.conv, gap.after, gap.before)
                        .await;
                    if let Err(e) = &found {
                        tracing::warn!(error = %e, ?gap, "could not fetch a gap; trying again later");
                    }
                    app.hub.fill_gap(gap, found.as_deref().ok());
                });
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Sets up `tracing` output as configured.
pub fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match config.log_format {
        config::LogFormat::Text => builder.try_init(),
        config::LogFormat::Json => builder.json().try_init(),
    };
}

/// Tunes glibc's allocator for a long-running server. Call before any
/// thread starts.
///
/// argon2 allocates ~19 MiB per hash. glibc raises its mmap threshold after
/// such a block is freed, so later ones come from per-thread heap arenas and
/// are never returned: measured here, 200 registrations left the relay at
/// 1.1 GiB RSS. A fixed threshold keeps large blocks on mmap (returned on
/// free), and fewer arenas limit fragmentation across blocking threads.
pub fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; called before any
    // other thread exists, as glibc asks.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Raises the open-file limit to the hard limit: every socket is a file
/// descriptor, and the usual soft limit (1024) would cap the relay far
/// below what it can serve.
pub fn raise_fd_limit() {
    // SAFETY: both calls only read or write the local `rlimit` they are
    // given a pointer to.
    #[cfg(unix)]
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
