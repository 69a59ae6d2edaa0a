//! Every protocol limit, in one place.
//!
//! The relay enforces these and the browser checks them before sending, so a
//! well-behaved client never sees a limit error it could have predicted.

/// Largest WebSocket text frame either side accepts, in bytes (the whole JSON
/// text). Frames above this are refused at the WebSocket layer: the relay
/// answers with close code 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Largest chat body, in UTF-8 bytes (after JSON unescaping).
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Content types a chat may carry. `1` is plain UTF-8 text, shown verbatim
/// (never interpreted as HTML or markdown).
pub const CONTENT_TYPE_TEXT: u16 = 1;

/// All content types accepted today.
pub const ALLOWED_CONTENT_TYPES: &[u16] = &[CONTENT_TYPE_TEXT];

/// Longest `clientMsgId` (the idempotency key a client chooses).
pub const MAX_CLIENT_MSG_ID_LEN: usize = 64;

/// Longest session token accepted in a LOGIN frame or an `Authorization`
/// header. Real tokens are 43 characters; the cap only bounds garbage.
pub const MAX_TOKEN_LEN: usize = 256;

/// Username length bounds, in characters.
pub const USERNAME_MIN_CHARS: usize = 3;
/// See [`USERNAME_MIN_CHARS`].
pub const USERNAME_MAX_CHARS: usize = 32;

/// Password length bounds, in UTF-8 bytes.
pub const PASSWORD_MIN_BYTES: usize = 8;
/// See [`PASSWORD_MIN_BYTES`]. Bounds the argon2 input.
pub const PASSWORD_MAX_BYTES: usize = 256;

/// Largest HTTP request body the API accepts.
pub const MAX_HTTP_BODY_BYTES: u64 = 16 * 1024;

/// How often a client sends PING (type 40), in milliseconds.
pub const HEARTBEAT_INTERVAL_MS: u32 = 10_000;

/// The relay's default idle timeout: three missed heartbeats.
pub const DEFAULT_IDLE_TIMEOUT_MS: u32 = 3 * HEARTBEAT_INTERVAL_MS;

/// Group name length bounds, in characters.
pub const GROUP_NAME_MIN_CHARS: usize = 1;
/// See [`GROUP_NAME_MIN_CHARS`].
pub const GROUP_NAME_MAX_CHARS: usize = 64;

/// Largest page of history one request may ask for.
pub const MAX_HISTORY_PAGE: u32 = 200;

/// Members per page of `GET /api/groups/{id}/members` (and the first page
/// in `GET /api/groups/{id}`) unless a smaller `limit` is asked for.
pub const MEMBER_PAGE: u32 = 100;

/// Largest page of members or online contacts one request may ask for.
pub const MAX_MEMBER_PAGE: u32 = 500;
