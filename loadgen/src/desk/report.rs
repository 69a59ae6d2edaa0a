//! What a desk run reports: waits for an agent, the queue over time, every
//! message's fate both ways, and the relay's cost.

use super::agent::AgentOut;
use super::args::DeskArgs;
use super::ledger::{Dir, Flow};
use super::queue::QueuePoint;
use super::visitor::VisitorOut;
use super::Shared;
use crate::latency::{nearest_rank, LatencySummary};
use crate::report::{
    self, fmt_tally, merge_tally, Findings, ScenarioReport, Summary, Tally, ToJson,
};
use crate::resources::Usage;
use serde::Serialize;

/// Times to assignment (130 → 131 `open`), milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waits {
    /// Visitors assigned.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Longest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Waits {
    /// From the waits in µs (sorted in place).
    pub fn of_us(us: &mut [u64]) -> Waits {
        if us.is_empty() {
            return Waits::default();
        }
        us.sort_unstable();
        let ms = |v: u64| report::round_to(v as f64 / 1000.0, 1);
        let sum: u64 = us.iter().sum();
        Waits {
            count: us.len() as u64,
            p50_ms: ms(nearest_rank(us, 500)),
            p90_ms: ms(nearest_rank(us, 900)),
            p99_ms: ms(nearest_rank(us, 990)),
            max_ms: ms(us[us.len() - 1]),
            mean_ms: ms(sum / us.len() as u64),
        }
    }
}

/// Results of a desk run.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeskReport {
    /// The options used.
    #[serde(skip)]
    pub args: Option<DeskArgs>,
    /// The relays (`--url`), node by node.
    pub nodes: Vec<String>,
    /// Agents ready, per node.
    pub agents_per_node: Vec<u64>,
    /// Visitors, per node.
    pub visitors_per_node: Vec<u64>,
    /// Agents that could not get ready, why.
    pub agent_failures: Tally,
    /// Agents that answered.
    pub agents_ready: u64,
    /// Visitors created and logged in.
    pub visitors_started: u64,
    /// Visitors given an agent.
    pub visitors_assigned: u64,
    /// Visitors whose every message was answered.
    pub visitors_served: u64,
    /// Visitors told their conversation closed.
    pub visitors_closed: u64,
    /// Conversations put back in the queue after being opened.
    pub requeued: u64,
    /// Time to assignment.
    pub time_to_assignment: Waits,
    /// The largest 131 `position` any visitor saw.
    pub max_position: u32,
    /// The largest `queued` of the series.
    pub max_queued: u32,
    /// The most visitors waiting at once (generator's count, sampled).
    pub max_waiting: u32,
    /// The queue once per second from the first arrival.
    pub queue: Vec<QueuePoint>,
    /// Visitors' messages.
    pub visitor_to_agent: Flow,
    /// Agents' answers.
    pub agent_to_visitor: Flow,
    /// Lost messages, both ways.
    pub lost: u64,
    /// Duplicate pushes, both ways.
    pub duplicates: u64,
    /// A visitor's message until its push to the agent.
    pub to_agent_latency: LatencySummary,
    /// A visitor's message until the agent's answer reached the visitor
    /// (with `--reply-delay`).
    pub answer_latency: LatencySummary,
    /// 135s the agents sent.
    pub closes_sent: u64,
    /// 133s the agents got.
    pub boards: u64,
    /// The most conversations one agent had open (its boards).
    pub max_open_per_agent: u64,
    /// Type 0 errors by code.
    pub errors: Tally,
    /// Failed setups, lost sockets, stray messages.
    pub problems: Tally,
    /// From the first arrival until every visitor was served (or the
    /// deadline), seconds.
    pub served_secs: f64,
    /// The drain after that, seconds.
    pub drain_secs: f64,
    /// Relay memory after the agents logged in, KiB.
    pub relay_rss_before_kib: Option<u64>,
    /// Relay memory at the end of the serving phase, KiB.
    pub relay_rss_after_kib: Option<u64>,
    /// CPU over the serving phase.
    #[serde(flatten)]
    pub usage: Usage,
}

