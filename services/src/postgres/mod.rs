//! A private PostgreSQL server: its own cluster under a directory, on a
//! free loopback port, that a test can stop, crash and start again.
//!
//! Layout of the directory given to [`Postgres::start`]:
//!
//! - `data/`: the cluster (`initdb` on first start; a later start of the
//!   same directory keeps its data);
//! - `postgres.log`: the server's output, appended by every run;
//! - `initdb.log`, and the Unix socket (`.s.PGSQL.<port>`).
//!
//! Clients connect over TCP as the trusted superuser `ferrochat`
//! ([`Postgres::url`]). The database `ferrochat` exists after `start`;
//! tests that share one server make one database each
//! ([`Postgres::create_database`]).

mod setup;
mod shared;

use crate::child::{self, Log};
use crate::port;
use setup::Owner;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

pub use setup::USER;

/// The database every server has after `start`.
pub const DATABASE: &str = "ferrochat";
/// How long a start may take (first start: `initdb` is separate and
/// quick; crash recovery after a kill can take a while on a busy disk).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the processes are killed.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Attempts at a first start, each on a fresh port, when another process
/// took the port between our pick and the server's bind.
const PORT_ATTEMPTS: usize = 3;

/// A running (or stopped, or killed) private PostgreSQL server.
#[derive(Debug)]
pub struct Postgres {
    /// The directory given to `start`, canonical.
    dir: PathBuf,
    /// `dir/data`.
    data: PathBuf,
    /// PostgreSQL's `bin` directory.
    bin: PathBuf,
    port: u16,
    owner: Option<Owner>,
    /// The postmaster, while we run one.
    child: Option<Child>,
    log: Log,
    /// `CREATE DATABASE`s one at a time (tests create theirs concurrently).
    creating: Mutex<()>,
}

impl Postgres {
    /// Installs PostgreSQL if missing, creates the cluster in `dir/data`
    /// unless it exists, starts the server on a free port and waits until
    /// it accepts connections; then makes sure database `ferrochat`
    /// exists.
    pub fn start(dir: impl AsRef<Path>) -> io::Result<Postgres> {
        crate::install::ensure(&[crate::Need::POSTGRES])?;
        let bin = crate::install::postgres_bin_dir()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no PostgreSQL installed"))?;
        let owner = setup::owner()?;
        let dir = setup::prepare_dir(dir.as_ref(), owner)?;
        let data = dir.join("data");
        setup::initdb(&bin, owner, &dir, &data)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (log, _, _) = Log::open(&dir.join("postgres.log"))?;
            let mut pg = Postgres {
                port: port::free_port()?,
                dir: dir.clone(),
                data: data.clone(),
                bin: bin.clone(),
                owner,
                child: None,
                log,
                creating: Mutex::new(()),
            };
            match pg.run() {
                Ok(()) => {
                    pg.ensure_database(DATABASE)?;
                    return Ok(pg);
                }
                Err(e) if attempt < PORT_ATTEMPTS && setup::port_taken(&pg.log.tail(50)) => {
                    drop(e);
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts the server again after [`stop`](Self::stop) or
    /// [`kill`](Self::kill): same directory, same port, same data (after
    /// crash recovery). Does nothing if it is running.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.pid().is_some() {
            return Ok(());
        }
        self.run()
    }

    /// Stops the server the clean way (fast shutdown: sessions are cut,
    /// everything committed is on disk), killing it if that takes longer
    /// than 30 s.
    pub fn stop(&mut self) -> io::Result<()> {
        self.halt(libc::SIGINT, STOP_GRACE)
    }

    /// Crashes the server: `SIGKILL` to the postmaster and every backend,
    /// as a power cut would leave it (except the disk keeps what the OS
    /// had). Returns once none of its processes is left, so
    /// [`start_again`](Self::start_again) finds its port and shared memory
    /// free.
    pub fn kill(&mut self) -> io::Result<()> {
        if let Some(mut c) = self.child.take() {
            child::kill_hard(&mut c)?;
        }
        self.kill_leftovers()
    }

    /// The TCP port on 127.0.0.1 (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://ferrochat@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (letters, digits and `_`, at most 63) and
    /// returns its URL. Fails if it exists: a test that expects a fresh
    /// database should not get an old one.
    pub fn create_database(&self, name: &str) -> io::Result<String> {
        check_name(name)?;
        let _one = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(name))
    }

