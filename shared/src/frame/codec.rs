//! Typed frames to and from their flat JSON form ([`Wire`]), with the
//! validation the relay and the browser share.

use super::wire::{need, TypeField, Wire};
use super::{
    ChatSend, ClientFrame, ErrorFrame, FrameError, GroupEvent, GroupEventKind, ServerFrame,
};
use crate::codes::{frame_type as ft, ErrorCode};
use crate::desk::DeskAgentSet;
use crate::message::ChatMessage;
use crate::validate;

impl ClientFrame {
    /// Parses and validates one client frame.
    pub fn decode(text: &str) -> Result<ClientFrame, FrameError> {
        let mut w = Wire::parse(text)?;
        let ty = need(w.ty.take(), "type")?;
        let client_msg_id = w.client_msg_id.take();
        let annotate = |mut e: FrameError| {
            e.req_type = Some(ty.as_string());
            if e.client_msg_id.is_none() {
                e.client_msg_id = client_msg_id
                    .clone()
                    .filter(|c| validate::client_msg_id(c).is_ok());
            }
            e
        };
        let frame = match &ty {
            TypeField::Code(ft::LOGIN) => {
                let token = need(w.token, "token").map_err(annotate)?;
                validate::token(&token)
                    .map_err(FrameError::from)
                    .map_err(annotate)?;
                ClientFrame::Login { token }
            }
            TypeField::Code(ft::PING) => ClientFrame::Ping { from_id: w.from_id },
            TypeField::Code(ft::CHAT) => {
                let to = w.target().map_err(annotate)?;
                let content = need(w.content.take(), "content").map_err(annotate)?;
                if let Some(c) = &client_msg_id {
                    validate::client_msg_id(c)
                        .map_err(FrameError::from)
                        .map_err(annotate)?;
                }
                validate::content(content.content_type, &content.body)
                    .map_err(FrameError::from)
                    .map_err(annotate)?;
                ClientFrame::Chat(ChatSend {
                    from_id: w.from_id,
                    to,
                    client_msg_id: client_msg_id.clone(),
                    content,
                })
            }
            TypeField::Code(ft::ACK) => ClientFrame::Ack {
                msg_id: need(w.msg_id, "msgId").map_err(annotate)?,
            },
            TypeField::Code(ft::TYPING) => ClientFrame::Typing {
                to: w.target().map_err(annotate)?,
            },
            TypeField::Code(ft::READ) => ClientFrame::Read {
                to: w.target().map_err(annotate)?,
                seq: need(w.seq, "seq").map_err(annotate)?,
            },
            TypeField::Code(ft::DESK_OPEN) => ClientFrame::DeskOpen,
            TypeField::Code(ft::DESK_AGENT) => ClientFrame::DeskAgent(
                DeskAgentSet {
                    available: w.available,
                    capacity: w.capacity,
                }
                .validated()
                .map_err(FrameError::from)
                .map_err(annotate)?,
            ),
            TypeField::Code(ft::DESK_TRANSFER) => ClientFrame::DeskTransfer {
                group_id: need(w.group_id, "groupId").map_err(annotate)?,
                to: w.to_id,
            },
            TypeField::Code(ft::DESK_CLOSE) => ClientFrame::DeskClose {
                group_id: need(w.group_id, "groupId").map_err(annotate)?,
            },
            #[cfg(feature = "voice")]
            TypeField::Code(ft::VOICE_JOIN) => ClientFrame::VoiceJoin {
                group_id: need(w.group_id, "groupId").map_err(annotate)?,
            },
            #[cfg(feature = "voice")]
            TypeField::Code(ft::VOICE_LEAVE) => ClientFrame::VoiceLeave {
                group_id: need(w.group_id, "groupId").map_err(annotate)?,
            },
            #[cfg(feature = "voice")]
            TypeField::Code(ft::VOICE_MUTE) => ClientFrame::VoiceMute {
                group_id: need(w.group_id, "groupId").map_err(annotate)?,
                muted: need(w.muted, "muted").map_err(annotate)?,
            },
            #[cfg(feature = "voice")]
            TypeField::Code(ft::VOICE_QUERY) => ClientFrame::VoiceQuery {
                group_id: need(w.group_id, "groupId").map_err(annotate)?,
            },
            other => {
                return Err(annotate(FrameError::new(
                    ErrorCode::UnknownType,
                    format!("unknown frame type {:?}", other.as_string()),
                )))
            }
        };
        Ok(frame)
    }

