//! ferrochat's build orchestration, in Rust (the rust-analyzer "xtask"
//! convention): `cargo xtask <command>`, no shell scripts, no Node, no
//! trunk. The alias lives in `.cargo/config.toml`.
//!
//! - `cargo xtask dist [--out DIR]`: production build of the browser client.
//! - `cargo xtask run [-- RELAY ARGS]`: `dist`, then the relay serving it.
//! - `cargo xtask cluster [--nodes N] [--dir DIR] [--port P]`: PostgreSQL,
//!   Redis, N relays and nginx on this machine, until Ctrl-C.
//! - `cargo xtask test`: the gates (fmt, tidy, clippy), then sets up and runs
//!   every test, browser suite included.

#[cfg(unix)]
mod cluster;
mod dist;
mod run;
mod test;
#[cfg(test)]
mod tidy;
mod util;
mod wasm_opt;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  dist [--out DIR]        build the SPA into DIR (default: <workspace>/dist)
  run [-- RELAY ARGS...]  build dist, then run the relay serving it
  cluster [--nodes N] [--dir DIR] [--port P] [--backend postgres|sqlite]
                          install PostgreSQL, Redis and nginx if missing,
                          build, then run N relays (default 3) on one
                          PostgreSQL and Redis behind nginx on port P
                          (default 8080), data under DIR (default
                          target/cluster), until Ctrl-C; `sqlite`: each
                          relay on its own SQLite, no PostgreSQL or Redis
  test                    check fmt, tidy and clippy, then install test
                          dependencies and run every test
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let cmd = args.next();
    let rest: Vec<String> = args.collect();
    let result = match cmd.as_deref() {
        Some("dist") => parse_out(&rest).and_then(|out| dist::dist(&out)),
        Some("run") => run::run(&rest),
        #[cfg(unix)]
        Some("cluster") => cluster::cluster(&rest),
        #[cfg(not(unix))]
        Some("cluster") => Err("cluster runs on Linux only".into()),
        Some("test") if rest.is_empty() => test::test(),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `dist`'s only option.
fn parse_out(args: &[String]) -> util::Result<PathBuf> {
    match args {
        [] => Ok(util::workspace_root().join("dist")),
        [flag, dir] if flag == "--out" => Ok(util::absolute(dir)),
        [arg] if arg.starts_with("--out=") => Ok(util::absolute(&arg["--out=".len()..])),
        _ => Err(format!("unexpected arguments {args:?}\n{USAGE}").into()),
    }
}
