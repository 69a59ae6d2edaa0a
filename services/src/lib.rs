//! Private instances of the services a ferrochat cluster runs on:
//! PostgreSQL, Redis, nginx and relay processes, each on a free loopback
//! port with its files under a directory of its own, installed from apt
//! when missing.
//!
//! Why a crate of its own: the relay's PostgreSQL and Redis tests, the
//! cluster tests and `cargo xtask cluster` all need the same thing (start a
//! real server, kill it like a crash, start it again on the same port), and
//! none of them should depend on whatever system instance a machine happens
//! to run. Nothing here talks to a system service; the system's packages
//! only provide the binaries.
//!
//! The API is blocking `std` (no async runtime): tests call it from
//! `#[test]`s or through `spawn_blocking`.
//!
//! Every long-lived child is spawned so that it dies with this process
//! (see `child`), in a process group of its own (a Ctrl-C in the terminal
//! reaches only the parent, which stops the services in order), and every
//! owner stops its processes on `Drop`: a test that panics, or a test
//! binary that is killed, leaves no server behind.
//!
//! This is a Linux tool: the modules that start processes are `unix`-only.

#[cfg(unix)]
mod child;
#[cfg(unix)]
pub mod cluster;
mod http;
pub mod install;
#[cfg(unix)]
pub mod nginx;
pub mod port;
#[cfg(unix)]
pub mod postgres;
#[cfg(unix)]
pub mod redis;
#[cfg(unix)]
pub mod relay;
mod wait;

#[cfg(unix)]
pub use cluster::{Backend, Cluster, ClusterConfig};
pub use install::Need;
#[cfg(unix)]
pub use nginx::Nginx;
#[cfg(unix)]
pub use postgres::Postgres;
#[cfg(unix)]
pub use redis::Redis;
#[cfg(unix)]
pub use relay::RelayProcess;
