//! Conversations and paged history.

use super::Authed;
use crate::App;
use serde::Deserialize;
use shared::limits::MAX_HISTORY_PAGE;
use shared::{GroupId, Target, UserId};
use std::sync::Arc;
use warp::reply::{self, Reply};
use warp::Rejection;

/// Query of the history endpoints.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// Only messages with a `seq` below this (older pages).
    pub before: Option<u64>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// `GET /api/conversations`: the caller's conversations, newest first,
/// with last message, unread count and cursors.
pub async fn conversations(app: Arc<App>, who: Authed) -> Result<impl Reply, Rejection> {
    Ok(reply::json(&app.store.conversations(who.user.id).await?))
}

async fn page(
    app: Arc<App>,
    who: Authed,
    to: Target,
    page: Page,
) -> Result<reply::Json, Rejection> {
    let limit = page.limit.unwrap_or(50).clamp(1, MAX_HISTORY_PAGE);
    let history =
        crate::rules::history::page(app.store.as_ref(), &who, to, page.before, limit).await?;
    Ok(reply::json(&history))
}

/// `GET /api/conversations/user/{id}/messages?before=&limit=`
pub async fn direct(
    peer: i64,
    app: Arc<App>,
    who: Authed,
    p: Page,
) -> Result<impl Reply, Rejection> {
    page(app, who, Target::User(UserId(peer)), p).await
}

/// `GET /api/conversations/group/{id}/messages?before=&limit=`
pub async fn group(id: i64, app: Arc<App>, who: Authed, p: Page) -> Result<impl Reply, Rejection> {
    page(app, who, Target::Group(GroupId(id)), p).await
}
