//! A whole cluster on one machine: PostgreSQL, Redis, N relays and nginx
//! in front of them, each part reachable so a test can kill a node,
//! restart Redis or crash PostgreSQL.
//!
//! Layout of the directory: `postgres/`, `redis/`, `nginx/`, and per node
//! `node<i>.log` (plus `node<i>/` with its SQLite database for
//! [`Backend::SqlitePerNode`]).

use crate::{Nginx, Postgres, Redis, RelayProcess};
use std::io;
use std::path::{Path, PathBuf};

/// Where the relays keep their data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The cluster proper: every relay on database `ferrochat` of one
    /// PostgreSQL, delivering across nodes through one Redis (`--db
    /// postgres://…`, `--redis`, `--node-id node<i>`).
    Postgres,
    /// Each relay on its own SQLite database, no PostgreSQL nor Redis: N
    /// independent relays behind one nginx. For testing the balancer and
    /// the process handling with relays that know no cluster flags.
    SqlitePerNode,
}

/// What to start.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Everything goes under here.
    pub dir: PathBuf,
    /// Number of relays (at least 1).
    pub nodes: usize,
    /// The `ferrochat-relay` binary.
    pub relay_bin: PathBuf,
    /// The built web app (`dist/`), served by the relays, and its
    /// `/assets/` by nginx directly.
    pub static_dir: Option<PathBuf>,
    /// nginx's port on 127.0.0.1; `None`: a free one.
    pub nginx_port: Option<u16>,
    /// Appended to every relay's arguments.
    pub extra_relay_args: Vec<String>,
    /// Where the relays keep their data.
    pub backend: Backend,
}

impl ClusterConfig {
    /// Three relays on PostgreSQL and Redis, no web app, nginx on a free
    /// port.
    pub fn new(dir: impl Into<PathBuf>, relay_bin: impl Into<PathBuf>) -> ClusterConfig {
        ClusterConfig {
            dir: dir.into(),
            nodes: 3,
            relay_bin: relay_bin.into(),
            static_dir: None,
            nginx_port: None,
            extra_relay_args: Vec::new(),
            backend: Backend::Postgres,
        }
    }
}

/// A running cluster. Dropping it stops nginx first, then the relays,
/// then Redis, then PostgreSQL (the field order), so no relay outlives the
/// database it writes to.
#[derive(Debug)]
pub struct Cluster {
    nginx: Nginx,
    relays: Vec<RelayProcess>,
    redis: Option<Redis>,
    postgres: Option<Postgres>,
    dir: PathBuf,
}

impl Cluster {
    /// Starts PostgreSQL and Redis (for [`Backend::Postgres`]), then the
    /// relays one by one (each answering `/healthz` before the next), then
    /// nginx in front of them. If a part fails, what was started is
    /// stopped again and the error names the part (a relay's error carries
    /// its log's last lines).
    pub fn start(config: ClusterConfig) -> io::Result<Cluster> {
        if config.nodes == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a cluster needs at least one node",
            ));
        }
        std::fs::create_dir_all(&config.dir)?;
        let dir = config.dir.canonicalize()?;
        let context = |part: &str| {
            let part = part.to_string();
            move |e: io::Error| io::Error::new(e.kind(), format!("{part}: {e}"))
        };
        let (postgres, redis) = match config.backend {
            Backend::Postgres => (
                Some(Postgres::start(dir.join("postgres")).map_err(context("PostgreSQL"))?),
                Some(Redis::start(dir.join("redis")).map_err(context("Redis"))?),
            ),
            Backend::SqlitePerNode => (None, None),
        };
        let mut relays = Vec::with_capacity(config.nodes);
        for i in 0..config.nodes {
            let args = relay_args(&config, &dir, i, postgres.as_ref(), redis.as_ref())?;
            let log = dir.join(format!("node{i}.log"));
            let relay = RelayProcess::spawn(&config.relay_bin, &args, &log)
                .map_err(context(&format!("relay node{i}")))?;
            relays.push(relay);
        }
        let upstreams: Vec<_> = relays.iter().map(RelayProcess::addr).collect();
        let nginx = Nginx::start(
            dir.join("nginx"),
            config.nginx_port.unwrap_or(0),
            &upstreams,
            config.static_dir.as_deref(),
        )
        .map_err(context("nginx"))?;
        Ok(Cluster {
            nginx,
            relays,
            redis,
            postgres,
            dir,
        })
    }

    /// The URL clients use: nginx's.
    pub fn url(&self) -> String {
        self.nginx.url()
    }

    /// The load balancer.
    pub fn nginx(&self) -> &Nginx {
        &self.nginx
    }

    /// The relays, node 0 first.
    pub fn relays(&self) -> &[RelayProcess] {
        &self.relays
    }

    /// Relay `i` (to kill or restart it).
    pub fn relay_mut(&mut self, i: usize) -> &mut RelayProcess {
        &mut self.relays[i]
    }

    /// PostgreSQL ([`Backend::Postgres`] only).
    pub fn postgres(&self) -> Option<&Postgres> {
        self.postgres.as_ref()
    }

    /// PostgreSQL, to stop, kill or start again.
    pub fn postgres_mut(&mut self) -> Option<&mut Postgres> {
        self.postgres.as_mut()
    }

    /// Redis ([`Backend::Postgres`] only).
    pub fn redis(&self) -> Option<&Redis> {
        self.redis.as_ref()
    }

    /// Redis, to stop, kill or start again.
    pub fn redis_mut(&mut self) -> Option<&mut Redis> {
        self.redis.as_mut()
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops everything cleanly, in order: nginx, the relays (each
    /// committing its work), Redis, PostgreSQL. Reports the first error
    /// but stops the rest anyway.
    pub fn stop(mut self) -> io::Result<()> {
        let mut first = Ok(());
        let mut keep = |r: io::Result<()>| {
            if first.is_ok() {
                first = r;
            }
        };
        keep(self.nginx.stop());
        for r in &mut self.relays {
            keep(r.stop());
        }
        if let Some(r) = &mut self.redis {
            keep(r.stop());
        }
        if let Some(p) = &mut self.postgres {
            keep(p.stop());
        }
        first
    }
}

/// Node `i`'s arguments: its data, the proxy it trusts, the web app, then
/// the caller's extras (so they can override).
fn relay_args(
    config: &ClusterConfig,
    dir: &Path,
    i: usize,
    postgres: Option<&Postgres>,
    redis: Option<&Redis>,
) -> io::Result<Vec<String>> {
    let mut args = Vec::new();
    match (config.backend, postgres, redis) {
        (Backend::Postgres, Some(pg), Some(redis)) => {
            args.extend([
                "--db".to_string(),
                pg.url(crate::postgres::DATABASE),
                "--redis".to_string(),
                redis.url(),
                "--node-id".to_string(),
                format!("node{i}"),
            ]);
        }
        _ => {
            let node_dir = dir.join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir)?;
            args.extend([
                "--db".to_string(),
                format!("sqlite://{}", node_dir.join("ferrochat.db").display()),
            ]);
        }
    }
    // nginx is on 127.0.0.1: believe its X-Forwarded-For.
    args.extend(["--trusted-proxy".to_string(), "127.0.0.1".to_string()]);
    if let Some(static_dir) = &config.static_dir {
        args.push("--static-dir".to_string());
        args.push(static_dir.display().to_string());
    }
    args.extend(config.extra_relay_args.iter().cloned());
    Ok(args)
}
