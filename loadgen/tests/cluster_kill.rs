//! The generator against a real cluster: two relays on private PostgreSQL
//! and Redis processes (the `services` crate), one of them killed with
//! `kill -9` while chats cross between them. Its clients must reconnect to
//! the other relay, resend what had no 81 with the same `clientMsgId`, and
//! the run must end with nothing lost and nothing stored twice.

#![cfg(unix)]

use services::{Backend, Cluster, ClusterConfig};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the relay being killed may take to carry the load the test
/// waits for before killing it.
const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_relay_killed_under_load_loses_nothing_and_stores_nothing_twice() {
    let dir = std::env::temp_dir().join(format!("loadgen-cluster-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = ClusterConfig::new(&dir, services::relay::test_binary());
    config.nodes = 2;
    config.backend = Backend::Postgres;
    config.extra_relay_args = services::relay::load_test_args();
    let mut cluster = Cluster::start(config).expect("the cluster starts");
    let urls: Vec<String> = cluster.relays().iter().map(|r| r.url()).collect();
    let generator = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--url", &urls.join(","), "--json", "--quiet", "chat"])
        .args(["--placement", "cross", "--reconnect", "--pairs", "10"])
        .args(["--rate", "400", "--warmup", "1s", "--duration", "8s"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("loadgen starts");

    // Kill relay 1 once it has stored a good share of the chats (its
    // senders' half), i.e. in the middle of the measured load.
    let deadline = Instant::now() + WAIT;
    loop {
        let stored = cluster.relays()[1]
            .metric("ferrochat_store_ops_total")
            .unwrap_or(0.0);
        if stored >= 600.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "relay 1 stored only {stored} chats"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.relay_mut(1).kill().unwrap();
    let out = generator.wait_with_output().expect("loadgen ends");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("loadgen prints its JSON report");
    let r = &report["results"];
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("no {k} in {r}"));
    assert!(n("socketsLost") > 0, "the kill hit live sockets: {r}");
    assert_eq!(
        n("reconnected"),
        n("socketsLost"),
        "every socket came back: {r}"
    );
    assert_eq!(n("lost"), 0, "{r}");
    assert_eq!(n("duplicates"), 0, "{r}");
    assert_eq!(n("delivered"), n("sent"), "{r}");
    assert_eq!(n("outOfOrder"), 0, "{r}");
    cluster.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
