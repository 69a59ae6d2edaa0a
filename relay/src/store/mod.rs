//! Storage: a narrow trait, so the embedded SQLite default and a clustered
//! PostgreSQL backend are interchangeable data layers, each behind a cargo
//! feature.
//!
//! A backend stores and fetches. The rules (who may send to whom, group
//! permissions, who may read which history, how read markers move) live
//! above it in [`crate::rules`], once; a backend runs them against its own
//! facts inside its own serialisation (`rules::chat::resolve`,
//! `rules::group::change`, `rules::read::mark`).
//!
//! Writes are answered once durable, and answered one way: every write
//! returns its result through a [`Reply`] (a chat's is the caller's own, so
//! a session can answer from the backend's thread; a read marker's comes
//! back as an [`Answer`]; the rest are plain `async fn`s). Nothing here knows about sockets: the caller
//! fans a stored chat out through the hub from what the store returns
//! ([`Placed`]). Maintenance (writing coalesced cursors, purging expired
//! tokens) is the backend's own business.

mod answer;
pub mod bots;
mod common;
mod ids;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use crate::rules::group::{GroupChange, GroupOp};
pub use crate::rules::read::ReadMoved;
pub use crate::rules::routing::{DeskDone, DeskOp, DeskRow, DeskSnapshot};
pub use answer::{answer, Answer, Reply};
pub use bots::{BotInfo, Claim, Delivery, DeliveryEnd, Webhook};
pub use common::{addressed, conversation_list, like_prefix, member_page, Listed};

use crate::auth::TokenHash;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use async_trait::async_trait;
use shared::api::{Conversations, GroupSummary, MemberInfo};
use shared::desk::{NewVisitor, Role};
use shared::{ChatMessage, Content, GroupId, MsgId, ServerFrame, Target, UserId};
use std::sync::Arc;
use std::time::Instant;

/// A conversation: one per pair of users, one per group.
pub type ConvId = i64;

/// A user as the login path needs it.
#[derive(Clone, Debug)]
pub struct UserRecord {
    /// Id.
    pub id: UserId,
    /// Username as registered.
    pub username: String,
    /// argon2 PHC string.
    pub password_hash: String,
}

/// A user as other users see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRef {
    /// Id.
    pub id: UserId,
    /// Username.
    pub username: String,
}

/// A stored chat message.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    /// Its conversation.
    pub conv: ConvId,
    /// Its position in the conversation.
    pub seq: u64,
    /// Relay-assigned UUIDv7.
    pub msg_id: MsgId,
    /// Sender.
    pub from: UserId,
    /// Sender's username.
    pub from_name: Arc<str>,
    /// Recipient user or group.
    pub to: Target,
    /// Sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// Content.
    pub content: Content,
    /// Storage time, ms since the epoch.
    pub ts: i64,
}

impl StoredMessage {
    /// The message on the wire. For a one-to-one message `to` is the
    /// recipient.
    pub fn message(&self) -> ChatMessage {
        ChatMessage {
            msg_id: self.msg_id,
            from_id: self.from,
            from_name: self.from_name.to_string(),
            to: self.to,
            content: self.content.clone(),
            ts: self.ts,
            seq: self.seq,
            client_msg_id: self.client_msg_id.clone(),
        }
    }

    /// Its type 80 push.
    pub fn push_frame(&self) -> ServerFrame {
        ServerFrame::Chat(self.message())
    }

    /// The stored message a wire message of `conv` describes (what another
    /// relay of a cluster published).
    pub fn from_wire(conv: ConvId, m: ChatMessage) -> StoredMessage {
        StoredMessage {
            conv,
            seq: m.seq,
            msg_id: m.msg_id,
            from: m.from_id,
            from_name: m.from_name.into(),
            to: m.to,
            client_msg_id: m.client_msg_id,
            content: m.content,
            ts: m.ts,
        }
    }
}

/// Where a message sits, for acks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageRef {
    /// Conversation.
    pub conv: ConvId,
    /// Position.
    pub seq: u64,
    /// Sender.
    pub from: UserId,
}

