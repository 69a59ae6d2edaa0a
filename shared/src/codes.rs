//! Frame type codes, error codes and WebSocket close codes.

use serde::{Deserialize, Serialize};

/// The `type` codes. On the wire they are JSON strings (`"80"`); decoders
/// also accept JSON numbers (`80`) for old clients, encoders always emit
/// strings.
pub mod frame_type {
    /// s→c: an error answer (the classic "unknown" frame).
    pub const ERROR: u16 = 0;
    /// c→s: log in with a session token. Must be the first frame.
    pub const LOGIN: u16 = 10;
    /// s→c: the answer to LOGIN.
    pub const LOGIN_RESP: u16 = 11;
    /// s→c: nothing was read for the idle timeout; the socket closes next.
    pub const HEARTBEAT_TIMEOUT: u16 = 30;
    /// c→s: heartbeat.
    pub const PING: u16 = 40;
    /// s→c: heartbeat answer.
    pub const PONG: u16 = 41;
    /// both: a chat message (c→s: send; s→c: push to a recipient).
    pub const CHAT: u16 = 80;
    /// s→c: the message is stored; it will reach its recipient.
    pub const CHAT_RESP: u16 = 81;
    /// c→s: the recipient confirms a pushed message.
    pub const ACK: u16 = 90;
    /// s→c: the answer to ACK.
    pub const ACK_RESP: u16 = 91;
    /// s→c: delivery receipt for the sender: the recipient acked.
    pub const DELIVERED: u16 = 92;
    /// s→c: a contact came online or went offline.
    pub const PRESENCE: u16 = 50;
    /// both: someone is typing (never stored).
    pub const TYPING: u16 = 60;
    /// c→s: "I have read this conversation up to `seq`".
    pub const READ: u16 = 70;
    /// s→c: read receipt: `byId` has read the conversation up to `seq`.
    pub const READ_RECEIPT: u16 = 71;
    /// s→c: a group changed (created, member added/joined/left/removed,
    /// renamed).
    pub const GROUP_EVENT: u16 = 100;
    /// c→s: join the voice room of a group.
    pub const VOICE_JOIN: u16 = 120;
    /// s→c: the answer to VOICE_JOIN: the room's participants.
    pub const VOICE_JOINED: u16 = 121;
    /// c→s: leave the voice room of a group.
    pub const VOICE_LEAVE: u16 = 122;
    /// c→s: mute or unmute yourself in a voice room.
    pub const VOICE_MUTE: u16 = 124;
    /// s→c: a voice room's participants changed (empty: the call ended);
    /// also the answer to VOICE_QUERY.
    pub const VOICE_ROOM: u16 = 125;
    /// c→s: who is in a group's voice room now (answered with a 125 to
    /// this socket only): a page that opens a group, or comes back online,
    /// learns of a call that started before.
    pub const VOICE_QUERY: u16 = 126;
    /// c→s (visitor): start or resume my conversation with the support
    /// desk; answered with a 131.
    pub const DESK_OPEN: u16 = 130;
    /// s→c (visitor): where my desk conversation stands: waiting at a
    /// position in the queue, open with an agent, or closed. Pushed again
    /// on every change.
    pub const DESK_STATUS: u16 = 131;
    /// c→s (agent): set available or away and my capacity; answered with
    /// a 133.
    pub const DESK_AGENT: u16 = 132;
    /// s→c (agent): the desk as an agent sees it: the queue, my
    /// conversations, the agents. Pushed again on every change.
    pub const DESK_BOARD: u16 = 133;
    /// c→s (agent): hand a conversation to another agent, or back to the
    /// queue.
    pub const DESK_TRANSFER: u16 = 134;
    /// c→s (agent or visitor): close a desk conversation.
    pub const DESK_CLOSE: u16 = 135;
}

