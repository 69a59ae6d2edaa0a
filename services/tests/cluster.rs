//! A cluster of relays behind nginx (each on its own SQLite: the relays
//! of this workspace do not take the PostgreSQL/Redis flags yet).

mod common;

use common::{relay_args, relay_bin, Scratch};
use services::{Backend, Cluster, ClusterConfig, RelayProcess};

#[test]
fn nginx_routes_around_a_killed_node() {
    let scratch = Scratch::new("cluster");
    let mut config = ClusterConfig::new(scratch.path().join("c"), relay_bin());
    config.nodes = 2;
    config.backend = Backend::SqlitePerNode;
    config.extra_relay_args = relay_args(scratch.path())[2..].to_vec();
    let mut cluster = Cluster::start(config).unwrap();
    assert!(cluster.postgres().is_none() && cluster.redis().is_none());
    let lb = cluster.nginx().addr();
    assert_eq!(RelayProcess::health_at(lb), Some(200));

    cluster.relay_mut(0).kill().unwrap();
    // Every request still lands: the dead node is skipped after one
    // failed connect, and that request is retried on the other.
    for _ in 0..6 {
        assert_eq!(RelayProcess::health_at(lb), Some(200));
    }
    cluster.relay_mut(0).restart().unwrap();
    assert_eq!(cluster.relays()[0].health(), Some(200));
    let db = cluster.dir().join("node1/ferrochat.db");
    assert!(db.is_file(), "each node has its own database");
    cluster.stop().unwrap();
    assert!(RelayProcess::health_at(lb).is_none());
}
