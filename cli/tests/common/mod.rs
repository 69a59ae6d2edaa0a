//! Helpers for the CLI's tests: a real relay process (the `services`
//! crate) on a SQLite file in a temporary directory, the CLI binary with a
//! private config dir, and a reader that waits for output with a deadline
//! (never a sleep).

#![allow(dead_code)]

pub mod cluster;

use services::RelayProcess;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any awaited output may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A relay on a SQLite file in `dir`, with no registration cap.
pub fn relay(dir: &Path) -> RelayProcess {
    let db = format!("sqlite://{}", dir.join("relay.db").display());
    let args: Vec<String> = ["--db", &db, "--register-limit", "off", "--log", "warn"]
        .map(String::from)
        .to_vec();
    RelayProcess::spawn(
        &services::relay::test_binary(),
        &args,
        &dir.join("relay.log"),
    )
    .expect("the relay starts")
}

/// The CLI with `config` as its config dir and no inherited session
/// settings.
pub fn cli(relay: &RelayProcess, config: &Path) -> Command {
    cli_at(&relay.url(), config)
}

/// As [`cli`], for the relay (or load balancer) at `url`.
pub fn cli_at(url: &str, config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrochat-cli"));
    c.arg("--server")
        .arg(url)
        .arg("--config-dir")
        .arg(config)
        .env_remove("FERROCHAT_SERVER")
        .env_remove("FERROCHAT_CONFIG_DIR")
        .env("FERROCHAT_PASSWORD", "correct horse battery");
    c
}

/// Runs the CLI to completion (killed after the deadline).
pub fn run(mut c: Command) -> Output {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CLI runs");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the CLI did not finish in {DEADLINE:?}");
        }
        // Polling a child's exit (no condition to wait on otherwise).
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Registers `name` (password from the environment) with its own config
/// dir under `dir`, which it returns.
pub fn register(relay: &RelayProcess, dir: &Path, name: &str) -> PathBuf {
    account_at(&relay.url(), dir, name, "register")
}

/// `register` or `login` (`verb`) of `name` on `url`, with a config dir of
/// its own under `dir` (a saved session is for one server URL), which it
/// returns.
pub fn account_at(url: &str, dir: &Path, name: &str, verb: &str) -> PathBuf {
    let port = url.rsplit(':').next().unwrap_or("relay");
    let config = dir.join(format!("config-{name}-{port}"));
    let mut c = cli_at(url, &config);
    c.args([verb, name]);
    let out = run(c);
    assert!(out.status.success(), "{verb} {name} on {url}: {out:?}");
    config
}

/// `send --to`: the output.
pub fn send(relay: &RelayProcess, config: &Path, to: &str, text: &str) -> Output {
    send_at(&relay.url(), config, to, text)
}

/// `send --to` through `url`: the output.
pub fn send_at(url: &str, config: &Path, to: &str, text: &str) -> Output {
    let mut c = cli_at(url, config);
    c.args(["send", "--to", to, text]);
    run(c)
}

/// Lines of a child's stream, read by a thread.
pub struct Lines {
    rx: mpsc::Receiver<String>,
    /// Every line so far.
    pub seen: Vec<String>,
}

impl Lines {
    /// Reads `r` line by line.
    pub fn new(r: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(r).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`; panics with what came after
    /// the deadline.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(e) => panic!("no line with {needle:?} ({e}); got {:#?}", self.seen),
            }
        }
    }

    /// How many lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.seen.iter().filter(|l| l.contains(needle)).count()
    }
}

/// `listen --json` for `config`: the child, its stdout and its stderr,
/// once it is online.
pub fn listen(relay: &RelayProcess, config: &Path) -> (Child, Lines, Lines) {
    listen_at(&relay.url(), config)
}

/// As [`listen`], through `url`.
pub fn listen_at(url: &str, config: &Path) -> (Child, Lines, Lines) {
    let mut c = cli_at(url, config);
    c.args(["listen", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("listen runs");
    let out = Lines::new(child.stdout.take().unwrap());
    let mut err = Lines::new(child.stderr.take().unwrap());
    err.wait_for("online as");
    (child, out, err)
}

/// Sends SIGTERM and waits (with the deadline) for a clean exit.
pub fn terminate(mut child: Child) {
    signal(&child, libc::SIGTERM);
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "listen ended with {status}");
            return;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("listen did not end on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` to our own child (`SIGSTOP` / `SIGCONT` freeze and resume
/// it).
pub fn signal(child: &Child, sig: libc::c_int) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(pid, sig) };
}
