//! Every frame after login: rate limit, then chat, ack, read, typing,
//! ping (voice frames go on to `voice.rs`). Errors are framed one way ([`error_frame`]).

use super::{Session, Stop};
use crate::clock::now_ms;
use crate::error::Error;
use crate::hub::{AckOutcome, SMALL_GROUP};
use crate::rules::desk;
use crate::socket::encode;
use crate::store::NewChat;
use shared::{
    close, frame_type, ChatSend, ClientFrame, ErrorCode, ErrorFrame, MsgId, ServerFrame, Target,
};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Typing notices per conversation are relayed at most this often.
const TYPING_THROTTLE: Duration = Duration::from_secs(1);
/// ACKs for ids the hub does not track (each costs a read) that are free
/// of the rate limit: a burst, refilled at this rate. A client acks what
/// it was pushed, so only a confused or hostile one goes past it.
pub(super) const UNKNOWN_ACK_BURST: f64 = 32.0;
pub(super) const UNKNOWN_ACK_RATE: f64 = 4.0;

/// A type 0 frame answering a frame of type `req_type`.
pub(super) fn error_frame(
    code: ErrorCode,
    message: impl Into<String>,
    req_type: Option<u16>,
) -> ServerFrame {
    ServerFrame::Error(ErrorFrame {
        code,
        message: message.into(),
        req_type: req_type.map(|t| t.to_string()),
        client_msg_id: None,
        msg_id: None,
    })
}

/// A type 0 frame for a relay error about a frame of type `req_type`.
pub(super) fn relay_error(e: &Error, req_type: u16) -> ServerFrame {
    error_frame(e.code(), e.public_message(), Some(req_type))
}