impl DeskReport {
    /// Fills the figures from the tasks' outcomes and the shared logs.
    pub(super) fn reconcile(&mut self, s: &Shared, visitors: &[VisitorOut], agents: &[AgentOut]) {
        let count = |f: fn(&VisitorOut) -> bool| visitors.iter().filter(|v| f(v)).count() as u64;
        self.visitors_started = count(|v| v.started);
        self.visitors_assigned = count(|v| v.assigned);
        self.visitors_served = count(|v| v.served);
        self.visitors_closed = count(|v| v.closed);
        self.requeued = visitors.iter().map(|v| u64::from(v.requeued)).sum();
        self.max_position = (visitors.iter().filter_map(|v| v.max_position))
            .max()
            .unwrap_or(0);
        for v in visitors {
            merge_tally(&mut self.errors, &v.errors);
            merge_tally(&mut self.problems, &v.problems);
        }
        self.agents_ready = agents.len() as u64;
        for a in agents {
            self.closes_sent += a.closes;
            self.boards += a.boards;
            self.max_open_per_agent = self.max_open_per_agent.max(a.max_open);
            merge_tally(&mut self.errors, &a.errors);
            merge_tally(&mut self.problems, &a.problems);
        }
        self.time_to_assignment = Waits::of_us(&mut s.assign_us.lock().unwrap());
        self.to_agent_latency = LatencySummary::of_values(&mut s.push_us.lock().unwrap());
        self.answer_latency = LatencySummary::of_values(&mut s.answer_us.lock().unwrap());
        self.queue = s.queue.series();
        self.max_queued = self.queue.iter().map(|p| p.queued).max().unwrap_or(0);
        self.max_waiting = self.queue.iter().map(|p| p.waiting).max().unwrap_or(0);
        self.visitor_to_agent = s.ledger.flow(Dir::ToAgent);
        self.agent_to_visitor = s.ledger.flow(Dir::ToVisitor);
        self.lost = self.visitor_to_agent.lost + self.agent_to_visitor.lost;
        self.duplicates = self.visitor_to_agent.duplicates + self.agent_to_visitor.duplicates;
    }
}

fn flow_line(f: &Flow) -> String {
    format!(
        "sent {}, stored {}, delivered {}, lost {}, duplicates {}, unacked {}",
        f.sent, f.acked, f.delivered, f.lost, f.duplicates, f.unacked
    )
}

impl ScenarioReport for DeskReport {
    fn scenario(&self) -> &'static str {
        "desk"
    }

    fn args(&self) -> &dyn ToJson {
        &self.args
    }

    fn human(&self) -> String {
        let mut s = Summary::new();
        let Some(a) = &self.args else {
            return String::new();
        };
        s.line(
            "load",
            format!(
                "{} visitors over {:?}, {} messages each; {} agents × capacity {}, reply delay {:?}",
                a.visitors, a.arrival, a.messages, a.agents, a.capacity, a.reply_delay
            ),
        );
        if self.nodes.len() > 1 {
            s.line(
                "relays",
                format!(
                    "{} (agents per node {:?}, visitors {:?})",
                    self.nodes.join(", "),
                    self.agents_per_node,
                    self.visitors_per_node
                ),
            );
        }
        s.line(
            "visitors",
            format!(
                "started {}, assigned {}, served {}, closed {}, requeued {}",
                self.visitors_started,
                self.visitors_assigned,
                self.visitors_served,
                self.visitors_closed,
                self.requeued
            ),
        );
        let w = &self.time_to_assignment;
        s.line(
            "time to assignment",
            format!(
                "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (n={})",
                w.p50_ms, w.p90_ms, w.p99_ms, w.max_ms, w.count
            ),
        );
        s.line(
            "queue",
            format!(
                "max queued {} (boards), max waiting {}, max position {}",
                self.max_queued, self.max_waiting, self.max_position
            ),
        );
        s.line("visitor → agent", flow_line(&self.visitor_to_agent));
        s.line("agent → visitor", flow_line(&self.agent_to_visitor));
        s.line("push to agent", self.to_agent_latency.human());
        s.line("answer round trip", self.answer_latency.human());
        s.line(
            "agents",
            format!(
                "{} ready, {} closes, {} boards, at most {} open each",
                self.agents_ready, self.closes_sent, self.boards, self.max_open_per_agent
            ),
        );
        s.line(
            "served in / drain",
            format!("{:.1} s / {:.2} s", self.served_secs, self.drain_secs),
        );
        s.relay_rss(
            "relay RSS (ready / end)",
            &[self.relay_rss_before_kib, self.relay_rss_after_kib],
        );
        s.cpu(&self.usage, "serving");
        s.errors(&self.errors);
        s.problems(&self.problems);
        s.finish()
    }

    fn failures(&self) -> Vec<String> {
        let mut f = Findings::new();
        let visitors = self.args.as_ref().map_or(0, |a| a.visitors as u64);
        f.count(self.lost, "messages lost");
        f.count(self.duplicates, "messages pushed twice");
        f.count(
            visitors.saturating_sub(self.visitors_served),
            "visitors not served before the deadline",
        );
        let unacked = self.visitor_to_agent.unacked + self.agent_to_visitor.unacked;
        f.count(unacked, "messages never stored (no 81)");
        if !self.agent_failures.is_empty() {
            f.push(format!(
                "agents not ready: {}",
                fmt_tally(&self.agent_failures)
            ));
        }
        if !self.errors.is_empty() {
            f.push(format!("errors: {}", fmt_tally(&self.errors)));
        }
        f.problems(&self.problems);
        f.into_vec()
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = Findings::new();
        w.relay_unmeasured(self.usage.relay_cpu_pct.is_some());
        w.count(self.requeued, "conversations went back to the queue");
        w.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_nearest_rank_in_ms() {
        let mut us: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        us.reverse();
        let w = Waits::of_us(&mut us);
        assert_eq!(
            (w.count, w.p50_ms, w.p90_ms, w.p99_ms, w.max_ms),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(w.mean_ms, 50.5);
        assert_eq!(Waits::of_us(&mut []), Waits::default());
    }
}
