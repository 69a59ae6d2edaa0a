//! Results: derived figures, the two output forms, and the parts of a
//! report that every scenario builds alike.
//!
//! Every scenario produces a report that prints as a human-readable summary
//! and as exactly one JSON line (`{"scenario":…,"params":…,"results":…}`),
//! so figures can be pasted into `docs/benchmarks.md` and compared across
//! runs by scripts. A report is a `Serialize` struct (its fields are the
//! JSON results) that implements [`ScenarioReport`]; its human summary is
//! written with [`Summary`], its failures and warnings with [`Findings`].
//! Latency summaries are in [`latency`](crate::latency), the figures of the
//! message scenarios' recipients in
//! [`recipient::Deliveries`](crate::recipient::Deliveries), CPU use in
//! [`resources`](crate::resources).

use crate::resources::Usage;
use serde::Serialize;
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

/// `rate_limited=3, internal=1`, or `none`.
pub fn fmt_tally(t: &Tally) -> String {
    if t.is_empty() {
        return "none".into();
    }
    t.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Any serialisable value as JSON (the results and parameters of a report).
pub trait ToJson {
    /// `self` as a JSON value (`null` if it cannot be represented).
    fn to_json(&self) -> serde_json::Value;
}

impl<T: Serialize> ToJson for T {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// What every scenario's result offers to the output stage. The JSON
/// results are the report itself, serialised; the parameters are its
/// [`args`](Self::args).
pub trait ScenarioReport: ToJson {
    /// `"idle"`, `"chat"`, …
    fn scenario(&self) -> &'static str;
    /// The options the run used.
    fn args(&self) -> &dyn ToJson;
    /// The parameters the run used, as JSON.
    fn params(&self) -> serde_json::Value {
        self.args().to_json()
    }
    /// The measured figures, as JSON.
    fn results(&self) -> serde_json::Value {
        self.to_json()
    }
    /// The multi-line summary for a person (see [`Summary`]).
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

/// Serialises a duration option as seconds (for the parameters' JSON).
pub fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A report's human summary, a labelled line at a time
/// (`label ........ value`); the lines every scenario prints alike have
/// their own methods.
#[derive(Default)]
pub struct Summary(String);

impl Summary {
    /// An empty summary.
    pub fn new() -> Summary {
        Summary::default()
    }

    /// A labelled line.
    pub fn line(&mut self, label: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "  {label:<28} {value}");
    }

    /// Relay memory readings, `a / b / …` (`n/a` where not measured).
    pub fn relay_rss(&mut self, label: &str, kib: &[Option<u64>]) {
        let v: Vec<String> = kib.iter().map(|&k| fmt_mib(k)).collect();
        self.line(label, v.join(" / "));
    }

    /// The relay's and the generator's CPU during `phase`; with several
    /// relay processes, each one's CPU and memory too.
    pub fn cpu(&mut self, usage: &Usage, phase: &str) {
        self.line(
            "CPU relay / loadgen",
            format!(
                "{} / {} of one core ({phase})",
                fmt_pct(usage.relay_cpu_pct),
                fmt_pct(usage.loadgen_cpu_pct)
            ),
        );
        if usage.relay_processes.len() > 1 {
            for p in &usage.relay_processes {
                self.line(
                    &format!("  relay pid {}", p.pid),
                    format!(
                        "CPU {}, RSS {} → {}",
                        fmt_pct(p.cpu_pct),
                        fmt_mib(p.rss_start_kib),
                        fmt_mib(p.rss_end_kib)
                    ),
                );
            }
        }
    }

    /// Type 0 errors by code.
    pub fn errors(&mut self, errors: &Tally) {
        self.line("errors (type 0)", fmt_tally(errors));
    }

    /// Unexpected events by kind.
    pub fn problems(&mut self, problems: &Tally) {
        self.line("problems", fmt_tally(problems));
    }

    /// The text so far, for what is not a labelled line (a table).
    pub fn text(&mut self) -> &mut String {
        &mut self.0
    }

    /// The finished summary.
    pub fn finish(self) -> String {
        self.0
    }
}

/// A report's failures or warnings, in the order they are found.
#[derive(Debug, Default)]
pub struct Findings(Vec<String>);

impl Findings {
    /// An empty list.
    pub fn new() -> Findings {
        Findings::default()
    }

    /// `"{n} {what}"` when `n` is not zero.
    pub fn count(&mut self, n: u64, what: &str) {
        if n > 0 {
            self.0.push(format!("{n} {what}"));
        }
    }

    /// Adds one.
    pub fn push(&mut self, finding: impl Into<String>) {
        self.0.push(finding.into());
    }

    /// Messages the relay refused as rate limited, when there were any.
    pub fn rate_limited(&mut self, errors: &Tally) {
        if let Some(n) = errors.get("rate_limited") {
            self.push(format!(
                "{n} messages were rate limited: start the relay with a higher --rate-limit/--rate-burst"
            ));
        }
    }

    /// Unexpected events, when there were any.
    pub fn problems(&mut self, problems: &Tally) {
        if !problems.is_empty() {
            self.push(format!("problems: {}", fmt_tally(problems)));
        }
    }

    /// That the relay's memory and CPU were not read (no `--relay-pid`).
    pub fn relay_unmeasured(&mut self, measured: bool) {
        if !measured {
            self.push("relay memory and CPU not measured (pass --relay-pid)");
        }
    }

    /// The list.
    pub fn into_vec(self) -> Vec<String> {
        self.0
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
    fn shared_lines_and_findings() {
        assert_eq!(fmt_mib(Some(1536)), "1.5 MiB");
        assert_eq!(fmt_mib(None), "n/a");
        assert_eq!(fmt_pct(Some(12.34)), "12.3 %");
        assert_eq!(fmt_pct(None), "n/a");

        let mut problems = Tally::new();
        tally(&mut problems, "closed", 2);
        let mut s = Summary::new();
        s.line("label", 7);
        s.relay_rss("relay RSS", &[Some(1024), None]);
        s.cpu(
            &Usage {
                relay_cpu_pct: Some(12.5),
                loadgen_cpu_pct: None,
                relay_processes: Vec::new(),
            },
            "hold",
        );
        s.errors(&Tally::new());
        s.problems(&problems);
        s.text().push_str("table\n");
        assert_eq!(
            s.finish(),
            "  label                        7\n\
             \x20 relay RSS                    1.0 MiB / n/a\n\
             \x20 CPU relay / loadgen          12.5 % / n/a of one core (hold)\n\
             \x20 errors (type 0)              none\n\
             \x20 problems                     closed=2\n\
             table\n"
        );

        let mut f = Findings::new();
        f.count(0, "lost");
        f.problems(&Tally::new());
        f.relay_unmeasured(true);
        assert!(f.into_vec().is_empty());
        let mut f = Findings::new();
        f.count(3, "lost");
        f.rate_limited(&Tally::new());
        f.problems(&problems);
        f.relay_unmeasured(false);
        f.push("nothing was delivered");
        let mut errors = Tally::new();
        tally(&mut errors, "rate_limited", 4);
        f.rate_limited(&errors);
        assert_eq!(
            f.into_vec(),
            [
                "3 lost",
                "problems: closed=2",
                "relay memory and CPU not measured (pass --relay-pid)",
                "nothing was delivered",
                "4 messages were rate limited: start the relay with a higher --rate-limit/--rate-burst",
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

    #[derive(Serialize)]
    struct Fake {
        lost: Vec<String>,
        #[serde(skip)]
        args: serde_json::Value,
    }
    impl ScenarioReport for Fake {
        fn scenario(&self) -> &'static str {
            "fake"
        }
        fn args(&self) -> &dyn ToJson {
            &self.args
        }
        fn human(&self) -> String {
            "  body\n".into()
        }
        fn failures(&self) -> Vec<String> {
            self.lost.clone()
        }
    }

    fn fake(lost: &[&str]) -> Fake {
        Fake {
            lost: lost.iter().map(|s| s.to_string()).collect(),
            args: serde_json::json!({"n": 1}),
        }
    }

    #[test]
    fn output_forms() {
        let ok = fake(&[]);
        let line = json_line("abc", 7, &ok);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["scenario"], "fake");
        assert_eq!(v["runId"], "abc");
        assert_eq!(v["params"]["n"], 1);
        assert_eq!(v["failures"].as_array().unwrap().len(), 0);
        assert_eq!(v["results"]["lost"].as_array().unwrap().len(), 0);
        assert!(human_text("abc", &ok).ends_with("verdict: PASS\n"));
        let bad = fake(&["3 messages lost"]);
        let text = human_text("abc", &bad);
        assert!(text.contains("FAIL: 3 messages lost"));
        assert!(text.ends_with("verdict: FAIL\n"));
    }
}
