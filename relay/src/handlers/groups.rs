//! Group management: create, search, inspect, rename, add, join, leave,
//! remove. Every change goes through the store's ordered write queue, so a
//! message's recipients are exactly the members when it was stored.

use super::Authed;
use crate::error::Error;
use crate::store::GroupOp;
use crate::App;
use serde::Deserialize;
use shared::api::{GroupInfo, Groups, Invite, NewGroup, RenameGroup};
use shared::{validate, GroupId, UserId};
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::{self, Reply};
use warp::Rejection;

/// Group info as `viewer` may see it, with live online flags.
async fn info(app: &App, viewer: UserId, group: GroupId) -> Result<GroupInfo, Error> {
    let mut info = app.store.group_info(viewer, group).await?;
    for m in &mut info.members {
        m.online = app.hub.is_online(m.user_id);
    }
    Ok(info)
}

/// `POST /api/groups`
pub async fn create(app: Arc<App>, who: Authed, body: NewGroup) -> Result<impl Reply, Rejection> {
    let name = body.name.trim().to_string();
    validate::group_name(&name).map_err(Error::from)?;
    let group = app
        .store
        .change_group(GroupOp::Create {
            owner: who.user.id,
            name,
            public: body.public,
        })
        .await?;
    let info = info(&app, who.user.id, group).await?;
    Ok(reply::with_status(reply::json(&info), StatusCode::CREATED))
}

/// Query of `GET /api/groups`.
#[derive(Debug, Deserialize)]
pub struct GroupQuery {
    /// Name prefix; empty lists public groups alphabetically.
    #[serde(default)]
    pub q: String,
}

/// `GET /api/groups?q=`: public groups to join.
pub async fn search(app: Arc<App>, _who: Authed, q: GroupQuery) -> Result<impl Reply, Rejection> {
    let prefix: String =
        q.q.trim()
            .chars()
            .take(shared::limits::GROUP_NAME_MAX_CHARS)
            .collect();
    let groups = app.store.search_groups(&prefix, 50).await?;
    Ok(reply::json(&Groups { groups }))
}

/// `GET /api/groups/{id}`
pub async fn get(id: i64, app: Arc<App>, who: Authed) -> Result<impl Reply, Rejection> {
    Ok(reply::json(&info(&app, who.user.id, GroupId(id)).await?))
}

/// Applies a change and answers with the group as it is now.
async fn change(
    app: Arc<App>,
    who: Authed,
    group: GroupId,
    op: GroupOp,
) -> Result<reply::Json, Rejection> {
    app.store.change_group(op).await?;
    Ok(reply::json(&info(&app, who.user.id, group).await?))
}

/// `PATCH /api/groups/{id}` (owner only)
pub async fn rename(
    id: i64,
    app: Arc<App>,
    who: Authed,
    body: RenameGroup,
) -> Result<impl Reply, Rejection> {
    let name = body.name.trim().to_string();
    validate::group_name(&name).map_err(Error::from)?;
    let group = GroupId(id);
    let actor = who.user.id;
    change(app, who, group, GroupOp::Rename { group, actor, name }).await
}

/// `POST /api/groups/{id}/members` (any member adds someone by username)
pub async fn add(
    id: i64,
    app: Arc<App>,
    who: Authed,
    body: Invite,
) -> Result<impl Reply, Rejection> {
    let group = GroupId(id);
    let op = GroupOp::Add {
        group,
        actor: who.user.id,
        username: body.username.trim().to_string(),
    };
    change(app, who, group, op).await
}

/// `POST /api/groups/{id}/join` (public groups)
pub async fn join(id: i64, app: Arc<App>, who: Authed) -> Result<impl Reply, Rejection> {
    let group = GroupId(id);
    let user = who.user.id;
    change(app, who, group, GroupOp::Join { group, user }).await
}

/// `POST /api/groups/{id}/leave`
pub async fn leave(id: i64, app: Arc<App>, who: Authed) -> Result<impl Reply, Rejection> {
    let group = GroupId(id);
    app.store
        .change_group(GroupOp::Leave {
            group,
            user: who.user.id,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/groups/{id}/members/{userId}` (owner removes; anyone may
/// remove themselves, which is leaving)
pub async fn remove(
    id: i64,
    user: i64,
    app: Arc<App>,
    who: Authed,
) -> Result<impl Reply, Rejection> {
    let group = GroupId(id);
    let op = if user == who.user.id.0 {
        GroupOp::Leave {
            group,
            user: who.user.id,
        }
    } else {
        GroupOp::Remove {
            group,
            actor: who.user.id,
            user: UserId(user),
        }
    };
    app.store.change_group(op).await?;
    Ok(StatusCode::NO_CONTENT)
}
