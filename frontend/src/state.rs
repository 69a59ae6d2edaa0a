//! The application state (a yew `Reducible`) and the actions that change it.
//!
//! Pure Rust: the browser side (sockets, timers, storage, HTTP) lives in
//! `services`, turns what happens into [`Action`]s, and performs the side
//! effects (acks, sends, loads) itself. The reducer only decides what the
//! user sees.

use crate::model::{Chat, ChatCache, ConvKey, PushOutcome};
use shared::api::{ConversationSummary, GroupInfo, GroupSummary, History, Session, UserSummary};
use shared::{GroupId, ServerFrame, UserId};
use std::rc::Rc;
use yew::Reducible;

/// The WebSocket session, as the banner shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConnStatus {
    /// Not signed in: no socket.
    #[default]
    Idle,
    /// First connection attempt since sign-in.
    Connecting,
    /// Logged in on the socket.
    Online,
    /// Lost the connection; the next attempt starts in `retry_in_ms`.
    Reconnecting {
        /// Attempts since the last successful login.
        attempt: u32,
        /// Delay before the next attempt.
        retry_in_ms: u32,
    },
}

impl ConnStatus {
    /// The banner text, or `None` when no banner should show.
    pub fn banner(self) -> Option<String> {
        match self {
            ConnStatus::Idle | ConnStatus::Online => None,
            ConnStatus::Connecting => Some("Connecting…".into()),
            ConnStatus::Reconnecting { .. } => Some("Connection lost — reconnecting…".into()),
        }
    }
}

/// What the main pane shows when it is not a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Screen {
    /// The open conversation (or the welcome text).
    #[default]
    Chat,
    /// The "new group" form.
    NewGroup,
    /// Public groups to join.
    FindGroups,
}

/// Everything the UI renders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The HTTP session; `None` shows the sign-in screen.
    pub session: Option<Session>,
    /// The socket.
    pub conn: ConnStatus,
    /// Bumped at every successful socket login: the app reloads the
    /// conversation list (and the open conversation) then.
    pub logins: u32,
    /// Conversations and messages.
    pub chat: Chat,
    /// Bumped whenever `chat` changes in a way worth caching.
    pub chat_rev: u64,
    /// Online users other than us (polled).
    pub online: Vec<UserSummary>,
    /// Live presence of contacts (PRESENCE frames); wins over `online`.
    pub presence: Vec<(UserId, bool)>,
    /// The user search box.
    pub search_query: String,
    /// Results for `search_query`.
    pub search_results: Vec<UserSummary>,
    /// The group search box.
    pub group_query: String,
    /// Public groups matching `group_query`.
    pub group_results: Vec<GroupSummary>,
    /// The main pane.
    pub screen: Screen,
    /// Whether the open group's member panel shows.
    pub members_open: bool,
    /// A one-line notice for the user (left a group, an operation failed).
    pub notice: Option<String>,
    /// Narrow screens: whether the sidebar is shown instead of the
    /// conversation.
    pub sidebar_open: bool,
    /// The page is hidden (`document.visibilityState`).
    pub hidden: bool,
}

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
    /// We left a group (HTTP 204).
    LeftGroup(GroupId),
    /// Fresh `GET /api/users/online`.
    Online(Vec<UserSummary>),
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

impl State {
    /// The initial state: signed in when a session was stored.
    pub fn new(session: Option<Session>, cache: Option<ChatCache>) -> Self {
        let s = State {
            sidebar_open: true,
            ..State::default()
        };
        match session {
            Some(session) => s.apply(Action::SignedIn { session, cache }),
            None => s,
        }
    }

    /// Our user id, when signed in.
    pub fn me(&self) -> Option<UserId> {
        self.session.as_ref().map(|s| s.user_id)
    }

    /// Whether a user is online: live presence for contacts, else the
    /// polled online list.
    pub fn is_online(&self, user: UserId) -> bool {
        match self.presence.iter().find(|(u, _)| *u == user) {
            Some(&(_, p)) => p,
            None => self.online.iter().any(|u| u.user_id == user),
        }
    }

