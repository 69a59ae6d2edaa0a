//! Which relay each chat session is on (`--placement`), when `--url` lists
//! several: the same-node and cross-node paths of a cluster are measured
//! apart by placing both ends of every pair on one relay (`same`) or on
//! two (`cross`), or like users a load balancer spreads (`spread`).

use crate::latency::LatencySummary;
use crate::report::Summary;
use clap::ValueEnum;
use serde::Serialize;
use std::collections::BTreeMap;

/// Where the two ends of each pair go (pair `p`, `N` relays).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Round robin, recipients on node `p % N`, senders on node
    /// `(p + p / N) % N`: every node gets as many sessions of each kind,
    /// and over N² pairs every (sender node, recipient node) combination
    /// occurs once, so (N−1)/N of the pairs cross relays, as with users
    /// placed at random. One relay: everything on it.
    #[default]
    Spread,
    /// Sender on node `p % N`, recipient on `(p + 1) % N`: every message
    /// crosses relays (with N ≥ 2).
    Cross,
    /// Both ends on node `p % N`: no message crosses relays.
    Same,
}

/// The relays of one pair's sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairNodes {
    /// The sender's node (index into `--url`).
    pub sender: usize,
    /// The recipient's node.
    pub recipient: usize,
}

impl PairNodes {
    /// Whether the pair's messages go from one relay to another.
    pub fn crosses(&self) -> bool {
        self.sender != self.recipient
    }
}

impl Placement {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Spread => "spread",
            Placement::Cross => "cross",
            Placement::Same => "same",
        }
    }

    /// The nodes of pair `p`'s sessions on `nodes` relays.
    pub fn pair(self, p: usize, nodes: usize) -> PairNodes {
        let n = nodes.max(1);
        let (sender, recipient) = match self {
            Placement::Spread => ((p + p / n) % n, p % n),
            Placement::Cross => (p % n, (p + 1) % n),
            Placement::Same => (p % n, p % n),
        };
        PairNodes { sender, recipient }
    }
}

/// Where a run's sessions were (flattened into the chat report).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementReport {
    /// The relays, node by node (`--url`).
    pub nodes: Vec<String>,
    /// Each pair's `[sender node, recipient node]` at the start (a
    /// reconnected session moves to the next node).
    pub pair_nodes: Vec<[usize; 2]>,
    /// Pairs whose sender and recipient were on different relays.
    pub cross_pairs: u64,
    /// Intended send → push received over the pairs on one relay (only
    /// with several relays; null without such pairs).
    pub latency_same_node: Option<LatencySummary>,
    /// The same over the pairs that cross relays.
    pub latency_cross_node: Option<LatencySummary>,
}

impl PlacementReport {
    /// The placement of `pairs` on the relays `nodes` (latencies are added
    /// by the caller).
    pub fn new(nodes: Vec<String>, pairs: &[PairNodes]) -> PlacementReport {
        PlacementReport {
            nodes,
            pair_nodes: pairs.iter().map(|p| [p.sender, p.recipient]).collect(),
            cross_pairs: pairs.iter().filter(|p| p.crosses()).count() as u64,
            latency_same_node: None,
            latency_cross_node: None,
        }
    }

    /// The summary lines (only with several relays).
    pub fn lines(&self, placement: Placement, s: &mut Summary) {
        if self.nodes.len() < 2 {
            return;
        }
        let mut routes: BTreeMap<[usize; 2], u64> = BTreeMap::new();
        for p in &self.pair_nodes {
            *routes.entry(*p).or_default() += 1;
        }
        let routes: Vec<String> = (routes.iter())
            .map(|([a, b], n)| format!("{a}→{b} ×{n}"))
            .collect();
        s.line(
            "relays",
            format!("{} ({})", self.nodes.len(), self.nodes.join(", ")),
        );
        s.line(
            "placement",
            format!(
                "{}: {} of {} pairs cross relays (sender→recipient node: {})",
                placement.name(),
                self.cross_pairs,
                self.pair_nodes.len(),
                routes.join(", ")
            ),
        );
        for (label, l) in [
            ("  latency, same relay", &self.latency_same_node),
            ("  latency, across relays", &self.latency_cross_node),
        ] {
            if let Some(l) = l {
                s.line(label, l.human());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: Placement, pairs: usize, nodes: usize) -> Vec<[usize; 2]> {
        (0..pairs)
            .map(|i| {
                let n = p.pair(i, nodes);
                [n.sender, n.recipient]
            })
            .collect()
    }

    #[test]
    fn names_are_the_command_lines() {
        for p in [Placement::Spread, Placement::Cross, Placement::Same] {
            assert_eq!(p.to_possible_value().unwrap().get_name(), p.name());
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
    }

    #[test]
    fn cross_and_same_place_every_pair_as_asked() {
        assert_eq!(
            all(Placement::Cross, 4, 2),
            [[0, 1], [1, 0], [0, 1], [1, 0]]
        );
        assert_eq!(all(Placement::Cross, 3, 3), [[0, 1], [1, 2], [2, 0]]);
        assert_eq!(all(Placement::Same, 3, 2), [[0, 0], [1, 1], [0, 0]]);
        // One relay: everything on it, whatever the placement.
        for p in [Placement::Spread, Placement::Cross, Placement::Same] {
            assert_eq!(all(p, 3, 1), [[0, 0]; 3]);
        }
    }

    #[test]
    fn spread_balances_nodes_and_covers_every_route() {
        for nodes in 2..=4 {
            let pairs = all(Placement::Spread, nodes * nodes, nodes);
            let mut routes = pairs.clone();
            routes.sort();
            routes.dedup();
            assert_eq!(routes.len(), nodes * nodes, "every route once");
            for node in 0..nodes {
                let senders = pairs.iter().filter(|p| p[0] == node).count();
                let recipients = pairs.iter().filter(|p| p[1] == node).count();
                assert_eq!((senders, recipients), (nodes, nodes));
            }
        }
        assert_eq!(
            all(Placement::Spread, 4, 2),
            [[0, 0], [1, 1], [1, 0], [0, 1]]
        );
    }

    #[test]
    fn the_report_counts_crossing_pairs_and_names_the_routes() {
        let pairs: Vec<PairNodes> = (0..4).map(|p| Placement::Cross.pair(p, 2)).collect();
        let nodes = vec!["http://a:1".to_string(), "http://a:1".to_string()];
        let mut r = PlacementReport::new(nodes, &pairs);
        assert_eq!(r.cross_pairs, 4);
        r.latency_cross_node = Some(LatencySummary::default());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["pairNodes"],
            serde_json::json!([[0, 1], [1, 0], [0, 1], [1, 0]])
        );
        assert!(v["latencySameNode"].is_null());
        let mut s = Summary::new();
        r.lines(Placement::Cross, &mut s);
        let text = s.finish();
        assert!(
            text.contains(
                "cross: 4 of 4 pairs cross relays (sender→recipient node: 0→1 ×2, 1→0 ×2)"
            ),
            "{text}"
        );
        assert!(text.contains("latency, across relays"), "{text}");
        let mut s = Summary::new();
        PlacementReport::new(vec!["x".into()], &pairs[..1]).lines(Placement::Cross, &mut s);
        assert_eq!(s.finish(), "", "nothing to say with one relay");
    }
}
