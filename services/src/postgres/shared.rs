//! One PostgreSQL per test process, shared by its tests.
//!
//! Starting a server takes about a second; a test binary with fifty tests
//! should pay that once. Each test makes its own database on it
//! ([`Postgres::create_database`]), so tests do not see each other's rows.
//!
//! A `static` is never dropped, so the server is stopped by an `atexit`
//! hook when the test binary exits (after the harness has run every test),
//! and its temporary directory removed. If the process is killed instead,
//! the kernel's parent-death signal stops the server (see `child`); only
//! the directory under the temp dir stays then.

use super::Postgres;
use crate::child;
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The shared server, or why it could not start (kept, so later tests
/// fail at once with the same reason instead of retrying a slow start).
static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

struct Shared {
    pg: Postgres,
    /// The temporary directory holding it, removed at exit.
    root: PathBuf,
}

impl Postgres {
    /// This process's shared server, started on first use under a new
    /// temporary directory. Panics if it cannot start (it is for tests);
    /// see [`try_shared`](Self::try_shared).
    ///
    /// It must not be stopped or killed (other tests use it), which
    /// `&'static Postgres` enforces: those methods take `&mut self`. Tests
    /// that crash PostgreSQL start their own with [`Postgres::start`].
    pub fn shared() -> &'static Postgres {
        Self::try_shared().unwrap_or_else(|e| panic!("the shared test PostgreSQL: {e}"))
    }

    /// [`shared`](Self::shared), as a `Result`.
    pub fn try_shared() -> io::Result<&'static Postgres> {
        let shared = SHARED.get_or_init(|| {
            let root = std::env::temp_dir().join(format!(
                "ferrochat-pg-{}-{}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ));
            match Postgres::start(root.join("pg")) {
                Ok(pg) => {
                    // SAFETY: `stop_shared` is an `extern "C" fn()` that
                    // never unwinds (it catches panics) and only touches
                    // the `SHARED` static, initialised by now.
                    unsafe { libc::atexit(stop_shared) };
                    Ok(Shared { pg, root })
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&root);
                    Err(e.to_string())
                }
            }
        });
        match shared {
            Ok(s) => Ok(&s.pg),
            Err(e) => Err(io::Error::other(e.clone())),
        }
    }
}

/// The `atexit` hook: immediate shutdown, wait for the processes, remove
/// the directory.
extern "C" fn stop_shared() {
    let _ = std::panic::catch_unwind(|| {
        let Some(Ok(s)) = SHARED.get() else {
            return;
        };
        if let Some(c) = &s.pg.child {
            let _ = child::signal(c.id(), libc::SIGQUIT);
        }
        let gone = crate::wait::until(Duration::from_secs(10), "the shared PostgreSQL", || {
            Ok(child::processes_in(&s.pg.data).is_empty().then_some(()))
        });
        if gone.is_err() {
            let _ = s.pg.kill_leftovers();
        }
        let _ = std::fs::remove_dir_all(&s.root);
    });
}
