//! The `desk` scenario's options.

use crate::report::ser_secs;
use crate::{parse_duration, Error};
use clap::Args;
use serde::Serialize;
use shared::desk::DESK_MAX_CAPACITY;
use std::time::Duration;

/// File descriptors needed besides one per socket.
const FD_MARGIN: u64 = 64;

/// Options of the `desk` scenario.
#[derive(Args, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeskArgs {
    /// Visitors, each created with `POST /api/visitors` at its arrival
    /// time (the relay needs `--visitor-limit` and `--visitor-message-limit` above this, or `off`).
    #[arg(long, default_value_t = 1000)]
    pub visitors: usize,
    /// Visitors arrive uniformly over this window.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub arrival: Duration,
    /// Agents: registered accounts granted the agent role with
    /// `<relay-bin> admin grant-agent NAME --db DB`.
    #[arg(long, default_value_t = 20)]
    pub agents: usize,
    /// Each agent's capacity (sent in a 132 after login).
    #[arg(long, default_value_t = 5)]
    pub capacity: u32,
    /// Messages each visitor sends, one after another, each answered by the
    /// agent before the next; the agent closes the conversation (135) once
    /// the last one is answered.
    #[arg(long, default_value_t = 3)]
    pub messages: u32,
    /// How long an agent waits before answering a message (0: at once).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub reply_delay: Duration,
    /// Every visitor must have had all their messages answered this long
    /// after the last arrival, or the run fails.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub serve_deadline: Duration,
    /// Longest wait after that for messages still on their way (ends early
    /// once every acknowledged message has arrived); one that has not
    /// arrived by then is lost.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub drain: Duration,
    /// The relay binary that grants the agent role.
    #[arg(long, default_value = "ferrochat-relay")]
    pub relay_bin: String,
    /// The relays' database URL, for `admin grant-agent` (on SQLite the
    /// running relay's admin socket is used; on PostgreSQL it writes
    /// directly).
    #[arg(long)]
    pub db: String,
    /// The agents are agents already (an `--accounts` file from an earlier
    /// run on the same database): skip the grant.
    #[arg(long)]
    pub no_grant: bool,
    /// Chat body size in bytes (visitors and agents alike).
    #[arg(long, default_value_t = 32)]
    pub body_bytes: usize,
}

impl DeskArgs {
    /// Refuses options a run cannot be carried out with.
    pub fn check(&self) -> Result<(), Error> {
        if self.visitors == 0 || self.agents == 0 {
            return Err("--visitors and --agents must be at least 1".into());
        }
        if !(1..=DESK_MAX_CAPACITY).contains(&self.capacity) {
            return Err(format!("--capacity must be 1..={DESK_MAX_CAPACITY}").into());
        }
        if self.messages == 0 {
            return Err("--messages must be at least 1".into());
        }
        if self.drain.is_zero() || self.serve_deadline.is_zero() {
            return Err("--drain and --serve-deadline must be positive".into());
        }
        crate::wire::check_body_bytes(self.body_bytes)
    }

    /// Refuses a run whose sockets (every visitor's and agent's, all open
    /// at the end) this process, allowed `fds` descriptors, cannot hold.
    pub fn check_fd_limit(&self, fds: u64) -> Result<(), Error> {
        let needed = (self.visitors + self.agents) as u64 + FD_MARGIN;
        if needed > fds {
            return Err(format!(
                "{needed} file descriptors needed but this process may hold {fds} (ulimit -n)"
            )
            .into());
        }
        Ok(())
    }

    /// When visitor `i` arrives, from the start of the arrivals.
    pub fn arrival_of(&self, i: usize) -> Duration {
        self.arrival.mul_f64(i as f64 / self.visitors as f64)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Small options for unit tests.
    pub fn args(visitors: usize, agents: usize) -> DeskArgs {
        DeskArgs {
            visitors,
            arrival: Duration::from_secs(2),
            agents,
            capacity: 2,
            messages: 3,
            reply_delay: Duration::ZERO,
            serve_deadline: Duration::from_secs(10),
            drain: Duration::from_secs(1),
            relay_bin: "ferrochat-relay".into(),
            db: "sqlite://x.db".into(),
            no_grant: false,
            body_bytes: 32,
        }
    }

    #[test]
    fn options_are_checked_and_arrivals_spread() {
        assert!(args(20, 2).check().is_ok());
        for bad in [
            args(0, 2),
            args(2, 0),
            DeskArgs {
                capacity: 0,
                ..args(2, 2)
            },
            DeskArgs {
                capacity: 101,
                ..args(2, 2)
            },
            DeskArgs {
                messages: 0,
                ..args(2, 2)
            },
            DeskArgs {
                body_bytes: 0,
                ..args(2, 2)
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        let a = args(20, 2);
        assert_eq!(a.arrival_of(0), Duration::ZERO);
        assert_eq!(a.arrival_of(10), Duration::from_secs(1));
        assert!(a.arrival_of(19) < a.arrival);
        assert!(a.check_fd_limit(100).is_ok());
        assert!(args(1000, 20).check_fd_limit(1000).is_err());
    }
}
