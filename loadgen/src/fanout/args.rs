//! The `fanout` scenario's options and the limits they must respect.

use crate::report::ser_secs;
use crate::{parse_duration, wire, Error};
use clap::Args;
use serde::Serialize;
use std::time::Duration;

/// The relay's largest group, owner included (`docs/protocol.md`).
pub const MAX_GROUP_MEMBERS: usize = 20_000;

/// File descriptors needed besides one per socket (HTTP connections, the
/// sender, `/proc` reads, stdio).
const FD_MARGIN: u64 = 64;

/// Most messages per run: every member keeps one latency per message.
const MAX_MESSAGES: usize = 100_000;

/// Options of the `fanout` scenario.
#[derive(Args, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutArgs {
    /// Group members besides the sender, each a distinct user with one
    /// socket (at most 19,999; a member and the generator each need a file
    /// descriptor per socket).
    #[arg(long, default_value_t = 5000)]
    pub members: usize,
    /// Messages the sender posts to the group, one at a time.
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
    /// Time between two sends. A message never leaves before the previous
    /// one reached every member (or `--drain` passed since it was sent), so
    /// each fan-out is measured on its own.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub interval: Duration,
    /// Longest wait for one message to reach every member, and after the
    /// last one for stragglers and ACK answers. A member that has not got a
    /// message by the end of the final drain lost it.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub drain: Duration,
    /// Chat body size in bytes.
    #[arg(long, default_value_t = 32)]
    pub body_bytes: usize,
    /// Sessions opened concurrently before the run.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// `POST /api/groups/{id}/join` requests in flight.
    #[arg(long, default_value_t = 16)]
    pub join_concurrency: usize,
    /// Post to this existing public group instead of creating one; accounts
    /// that are not members yet join it (the report of a run names its
    /// group, so a rerun with `--accounts` can skip the joins).
    #[arg(long)]
    pub group: Option<i64>,
    /// WebSocket read buffer per connection, bytes.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
}

impl FanoutArgs {
    /// Refuses options a run cannot be carried out with.
    pub fn check(&self) -> Result<(), Error> {
        if self.members == 0 || self.members + 1 > MAX_GROUP_MEMBERS {
            return Err(format!(
                "--members must be 1..={} (the relay's largest group is {MAX_GROUP_MEMBERS}, sender included)",
                MAX_GROUP_MEMBERS - 1
            )
            .into());
        }
        if self.messages == 0 || self.messages > MAX_MESSAGES {
            return Err(format!("--messages must be 1..={MAX_MESSAGES}").into());
        }
        if self.drain.is_zero() {
            return Err("--drain must be positive".into());
        }
        wire::check_body_bytes(self.body_bytes)
    }

    /// Refuses a member count whose sockets this process, allowed `fds`
    /// file descriptors, cannot hold.
    pub fn check_fd_limit(&self, fds: u64) -> Result<(), Error> {
        let needed = self.members as u64 + 1 + FD_MARGIN;
        if needed > fds {
            return Err(format!(
                "--members {} needs about {needed} file descriptors but this process may hold {fds} (ulimit -n)",
                self.members
            )
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Small options for unit tests.
    pub fn args(members: usize, messages: usize) -> FanoutArgs {
        FanoutArgs {
            members,
            messages,
            interval: Duration::from_millis(10),
            drain: Duration::from_secs(1),
            body_bytes: 8,
            connect_concurrency: 4,
            join_concurrency: 4,
            group: None,
            read_buffer: 4096,
        }
    }

    #[test]
    fn options_are_checked() {
        assert!(args(5000, 20).check().is_ok());
        assert!(args(19_999, 1).check().is_ok());
        assert!(args(20_000, 1).check().is_err());
        assert!(args(0, 1).check().is_err());
        assert!(args(1, 0).check().is_err());
        assert!(args(1, MAX_MESSAGES + 1).check().is_err());
        let mut a = args(1, 1);
        a.body_bytes = 0;
        assert!(a.check().is_err());
        a.body_bytes = 1;
        a.drain = Duration::ZERO;
        assert!(a.check().is_err());
    }

    #[test]
    fn members_must_fit_the_file_descriptor_limit() {
        assert!(args(10_000, 1).check_fd_limit(20_000).is_ok());
        assert!(args(19_999, 1).check_fd_limit(20_000).is_err());
        assert!(args(1, 1).check_fd_limit(66).is_ok());
        assert!(args(1, 1).check_fd_limit(65).is_err());
    }
}
