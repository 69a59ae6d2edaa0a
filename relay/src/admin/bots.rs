//! The admin command's bot operations: create a bot (printing its token,
//! and its webhook's secret, once), revoke its tokens or issue a new one,
//! set or remove its webhook, list bots.

use super::Failure;
use crate::auth::{new_token, token_hash};
use crate::store::bots::BOT_TOKEN_EXPIRES_AT;
use crate::store::{Store, UserRef, Webhook};
use crate::webhook::{new_secret, Target};
use shared::desk::Role;
use shared::validate;

/// A webhook for `url` with a fresh secret; refused if `url` is not one
/// the dispatcher can reach (addresses are checked at delivery).
fn webhook(url: &str) -> Result<Webhook, Failure> {
    Target::parse(url).map_err(Failure::Refused)?;
    Ok(Webhook {
        url: url.to_string(),
        secret: new_secret(),
    })
}

fn printed(w: &Option<Webhook>) -> String {
    w.as_ref().map_or_else(String::new, |w| {
        format!("webhook\t{}\nsecret\t{}\n", w.url, w.secret)
    })
}

pub(super) async fn create(
    store: &dyn Store,
    username: &str,
    url: Option<&str>,
) -> Result<String, Failure> {
    validate::username(username).map_err(|e| Failure::Refused(e.message))?;
    let hook = url.map(webhook).transpose()?;
    let token = new_token();
    let id = store
        .create_bot(username.to_string(), token_hash(&token), hook.clone())
        .await
        .map_err(|e| match e {
            crate::Error::UsernameTaken => Failure::Refused(format!("{username:?} is taken")),
            e => Failure::from_store(e),
        })?;
    tracing::info!(bot = %id, username, "bot created");
    Ok(format!(
        "bot\t{username}\nuserId\t{}\ntoken\t{token}\n{}",
        id.0,
        printed(&hook)
    ))
}

/// The bot named `username`, or why not.
async fn bot(store: &dyn Store, username: &str) -> Result<UserRef, Failure> {
    match store
        .user_role(username)
        .await
        .map_err(Failure::from_store)?
    {
        Some((u, Role::Bot)) => Ok(u),
        Some(_) => Err(Failure::Refused(format!("{username:?} is not a bot"))),
        None => Err(Failure::Refused(format!("no such bot: {username:?}"))),
    }
}

pub(super) async fn revoke(store: &dyn Store, username: &str) -> Result<String, Failure> {
    let b = bot(store, username).await?;
    let n = store
        .revoke_tokens(b.id)
        .await
        .map_err(Failure::from_store)?;
    tracing::info!(bot = %b.id, tokens = n, "bot tokens revoked");
    Ok(format!("{}: {n} token(s) revoked\n", b.username))
}

pub(super) async fn token(store: &dyn Store, username: &str) -> Result<String, Failure> {
    let b = bot(store, username).await?;
    let token = new_token();
    store
        .create_token(b.id, token_hash(&token), BOT_TOKEN_EXPIRES_AT)
        .await
        .map_err(Failure::from_store)?;
    Ok(format!("token\t{token}\n"))
}

pub(super) async fn set_webhook(
    store: &dyn Store,
    username: &str,
    url: &str,
) -> Result<String, Failure> {
    let b = bot(store, username).await?;
    let hook = if url.eq_ignore_ascii_case("none") {
        None
    } else {
        Some(webhook(url)?)
    };
    store
        .set_webhook(b.id, hook.clone())
        .await
        .map_err(Failure::from_store)?;
    Ok(match hook {
        Some(_) => printed(&hook),
        None => format!("{}: webhook removed\n", b.username),
    })
}

pub(super) async fn list(store: &dyn Store) -> Result<String, Failure> {
    let bots = store.bots().await.map_err(Failure::from_store)?;
    Ok(bots
        .iter()
        .map(|b| {
            format!(
                "{}\t{}\ttokens={}\tpending={}\tfailed={}\t{}\n",
                b.bot.username,
                b.webhook.as_deref().unwrap_or("-"),
                b.tokens,
                b.pending,
                b.failed,
                b.last_error.as_deref().unwrap_or("-"),
            )
        })
        .collect())
}