/// A chat to store, as the session validated it.
#[derive(Clone, Debug)]
pub struct NewChat {
    /// When the frame arrived (for the store latency histogram).
    pub received: Instant,
    /// Authenticated sender.
    pub from: UserId,
    /// Sender's username (for the push).
    pub from_name: Arc<str>,
    /// Recipient.
    pub to: Target,
    /// Idempotency key.
    pub client_msg_id: Option<String>,
    /// Content (validated).
    pub content: Content,
}

/// What writing a chat did.
#[derive(Clone, Debug)]
pub enum ChatOutcome {
    /// A new message is durable; fan it out.
    Stored(Placed),
    /// The chat repeated a stored `(sender, clientMsgId)`: nothing new was
    /// stored; the sender gets the original's answer again.
    Duplicate(Original),
}

/// A newly stored message and who receives it.
#[derive(Clone, Debug)]
pub struct Placed {
    /// The message.
    pub msg: Arc<StoredMessage>,
    /// For a group message, the members when it was stored (sorted); the
    /// recipient of a one-to-one message is `msg.to`.
    pub members: Option<Arc<Vec<UserId>>>,
    /// How many chats were made durable together with it (its group
    /// commit): a sign of load, for where the hub fans out.
    pub batch: usize,
}

/// The answer a stored message got, for a resend of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Original {
    /// Its id.
    pub msg_id: MsgId,
    /// Its storage time.
    pub ts: i64,
    /// Its position.
    pub seq: u64,
}

/// Where a user stands in one conversation, read at login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The conversation.
    pub conv: ConvId,
    /// The stored delivery cursor.
    pub delivered: u64,
    /// The conversation's last `seq` when it was read.
    pub last: u64,
}

/// A user's membership of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The conversation.
    pub conv: ConvId,
    /// The `seq` they joined at: they see what comes after it.
    pub joined: u64,
    /// Their read cursor.
    pub read: u64,
}

/// One page of a group's members.
#[derive(Clone, Debug, Default)]
pub struct MemberRows {
    /// Members, by username (online flags unset).
    pub members: Vec<MemberInfo>,
    /// The key to continue after, when more follow.
    pub next: Option<String>,
}

