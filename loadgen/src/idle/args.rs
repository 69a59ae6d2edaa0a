//! The `idle` scenario's options.

use crate::parse_duration;
use crate::report::ser_secs;
use clap::Args;
use serde::Serialize;
use std::time::Duration;

/// Options of the `idle` scenario.
#[derive(Args, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleArgs {
    /// Number of WebSocket connections to open and hold.
    #[arg(long, default_value_t = 20_000)]
    pub connections: usize,
    /// Connections per account (like browser tabs of one user).
    #[arg(long, default_value_t = 50)]
    pub tabs: usize,
    /// PING interval per connection (the protocol says 10 s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub ping_interval: Duration,
    /// How long to hold all connections open once established; relay CPU is
    /// measured over this period and its memory at the end of it.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub hold: Duration,
    /// Connection attempts (connect + handshake + LOGIN) in flight.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// WebSocket read buffer per connection, bytes. Small, so that the
    /// generator's own memory scales to tens of thousands of sockets.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
}
