//! Shared by the crate's tests: scratch directories and the relay binary.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A directory under the system temp dir, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "ferrochat-services-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `ferrochat-relay` binary: `FERROCHAT_RELAY_BIN`, or built here
/// (once per test binary) into the target directory this test runs from.
/// A test binary cannot name another package's binary
/// (`CARGO_BIN_EXE_*` is for its own package only).
pub fn relay_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("FERROCHAT_RELAY_BIN") {
            return PathBuf::from(p);
        }
        // This test runs as <target>/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target = profile_dir.parent().unwrap();
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

/// Relay arguments for a throwaway relay with no web app.
pub fn relay_args(scratch: &Path) -> Vec<String> {
    vec![
        "--db".into(),
        "sqlite::memory:".into(),
        "--static-dir".into(),
        scratch.join("no-dist").display().to_string(),
        "--log".into(),
        "warn".into(),
    ]
}

/// Whether a TCP connection to 127.0.0.1:port is refused (nothing listens).
pub fn refused(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}
