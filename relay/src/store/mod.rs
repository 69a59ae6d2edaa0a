//! Storage: a trait, so the embedded SQLite default and the clustered
//! PostgreSQL backend (a later milestone) are interchangeable, with each
//! backend behind a cargo feature.
//!
//! Writes go through one ordered queue and are made durable in batches
//! (group commit): everything that arrived while the previous batch was being
//! made durable goes into the next one (for SQLite: into its commit log, see
//! `sqlite/front.rs`). Each durable batch is handed to a [`CommitSink`] (the
//! hub) **in order**, which is what lets the hub push messages of a
//! conversation in `seq` order and answer 81 only after the message is
//! durable.

#[cfg(feature = "sqlite")]
mod sqlite;

use crate::auth::TokenHash;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::socket::SocketHandle;
use async_trait::async_trait;
use shared::api::{Conversations, GroupInfo, GroupSummary, History};
use shared::{ChatMessage, Content, GroupEvent, GroupId, MsgId, ServerFrame, Target, UserId};
use std::sync::Arc;
use tokio::sync::oneshot;

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
    /// The type 80 push of this message. For a one-to-one message `to` is
    /// the recipient.
    pub fn push_frame(&self) -> ServerFrame {
        ServerFrame::Chat(ChatMessage {
            msg_id: self.msg_id,
            from_id: self.from,
            from_name: self.from_name.to_string(),
            to: self.to,
            content: self.content.clone(),
            ts: self.ts,
            seq: self.seq,
            client_msg_id: self.client_msg_id.clone(),
        })
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

/// A chat to store.
#[derive(Debug)]
pub struct ChatWrite {
    /// When the frame arrived (for the store latency histogram).
    pub received: std::time::Instant,
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
    /// The socket that sent it, which gets the 81 or the error.
    pub origin: SocketHandle,
    /// The sender's in-flight slot, released once its answer is queued:
    /// this bounds the answers a socket can owe, so a client is never
    /// closed as a slow consumer because of replies to its own burst.
    pub slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// One operation on the write queue.
#[derive(Debug)]
pub enum Write {
    /// Store a chat; the outcome goes to the [`CommitSink`].
    Chat(ChatWrite),
    /// Write the coalesced cursor moves ([`Store::move_cursor`]); sent by
    /// a timer.
    FlushCursors,
    /// Register an account.
    CreateUser {
        /// Username (validated).
        username: String,
        /// argon2 hash.
        password_hash: String,
        /// Result.
        reply: oneshot::Sender<Result<UserId>>,
    },
    /// Store a session token.
    CreateToken {
        /// Owner.
        user: UserId,
        /// SHA-256 of the token.
        hash: TokenHash,
        /// Expiry, ms since the epoch.
        expires_at: i64,
        /// Result.
        reply: oneshot::Sender<Result<()>>,
    },
    /// Revoke a token; answers its owner if it existed.
    RevokeToken {
        /// SHA-256 of the token.
        hash: TokenHash,
        /// Result.
        reply: oneshot::Sender<Result<Option<UserId>>>,
    },
    /// Delete expired tokens.
    PurgeExpiredTokens {
        /// Now, ms since the epoch.
        now: i64,
    },
    /// Change a group. Applied in order with messages, so a message's
    /// recipients are exactly the members when it was stored.
    Group {
        /// The change.
        op: GroupOp,
        /// Result; the hub also gets it, to notify members.
        reply: oneshot::Sender<Result<GroupId>>,
    },
    /// Move a user's read cursor forward.
    Read {
        /// The reader.
        user: UserId,
        /// The conversation, as the reader names it.
        to: Target,
        /// Read up to here (clamped to the conversation's last message).
        seq: u64,
        /// The reader's socket, for errors.
        origin: SocketHandle,
    },
}

/// A change to a group. Permission checks run inside the transaction.
#[derive(Debug)]
pub enum GroupOp {
    /// A new group owned by `owner`.
    Create {
        /// Owner and first member.
        owner: UserId,
        /// Name (validated).
        name: String,
        /// Anyone may join.
        public: bool,
    },
    /// A member adds someone by username.
    Add {
        /// The group.
        group: GroupId,
        /// Who adds (must be a member).
        actor: UserId,
        /// Who is added.
        username: String,
    },
    /// Someone joins a public group.
    Join {
        /// The group.
        group: GroupId,
        /// Who joins.
        user: UserId,
    },
    /// A member leaves (an owner who leaves hands the group on).
    Leave {
        /// The group.
        group: GroupId,
        /// Who leaves.
        user: UserId,
    },
    /// The owner removes a member.
    Remove {
        /// The group.
        group: GroupId,
        /// Who removes (must be the owner).
        actor: UserId,
        /// Who is removed.
        user: UserId,
    },
    /// The owner renames the group.
    Rename {
        /// The group.
        group: GroupId,
        /// Who renames (must be the owner).
        actor: UserId,
        /// New name (validated).
        name: String,
    },
}

impl GroupOp {
    /// The existing group it changes (`None` for a new one).
    pub fn group(&self) -> Option<GroupId> {
        match self {
            GroupOp::Create { .. } => None,
            GroupOp::Add { group, .. }
            | GroupOp::Join { group, .. }
            | GroupOp::Leave { group, .. }
            | GroupOp::Remove { group, .. }
            | GroupOp::Rename { group, .. } => Some(*group),
        }
    }
}

/// What a committed batch produced, one entry per chat, in commit order.
#[derive(Debug)]
pub enum Committed {
    /// A new message is durable.
    Chat {
        /// The message.
        msg: Arc<StoredMessage>,
        /// The socket that sent it.
        origin: SocketHandle,
        /// Released after the answer is queued.
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
        /// For a group message: the members when it was stored.
        members: Option<Arc<Vec<UserId>>>,
    },
    /// The chat repeated a stored `(sender, clientMsgId)`: nothing new was
    /// stored; the sender gets the original id again.
    Duplicate {
        /// Original id.
        msg_id: MsgId,
        /// Original time.
        ts: i64,
        /// Original position.
        seq: u64,
        /// The key.
        client_msg_id: Option<String>,
        /// The socket that sent it.
        origin: SocketHandle,
        /// Released after the answer is queued.
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    /// The chat was refused (unknown recipient, not a member, storage error).
    Rejected {
        /// Why.
        error: Error,
        /// The key.
        client_msg_id: Option<String>,
        /// The socket that sent it.
        origin: SocketHandle,
        /// Released after the answer is queued.
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    /// A group changed.
    Group(GroupChange),
    /// A read cursor moved.
    Read(ReadMoved),
    /// A read frame was refused.
    ReadRejected {
        /// Why.
        error: Error,
        /// The reader's socket.
        origin: SocketHandle,
    },
}

/// A committed group change, for the hub to announce.
#[derive(Debug)]
pub struct GroupChange {
    /// What happened, in order.
    pub events: Vec<GroupEvent>,
    /// Members after the change.
    pub members: Arc<Vec<UserId>>,
    /// Former members who must hear about it too (left or removed).
    pub former: Vec<UserId>,
}

/// A committed read-cursor move, for the hub to announce.
#[derive(Debug)]
pub struct ReadMoved {
    /// The reader.
    pub reader: UserId,
    /// The conversation, as the reader names it.
    pub to: Target,
    /// New read cursor.
    pub seq: u64,
    /// Senders of the newly read messages (other than the reader).
    pub senders: Vec<UserId>,
}

/// Receives committed batches, on the storage writer's thread, in commit
/// order. Implementations must not block: they queue frames and return.
pub trait CommitSink: Send + Sync + 'static {
    /// One committed batch.
    fn committed(&self, batch: Vec<Committed>);
}

/// The storage interface.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Queues a write. Waits only while the queue is full (backpressure).
    async fn write(&self, w: Write) -> Result<()>;

    /// Moves a user's delivery cursor in a conversation forward to `seq`
    /// (never back). Moves are coalesced in memory and written on the next
    /// [`Write::FlushCursors`], and before any read that must be fresh.
    /// They skip the write queue: at one per ack, queueing them woke the
    /// writing thread as often as chats did, for nothing it had to order.
    /// Losing the unwritten ones in a crash only re-pushes a few messages,
    /// which clients dedupe by `msgId`.
    fn move_cursor(&self, user: UserId, conv: ConvId, seq: u64);

    /// Finds a user by username (case-insensitive).
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>>;

    /// The user a live token belongs to.
    async fn token_user(&self, hash: TokenHash, now: i64) -> Result<Option<UserRef>>;

    /// Up to `limit` messages for `user` that are above their delivery
    /// cursors, not sent by them, with ids above `after`, oldest first.
    async fn pending(
        &self,
        user: UserId,
        after: Option<MsgId>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>>;

    /// Where `msg_id` is, if it exists in a conversation `user` belongs to.
    async fn message_for(&self, user: UserId, msg_id: MsgId) -> Result<Option<MessageRef>>;

    /// Up to `limit` users whose username starts with `prefix`
    /// (case-insensitive), sorted by username.
    async fn search_users(&self, prefix: &str, limit: u32) -> Result<Vec<UserRef>>;

    /// Everyone who shares a one-to-one conversation with `user`, or a group
    /// of at most `group_limit` members.
    async fn contacts(&self, user: UserId, group_limit: u32) -> Result<Vec<UserRef>>;

    /// `user`'s conversations, newest activity first.
    async fn conversations(&self, user: UserId) -> Result<Conversations>;

    /// A page of a conversation `user` is in: messages with `seq` below
    /// `before` (all if `None`) and after the user joined, oldest first.
    async fn history(
        &self,
        user: UserId,
        to: Target,
        before: Option<u64>,
        limit: u32,
    ) -> Result<History>;

    /// A group with its members (online flags false); visible to members,
    /// and to anyone for a public group.
    async fn group_info(&self, viewer: UserId, group: GroupId) -> Result<GroupInfo>;

    /// Public groups whose name starts with `prefix` (all if empty).
    async fn search_groups(&self, prefix: &str, limit: u32) -> Result<Vec<GroupSummary>>;

    /// The members of a group `user` is in, if it has at most `cap`
    /// members; `Ok(None)` if it is bigger; `NotMember` if `user` is not in it.
    async fn group_members(
        &self,
        user: UserId,
        group: GroupId,
        cap: u32,
    ) -> Result<Option<Vec<UserId>>>;

    /// Flushes the queue, commits, checkpoints and stops the writer. Writes
    /// after this fail with [`Error::StoreClosed`].
    async fn close(&self) -> Result<()>;
}

impl dyn Store {
    /// Registers an account; [`Error::UsernameTaken`] if the name exists
    /// in any letter case.
    pub async fn create_user(&self, username: String, password_hash: String) -> Result<UserId> {
        let (reply, rx) = oneshot::channel();
        self.write(Write::CreateUser {
            username,
            password_hash,
            reply,
        })
        .await?;
        rx.await.map_err(|_| Error::StoreClosed)?
    }

    /// Stores a session token.
    pub async fn create_token(&self, user: UserId, hash: TokenHash, expires_at: i64) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.write(Write::CreateToken {
            user,
            hash,
            expires_at,
            reply,
        })
        .await?;
        rx.await.map_err(|_| Error::StoreClosed)?
    }

    /// Applies a group change; returns the group id.
    pub async fn change_group(&self, op: GroupOp) -> Result<GroupId> {
        let (reply, rx) = oneshot::channel();
        self.write(Write::Group { op, reply }).await?;
        rx.await.map_err(|_| Error::StoreClosed)?
    }

    /// Revokes a token; returns its owner if it existed.
    pub async fn revoke_token(&self, hash: TokenHash) -> Result<Option<UserId>> {
        let (reply, rx) = oneshot::channel();
        self.write(Write::RevokeToken { hash, reply }).await?;
        rx.await.map_err(|_| Error::StoreClosed)?
    }
}

/// Opens the backend named by `config.db`.
pub fn open(
    config: &Config,
    sink: Arc<dyn CommitSink>,
    metrics: Arc<Metrics>,
) -> Result<Arc<dyn Store>> {
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
            sink,
            metrics,
        )?));
    }
    Err(Error::Config(format!(
        "unsupported database URL {url:?} (this build supports sqlite://PATH and sqlite::memory:)"
    )))
}
