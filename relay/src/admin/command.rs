//! The command's side: ask the running relay over its admin channel, or
//! open the database and apply the operation here (see the module doc of
//! `admin`).

use super::channel::{socket_path, sqlite_file, Answer, Request, DEADLINE};
use super::{apply, op_name, Failure};
use crate::config::{AdminOp, Config};
use crate::metrics::Metrics;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Runs `ferrochat-relay admin <op>`: prints what was done, or says why
/// not on stderr with a non-zero exit code.
pub fn main(config: &Config, op: &AdminOp) -> ExitCode {
    // Logs go to stderr, warnings only: stdout is the command's answer.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .try_init();
    match run(config, op) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("ferrochat-relay admin {}: {}", op_name(op), f.message());
            ExitCode::from(f.exit_code())
        }
    }
}

fn run(config: &Config, op: &AdminOp) -> Result<String, Failure> {
    if let Some(socket) = socket_path(config) {
        match ask(&socket, op) {
            Ok(answer) => return answer,
            // No relay: no socket, or one left by a relay that died (the
            // kernel refuses connections to it). The lock went with it.
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {}
            Err(e) => {
                return Err(Failure::Unreachable(format!(
                    "cannot connect to the relay's admin socket {}: {e}",
                    socket.display()
                )))
            }
        }
        let file = sqlite_file(&config.db).unwrap_or_default();
        if !file.exists() {
            return Err(Failure::Unreachable(format!(
                "no database at {} (start the relay once to create it, or pass --db)",
                file.display()
            )));
        }
    } else if !config.db.starts_with("postgres") {
        return Err(Failure::Refused(format!(
            "{} is not a database that outlives this command; pass --db sqlite://PATH or postgres://…",
            config.db
        )));
    }
    direct(config, op)
}

/// Asks the relay behind `socket`. `Err` only when no connection was made
/// (the caller may then open the database itself).
fn ask(socket: &Path, op: &AdminOp) -> std::io::Result<Result<String, Failure>> {
    let mut stream = UnixStream::connect(socket)?;
    let lost = |e: std::io::Error| {
        Failure::Unreachable(format!(
            "the relay's admin socket {} failed: {e}",
            socket.display()
        ))
    };
    let mut talk = || -> std::io::Result<String> {
        stream.set_read_timeout(Some(DEADLINE))?;
        stream.set_write_timeout(Some(DEADLINE))?;
        let mut line = serde_json::to_vec(&Request::of(op))?;
        line.push(b'\n');
        stream.write_all(&line)?;
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer)?;
        Ok(answer)
    };
    let answer = match talk() {
        Ok(a) => a,
        Err(e) => return Ok(Err(lost(e))),
    };
    Ok(match serde_json::from_str::<Answer>(answer.trim()) {
        Ok(Answer {
            ok: true, output, ..
        }) => Ok(output.unwrap_or_default()),
        Ok(Answer { error: Some(f), .. }) => Err(f),
        Ok(_) | Err(_) => Err(Failure::Unreachable(format!(
            "the relay answered something unexpected on {}: {answer:?}",
            socket.display()
        ))),
    })
}

/// Opens the database with the relay's own store code, applies, closes.
fn direct(config: &Config, op: &AdminOp) -> Result<String, Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Unreachable(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async {
        let cfg = config.clone();
        let opened = tokio::task::spawn_blocking(move || {
            crate::store::open(&cfg, Arc::new(Metrics::default()))
        })
        .await
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let store = opened.map_err(|e| {
            let hint = if e.to_string().contains("in use by another process") {
                " (a relay holds it, but its admin socket did not answer; is --admin-socket the same as the relay's?)"
            } else {
                ""
            };
            Failure::Unreachable(format!("cannot open the database: {e}{hint}"))
        })?;
        let result = apply(store.as_ref(), op).await;
        if let Err(e) = store.close().await {
            tracing::warn!(error = %e, "closing the database failed");
        }
        result
    })
}