    /// Everyone shown as online: live presence over the polled list.
    pub fn online_ids(&self) -> Vec<UserId> {
        let mut ids: Vec<UserId> = self
            .online
            .iter()
            .map(|u| u.user_id)
            .filter(|u| self.is_online(*u))
            .collect();
        ids.extend(
            self.presence
                .iter()
                .filter(|(u, on)| *on && !ids.contains(u))
                .map(|(u, _)| *u)
                .collect::<Vec<_>>(),
        );
        ids
    }

    fn without_me(&self, users: Vec<UserSummary>) -> Vec<UserSummary> {
        let me = self.me();
        users
            .into_iter()
            .filter(|u| Some(u.user_id) != me)
            .collect()
    }

    fn open(&mut self, key: ConvKey, name: &str, now: i64) {
        self.chat.open(key, name, now);
        self.screen = Screen::Chat;
        self.sidebar_open = false;
        self.search_query.clear();
        self.search_results.clear();
        self.chat_rev += 1;
    }

    /// Applies a frame; `None` when nothing visible changed.
    fn on_frame(&mut self, frame: &ServerFrame, now: i64) -> Option<()> {
        let chat = &mut self.chat;
        let changed = match frame {
            ServerFrame::Chat(p) => {
                let shown = matches!(chat.on_push(p), PushOutcome::Shown | PushOutcome::Merged);
                if shown {
                    // An echo to someone new has only a placeholder name.
                    chat.learn_names(&self.online);
                }
                shown
            }
            ServerFrame::ChatResp {
                msg_id,
                client_msg_id,
                ts,
                seq,
            } => chat.on_chat_resp(*msg_id, client_msg_id.as_deref(), *ts, *seq),
            ServerFrame::Delivered { msg_id, .. } => chat.on_delivered(*msg_id),
            ServerFrame::Error(e) => chat.on_error(e),
            ServerFrame::ReadReceipt { by_id, to, seq, .. } => {
                chat.on_read_receipt(*by_id, *to, *seq)
            }
            ServerFrame::GroupEvent(e) => {
                let (changed, notice) = chat.on_group_event(e, now);
                if notice.is_some() {
                    self.notice = notice;
                    if self.chat.active.is_none() {
                        self.members_open = false;
                    }
                }
                changed
            }
            ServerFrame::Typing {
                from_id,
                from_name,
                to,
            } => {
                // Not cached: no `chat_rev` bump.
                return chat.on_typing(*from_id, from_name, *to, now).then_some(());
            }
            ServerFrame::Presence {
                user_id,
                username,
                online,
                ..
            } => {
                if Some(*user_id) == self.me() {
                    return None;
                }
                self.chat.learn_names(&[UserSummary {
                    user_id: *user_id,
                    username: username.clone(),
                }]);
                let was = self.is_online(*user_id);
                self.presence.retain(|(u, _)| u != user_id);
                self.presence.push((*user_id, *online));
                // The "Online" list follows live presence too.
                let listed = self.online.iter().position(|u| u.user_id == *user_id);
                match (listed, *online) {
                    (None, true) => {
                        let u = UserSummary {
                            user_id: *user_id,
                            username: username.clone(),
                        };
                        let at = self.online.partition_point(|x| x.username < u.username);
                        self.online.insert(at, u);
                    }
                    (Some(i), false) => {
                        self.online.remove(i);
                    }
                    _ if was == *online => return None,
                    _ => {}
                }
                return Some(());
            }
            _ => false,
        };
        if !changed {
            return None;
        }
        self.chat_rev += 1;
        Some(())
    }

