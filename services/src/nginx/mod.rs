//! A private nginx in front of the relays: the one URL a browser opens in
//! cluster mode. The configuration and its reasons are in `config`.
//!
//! nginx runs in the foreground (`daemon off`) as our child, with a
//! master process and its workers in one process group, so stopping it
//! stops all of them.

mod config;

use crate::child::{self, Log};
use crate::port;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a start may take.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running private nginx.
#[derive(Debug)]
pub struct Nginx {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    log: Log,
}

impl Nginx {
    /// Installs nginx if missing, writes `dir/nginx.conf` balancing over
    /// `upstreams` (and serving `/assets/` from `static_root`, if given),
    /// checks it with `nginx -t` (failing with nginx's own message), starts
    /// nginx on 127.0.0.1:`listen_port` (0: a free port) and waits until it
    /// accepts connections.
    pub fn start(
        dir: impl AsRef<Path>,
        listen_port: u16,
        upstreams: &[SocketAddr],
        static_root: Option<&Path>,
    ) -> io::Result<Nginx> {
        crate::install::ensure(&[crate::Need::NGINX])?;
        if upstreams.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "nginx needs at least one upstream",
            ));
        }
        std::fs::create_dir_all(dir.as_ref().join("tmp"))?;
        let dir = dir.as_ref().canonicalize()?;
        let static_root = static_root.map(Path::canonicalize).transpose()?;
        let port = match listen_port {
            0 => port::free_port()?,
            p => p,
        };
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            config::render(&dir, port, upstreams, static_root.as_deref()),
        )?;
        let test = nginx(&dir)
            .arg("-t")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()?;
        if !test.status.success() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "nginx rejects {}:\n{}",
                    conf.display(),
                    String::from_utf8_lossy(&test.stderr).trim()
                ),
            ));
        }
        // nginx writes its own error log; our file gets what it prints
        // before reading the configuration.
        let (log, out, err) = Log::open(&dir.join("stderr.log"))?;
        let mut cmd = nginx(&dir);
        cmd.stdout(out).stderr(err);
        // If we die: SIGTERM, nginx's fast shutdown, which stops the
        // workers too (SIGKILL would leave them serving).
        let mut c = child::spawn(cmd, libc::SIGTERM)?;
        let addr = port::loopback(port);
        let up = crate::wait::until(START_TIMEOUT, "nginx to accept connections", || {
            if let Some(status) = c.try_wait()? {
                return Err(io::Error::other(format!("nginx exited ({status})")));
            }
            Ok(port::accepts(addr).then_some(()))
        });
        if let Err(e) = up {
            let _ = child::kill_hard(&mut c);
            let errors = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            return Err(log.error(format_args!(
                "nginx on port {port} did not start: {e}\nerror.log:\n{}",
                errors.trim()
            )));
        }
        Ok(Nginx {
            dir,
            port,
            child: Some(c),
            log,
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        port::loopback(self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its directory (`nginx.conf`, `error.log`, `access.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops it: fast shutdown (`SIGTERM`; open WebSockets are cut, as a
    /// graceful one would wait up to an hour for them), then `SIGKILL` to
    /// the master and workers after 10 s.
    pub fn stop(&mut self) -> io::Result<()> {
        if let Some(mut c) = self.child.take() {
            child::stop(&mut c, libc::SIGTERM, Duration::from_secs(10))?;
            // A worker that outlived its master would keep the port.
            let _ = child::signal_group(c.id(), libc::SIGKILL);
        }
        Ok(())
    }

    /// What it printed to stderr this run (errors go to `error.log`).
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// `nginx -p DIR/ -c DIR/nginx.conf -e DIR/error.log`: prefix,
/// configuration and startup error log all in the directory (without
/// `-e`, nginx first opens `/var/log/nginx/error.log`).
fn nginx(dir: &Path) -> Command {
    let mut c = Command::new(crate::install::NGINX);
    c.arg("-p")
        .arg(format!("{}/", dir.display()))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .current_dir(dir)
        .stdin(Stdio::null());
    c
}
