//! WebSocket frames: typed enums for each direction, and their JSON form.
//!
//! Every frame travels as one JSON object in one text frame. All frame types
//! share one flat field namespace ([`Wire`]); each type uses a subset. Typed
//! frames are converted to and from that flat form, and the conversion is
//! where validation happens, so the relay and the browser accept and reject
//! exactly the same frames.

use crate::codes::{frame_type as ft, ErrorCode};
use crate::ids::{GroupId, MsgId, UserId};
use crate::limits::MAX_FRAME_BYTES;
use crate::validate::{self, Invalid};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// Chat content: `{"contentType":1,"body":"hi"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// One of `limits::ALLOWED_CONTENT_TYPES`.
    pub content_type: u16,
    /// The text.
    pub body: String,
}

impl Content {
    /// Plain text content.
    pub fn text(body: impl Into<String>) -> Self {
        Content {
            content_type: crate::limits::CONTENT_TYPE_TEXT,
            body: body.into(),
        }
    }
}

/// Where a chat goes: one user (`toId`) or one group (`groupId`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A one-to-one message.
    User(UserId),
    /// A group message.
    Group(GroupId),
}

/// A frame the client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// Type 10: log in. Must be the socket's first frame.
    Login {
        /// The session token from `POST /api/login` or `/api/register`.
        token: String,
    },
    /// Type 40: heartbeat. `fromId` is optional and, when present, must be
    /// the logged-in user.
    Ping {
        /// Optional claimed sender.
        from_id: Option<UserId>,
    },
    /// Type 80: send a chat message.
    Chat(ChatSend),
    /// Type 90: confirm receipt of a pushed message.
    Ack {
        /// The pushed message's id.
        msg_id: MsgId,
    },
    /// Type 60: "I am typing" in a conversation. Relayed, never stored.
    Typing {
        /// The peer (one-to-one) or the group.
        to: Target,
    },
    /// Type 70: "I have read this conversation up to `seq`".
    Read {
        /// The peer (one-to-one) or the group.
        to: Target,
        /// Highest `seq` the user has seen.
        seq: u64,
    },
}

/// A chat message as the sender sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatSend {
    /// Optional claimed sender; when present it must be the logged-in user.
    pub from_id: Option<UserId>,
    /// The recipient.
    pub to: Target,
    /// The client's idempotency key: resending the same key never creates a
    /// second message.
    pub client_msg_id: Option<String>,
    /// The content.
    pub content: Content,
}

/// A frame the relay sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFrame {
    /// Type 0: an error answer to the client's last frame, or a notice.
    Error(ErrorFrame),
    /// Type 11, success.
    LoginOk {
        /// The authenticated user.
        user_id: UserId,
        /// Their username.
        username: String,
        /// Relay time, milliseconds since the Unix epoch.
        ts: i64,
    },
    /// Type 11, failure. The relay closes the socket (code 4001) next.
    LoginFailed {
        /// Why.
        code: ErrorCode,
        /// Human-readable.
        message: String,
    },
    /// Type 30: nothing was read for the idle timeout; the socket closes
    /// (code 4000) next.
    HeartbeatTimeout {
        /// Human-readable.
        message: String,
    },
    /// Type 41: heartbeat answer, with the relay's clock.
    Pong {
        /// Relay time, milliseconds since the Unix epoch.
        ts: i64,
    },
    /// Type 80: a pushed chat message. Ack it with type 90.
    Chat(ChatPush),
    /// Type 81: the sender's message is durably stored.
    ChatResp {
        /// The relay-assigned id.
        msg_id: MsgId,
        /// The sender's idempotency key, echoed.
        client_msg_id: Option<String>,
        /// When the relay stored it, milliseconds since the Unix epoch.
        ts: i64,
        /// Position in the conversation.
        seq: u64,
    },
    /// Type 91: the ack was recorded.
    AckResp {
        /// The acked message.
        msg_id: MsgId,
    },
    /// Type 92: delivery receipt for the sender: `by_id` acked the message.
    Delivered {
        /// The sender's message.
        msg_id: MsgId,
        /// Who received it.
        by_id: UserId,
        /// When the ack was recorded, milliseconds since the Unix epoch.
        ts: i64,
    },
    /// Type 50: a contact came online or went offline.
    Presence {
        /// The contact.
        user_id: UserId,
        /// Their username.
        username: String,
        /// Whether they have at least one socket now.
        online: bool,
        /// When, milliseconds since the Unix epoch.
        ts: i64,
    },
    /// Type 60: someone is typing. For a one-to-one conversation `to` is
    /// you (the conversation is with `from_id`).
    Typing {
        /// Who.
        from_id: UserId,
        /// Their username.
        from_name: String,
        /// You, or the group.
        to: Target,
    },
    /// Type 71: `by_id` has read the conversation up to `seq`. For a
    /// one-to-one conversation `to` is you (the conversation is with
    /// `by_id`), or the peer when `by_id` is you (sent to your other tabs).
    ReadReceipt {
        /// The reader.
        by_id: UserId,
        /// The conversation, as seen by the receiver (see above).
        to: Target,
        /// Read up to here.
        seq: u64,
        /// When, milliseconds since the Unix epoch.
        ts: i64,
    },
    /// Type 100: a group you are (or were) in changed.
    GroupEvent(GroupEvent),
}

