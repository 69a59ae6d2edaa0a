//! HTTP API bodies (`/api/...`). JSON, camelCase, ids as strings.

use crate::codes::ErrorCode;
use crate::ids::{GroupId, UserId};
use crate::message::ChatMessage;
use serde::{Deserialize, Serialize};

/// `POST /api/register` and `POST /api/login` request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// See `validate::username`.
    pub username: String,
    /// See `validate::password`.
    pub password: String,
}

/// `201` from `/api/register`, `200` from `/api/login`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The account.
    pub user_id: UserId,
    /// The username as registered.
    pub username: String,
    /// Opaque bearer token: send it in LOGIN frames and as
    /// `Authorization: Bearer <token>`.
    pub token: String,
    /// When the token stops working, milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// One entry of `GET /api/users/online`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    /// The user.
    pub user_id: UserId,
    /// Their username.
    pub username: String,
}

/// `GET /api/users/online` (your contacts who are online, a page at a
/// time) and `GET /api/users?q=` (search) response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineUsers {
    /// Sorted by username.
    pub users: Vec<UserSummary>,
    /// When more follow: pass it as `after` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The body of every HTTP error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable.
    pub code: ErrorCode,
    /// Human-readable.
    pub message: String,
}

/// `GET /api/conversations/{user|group}/{id}/messages` response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// One page, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Whether older messages exist (ask again with `before` = the first
    /// message's `seq`).
    pub has_more: bool,
    /// In a group: how many members (other than you) have read each of
    /// your own messages in this page, counted by the relay. Keep it
    /// current with the `prevSeq` of type 71 frames.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_by: Vec<ReadCount>,
}

/// How many members have read one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadCount {
    /// The message.
    pub seq: u64,
    /// Members other than its sender whose read cursor is at or past it.
    pub count: u32,
}

/// Kind of conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Two users.
    Direct,
    /// A group.
    Group,
}

/// A group as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    /// Id.
    pub group_id: GroupId,
    /// Name.
    pub name: String,
    /// Owner.
    pub owner_id: UserId,
    /// Anyone may join a public group.
    pub public: bool,
    /// Current member count.
    pub member_count: u32,
}

/// One entry of `GET /api/conversations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    /// Direct or group.
    pub kind: ConversationKind,
    /// The other user (direct).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<UserSummary>,
    /// The group (group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupSummary>,
    /// The newest message you may see, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<ChatMessage>,
    /// Highest `seq` in the conversation.
    pub last_seq: u64,
    /// Messages from others above your read cursor.
    pub unread: u64,
    /// Your read cursor.
    pub read_seq: u64,
    /// The peer's read cursor (direct only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_read_seq: Option<u64>,
    /// The peer's delivery cursor (direct only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_delivered_seq: Option<u64>,
}

/// `GET /api/conversations` response body, newest activity first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversations {
    /// The conversations.
    pub conversations: Vec<ConversationSummary>,
}

/// A group member as `GET /api/groups/{id}` lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    /// The member.
    pub user_id: UserId,
    /// Their username.
    pub username: String,
    /// Whether they own the group.
    pub owner: bool,
    /// Their read cursor.
    pub read_seq: u64,
    /// Their delivery cursor.
    pub delivered_seq: u64,
    /// Whether they are online now.
    pub online: bool,
}

/// `GET /api/groups/{id}` response body: the group and the first page of
/// its members. Group changes (create, add, join, rename, leave, remove)
/// answer with the [`GroupSummary`] alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupInfo {
    /// The group.
    #[serde(flatten)]
    pub summary: GroupSummary,
    /// The first page of members, by username.
    pub members: Vec<MemberInfo>,
    /// When more members follow: pass it as `after` to
    /// `GET /api/groups/{id}/members`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /api/groups/{id}/members?after=&limit=` response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberPage {
    /// Members, by username.
    pub members: Vec<MemberInfo>,
    /// When more follow: pass it as `after` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `POST /api/groups` request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGroup {
    /// See `validate::group_name`.
    pub name: String,
    /// Anyone may join a public group.
    #[serde(default)]
    pub public: bool,
}

/// `PATCH /api/groups/{id}` request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameGroup {
    /// The new name.
    pub name: String,
}

/// `POST /api/groups/{id}/members` request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// Who to add.
    pub username: String,
}

/// `GET /api/groups?q=` response body: public groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Groups {
    /// Matching groups.
    pub groups: Vec<GroupSummary>,
}
