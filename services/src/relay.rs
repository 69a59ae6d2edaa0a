//! A relay process (the `ferrochat-relay` binary) on a free loopback port,
//! that a test can kill like a crash and start again on the same port.

use crate::child::{self, Log};
use crate::port;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a relay may take to answer `/healthz` (a first start on
/// PostgreSQL runs the migrations).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` waits after `SIGTERM`: the relay's default
/// `--shutdown-grace` (5 s) plus its final commit.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Attempts at a first start, each on a fresh port.
const PORT_ATTEMPTS: usize = 3;

/// Relay flags for load tests: no per-connection rate limit, no
/// registration cap, quiet logs (the generator is the only client).
pub fn load_test_args() -> Vec<String> {
    [
        "--rate-limit",
        "1000000",
        "--rate-burst",
        "1000000",
        "--register-limit",
        "off",
        "--log",
        "warn",
    ]
    .map(String::from)
    .to_vec()
}

/// The `ferrochat-relay` binary for tests: `FERROCHAT_RELAY_BIN`, or built
/// (once per test binary) into the target directory the calling test runs
/// from. A test binary cannot name another package's binary
/// (`CARGO_BIN_EXE_*` is for its own package only).
pub fn test_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("FERROCHAT_RELAY_BIN") {
            return PathBuf::from(p);
        }
        // The test runs as <target>/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().expect("the test's own path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("a test binary under <target>/<profile>/deps")
            .to_path_buf();
        let target = profile_dir.parent().expect("a target directory");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-p", "ferrochat-relay", "--bin", "ferrochat-relay"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the relay failed ({status})");
        let bin = profile_dir.join("ferrochat-relay");
        assert!(bin.is_file(), "no relay at {}", bin.display());
        bin
    })
    .clone()
}

/// A running (or killed) relay.
#[derive(Debug)]
pub struct RelayProcess {
    bin: PathBuf,
    /// The caller's arguments (`--listen` comes after them).
    args: Vec<String>,
    addr: SocketAddr,
    child: Option<Child>,
    log: Log,
}

impl RelayProcess {
    /// Starts `bin` with `args` plus `--listen 127.0.0.1:PORT` (a free
    /// port), its stdout and stderr appended to `log`, and waits until
    /// `GET /healthz` answers (200, or 503 while degraded). Fails with the
    /// log's last lines if the relay exits or does not answer in 60 s.
    pub fn spawn(bin: &Path, args: &[String], log: &Path) -> io::Result<RelayProcess> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (l, _, _) = Log::open(log)?;
            let mut r = RelayProcess {
                bin: bin.to_path_buf(),
                args: args.to_vec(),
                addr: port::loopback(port::free_port()?),
                child: None,
                log: l,
            };
            match r.run() {
                Ok(()) => return Ok(r),
                Err(_) if attempt < PORT_ATTEMPTS && r.log.tail(20).contains("in use") => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until `GET /healthz` answers at all (any status), up to
    /// `timeout`; fails at once if the process has exited.
    pub fn wait_up(&mut self, timeout: Duration) -> io::Result<()> {
        let addr = self.addr;
        let Some(c) = self.child.as_mut() else {
            return Err(io::Error::other("the relay is not running"));
        };
        let up = crate::wait::until(timeout, "the relay to answer /healthz", || {
            if let Some(status) = c.try_wait()? {
                return Err(io::Error::other(format!("the relay exited ({status})")));
            }
            Ok(health_of(addr).map(|_| ()))
        });
        up.map_err(|e| self.log.error(format_args!("relay at {addr}: {e}")))
    }

    /// The status of `GET /healthz` right now: `Some(200)` healthy,
    /// `Some(503)` shutting down or degraded, `None` if nothing answers.
    pub fn health(&self) -> Option<u16> {
        health_of(self.addr)
    }

    /// The status of `GET /healthz` at any address: a relay's, or nginx's
    /// (which answers 502 when no relay is left).
    pub fn health_at(addr: SocketAddr) -> Option<u16> {
        health_of(addr)
    }

    /// The value of an unlabelled sample of `GET /metrics` (a counter or a
    /// gauge), or `None` if nothing answers or the relay has no such sample.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (status, body) =
            crate::http::get(self.addr, "/metrics", Duration::from_secs(5)).ok()?;
        (status == 200).then(|| crate::http::sample(&body, name))?
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(None) => Some(c.id()),
            _ => None,
        }
    }

    /// The log file (all runs).
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// The last `lines` lines this run logged.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log.tail(lines)
    }

    /// Kills it (`SIGKILL`), like a crash; returns once it is gone.
    pub fn kill(&mut self) -> io::Result<()> {
        if let Some(mut c) = self.child.take() {
            child::kill_hard(&mut c)?;
        }
        Ok(())
    }

    /// Stops it the clean way (`SIGTERM`: sockets closed with 1001, the
    /// database committed), killing it after 15 s.
    pub fn stop(&mut self) -> io::Result<()> {
        if let Some(mut c) = self.child.take() {
            child::stop(&mut c, libc::SIGTERM, STOP_GRACE)?;
        }
        Ok(())
    }

    /// Starts it again with the same arguments on the same port (stopping
    /// it first if it runs), and waits until it answers.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop()?;
        self.run()
    }

    /// Spawns the relay on `self.addr` and waits until it answers.
    fn run(&mut self) -> io::Result<()> {
        let (log, out, err) = Log::open(self.log.path())?;
        self.log = log;
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .arg("--listen")
            .arg(self.addr.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        self.child = Some(child::spawn(cmd, libc::SIGKILL).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", self.bin.display()),
            )
        })?);
        let up = self.wait_up(START_TIMEOUT);
        if up.is_err() {
            let _ = self.kill();
        }
        up
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// `GET /healthz`'s status, if anything answers within 2 s.
fn health_of(addr: SocketAddr) -> Option<u16> {
    crate::http::get_status(addr, "/healthz", Duration::from_secs(2)).ok()
}
