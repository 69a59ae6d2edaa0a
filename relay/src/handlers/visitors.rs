//! `POST /api/visitors`: a visitor of the support desk, without an
//! account. What a visitor may do afterwards is `rules::desk`'s.

use crate::auth::{new_token, token_hash};
use crate::clock::now_ms;
use crate::error::Error;
use crate::{throttle, App};
use shared::desk::{NewVisitor, VisitorSession, VISITOR_DEFAULT_NAME, VISITOR_USERNAME_PREFIX};
use shared::validate::Invalid;
use shared::ErrorCode;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::{self, Reply};
use warp::Rejection;

/// An internal username no account can have (`validate::username` refuses
/// `~`): `~v` and 64 random bits in hex.
fn visitor_username() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    format!(
        "{VISITOR_USERNAME_PREFIX}v{:016x}",
        u64::from_be_bytes(bytes)
    )
}

/// `POST /api/visitors`: creates a visitor and a session token for them
/// (lifetime `--visitor-token-ttl`). The body is optional; valid requests
/// count against the client address's `--visitor-limit`; over it, 429.
pub async fn create(
    app: Arc<App>,
    client: IpAddr,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    let about: NewVisitor = if body.iter().all(u8::is_ascii_whitespace) {
        NewVisitor::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Error::Invalid(Invalid::new(
                ErrorCode::BadRequest,
                format!("invalid JSON body: {e}"),
            ))
        })?
    };
    let about = about.validated().map_err(Error::from)?;
    if let Err(wait) = app.throttle.visitor(client, Instant::now()) {
        app.metrics.visitor_throttled_total.fetch_add(1, Relaxed);
        return Ok(throttle::too_many(
            wait,
            "too many new visitors from this address; try again later",
        ));
    }
    let id = match app
        .store
        .create_visitor(visitor_username(), about.clone())
        .await
    {
        // 64 random bits collide about never; once more settles it.
        Err(Error::UsernameTaken) => {
            app.store
                .create_visitor(visitor_username(), about.clone())
                .await?
        }
        other => other?,
    };
    let token = new_token();
    let expires_at = now_ms() + app.config.visitor_token_ttl.as_millis() as i64;
    app.store
        .create_token(id, token_hash(&token), expires_at)
        .await?;
    app.metrics.visitors_total.fetch_add(1, Relaxed);
    tracing::info!(visitor = %id, "new visitor");
    let session = VisitorSession {
        visitor_id: id,
        token,
        expires_at,
        name: about
            .name
            .unwrap_or_else(|| VISITOR_DEFAULT_NAME.to_string()),
    };
    Ok(reply::with_status(reply::json(&session), StatusCode::CREATED).into_response())
}