/// The storage interface.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ------------------------------------------------------------ writes --

    /// Queues a chat behind every write queued before it, waiting only
    /// while the queue is full (backpressure); `reply` is sent once the
    /// chat is durable (or refused), or answers [`Error::StoreClosed`] if
    /// the backend stops first. A sender's chats are answered in the order
    /// they were queued.
    async fn submit_chat(&self, chat: NewChat, reply: Reply<ChatOutcome>);

    /// Queues a read marker (see `rules::read`); nobody waits for it to be
    /// written, so it may wait for the backend's next quiet commit. The
    /// [`Answer`] resolves once it is committed.
    async fn submit_read(
        &self,
        user: UserId,
        to: Target,
        seq: u64,
    ) -> Result<Answer<Option<ReadMoved>>>;

    /// Registers an account; [`Error::UsernameTaken`] if the name exists in
    /// any letter case.
    async fn create_user(&self, username: String, password_hash: String) -> Result<UserId>;

    /// Stores a session token.
    async fn create_token(&self, user: UserId, hash: TokenHash, expires_at: i64) -> Result<()>;

    /// Revokes a token; returns its owner if it existed.
    async fn revoke_token(&self, hash: TokenHash) -> Result<Option<UserId>>;

    /// Creates a visitor of the desk: a user of role visitor, without a
    /// password, under the internal `username` (see `shared::desk`), with
    /// what they told about themselves. [`Error::UsernameTaken`] if the
    /// name exists.
    async fn create_visitor(&self, username: String, about: NewVisitor) -> Result<UserId>;

    /// Sets a user's role (the rules are `rules::desk::grant`'s).
    async fn set_role(&self, user: UserId, role: Role) -> Result<()>;

    /// Creates a bot (a user of role bot without a password) with its
    /// first API token (`bots::BOT_TOKEN_EXPIRES_AT`) and webhook.
    /// [`Error::UsernameTaken`] if the name exists.
    async fn create_bot(
        &self,
        username: String,
        token: TokenHash,
        webhook: Option<Webhook>,
    ) -> Result<UserId>;

    /// Sets or removes a bot's webhook; removing gives up its pending
    /// deliveries.
    async fn set_webhook(&self, bot: UserId, webhook: Option<Webhook>) -> Result<()>;

    /// Deletes every token of `user`; how many there were.
    async fn revoke_tokens(&self, user: UserId) -> Result<u64>;

    /// Claims due webhook deliveries (see [`Claim`]); in a cluster, no two
    /// relays hold the same row.
    async fn claim_deliveries(&self, claim: Claim) -> Result<Vec<Delivery>>;

    /// Records how a claimed delivery ended.
    async fn finish_delivery(&self, id: i64, end: DeliveryEnd) -> Result<()>;

    /// When the earliest webhook delivery that no live lease holds at
    /// `now` is due (ms since the epoch; `None`: nothing to deliver): a
    /// plain read (on the readers, one index probe), so an idle
    /// dispatcher writes nothing. A row leased elsewhere shows once its
    /// lease lapses.
    async fn next_delivery_at(&self, now: i64) -> Result<Option<i64>>;

    /// Notified (`notify_one`) after this relay stored messages that
    /// queued webhook deliveries, once a claim can see them: the
    /// dispatcher's nudge, so a first delivery does not wait for its poll.
    fn deliveries_queued(&self) -> Arc<tokio::sync::Notify>;

    /// Applies a group change (`rules::group::change`), in order with
    /// chats, so a message's recipients are exactly the members when it was
    /// stored.
    async fn change_group(&self, op: GroupOp) -> Result<GroupChange>;

    /// Applies a change to the support desk (`rules::routing`) in one
    /// transaction, then assigns what can be assigned in it. Refusals are
    /// [`Error::Forbidden`] / [`Error::NoSuchGroup`], with nothing changed.
    async fn desk(&self, op: DeskOp) -> Result<DeskDone>;

    /// Every desk conversation not closed and every agent (`now` decides
    /// who is online); read after every write queued before it.
    async fn desk_snapshot(&self, now: i64) -> Result<DeskSnapshot>;

    /// The desk conversation of `group`, if it is one.
    async fn desk_row(&self, group: GroupId) -> Result<Option<DeskRow>>;

    /// Moves a user's delivery cursor in a conversation forward to `seq`
    /// (never back). Moves are coalesced in memory and written by the
    /// backend on its own schedule, and before any read that must be fresh.
    /// Losing the unwritten ones in a crash only re-pushes a few messages,
    /// which clients dedupe by `msgId`.
    fn move_cursor(&self, user: UserId, conv: ConvId, seq: u64);

    // ------------------------------------------------------------- reads --

    /// Finds a user by username (case-insensitive).
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>>;

    /// The name a visitor gave (`None`: not a visitor, or no name): what
    /// their messages are signed with, their username being internal.
    async fn visitor_name(&self, user: UserId) -> Result<Option<String>>;

    /// Whether a user exists (visitors do not, to the chat's rules).
    async fn user_exists(&self, user: UserId) -> Result<bool>;

    /// A user and their role by username (case-insensitive), visitors
    /// included; read after every write queued before it.
    async fn user_role(&self, username: &str) -> Result<Option<(UserRef, Role)>>;

    /// The agents and administrators, by username; read after every write
    /// queued before it.
    async fn staff(&self) -> Result<Vec<(UserRef, Role)>>;

    /// The bots, by username, with their webhooks and outboxes; read after
    /// every write queued before it.
    async fn bots(&self) -> Result<Vec<BotInfo>>;

    /// The user a live token belongs to, with their role as stored now (a
    /// role granted by the admin command on any machine applies to the
    /// next request or login; nothing caches it).
    async fn token_user(&self, hash: TokenHash, now: i64) -> Result<Option<(UserRef, Role)>>;

    /// Which of `hashes` were revoked (no longer stored; expiry aside): a
    /// cluster relay closes their sockets after a logout whose event it
    /// may have missed. One query per call on PostgreSQL.
    async fn revoked_tokens(&self, hashes: Vec<TokenHash>) -> Result<Vec<TokenHash>> {
        let mut revoked = Vec::new();
        for h in hashes {
            if self.token_user(h, i64::MIN).await?.is_none() {
                revoked.push(h);
            }
        }
        Ok(revoked)
    }

    /// Up to `limit` users whose username starts with `prefix`
    /// (case-insensitive), sorted by username; never visitors.
    async fn search_users(&self, prefix: &str, limit: u32) -> Result<Vec<UserRef>>;

    /// Everyone who shares a one-to-one conversation with `user`, or a group
    /// of at most `group_limit` members.
    async fn contacts(&self, user: UserId, group_limit: u32) -> Result<Vec<UserRef>>;

    /// `user`'s place in each of their conversations, read after every
    /// write queued before this call is visible.
    async fn positions(&self, user: UserId) -> Result<Vec<Position>>;

    /// Up to `limit` messages for `user` above their delivery cursors, not
    /// sent by them, ordered by `(conversation, seq)` and after `after` in
    /// that order.
    async fn pending(
        &self,
        user: UserId,
        after: Option<(ConvId, u64)>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>>;

    /// The messages of `conv` with `after < seq < before` that `user` may
    /// see and did not send, oldest first; read after every write queued
    /// before this call is visible. For filling a gap in what was pushed.
    async fn range(
        &self,
        user: UserId,
        conv: ConvId,
        after: u64,
        before: u64,
    ) -> Result<Vec<StoredMessage>>;

    /// Where `msg_id` is, if it exists in a conversation `user` belongs to.
    /// A plain read: it does not wait for queued writes.
    async fn message_for(&self, user: UserId, msg_id: MsgId) -> Result<Option<MessageRef>>;

    /// `user`'s conversations, newest activity first, each with its last
    /// message after the user joined; read after every queued write.
    async fn conversations(&self, user: UserId) -> Result<Conversations>;

    /// `user`'s membership of the conversation `to` names (the pair's
    /// conversation, or the group), if any.
    async fn membership(&self, user: UserId, to: Target) -> Result<Option<Membership>>;

    /// Up to `limit` messages of `conv` with `after < seq < before`, newest
    /// first, each named as `viewer` sees it; read after every queued
    /// write. Also whether older ones (above `after`) exist.
    async fn messages(
        &self,
        viewer: UserId,
        conv: ConvId,
        after: u64,
        before: u64,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, bool)>;

    /// The read cursors of a conversation's members other than `except`,
    /// each with the `seq` they joined at.
    async fn read_cursors(&self, conv: ConvId, except: UserId) -> Result<Vec<(u64, u64)>>;

    /// A group's summary, if it exists.
    async fn group(&self, group: GroupId) -> Result<Option<GroupSummary>>;

    /// Up to `limit` members of a group by username, after `after`.
    async fn group_members_page(
        &self,
        group: GroupId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<MemberRows>;

    /// Public groups whose name starts with `prefix` (all if empty).
    async fn search_groups(&self, prefix: &str, limit: u32) -> Result<Vec<GroupSummary>>;

    /// The members of a group if it has at most `cap` of them (`Ok(None)`
    /// if it is bigger), for relaying typing notices; `None` too if it is
    /// not a group.
    async fn small_group_members(&self, group: GroupId, cap: u32) -> Result<Option<Vec<UserId>>>;

    /// Writes what is queued, commits, checkpoints and stops. Writes after
    /// this fail with [`Error::StoreClosed`].
    async fn close(&self) -> Result<()>;
}

/// Opens the backend named by `config.db`. Runs on a blocking thread of
/// the tokio runtime.
pub fn open(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<dyn Store>> {
    let url = config.db.as_str();
    #[cfg(feature = "sqlite")]
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let location = if rest == ":memory:" {
            sqlite::Location::Memory
        } else {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(Error::Config(format!("no path in database URL {url:?}")));
            }
            sqlite::Location::File(path.into())
        };
        return Ok(Arc::new(sqlite::SqliteStore::open(
            location,
            config.sqlite_sync,
            config.commit_log_mib << 20,
            metrics,
        )?));
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Called on a blocking thread of the runtime (see `relay::run`):
        // connecting and migrating are async.
        let open = postgres::PostgresStore::open(url, config.pg_pool, metrics);
        return Ok(Arc::new(tokio::runtime::Handle::current().block_on(open)?));
    }
    let mut supported = Vec::new();
    if cfg!(feature = "sqlite") {
        supported.push("sqlite://PATH, sqlite::memory:");
    }
    if cfg!(feature = "postgres") {
        supported.push("postgres://USER@HOST:PORT/DB");
    }
    Err(Error::Config(format!(
        "unsupported database URL {url:?} (this build supports {})",
        supported.join(", ")
    )))
}
