//! The `chat` scenario's options.

use super::placement::Placement;
use crate::report::ser_secs;
use crate::{parse_duration, wire, Error};
use clap::Args;
use serde::Serialize;
use std::time::Duration;

/// Options of the `chat` scenario.
#[derive(Args, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatArgs {
    /// Number of sender→recipient pairs (2 users and 2 sockets each).
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Most messages a sender may have awaiting their 81.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Total offered messages per second across all senders (open loop);
    /// 0 sends as fast as the window allows (closed loop).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Measured period.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
    /// Period before the measurement, excluded from the statistics.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub warmup: Duration,
    /// Longest wait after the last send for outstanding 81s and pushes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub drain: Duration,
    /// Chat body size in bytes.
    #[arg(long, default_value_t = 32)]
    pub body_bytes: usize,
    /// Sessions opened concurrently before the run.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// WebSocket read buffer per connection, bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    pub read_buffer: usize,
    /// Which relay of `--url` each session is on: `spread` (round robin;
    /// (N−1)/N of the pairs cross relays), `cross` (pair p's sender on node
    /// p % N, its recipient on (p + 1) % N: every message crosses) or
    /// `same` (both on node p % N: none does).
    #[arg(long, value_enum, default_value_t = Placement::Spread)]
    pub placement: Placement,
    /// Survive the loss of a socket (a relay killed under load): reconnect
    /// to the next relay of `--url`, log in again, resend every message
    /// that has no 81 yet under the same clientMsgId, carry on.
    #[arg(long)]
    pub reconnect: bool,
    /// With `--reconnect`: how long a session may try before it gives up.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub reconnect_deadline: Duration,
}

impl ChatArgs {
    /// Refuses options a run cannot be carried out with.
    pub fn check(&self) -> Result<(), Error> {
        if self.pairs == 0 || self.window == 0 {
            return Err("--pairs and --window must be at least 1".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be positive".into());
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err("--rate must be a non-negative number".into());
        }
        if self.reconnect && self.reconnect_deadline.is_zero() {
            return Err("--reconnect-deadline must be positive".into());
        }
        wire::check_body_bytes(self.body_bytes)
    }

    /// Messages a pair is expected to exchange (to size its logs).
    pub fn expected_per_pair(&self) -> usize {
        match self.rate {
            r if r > 0.0 => {
                let secs = (self.warmup + self.duration).as_secs_f64();
                ((r / self.pairs as f64) * secs) as usize + 16
            }
            _ => 1024,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Small options for unit tests.
    pub fn args() -> ChatArgs {
        ChatArgs {
            pairs: 2,
            window: 8,
            rate: 0.0,
            duration: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            drain: Duration::from_secs(1),
            body_bytes: 10,
            connect_concurrency: 4,
            read_buffer: 4096,
            placement: Placement::Spread,
            reconnect: false,
            reconnect_deadline: Duration::from_secs(30),
        }
    }

    #[test]
    fn options_are_checked_and_size_the_logs() {
        assert!(args().check().is_ok());
        for bad in [
            ChatArgs { pairs: 0, ..args() },
            ChatArgs {
                window: 0,
                ..args()
            },
            ChatArgs {
                duration: Duration::ZERO,
                ..args()
            },
            ChatArgs {
                rate: -1.0,
                ..args()
            },
            ChatArgs {
                rate: f64::NAN,
                ..args()
            },
            ChatArgs {
                body_bytes: 0,
                ..args()
            },
            ChatArgs {
                reconnect: true,
                reconnect_deadline: Duration::ZERO,
                ..args()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert_eq!(args().expected_per_pair(), 1024);
        // 100 msg/s over 2 pairs for 3 s: 150 each, and some slack.
        let open = ChatArgs {
            rate: 100.0,
            ..args()
        };
        assert_eq!(open.expected_per_pair(), 166);
    }
}
