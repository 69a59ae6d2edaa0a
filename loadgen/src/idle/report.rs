//! What an idle run reports.

use super::IdleArgs;
use crate::latency::LatencySummary;
use crate::report::{fmt_mib, Findings, ScenarioReport, Summary, Tally, ToJson};
use crate::resources::Usage;
use serde::Serialize;

/// Results of an idle run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleReport {
    /// The options used.
    #[serde(skip)]
    pub args: IdleArgs,
    /// Accounts registered.
    pub users: usize,
    /// Source addresses used.
    pub source_ips: usize,
    /// Connections logged in.
    pub established: u64,
    /// The relays (`--url`), node by node; connection i is on node i % N.
    pub nodes: Vec<String>,
    /// Connections logged in, per relay.
    pub established_per_node: Vec<u64>,
    /// TCP connect or WebSocket handshake failures.
    pub connect_failed: u64,
    /// LOGIN answered with anything but `ok:true` (or not at all).
    pub login_failed: u64,
    /// Established connections the relay closed or lost before the end.
    pub dropped: u64,
    /// Time to open and log in all connections, seconds.
    pub ramp_secs: f64,
    /// Logged-in connections per second during the ramp.
    pub connect_rate: f64,
    /// Actual hold duration, seconds.
    pub hold_secs: f64,
    /// PINGs sent during the hold (each expects a PONG).
    pub pongs_expected: u64,
    /// PONGs received for those PINGs.
    pub pongs_received: u64,
    /// PING→PONG round trip for PINGs sent during the hold.
    pub pong_latency: LatencySummary,
    /// Relay VmRSS after registration, before any socket, KiB.
    pub relay_rss_baseline_kib: Option<u64>,
    /// Relay VmRSS at the end of the hold, KiB.
    pub relay_rss_after_kib: Option<u64>,
    /// (after − baseline) / established, KiB.
    pub relay_rss_per_conn_kib: Option<f64>,
    /// Relay VmRSS one second after all sockets closed, KiB.
    pub relay_rss_after_close_kib: Option<u64>,
    /// CPU during the hold.
    #[serde(flatten)]
    pub usage: Usage,
    /// The generator's own VmRSS at the end of the hold, KiB.
    pub loadgen_rss_kib: Option<u64>,
    /// Sockets that completed the close handshake at the end.
    pub closed_cleanly: u64,
    /// Failures and unexpected events by kind.
    pub problems: Tally,
}

impl ScenarioReport for IdleReport {
    fn scenario(&self) -> &'static str {
        "idle"
    }

    fn args(&self) -> &dyn ToJson {
        &self.args
    }

    fn human(&self) -> String {
        let a = &self.args;
        let mut s = Summary::new();
        s.line(
            "connections",
            format!(
                "{} established of {} ({} users × {} tabs, {} source IPs)",
                self.established, a.connections, self.users, a.tabs, self.source_ips
            ),
        );
        if self.nodes.len() > 1 {
            let per: Vec<String> = (self.nodes.iter().zip(&self.established_per_node))
                .map(|(url, n)| format!("{url} {n}"))
                .collect();
            s.line("per relay", per.join(", "));
        }
        s.line(
            "failures",
            format!(
                "connect {}, login {}, dropped {}",
                self.connect_failed, self.login_failed, self.dropped
            ),
        );
        s.line(
            "ramp",
            format!("{:.1} s ({:.0} conn/s)", self.ramp_secs, self.connect_rate),
        );
        s.line(
            "pongs",
            format!(
                "{} of {} expected (ping every {:?}, hold {:.1} s)",
                self.pongs_received, self.pongs_expected, a.ping_interval, self.hold_secs
            ),
        );
        s.line("pong latency", self.pong_latency.human());
        s.relay_rss("relay RSS baseline", &[self.relay_rss_baseline_kib]);
        s.relay_rss("relay RSS after hold", &[self.relay_rss_after_kib]);
        s.line(
            "relay RSS per connection",
            self.relay_rss_per_conn_kib
                .map_or("n/a".into(), |k| format!("{k:.2} KiB")),
        );
        s.relay_rss("relay RSS after close", &[self.relay_rss_after_close_kib]);
        s.cpu(&self.usage, "hold");
        s.line("loadgen RSS", fmt_mib(self.loadgen_rss_kib));
        s.line(
            "closed cleanly",
            format!("{} of {}", self.closed_cleanly, self.established),
        );
        s.problems(&self.problems);
        s.finish()
    }

    fn failures(&self) -> Vec<String> {
        let mut f = Findings::new();
        f.count(self.connect_failed, "connections failed to open");
        f.count(self.login_failed, "LOGINs failed");
        f.count(self.dropped, "established connections were dropped");
        f.count(
            self.pongs_expected.saturating_sub(self.pongs_received),
            "PONGs missing",
        );
        f.into_vec()
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = Findings::new();
        w.relay_unmeasured(self.relay_rss_baseline_kib.is_some());
        w.into_vec()
    }
}
