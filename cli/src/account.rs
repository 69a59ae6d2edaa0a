//! `register`, `login` and `logout`: the password prompt and the saved
//! session.

use crate::config::{self, Saved};
use crate::error::{Error, Result};
use crate::http::Api;
use shared::api::Credentials;
use std::path::Path;

/// The password: `FERROCHAT_PASSWORD`, else prompted without echo.
fn password() -> Result<String> {
    if let Ok(p) = std::env::var("FERROCHAT_PASSWORD") {
        return Ok(p);
    }
    rpassword::prompt_password("password: ")
        .map_err(|e| Error::Usage(format!("cannot read the password: {e}")))
}

/// Registers or logs in, and saves the session.
pub async fn authenticate(
    server: &str,
    dir: &Path,
    username: &str,
    register: bool,
) -> Result<Saved> {
    let creds = Credentials {
        username: username.to_string(),
        password: password()?,
    };
    let s = Api::new(server, None)
        .authenticate(register, &creds)
        .await?;
    let saved = Saved {
        server: server.to_string(),
        user_id: s.user_id,
        username: s.username,
        token: s.token,
        expires_at: s.expires_at,
    };
    config::save(dir, &saved)?;
    Ok(saved)
}

/// Revokes the saved token (an already refused one is fine) and forgets it.
pub async fn logout(dir: &Path) -> Result<()> {
    let saved = config::require(dir)?;
    match Api::new(&saved.server, Some(saved.token.clone()))
        .logout()
        .await
    {
        Ok(()) | Err(Error::Auth(_)) => {}
        Err(e) => return Err(e),
    }
    config::remove(dir)
}
