//! The local admin channel of a relay on an SQLite file: a Unix socket
//! next to the database, mode 0600 (its owner only), one request per
//! connection, one JSON line each way:
//!
//! ```text
//! → {"op":"grant-agent","username":"bob"}
//! ← {"ok":true,"output":"bob: user -> agent\n"}
//! ← {"ok":false,"error":{"kind":"refused","message":"no such user: \"bob\""}}
//! ```
//!
//! The relay serves one connection at a time, with a deadline, and reads
//! at most [`MAX_LINE`] bytes: a stuck or hostile client cannot hold it.

use super::{apply, op_name, Failure};
use crate::config::{AdminOp, Config};
use crate::error::{Error, Result};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// Longest request line.
const MAX_LINE: u64 = 4096;
/// How long one request may take, reading to answering.
pub(super) const DEADLINE: Duration = Duration::from_secs(30);

/// A request on the channel.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Request {
    pub op: String,
    #[serde(default)]
    pub username: Option<String>,
    /// A webhook URL (`create-bot`, `set-webhook`).
    #[serde(default)]
    pub url: Option<String>,
}

impl Request {
    pub(super) fn of(op: &AdminOp) -> Request {
        let (username, url) = match op {
            AdminOp::GrantAdmin { username }
            | AdminOp::GrantAgent { username }
            | AdminOp::RevokeAgent { username }
            | AdminOp::RevokeBot { username }
            | AdminOp::BotToken { username } => (Some(username.clone()), None),
            AdminOp::CreateBot { username, webhook } => (Some(username.clone()), webhook.clone()),
            AdminOp::SetWebhook { username, url } => (Some(username.clone()), Some(url.clone())),
            AdminOp::ListAgents | AdminOp::ListBots => (None, None),
        };
        Request {
            op: op_name(op).to_string(),
            username,
            url,
        }
    }

    fn op(self) -> Result<AdminOp, Failure> {
        let username = || {
            self.username
                .clone()
                .ok_or_else(|| Failure::Refused(format!("{} needs a username", self.op)))
        };
        Ok(match self.op.as_str() {
            "grant-admin" => AdminOp::GrantAdmin {
                username: username()?,
            },
            "grant-agent" => AdminOp::GrantAgent {
                username: username()?,
            },
            "revoke-agent" => AdminOp::RevokeAgent {
                username: username()?,
            },
            "list-agents" => AdminOp::ListAgents,
            "create-bot" => AdminOp::CreateBot {
                username: username()?,
                webhook: self.url.clone(),
            },
            "revoke-bot" => AdminOp::RevokeBot {
                username: username()?,
            },
            "bot-token" => AdminOp::BotToken {
                username: username()?,
            },
            "set-webhook" => AdminOp::SetWebhook {
                username: username()?,
                url: self
                    .url
                    .clone()
                    .ok_or_else(|| Failure::Refused("set-webhook needs a URL".into()))?,
            },
            "list-bots" => AdminOp::ListBots,
            other => return Err(Failure::Refused(format!("unknown operation {other:?}"))),
        })
    }
}

/// An answer on the channel.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Answer {
    pub ok: bool,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub error: Option<Failure>,
}

/// Where the admin socket of `config`'s database is, if it is an SQLite
/// file.
pub fn socket_path(config: &Config) -> Option<PathBuf> {
    let file = sqlite_file(&config.db)?;
    Some(config.admin_socket.clone().unwrap_or_else(|| {
        let mut s = file.into_os_string();
        s.push(".admin.sock");
        PathBuf::from(s)
    }))
}

/// The file of an `sqlite://PATH` URL (`None` for other databases and
/// `sqlite::memory:`).
pub(super) fn sqlite_file(db: &str) -> Option<PathBuf> {
    let rest = db.strip_prefix("sqlite:")?;
    if rest == ":memory:" {
        return None;
    }
    let path = rest.strip_prefix("//").unwrap_or(rest);
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// The running channel: stops serving and removes its socket when
/// dropped.
pub struct AdminChannel {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for AdminChannel {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves the admin channel of a relay on an SQLite file (`None` for
/// other databases). Call once the store is open: the relay holds the
/// database's lock then, so a socket file already there was left by a
/// relay that died, and is replaced.
pub fn serve_channel(config: &Config, store: Arc<dyn Store>) -> Result<Option<AdminChannel>> {
    let Some(path) = socket_path(config) else {
        return Ok(None);
    };
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed a stale admin socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::Io(e)),
    }
    let listener = UnixListener::bind(&path).map_err(|e| {
        Error::Config(format!(
            "cannot create the admin socket {}: {e}",
            path.display()
        ))
    })?;
    restrict(&path)?;
    tracing::info!(path = %path.display(), "admin channel listening");
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin channel accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // The file's mode is the first fence; the peer's uid is the
            // second (it also covers the instant between bind and chmod).
            if !trusted_peer(&stream) {
                tracing::warn!("admin channel: a connection from another user, refused");
                continue;
            }
            match tokio::time::timeout(DEADLINE, answer(stream, store.as_ref())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "admin channel request failed"),
                Err(_) => tracing::warn!("admin channel request timed out"),
            }
        }
    });
    Ok(Some(AdminChannel { path, task }))
}

/// Whether the peer runs as the relay's own user (or root).
fn trusted_peer(stream: &UnixStream) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    stream
        .peer_cred()
        .is_ok_and(|c| c.uid() == me || c.uid() == 0)
}

/// Mode 0600: only the relay's user may talk to it.
fn restrict(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

async fn answer(stream: UnixStream, store: &dyn Store) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_LINE))
        .read_line(&mut line)
        .await?;
    let outcome = match serde_json::from_str::<Request>(line.trim()) {
        Ok(req) => match req.op() {
            Ok(op) => apply(store, &op).await,
            Err(f) => Err(f),
        },
        Err(e) => Err(Failure::Refused(format!("bad request: {e}"))),
    };
    let answer = match outcome {
        Ok(output) => Answer {
            ok: true,
            output: Some(output),
            error: None,
        },
        Err(f) => Answer {
            ok: false,
            output: None,
            error: Some(f),
        },
    };
    let mut out = serde_json::to_vec(&answer).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}
