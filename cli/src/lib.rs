//! ferrochat's terminal client: `register`, `login`, `logout`, an
//! interactive session, and the scripted `send` and `listen`. See
//! `cli/README.md`.

pub mod account;
pub mod args;
pub mod backoff;
pub mod command;
pub mod config;
pub mod display;
pub mod error;
pub mod http;
pub mod interactive;
pub mod script;
pub mod session;

use args::{Args, Cmd};
use clap::Parser;
use error::{Error, Result};
use std::time::Duration;

/// The relay when neither `--server` nor a saved session names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Runs the command line; returns the process exit code.
pub fn run() -> i32 {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrochat-cli: {e}");
            return 1;
        }
    };
    let result = rt.block_on(dispatch(args));
    // The line editor's thread may still be blocked reading.
    rt.shutdown_background();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ferrochat-cli: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(args: Args) -> Result<()> {
    let dir = config::dir(args.config_dir.as_deref())?;
    let flag = args
        .server
        .as_deref()
        .map(http::normalize_server)
        .transpose()?;
    // A saved session for the server the user names (or any, if none).
    let saved = || -> Result<config::Saved> {
        let s = config::require(&dir)?;
        match &flag {
            Some(f) if *f != s.server => Err(Error::Auth(format!(
                "the saved session is for {}, not {f}: log in there first",
                s.server
            ))),
            _ => Ok(s),
        }
    };
    let server = || flag.clone().unwrap_or_else(|| DEFAULT_SERVER.to_string());
    match args.command.unwrap_or(Cmd::Chat) {
        Cmd::Register { username } => {
            let s = account::authenticate(&server(), &dir, &username, true).await?;
            eprintln!("registered and logged in as {} on {}", s.username, s.server);
            Ok(())
        }
        Cmd::Login { username } => {
            let s = account::authenticate(&server(), &dir, &username, false).await?;
            eprintln!("logged in as {} on {}", s.username, s.server);
            Ok(())
        }
        Cmd::Logout => {
            account::logout(&dir).await?;
            eprintln!("logged out");
            Ok(())
        }
        Cmd::Chat => interactive::run(saved()?).await,
        Cmd::Send {
            to,
            group,
            timeout,
            text,
        } => {
            script::send(
                &saved()?,
                to.as_deref(),
                group.as_deref(),
                &text,
                Duration::from_secs(timeout),
            )
            .await
        }
        Cmd::Listen { json } => script::listen(&saved()?, json).await,
    }
}
