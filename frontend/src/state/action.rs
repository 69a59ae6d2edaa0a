//! Everything that can happen to the app: the reducer's input.

use super::{ConnStatus, Screen};
use crate::model::{ChatCache, ConvKey};
use shared::api::{
    ConversationSummary, GroupInfo, GroupSummary, History, MemberPage, Session, UserSummary,
};
use shared::{GroupId, ServerFrame};

/// Everything that can happen.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Signed in over HTTP (or restored from storage), with the cached chats.
    SignedIn {
        /// The session.
        session: Session,
        /// The user's cached conversations, if any.
        cache: Option<ChatCache>,
    },
    /// Logged out, or the session was found to be invalid.
    SignedOut,
    /// The socket's state changed.
    Conn(ConnStatus),
    /// LOGIN_RESP ok: pending messages are about to be resent.
    SocketLoggedIn {
        /// Local time.
        now: i64,
    },
    /// A frame from the relay (pushes are already acked).
    Frame {
        /// The frame.
        frame: ServerFrame,
        /// Local time.
        now: i64,
    },
    /// The user sends a message (the connection sends the frame).
    Send {
        /// Where.
        to: ConvKey,
        /// The peer's or group's name (for a new conversation).
        name: String,
        /// Freshly generated idempotency key.
        client_msg_id: String,
        /// The text.
        body: String,
        /// Local time.
        now: i64,
    },
    /// The user retries a failed message.
    Retry {
        /// Its key.
        client_msg_id: String,
        /// Local time.
        now: i64,
    },
    /// One second passed: expire unanswered sends and typing notices.
    Tick {
        /// Local time.
        now: i64,
    },
    /// Open a conversation.
    Open {
        /// Which.
        key: ConvKey,
        /// The peer's or group's name.
        name: String,
        /// Local time.
        now: i64,
    },
    /// We sent READ up to `seq` (or decided the conversation is read).
    MarkRead {
        /// Where.
        key: ConvKey,
        /// Up to here.
        seq: u64,
    },
    /// The page became visible or hidden.
    Visible(bool),
    /// Fresh `GET /api/conversations`.
    Conversations(Vec<ConversationSummary>),
    /// A history request went out (`true`) or failed (`false`).
    HistoryLoading {
        /// For which conversation.
        key: ConvKey,
        /// In flight.
        loading: bool,
    },
    /// A history page arrived.
    History {
        /// For which conversation.
        key: ConvKey,
        /// The `before` it was asked with (`None`: the latest page).
        before: Option<u64>,
        /// The page.
        page: History,
    },
    /// A group's details (`GET /api/groups/{id}`).
    Group {
        /// The group and its first page of members.
        info: GroupInfo,
        /// Local time.
        now: i64,
    },
    /// A group change we made was answered (create, join, add, rename).
    GroupChanged {
        /// The group as it is now.
        summary: GroupSummary,
        /// Open it (just created or joined).
        open: bool,
        /// Local time.
        now: i64,
    },
    /// A page of further members was asked for (`true`) or failed.
    MembersLoading {
        /// The group.
        group: GroupId,
        /// In flight.
        loading: bool,
    },
    /// A page of further members arrived.
    MemberPage {
        /// The group.
        group: GroupId,
        /// The cursor it was asked with.
        after: String,
        /// The page.
        page: MemberPage,
    },
    /// We left a group (HTTP 204).
    LeftGroup(GroupId),
    /// The search box changed.
    SearchQuery(String),
    /// Results for a query (ignored when the box has moved on).
    SearchResults {
        /// The query they answer.
        query: String,
        /// The users.
        users: Vec<UserSummary>,
    },
    /// The group search box changed.
    GroupQuery(String),
    /// Public groups for a query (ignored when the box has moved on).
    GroupResults {
        /// The query they answer.
        query: String,
        /// The groups.
        groups: Vec<GroupSummary>,
    },
    /// Show a screen in the main pane.
    Show(Screen),
    /// Show or hide the group member panel.
    ShowMembers(bool),
    /// Show or clear the notice.
    Notice(Option<String>),
    /// Show or hide the sidebar on narrow screens.
    ShowSidebar(bool),
}
