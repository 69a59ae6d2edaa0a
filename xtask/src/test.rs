//! `cargo xtask test`: the one command that sets up and runs every test.
//!
//! 1. the browser suite's dependencies (Chromium + chromedriver);
//! 2. backing services (none yet; see [`setup_backing_services`]);
//! 3. `dist`, which the browser suite serves through a real relay;
//! 4. every crate's tests except the browser suite (`cargo test`);
//! 5. the browser suite, one test at a time (each drives real browsers).
//!
//! Output streams as it comes; the first failure ends the run non-zero.

use crate::util::{self, Result};
use std::path::Path;
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Runs everything.
pub fn test() -> Result<()> {
    ensure_browser()?;
    setup_backing_services()?;
    let dist = util::workspace_root().join("dist");
    crate::dist::dist(&dist)?;
    util::run(util::cargo().args(["test", "--workspace", "--exclude", "e2e"]))?;
    util::run(
        util::cargo()
            .args(["test", "-p", "e2e", "--", "--test-threads=1"])
            .env("FERROCHAT_DIST", &dist),
    )?;
    println!("xtask: all tests passed");
    Ok(())
}

/// Installs Debian's Chromium and chromedriver when missing.
fn ensure_browser() -> Result<()> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    eprintln!("xtask: installing chromium and chromium-driver (apt)");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| -> Result<()> {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        // Never stop to ask (CI has no terminal).
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        util::run(&mut c)
    };
    apt(&["update"])?;
    apt(&["install", "-y", "chromium", "chromium-driver"])?;
    for p in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(p).exists() {
            return Err(format!("{p} is still missing after apt-get install").into());
        }
    }
    Ok(())
}

/// Extension point: start or check the databases and brokers the tests
/// need. The relay's default store is embedded SQLite, so nothing is needed
/// yet; a later issue adds PostgreSQL and Redis here (install, start, export
/// their URLs as environment variables for the test processes).
fn setup_backing_services() -> Result<()> {
    Ok(())
}
