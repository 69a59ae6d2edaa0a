//! Results: derived figures and the two output forms (latency summaries
//! are in [`latency`](crate::latency)).
//!
//! Every scenario produces a report that prints as a human-readable summary
//! and as exactly one JSON line (`{"scenario":…,"params":…,"results":…}`),
//! so figures can be pasted into `docs/benchmarks.md` and compared across
//! runs by scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// A duration in µs, printed with a unit a person can read at a glance.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.3} s", us as f64 / 1e6)
    }
}

/// Events per second over `over`; 0 for an empty interval.
pub fn per_second(count: u64, over: Duration) -> f64 {
    let s = over.as_secs_f64();
    if s > 0.0 {
        count as f64 / s
    } else {
        0.0
    }
}

/// Memory growth per connection, in KiB (may be negative if the relay gave
/// memory back); `None` without connections.
pub fn kib_per_connection(before_kib: u64, after_kib: u64, connections: u64) -> Option<f64> {
    (connections > 0).then(|| (after_kib as f64 - before_kib as f64) / connections as f64)
}

/// CPU use as a percentage of one core: `ticks` of CPU time (utime+stime)
/// consumed during `wall`, with `ticks_per_sec` from `sysconf(_SC_CLK_TCK)`.
/// 200 % means two cores were busy the whole time.
pub fn cpu_percent(ticks: u64, ticks_per_sec: u64, wall: Duration) -> f64 {
    let w = wall.as_secs_f64();
    if w <= 0.0 || ticks_per_sec == 0 {
        return 0.0;
    }
    ticks as f64 / ticks_per_sec as f64 / w * 100.0
}

/// Rounds to `digits` decimal places, for tidy JSON.
pub fn round_to(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Counts by label (error codes, close reasons, …). Sorted for stable output.
pub type Tally = BTreeMap<String, u64>;

/// Adds `n` to `label` in `t`.
pub fn tally(t: &mut Tally, label: &str, n: u64) {
    if let Some(v) = t.get_mut(label) {
        *v += n;
    } else {
        t.insert(label.to_string(), n);
    }
}

/// Merges `from` into `into`.
pub fn merge_tally(into: &mut Tally, from: &Tally) {
    for (k, v) in from {
        tally(into, k, *v);
    }
}

/// `rate_limited=3, internal=1`, or `none`.
/// A relay memory reading in MiB, or "n/a" when it was not measured.
pub fn fmt_mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".to_string(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0)
    })
}

/// A CPU reading in percent of one core, or "n/a" when it was not measured.
pub fn fmt_pct(cpu: Option<f64>) -> String {
    cpu.map_or("n/a".to_string(), |c| format!("{c:.1} %"))
}

/// What the message scenarios (chat, fanout) have to say beyond their own
/// warnings: unanswered ACKs, backlog from earlier runs, problems, and a
/// relay that was not measured.
pub fn delivery_warnings(
    w: &mut Vec<String>,
    acks_sent: u64,
    ack_resps: u64,
    stale: u64,
    problems: &Tally,
    relay_measured: bool,
) {
    if ack_resps < acks_sent {
        w.push(format!("{} ACKs got no 91", acks_sent - ack_resps));
    }
    if stale > 0 {
        w.push(format!(
            "{stale} pushes left over from earlier runs on these accounts were acked and ignored"
        ));
    }
    if !problems.is_empty() {
        w.push(format!("problems: {}", fmt_tally(problems)));
    }
    if !relay_measured {
        w.push("relay memory and CPU not measured (pass --relay-pid)".into());
    }
}

