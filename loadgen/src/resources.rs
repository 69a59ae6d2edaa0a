//! What a phase of a run cost: the relay's and the generator's CPU, and
//! their memory at either end, measured alike by every scenario (idle: the
//! hold; chat: the measured period; fan-out: the send phase).

use crate::report::{cpu_percent, round_to};
use crate::sys::{self, ProcSample};
use crate::Ctx;
use serde::Serialize;
use std::time::{Duration, Instant};

/// CPU use over a phase, as every report carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Relay CPU during the phase, percent of one core.
    pub relay_cpu_pct: Option<f64>,
    /// The generator's CPU during the phase, percent of one core.
    pub loadgen_cpu_pct: Option<f64>,
}

impl Usage {
    /// From readings at the start and the end of a phase of `wall`, with
    /// `ticks_per_sec` the unit of the CPU times; a figure whose two
    /// readings are not both there is left out.
    pub fn between(
        relay: [Option<ProcSample>; 2],
        own: [Option<ProcSample>; 2],
        wall: Duration,
        ticks_per_sec: u64,
    ) -> Usage {
        let pct = |[a, b]: [Option<ProcSample>; 2]| {
            let ticks = b?.cpu_ticks.saturating_sub(a?.cpu_ticks);
            Some(round_to(cpu_percent(ticks, ticks_per_sec, wall), 1))
        };
        Usage {
            relay_cpu_pct: pct(relay),
            loadgen_cpu_pct: pct(own),
        }
    }
}

/// A phase being measured: the readings taken at its start.
pub struct Phase {
    relay: Option<ProcSample>,
    own: Option<ProcSample>,
    started: Instant,
}

/// A measured phase.
pub struct PhaseEnd {
    /// How long it lasted.
    pub wall: Duration,
    /// The relay at its start (with `--relay-pid`).
    pub relay_start: Option<ProcSample>,
    /// The relay at its end.
    pub relay_end: Option<ProcSample>,
    /// The generator at its end.
    pub own_end: Option<ProcSample>,
    /// CPU during it.
    pub usage: Usage,
}

impl Phase {
    /// Reads the relay (see [`Ctx::relay_sample`]) and this process, and
    /// starts the phase's wall clock.
    pub fn start(ctx: &Ctx) -> Phase {
        let relay = ctx.relay_sample();
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
        let relay_end = ctx.relay_sample();
        let own_end = ProcSample::read_self().ok();
        PhaseEnd {
            wall,
            relay_start: self.relay,
            relay_end,
            own_end,
            usage: Usage::between(
                [self.relay, relay_end],
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
            [at(50), at(200)],
            [at(0), at(10)],
            Duration::from_secs(3),
            100,
        );
        assert_eq!(
            (u.relay_cpu_pct, u.loadgen_cpu_pct),
            (Some(50.0), Some(3.3))
        );
        let u = Usage::between([None, at(200)], [at(0), None], Duration::from_secs(3), 100);
        assert_eq!(u, Usage::default());
        let v = serde_json::to_value(Usage::between(
            [at(0), at(100)],
            [None, None],
            Duration::from_secs(1),
            100,
        ))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"relayCpuPct": 100.0, "loadgenCpuPct": null})
        );
    }
}
