//! Harness of the browser suite: a real relay (in this process, on a temp
//! SQLite file, serving the release SPA from `$FERROCHAT_DIST`), Debian's
//! chromedriver, and one headless Chromium per simulated user, driven over
//! WebDriver with fantoccini. Nothing is mocked.
//!
//! Every test is `run(name, |env| async move { … })`. The body runs in its
//! own task; whatever happens to it (success, panic, overall timeout), the
//! runner then closes every browser, stops the relay and kills chromedriver.
//! On failure it first saves, per open browser, a screenshot and the page's
//! visible text into `e2e-artifacts/<test>-<browser>.{png,txt}` (workspace
//! root) and prints the text.
//!
//! Waiting is always polling with a deadline (`wait_until`); no test
//! asserts anything after a fixed sleep.
//!
//! `E2E_RELAY_LOG=<filter>` (e.g. `info`) prints the relay's log.
//!
//! Layout:
//! - this file: timeouts, paths, and the two probes everything waits with
//!   ([`wait_until`], `http_get`);
//! - `chromedriver`: the chromedriver process;
//! - `env`: one test's world (relay, database, browsers) and [`run`];
//! - `browser`: one Chromium session and the low-level page helpers
//!   (find, click, type, wait for a selector);
//! - `steps`: what a user does in ferrochat (sign up, log in, open a
//!   conversation, send, create a group…) and the app's selectors.
#![allow(dead_code)]

mod browser;
mod chromedriver;
mod env;
mod steps;

// What the tests use. Each test file is its own crate and names only some
// of these, so an unused one is no sign of dead code.
#[allow(unused_imports)]
pub use browser::{tid, Browser, DESKTOP};
#[allow(unused_imports)]
pub use env::{run, run_cluster, Env};
#[allow(unused_imports)]
pub use steps::{conv_group, conv_item, member, Msg, PASSWORD};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long to wait for something the UI should do promptly.
pub const WAIT: Duration = Duration::from_secs(15);
/// How long to wait for the SPA to reconnect by itself: its backoff is
/// capped at 30 s, with full jitter.
pub const RECONNECT_WAIT: Duration = Duration::from_secs(45);
/// Between two polls of a condition.
const POLL: Duration = Duration::from_millis(100);

const HOW_TO_RUN: &str = "run the browser suite with `cargo xtask test` (it installs \
     chromium + chromium-driver, builds the SPA with `cargo xtask dist` and sets \
     FERROCHAT_DIST), or by hand: `cargo xtask dist && FERROCHAT_DIST=$PWD/dist \
     cargo test -p e2e -- --test-threads=1`";

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the workspace")
        .to_path_buf()
}

/// Where screenshots and failure dumps go.
pub fn artifacts_dir() -> PathBuf {
    workspace_root().join("e2e-artifacts")
}

/// Polls `check` until it returns `Ok`, at most `timeout`. `Err` carries
/// what was observed instead; the last one ends up in the panic message.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let seen = match tokio::time::timeout(left.max(POLL), check()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(seen)) => seen,
            Err(_) => "(the check itself did not finish in time)".to_string(),
        };
        if Instant::now() >= deadline {
            panic!(
                "timed out after {:.1}s waiting for {what}\n  last seen: {seen}",
                start.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn err(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    // WebDriver errors carry a long stack trace; the first line says it all.
    s.lines().next().unwrap_or_default().to_string()
}

/// A minimal HTTP/1.1 GET: `Ok(())` when the status is 200. Only the
/// status line is read (chromedriver may keep the connection open; it does
/// not answer HTTP/1.0 at all).
async fn http_get(addr: &str, path: &str) -> Result<(), String> {
    let io = async {
        let mut s = TcpStream::connect(addr).await.map_err(err)?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(err)?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut chunk).await.map_err(err)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, String>(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(2), io)
        .await
        .map_err(|_| format!("GET {path}: no answer within 2 s"))??;
    let status = text.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("GET {path}: {status:?}"))
    }
}
