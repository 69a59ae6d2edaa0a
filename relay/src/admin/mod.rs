//! `ferrochat-relay admin …`: grant and revoke roles, list agents; create
//! bots, their tokens and webhooks (`bots.rs`).
//!
//! One set of operations ([`apply`], over the [`Store`] trait and the
//! rules in `rules::desk`) reached three ways, whichever works:
//! - **a relay runs on the SQLite file**: it holds the database's
//!   exclusive lock, so the command asks it over its local admin channel,
//!   a Unix socket next to the database (`channel.rs`), and the relay runs
//!   [`apply`] on its own store;
//! - **no relay runs on it** (no socket, or a stale one that refuses
//!   connections): the command opens the database itself, applies, closes;
//! - **PostgreSQL** (a cluster): the command opens the shared database
//!   and writes to it directly. Relays read a role from the database with
//!   the token at every request and login (`Store::token_user`), so every
//!   relay sees it at once, without a restart or a cache to invalidate.
//!
//! Exit codes: 0 done; 1 refused (unknown user, a visitor, …); 3 the
//! database or the relay could not be reached.

mod bots;
mod channel;
mod command;

pub use channel::{serve_channel, AdminChannel};
pub use command::main;

use crate::config::AdminOp;
use crate::error::Error;
use crate::rules::desk;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use shared::desk::Role;

/// Why an operation did not happen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "lowercase")]
pub enum Failure {
    /// The request is wrong (unknown user, not allowed): exit code 1.
    Refused(String),
    /// The database or the relay could not be reached: exit code 3.
    Unreachable(String),
}

impl Failure {
    /// The process exit code for it.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused(_) => 1,
            Failure::Unreachable(_) => 3,
        }
    }

    /// The message for the operator.
    pub fn message(&self) -> &str {
        match self {
            Failure::Refused(m) | Failure::Unreachable(m) => m,
        }
    }

    pub(crate) fn from_store(e: Error) -> Failure {
        match e {
            Error::Forbidden(m) => Failure::Refused(m.to_string()),
            Error::Invalid(i) => Failure::Refused(i.message),
            e => Failure::Unreachable(format!("the database failed: {e}")),
        }
    }
}

/// The operation's name on the admin channel and in messages.
pub fn op_name(op: &AdminOp) -> &'static str {
    match op {
        AdminOp::GrantAdmin { .. } => "grant-admin",
        AdminOp::GrantAgent { .. } => "grant-agent",
        AdminOp::RevokeAgent { .. } => "revoke-agent",
        AdminOp::ListAgents => "list-agents",
        AdminOp::CreateBot { .. } => "create-bot",
        AdminOp::RevokeBot { .. } => "revoke-bot",
        AdminOp::BotToken { .. } => "bot-token",
        AdminOp::SetWebhook { .. } => "set-webhook",
        AdminOp::ListBots => "list-bots",
    }
}

/// Runs `op` on `store`; the text to print when it worked.
pub async fn apply(store: &dyn Store, op: &AdminOp) -> Result<String, Failure> {
    match op {
        AdminOp::GrantAdmin { username } => set_role(store, username, Role::Admin).await,
        AdminOp::GrantAgent { username } => set_role(store, username, Role::Agent).await,
        AdminOp::RevokeAgent { username } => set_role(store, username, Role::User).await,
        AdminOp::ListAgents => {
            let staff = store.staff().await.map_err(Failure::from_store)?;
            Ok(staff
                .iter()
                .map(|(u, role)| format!("{}\t{role}\n", u.username))
                .collect())
        }
        AdminOp::CreateBot { username, webhook } => {
            bots::create(store, username, webhook.as_deref()).await
        }
        AdminOp::RevokeBot { username } => bots::revoke(store, username).await,
        AdminOp::BotToken { username } => bots::token(store, username).await,
        AdminOp::SetWebhook { username, url } => bots::set_webhook(store, username, url).await,
        AdminOp::ListBots => bots::list(store).await,
    }
}

async fn set_role(store: &dyn Store, username: &str, role: Role) -> Result<String, Failure> {
    let found = store
        .user_role(username)
        .await
        .map_err(Failure::from_store)?;
    let Some((user, current)) = found else {
        return Err(Failure::Refused(format!("no such user: {username:?}")));
    };
    desk::grant(current, role).map_err(Failure::from_store)?;
    if current == role {
        return Ok(format!("{} is already {role}\n", user.username));
    }
    store
        .set_role(user.id, role)
        .await
        .map_err(Failure::from_store)?;
    tracing::info!(user = %user.id, username = %user.username, from = %current, to = %role, "role changed");
    Ok(format!("{}: {current} -> {role}\n", user.username))
}