    /// The JSON text of this frame.
    pub fn encode(&self) -> String {
        let mut w;
        match self {
            ClientFrame::Login { token } => {
                w = Wire::of(ft::LOGIN);
                w.token = Some(token.clone());
            }
            ClientFrame::Ping { from_id } => {
                w = Wire::of(ft::PING);
                w.from_id = *from_id;
            }
            ClientFrame::Chat(c) => {
                w = Wire::of(ft::CHAT);
                w.from_id = c.from_id;
                w.set_target(c.to);
                w.client_msg_id = c.client_msg_id.clone();
                w.content = Some(c.content.clone());
            }
            ClientFrame::Ack { msg_id } => {
                w = Wire::of(ft::ACK);
                w.msg_id = Some(*msg_id);
            }
            ClientFrame::Typing { to } => {
                w = Wire::of(ft::TYPING);
                w.set_target(*to);
            }
            ClientFrame::Read { to, seq } => {
                w = Wire::of(ft::READ);
                w.set_target(*to);
                w.seq = Some(*seq);
            }
            ClientFrame::DeskOpen => w = Wire::of(ft::DESK_OPEN),
            ClientFrame::DeskAgent(set) => {
                w = Wire::of(ft::DESK_AGENT);
                w.available = set.available;
                w.capacity = set.capacity;
            }
            ClientFrame::DeskTransfer { group_id, to } => {
                w = Wire::of(ft::DESK_TRANSFER);
                w.group_id = Some(*group_id);
                w.to_id = *to;
            }
            ClientFrame::DeskClose { group_id } => {
                w = Wire::of(ft::DESK_CLOSE);
                w.group_id = Some(*group_id);
            }
            #[cfg(feature = "voice")]
            ClientFrame::VoiceJoin { group_id } => {
                w = Wire::of(ft::VOICE_JOIN);
                w.group_id = Some(*group_id);
            }
            #[cfg(feature = "voice")]
            ClientFrame::VoiceLeave { group_id } => {
                w = Wire::of(ft::VOICE_LEAVE);
                w.group_id = Some(*group_id);
            }
            #[cfg(feature = "voice")]
            ClientFrame::VoiceMute { group_id, muted } => {
                w = Wire::of(ft::VOICE_MUTE);
                w.group_id = Some(*group_id);
                w.muted = Some(*muted);
            }
            #[cfg(feature = "voice")]
            ClientFrame::VoiceQuery { group_id } => {
                w = Wire::of(ft::VOICE_QUERY);
                w.group_id = Some(*group_id);
            }
        }
        w.to_json()
    }

    /// The numeric type code.
    pub fn type_code(&self) -> u16 {
        match self {
            ClientFrame::Login { .. } => ft::LOGIN,
            ClientFrame::Ping { .. } => ft::PING,
            ClientFrame::Chat(_) => ft::CHAT,
            ClientFrame::Ack { .. } => ft::ACK,
            ClientFrame::Typing { .. } => ft::TYPING,
            ClientFrame::Read { .. } => ft::READ,
            ClientFrame::DeskOpen => ft::DESK_OPEN,
            ClientFrame::DeskAgent(_) => ft::DESK_AGENT,
            ClientFrame::DeskTransfer { .. } => ft::DESK_TRANSFER,
            ClientFrame::DeskClose { .. } => ft::DESK_CLOSE,
            #[cfg(feature = "voice")]
            ClientFrame::VoiceJoin { .. } => ft::VOICE_JOIN,
            #[cfg(feature = "voice")]
            ClientFrame::VoiceLeave { .. } => ft::VOICE_LEAVE,
            #[cfg(feature = "voice")]
            ClientFrame::VoiceMute { .. } => ft::VOICE_MUTE,
            #[cfg(feature = "voice")]
            ClientFrame::VoiceQuery { .. } => ft::VOICE_QUERY,
        }
    }
}