/// What happened to a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupEventKind {
    /// The group was created (`by_id` is the owner).
    Created,
    /// `user_id` was added by `by_id`.
    MemberAdded,
    /// `user_id` joined a public group.
    MemberJoined,
    /// `user_id` left.
    MemberLeft,
    /// `user_id` was removed by the owner `by_id`.
    MemberRemoved,
    /// The owner renamed the group to `name`.
    Renamed,
    /// `user_id` is the new owner (the previous one left).
    OwnerChanged,
    /// An event this build does not know.
    #[serde(other)]
    Other,
}

/// The body of a type 100 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEvent {
    /// The group.
    pub group_id: GroupId,
    /// What happened.
    pub kind: GroupEventKind,
    /// The member concerned, if any.
    pub user_id: Option<UserId>,
    /// Their username.
    pub username: Option<String>,
    /// Who did it, if someone else.
    pub by_id: Option<UserId>,
    /// The group's name (after the event).
    pub name: Option<String>,
}

/// The body of a type 0 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFrame {
    /// Machine-readable.
    pub code: ErrorCode,
    /// Human-readable.
    pub message: String,
    /// The `type` of the frame that caused it, when known.
    pub req_type: Option<String>,
    /// The offending chat's `clientMsgId`, when known, so the client can mark
    /// that message failed.
    pub client_msg_id: Option<String>,
    /// The offending ack's `msgId`, when known.
    pub msg_id: Option<MsgId>,
}

/// A chat message as a recipient receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatPush {
    /// Relay-assigned id (UUIDv7). Dedupe and ack by this.
    pub msg_id: MsgId,
    /// The authenticated sender.
    pub from_id: UserId,
    /// The sender's username, for display.
    pub from_name: String,
    /// The recipient (one-to-one) or the group.
    pub to: Target,
    /// The content.
    pub content: Content,
    /// When the relay stored it, milliseconds since the Unix epoch.
    pub ts: i64,
    /// Position in the conversation (1, 2, 3, … per conversation).
    pub seq: u64,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
}

/// Why a frame was refused; becomes a type 0 frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FrameError {
    /// Machine-readable.
    pub code: ErrorCode,
    /// Human-readable.
    pub message: String,
    /// The frame's `type`, when it could be read.
    pub req_type: Option<String>,
    /// The frame's `clientMsgId`, when it could be read.
    pub client_msg_id: Option<String>,
}

impl FrameError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        FrameError {
            code,
            message: message.into(),
            req_type: None,
            client_msg_id: None,
        }
    }

    /// The type 0 frame that answers this error.
    pub fn to_frame(&self) -> ServerFrame {
        ServerFrame::Error(ErrorFrame {
            code: self.code,
            message: self.message.clone(),
            req_type: self.req_type.clone(),
            client_msg_id: self.client_msg_id.clone(),
            msg_id: None,
        })
    }
}

impl From<Invalid> for FrameError {
    fn from(i: Invalid) -> Self {
        FrameError::new(i.code, i.message)
    }
}

/// The `type` field as read: a known numeric code, or anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TypeField {
    Code(u16),
    Other(String),
}

impl TypeField {
    fn as_string(&self) -> String {
        match self {
            TypeField::Code(c) => c.to_string(),
            TypeField::Other(s) => s.clone(),
        }
    }
}

impl Serialize for TypeField {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TypeField::Code(c) => s.collect_str(c),
            TypeField::Other(o) => s.serialize_str(o),
        }
    }
}

