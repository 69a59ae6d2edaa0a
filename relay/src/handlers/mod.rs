//! HTTP handlers: one async function per route. Routing lives in
//! `filters.rs`; errors become JSON in [`recover`].

pub mod groups;
pub mod history;
pub mod messages;
pub mod visitors;

use crate::auth::{new_token, token_hash, TokenHash};
use crate::clock::now_ms;
use crate::connection;
use crate::error::Error;
use crate::rules::desk;
use crate::store::UserRef;
use crate::{throttle, App};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use shared::api::{ApiError, Credentials, OnlineUsers, Session, UserSummary};
use shared::desk::{Me, Role as UserRole};
use shared::{close, validate, ErrorCode};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use warp::reply::{self, Reply};
use warp::{reject, Rejection};

/// A rejection carrying a relay error, turned into JSON by [`recover`].
#[derive(Debug)]
pub struct ApiReject(pub Error);

impl reject::Reject for ApiReject {}

impl From<Error> for Rejection {
    fn from(e: Error) -> Rejection {
        reject::custom(ApiReject(e))
    }
}

/// The caller of an authenticated endpoint.
#[derive(Clone, Debug)]
pub struct Authed {
    /// Who.
    pub user: UserRef,
    /// Their role, as stored when the request came.
    pub role: UserRole,
    /// The token they used.
    pub token: TokenHash,
}

fn error_reply(
    status: StatusCode,
    code: ErrorCode,
    message: impl Into<String>,
) -> warp::reply::Response {
    let body = ApiError {
        code,
        message: message.into(),
    };
    reply::with_status(reply::json(&body), status).into_response()
}

fn summary(u: &UserRef) -> UserSummary {
    UserSummary {
        user_id: u.id,
        username: u.username.clone(),
    }
}

/// Checks a bearer token, and that its owner may call `api`
/// (`rules::desk::api`).
pub async fn authenticate(
    header: Option<String>,
    app: Arc<App>,
    api: desk::Api,
) -> Result<Authed, Rejection> {
    let token = crate::auth::bearer(header.as_deref()).ok_or(Error::Unauthorized)?;
    let hash = token_hash(token);
    match app.store.token_user(hash, now_ms()).await? {
        Some((user, role)) => {
            desk::api(role, api)?;
            Ok(Authed {
                user,
                role,
                token: hash,
            })
        }
        None => Err(Error::Unauthorized.into()),
    }
}

pub(crate) async fn issue_session(
    app: &App,
    user_id: shared::UserId,
    username: String,
) -> Result<Session, Error> {
    let token = new_token();
    let expires_at = now_ms() + app.config.token_ttl.as_millis() as i64;
    app.store
        .create_token(user_id, token_hash(&token), expires_at)
        .await?;
    Ok(Session {
        user_id,
        username,
        token,
        expires_at,
    })
}

/// `POST /api/register`. Valid requests count against the client
/// address's `--register-limit` before any hashing; over it, 429.
pub async fn register(
    app: Arc<App>,
    client: IpAddr,
    creds: Credentials,
) -> Result<warp::reply::Response, Rejection> {
    validate::username(&creds.username).map_err(Error::from)?;
    validate::password(&creds.password).map_err(Error::from)?;
    if let Err(wait) = app.throttle.register(client, Instant::now()) {
        app.metrics.register_throttled_total.fetch_add(1, Relaxed);
        return Ok(throttle::too_many(
            wait,
            "too many registrations from this address; try again later",
        ));
    }
    let hash = app.hashing.hash(creds.password).await?;
    let id = app.store.create_user(creds.username.clone(), hash).await?;
    app.throttle
        .registered(&creds.username, client, Instant::now());
    app.metrics.registrations_total.fetch_add(1, Relaxed);
    tracing::info!(user = %id, username = %creds.username, "registered");
    let session = issue_session(&app, id, creds.username).await?;
    Ok(reply::with_status(reply::json(&session), StatusCode::CREATED).into_response())
}

