//! `cargo xtask test`: the one command that sets up and runs every test.
//!
//! The fast gates come first, so a formatting slip fails in seconds, not
//! after the builds:
//!
//! 1. rustfmt and clippy (`rustup component add` when missing);
//! 2. formatting: `cargo fmt --all -- --check`;
//! 3. tidy: the checks in `xtask/src/tidy.rs` (SAFETY comments, Linux-only
//!    code `cfg`-gated, file length, paths named by the docs); they are
//!    plain tests, so step 7 runs them again (in milliseconds);
//! 4. lints: `cargo clippy --workspace --all-targets -- -D warnings`, every
//!    member including `e2e` (which `default-members` leaves out of plain
//!    `cargo test`), the frontend compiled natively like its tests. Not also
//!    for `wasm32`: only `frontend::start` is wasm-only, `dist` compiles it,
//!    and checking yew and web-sys for wasm32 costs about a minute here;
//! 5. the browser suite's dependencies (Chromium + chromedriver) and the
//!    backing services' packages (PostgreSQL, Redis, nginx; see
//!    [`setup_backing_services`]);
//! 6. `dist`, which the browser suite serves through a real relay;
//! 7. every crate's tests except the browser suite (`cargo test`), with
//!    `FERROCHAT_RELAY_BIN` naming the relay that build makes;
//! 8. the relay's integration suite again on PostgreSQL
//!    (`FERROCHAT_TEST_BACKEND=postgres`);
//! 9. the browser suite, one test at a time (each drives real browsers).
//!
//! Each stage prints a line when it starts and its duration when it ends.
//! Output streams as it comes; the first failure ends the run non-zero.

use crate::util::{self, Result};
use services::install::{self, Need};
use std::path::Path;
use std::time::Instant;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

type Stage<'a> = (&'a str, Box<dyn Fn() -> Result<()> + 'a>);

/// Runs everything.
pub fn test() -> Result<()> {
    let dist = util::workspace_root().join("dist");
    let stages: Vec<Stage> = vec![
        (
            "toolchain: rustfmt and clippy",
            Box::new(|| util::ensure_rustup("component", &["rustfmt", "clippy"])),
        ),
        (
            "format",
            Box::new(|| util::run(util::cargo().args(["fmt", "--all", "--", "--check"]))),
        ),
        (
            "tidy",
            Box::new(|| util::run(util::cargo().args(["test", "-p", "xtask", "--", "tidy::"]))),
        ),
        (
            "clippy",
            Box::new(|| {
                util::run(util::cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))
            }),
        ),
        (
            // The browser-only code (cfg wasm32) is invisible to the native
            // clippy above.
            "clippy (wasm32: the web app and the voice module)",
            Box::new(|| {
                util::ensure_rustup("target", &["wasm32-unknown-unknown"])?;
                for package in ["frontend", "frontend-voice"] {
                    util::run(util::cargo().args([
                        "clippy",
                        "-p",
                        package,
                        "--lib",
                        "--target",
                        "wasm32-unknown-unknown",
                        "--",
                        "-D",
                        "warnings",
                    ]))?;
                }
                Ok(())
            }),
        ),
        (
            "setup: browser and backing services",
            Box::new(|| {
                ensure_browser()?;
                setup_backing_services()
            }),
        ),
        ("dist", Box::new(|| crate::dist::dist(&dist))),
        (
            "tests",
            Box::new(|| {
                // `cargo test` builds the relay binary (for the relay's
                // process tests) before it runs any test; the services
                // crate's tests use that one instead of building their own
                // (`cargo build -p ferrochat-relay` resolves features apart
                // from the workspace: a second build of its dependencies).
                let relay_bin = util::target_dir().join("debug").join("ferrochat-relay");
                util::run(
                    util::cargo()
                        .args(["test", "--workspace", "--exclude", "e2e"])
                        .env("FERROCHAT_RELAY_BIN", relay_bin),
                )
            }),
        ),
        (
            "tests: the relay's suite again, on PostgreSQL",
            Box::new(|| {
                // The same integration suite against the cluster's backend
                // (a private PostgreSQL server the tests start; see
                // `relay/tests/common/mod.rs`); process tests that are
                // SQLite's own (its file lock, its commit log) skip there.
                //
                // Selected with `--workspace` and one `--test` per suite file
                // rather than `-p ferrochat-relay`: the same packages as the
                // stage before resolve the same dependency features, so the
                // stage's build is reused instead of made again (measured:
                // 120 crates and ~6 of this stage's 8.4 minutes). The
                // cluster suites run on PostgreSQL already and are skipped; a
                // same-named test of another crate (loadgen's `voice`) runs
                // along, on its own database.
                let mut cmd = util::cargo();
                cmd.args(["test", "--workspace", "--exclude", "e2e"]);
                for suite in relay_suites()? {
                    cmd.args(["--test", &suite]);
                }
                let relay_bin = util::target_dir().join("debug").join("ferrochat-relay");
                util::run(
                    cmd.env("FERROCHAT_TEST_BACKEND", "postgres")
                        .env("FERROCHAT_RELAY_BIN", relay_bin),
                )
            }),
        ),
        (
            "browser suite",
            Box::new(|| {
                util::run(
                    util::cargo()
                        .args(["test", "-p", "e2e", "--", "--test-threads=1"])
                        .env("FERROCHAT_DIST", &dist)
                        // The cluster test's relays: the binary stage 7 built.
                        .env(
                            "FERROCHAT_RELAY_BIN",
                            util::target_dir().join("debug").join("ferrochat-relay"),
                        ),
                )
            }),
        ),
    ];
    let total = Instant::now();
    let n = stages.len();
    for (i, (name, run)) in stages.iter().enumerate() {
        eprintln!("xtask: [{}/{n}] {name}", i + 1);
        let start = Instant::now();
        run().map_err(|e| format!("stage {}/{n} ({name}): {e}", i + 1))?;
        eprintln!(
            "xtask: [{}/{n}] {name}: ok in {:.1}s",
            i + 1,
            start.elapsed().as_secs_f64()
        );
    }
    println!(
        "xtask: all tests passed in {:.0}s",
        total.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The relay's integration suites (`relay/tests/*.rs`) but the cluster's.
fn relay_suites() -> Result<Vec<String>> {
    let mut suites = Vec::new();
    for entry in std::fs::read_dir(util::workspace_root().join("relay/tests"))? {
        let path = entry?.path();
        let Some(name) = path.file_stem().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_rs = path.extension().is_some_and(|e| e == "rs");
        if is_rs && !name.starts_with("cluster") {
            suites.push(name.to_string());
        }
    }
    suites.sort();
    Ok(suites)
}

/// Installs Debian's Chromium, chromedriver and espeak-ng when missing.
fn ensure_browser() -> Result<()> {
    install::ensure(&[
        Need::new("chromium", || Path::new(CHROMIUM).exists()),
        Need::new("chromium-driver", || Path::new(CHROMEDRIVER).exists()),
        // The voice test's fake microphone plays speech made at test time.
        Need::new("espeak-ng", || util::works("espeak-ng")),
    ])?;
    Ok(())
}

/// Installs the packages of the services the tests start: PostgreSQL,
/// Redis and nginx. Nothing is started here: each test process starts
/// private instances on free ports (the `services` crate), so tests can
/// stop and crash them, and none depends on a system service.
fn setup_backing_services() -> Result<()> {
    install::ensure(&[Need::POSTGRES, Need::REDIS, Need::NGINX])?;
    Ok(())
}