/// A machine-readable error code, carried by type 0 frames, by a failed
/// LOGIN_RESP and by HTTP API error bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON, or not a JSON object.
    MalformedJson,
    /// The `type` code is not one this peer understands.
    UnknownType,
    /// A field the frame type requires is absent.
    MissingField,
    /// A field has the wrong JSON type or an invalid value.
    InvalidField,
    /// The frame exceeds `MAX_FRAME_BYTES`.
    FrameTooLarge,
    /// The chat body exceeds `MAX_BODY_BYTES`.
    BodyTooLarge,
    /// The chat body is empty or only whitespace.
    EmptyBody,
    /// `contentType` is not in `ALLOWED_CONTENT_TYPES`.
    UnsupportedContentType,
    /// A frame other than LOGIN arrived before a successful LOGIN.
    NotLoggedIn,
    /// A second LOGIN on a socket that is already logged in.
    AlreadyLoggedIn,
    /// The token is unknown, expired or revoked.
    InvalidToken,
    /// `fromId` names someone other than the logged-in user.
    SpoofedSender,
    /// The recipient does not exist.
    UnknownRecipient,
    /// The acked `msgId` does not exist or was not addressed to this user.
    UnknownMessage,
    /// Too many frames; slow down. The connection stays open.
    RateLimited,
    /// A binary frame before LOGIN (after it, binary frames are voice
    /// audio).
    BinaryNotSupported,
    /// The sender is not a member of the group (or it does not exist).
    NotMember,
    /// The action needs rights the user does not have.
    Forbidden,
    /// The relay failed to store or load something; retry later.
    Internal,
    /// The relay is shutting down; reconnect.
    ShuttingDown,
    /// The relay's database cannot be reached right now (down, restarting,
    /// or cut off): nothing was stored. Retry the same frame later (for a
    /// CHAT, with the same `clientMsgId`).
    StorageUnavailable,
    /// HTTP: that username is already registered.
    UsernameTaken,
    /// HTTP: the username breaks the naming rules.
    InvalidUsername,
    /// HTTP: the password breaks the length rules.
    InvalidPassword,
    /// HTTP: wrong username or password (deliberately not saying which).
    InvalidCredentials,
    /// HTTP: a missing, malformed, expired or revoked bearer token.
    Unauthorized,
    /// HTTP: the request body is over `MAX_HTTP_BODY_BYTES`.
    PayloadTooLarge,
    /// HTTP: the request is malformed.
    BadRequest,
    /// HTTP: nothing there.
    NotFound,
    /// HTTP: the method is not allowed on this path.
    MethodNotAllowed,
    /// HTTP: the relay is at capacity; retry later.
    Unavailable,
    /// VOICE_JOIN: the voice room is at `--voice-capacity`.
    RoomFull,
    /// An audio frame or VOICE_MUTE for a voice room this socket is not in.
    NotInRoom,
    /// An audio frame from a socket that is muted in that room.
    Muted,
    /// An audio frame whose header is malformed.
    MalformedAudio,
    /// An audio frame over `audio::MAX_AUDIO_FRAME` bytes.
    AudioTooLarge,
    /// Audio over the per-socket frames or bytes per second; dropped.
    AudioRateLimited,
    /// A code this build does not know (sent by a newer peer).
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The wire spelling, e.g. `"malformed_json"`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MalformedJson => "malformed_json",
            UnknownType => "unknown_type",
            MissingField => "missing_field",
            InvalidField => "invalid_field",
            FrameTooLarge => "frame_too_large",
            BodyTooLarge => "body_too_large",
            EmptyBody => "empty_body",
            UnsupportedContentType => "unsupported_content_type",
            NotLoggedIn => "not_logged_in",
            AlreadyLoggedIn => "already_logged_in",
            InvalidToken => "invalid_token",
            SpoofedSender => "spoofed_sender",
            UnknownRecipient => "unknown_recipient",
            UnknownMessage => "unknown_message",
            RateLimited => "rate_limited",
            BinaryNotSupported => "binary_not_supported",
            NotMember => "not_member",
            Forbidden => "forbidden",
            Internal => "internal",
            ShuttingDown => "shutting_down",
            StorageUnavailable => "storage_unavailable",
            UsernameTaken => "username_taken",
            InvalidUsername => "invalid_username",
            InvalidPassword => "invalid_password",
            InvalidCredentials => "invalid_credentials",
            Unauthorized => "unauthorized",
            PayloadTooLarge => "payload_too_large",
            BadRequest => "bad_request",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            Unavailable => "unavailable",
            RoomFull => "room_full",
            NotInRoom => "not_in_room",
            Muted => "muted",
            MalformedAudio => "malformed_audio",
            AudioTooLarge => "audio_too_large",
            AudioRateLimited => "audio_rate_limited",
            Other => "other",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes the relay uses. 1xxx are RFC 6455 codes; 4xxx are
/// ferrochat's own (the range RFC 6455 leaves to applications).
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The relay is shutting down; reconnect (to another relay) soon.
    pub const GOING_AWAY: u16 = 1001;
    /// A binary frame arrived before LOGIN.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A frame over `MAX_FRAME_BYTES` arrived.
    pub const TOO_BIG: u16 = 1009;
    /// The relay hit an internal error on this socket.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// Nothing was read for the idle timeout (sent after a type 30 frame).
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// LOGIN failed: bad, expired or revoked token.
    pub const AUTH_FAILED: u16 = 4001;
    /// The first frame was not LOGIN, or LOGIN did not arrive in time.
    pub const PROTOCOL_VIOLATION: u16 = 4002;
    /// The session's token was revoked by `POST /api/logout`.
    pub const LOGGED_OUT: u16 = 4003;
    /// The client did not drain its outbound queue fast enough.
    pub const SLOW_CONSUMER: u16 = 4008;
}
