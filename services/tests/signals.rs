//! A service starts with a clean signal state whatever its parent blocks
//! or ignores: `cargo xtask cluster` blocks SIGINT and SIGTERM (to
//! `sigwait` for Ctrl-C), and a relay that inherited that mask ignored
//! the SIGTERM asking it to stop.

mod common;

use common::{relay_args, relay_bin, Scratch};
use services::RelayProcess;
use std::time::{Duration, Instant};

/// A `/proc/PID/status` signal mask line, e.g. `SigBlk`.
fn mask(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap();
    u64::from_str_radix(line.trim(), 16).unwrap()
}

#[test]
fn children_get_no_blocked_signals_and_stop_on_sigterm() {
    let bin = relay_bin();
    // The first spawn of this binary creates the spawner thread, from this
    // thread, which now blocks what xtask blocks.
    // SAFETY: the set is a local initialised by sigemptyset before use;
    // pthread_sigmask changes only this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let scratch = Scratch::new("signals");
    let mut relay = RelayProcess::spawn(
        &bin,
        &relay_args(scratch.path()),
        &scratch.path().join("r.log"),
    )
    .unwrap();
    let pid = relay.pid().unwrap();
    // (SIGPIPE's reset is not checked here: a Rust program such as the
    // relay ignores SIGPIPE again at its own start.)
    assert_eq!(mask(pid, "SigBlk"), 0, "no signal blocked");
    let t = Instant::now();
    relay.stop().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "SIGTERM stopped it (took {:?})",
        t.elapsed()
    );
}