impl ServerFrame {
    /// The JSON text of this frame.
    pub fn encode(&self) -> String {
        let mut w;
        match self {
            ServerFrame::Error(e) => {
                w = Wire::of(ft::ERROR);
                w.code = Some(e.code);
                w.message = Some(e.message.clone());
                w.req_type = e.req_type.clone();
                w.client_msg_id = e.client_msg_id.clone();
                w.msg_id = e.msg_id;
            }
            ServerFrame::LoginOk {
                user_id,
                username,
                ts,
            } => {
                w = Wire::of(ft::LOGIN_RESP);
                w.ok = Some(true);
                w.user_id = Some(*user_id);
                w.username = Some(username.clone());
                w.ts = Some(*ts);
            }
            ServerFrame::LoginFailed { code, message } => {
                w = Wire::of(ft::LOGIN_RESP);
                w.ok = Some(false);
                w.code = Some(*code);
                w.message = Some(message.clone());
            }
            ServerFrame::HeartbeatTimeout { message } => {
                w = Wire::of(ft::HEARTBEAT_TIMEOUT);
                w.message = Some(message.clone());
            }
            ServerFrame::Pong { ts } => {
                w = Wire::of(ft::PONG);
                w.ts = Some(*ts);
            }
            ServerFrame::Chat(p) => {
                w = Wire::of(ft::CHAT);
                w.msg_id = Some(p.msg_id);
                w.from_id = Some(p.from_id);
                w.from_name = Some(p.from_name.clone());
                w.set_target(p.to);
                w.content = Some(p.content.clone());
                w.ts = Some(p.ts);
                w.seq = Some(p.seq);
                w.client_msg_id = p.client_msg_id.clone();
            }
            ServerFrame::ChatResp {
                msg_id,
                client_msg_id,
                ts,
                seq,
            } => {
                w = Wire::of(ft::CHAT_RESP);
                w.msg_id = Some(*msg_id);
                w.client_msg_id = client_msg_id.clone();
                w.ts = Some(*ts);
                w.seq = Some(*seq);
            }
            ServerFrame::AckResp { msg_id } => {
                w = Wire::of(ft::ACK_RESP);
                w.msg_id = Some(*msg_id);
            }
            ServerFrame::Delivered { msg_id, by_id, ts } => {
                w = Wire::of(ft::DELIVERED);
                w.msg_id = Some(*msg_id);
                w.by_id = Some(*by_id);
                w.ts = Some(*ts);
            }
            ServerFrame::Presence {
                user_id,
                username,
                online,
                ts,
            } => {
                w = Wire::of(ft::PRESENCE);
                w.user_id = Some(*user_id);
                w.username = Some(username.clone());
                w.online = Some(*online);
                w.ts = Some(*ts);
            }
            ServerFrame::Typing {
                from_id,
                from_name,
                to,
            } => {
                w = Wire::of(ft::TYPING);
                w.from_id = Some(*from_id);
                w.from_name = Some(from_name.clone());
                w.set_target(*to);
            }
            ServerFrame::ReadReceipt {
                by_id,
                to,
                prev_seq,
                seq,
                ts,
            } => {
                w = Wire::of(ft::READ_RECEIPT);
                w.by_id = Some(*by_id);
                w.set_target(*to);
                w.prev_seq = *prev_seq;
                w.seq = Some(*seq);
                w.ts = Some(*ts);
            }
            ServerFrame::GroupEvent(e) => {
                w = Wire::of(ft::GROUP_EVENT);
                w.group_id = Some(e.group_id);
                w.event = Some(e.kind);
                w.user_id = e.user_id;
                w.username = e.username.clone();
                w.by_id = e.by_id;
                w.name = e.name.clone();
            }
            ServerFrame::DeskStatus(d) => {
                w = Wire::of(ft::DESK_STATUS);
                w.desk = Some(d.clone());
            }
            ServerFrame::DeskBoard(b) => {
                w = Wire::of(ft::DESK_BOARD);
                w.board = Some((**b).clone());
            }
            #[cfg(feature = "voice")]
            ServerFrame::VoiceJoined {
                group_id,
                participants,
                capacity,
                seq,
            } => {
                w = Wire::of(ft::VOICE_JOINED);
                w.seq = Some(*seq);
                w.group_id = Some(*group_id);
                w.ok = Some(true);
                w.participants = Some(participants.clone());
                w.capacity = Some(*capacity);
            }
            #[cfg(feature = "voice")]
            ServerFrame::VoiceRoom {
                group_id,
                participants,
                seq,
            } => {
                w = Wire::of(ft::VOICE_ROOM);
                w.seq = Some(*seq);
                w.group_id = Some(*group_id);
                w.participants = Some(participants.clone());
            }
        }
        w.to_json()
    }

