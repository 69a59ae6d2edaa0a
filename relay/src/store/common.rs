//! Small pieces both backends share, so each expresses the same answer the
//! same way: how a viewer names a message's recipient, a LIKE pattern for
//! prefix searches, how a page of members ends, and how the conversation
//! list is put together from what a backend read.

use super::MemberRows;
use shared::api::{
    ConversationKind, ConversationSummary, Conversations, GroupSummary, MemberInfo, UserSummary,
};
use shared::{ChatMessage, GroupId, Target, UserId};

/// Who a stored message is "to" as `viewer` sees it: the group, or in a
/// pair whoever did not send it (`peer` is the other member of the pair).
pub fn addressed(
    viewer: UserId,
    from: UserId,
    peer: Option<UserId>,
    group: Option<GroupId>,
) -> Target {
    match (group, peer) {
        (Some(g), _) => Target::Group(g),
        (None, Some(p)) if from == viewer => Target::User(p),
        (None, _) => Target::User(viewer),
    }
}

/// A LIKE pattern matching names that start with `prefix` (wildcards
/// escaped with `\`, the escape character both backends are given).
pub fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for ch in prefix.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// A page of at most `limit` members from up to `limit + 1` rows in
/// username order: the extra row only says that more follow, after the
/// page's last username.
pub fn member_page(mut members: Vec<MemberInfo>, limit: u32) -> MemberRows {
    let next = (members.len() > limit as usize).then(|| {
        members.truncate(limit as usize);
        members
            .last()
            .map(|m| m.username.clone())
            .unwrap_or_default()
    });
    MemberRows { members, next }
}

/// One of a user's conversations, as a backend read it.
pub struct Listed {
    /// When the conversation was created (ms).
    pub created_at: i64,
    /// The user's read cursor.
    pub read_seq: u64,
    /// The other user of a pair: id, username, read and delivery cursors.
    pub peer: Option<(UserId, String, u64, u64)>,
    /// The group, for a group.
    pub group: Option<GroupSummary>,
    /// The newest message the user may read (after they joined).
    pub last: Option<ChatMessage>,
    /// Messages from others above the read cursor.
    pub unread: u64,
}

/// The conversation list, newest activity first; a conversation without
/// messages yet (a group just created) ranks by when it was created, not
/// below every other.
pub fn conversation_list(items: Vec<Listed>) -> Conversations {
    let mut out: Vec<(i64, ConversationSummary)> = items
        .into_iter()
        .map(|c| {
            let activity = c.last.as_ref().map_or(c.created_at, |m| m.ts);
            let summary = ConversationSummary {
                kind: if c.group.is_some() {
                    ConversationKind::Group
                } else {
                    ConversationKind::Direct
                },
                peer: c.peer.as_ref().map(|p| UserSummary {
                    user_id: p.0,
                    username: p.1.clone(),
                }),
                group: c.group,
                last_seq: c.last.as_ref().map_or(0, |m| m.seq),
                last_message: c.last,
                unread: c.unread,
                read_seq: c.read_seq,
                peer_read_seq: c.peer.as_ref().map(|p| p.2),
                peer_delivered_seq: c.peer.as_ref().map(|p| p.3),
            };
            (activity, summary)
        })
        .collect();
    out.sort_by_key(|(activity, _)| std::cmp::Reverse(*activity));
    Conversations {
        conversations: out.into_iter().map(|(_, s)| s).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_escape_wildcards() {
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
        assert_eq!(like_prefix(""), "%");
    }

    #[test]
    fn a_pair_message_is_to_whoever_did_not_send_it() {
        let (me, peer) = (UserId(1), UserId(2));
        assert_eq!(addressed(me, me, Some(peer), None), Target::User(peer));
        assert_eq!(addressed(me, peer, Some(peer), None), Target::User(me));
        let g = GroupId(9);
        assert_eq!(addressed(me, me, None, Some(g)), Target::Group(g));
    }
}
