//! What a phase of a run cost: the relay's and the generator's CPU, and
//! their memory at either end, measured alike by every scenario (idle: the
//! hold; chat: the measured period; fan-out: the send phase).

use crate::report::{cpu_percent, round_to};
use crate::sys::{self, ProcSample};
use crate::Ctx;
use serde::Serialize;
use std::time::{Duration, Instant};

/// CPU use over a phase, as every report carries it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Relay CPU during the phase, percent of one core; with several
    /// `--relay-pid`s their sum (left out when one of them could not be
    /// read at either end).
    pub relay_cpu_pct: Option<f64>,
    /// The generator's CPU during the phase, percent of one core.
    pub loadgen_cpu_pct: Option<f64>,
    /// Every `--relay-pid` on its own, in the order given.
    pub relay_processes: Vec<RelayProcess>,
}

/// One relay process over a phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayProcess {
    /// Its process id.
    pub pid: u32,
    /// CPU during the phase, percent of one core.
    pub cpu_pct: Option<f64>,
    /// VmRSS at the start of the phase, KiB.
    pub rss_start_kib: Option<u64>,
    /// VmRSS at the end of the phase, KiB.
    pub rss_end_kib: Option<u64>,
}

impl Usage {
    /// From readings at the start and the end of a phase of `wall`, with
    /// `ticks_per_sec` the unit of the CPU times: `relay` has one reading
    /// per process of `pids` at either end. A figure whose two readings are
    /// not both there is left out.
    pub fn between(
        pids: &[u32],
        relay: [&[Option<ProcSample>]; 2],
        own: [Option<ProcSample>; 2],
        wall: Duration,
        ticks_per_sec: u64,
    ) -> Usage {
        let pct = |[a, b]: [Option<ProcSample>; 2]| {
            let ticks = b?.cpu_ticks.saturating_sub(a?.cpu_ticks);
            Some(round_to(cpu_percent(ticks, ticks_per_sec, wall), 1))
        };
        let reading = |end: &[Option<ProcSample>], i: usize| end.get(i).copied().flatten();
        let relay_processes = (pids.iter().enumerate())
            .map(|(i, &pid)| {
                let (a, b) = (reading(relay[0], i), reading(relay[1], i));
                RelayProcess {
                    pid,
                    cpu_pct: pct([a, b]),
                    rss_start_kib: a.map(|s| s.rss_kib),
                    rss_end_kib: b.map(|s| s.rss_kib),
                }
            })
            .collect();
        Usage {
            relay_cpu_pct: pct([ProcSample::sum(relay[0]), ProcSample::sum(relay[1])]),
            loadgen_cpu_pct: pct(own),
            relay_processes,
        }
    }
}

/// A phase being measured: the readings taken at its start.
pub struct Phase {
    relay: Vec<Option<ProcSample>>,
    own: Option<ProcSample>,
    started: Instant,
}

/// A measured phase.
pub struct PhaseEnd {
    /// How long it lasted.
    pub wall: Duration,
    /// The relays at its start (with `--relay-pid`; summed over them).
    pub relay_start: Option<ProcSample>,
    /// The relays at its end (summed).
    pub relay_end: Option<ProcSample>,
    /// The generator at its end.
    pub own_end: Option<ProcSample>,
    /// CPU during it.
    pub usage: Usage,
}

impl Phase {
    /// Reads the relays (see [`Ctx::relay_samples`]) and this process, and
    /// starts the phase's wall clock.
    pub fn start(ctx: &Ctx) -> Phase {
        let relay = ctx.relay_samples();
        let own = ProcSample::read_self().ok();
        Phase {
            relay,
            own,
            started: Instant::now(),
        }
    }

    /// Ends the phase: its length, the readings at its end, the CPU used.
    pub fn end(self, ctx: &Ctx) -> PhaseEnd {
        let wall = self.started.elapsed();
        let relay_end = ctx.relay_samples();
        let own_end = ProcSample::read_self().ok();
        PhaseEnd {
            wall,
            relay_start: ProcSample::sum(&self.relay),
            relay_end: ProcSample::sum(&relay_end),
            own_end,
            usage: Usage::between(
                &ctx.common.relay_pid,
                [&self.relay, &relay_end],
                [self.own, own_end],
                wall,
                sys::clock_ticks_per_sec(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_cpu_per_wall_time_or_left_out() {
        let at = |cpu_ticks| {
            Some(ProcSample {
                rss_kib: 1,
                cpu_ticks,
            })
        };
        // 150 ticks at 100 Hz over 3 s: half a core; 10 ticks: 3.3 %.
        let u = Usage::between(
            &[7],
            [&[at(50)], &[at(200)]],
            [at(0), at(10)],
            Duration::from_secs(3),
            100,
        );
        assert_eq!(
            (u.relay_cpu_pct, u.loadgen_cpu_pct),
            (Some(50.0), Some(3.3))
        );
        assert_eq!(u.relay_processes[0].cpu_pct, Some(50.0));
        let u = Usage::between(
            &[7],
            [&[None], &[at(200)]],
            [at(0), None],
            Duration::from_secs(3),
            100,
        );
        assert_eq!((u.relay_cpu_pct, u.loadgen_cpu_pct), (None, None));
        assert_eq!(u.relay_processes[0].rss_end_kib, Some(1));
        let v = serde_json::to_value(Usage::between(
            &[],
            [&[], &[]],
            [None, None],
            Duration::from_secs(1),
            100,
        ))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"relayCpuPct": null, "loadgenCpuPct": null, "relayProcesses": []})
        );
    }

    #[test]
    fn several_relays_are_summed_and_kept_apart() {
        let at = |rss_kib, cpu_ticks| Some(ProcSample { rss_kib, cpu_ticks });
        // Two relays over 1 s at 100 Hz: one busy a whole core, the other
        // half; one of a third could not be read at the end.
        let u = Usage::between(
            &[10, 11],
            [&[at(100, 0), at(200, 50)], &[at(110, 100), at(220, 100)]],
            [None, None],
            Duration::from_secs(1),
            100,
        );
        assert_eq!(u.relay_cpu_pct, Some(150.0));
        let v = serde_json::to_value(&u).unwrap();
        assert_eq!(
            v["relayProcesses"],
            serde_json::json!([
                {"pid": 10, "cpuPct": 100.0, "rssStartKib": 100, "rssEndKib": 110},
                {"pid": 11, "cpuPct": 50.0, "rssStartKib": 200, "rssEndKib": 220},
            ])
        );
        let u = Usage::between(
            &[10, 11],
            [&[at(100, 0), at(200, 50)], &[at(110, 100), None]],
            [None, None],
            Duration::from_secs(1),
            100,
        );
        assert_eq!(
            u.relay_cpu_pct, None,
            "a sum without one relay is not the sum"
        );
        assert_eq!(u.relay_processes[0].cpu_pct, Some(100.0));
    }
}
