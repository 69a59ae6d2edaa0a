//! Debian's chromedriver, one process per test.

use super::{http_get, wait_until, HOW_TO_RUN, WAIT};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// Debian's Chromium and its driver (`cargo xtask test` installs both).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Panics (never skips) when Chromium or chromedriver is missing.
pub(super) fn check_binaries() {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(bin).exists() {
            panic!("{bin} is missing; {HOW_TO_RUN}");
        }
    }
}

/// A chromedriver child process; killed (with its process group, so any
/// Chromium it started too) on drop, also when a test panics.
pub(super) struct ChromeDriver {
    child: Child,
    /// Where WebDriver sessions are requested, e.g. `http://127.0.0.1:9515`.
    pub url: String,
    /// chromedriver's own log (copied into the artifacts on failure).
    pub log: PathBuf,
    _dir: TempDir,
}

impl ChromeDriver {
    /// Starts chromedriver on a free port; waits until it answers `/status`.
    pub async fn start() -> ChromeDriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::Builder::new()
            .prefix("e2e-chromedriver-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("chromedriver.log");
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Own process group: one kill reaches the browsers it starts.
            cmd.process_group(0);
            // If this test process dies hard, chromedriver goes too.
            // SAFETY: the hook runs in the forked child before exec and
            // only makes one async-signal-safe system call.
            #[cfg(target_os = "linux")]
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}; {HOW_TO_RUN}"));
        let mut driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let addr = format!("127.0.0.1:{port}");
        let driver_ref = &mut driver;
        wait_until("chromedriver to listen", WAIT, || {
            let exited = driver_ref.child.try_wait().ok().flatten();
            let addr = addr.clone();
            async move {
                if let Some(status) = exited {
                    // Not worth waiting for: fail right away.
                    panic!("chromedriver exited at start: {status}");
                }
                http_get(&addr, "/status").await
            }
        })
        .await;
        driver
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // SAFETY: kill(2) takes plain integers; a group that is already
        // gone is only an error code.
        #[cfg(unix)]
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
