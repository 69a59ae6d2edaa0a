//! Test fixtures shared by the model's tests: users, a group, and builders
//! for pushes, history pages, summaries and group details.

use super::{Chat, ConvKey, Conversation, Message};
use shared::api::{
    ConversationKind, ConversationSummary, GroupInfo, GroupSummary, History, MemberInfo,
    UserSummary,
};
use shared::{ChatMessage, ClientFrame, Content, GroupId, MsgId, Target, UserId};
use std::rc::Rc;

pub(crate) const ME: UserId = UserId(1);

pub(crate) const BOB: UserId = UserId(2);

pub(crate) const CAROL: UserId = UserId(3);

pub(crate) const G: GroupId = GroupId(9);

pub(crate) const KB: ConvKey = ConvKey::User(BOB);

pub(crate) const KC: ConvKey = ConvKey::User(CAROL);

pub(crate) const KG: ConvKey = ConvKey::Group(G);

pub(crate) fn mid(n: u128) -> MsgId {
    MsgId::from_u128(n)
}

pub(crate) fn name_of(u: UserId) -> String {
    match u.0 {
        1 => "me",
        2 => "bob",
        3 => "carol",
        _ => "dave",
    }
    .into()
}

pub(crate) fn push(
    id: u128,
    from: UserId,
    to: UserId,
    ts: i64,
    seq: u64,
    cid: Option<&str>,
) -> ChatMessage {
    ChatMessage {
        msg_id: mid(id),
        from_id: from,
        from_name: name_of(from),
        to: Target::User(to),
        content: Content::text(format!("body {id}")),
        ts,
        seq,
        client_msg_id: cid.map(str::to_owned),
    }
}

pub(crate) fn gpush(id: u128, from: UserId, seq: u64) -> ChatMessage {
    ChatMessage {
        to: Target::Group(G),
        ..push(id, from, ME, seq as i64 * 10, seq, None)
    }
}

pub(crate) fn view(id: u128, from: UserId, seq: u64, to: Target) -> ChatMessage {
    ChatMessage {
        to,
        client_msg_id: None,
        ..push(id, from, ME, seq as i64 * 10, seq, None)
    }
}

/// A page of direct messages from bob with seqs `from..=to`.
pub(crate) fn page(from: u64, to: u64, has_more: bool) -> History {
    History {
        messages: (from..=to)
            .map(|s| view(1_000 + u128::from(s), BOB, s, Target::User(ME)))
            .collect(),
        has_more,
        read_by: vec![],
    }
}

pub(crate) fn chat() -> Chat {
    Chat::new(ME, "me")
}

pub(crate) fn msgs(c: &Chat, key: ConvKey) -> Vec<Message> {
    c.conversation(key)
        .map(|c| c.messages.clone())
        .unwrap_or_default()
}

pub(crate) fn seqs(c: &Chat, key: ConvKey) -> Vec<u64> {
    msgs(c, key).iter().map(|m| m.seq).collect()
}

pub(crate) fn conv(c: &Chat, key: ConvKey) -> Rc<Conversation> {
    c.conversation(key).unwrap().clone()
}

pub(crate) fn cid_of(f: &ClientFrame) -> Option<String> {
    match f {
        ClientFrame::Chat(c) => c.client_msg_id.clone(),
        _ => None,
    }
}

pub(crate) fn summary_direct(
    peer: UserId,
    last: u64,
    unread: u64,
    read: u64,
) -> ConversationSummary {
    ConversationSummary {
        kind: ConversationKind::Direct,
        peer: Some(UserSummary {
            user_id: peer,
            username: name_of(peer),
        }),
        group: None,
        last_message: (last > 0)
            .then(|| view(500 + u128::from(last), peer, last, Target::User(ME))),
        last_seq: last,
        unread,
        read_seq: read,
        peer_read_seq: Some(0),
        peer_delivered_seq: Some(0),
    }
}

pub(crate) fn group_summary(name: &str, members: u32) -> GroupSummary {
    GroupSummary {
        group_id: G,
        name: name.into(),
        owner_id: ME,
        public: false,
        member_count: members,
    }
}

/// Group "team" owned by us, with these members and read cursors, on one
/// page sorted by username as the relay sends it.
pub(crate) fn group_info(reads: &[(UserId, u64)]) -> GroupInfo {
    let mut members: Vec<MemberInfo> = reads
        .iter()
        .map(|&(u, r)| MemberInfo {
            user_id: u,
            username: name_of(u),
            owner: u == ME,
            read_seq: r,
            delivered_seq: 0,
            online: false,
        })
        .collect();
    members.sort_by(|a, b| a.username.cmp(&b.username));
    GroupInfo {
        summary: group_summary("team", reads.len() as u32),
        members,
        next: None,
    }
}