pub fn fmt_tally(t: &Tally) -> String {
    if t.is_empty() {
        return "none".into();
    }
    t.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What every scenario's result offers to the output stage.
pub trait ScenarioReport {
    /// `"idle"`, `"chat"`, …
    fn scenario(&self) -> &'static str;
    /// The parameters the run used, as JSON.
    fn params(&self) -> serde_json::Value;
    /// The measured figures, as JSON.
    fn results(&self) -> serde_json::Value;
    /// The multi-line summary for a person.
    fn human(&self) -> String;
    /// Why the run counts as failed (lost, duplicated or reordered
    /// messages, …); empty when it passed. A non-empty list makes the
    /// process exit non-zero so scripts notice.
    fn failures(&self) -> Vec<String>;
    /// Things a reader should know that are not failures (rate limiting,
    /// a throttling window, …).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The single JSON line for a finished run.
pub fn json_line(run_id: &str, unix_ms: u64, r: &dyn ScenarioReport) -> String {
    serde_json::json!({
        "scenario": r.scenario(),
        "runId": run_id,
        "loadgenVersion": env!("CARGO_PKG_VERSION"),
        "unixMs": unix_ms,
        "params": r.params(),
        "results": r.results(),
        "failures": r.failures(),
        "warnings": r.warnings(),
    })
    .to_string()
}

/// The full human summary: the scenario's own lines plus warnings and the
/// verdict.
pub fn human_text(run_id: &str, r: &dyn ScenarioReport) -> String {
    let mut s = format!("== ferrochat loadgen: {} (run {run_id}) ==\n", r.scenario());
    s.push_str(&r.human());
    for w in r.warnings() {
        let _ = writeln!(s, "warning: {w}");
    }
    let f = r.failures();
    if f.is_empty() {
        s.push_str("verdict: PASS\n");
    } else {
        for x in &f {
            let _ = writeln!(s, "FAIL: {x}");
        }
        s.push_str("verdict: FAIL\n");
    }
    s
}

/// A labelled line for the human summary: `label ........ value`.
pub fn line(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "  {label:<28} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_figures() {
        assert_eq!(per_second(500, Duration::from_secs(2)), 250.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
        assert_eq!(kib_per_connection(1000, 21_000, 1000), Some(20.0));
        assert_eq!(kib_per_connection(2000, 1000, 100), Some(-10.0));
        assert_eq!(kib_per_connection(1, 2, 0), None);
        // 150 ticks at 100 Hz over 3 s = 0.5 core.
        assert_eq!(cpu_percent(150, 100, Duration::from_secs(3)), 50.0);
        assert_eq!(cpu_percent(150, 100, Duration::ZERO), 0.0);
        assert_eq!(round_to(1.23456, 2), 1.23);
    }

    #[test]
    fn human_units() {
        assert_eq!(fmt_us(999), "999 µs");
        assert_eq!(fmt_us(1_500), "1.50 ms");
        assert_eq!(fmt_us(2_500_000), "2.500 s");
    }

    #[test]
    fn shared_formats_and_delivery_warnings() {
        assert_eq!(fmt_mib(Some(1536)), "1.5 MiB");
        assert_eq!(fmt_mib(None), "n/a");
        assert_eq!(fmt_pct(Some(12.34)), "12.3 %");
        assert_eq!(fmt_pct(None), "n/a");

        let mut w = Vec::new();
        delivery_warnings(&mut w, 10, 10, 0, &Tally::new(), true);
        assert!(w.is_empty(), "{w:?}");

        let mut problems = Tally::new();
        tally(&mut problems, "closed", 2);
        delivery_warnings(&mut w, 10, 7, 4, &problems, false);
        assert_eq!(
            w,
            [
                "3 ACKs got no 91",
                "4 pushes left over from earlier runs on these accounts were acked and ignored",
                "problems: closed=2",
                "relay memory and CPU not measured (pass --relay-pid)",
            ]
        );
    }

    #[test]
    fn tallies_merge_and_print_sorted() {
        let mut a = Tally::new();
        tally(&mut a, "rate_limited", 2);
        tally(&mut a, "internal", 1);
        let mut b = Tally::new();
        tally(&mut b, "rate_limited", 3);
        merge_tally(&mut b, &a);
        assert_eq!(fmt_tally(&b), "internal=1, rate_limited=5");
        assert_eq!(fmt_tally(&Tally::new()), "none");
    }

    struct Fake(Vec<String>);
    impl ScenarioReport for Fake {
        fn scenario(&self) -> &'static str {
            "fake"
        }
        fn params(&self) -> serde_json::Value {
            serde_json::json!({"n": 1})
        }
        fn results(&self) -> serde_json::Value {
            serde_json::json!({"lost": self.0.len()})
        }
        fn human(&self) -> String {
            "  body\n".into()
        }
        fn failures(&self) -> Vec<String> {
            self.0.clone()
        }
    }

    #[test]
    fn output_forms() {
        let ok = Fake(vec![]);
        let line = json_line("abc", 7, &ok);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["scenario"], "fake");
        assert_eq!(v["runId"], "abc");
        assert_eq!(v["params"]["n"], 1);
        assert_eq!(v["failures"].as_array().unwrap().len(), 0);
        assert!(human_text("abc", &ok).ends_with("verdict: PASS\n"));
        let bad = Fake(vec!["3 messages lost".into()]);
        let text = human_text("abc", &bad);
        assert!(text.contains("FAIL: 3 messages lost"));
        assert!(text.ends_with("verdict: FAIL\n"));
    }
}
