//! `cargo xtask run`: build the SPA, then run the relay serving it.
//!
//! Works on a machine with nothing but the Rust toolchain: without npm there
//! is no wasm-opt and the wasm ships unoptimized, which is fine locally.

use crate::util::{self, Result};

/// Where the relay listens unless `--listen` is passed through.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// `args` is everything after `run`; a leading `--` is optional.
pub fn run(args: &[String]) -> Result<()> {
    let extra = match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => args,
    };
    let out = util::workspace_root().join("dist");
    crate::dist::dist(&out)?;
    println!("open http://{}", listen_addr(extra));
    util::run(
        util::cargo()
            .args([
                "run",
                "--release",
                "-p",
                "ferrochat-relay",
                "--",
                "--static-dir",
            ])
            .arg(&out)
            .args(extra),
    )
}

/// The address the relay will listen on, for the "open" hint.
fn listen_addr(extra: &[String]) -> String {
    let mut it = extra.iter();
    while let Some(a) = it.next() {
        if a == "--listen" {
            if let Some(v) = it.next() {
                return v.clone();
            }
        } else if let Some(v) = a.strip_prefix("--listen=") {
            return v.to_string();
        }
    }
    DEFAULT_LISTEN.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_hint_follows_the_relay_flag() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(listen_addr(&[]), "127.0.0.1:8080");
        assert_eq!(
            listen_addr(&s(&["--listen", "0.0.0.0:9000"])),
            "0.0.0.0:9000"
        );
        assert_eq!(
            listen_addr(&s(&["--db", "x", "--listen=127.0.0.1:1"])),
            "127.0.0.1:1"
        );
    }
}
