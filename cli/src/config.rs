//! The saved session: `<config dir>/session.json`, created with mode 0600
//! in a directory of mode 0700.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What `login` and `register` save.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    /// The relay, `http://host:port`.
    pub server: String,
    /// The user.
    pub user_id: shared::UserId,
    /// Their username.
    pub username: String,
    /// The bearer token.
    pub token: String,
    /// When it expires, milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// The config directory: the flag, else `$XDG_CONFIG_HOME/ferrochat`, else
/// `~/.config/ferrochat`.
pub fn dir(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = flag {
        return Ok(d.to_path_buf());
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("ferrochat"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::Other("no HOME: pass --config-dir".into()))?;
    Ok(PathBuf::from(home).join(".config").join("ferrochat"))
}

fn file(dir: &Path) -> PathBuf {
    dir.join("session.json")
}

/// The saved session, if any.
pub fn load(dir: &Path) -> Result<Option<Saved>> {
    match fs::read(file(dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Other(format!("{}: {e}", file(dir).display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Other(format!("{}: {e}", file(dir).display()))),
    }
}

/// The saved session, or an auth error telling how to get one.
pub fn require(dir: &Path) -> Result<Saved> {
    load(dir)?.ok_or_else(|| {
        Error::Auth("not logged in: run `ferrochat-cli login <username>` first".into())
    })
}

/// Saves the session: a temporary file of mode 0600 renamed over the old.
pub fn save(dir: &Path, s: &Saved) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let tmp = dir.join("session.json.tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let json = serde_json::to_vec_pretty(s).map_err(|e| Error::Other(e.to_string()))?;
    f.write_all(&json)?;
    f.sync_all()?;
    fs::rename(&tmp, file(dir))?;
    Ok(())
}

/// Forgets the session.
pub fn remove(dir: &Path) -> Result<()> {
    match fs::remove_file(file(dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_session_is_private_and_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ferrochat");
        let s = Saved {
            server: "http://127.0.0.1:1".into(),
            user_id: shared::UserId(7),
            username: "alice".into(),
            token: "t0k".into(),
            expires_at: 1,
        };
        save(&dir, &s).unwrap();
        save(&dir, &s).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file(&dir)), 0o600);
        assert_eq!(load(&dir).unwrap(), Some(s));
        remove(&dir).unwrap();
        assert_eq!(load(&dir).unwrap(), None);
        assert!(matches!(require(&dir), Err(Error::Auth(_))));
    }
}
