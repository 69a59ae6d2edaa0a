//! The rules of the chat, in one place and above the storage seam.
//!
//! A backend stores and fetches; it never decides. Each rule here is a
//! function over a small trait of facts and primitive changes that the
//! backend implements inside its own serialisation (SQLite: the front and
//! indexer threads; a clustered backend: its transaction), so the decision
//! and the write it leads to are atomic there, and a second backend is a
//! data layer, not a second copy of the rules.
//!
//! - [`chat`]: who may send to whom; idempotency keys;
//! - [`group`]: group permissions, the member cap, the heir when an owner
//!   leaves, and the events each change announces;
//! - [`read`]: how read markers move and who hears about it;
//! - [`history`]: who may read which history, and "read by N";
//! - [`desk`]: what a visitor may do, and who may be given which role;
//! - [`routing`]: the support desk's queue and who gets which conversation.

pub mod chat;
pub mod desk;
pub mod group;
pub mod history;
pub mod read;
pub mod routing;