impl<'de> Deserialize<'de> for TypeField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = TypeField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a type code as a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeField, E> {
                Ok(match v.parse::<u16>() {
                    Ok(c) if !v.starts_with('+') => TypeField::Code(c),
                    _ => TypeField::Other(v.chars().take(32).collect()),
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TypeField, E> {
                Ok(u16::try_from(v)
                    .map(TypeField::Code)
                    .unwrap_or_else(|_| TypeField::Other(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TypeField, E> {
                Ok(TypeField::Other(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The flat JSON form shared by every frame type.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(rename = "type", default)]
    ty: Option<TypeField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    msg_id: Option<MsgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_id: Option<GroupId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    req_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    online: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<GroupEventKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl Wire {
    fn of(code: u16) -> Self {
        Wire {
            ty: Some(TypeField::Code(code)),
            ..Wire::default()
        }
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("frames always serialize")
    }

    fn set_target(&mut self, to: Target) {
        match to {
            Target::User(u) => self.to_id = Some(u),
            Target::Group(g) => self.group_id = Some(g),
        }
    }

    fn target(&mut self) -> Result<Target, FrameError> {
        match (self.to_id.take(), self.group_id.take()) {
            (Some(u), None) => Ok(Target::User(u)),
            (None, Some(g)) => Ok(Target::Group(g)),
            (None, None) => Err(missing("toId")),
            (Some(_), Some(_)) => Err(FrameError::new(
                ErrorCode::InvalidField,
                "give either toId or groupId, not both",
            )),
        }
    }

    /// Reads the JSON text; on failure, finds which field is at fault.
    fn parse(text: &str) -> Result<Wire, FrameError> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(FrameError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "frame is {} bytes; the limit is {MAX_FRAME_BYTES}",
                    text.len()
                ),
            ));
        }
        // serde would also accept a struct written as a JSON array.
        if !text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .starts_with('{')
        {
            return Err(match serde_json::from_str::<Value>(text) {
                Err(e) => FrameError::new(ErrorCode::MalformedJson, format!("malformed JSON: {e}")),
                Ok(_) => FrameError::new(ErrorCode::MalformedJson, "a frame must be a JSON object"),
            });
        }
        serde_json::from_str::<Wire>(text).map_err(|e| diagnose(text, e))
    }
}

fn missing(field: &str) -> FrameError {
    FrameError::new(ErrorCode::MissingField, format!("missing field `{field}`"))
}

fn need<T>(v: Option<T>, field: &str) -> Result<T, FrameError> {
    v.ok_or_else(|| missing(field))
}

/// Checks one field's JSON value; the error says what it must be.
type FieldRule = fn(&Value) -> Result<(), String>;

/// What each field must be, for error messages that name the field.
fn field_rule(name: &str) -> Option<FieldRule> {
    fn string(v: &Value) -> Result<(), String> {
        v.is_string().then_some(()).ok_or_else(|| "a string".into())
    }
    fn id(v: &Value) -> Result<(), String> {
        UserId::deserialize(v)
            .map(drop)
            .map_err(|_| "an id: a string of digits such as \"42\"".into())
    }
    fn msg_id(v: &Value) -> Result<(), String> {
        MsgId::deserialize(v)
            .map(drop)
            .map_err(|_| "a UUID string".into())
    }
    fn content(v: &Value) -> Result<(), String> {
        let o = v.as_object().ok_or("an object {contentType, body}")?;
        match o.get("contentType") {
            None => return Err("an object with `contentType`".into()),
            Some(ct) if ct.as_u64().is_none_or(|n| n > u16::MAX as u64) => {
                return Err("an object whose `contentType` is a small integer".into())
            }
            _ => {}
        }
        match o.get("body") {
            Some(b) if b.is_string() => Ok(()),
            Some(_) => Err("an object whose `body` is a string".into()),
            None => Err("an object with `body`".into()),
        }
    }
    fn boolean(v: &Value) -> Result<(), String> {
        v.is_boolean()
            .then_some(())
            .ok_or_else(|| "true or false".into())
    }
    fn integer(v: &Value) -> Result<(), String> {
        (v.is_i64() || v.is_u64())
            .then_some(())
            .ok_or_else(|| "an integer".into())
    }
    Some(match name {
        "token" | "message" | "username" | "clientMsgId" | "fromName" | "reqType" | "code"
        | "event" | "name" => string,
        "fromId" | "toId" | "groupId" | "userId" | "byId" => id,
        "msgId" => msg_id,
        "content" => content,
        "ok" | "online" => boolean,
        "seq" | "ts" => integer,
        _ => return None,
    })
}

/// Turns a serde failure into an error that says which field is wrong.
fn diagnose(text: &str, err: serde_json::Error) -> FrameError {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return FrameError::new(ErrorCode::MalformedJson, format!("malformed JSON: {e}")),
    };
    let Some(obj) = value.as_object() else {
        return FrameError::new(ErrorCode::MalformedJson, "a frame must be a JSON object");
    };
    let mut fe = FrameError::new(ErrorCode::InvalidField, err.to_string());
    if let Some(t) = obj.get("type") {
        match t {
            Value::String(s) => fe.req_type = Some(s.chars().take(32).collect()),
            Value::Number(n) => fe.req_type = Some(n.to_string()),
            _ => {
                fe.message = "field `type` must be a type code such as \"80\"".into();
                return fe;
            }
        }
    }
    if let Some(Value::String(c)) = obj.get("clientMsgId") {
        if validate::client_msg_id(c).is_ok() {
            fe.client_msg_id = Some(c.clone());
        }
    }
    for (name, v) in obj {
        if v.is_null() {
            continue;
        }
        if let Some(rule) = field_rule(name) {
            if let Err(expected) = rule(v) {
                fe.message = format!("field `{name}` must be {expected}");
                return fe;
            }
        }
    }
    fe
}

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
            ServerFrame::ReadReceipt { by_id, to, seq, ts } => {
                w = Wire::of(ft::READ_RECEIPT);
                w.by_id = Some(*by_id);
                w.set_target(*to);
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
            TypeField::Code(ft::CHAT) => ServerFrame::Chat(ChatPush {
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