    /// Runs `sql` in database `db` with `psql` and returns its output
    /// (unaligned, tuples only: `select 1` gives `"1"`). Fails with psql's
    /// error text. For tests and set-up, not for the hot path.
    pub fn psql(&self, db: &str, sql: &str) -> io::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", db, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "psql on {} ({sql:?}) failed: {}",
                self.url(db),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(None) => Some(c.id()),
            _ => None,
        }
    }

    /// The directory given to `start` (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log (all runs).
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// Spawns the postmaster on `self.port` and waits until it is ready.
    fn run(&mut self) -> io::Result<()> {
        let (log, out, err) = Log::open(&self.dir.join("postgres.log"))?;
        self.log = log;
        let mut cmd = setup::command(&self.bin.join("postgres"), self.owner, &self.dir);
        cmd.args(setup::server_args(&self.data, &self.dir, self.port))
            .stdout(out)
            .stderr(err);
        // If we die, SIGQUIT: the postmaster's immediate shutdown, which
        // takes its backends down with it.
        let mut c = child::spawn(cmd, libc::SIGQUIT)?;
        let pid = c.id();
        let data = self.data.clone();
        let ready = crate::wait::until(START_TIMEOUT, "PostgreSQL to accept connections", || {
            if let Some(status) = c.try_wait()? {
                return Err(io::Error::other(format!("postgres exited ({status})")));
            }
            Ok(setup::postmaster_status(&data)
                .is_some_and(|(p, status)| p == pid && status == "ready")
                .then_some(()))
        });
        if let Err(e) = ready {
            let _ = child::kill_hard(&mut c);
            let _ = self.kill_leftovers();
            return Err(self.log.error(format_args!(
                "PostgreSQL on port {} did not start: {e}",
                self.port
            )));
        }
        self.child = Some(c);
        Ok(())
    }

    /// Creates `name` unless it exists (a restarted directory has it).
    fn ensure_database(&self, name: &str) -> io::Result<()> {
        let found = self.psql(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        )?;
        if found != "1" {
            self.create_database(name)?;
        }
        Ok(())
    }

    /// `sig` to the postmaster, then waits (up to `grace`) for it and its
    /// backends; kills whatever is left.
    fn halt(&mut self, sig: i32, grace: Duration) -> io::Result<()> {
        if let Some(mut c) = self.child.take() {
            child::stop(&mut c, sig, grace)?;
        }
        self.kill_leftovers()
    }

    /// Kills every process still working in the data directory (backends
    /// orphaned by a killed postmaster) and waits until none is left.
    fn kill_leftovers(&self) -> io::Result<()> {
        crate::wait::until(
            Duration::from_secs(10),
            "PostgreSQL's processes to exit",
            || {
                let left = child::processes_in(&self.data);
                for pid in &left {
                    let _ = child::signal(*pid, libc::SIGKILL);
                }
                Ok(left.is_empty().then_some(()))
            },
        )
    }
}

impl Drop for Postgres {
    /// Immediate shutdown (no test waits for a checkpoint), then kills
    /// what is left.
    fn drop(&mut self) {
        let _ = self.halt(libc::SIGQUIT, Duration::from_secs(10));
    }
}

/// Database names are put into SQL and URLs as they are: keep them plain.
fn check_name(name: &str) -> io::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("database name {name:?}: use 1 to 63 letters, digits and _"),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_names() {
        assert!(super::check_name("t_delivery_1").is_ok());
        assert!(super::check_name("").is_err());
        assert!(super::check_name("a\"; DROP").is_err());
        assert!(super::check_name(&"a".repeat(64)).is_err());
    }
}
