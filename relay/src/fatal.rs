//! A thread the relay cannot do without that dies must take the process
//! with it.
//!
//! The storage threads hold answered chats that SQLite does not have yet.
//! If one of them died alone, the rest of the relay would go on answering:
//! the front would log chats that no indexer applies and later reuse the
//! log over them, or sessions would wait forever for a thread that is
//! gone. Instead the process stops at once, with the reason in the log,
//! and its supervisor restarts it; at start the commit log replays every
//! answered chat. Release builds keep unwinding (a bug one client triggers
//! in its own session task must not take everyone down); [`Guard`] turns a
//! panic in a thread or task that must not die alone into an abort, and
//! [`stop`] does the same for one that finds its peer gone or its loop
//! ended (see `docs/architecture.md`, "Storage").

/// Stops the process when dropped during a panic: hold one for the whole
/// life of a thread that must not die alone.
pub struct Guard {
    name: &'static str,
}

impl Guard {
    /// A guard for the thread called `name`.
    pub fn new(name: &'static str) -> Guard {
        Guard { name }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            stop(&format!("the {} thread panicked", self.name));
        }
    }
}

/// Logs why and stops the process with a failure status (SIGABRT), so no
/// further answer can leave it.
pub fn stop(why: &str) -> ! {
    tracing::error!(
        "{why}; stopping the relay so that its supervisor restarts it \
         (every answered message is replayed from the commit log at start)"
    );
    eprintln!("ferrochat relay: fatal: {why}");
    std::process::abort()
}

/// Test-only failure injection. In debug builds only,
/// `FERROCHAT_FAULT=<thread>:<body>` makes the named store thread panic
/// when it handles a chat whose body is `<body>` (`front`: while placing
/// it, before it is answered; `indexer`: while inserting it into SQLite,
/// after it was answered), or (`publish`) a cluster relay skip publishing
/// that chat. Release builds ignore the variable.
#[derive(Clone, Debug, Default)]
pub struct Fault(Option<(String, String)>);

impl Fault {
    /// Reads `FERROCHAT_FAULT` (debug builds only).
    pub fn from_env() -> Fault {
        #[cfg(debug_assertions)]
        if let Some((thread, body)) = std::env::var("FERROCHAT_FAULT")
            .ok()
            .as_deref()
            .and_then(|v| v.split_once(':'))
        {
            tracing::warn!(thread, body, "failure injection armed (FERROCHAT_FAULT)");
            return Fault(Some((thread.to_string(), body.to_string())));
        }
        Fault(None)
    }

    /// Panics if armed for this thread and body.
    pub fn check(&self, thread: &str, body: &str) {
        if self.armed(thread, body) {
            panic!("injected failure in the {thread} thread (FERROCHAT_FAULT)");
        }
    }

    /// Whether armed for this place and body (for faults that are not a
    /// panic: `publish:<body>` makes a cluster relay drop the event of a
    /// chat it stored, as if it had died between commit and publish).
    pub fn armed(&self, place: &str, body: &str) -> bool {
        matches!(&self.0, Some((t, b)) if t == place && b == body)
    }
}
