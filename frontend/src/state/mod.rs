//! The application state (a yew `Reducible`) and the actions that change it.
//!
//! Pure Rust: the browser side (sockets, timers, storage, HTTP) lives in
//! `services`, turns what happens into [`Action`]s, and performs the side
//! effects (acks, sends, loads) itself. The reducer only decides what the
//! user sees.
//!
//! - `action.rs`: the [`Action`] enum;
//! - `conn.rs`: the socket's status and its banner;
//! - `desk.rs`: the support desk as an agent sees it (type 133);
//! - `frames.rs`: how frames from the relay are applied;
//! - `groups.rs`: group details, our group changes, member pages;
//! - `presence.rs`: contacts' presence, from PRESENCE frames only;
//! - `ui.rs`: screen-only state: searches, panes, panels, the notice.

mod action;
mod conn;
mod desk;
mod frames;
mod groups;
pub mod presence;
mod ui;

#[cfg(test)]
mod fixtures;

pub use action::Action;
pub use conn::ConnStatus;
pub use desk::transfer_targets;
pub use presence::Presence;

use crate::model::{Chat, ChatCache, ConvKey};
use shared::api::{GroupSummary, Session, UserSummary};
use shared::desk::{DeskBoard, DeskStatus};
use shared::{ServerFrame, UserId};
use std::rc::Rc;
use yew::Reducible;

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
    /// The support desk (agents and admins).
    Desk,
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
    /// Contacts' presence, from PRESENCE frames only (the snapshot after
    /// each login, then changes); empty while the socket is down. Shared
    /// with the components that draw dots, hence the `Rc`.
    pub presence: Rc<Presence>,
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
    /// The desk as the relay last showed it (type 133, sent to agents and
    /// admins only, at every login): `Some` shows the Desk.
    pub desk: Option<Rc<DeskBoard>>,
    /// `support.html`: the visitor's conversation (type 131).
    pub desk_status: Option<DeskStatus>,
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

    fn open(&mut self, key: ConvKey, name: &str, now: i64) {
        self.chat.open(key, name, now);
        self.screen = Screen::Chat;
        self.sidebar_open = false;
        self.search_query.clear();
        self.search_results.clear();
        self.chat_rev += 1;
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
                if matches!(c, ConnStatus::Reconnecting { .. }) {
                    // Who went away meanwhile, we cannot know: grey dots
                    // until the next login's snapshot.
                    self.presence = Rc::default();
                }
                self.conn = c;
            }
            Action::SocketLoggedIn { now } => {
                self.conn = ConnStatus::Online;
                self.logins = self.logins.wrapping_add(1);
                // A fresh snapshot of contacts' presence follows the 11.
                self.presence = Rc::default();
                self.chat.mark_resent(now);
                self.chat.members_may_be_stale();
            }
            // Not cached: the relay sends a fresh board at every login.
            Action::Frame {
                frame: ServerFrame::DeskBoard(b),
                ..
            } => self.apply_board(b),
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
                // The desk shows waiting times: redrawn every second.
                let desk = self.screen == Screen::Desk && self.desk.is_some();
                if !expired && !typing && !desk {
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
            group @ (Action::Group { .. }
            | Action::GroupChanged { .. }
            | Action::LeftGroup(_)
            | Action::MembersLoading { .. }
            | Action::MemberPage { .. }) => self.apply_group(group)?,
            ui @ (Action::SearchQuery(_)
            | Action::SearchResults { .. }
            | Action::GroupQuery(_)
            | Action::GroupResults { .. }
            | Action::Show(_)
            | Action::ShowMembers(_)
            | Action::Notice(_)
            | Action::ShowSidebar(_)) => self.apply_ui(ui)?,
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
    use super::fixtures::*;
    use super::*;
    use crate::model::{MsgState, SEND_TIMEOUT_MS};
    use shared::api::History;
    use shared::ServerFrame;

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
        let bob_online = ServerFrame::Presence {
            user_id: UserId(2),
            username: "bob".into(),
            online: true,
            ts: 0,
        };
        let s = online(&signed_in());
        assert_eq!(s.logins, 1);
        let s = frame(&s, bob_online.clone());
        assert!(s.presence.is_online(UserId(2)));
        let s = reduce(
            &s,
            Action::Conn(ConnStatus::Reconnecting {
                attempt: 1,
                retry_in_ms: 100,
            }),
        );
        assert!(s.presence.is_empty(), "the socket is gone: nobody known");
        // A snapshot frame that sneaks in before the next login is dropped
        // by that login, which brings its own.
        let s = frame(&s, bob_online);
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
