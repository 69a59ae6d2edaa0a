//! The ferrochat wire protocol, shared by the relay (native) and the browser
//! client (wasm32). Because both sides compile this crate, they cannot
//! disagree on frame shapes, limits or validation rules.
//!
//! See `docs/protocol.md` for the prose specification.

pub mod api;
pub mod audio;
pub mod bots;
pub mod codes;
pub mod desk;
pub mod duration;
pub mod frame;
pub mod ids;
pub mod limits;
pub mod message;
pub mod validate;

pub use codes::{close, frame_type, ErrorCode};
pub use duration::parse_duration;
#[cfg(feature = "voice")]
pub use frame::VoiceParticipant;
pub use frame::{
    ChatSend, ClientFrame, Content, ErrorFrame, FrameError, GroupEvent, GroupEventKind,
    ServerFrame, Target,
};
pub use ids::{GroupId, MsgId, UserId};
pub use message::ChatMessage;
