//! A private Redis: `redis-server` as our child on a free loopback port,
//! without persistence.
//!
//! No RDB snapshots, no AOF: a restart comes back empty, which is what a
//! Redis failover looks like to the relays (everything published or kept
//! in Redis meanwhile is gone), and what the cluster tests rely on.

use crate::child::{self, Log};
use crate::port;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a start may take.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts at a first start, each on a fresh port.
const PORT_ATTEMPTS: usize = 3;

/// A running (or stopped) private Redis.
#[derive(Debug)]
pub struct Redis {
    /// Its directory (the log, and the working directory).
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    log: Log,
}

impl Redis {
    /// Installs `redis-server` if missing, starts it on a free port with
    /// its log in `dir/redis.log`, and waits until it answers `PING`.
    pub fn start(dir: impl AsRef<Path>) -> io::Result<Redis> {
        crate::install::ensure(&[crate::Need::REDIS])?;
        std::fs::create_dir_all(dir.as_ref())?;
        let dir = dir.as_ref().canonicalize()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (log, _, _) = Log::open(&dir.join("redis.log"))?;
            let mut r = Redis {
                dir: dir.clone(),
                port: port::free_port()?,
                child: None,
                log,
            };
            match r.run() {
                Ok(()) => return Ok(r),
                Err(_)
                    if attempt < PORT_ATTEMPTS
                        && r.log.tail(20).contains("Address already in use") =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts it again, empty, on the same port. Does nothing if it runs.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.pid().is_some() {
            return Ok(());
        }
        self.run()
    }

    /// Stops it cleanly (`SIGTERM`; without persistence there is nothing
    /// to save).
    pub fn stop(&mut self) -> io::Result<()> {
        if let Some(mut c) = self.child.take() {
            child::stop(&mut c, libc::SIGTERM, Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// Kills it (`SIGKILL`), like a crash; returns once it is gone.
    pub fn kill(&mut self) -> io::Result<()> {
        if let Some(mut c) = self.child.take() {
            child::kill_hard(&mut c)?;
        }
        Ok(())
    }

    /// The TCP port on 127.0.0.1 (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's pid while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(None) => Some(c.id()),
            _ => None,
        }
    }

    /// Whether it answers `PING` with `PONG` right now.
    pub fn ping(&self) -> bool {
        ping(self.port).unwrap_or(false)
    }

    /// The server's log (all runs).
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// Spawns the server on `self.port` and waits for `PONG`.
    fn run(&mut self) -> io::Result<()> {
        let (log, out, err) = Log::open(&self.dir.join("redis.log"))?;
        self.log = log;
        let mut cmd = Command::new(crate::install::REDIS_SERVER);
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut c = child::spawn(cmd, libc::SIGKILL)?;
        let port = self.port;
        let up = crate::wait::until(START_TIMEOUT, "Redis to answer PING", || {
            if let Some(status) = c.try_wait()? {
                return Err(io::Error::other(format!("redis-server exited ({status})")));
            }
            Ok(ping(port).unwrap_or(false).then_some(()))
        });
        if let Err(e) = up {
            let _ = child::kill_hard(&mut c);
            return Err(self.log.error(format_args!(
                "Redis on port {} did not start: {e}",
                self.port
            )));
        }
        self.child = Some(c);
        Ok(())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// `PING` in RESP over a fresh connection; whether the answer is `+PONG`.
fn ping(port: u16) -> io::Result<bool> {
    let timeout = Duration::from_secs(1);
    let mut s = TcpStream::connect_timeout(&port::loopback(port), timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(b"*1\r\n$4\r\nPING\r\n")?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf)?;
    Ok(&buf == b"+PONG\r\n")
}
