//! `POST /api/messages`: a chat over HTTP, for bots (and scripts with a
//! user's token). Checked like a WebSocket CHAT (the frame decoder's
//! checks, then the same path through the store and the hub:
//! `crate::sending`), and answered only once the message is durable:
//! `201` with its `msgId`/`ts`/`seq`, or `200` with the original's for a
//! repeated `clientMsgId`. Each user sends at most `--rate-limit` a second
//! in bursts of `--rate-burst` (as on a WebSocket, but per user, whatever
//! token it uses): over it, 429 with `Retry-After`, before any check.

use super::Authed;
use crate::error::Error;
use crate::store::NewChat;
use crate::{throttle, App};
use shared::bots::{MessageSent, SendMessage};
use shared::validate::{self, Invalid};
use shared::ErrorCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use warp::http::StatusCode;
use warp::reply::{self, Reply};
use warp::Rejection;

/// `POST /api/messages`.
pub async fn send(
    app: Arc<App>,
    who: Authed,
    req: SendMessage,
) -> Result<warp::reply::Response, Rejection> {
    if let Err(wait) = app.throttle.api_send(who.user.id, Instant::now()) {
        app.metrics.api_rate_limited_total.fetch_add(1, Relaxed);
        return Ok(throttle::too_many(
            wait,
            &format!(
                "more than {} messages per second; this one was not sent",
                app.config.rate_limit
            ),
        ));
    }
    let to = req.target().ok_or_else(|| {
        Error::from(Invalid::new(
            ErrorCode::InvalidField,
            "name exactly one of toId and groupId",
        ))
    })?;
    if let Some(key) = &req.client_msg_id {
        validate::client_msg_id(key).map_err(Error::from)?;
    }
    validate::content(req.content.content_type, &req.content.body).map_err(Error::from)?;
    let chat = NewChat {
        received: std::time::Instant::now(),
        from: who.user.id,
        from_name: who.user.username.as_str().into(),
        to,
        client_msg_id: req.client_msg_id,
        content: req.content,
    };
    let (o, duplicate) = crate::sending::send(&app, chat).await?;
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = MessageSent {
        msg_id: o.msg_id,
        ts: o.ts,
        seq: o.seq,
        duplicate,
    };
    Ok(reply::with_status(reply::json(&body), status).into_response())
}
