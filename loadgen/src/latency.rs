//! Latency distributions: histograms for the hot path (chat), exact
//! percentiles for sample sets small enough to keep (fan-out), and the one
//! summary both report. All latencies are integers in microseconds.

use crate::report::fmt_us;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency a histogram tracks: one hour, in µs. Larger values are
/// clamped (a message that late is a failure anyway).
pub const MAX_TRACKED_US: u64 = 3_600_000_000;

/// A latency histogram with microsecond resolution and 3 significant digits
/// (0.1 % relative error), the precision the benchmarks are quoted at.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("valid histogram bounds")
}

/// Records `us` into `h`, clamping to the tracked range.
#[inline]
pub fn record_us(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(1));
}

/// The per-mille percentile of `sorted` (ascending, not empty) by nearest
/// rank: the smallest sample with at least that share of all samples at or
/// below it.
pub fn nearest_rank(sorted: &[u64], per_mille: u64) -> u64 {
    let n = sorted.len() as u64;
    // ceil(n × per_mille / 1000), at least 1: the rank, 1-based.
    sorted[((n * per_mille).div_ceil(1000).max(1) - 1) as usize]
}

/// Percentiles of one latency distribution, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest sample.
    pub max_us: u64,
    /// Arithmetic mean.
    pub mean_us: u64,
}

impl LatencySummary {
    /// Summarises a histogram; all zeros when it is empty.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean().round() as u64,
        }
    }

    /// Exact percentiles of `values` (sorted in place), by nearest rank:
    /// the pXX is the smallest sample with at least XX % of all samples at
    /// or below it. For sets small enough to keep (fan-out: one sample per
    /// member and message), where a histogram's rounding is not needed.
    pub fn of_values(values: &mut [u64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        let n = values.len() as u64;
        let at = |per_mille: u64| nearest_rank(values, per_mille);
        let sum: u128 = values.iter().map(|&v| v as u128).sum();
        LatencySummary {
            count: n,
            p50_us: at(500),
            p99_us: at(990),
            p999_us: at(999),
            max_us: values[values.len() - 1],
            mean_us: (sum as f64 / n as f64).round() as u64,
        }
    }

    /// `p50 1.20 ms, p99 3.40 ms, p99.9 …, max …` for the human summary.
    pub fn human(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {}, p99 {}, p99.9 {}, max {} (n={})",
            fmt_us(self.p50_us),
            fmt_us(self.p99_us),
            fmt_us(self.p999_us),
            fmt_us(self.max_us),
            self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            record_us(&mut h, v);
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 10_000);
        // 3 significant digits: within 0.1 %.
        assert!((4_995..=5_005).contains(&s.p50_us), "{s:?}");
        assert!((9_890..=9_910).contains(&s.p99_us), "{s:?}");
        assert!((9_980..=10_000).contains(&s.p999_us), "{s:?}");
        assert!((9_995..=10_010).contains(&s.max_us), "{s:?}");
        assert!((4_990..=5_010).contains(&s.mean_us), "{s:?}");
    }

    #[test]
    fn tail_percentiles_see_rare_outliers() {
        let mut h = new_histogram();
        for _ in 0..995 {
            record_us(&mut h, 100);
        }
        for _ in 0..5 {
            record_us(&mut h, 50_000);
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.p50_us, 100);
        assert_eq!(s.p99_us, 100);
        assert!(s.p999_us >= 49_950, "{s:?}");
    }

    #[test]
    fn exact_percentiles_by_nearest_rank() {
        // 1..=1000 in a scrambled order.
        let mut v: Vec<u64> = (0..1000u64).map(|i| (i * 617) % 1000 + 1).collect();
        let s = LatencySummary::of_values(&mut v);
        assert_eq!(
            (s.count, s.p50_us, s.p99_us, s.p999_us, s.max_us, s.mean_us),
            (1000, 500, 990, 999, 1000, 501)
        );
        // Ranks round up: of 10 samples the p99 and p99.9 are the largest.
        let mut ten: Vec<u64> = (1..=10).rev().collect();
        let s = LatencySummary::of_values(&mut ten);
        assert_eq!((s.p50_us, s.p99_us, s.p999_us, s.max_us), (5, 10, 10, 10));
        // One sample is every percentile.
        let s = LatencySummary::of_values(&mut [7]);
        assert_eq!(
            (s.count, s.p50_us, s.p999_us, s.max_us, s.mean_us),
            (1, 7, 7, 7, 7)
        );
        assert_eq!(
            LatencySummary::of_values(&mut []),
            LatencySummary::default()
        );
        // Two slow samples in 1,000 are the p99.9; one in 1,001 is not.
        let mut v = vec![100u64; 998];
        v.extend([9_000, 9_000]);
        assert_eq!(LatencySummary::of_values(&mut v).p999_us, 9_000);
        let mut v = vec![100u64; 1000];
        v.push(9_000);
        let s = LatencySummary::of_values(&mut v);
        assert_eq!((s.p999_us, s.max_us), (100, 9_000));
    }

    #[test]
    fn empty_and_clamped_histograms() {
        let mut h = new_histogram();
        assert_eq!(LatencySummary::of(&h), LatencySummary::default());
        assert_eq!(LatencySummary::of(&h).human(), "no samples");
        record_us(&mut h, 0);
        record_us(&mut h, u64::MAX);
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 2);
        assert!(s.max_us >= MAX_TRACKED_US && s.max_us <= MAX_TRACKED_US + MAX_TRACKED_US / 500);
        assert!(h.min() >= 1);
    }
}
