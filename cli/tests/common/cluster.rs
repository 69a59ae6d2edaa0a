//! A cluster for the CLI's tests: PostgreSQL, Redis, two relay processes
//! and nginx in front of them (the `services` crate, as `cargo xtask
//! cluster`), plus what a test needs around it: which relay holds a
//! listener's socket, a bot made with `ferrochat-relay admin`, and a bot's
//! `POST /api/messages`.

use super::DEADLINE;
use services::{Cluster, ClusterConfig};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Two relays on one PostgreSQL and one Redis, behind nginx, with test
/// settings: no registration cap, a fast cluster check, a short presence
/// grace.
pub fn start(dir: &Path) -> Cluster {
    let mut config = ClusterConfig::new(dir.join("cluster"), services::relay::test_binary());
    config.nodes = 2;
    config.extra_relay_args = [
        "--register-limit",
        "off",
        "--cluster-check",
        "2s",
        "--presence-grace",
        "500ms",
        "--log",
        "warn",
    ]
    .map(String::from)
    .to_vec();
    let cluster = Cluster::start(config).expect("the cluster starts");
    for r in cluster.relays() {
        poll("every relay linked to the cluster", || {
            (r.health() == Some(200)).then_some(())
        });
    }
    cluster
}

/// The database URL the relays share.
pub fn db(cluster: &Cluster) -> String {
    let pg = cluster.postgres().expect("a PostgreSQL cluster");
    pg.url(services::postgres::DATABASE)
}

/// Calls `f` until it gives a value, at most [`DEADLINE`]; panics naming
/// `what` after that.
pub fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        // Polling state in other processes (nothing to block on).
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The index of the one relay with `n` open WebSocket sessions while the
/// others have none (the metric `ferrochat_ws_sessions`).
pub fn holding_sockets(cluster: &Cluster, n: f64) -> usize {
    poll("one relay holding the sockets", || {
        let counts: Vec<f64> = cluster
            .relays()
            .iter()
            .map(|r| r.metric("ferrochat_ws_sessions").unwrap_or(0.0))
            .collect();
        let holders: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0.0).collect();
        match holders.as_slice() {
            [i] if counts[*i] == n => Some(*i),
            _ => None,
        }
    })
}

/// `ferrochat-relay admin create-bot <name> --db <db>`: the bot's token.
pub fn create_bot(db: &str, name: &str) -> String {
    let out = std::process::Command::new(services::relay::test_binary())
        .args(["admin", "create-bot", name, "--db", db])
        .output()
        .expect("the admin command runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "create-bot: {out:?}");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("token\t"))
        .unwrap_or_else(|| panic!("no token in {stdout:?}"))
        .to_string()
}

/// The user id saved in a CLI config dir's session.
pub fn user_id(config: &Path) -> String {
    let bytes = std::fs::read(config.join("session.json")).expect("a saved session");
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    v["userId"]
        .as_str()
        .expect("a userId (a string)")
        .to_string()
}

/// A bot's `POST /api/messages` of `body` to user `to` on the relay at
/// `addr` (HTTP/1.1 by hand: the tests have no HTTP client); the status.
pub fn bot_post(addr: std::net::SocketAddr, token: &str, to: &str, body: &str) -> u16 {
    let json = serde_json::json!({
        "toId": to,
        "content": {"contentType": 1, "body": body},
    })
    .to_string();
    let mut s = TcpStream::connect(addr).expect("connect to the relay");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "POST /api/messages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    )
    .expect("write the request");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the answer");
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}
