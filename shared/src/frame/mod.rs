//! WebSocket frames: typed enums for each direction, and their JSON form.
//!
//! Every frame travels as one JSON object in one text frame. All frame types
//! share one flat field namespace ([`Wire`]); each type uses a subset. Typed
//! frames are converted to and from that flat form, and the conversion is
//! where validation happens, so the relay and the browser accept and reject
//! exactly the same frames.

mod codec;
mod wire;

use crate::codes::ErrorCode;
use crate::desk::{DeskAgentSet, DeskBoard, DeskStatus};
use crate::ids::{GroupId, MsgId, UserId};
use crate::message::ChatMessage;
use crate::validate::Invalid;
use serde::{Deserialize, Serialize};

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
    /// Type 130 (visitor): start or resume my desk conversation.
    DeskOpen,
    /// Type 132 (agent): available or away, capacity.
    DeskAgent(DeskAgentSet),
    /// Type 134 (agent): hand a conversation on.
    DeskTransfer {
        /// The conversation.
        group_id: GroupId,
        /// The agent to take it; `None`: back to the front of the queue.
        to: Option<UserId>,
    },
    /// Type 135 (agent or visitor): close a desk conversation.
    DeskClose {
        /// The conversation.
        group_id: GroupId,
    },
    /// Type 120: join the group's voice room (members only).
    #[cfg(feature = "voice")]
    VoiceJoin {
        /// The group.
        group_id: GroupId,
    },
    /// Type 122: leave the group's voice room.
    #[cfg(feature = "voice")]
    VoiceLeave {
        /// The group.
        group_id: GroupId,
    },
    /// Type 124: mute or unmute yourself in the group's voice room.
    #[cfg(feature = "voice")]
    VoiceMute {
        /// The group.
        group_id: GroupId,
        /// Muted or not.
        muted: bool,
    },
    /// Type 126: who is in the group's voice room (members only; the answer
    /// is a 125 to this socket).
    #[cfg(feature = "voice")]
    VoiceQuery {
        /// The group.
        group_id: GroupId,
    },
}

/// One participant of a voice room, in type 121 and 125 frames.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg(feature = "voice")]
pub struct VoiceParticipant {
    /// The user.
    pub user_id: UserId,
    /// Their username.
    pub username: String,
    /// Whether they are muted.
    pub muted: bool,
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
    Chat(ChatMessage),
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
        /// The reader's read cursor before this move: the messages newly
        /// read are those with `prev_seq < seq <= seq`, so a sender can
        /// count "read by N" without knowing every member's cursor.
        prev_seq: Option<u64>,
        /// Read up to here.
        seq: u64,
        /// When, milliseconds since the Unix epoch.
        ts: i64,
    },
    /// Type 100: a group you are (or were) in changed.
    GroupEvent(GroupEvent),
    /// Type 131: your desk conversation (visitors).
    DeskStatus(DeskStatus),
    /// Type 133: the desk board (agents).
    DeskBoard(Box<DeskBoard>),
    /// Type 121: you joined the group's voice room.
    #[cfg(feature = "voice")]
    VoiceJoined {
        /// The group.
        group_id: GroupId,
        /// Everyone in the room, you included.
        participants: Vec<VoiceParticipant>,
        /// Most participants the room takes.
        capacity: u32,
        /// The room's change number (see `VoiceRoom::seq`).
        seq: u64,
    },
    /// Type 125: the participants of a group's voice room changed; sent to
    /// every online member. Empty: the call ended.
    #[cfg(feature = "voice")]
    VoiceRoom {
        /// The group.
        group_id: GroupId,
        /// Everyone in the room now.
        participants: Vec<VoiceParticipant>,
        /// The change number: it grows with every change to any room of
        /// the relay, so a 121 or 125 with a lower `seq` than one already
        /// applied for the group is stale (pushes may arrive out of order).
        seq: u64,
    },
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
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
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
