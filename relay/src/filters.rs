//! Routing: one warp filter per route, in the style of warp's `todos`
//! example. Every route that reads a body has a body limit (routes that
//! ignore their body never read it), and all rejections go through one
//! `recover`.

use crate::handlers::{self, groups, history, messages, visitors, Authed, ConnSlot};
use crate::rules::desk;
use crate::server::RemoteAddr;
use crate::App;
use hyper::upgrade::OnUpgrade;
use shared::api::{Credentials, Invite, NewGroup, RenameGroup};
use shared::limits::MAX_HTTP_BODY_BYTES;
use std::net::IpAddr;
use std::sync::Arc;
use warp::http::HeaderMap;
use warp::Filter;

/// All routes.
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone {
    let api = register(app.clone())
        .or(new_visitor(app.clone()))
        .or(login(app.clone()))
        .or(logout(app.clone()))
        .or(me(app.clone()))
        .or(online(app.clone()))
        .or(search_users(app.clone()))
        .or(conversations(app.clone()))
        .or(direct_history(app.clone()))
        .or(group_history(app.clone()))
        .or(create_group(app.clone()))
        .or(search_groups(app.clone()))
        .or(get_group(app.clone()))
        .or(group_members(app.clone()))
        .or(rename_group(app.clone()))
        .or(add_member(app.clone()))
        .or(join_group(app.clone()))
        .or(leave_group(app.clone()))
        .or(remove_member(app.clone()))
        .or(send_message(app.clone()));
    healthz(app.clone())
        .or(metrics(app.clone()))
        .or(ws(app.clone()))
        .or(api)
        .or(crate::static_files::filter(app))
        .recover(handlers::recover)
        .map(warp::Reply::into_response)
}

fn with_app(
    app: Arc<App>,
) -> impl Filter<Extract = (Arc<App>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// A JSON body of at most `MAX_HTTP_BODY_BYTES`.
fn json_body<T: serde::de::DeserializeOwned + Send>(
) -> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(MAX_HTTP_BODY_BYTES).and(warp::body::json())
}

/// The client's address: the TCP peer, or what a trusted proxy says (see
/// `throttle`).
fn client_ip(
    app: Arc<App>,
) -> impl Filter<Extract = (IpAddr,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<RemoteAddr>()
        .and(warp::header::headers_cloned())
        .map(move |peer: Option<RemoteAddr>, headers: HeaderMap| {
            app.throttle.client_ip(peer.map(|p| p.0), &headers)
        })
}

/// Requires `Authorization: Bearer <token>` of an account: visitors are
/// refused (`rules::desk::api`). Routes are closed to visitors unless
/// they say otherwise ([`own_session`]).
fn authed(app: Arc<App>) -> impl Filter<Extract = (Authed,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(with_app(app))
        .and(warp::any().map(|| desk::Api::Accounts))
        .and_then(handlers::authenticate)
}

/// Requires `Authorization: Bearer <token>` of anyone, visitors included:
/// for the caller's own session only.
fn own_session(app: Arc<App>) -> impl Filter<Extract = (Authed,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(with_app(app))
        .and(warp::any().map(|| desk::Api::OwnSession))
        .and_then(handlers::authenticate)
}

/// Requires a bearer token of a user or a visitor: the history of a
/// group, which for a visitor can only be their desk conversation (the
/// history rules check membership).
fn member_or_visitor(
    app: Arc<App>,
) -> impl Filter<Extract = (Authed,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(with_app(app))
        .and(warp::any().map(|| desk::Api::GroupHistory))
        .and_then(handlers::authenticate)
}

/// `POST /api/register`
pub fn register(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "register")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(client_ip(app))
        .and(json_body::<Credentials>())
        .and_then(handlers::register)
}

/// `POST /api/visitors`: the body is optional (`{}` when empty).
pub fn new_visitor(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "visitors")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(client_ip(app))
        .and(optional_body())
        .and_then(visitors::create)
}

