//! Shared by the crate's tests: scratch directories and the relay binary.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};

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

/// The `ferrochat-relay` binary (see [`services::relay::test_binary`]).
pub fn relay_bin() -> PathBuf {
    services::relay::test_binary()
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
