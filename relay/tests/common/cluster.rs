//! A cluster for tests: relay processes (the binary) on one fresh
//! PostgreSQL database and a private Redis, started with the same code as
//! `cargo xtask cluster` (the `services` crate).

use super::child::{free_port, relay_command, ChildRelay};
use super::TestRelay;
use services::redis::Redis;

/// Relays sharing a database and a Redis.
pub struct TestCluster {
    pub db: String,
    pub redis: Redis,
    relays: Vec<Option<ChildRelay>>,
    ports: Vec<u16>,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// `nodes` relays with test settings and `extra` flags.
    pub async fn start(nodes: usize, extra: &[&str]) -> TestCluster {
        TestCluster::start_with(nodes, extra, &[], None).await
    }

    /// As [`TestCluster::start`], with environment variables for the relays
    /// and, optionally, a database URL of the caller's (a private
    /// PostgreSQL the test may stop).
    pub async fn start_with(
        nodes: usize,
        extra: &[&str],
        env: &[(&str, &str)],
        db: Option<String>,
    ) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let redis = tokio::task::spawn_blocking({
            let d = dir.path().join("redis");
            move || Redis::start(d).expect("redis starts")
        })
        .await
        .unwrap();
        let db = match db {
            Some(db) => db,
            None => super::postgres::fresh_database().await,
        };
        let mut c = TestCluster {
            db,
            redis,
            relays: Vec::new(),
            ports: Vec::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _dir: dir,
        };
        for i in 0..nodes {
            c.ports.push(free_port());
            c.relays.push(None);
            c.start_node(i).await;
        }
        for i in 0..nodes {
            c.wait_linked(i).await;
        }
        c
    }

    async fn start_node(&mut self, i: usize) {
        let node = format!("n{i}");
        let redis = self.redis.url();
        let mut args: Vec<&str> = vec![
            "--redis",
            &redis,
            "--node-id",
            &node,
            "--cluster-check",
            "2s",
            "--presence-grace",
            "500ms",
            "--register-limit",
            "off",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let mut cmd = relay_command(&self.db, self.ports[i], &args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.relays[i] = Some(ChildRelay::spawn(cmd, &self.db, self.ports[i]).await);
    }

    /// Waits until relay `i` is subscribed and its probe comes back.
    pub async fn wait_linked(&self, i: usize) {
        let r = self.relay(i);
        super::eventually("the relay is linked to the cluster", || async {
            (r.get("/healthz", None).await.0 == 200).then_some(())
        })
        .await;
    }

    pub fn relay(&self, i: usize) -> &TestRelay {
        &self.relays[i].as_ref().expect("relay is running").relay
    }

    /// `kill -9` of relay `i`.
    pub fn kill9(&mut self, i: usize) {
        self.relays[i].take().expect("relay is running").kill9();
    }

    /// Starts relay `i` again on its port.
    pub async fn restart(&mut self, i: usize) {
        self.start_node(i).await;
        self.wait_linked(i).await;
    }
}