/// A body of at most `MAX_HTTP_BODY_BYTES`, or an empty one when the
/// request says it has none (neither `Content-Length` nor
/// `Transfer-Encoding`).
fn optional_body(
) -> impl Filter<Extract = (warp::hyper::body::Bytes,), Error = warp::Rejection> + Clone {
    let sized = warp::body::content_length_limit(MAX_HTTP_BODY_BYTES).and(warp::body::bytes());
    let none = warp::header::optional::<String>("content-length")
        .and(warp::header::optional::<String>("transfer-encoding"))
        .and_then(|len: Option<String>, te: Option<String>| async move {
            match (len, te) {
                (None, None) => Ok(warp::hyper::body::Bytes::new()),
                // Not this branch: the sized one's rejection stands.
                _ => Err(warp::reject::not_found()),
            }
        });
    sized.or(none).unify()
}

/// `POST /api/login`
pub fn login(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "login")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(client_ip(app))
        .and(json_body::<Credentials>())
        .and_then(handlers::login)
}

/// `POST /api/logout`
pub fn logout(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "logout")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(own_session(app))
        .and_then(handlers::logout)
}

/// `GET /api/me`
pub fn me(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "me")
        .and(warp::get())
        .and(own_session(app))
        .and_then(handlers::me)
}

/// `GET /api/users/online`
pub fn online(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "users" / "online")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and(warp::query::<handlers::OnlineQuery>())
        .and_then(handlers::online)
}

/// `GET /api/users?q=prefix`
pub fn search_users(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "users")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and(warp::query::<handlers::SearchQuery>())
        .and_then(handlers::search_users)
}

/// `GET /healthz`
pub fn healthz(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .and(with_app(app))
        .and_then(handlers::healthz)
}

/// `GET /metrics`
pub fn metrics(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(with_app(app))
        .and_then(handlers::metrics)
}

/// `GET /ws`
pub fn ws(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("ws")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::ext::optional::<ConnSlot>())
        .and(client_ip(app.clone()))
        .and(with_app(app))
        .and_then(handlers::ws_upgrade)
}

/// `GET /api/conversations`
pub fn conversations(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "conversations")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and_then(history::conversations)
}

/// `GET /api/conversations/user/{id}/messages`
pub fn direct_history(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "conversations" / "user" / i64 / "messages")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and(warp::query::<history::Page>())
        .and_then(history::direct)
}

/// `GET /api/conversations/group/{id}/messages`
pub fn group_history(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "conversations" / "group" / i64 / "messages")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(member_or_visitor(app))
        .and(warp::query::<history::Page>())
        .and_then(history::group)
}

/// `POST /api/messages`
pub fn send_message(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "messages")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and(json_body::<shared::bots::SendMessage>())
        .and_then(messages::send)
}

/// `POST /api/groups`
pub fn create_group(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "groups")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and(json_body::<NewGroup>())
        .and_then(groups::create)
}

/// `GET /api/groups?q=`
pub fn search_groups(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "groups")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and(warp::query::<groups::GroupQuery>())
        .and_then(groups::search)
}

/// `GET /api/groups/{id}`
pub fn get_group(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "groups" / i64)
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and_then(groups::get)
}

/// `GET /api/groups/{id}/members?after=&limit=`
pub fn group_members(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "groups" / i64 / "members")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and(warp::query::<groups::MembersQuery>())
        .and_then(groups::member_page)
}

/// `PATCH /api/groups/{id}`
pub fn rename_group(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "groups" / i64)
        .and(warp::patch())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and(json_body::<RenameGroup>())
        .and_then(groups::rename)
}

/// `POST /api/groups/{id}/members`
pub fn add_member(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "groups" / i64 / "members")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and(json_body::<Invite>())
        .and_then(groups::add)
}

/// `POST /api/groups/{id}/join`
pub fn join_group(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "groups" / i64 / "join")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and_then(groups::join)
}

/// `POST /api/groups/{id}/leave`
pub fn leave_group(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "groups" / i64 / "leave")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and_then(groups::leave)
}

/// `DELETE /api/groups/{id}/members/{userId}`
pub fn remove_member(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "groups" / i64 / "members" / i64)
        .and(warp::delete())
        .and(with_app(app.clone()))
        .and(authed(app))
        .and_then(groups::remove)
}
