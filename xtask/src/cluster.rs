//! `cargo xtask cluster`: ferrochat in cluster mode on this machine —
//! PostgreSQL, Redis, several relays and nginx in front of them, all
//! private instances on loopback (see the `services` crate), until Ctrl-C.
//!
//! Steps: install what is missing (apt), build the relay in release and
//! the web app (as `cargo xtask run` does), start the cluster, print where
//! everything is, wait for SIGINT or SIGTERM, then stop it in order:
//! nginx, the relays, Redis, PostgreSQL.

use crate::util::{self, Result};
use services::install::{self, Need};
use services::{Backend, Cluster, ClusterConfig};
use std::path::PathBuf;

/// What `cluster` takes.
#[derive(Debug, PartialEq)]
struct Options {
    nodes: usize,
    dir: PathBuf,
    port: u16,
    backend: Backend,
}

/// `args` is everything after `cluster`.
pub fn cluster(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    let mut needs = vec![Need::NGINX];
    if opts.backend == Backend::Postgres {
        needs.extend([Need::POSTGRES, Need::REDIS]);
    }
    install::ensure(&needs)?;
    util::run(util::cargo().args([
        "build",
        "--release",
        "-p",
        "ferrochat-relay",
        "--bin",
        "ferrochat-relay",
    ]))?;
    let dist = util::workspace_root().join("dist");
    crate::dist::dist(&dist)?;

    // From here on SIGINT and SIGTERM wait for us (see `signals`); the
    // services run in process groups of their own, so a Ctrl-C reaches
    // only this process, which stops them in order.
    let stop_signals = signals::block();
    let config = ClusterConfig {
        dir: opts.dir.clone(),
        nodes: opts.nodes,
        relay_bin: util::target_dir().join("release/ferrochat-relay"),
        static_dir: Some(dist),
        nginx_port: Some(opts.port),
        extra_relay_args: Vec::new(),
        backend: opts.backend,
    };
    eprintln!(
        "xtask: starting {} relay(s) under {}",
        opts.nodes,
        opts.dir.display()
    );
    let cluster = Cluster::start(config).map_err(|e| {
        let hint = if opts.backend == Backend::Postgres {
            "\n(if the relay rejects --db postgres://, --redis or --node-id, this relay \
             build has no cluster support yet; `--backend sqlite` runs independent \
             relays behind nginx)"
        } else {
            ""
        };
        format!("the cluster did not start: {e}{hint}")
    })?;
    print_parts(&cluster);
    println!("open {}   (Ctrl-C stops everything)", cluster.url());
    let sig = signals::wait(&stop_signals);
    eprintln!("xtask: signal {sig}: stopping nginx, then the relays, then Redis and PostgreSQL");
    cluster.stop()?;
    eprintln!("xtask: cluster stopped");
    Ok(())
}

/// Where each part listens and logs.
fn print_parts(c: &Cluster) {
    println!("cluster in {}", c.dir().display());
    println!(
        "  nginx       {}   (config and logs in {})",
        c.url(),
        c.nginx().dir().display()
    );
    for (i, r) in c.relays().iter().enumerate() {
        println!(
            "  relay node{i} {}   (log {})",
            r.url(),
            r.log_path().display()
        );
    }
    if let Some(r) = c.redis() {
        println!(
            "  redis       {}   (log {})",
            r.url(),
            r.log_path().display()
        );
    }
    if let Some(p) = c.postgres() {
        println!(
            "  postgres    {}   (log {})",
            p.url(services::postgres::DATABASE),
            p.log_path().display()
        );
    }
}

/// `[--nodes N] [--dir DIR] [--port P] [--backend postgres|sqlite]`, each
/// also as `--flag=value`.
fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        nodes: 3,
        dir: util::target_dir().join("cluster"),
        port: 8080,
        backend: Backend::Postgres,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || -> Result<String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value").into())
        };
        match flag {
            "--nodes" => {
                o.nodes = value()?
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or("--nodes takes a number from 1 to 64")?;
            }
            "--dir" => o.dir = util::absolute(value()?),
            "--port" => {
                o.port = value()?.parse().map_err(|_| "--port takes a port number")?;
            }
            "--backend" => {
                o.backend = match value()?.as_str() {
                    "postgres" => Backend::Postgres,
                    "sqlite" => Backend::SqlitePerNode,
                    other => {
                        return Err(format!("--backend {other}: use postgres or sqlite").into())
                    }
                }
            }
            _ => return Err(format!("unexpected argument {arg:?}\n{}", crate::USAGE).into()),
        }
    }
    Ok(o)
}

/// Waiting for Ctrl-C without a handler: the stop signals are blocked in
/// this thread before any service thread exists (threads inherit the
/// mask; children get a clean one from std), and `sigwait` takes them.
mod signals {
    /// Blocks SIGINT and SIGTERM in this thread and the threads it starts
    /// from now on; returns the set for [`wait`].
    pub fn block() -> libc::sigset_t {
        // SAFETY: the set is a local the sig* calls initialise (sigemptyset
        // first) before use; pthread_sigmask only changes this thread's
        // mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        }
    }

    /// Waits for one of the blocked signals; its number.
    pub fn wait(set: &libc::sigset_t) -> i32 {
        let mut sig = 0;
        // SAFETY: `set` was initialised by `block`, `sig` is a valid out
        // pointer for the call's duration.
        while unsafe { libc::sigwait(set, &mut sig) } != 0 {}
        sig
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let d = parse(&[]).unwrap();
        assert_eq!((d.nodes, d.port, d.backend), (3, 8080, Backend::Postgres));
        assert!(d.dir.ends_with("cluster"));
        let o = parse(&s(&[
            "--nodes",
            "2",
            "--port=9000",
            "--dir",
            "/tmp/c",
            "--backend=sqlite",
        ]))
        .unwrap();
        assert_eq!(
            o,
            Options {
                nodes: 2,
                dir: "/tmp/c".into(),
                port: 9000,
                backend: Backend::SqlitePerNode
            }
        );
        assert!(parse(&s(&["--nodes", "0"])).is_err());
        assert!(parse(&s(&["--port"])).is_err());
        assert!(parse(&s(&["--backend", "mysql"])).is_err());
        assert!(parse(&s(&["--what"])).is_err());
    }
}
