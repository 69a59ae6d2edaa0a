//! LOGIN: authenticate, register with the hub, send the presence snapshot
//! and the backlog.

use super::frames::error_frame;
use super::{Session, Stop};
use crate::auth::token_hash;
use crate::clock::now_ms;
use crate::hub::{SyncEnd, SMALL_GROUP};
use crate::rules::desk;
use crate::store::UserRef;
use shared::{close, ClientFrame, ErrorCode, ServerFrame};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Backlog messages loaded per query at login.
const BACKLOG_PAGE: u32 = 256;

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Waits for LOGIN, authenticates, registers and sends the backlog.
    pub(super) async fn login(&mut self) -> Result<(), Stop> {
        let deadline = Instant::now() + self.app.config.login_timeout;
        let text = loop {
            match self.next(deadline).await? {
                None => {
                    self.send(&ServerFrame::error(
                        ErrorCode::NotLoggedIn,
                        "no LOGIN frame in time",
                    ))
                    .await;
                    return Err(Stop::Close(close::PROTOCOL_VIOLATION));
                }
                Some(Message::Text(t)) => break t,
                Some(Message::Binary(_)) => return Err(self.binary().await),
                Some(Message::Close(_)) => return Err(Stop::Gone),
                Some(_) => continue, // control frames
            }
        };
        self.app.metrics.frames_in_total.fetch_add(1, Relaxed);
        let token = match ClientFrame::decode(&text) {
            Ok(ClientFrame::Login { token }) => token,
            Err(e) if e.code == ErrorCode::InvalidToken => return Err(self.login_failed().await),
            Err(e) => {
                self.send(&e.to_frame()).await;
                return Err(Stop::Close(close::PROTOCOL_VIOLATION));
            }
            Ok(other) => {
                let e = error_frame(
                    ErrorCode::NotLoggedIn,
                    "the first frame must be LOGIN (type 10)",
                    Some(other.type_code()),
                );
                self.send(&e).await;
                return Err(Stop::Close(close::PROTOCOL_VIOLATION));
            }
        };
        let hash = token_hash(&token);
        let store = &self.app.store;
        // A visitor has no contacts: nobody's presence reaches them, and
        // theirs reaches nobody (`rules::desk::sees_presence`).
        let looked_up = match store.token_user(hash, now_ms()).await {
            Ok(Some((u, role))) if !desk::sees_presence(role) => Ok(Some((u, role, Vec::new()))),
            Ok(Some((u, role))) => store
                .contacts(u.id, SMALL_GROUP as u32)
                .await
                .map(|c| Some((u, role, c))),
            other => other.map(|_| None),
        };
        let (user, role, contacts) = match looked_up {
            Ok(Some(found)) => found,
            Ok(None) => return Err(self.login_failed().await),
            Err(e) => {
                tracing::error!(error = %e, "login lookup failed");
                self.send(&ServerFrame::LoginFailed {
                    code: ErrorCode::Internal,
                    message: "internal error; try again".into(),
                })
                .await;
                return Err(Stop::Close(close::INTERNAL_ERROR));
            }
        };
        self.app.metrics.logins_total.fetch_add(1, Relaxed);
        tracing::debug!(socket = self.handle.id(), user = %user.id, "logged in");
        // LOGIN_RESP is queued before the socket is registered: once it is,
        // pushes and receipts for the user can reach it at any moment, and
        // the client must see the 11 first.
        let ok = ServerFrame::LoginOk {
            user_id: user.id,
            username: user.username.clone(),
            ts: now_ms(),
        };
        if !self.send(&ok).await {
            return Err(Stop::Gone);
        }
        // A visitor's username is internal (`~v…`): their messages, typing
        // notices and presence (to their agent) carry the name they gave.
        let shown = match role {
            shared::desk::Role::Visitor => {
                let given = self.app.store.visitor_name(user.id).await.ok().flatten();
                given.unwrap_or_else(|| shared::desk::VISITOR_DEFAULT_NAME.to_string())
            }
            _ => user.username.clone(),
        };
        let name: Arc<str> = shown.as_str().into();
        let (registration, online) = self.app.hub.register(
            &UserRef {
                id: user.id,
                username: shown,
            },
            self.handle.clone(),
            hash,
            &contacts,
        );
        self.registration = Some(registration);
        self.role = role;
        self.user = Some((user, name));
        // Presence snapshot: which contacts are online right now.
        for c in online {
            let p = ServerFrame::Presence {
                user_id: c.id,
                username: c.username,
                online: true,
                ts: now_ms(),
            };
            if !self.send(&p).await {
                return Err(Stop::Gone);
            }
        }
        self.sync_backlog().await?;
        self.desk_login().await;
        Ok(())
    }

    async fn login_failed(&self) -> Stop {
        self.app.metrics.login_failures_total.fetch_add(1, Relaxed);
        self.send(&ServerFrame::LoginFailed {
            code: ErrorCode::InvalidToken,
            message: "unknown, expired or revoked token".into(),
        })
        .await;
        Stop::Close(close::AUTH_FAILED)
    }

    /// Pushes every unacked message, page by page in `(conversation,
    /// seq)` order, waiting for queue room (the client's reading speed)
    /// between frames; then installs where the user stood in each
    /// conversation when the backlog was read, and goes live.
    async fn sync_backlog(&mut self) -> Result<(), Stop> {
        let user = self.user_id();
        let socket = self.handle.id();
        loop {
            let positions = match self.app.store.positions(user).await {
                Ok(p) => p,
                Err(e) => return Err(self.backlog_failed(e).await),
            };
            let mut after = None;
            loop {
                let page = match self.app.store.pending(user, after, BACKLOG_PAGE).await {
                    Ok(p) => p,
                    Err(e) => return Err(self.backlog_failed(e).await),
                };
                let full = page.len() as u32 == BACKLOG_PAGE;
                if let Some(last) = page.last() {
                    after = Some((last.conv, last.seq));
                }
                for frame in self.app.hub.backlog(user, socket, &page) {
                    if !self.handle.send(frame, &self.app.metrics).await {
                        return Err(Stop::Gone);
                    }
                    self.app.metrics.messages_out_total.fetch_add(1, Relaxed);
                }
                if !full {
                    break;
                }
            }
            match self.app.hub.finish_sync(user, socket, &positions) {
                SyncEnd::Done => return Ok(()),
                SyncEnd::Reload => continue,
            }
        }
    }

    async fn backlog_failed(&self, e: crate::Error) -> Stop {
        tracing::error!(error = %e, user = %self.user_id(), "backlog query failed");
        self.send(&ServerFrame::error(
            ErrorCode::Internal,
            "could not load your messages; reconnect",
        ))
        .await;
        Stop::Close(close::INTERNAL_ERROR)
    }
}
