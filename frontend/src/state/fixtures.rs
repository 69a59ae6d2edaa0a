//! Test fixtures shared by the state's tests.

use super::{Action, State};
use crate::model::{ConvKey, MsgState};
use shared::api::{GroupInfo, GroupSummary, MemberInfo, Session, UserSummary};
use shared::{ChatMessage, Content, GroupId, MsgId, ServerFrame, Target, UserId};
use std::rc::Rc;
use yew::Reducible;

pub(crate) const KB: ConvKey = ConvKey::User(UserId(2));

pub(crate) const KG: ConvKey = ConvKey::Group(GroupId(7));

pub(crate) fn session() -> Session {
    Session {
        user_id: UserId(1),
        username: "me".into(),
        token: "tok".into(),
        expires_at: 0,
    }
}

pub(crate) fn user(id: i64, name: &str) -> UserSummary {
    UserSummary {
        user_id: UserId(id),
        username: name.into(),
    }
}

pub(crate) fn reduce(s: &Rc<State>, a: Action) -> Rc<State> {
    s.clone().reduce(a)
}

pub(crate) fn signed_in() -> Rc<State> {
    Rc::new(State::new(Some(session()), None))
}

pub(crate) fn online(s: &Rc<State>) -> Rc<State> {
    reduce(s, Action::SocketLoggedIn { now: 0 })
}

pub(crate) fn frame(s: &Rc<State>, frame: ServerFrame) -> Rc<State> {
    reduce(s, Action::Frame { frame, now: 1 })
}

pub(crate) fn send(s: &Rc<State>, cid: &str, now: i64) -> Rc<State> {
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

pub(crate) fn open(s: &Rc<State>, key: ConvKey, name: &str) -> Rc<State> {
    reduce(
        s,
        Action::Open {
            key,
            name: name.into(),
            now: 1,
        },
    )
}

pub(crate) fn state_of(s: &State, cid: &str) -> MsgState {
    s.chat
        .conversation(KB)
        .unwrap()
        .messages
        .iter()
        .find(|m| m.client_msg_id.as_deref() == Some(cid))
        .unwrap()
        .state
}

pub(crate) fn bob_says(id: u128, seq: u64) -> ServerFrame {
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

pub(crate) fn group_info() -> GroupInfo {
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