/// `POST /api/login`. Unknown user and wrong password give the same answer
/// in the same time. A username or client address locked by failed logins
/// (see `throttle`) gets 429 before any lookup or hashing.
pub async fn login(
    app: Arc<App>,
    client: IpAddr,
    creds: Credentials,
) -> Result<warp::reply::Response, Rejection> {
    let attempt = match app.throttle.login(&creds.username, client, Instant::now()) {
        Ok(attempt) => attempt,
        Err(wait) => {
            app.metrics.login_throttled_total.fetch_add(1, Relaxed);
            return Ok(throttle::too_many(
                wait,
                "too many failed logins; try again later",
            ));
        }
    };
    let plausible =
        validate::username(&creds.username).is_ok() && validate::password(&creds.password).is_ok();
    let user = if plausible {
        app.store.user_by_name(&creds.username).await?
    } else {
        None
    };
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    if !app.hashing.verify(creds.password, stored).await? {
        attempt.failed();
        return Err(Error::InvalidCredentials.into());
    }
    attempt.succeeded();
    let user = user.expect("verified against a stored hash");
    let session = issue_session(&app, user.id, user.username).await?;
    Ok(reply::json(&session).into_response())
}

/// `POST /api/logout`: revokes the token and closes its sockets.
pub async fn logout(app: Arc<App>, who: Authed) -> Result<impl Reply, Rejection> {
    if let Some(user) = app.store.revoke_token(who.token).await? {
        app.hub.kick_token(user, &who.token, close::LOGGED_OUT);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/me`: the caller, with their role as stored now.
pub async fn me(who: Authed) -> Result<impl Reply, Rejection> {
    Ok(reply::json(&Me {
        user_id: who.user.id,
        username: who.user.username,
        role: who.role,
    }))
}

/// Query of `GET /api/users/online`.
#[derive(Debug, Deserialize)]
pub struct OnlineQuery {
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

/// `GET /api/users/online?after=&limit=`: the caller's contacts who are
/// online, by username, a page at a time. Presence reaches a user only for
/// their contacts (as type 50 frames do); a stranger's is nobody's
/// business. (S2's `:olu` is served by this.)
pub async fn online(app: Arc<App>, who: Authed, q: OnlineQuery) -> Result<impl Reply, Rejection> {
    let me = who.user.id;
    let mut users = match app.hub.online_contacts(me) {
        Some(users) => users,
        None => {
            let contacts = app
                .store
                .contacts(me, crate::hub::SMALL_GROUP as u32)
                .await?;
            app.hub.online_among(contacts.into_iter().map(|c| c.id))
        }
    };
    let key = |u: &UserRef| u.username.to_lowercase();
    users.sort_by_key(key);
    if let Some(after) = q.after.as_deref().map(str::to_lowercase) {
        users.retain(|u| key(u) > after);
    }
    let limit = q
        .limit
        .unwrap_or(shared::limits::MEMBER_PAGE)
        .clamp(1, shared::limits::MAX_MEMBER_PAGE) as usize;
    let next = (users.len() > limit).then(|| users[limit - 1].username.clone());
    users.truncate(limit);
    Ok(reply::json(&OnlineUsers {
        users: users.iter().map(summary).collect(),
        next,
    }))
}

/// Query of `GET /api/users`.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    /// Username prefix.
    #[serde(default)]
    pub q: String,
}

/// `GET /api/users?q=prefix`.
pub async fn search_users(
    app: Arc<App>,
    _who: Authed,
    query: SearchQuery,
) -> Result<impl Reply, Rejection> {
    let prefix: String = query
        .q
        .trim()
        .chars()
        .take(shared::limits::USERNAME_MAX_CHARS)
        .collect();
    let users = if prefix.is_empty() {
        Vec::new()
    } else {
        app.store.search_users(&prefix, 20).await?
    };
    Ok(reply::json(&OnlineUsers {
        next: None,
        users: users.iter().map(summary).collect(),
    }))
}

/// `GET /healthz`.
pub async fn healthz(app: Arc<App>) -> Result<impl Reply, Infallible> {
    let degraded = app.cluster.as_ref().and_then(|c| c.unhealthy());
    Ok(if app.is_shutting_down() {
        reply::with_status(
            "shutting down\n".to_string(),
            StatusCode::SERVICE_UNAVAILABLE,
        )
    } else if let Some(why) = degraded {
        reply::with_status(
            format!("degraded: {why}\n"),
            StatusCode::SERVICE_UNAVAILABLE,
        )
    } else {
        reply::with_status("ok\n".to_string(), StatusCode::OK)
    })
}

/// `GET /metrics`.
pub async fn metrics(app: Arc<App>) -> Result<impl Reply, Infallible> {
    Ok(reply::with_header(
        app.metrics.render(),
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    ))
}

/// The connection's slot under the connection cap. An upgraded WebSocket
/// takes it over, so the cap counts live sockets, not just HTTP requests.
#[derive(Clone)]
pub struct ConnSlot(pub Arc<parking_lot::Mutex<Option<crate::server::ConnPermit>>>);

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// `GET /ws`: completes the WebSocket handshake and hands the upgraded
/// connection to a session (`connection::serve`).
pub async fn ws_upgrade(
    headers: HeaderMap,
    on_upgrade: Option<OnUpgrade>,
    slot: Option<ConnSlot>,
    client: std::net::IpAddr,
    app: Arc<App>,
) -> Result<warp::reply::Response, Rejection> {
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    let valid = header_has_token(&headers, header::CONNECTION, "upgrade")
        && header_has_token(&headers, header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(|v| v.as_bytes())
            == Some(b"13");
    let (Some(key), Some(on_upgrade), true) = (key, on_upgrade, valid) else {
        return Ok(error_reply(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "expected a WebSocket upgrade (version 13)",
        ));
    };
    if app.is_shutting_down() {
        return Ok(error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
            "the relay is shutting down",
        ));
    }
    let accept = derive_accept_key(key.as_bytes());
    let permit = slot.and_then(|s| s.0.lock().take());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(connection::ws_config()),
                )
                .await;
                // The session gets a task of its own: a task's memory is
                // sized for its largest state for its whole life, and the
                // handshake states are bigger than the session's.
                tokio::spawn(connection::serve(ws, app, permit, client));
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    Ok(switching_protocols(&accept))
}

/// The 101 answer to a WebSocket handshake, given its `Sec-WebSocket-Accept`
/// (from `derive_accept_key`).
pub fn switching_protocols(accept: &str) -> warp::reply::Response {
    let mut res = Response::new(warp::hyper::body::Bytes::new().into());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(accept).expect("base64 is a valid header value"),
    );
    res
}

/// Turns every rejection into a JSON error body with the right status.
pub async fn recover(r: Rejection) -> Result<warp::reply::Response, Infallible> {
    if let Some(ApiReject(e)) = r.find::<ApiReject>() {
        if e.code() == ErrorCode::Internal {
            tracing::error!(error = %e, "request failed");
        }
        return Ok(error_reply(e.status(), e.code(), e.public_message()));
    }
    let (status, code, message) = if r.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such endpoint".to_string(),
        )
    } else if r.find::<reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "request bodies are limited to {} bytes",
                shared::limits::MAX_HTTP_BODY_BYTES
            ),
        )
    } else if let Some(e) = r.find::<warp::filters::body::BodyDeserializeError>() {
        (
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("invalid JSON body: {e}"),
        )
    } else if r.find::<reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            ErrorCode::BadRequest,
            "a Content-Length header is required".to_string(),
        )
    } else if r.find::<reject::UnsupportedMediaType>().is_some() {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "send Content-Type: application/json".to_string(),
        )
    } else if r.find::<reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "method not allowed on this path".to_string(),
        )
    } else if r.find::<reject::InvalidQuery>().is_some() {
        (
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "invalid query string".to_string(),
        )
    } else {
        tracing::warn!(rejection = ?r, "unhandled rejection");
        (
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "bad request".to_string(),
        )
    };
    Ok(error_reply(status, code, message))
}
