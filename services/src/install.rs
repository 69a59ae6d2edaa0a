//! Installing what a machine lacks, from Debian's packages.
//!
//! The project's machines start with nothing but the Rust toolchain, and
//! nothing installed by hand survives to the next one: whatever the tests
//! or `cargo xtask cluster` need, this installs on first use. This is the
//! one apt helper of the workspace (xtask installs Chromium through it too).
//!
//! `apt-get install` runs first with whatever package lists the machine
//! has; only if it fails for lack of them ("Unable to locate package",
//! stale lists that 404) does `apt-get update` run, once, and the install
//! again. Not root: through `sudo`. Never interactive
//! (`DEBIAN_FRONTEND=noninteractive`: CI has no terminal), and it waits
//! for the dpkg lock rather than failing when another install holds it.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Where Debian's `redis-server` package puts the server.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// Where Debian's `nginx` package puts the server.
pub const NGINX: &str = "/usr/sbin/nginx";
/// Where Debian keeps PostgreSQL's versions, one directory each.
const POSTGRES_VERSIONS: &str = "/usr/lib/postgresql";

/// The `bin` directory of the newest PostgreSQL installed
/// (`/usr/lib/postgresql/<highest version>/bin`, which has `initdb`,
/// `postgres` and `psql`; Debian puts only wrappers on `PATH`).
pub fn postgres_bin_dir() -> Option<PathBuf> {
    std::fs::read_dir(POSTGRES_VERSIONS)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .max_by_key(|(v, _)| *v)
        .map(|(_, bin)| bin)
}

/// A package the caller needs, and how to tell that it is installed.
#[derive(Clone, Copy, Debug)]
pub struct Need {
    /// The Debian package to install.
    pub package: &'static str,
    /// Whether what the package provides is there already.
    pub present: fn() -> bool,
}

impl Need {
    /// PostgreSQL's server binaries (`/usr/lib/postgresql/<version>/bin`).
    pub const POSTGRES: Need = Need::new("postgresql", || {
        postgres_bin_dir().is_some_and(|d| d.join("psql").is_file())
    });
    /// `redis-server`.
    pub const REDIS: Need = Need::new("redis-server", || Path::new(REDIS_SERVER).is_file());
    /// `nginx`.
    pub const NGINX: Need = Need::new("nginx", || Path::new(NGINX).is_file());

    /// A need for `package`, present when `present` says so.
    pub const fn new(package: &'static str, present: fn() -> bool) -> Need {
        Need { package, present }
    }
}

/// Installs the packages of `needs` that are not present, in one
/// `apt-get install`, and checks that they are present afterwards.
pub fn ensure(needs: &[Need]) -> io::Result<()> {
    // Threads of one test binary may all want PostgreSQL at once: one
    // installs, the others then find it present.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<&Need> = needs.iter().filter(|n| !(n.present)()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|n| n.package).collect();
    eprintln!(
        "services: installing {} (apt-get; a minute or so)",
        packages.join(" ")
    );
    let mut install = vec!["install", "-y"];
    install.extend(&packages);
    match apt_get(&install) {
        Ok(()) => {}
        Err(AptError::Lists(why)) => {
            eprintln!("services: {why}; running apt-get update once");
            apt_get(&["update"]).map_err(AptError::into_io)?;
            apt_get(&install).map_err(AptError::into_io)?;
        }
        Err(e) => return Err(e.into_io()),
    }
    let still: Vec<&str> = missing
        .iter()
        .filter(|n| !(n.present)())
        .map(|n| n.package)
        .collect();
    if !still.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "apt-get installed {} but {} still missing",
                packages.join(" "),
                still.join(" ")
            ),
        ));
    }
    Ok(())
}

/// Why `apt-get` failed.
#[derive(Debug)]
pub enum AptError {
    /// The package lists are missing or stale: `apt-get update` may help.
    Lists(String),
    /// Anything else (no network, no sudo, a broken package, …).
    Other(io::Error),
}

impl AptError {
    /// As an `io::Error`, with the text.
    pub fn into_io(self) -> io::Error {
        match self {
            AptError::Lists(why) => io::Error::new(io::ErrorKind::NotFound, why),
            AptError::Other(e) => e,
        }
    }
}

impl std::fmt::Display for AptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AptError::Lists(why) => f.write_str(why),
            AptError::Other(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AptError {}

/// Runs `apt-get ARGS` as root (via `sudo` when we are not), never asking
/// anything, its output streamed to our stderr. Fails with
/// [`AptError::Lists`] when the output shows missing or stale package
/// lists.
pub fn apt_get(args: &[&str]) -> Result<(), AptError> {
    let mut cmd = if is_root() {
        Command::new("apt-get")
    } else {
        // `env` inside sudo: sudo's env_reset would drop the variable.
        let mut c = Command::new("sudo");
        c.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        c
    };
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        // Wait for another apt or dpkg (another test binary installing the
        // same thing) instead of failing on its lock.
        .args(["-o", "DPkg::Lock::Timeout=600"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("apt-get {}", args.join(" "));
    eprintln!("services: $ {shown}");
    let mut child = cmd.spawn().map_err(|e| {
        AptError::Other(io::Error::new(
            e.kind(),
            format!(
                "cannot run `{shown}`{}: {e}",
                if is_root() { "" } else { " through sudo" }
            ),
        ))
    })?;
    // Both streams to our stderr (stdout belongs to the caller's output),
    // and kept to look for the lists errors.
    let out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    let relay_out = std::thread::spawn(move || forward(out));
    let mut text = forward(err);
    text.push_str(&relay_out.join().unwrap_or_default());
    let status = child.wait().map_err(AptError::Other)?;
    if status.success() {
        return Ok(());
    }
    // apt's own reasons ("E: …"), so the error stands alone.
    let reasons: Vec<&str> = text.lines().filter(|l| l.starts_with("E: ")).collect();
    let why = format!("`{shown}` failed ({status}): {}", reasons.join("; "));
    if lists_problem(&text) {
        Err(AptError::Lists(why))
    } else {
        Err(AptError::Other(io::Error::other(why)))
    }
}

/// Copies lines to our stderr; returns them.
fn forward(stream: impl io::Read) -> String {
    let mut all = String::new();
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        eprintln!("  {line}");
        all.push_str(&line);
        all.push('\n');
    }
    all
}

/// Whether apt's output says its package lists are missing or outdated.
fn lists_problem(output: &str) -> bool {
    [
        "Unable to locate package",
        "has no installation candidate",
        "is not available, but is referred to",
        "Failed to fetch",
        "404  Not Found",
        "404 Not Found",
    ]
    .iter()
    .any(|m| output.contains(m))
}

/// Whether we run as root (effective uid 0).
fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_errors_are_told_apart() {
        assert!(lists_problem("E: Unable to locate package redis-server\n"));
        assert!(lists_problem(
            "E: Package 'nginx' has no installation candidate\n"
        ));
        assert!(lists_problem(
            "E: Failed to fetch http://x/pool/a.deb  404  Not Found [IP: ::1 80]\n"
        ));
        assert!(!lists_problem(
            "E: Could not open lock file /var/lib/dpkg/lock-frontend\n"
        ));
    }

    #[test]
    fn present_needs_install_nothing() {
        let always = Need::new("definitely-not-a-package", || true);
        ensure(&[always]).unwrap();
    }
}