    /// Applies an action; returns `None` when nothing changed (so the UI
    /// does not re-render on idle ticks).
    fn try_apply(mut self, action: Action) -> Option<Self> {
        match action {
            Action::SignedIn { session, cache } => {
                let mut chat = Chat::new(session.user_id, session.username.clone());
                if let Some(c) = cache {
                    chat.restore(c);
                }
                chat.visible = !self.hidden;
                self = State {
                    sidebar_open: chat.active.is_none(),
                    chat,
                    session: Some(session),
                    conn: ConnStatus::Connecting,
                    logins: self.logins,
                    chat_rev: self.chat_rev + 1,
                    hidden: self.hidden,
                    ..State::default()
                };
            }
            Action::SignedOut => {
                self = State {
                    sidebar_open: true,
                    chat_rev: self.chat_rev + 1,
                    logins: self.logins,
                    hidden: self.hidden,
                    ..State::default()
                };
            }
            Action::Conn(c) => {
                if self.conn == c || self.session.is_none() {
                    return None;
                }
                self.conn = c;
            }
            Action::SocketLoggedIn { now } => {
                self.conn = ConnStatus::Online;
                self.logins = self.logins.wrapping_add(1);
                // A fresh snapshot of contacts' presence follows the 11.
                self.presence.clear();
                self.chat.mark_resent(now);
            }
            Action::Frame { frame, now } => self.on_frame(&frame, now)?,
            Action::Send {
                to,
                name,
                client_msg_id,
                body,
                now,
            } => {
                self.chat
                    .queue_outgoing(to, &name, client_msg_id, body, now)?;
                self.chat_rev += 1;
            }
            Action::Retry { client_msg_id, now } => {
                self.chat.retry(&client_msg_id, now)?;
                self.chat_rev += 1;
            }
            Action::Tick { now } => {
                // Offline, nothing can be answered: messages wait (and are
                // resent on reconnect) instead of failing.
                let expired = self.conn == ConnStatus::Online && self.chat.expire(now);
                let typing = self.chat.expire_typing(now);
                if !expired && !typing {
                    return None;
                }
                if expired {
                    self.chat_rev += 1;
                }
            }
            Action::Open { key, name, now } => {
                if Some(key) == self.me().map(ConvKey::User) {
                    return None;
                }
                if self.chat.active != Some(key) {
                    self.members_open = false;
                }
                self.open(key, &name, now);
            }
            Action::MarkRead { key, seq } => {
                if !self.chat.mark_read(key, seq) {
                    return None;
                }
                self.chat_rev += 1;
            }
            Action::Visible(v) => {
                if self.hidden != v {
                    return None;
                }
                self.hidden = !v;
                self.chat.visible = v;
            }
            Action::Conversations(list) => {
                self.chat.apply_summaries(&list);
                self.chat_rev += 1;
            }
            Action::HistoryLoading { key, loading } => {
                if !self.chat.set_loading(key, loading) {
                    return None;
                }
            }
            Action::History { key, before, page } => {
                self.chat.merge_history(key, before, &page);
                self.chat_rev += 1;
            }
            Action::Group { info, now } => {
                self.chat.set_group_info(&info, now);
                self.chat_rev += 1;
            }
            Action::GroupChanged { summary, open, now } => {
                self.chat.set_group_summary(&summary, now);
                self.chat_rev += 1;
                if open {
                    let key = ConvKey::Group(summary.group_id);
                    self.open(key, &summary.name, now);
                    self.group_query.clear();
                    self.group_results.clear();
                }
            }
            Action::LeftGroup(g) => {
                let name = self
                    .chat
                    .conversation(ConvKey::Group(g))
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| "the group".into());
                self.chat.remove_group(g);
                self.members_open = false;
                self.notice = Some(format!("You left {name}."));
                self.sidebar_open = true;
                self.chat_rev += 1;
            }
            Action::Online(users) => {
                let users = self.without_me(users);
                if users == self.online {
                    return None;
                }
                self.chat.learn_names(&users);
                self.online = users;
            }
            Action::SearchQuery(q) => {
                if q.trim().is_empty() {
                    self.search_results.clear();
                }
                self.search_query = q;
            }
            Action::SearchResults { query, users } => {
                if query != self.search_query {
                    return None;
                }
                self.search_results = self.without_me(users);
            }
            Action::GroupQuery(q) => {
                if q.trim().is_empty() {
                    self.group_results.clear();
                }
                self.group_query = q;
            }
            Action::GroupResults { query, groups } => {
                if query != self.group_query {
                    return None;
                }
                self.group_results = groups;
            }
            Action::Show(screen) => {
                if self.screen == screen && !self.sidebar_open {
                    return None;
                }
                self.screen = screen;
                self.sidebar_open = false;
                if screen != Screen::Chat {
                    // The conversation is off screen: nothing in it is read.
                    self.chat.active = None;
                    self.members_open = false;
                }
            }
            Action::ShowMembers(open) => {
                if self.members_open == open {
                    return None;
                }
                self.members_open = open;
            }
            Action::Notice(n) => {
                if self.notice == n {
                    return None;
                }
                self.notice = n;
            }
            Action::ShowSidebar(open) => {
                if self.sidebar_open == open {
                    return None;
                }
                self.sidebar_open = open;
                if open {
                    // Back to the list (phones): the conversation is closed,
                    // so nothing more in it counts as read.
                    self.chat.active = None;
                    self.members_open = false;
                }
            }
        }
        Some(self)
    }

    /// Applies an action (returning the state unchanged when it is a no-op).
    pub fn apply(self, action: Action) -> Self {
        let fallback = self.clone();
        self.try_apply(action).unwrap_or(fallback)
    }
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        match (*self).clone().try_apply(action) {
            Some(next) => Rc::new(next),
            // Same Rc: yew skips the re-render.
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MsgState, SEND_TIMEOUT_MS, TYPING_SHOW_MS};
    use shared::api::{GroupSummary, MemberInfo};
    use shared::{ChatMessage, Content, GroupEvent, GroupEventKind, MsgId, Target};

    const KB: ConvKey = ConvKey::User(UserId(2));
    const KG: ConvKey = ConvKey::Group(GroupId(7));

    fn session() -> Session {
        Session {
            user_id: UserId(1),
            username: "me".into(),
            token: "tok".into(),
            expires_at: 0,
        }
    }

    fn user(id: i64, name: &str) -> UserSummary {
        UserSummary {
            user_id: UserId(id),
            username: name.into(),
        }
    }

    fn reduce(s: &Rc<State>, a: Action) -> Rc<State> {
        s.clone().reduce(a)
    }

    fn signed_in() -> Rc<State> {
        Rc::new(State::new(Some(session()), None))
    }

    fn online(s: &Rc<State>) -> Rc<State> {
        reduce(s, Action::SocketLoggedIn { now: 0 })
    }

    fn frame(s: &Rc<State>, frame: ServerFrame) -> Rc<State> {
        reduce(s, Action::Frame { frame, now: 1 })
    }

    fn send(s: &Rc<State>, cid: &str, now: i64) -> Rc<State> {
        reduce(
            s,
            Action::Send {
                to: KB,
                name: "bob".into(),
                client_msg_id: cid.into(),
                body: "hi".into(),
                now,
            },
        )
    }

    fn open(s: &Rc<State>, key: ConvKey, name: &str) -> Rc<State> {
        reduce(
            s,
            Action::Open {
                key,
                name: name.into(),
                now: 1,
            },
        )
    }

    fn state_of(s: &State, cid: &str) -> MsgState {
        s.chat
            .conversation(KB)
            .unwrap()
            .messages
            .iter()
            .find(|m| m.client_msg_id.as_deref() == Some(cid))
            .unwrap()
            .state
    }

    fn bob_says(id: u128, seq: u64) -> ServerFrame {
        ServerFrame::Chat(ChatMessage {
            msg_id: MsgId::from_u128(id),
            from_id: UserId(2),
            from_name: "bob".into(),
            to: Target::User(UserId(1)),
            content: Content::text("yo"),
            ts: 10,
            seq,
            client_msg_id: None,
        })
    }

    fn group_info() -> GroupInfo {
        GroupInfo {
            summary: GroupSummary {
                group_id: GroupId(7),
                name: "team".into(),
                owner_id: UserId(1),
                public: true,
                member_count: 2,
            },
            members: vec![
                MemberInfo {
                    user_id: UserId(1),
                    username: "me".into(),
                    owner: true,
                    read_seq: 0,
                    delivered_seq: 0,
                    online: true,
                },
                MemberInfo {
                    user_id: UserId(2),
                    username: "bob".into(),
                    owner: false,
                    read_seq: 0,
                    delivered_seq: 0,
                    online: true,
                },
            ],
            next: None,
        }
    }

    #[test]
    fn sign_in_and_out() {
        let s = Rc::new(State::new(None, None));
        assert!(s.session.is_none());
        assert_eq!(s.conn, ConnStatus::Idle);
        let s = reduce(&s, Action::Visible(false));
        let s = reduce(
            &s,
            Action::SignedIn {
                session: session(),
                cache: None,
            },
        );
        assert_eq!(s.me(), Some(UserId(1)));
        assert_eq!(s.conn, ConnStatus::Connecting);
        assert!(!s.chat.visible, "visibility survives sign-in");
        let s = send(&s, "w-1", 0);
        let rev = s.chat_rev;
        let s = reduce(&s, Action::SignedOut);
        assert!(s.session.is_none());
        assert!(s.chat.conversations.is_empty());
        assert!(s.chat_rev > rev);
        let s2 = reduce(&s, Action::Conn(ConnStatus::Online));
        assert!(Rc::ptr_eq(&s, &s2), "socket news after sign-out is ignored");
    }

    #[test]
    fn idle_ticks_do_not_rerender() {
        let s = online(&signed_in());
        let s2 = reduce(&s, Action::Tick { now: 1_000 });
        assert!(Rc::ptr_eq(&s, &s2), "nothing changed: same Rc");
        let s3 = reduce(&s, Action::Conn(ConnStatus::Online));
        assert!(Rc::ptr_eq(&s, &s3));
        let s4 = reduce(&s, Action::Visible(true));
        assert!(Rc::ptr_eq(&s, &s4));
    }

    #[test]
    fn every_socket_login_is_counted_and_resets_presence() {
        let s = online(&signed_in());
        assert_eq!(s.logins, 1);
        let s = frame(
            &s,
            ServerFrame::Presence {
                user_id: UserId(2),
                username: "bob".into(),
                online: true,
                ts: 0,
            },
        );
        assert!(s.is_online(UserId(2)));
        let s = reduce(
            &s,
            Action::Conn(ConnStatus::Reconnecting {
                attempt: 1,
                retry_in_ms: 100,
            }),
        );
        let s = online(&s);
        assert_eq!(s.logins, 2);
        assert!(s.presence.is_empty(), "a fresh snapshot follows the 11");
    }

    #[test]
    fn sends_fail_on_timeout_only_while_online() {
        let s = send(&online(&signed_in()), "w-1", 0);
        let s = reduce(
            &s,
            Action::Conn(ConnStatus::Reconnecting {
                attempt: 1,
                retry_in_ms: 500,
            }),
        );
        let s = reduce(
            &s,
            Action::Tick {
                now: SEND_TIMEOUT_MS * 3,
            },
        );
        assert_eq!(state_of(&s, "w-1"), MsgState::Sending, "offline: waits");
        let t = SEND_TIMEOUT_MS * 3;
        let s = reduce(&s, Action::SocketLoggedIn { now: t });
        let s = reduce(&s, Action::Tick { now: t + 1 });
        assert_eq!(state_of(&s, "w-1"), MsgState::Sending);
        let s = reduce(
            &s,
            Action::Tick {
                now: t + SEND_TIMEOUT_MS,
            },
        );
        assert_eq!(state_of(&s, "w-1"), MsgState::Failed);
        let rev = s.chat_rev;
        let s = reduce(
            &s,
            Action::Retry {
                client_msg_id: "w-1".into(),
                now: t + SEND_TIMEOUT_MS,
            },
        );
        assert_eq!(state_of(&s, "w-1"), MsgState::Sending);
        assert!(s.chat_rev > rev, "retries are cached");
        let s2 = reduce(
            &s,
            Action::Retry {
                client_msg_id: "w-1".into(),
                now: 0,
            },
        );
        assert!(Rc::ptr_eq(&s, &s2));
    }

    #[test]
    fn frames_drive_message_states_up_to_read() {
        let s = send(&online(&signed_in()), "w-1", 0);
        let msg_id = MsgId::from_u128(7);
        let s = frame(
            &s,
            ServerFrame::ChatResp {
                msg_id,
                client_msg_id: Some("w-1".into()),
                ts: 5,
                seq: 1,
            },
        );
        assert_eq!(state_of(&s, "w-1"), MsgState::Sent);
        let s = frame(
            &s,
            ServerFrame::Delivered {
                msg_id,
                by_id: UserId(2),
                ts: 6,
            },
        );
        assert_eq!(state_of(&s, "w-1"), MsgState::Delivered);
        let s = frame(
            &s,
            ServerFrame::ReadReceipt {
                by_id: UserId(2),
                to: Target::User(UserId(1)),
                prev_seq: Some(0),
                seq: 1,
                ts: 7,
            },
        );
        let c = s.chat.conversation(KB).unwrap();
        assert_eq!(c.display_state(&c.messages[0], UserId(1)), MsgState::Read);
        let s2 = frame(&s, ServerFrame::Pong { ts: 1 });
        assert!(Rc::ptr_eq(&s, &s2), "frames that change nothing");
    }

    #[test]
    fn duplicate_pushes_do_not_change_state_and_reads_clear_badges() {
        let s = online(&signed_in());
        let s = frame(&s, bob_says(9, 1));
        assert_eq!(s.chat.total_unread(), 1);
        let s2 = frame(&s, bob_says(9, 1));
        assert!(Rc::ptr_eq(&s, &s2));
        // Opening shows it and hides the sidebar (narrow screens); the READ
        // the app sends then clears the badge.
        let s = open(&s2, KB, "bob");
        assert!(!s.sidebar_open);
        assert_eq!(s.chat.read_candidate(), Some((KB, 1)));
        let s = reduce(&s, Action::MarkRead { key: KB, seq: 1 });
        assert_eq!(s.chat.total_unread(), 0);
        let s2 = reduce(&s, Action::MarkRead { key: KB, seq: 1 });
        assert!(Rc::ptr_eq(&s, &s2));
        // Back to the list on a phone: closed, nothing more is read.
        let s = reduce(&s, Action::ShowSidebar(true));
        assert_eq!(s.chat.active, None);
        let s = open(&s, KB, "bob");
        // Hidden page: nothing to read.
        let s = reduce(&s, Action::Visible(false));
        let s = frame(&s, bob_says(10, 2));
        assert_eq!(s.chat.read_candidate(), None);
        assert_eq!(s.chat.total_unread(), 1);
        let s = reduce(&s, Action::Visible(true));
        assert_eq!(s.chat.read_candidate(), Some((KB, 2)));
        // We cannot open a conversation with ourselves.
        let s3 = open(&s, ConvKey::User(UserId(1)), "me");
        assert!(Rc::ptr_eq(&s, &s3));
    }

    #[test]
    fn presence_frames_drive_dots_and_the_online_list() {
        let s = signed_in();
        let s = reduce(&s, Action::Online(vec![user(1, "me"), user(3, "carol")]));
        assert_eq!(s.online, [user(3, "carol")]);
        let presence = |id: i64, name: &str, online: bool| ServerFrame::Presence {
            user_id: UserId(id),
            username: name.into(),
            online,
            ts: 0,
        };
        let s = frame(&s, presence(2, "bob", true));
        assert!(s.is_online(UserId(2)));
        assert_eq!(s.online, [user(2, "bob"), user(3, "carol")]);
        let s = frame(&s, presence(3, "carol", false));
        assert!(!s.is_online(UserId(3)));
        assert_eq!(s.online, [user(2, "bob")]);
        // A poll that still lists carol does not override live presence.
        let s = reduce(&s, Action::Online(vec![user(2, "bob"), user(3, "carol")]));
        assert!(!s.is_online(UserId(3)));
        assert_eq!(s.online_ids().into_iter().collect::<Vec<_>>(), [UserId(2)]);
        let s2 = frame(&s, presence(2, "bob", true));
        assert!(Rc::ptr_eq(&s, &s2), "no change");
        let s3 = frame(&s, presence(1, "me", false));
        assert!(Rc::ptr_eq(&s, &s3), "not about us");
    }

    #[test]
    fn typing_shows_then_expires_on_ticks() {
        let s = online(&signed_in());
        let s = reduce(
            &s,
            Action::Frame {
                frame: ServerFrame::Typing {
                    from_id: UserId(2),
                    from_name: "bob".into(),
                    to: Target::User(UserId(1)),
                },
                now: 1_000,
            },
        );
        assert_eq!(s.chat.typing_in(KB), ["bob"]);
        let s2 = reduce(&s, Action::Tick { now: 2_000 });
        assert!(Rc::ptr_eq(&s, &s2));
        let rev = s.chat_rev;
        let s = reduce(
            &s,
            Action::Tick {
                now: 1_000 + TYPING_SHOW_MS,
            },
        );
        assert!(s.chat.typing_in(KB).is_empty());
        assert_eq!(s.chat_rev, rev, "typing is not cached");
    }

    #[test]
    fn groups_created_joined_and_left() {
        let s = open(&online(&signed_in()), KB, "bob");
        let s = reduce(&s, Action::Show(Screen::NewGroup));
        assert_eq!(s.screen, Screen::NewGroup);
        assert_eq!(s.chat.active, None, "the form replaces the conversation");
        assert_eq!(s.chat.read_candidate(), None);
        let s = reduce(
            &s,
            Action::GroupChanged {
                summary: group_info().summary,
                open: true,
                now: 5,
            },
        );
        assert_eq!(s.screen, Screen::Chat);
        let s = reduce(
            &s,
            Action::Group {
                info: group_info(),
                now: 6,
            },
        );
        assert_eq!(s.chat.active, Some(KG));
        let s = reduce(&s, Action::ShowMembers(true));
        let c = s.chat.conversation(KG).unwrap();
        assert_eq!(c.name, "team");
        assert!(c.is_owner(UserId(1)));
        assert_eq!(c.group.as_ref().unwrap().members.len(), 2);
        // Another conversation closes the member panel.
        let s = open(&s, KB, "bob");
        assert!(!s.members_open);
        // Renamed from elsewhere.
        let renamed = GroupEvent {
            group_id: GroupId(7),
            kind: GroupEventKind::Renamed,
            user_id: None,
            username: None,
            by_id: Some(UserId(1)),
            name: Some("crew".into()),
        };
        let s = frame(&s, ServerFrame::GroupEvent(renamed));
        assert_eq!(s.chat.conversation(KG).unwrap().name, "crew");
        let s = open(&s, KG, "crew");
        let s = reduce(&s, Action::LeftGroup(GroupId(7)));
        assert!(s.chat.conversation(KG).is_none());
        assert_eq!(s.chat.active, None);
        assert_eq!(s.notice.as_deref(), Some("You left crew."));
        let s = reduce(&s, Action::Notice(None));
        assert_eq!(s.notice, None);
    }

    #[test]
    fn being_removed_shows_a_notice() {
        let s = online(&signed_in());
        let s = reduce(
            &s,
            Action::Group {
                info: group_info(),
                now: 5,
            },
        );
        let removed = GroupEvent {
            group_id: GroupId(7),
            kind: GroupEventKind::MemberRemoved,
            user_id: Some(UserId(1)),
            username: Some("me".into()),
            by_id: Some(UserId(2)),
            name: Some("team".into()),
        };
        let s = frame(&s, ServerFrame::GroupEvent(removed));
        assert!(s.notice.as_deref().unwrap().contains("removed from team"));
        assert!(s.chat.conversation(KG).unwrap().read_only());
    }

    #[test]
    fn history_actions_track_loading() {
        let s = open(&online(&signed_in()), KB, "bob");
        let s = reduce(
            &s,
            Action::HistoryLoading {
                key: KB,
                loading: true,
            },
        );
        assert!(s.chat.conversation(KB).unwrap().history.loading);
        let s2 = reduce(
            &s,
            Action::HistoryLoading {
                key: KB,
                loading: true,
            },
        );
        assert!(Rc::ptr_eq(&s, &s2));
        let s = reduce(
            &s,
            Action::History {
                key: KB,
                before: None,
                page: History {
                    messages: vec![],
                    has_more: false,
                    read_by: vec![],
                },
            },
        );
        let h = &s.chat.conversation(KB).unwrap().history;
        assert!(h.loaded && !h.loading);
    }

    #[test]
    fn online_list_and_search_exclude_us_and_ignore_stale_results() {
        let s = signed_in();
        let s = reduce(&s, Action::SearchQuery("ca".into()));
        let s = reduce(&s, Action::SearchQuery("car".into()));
        let s2 = reduce(
            &s,
            Action::SearchResults {
                query: "ca".into(),
                users: vec![user(4, "cat")],
            },
        );
        assert!(Rc::ptr_eq(&s, &s2), "stale answer dropped");
        let s = reduce(
            &s,
            Action::SearchResults {
                query: "car".into(),
                users: vec![user(1, "carme"), user(3, "carol")],
            },
        );
        assert_eq!(s.search_results, [user(3, "carol")]);
        let s = open(&s, ConvKey::User(UserId(3)), "carol");
        assert!(s.search_query.is_empty() && s.search_results.is_empty());
        // Group search: same rule.
        let s = reduce(&s, Action::GroupQuery("te".into()));
        let s2 = reduce(
            &s,
            Action::GroupResults {
                query: "t".into(),
                groups: vec![group_info().summary],
            },
        );
        assert!(Rc::ptr_eq(&s, &s2));
        let s = reduce(
            &s,
            Action::GroupResults {
                query: "te".into(),
                groups: vec![group_info().summary],
            },
        );
        assert_eq!(s.group_results.len(), 1);
    }

    /// The echo of a message "me" (user 1) sent from another tab.
    fn my_echo(id: u128, to: i64, seq: u64, cid: &str) -> ServerFrame {
        ServerFrame::Chat(ChatMessage {
            msg_id: MsgId::from_u128(id),
            from_id: UserId(1),
            from_name: "me".into(),
            to: Target::User(UserId(to)),
            content: Content::text("hey"),
            ts: seq as i64,
            seq,
            client_msg_id: Some(cid.into()),
        })
    }

    #[test]
    fn online_list_fills_in_unknown_peer_names() {
        let s = signed_in();
        let s = frame(&s, my_echo(3, 5, 1, "t2-1"));
        let k = ConvKey::User(UserId(5));
        assert_eq!(s.chat.conversation(k).unwrap().name, "user 5");
        let s = reduce(&s, Action::Online(vec![user(5, "eve")]));
        assert_eq!(s.chat.conversation(k).unwrap().name, "eve");
        // Already in the online list when the echo comes: named at once.
        let s = frame(&s, my_echo(4, 6, 1, "t2-2"));
        let s = reduce(&s, Action::Online(vec![user(6, "fay")]));
        let s = frame(&s, my_echo(5, 6, 2, "t2-3"));
        assert_eq!(
            s.chat.conversation(ConvKey::User(UserId(6))).unwrap().name,
            "fay"
        );
    }

    #[test]
    fn banner_text() {
        assert_eq!(ConnStatus::Online.banner(), None);
        assert_eq!(ConnStatus::Idle.banner(), None);
        let r = ConnStatus::Reconnecting {
            attempt: 3,
            retry_in_ms: 4_200,
        }
        .banner()
        .unwrap();
        assert!(r.contains("reconnecting…"), "{r}");
        assert!(ConnStatus::Connecting.banner().is_some());
    }

    #[test]
    fn restored_session_uses_the_cache() {
        let mut s = State::new(Some(session()), None);
        s = s.apply(Action::Send {
            to: KB,
            name: "bob".into(),
            client_msg_id: "w-1".into(),
            body: "hi".into(),
            now: 1,
        });
        s = s.apply(Action::Open {
            key: KB,
            name: "bob".into(),
            now: 2,
        });
        let cache = s.chat.to_cache();
        let r = State::new(Some(session()), Some(cache));
        assert_eq!(r.chat.active, Some(KB));
        assert!(!r.sidebar_open, "reopens the last conversation");
        assert_eq!(r.chat.pending_frames().len(), 1);
    }
}
