//! Group management: create, search, inspect (a page of members at a
//! time), rename, add, join, leave, remove. Every change goes through the
//! store's ordered write queue (the rules are `rules::group`), so a
//! message's recipients are exactly the members when it was stored; it is
//! announced to the hub before the caller hears back, and answered with
//! the group's summary, never its member list.

use super::Authed;
use crate::error::Error;
use crate::store::{GroupOp, MemberRows};
use crate::App;
use serde::Deserialize;
use shared::api::{GroupInfo, Groups, Invite, MemberPage, NewGroup, RenameGroup};
use shared::limits::{MAX_MEMBER_PAGE, MEMBER_PAGE};
use shared::{validate, GroupId, Target, UserId};
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::{self, Reply};
use warp::Rejection;

/// Query of `GET /api/groups/{id}/members`.
#[derive(Debug, Deserialize)]
pub struct MembersQuery {
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

/// A page of members as `viewer` may see it (members of the group, or
/// anyone for a public one), with live online flags.
async fn members(
    app: &App,
    viewer: UserId,
    group: GroupId,
    after: Option<&str>,
    limit: Option<u32>,
) -> Result<(shared::api::GroupSummary, MemberRows), Error> {
    let summary = app.store.group(group).await?.ok_or(Error::NoSuchGroup)?;
    if !summary.public
        && app
            .store
            .membership(viewer, Target::Group(group))
            .await?
            .is_none()
    {
        // Private groups are invisible to outsiders.
        return Err(Error::NoSuchGroup);
    }
    let limit = limit.unwrap_or(MEMBER_PAGE).clamp(1, MAX_MEMBER_PAGE);
    let mut page = app.store.group_members_page(group, after, limit).await?;
    for m in &mut page.members {
        m.online = app.hub.is_online(m.user_id);
    }
    Ok((summary, page))
}

/// Applies a change, announces it, and answers with the group's summary.
async fn change(app: &App, op: GroupOp) -> Result<shared::api::GroupSummary, Error> {
    let change = app.store.change_group(op).await?;
    app.hub.group_changed(&change);
    Ok(change.summary)
}

/// `POST /api/groups`
pub async fn create(app: Arc<App>, who: Authed, body: NewGroup) -> Result<impl Reply, Rejection> {
    let name = body.name.trim().to_string();
    validate::group_name(&name).map_err(Error::from)?;
    let op = GroupOp::Create {
        owner: who.user.id,
        name,
        public: body.public,
    };
    let summary = change(&app, op).await?;
    Ok(reply::with_status(
        reply::json(&summary),
        StatusCode::CREATED,
    ))
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

/// `GET /api/groups/{id}`: the group and the first page of its members.
pub async fn get(id: i64, app: Arc<App>, who: Authed) -> Result<impl Reply, Rejection> {
    let (summary, page) = members(&app, who.user.id, GroupId(id), None, None).await?;
    Ok(reply::json(&GroupInfo {
        summary,
        members: page.members,
        next: page.next,
    }))
}

/// `GET /api/groups/{id}/members?after=&limit=`
pub async fn member_page(
    id: i64,
    app: Arc<App>,
    who: Authed,
    q: MembersQuery,
) -> Result<impl Reply, Rejection> {
    let after = q.after.as_deref().filter(|a| !a.is_empty());
    let (_, page) = members(&app, who.user.id, GroupId(id), after, q.limit).await?;
    Ok(reply::json(&MemberPage {
        members: page.members,
        next: page.next,
    }))
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
    let op = GroupOp::Rename {
        group: GroupId(id),
        actor: who.user.id,
        name,
    };
    Ok(reply::json(&change(&app, op).await?))
}

/// `POST /api/groups/{id}/members` (any member adds someone by username)
pub async fn add(
    id: i64,
    app: Arc<App>,
    who: Authed,
    body: Invite,
) -> Result<impl Reply, Rejection> {
    let op = GroupOp::Add {
        group: GroupId(id),
        actor: who.user.id,
        username: body.username.trim().to_string(),
    };
    Ok(reply::json(&change(&app, op).await?))
}

/// `POST /api/groups/{id}/join` (public groups)
pub async fn join(id: i64, app: Arc<App>, who: Authed) -> Result<impl Reply, Rejection> {
    let op = GroupOp::Join {
        group: GroupId(id),
        user: who.user.id,
    };
    Ok(reply::json(&change(&app, op).await?))
}

/// `POST /api/groups/{id}/leave`
pub async fn leave(id: i64, app: Arc<App>, who: Authed) -> Result<impl Reply, Rejection> {
    let op = GroupOp::Leave {
        group: GroupId(id),
        user: who.user.id,
    };
    change(&app, op).await?;
    crate::voice::evict(&app, GroupId(id), who.user.id).await;
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
    change(&app, op).await?;
    // No longer a member: out of the group's voice room too.
    crate::voice::evict(&app, group, UserId(user)).await;
    Ok(StatusCode::NO_CONTENT)
}