    /// Parses a frame sent by the relay (used by the browser, the load
    /// generator and the tests).
    pub fn decode(text: &str) -> Result<ServerFrame, FrameError> {
        let mut w = Wire::parse(text)?;
        let ty = need(w.ty.take(), "type")?;
        let frame = match ty {
            TypeField::Code(ft::ERROR) => ServerFrame::Error(ErrorFrame {
                code: w.code.unwrap_or(ErrorCode::Other),
                message: w.message.unwrap_or_default(),
                req_type: w.req_type,
                client_msg_id: w.client_msg_id,
                msg_id: w.msg_id,
            }),
            TypeField::Code(ft::LOGIN_RESP) if w.ok == Some(true) => ServerFrame::LoginOk {
                user_id: need(w.user_id, "userId")?,
                username: need(w.username, "username")?,
                ts: w.ts.unwrap_or_default(),
            },
            TypeField::Code(ft::LOGIN_RESP) => ServerFrame::LoginFailed {
                code: w.code.unwrap_or(ErrorCode::Other),
                message: w.message.unwrap_or_default(),
            },
            TypeField::Code(ft::HEARTBEAT_TIMEOUT) => ServerFrame::HeartbeatTimeout {
                message: w.message.unwrap_or_default(),
            },
            TypeField::Code(ft::PONG) => ServerFrame::Pong {
                ts: w.ts.unwrap_or_default(),
            },
            TypeField::Code(ft::CHAT) => ServerFrame::Chat(ChatMessage {
                to: w.target()?,
                msg_id: need(w.msg_id, "msgId")?,
                from_id: need(w.from_id, "fromId")?,
                from_name: w.from_name.unwrap_or_default(),
                content: need(w.content, "content")?,
                ts: need(w.ts, "ts")?,
                seq: w.seq.unwrap_or_default(),
                client_msg_id: w.client_msg_id,
            }),
            TypeField::Code(ft::CHAT_RESP) => ServerFrame::ChatResp {
                msg_id: need(w.msg_id, "msgId")?,
                client_msg_id: w.client_msg_id,
                ts: need(w.ts, "ts")?,
                seq: w.seq.unwrap_or_default(),
            },
            TypeField::Code(ft::ACK_RESP) => ServerFrame::AckResp {
                msg_id: need(w.msg_id, "msgId")?,
            },
            TypeField::Code(ft::DELIVERED) => ServerFrame::Delivered {
                msg_id: need(w.msg_id, "msgId")?,
                by_id: need(w.by_id, "byId")?,
                ts: w.ts.unwrap_or_default(),
            },
            TypeField::Code(ft::PRESENCE) => ServerFrame::Presence {
                user_id: need(w.user_id, "userId")?,
                username: w.username.unwrap_or_default(),
                online: need(w.online, "online")?,
                ts: w.ts.unwrap_or_default(),
            },
            TypeField::Code(ft::TYPING) => ServerFrame::Typing {
                to: w.target()?,
                from_id: need(w.from_id, "fromId")?,
                from_name: w.from_name.unwrap_or_default(),
            },
            TypeField::Code(ft::READ_RECEIPT) => ServerFrame::ReadReceipt {
                to: w.target()?,
                by_id: need(w.by_id, "byId")?,
                prev_seq: w.prev_seq,
                seq: need(w.seq, "seq")?,
                ts: w.ts.unwrap_or_default(),
            },
            TypeField::Code(ft::GROUP_EVENT) => ServerFrame::GroupEvent(GroupEvent {
                group_id: need(w.group_id, "groupId")?,
                kind: w.event.unwrap_or(GroupEventKind::Other),
                user_id: w.user_id,
                username: w.username,
                by_id: w.by_id,
                name: w.name,
            }),
            TypeField::Code(ft::DESK_STATUS) => ServerFrame::DeskStatus(need(w.desk, "desk")?),
            TypeField::Code(ft::DESK_BOARD) => {
                ServerFrame::DeskBoard(Box::new(need(w.board, "board")?))
            }
            #[cfg(feature = "voice")]
            TypeField::Code(ft::VOICE_JOINED) => ServerFrame::VoiceJoined {
                group_id: need(w.group_id, "groupId")?,
                participants: w.participants.unwrap_or_default(),
                capacity: w.capacity.unwrap_or_default(),
                seq: w.seq.unwrap_or_default(),
            },
            #[cfg(feature = "voice")]
            TypeField::Code(ft::VOICE_ROOM) => ServerFrame::VoiceRoom {
                group_id: need(w.group_id, "groupId")?,
                participants: w.participants.unwrap_or_default(),
                seq: w.seq.unwrap_or_default(),
            },
            other => {
                return Err(FrameError::new(
                    ErrorCode::UnknownType,
                    format!("unknown frame type {:?}", other.as_string()),
                ))
            }
        };
        Ok(frame)
    }

    /// A type 0 frame.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error(ErrorFrame {
            code,
            message: message.into(),
            req_type: None,
            client_msg_id: None,
            msg_id: None,
        })
    }
}
