//! The relays of a run: `--url` is one base URL or a comma-separated list
//! (a cluster's relays, addressed one by one rather than through the load
//! balancer, so a run decides which relay every session is on).
//!
//! Accounts are registered, and groups set up, through the first relay
//! (they live in the database the relays share); sessions are spread over
//! all of them as each scenario says (node `i` is the i-th URL). With one
//! URL every session is on node 0: the single-relay behaviour.

use super::Target;
use crate::Error;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The relays of a run, in `--url` order.
#[derive(Clone, Debug)]
pub struct Targets {
    nodes: Vec<Target>,
}

impl Targets {
    /// Resolves every URL of the comma-separated `urls` (see
    /// [`Target::resolve`]; `source_ips` applies to all of them).
    pub async fn resolve(
        urls: &str,
        source_ips: u8,
        ws_config: WebSocketConfig,
    ) -> Result<Targets, Error> {
        let mut nodes = Vec::new();
        for url in split_urls(urls)? {
            nodes.push(Target::resolve(url, source_ips, ws_config).await?);
        }
        Ok(Targets { nodes })
    }

    /// The first relay: registration and the HTTP API go there.
    pub fn first(&self) -> &Target {
        &self.nodes[0]
    }

    /// Node `i` (modulo the number of relays).
    pub fn node(&self, i: usize) -> &Target {
        &self.nodes[i % self.nodes.len()]
    }

    /// Number of relays (at least 1).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a run has at least one relay.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The relays' base URLs (`http://host:port`), node by node, for the
    /// reports.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|t| t.http_base.clone()).collect()
    }
}

/// Splits a `--url` list at commas (spaces around them allowed). The same
/// URL may appear more than once (two "nodes" on one relay exercise the
/// multi-relay paths against a single process).
pub fn split_urls(urls: &str) -> Result<Vec<&str>, Error> {
    let list: Vec<&str> = urls.split(',').map(str::trim).collect();
    if list.iter().any(|u| u.is_empty()) {
        return Err(format!("--url: empty entry in {urls:?}").into());
    }
    Ok(list)
}

/// How many of `nodes` (each session's node) are on each of `count`
/// relays.
pub fn per_node(nodes: impl IntoIterator<Item = usize>, count: usize) -> Vec<u64> {
    let mut v = vec![0; count.max(1)];
    for n in nodes {
        v[n % count.max(1)] += 1;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_lists_are_split_and_checked() {
        assert_eq!(
            split_urls("http://a:1").unwrap(),
            ["http://a:1"],
            "one URL: as before"
        );
        assert_eq!(
            split_urls("http://a:1, http://b:2,http://a:1").unwrap(),
            ["http://a:1", "http://b:2", "http://a:1"]
        );
        for bad in ["", "http://a:1,", ",http://a:1", "http://a:1,,http://b:2"] {
            assert!(split_urls(bad).is_err(), "{bad:?}");
        }
        assert_eq!(per_node([0, 1, 2, 0, 4], 3), [2, 2, 1]);
        assert_eq!(per_node([], 2), [0, 0]);
    }

    #[tokio::test]
    async fn every_url_is_resolved_and_nodes_wrap_around() {
        let cfg = WebSocketConfig::default();
        let t = Targets::resolve("http://127.0.0.1:9100,http://127.0.0.1:9101", 1, cfg)
            .await
            .unwrap();
        assert_eq!((t.len(), t.is_empty()), (2, false));
        assert_eq!(t.urls(), ["http://127.0.0.1:9100", "http://127.0.0.1:9101"]);
        assert_eq!(t.first().http_base, "http://127.0.0.1:9100");
        assert_eq!(t.node(3).ws_url, "ws://127.0.0.1:9101/ws");
        assert!(Targets::resolve("http://127.0.0.1:1,https://x:1", 1, cfg)
            .await
            .is_err());
        // --source-ips binds to loopback addresses: every relay must be one.
        assert!(
            Targets::resolve("http://127.0.0.1:1,http://192.0.2.1:1", 2, cfg)
                .await
                .is_err()
        );
        let one = Targets::resolve("http://127.0.0.1:9100", 1, cfg)
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one.node(5).http_base, "http://127.0.0.1:9100");
    }
}
