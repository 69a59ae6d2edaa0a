//! CPU priority of the threads off the answering path.
//!
//! On this 2-core VM the indexer's bursts (a few hundred inserts at a
//! time, and once a second a commit writing ~1,000 pages) kept a CPU for
//! up to 5 ms: at nice 10 the scheduler lets a thread that has just started
//! keep its CPU for its slice, whatever its weight, so a woken tokio worker
//! or the front waited behind it. That was most of the p99 at 10,000
//! msg/s (docs/benchmarks.md, "Seventh round"). A `SCHED_IDLE` thread is
//! preempted as soon as any normal thread wakes, and its CPU counts as idle
//! when the scheduler places a waking thread.
//!
//! But whoever waits for the indexer (a login's token and backlog, a group
//! change, a history read) must not wait behind a thread that only runs on
//! idle CPU: at nice 19 it starved next to one busy process, and requests
//! took seconds. So the indexer is at `SCHED_IDLE` only while nobody waits
//! and it keeps up: whoever hands it urgent work, and the front whenever it
//! finds the indexer more than a gathering behind the log, first puts it
//! back to nice 10 ([`IndexerPriority::urgent`]), and it goes back to
//! `SCHED_IDLE` once it has taken all of that ([`IndexerPriority::served`]).
//! Without the second condition a saturated relay let the log fill, then
//! stopped until the indexer caught up (a median of 55.7k msg/s against
//! 61.1k at nice 10; 70.4k with it).
//!
//! Leaving `SCHED_IDLE` needs `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows
//! nice 10 (systemd: `LimitNICE=10`). Without either the indexer simply
//! stays at nice 10, as before; a probe at start decides.

use parking_lot::Mutex;

/// Nice level of the indexer whenever it is not at `SCHED_IDLE`: it still
/// gets ~10 % of a CPU against one busy thread.
const INDEXER_NICE: i32 = 10;
/// Nice level of the checkpointer if `SCHED_IDLE` is refused.
const CHECKPOINTER_NICE: i32 = 19;

/// The indexer's priority, shared by the indexer and those who hand it work.
pub(super) struct IndexerPriority {
    /// Whether the indexer can leave `SCHED_IDLE` again (probed at start).
    reversible: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The indexer's thread id, once it runs.
    tid: Option<libc::pid_t>,
    /// Urgent commands handed over and not yet answered.
    pending: u64,
    /// Whether the indexer is at `SCHED_IDLE` now.
    idle: bool,
}

impl IndexerPriority {
    /// Probes, on a throwaway thread, whether a thread can go to
    /// `SCHED_IDLE` and come back.
    pub fn probe() -> IndexerPriority {
        let reversible = std::thread::spawn(|| {
            set_nice(0, INDEXER_NICE).is_ok()
                && set_idle(0, true).is_ok()
                && set_idle(0, false).is_ok()
        })
        .join()
        .unwrap_or(false);
        IndexerPriority {
            reversible,
            state: Mutex::new(State::default()),
        }
    }

    /// Called by the indexer thread as it starts.
    pub fn start(&self) {
        let tid = gettid();
        if let Err(e) = set_nice(tid, INDEXER_NICE) {
            tracing::debug!(error = %e, "could not lower the indexer's priority");
        }
        let mut s = self.state.lock();
        s.tid = Some(tid);
        if self.reversible && s.pending == 0 {
            s.idle = set_idle(tid, true).is_ok();
        }
        tracing::info!(
            idle_when_quiet = self.reversible,
            "SQLite indexer priority: nice {INDEXER_NICE}{}",
            if self.reversible {
                ", SCHED_IDLE while nobody waits"
            } else {
                " (SCHED_IDLE needs CAP_SYS_NICE or RLIMIT_NICE >= 10 to be left again)"
            }
        );
    }

    /// Called before handing the indexer a command someone waits for, or
    /// one it is behind on.
    pub fn urgent(&self) {
        if !self.reversible {
            return;
        }
        let mut s = self.state.lock();
        s.pending += 1;
        if let (true, Some(tid)) = (s.idle, s.tid) {
            match set_idle(tid, false) {
                Ok(()) => s.idle = false,
                Err(e) => tracing::warn!(error = %e, "could not raise the indexer's priority"),
            }
        }
    }

    /// Called by the indexer once it has taken `n` urgent commands (and
    /// answered whoever waits for them).
    pub fn served(&self, n: u64) {
        if !self.reversible || n == 0 {
            return;
        }
        let mut s = self.state.lock();
        s.pending = s.pending.saturating_sub(n);
        if let (0, false, Some(tid)) = (s.pending, s.idle, s.tid) {
            s.idle = set_idle(tid, true).is_ok();
        }
    }
}

/// Puts the calling thread at `SCHED_IDLE` for good (the checkpointer:
/// nobody waits for it), or at nice 19 if that is refused.
pub(super) fn idle_forever() {
    let tid = gettid();
    if set_idle(tid, true).is_err() {
        if let Err(e) = set_nice(tid, CHECKPOINTER_NICE) {
            tracing::debug!(error = %e, "could not lower a thread's priority");
        }
    }
}

fn gettid() -> libc::pid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::gettid() }
}

/// Sets thread `tid` (0: the caller) to `SCHED_IDLE`, or back to
/// `SCHED_OTHER` at the nice level it had.
fn set_idle(tid: libc::pid_t, idle: bool) -> std::io::Result<()> {
    let policy = if idle {
        libc::SCHED_IDLE
    } else {
        libc::SCHED_OTHER
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` outlives the call; the kernel only reads it.
    os_result(unsafe { libc::sched_setscheduler(tid, policy, &param) })
}

fn set_nice(tid: libc::pid_t, nice: i32) -> std::io::Result<()> {
    // SAFETY: plain syscall, no memory passed.
    os_result(unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) })
}

/// A syscall's return value (0 on success) as a `Result`.
fn os_result(r: libc::c_int) -> std::io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(tid: libc::pid_t) -> i32 {
        // SAFETY: plain syscall.
        unsafe { libc::sched_getscheduler(tid) }
    }

    /// The indexer is at `SCHED_IDLE` only while no urgent command is
    /// outstanding, wherever that can be undone; elsewhere it stays at
    /// `SCHED_OTHER`, nice 10.
    #[test]
    fn the_indexer_leaves_sched_idle_while_someone_waits() {
        let prio = std::sync::Arc::new(IndexerPriority::probe());
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let p = prio.clone();
        let indexer = std::thread::spawn(move || {
            p.start();
            tid_tx.send(gettid()).unwrap();
            // Stays alive until the test is done with it.
            let _ = go_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        // SAFETY: plain syscall.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
        assert_eq!(nice, INDEXER_NICE);
        if prio.reversible {
            assert_eq!(policy(tid), libc::SCHED_IDLE, "quiet: idle");
            prio.urgent();
            prio.urgent();
            assert_eq!(policy(tid), libc::SCHED_OTHER, "someone waits");
            prio.served(1);
            assert_eq!(policy(tid), libc::SCHED_OTHER, "one still waits");
            prio.served(1);
            assert_eq!(policy(tid), libc::SCHED_IDLE, "all answered");
        } else {
            assert_eq!(policy(tid), libc::SCHED_OTHER);
            prio.urgent();
            prio.served(1);
            assert_eq!(policy(tid), libc::SCHED_OTHER);
        }
        go_tx.send(()).unwrap();
        indexer.join().unwrap();
    }
}