/// The same frame, naming the chat (`clientMsgId`) or ack (`msgId`) it
/// answers.
pub(super) fn naming(
    mut frame: ServerFrame,
    client_msg_id: Option<String>,
    msg_id: Option<MsgId>,
) -> ServerFrame {
    if let ServerFrame::Error(e) = &mut frame {
        e.client_msg_id = client_msg_id;
        e.msg_id = msg_id;
    }
    frame
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub(super) async fn on_text(&mut self, text: &str) -> Result<(), Stop> {
        let frame = ClientFrame::decode(text);
        let exempt = matches!(
            frame,
            Ok(ClientFrame::Ping { .. } | ClientFrame::Ack { .. })
        );
        if !exempt && !self.bucket.try_take(std::time::Instant::now()) {
            let client_msg_id = match &frame {
                Ok(ClientFrame::Chat(c)) => c.client_msg_id.clone(),
                _ => None,
            };
            let req_type = frame.as_ref().ok().map(|f| f.type_code());
            return self.rate_limited(req_type, client_msg_id).await;
        }
        let me = self.user_id();
        if let Ok(f) = &frame {
            if let Err(e) = desk::frame(self.role, f) {
                let client_msg_id = match f {
                    ClientFrame::Chat(c) => c.client_msg_id.clone(),
                    _ => None,
                };
                let refused = naming(relay_error(&e, f.type_code()), client_msg_id, None);
                return self.reply(self.send(&refused).await);
            }
        }
        match frame {
            Err(e) => self.reply(self.send(&e.to_frame()).await),
            Ok(ClientFrame::Login { .. }) => self.reply(
                self.send(&error_frame(
                    ErrorCode::AlreadyLoggedIn,
                    "this socket is already logged in",
                    Some(frame_type::LOGIN),
                ))
                .await,
            ),
            Ok(ClientFrame::Ping { from_id }) => {
                if from_id.is_some_and(|f| f != me) {
                    return self.reply(self.spoofed(frame_type::PING, None).await);
                }
                self.reply(self.send(&ServerFrame::Pong { ts: now_ms() }).await)
            }
            Ok(ClientFrame::Chat(c)) => self.chat(c).await,
            Ok(ClientFrame::Ack { msg_id }) => self.ack(msg_id).await,
            Ok(ClientFrame::Typing { to }) => self.typing(to).await,
            Ok(ClientFrame::Read { to, seq }) => self.read(to, seq).await,
            Ok(ClientFrame::VoiceJoin { group_id }) => self.voice_join(group_id).await,
            Ok(ClientFrame::VoiceLeave { group_id }) => self.voice_leave(group_id).await,
            Ok(ClientFrame::VoiceMute { group_id, muted }) => {
                self.voice_mute(group_id, muted).await
            }
            Ok(ClientFrame::VoiceQuery { group_id }) => self.voice_query(group_id).await,
            Ok(ClientFrame::DeskOpen) => self.desk_open().await,
            Ok(ClientFrame::DeskAgent(set)) => self.desk_agent(set).await,
            Ok(ClientFrame::DeskTransfer { group_id, to }) => {
                self.desk_transfer(group_id, to).await
            }
            Ok(ClientFrame::DeskClose { group_id }) => self.desk_close(group_id).await,
        }
    }

    async fn rate_limited(
        &self,
        req_type: Option<u16>,
        client_msg_id: Option<String>,
    ) -> Result<(), Stop> {
        self.app.metrics.rate_limited_total.fetch_add(1, Relaxed);
        let e = error_frame(
            ErrorCode::RateLimited,
            format!(
                "more than {} frames per second; this frame was dropped",
                self.app.config.rate_limit
            ),
            req_type,
        );
        self.reply(self.send(&naming(e, client_msg_id, None)).await)
    }

    async fn spoofed(&self, req_type: u16, client_msg_id: Option<String>) -> bool {
        let e = error_frame(
            ErrorCode::SpoofedSender,
            "fromId must be your own user id; nothing was sent",
            Some(req_type),
        );
        self.send(&naming(e, client_msg_id, None)).await
    }

    /// Queues the chat to the store with the reply that answers it
    /// (`answers.rs`), in this frame's slot.
    async fn chat(&mut self, c: ChatSend) -> Result<(), Stop> {
        let (me, name) = {
            let (u, name) = self.user.as_ref().expect("logged in");
            (u.id, name.clone())
        };
        if c.from_id.is_some_and(|f| f != me) {
            return self.reply(self.spoofed(frame_type::CHAT, c.client_msg_id).await);
        }
        if self.role == shared::desk::Role::Visitor {
            let now = std::time::Instant::now();
            if let Err(wait) = self.app.throttle.visitor_message(self.client, now) {
                self.app.metrics.rate_limited_total.fetch_add(1, Relaxed);
                let e = error_frame(
                    ErrorCode::RateLimited,
                    format!(
                        "too many messages from visitors at your address; try again in {} s",
                        crate::throttle::retry_after_secs(wait)
                    ),
                    Some(frame_type::CHAT),
                );
                return self.reply(self.send(&naming(e, c.client_msg_id, None)).await);
            }
        }
        let chat = NewChat {
            received: std::time::Instant::now(),
            from: me,
            from_name: name,
            to: c.to,
            client_msg_id: c.client_msg_id.clone(),
            content: c.content,
        };
        // In a cluster whose link is behind, wait for it: back-pressure,
        // like a full store queue (the socket is not read meanwhile).
        self.app.hub.publish_room().await;
        let reply = self.slots.reply(&self.app, &self.handle, c.client_msg_id);
        self.app.store.submit_chat(chat, reply).await;
        Ok(())
    }

    /// Relays "typing" to the peer, or to the members of a small group.
    /// At most one per conversation per second goes out; the rest are
    /// dropped silently (the indicator is refreshed anyway).
    async fn typing(&mut self, to: Target) -> Result<(), Stop> {
        let (me, name) = {
            let (u, name) = self.user.as_ref().expect("logged in");
            (u.id, name.clone())
        };
        let now = Instant::now();
        self.typed
            .retain(|(_, at)| now.duration_since(*at) < TYPING_THROTTLE);
        if self.typed.iter().any(|(t, _)| *t == to) || self.typed.len() >= 16 {
            return Ok(());
        }
        self.typed.push((to, now));
        let recipients = match to {
            Target::User(peer) if peer == me => return Ok(()),
            Target::User(peer) => vec![peer],
            Target::Group(g) => {
                let store = &self.app.store;
                let members = match store.membership(me, to).await {
                    Ok(Some(_)) => store.small_group_members(g, SMALL_GROUP as u32).await,
                    Ok(None) => Err(Error::NotMember),
                    Err(e) => Err(e),
                };
                match members {
                    Ok(Some(members)) => members.into_iter().filter(|m| *m != me).collect(),
                    Ok(None) => return Ok(()), // big group: no typing indicators
                    Err(e) => {
                        return self.reply(self.send(&relay_error(&e, frame_type::TYPING)).await)
                    }
                }
            }
        };
        let frame = ServerFrame::Typing {
            from_id: me,
            from_name: name.to_string(),
            to,
        };
        self.app.hub.offer_to_users(&recipients, &encode(&frame));
        Ok(())
    }

    /// Queues a read marker. Nobody waits for it: its answer (receipts to
    /// the senders, or an error to this socket) is handled off the session.
    async fn read(&mut self, to: Target, seq: u64) -> Result<(), Stop> {
        let me = self.user_id();
        let Ok(answer) = self.app.store.submit_read(me, to, seq).await else {
            return Err(Stop::Close(close::GOING_AWAY));
        };
        let (hub, handle, metrics) = (
            self.app.hub.clone(),
            self.handle.clone(),
            self.app.metrics.clone(),
        );
        tokio::spawn(async move {
            match answer.await {
                Ok(Some(moved)) => hub.read_moved(&moved),
                Ok(None) | Err(Error::StoreClosed) => {}
                Err(e) => {
                    metrics.errors_total.fetch_add(1, Relaxed);
                    handle.push(encode(&relay_error(&e, frame_type::READ)), &metrics);
                }
            }
        });
        Ok(())
    }

    async fn ack(&mut self, msg_id: MsgId) -> Result<(), Stop> {
        let me = self.user_id();
        self.app.metrics.acks_total.fetch_add(1, Relaxed);
        let known = match self.app.hub.ack(me, msg_id) {
            AckOutcome::Acked {
                sender,
                receipt,
                conv,
                cursor,
            } => {
                if let Some(seq) = cursor {
                    // Written by the store's next cursor flush; if that
                    // never happens the message is pushed again and deduped.
                    self.app.store.move_cursor(me, conv, seq);
                }
                if receipt {
                    let receipt = ServerFrame::Delivered {
                        msg_id,
                        by_id: me,
                        ts: now_ms(),
                    };
                    self.app.hub.send_to_user(sender, &encode(&receipt));
                }
                true
            }
            AckOutcome::Repeat => true,
            // Not tracked: a plain read, no write and no wait for the
            // store's queue; beyond a small allowance it costs a token.
            AckOutcome::Unknown => {
                let now = std::time::Instant::now();
                if !self.unknown_acks.try_take(now) && !self.bucket.try_take(now) {
                    return self.rate_limited(Some(frame_type::ACK), None).await;
                }
                match self.app.store.message_for(me, msg_id).await {
                    Ok(found) => found.is_some(),
                    Err(e) => {
                        tracing::error!(error = %e, "ack lookup failed");
                        let e = error_frame(
                            ErrorCode::Internal,
                            "could not check that ack; retry",
                            Some(frame_type::ACK),
                        );
                        return self.reply(self.send(&naming(e, None, Some(msg_id))).await);
                    }
                }
            }
        };
        if known {
            self.reply(self.send(&ServerFrame::AckResp { msg_id }).await)
        } else {
            let e = error_frame(
                ErrorCode::UnknownMessage,
                "no such message for you",
                Some(frame_type::ACK),
            );
            self.reply(self.send(&naming(e, None, Some(msg_id))).await)
        }
    }
}

/// A type 81 frame.
pub(super) fn chat_resp(
    (msg_id, ts, seq): (MsgId, i64, u64),
    client_msg_id: Option<String>,
) -> ServerFrame {
    ServerFrame::ChatResp {
        msg_id,
        client_msg_id,
        ts,
        seq,
    }
}
