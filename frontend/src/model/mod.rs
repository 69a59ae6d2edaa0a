//! The chat domain: conversations (one-to-one and groups), messages and the
//! rules that move a message through its states, read cursors, unread
//! counts, history pages and typing notices. Pure Rust (no browser APIs), so
//! `cargo test` covers it.
//!
//! Within a conversation messages are ordered by the relay's `seq` (ours
//! that are not numbered yet come last, in the order they were written) and
//! keyed by `msgId` (by `clientMsgId` before the relay assigned one), so
//! history pages, live pushes and our own echoes all go through one upsert
//! path and nothing is shown twice.
//!
//! One concern per file:
//! - `message.rs`: a message, its states, the one mapping from the wire;
//! - `conversation.rs`: a conversation's messages, cursors, and pushes;
//! - `conv_map.rs`: the conversations by key;
//! - `sending.rs`: our outgoing messages up to delivered, failed, retried;
//! - `receipts.rs`: read cursors, ours and the others';
//! - `read_by.rs`: "read by N" on our group messages, counted;
//! - `history.rs`: the conversation list and history pages;
//! - `group.rs`: group details and group events;
//! - `members.rs`: a group's member list, a page at a time;
//! - `typing.rs`: typing notices;
//! - `cache.rs`: the localStorage cache.

mod cache;
mod conv_map;
mod conversation;
mod group;
mod history;
mod members;
mod message;
mod read_by;
mod receipts;
mod sending;
mod typing;

#[cfg(test)]
mod fixtures;

pub use cache::{ChatCache, CACHED_MESSAGES_PER_CONVERSATION};
pub use conv_map::ConvMap;
pub use conversation::{Conversation, HistoryState, PushOutcome};
pub use group::GroupMeta;
pub use history::HISTORY_PAGE;
pub use members::{Member, Members};
pub use message::{Message, MsgState};
pub use read_by::shown_read_by;
pub use sending::SEND_TIMEOUT_MS;
pub use typing::{Typing, TYPING_SHOW_MS};

use serde::{Deserialize, Serialize};
use shared::{GroupId, MsgId, Target, UserId};
use std::rc::Rc;

/// Upper bound of messages kept in memory per conversation (older ones are
/// dropped and can be loaded again from the server).
pub const MAX_MESSAGES_PER_CONVERSATION: usize = 2_000;

/// A conversation: with one user, or a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvKey {
    /// One-to-one, with this peer.
    User(UserId),
    /// A group.
    Group(GroupId),
}

impl ConvKey {
    /// The frame target for this conversation.
    pub fn target(self) -> Target {
        match self {
            ConvKey::User(u) => Target::User(u),
            ConvKey::Group(g) => Target::Group(g),
        }
    }

    /// Whether it is a group.
    pub fn is_group(self) -> bool {
        matches!(self, ConvKey::Group(_))
    }

    /// A string unique among conversations (list keys).
    pub fn id_string(self) -> String {
        match self {
            ConvKey::User(u) => format!("u{u}"),
            ConvKey::Group(g) => format!("g{g}"),
        }
    }
}

/// Everything the signed-in user sees of their chats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chat {
    /// The signed-in user.
    pub me: Option<UserId>,
    /// Their username.
    pub my_name: String,
    /// One per peer or group.
    pub conversations: ConvMap,
    /// The conversation on screen.
    pub active: Option<ConvKey>,
    /// Whether the page is visible (`document.visibilityState`): messages
    /// in the open conversation count as read only then.
    pub visible: bool,
    /// Who is typing where.
    pub typing: Vec<Typing>,
    /// 92s that arrived before the 81 of their message.
    early_receipts: Vec<MsgId>,
}

impl Chat {
    /// An empty chat for a user.
    pub fn new(me: UserId, my_name: impl Into<String>) -> Self {
        Chat {
            me: Some(me),
            my_name: my_name.into(),
            visible: true,
            ..Chat::default()
        }
    }

    /// A conversation by key.
    pub fn conversation(&self, key: ConvKey) -> Option<&Rc<Conversation>> {
        self.conversations.get(&key)
    }

    /// The open conversation.
    pub fn active_conversation(&self) -> Option<&Rc<Conversation>> {
        self.active.and_then(|k| self.conversations.get(&k))
    }

    /// Conversations, most recently active first, then by name.
    ///
    /// A binary insertion sort: there are few conversations, and the
    /// standard library's sort would bring its own ~5 kB copy into the wasm
    /// for this one call.
    pub fn sorted_conversations(&self) -> Vec<Rc<Conversation>> {
        // Whether `x` goes before (or ties with) `c`.
        let first = |x: &Conversation, c: &Conversation| {
            x.last_activity > c.last_activity
                || (x.last_activity == c.last_activity && x.name <= c.name)
        };
        let mut v: Vec<Rc<Conversation>> = Vec::with_capacity(self.conversations.len());
        for c in self.conversations.values() {
            let at = v.partition_point(|x| first(x, c));
            v.insert(at, c.clone());
        }
        v
    }

    /// Total unread across conversations.
    pub fn total_unread(&self) -> u32 {
        self.conversations.values().map(|c| c.unread).sum()
    }

    /// Whether a conversation is on screen now.
    fn on_screen(&self, key: ConvKey) -> bool {
        self.visible && self.active == Some(key)
    }

    fn conv_mut(&mut self, key: ConvKey, name: &str, now: i64) -> &mut Conversation {
        let rc = self
            .conversations
            .get_or_insert_with(key, || Conversation::new(key, name, now));
        Rc::make_mut(rc)
    }

    fn existing_mut(&mut self, key: ConvKey) -> Option<&mut Conversation> {
        self.conversations.get_mut(&key).map(Rc::make_mut)
    }

    /// Finds a message of ours by `clientMsgId` in any conversation.
    fn find_mine(&self, client_msg_id: &str) -> Option<(ConvKey, usize)> {
        self.conversations
            .values()
            .find_map(|c| c.index_of_mine(client_msg_id).map(|i| (c.key, i)))
    }

    fn find_msg(&self, id: &MsgId) -> Option<(ConvKey, usize)> {
        self.conversations
            .values()
            .find_map(|c| c.index_of_msg_id(id).map(|i| (c.key, i)))
    }

    /// Opens (creating if needed) a conversation. It is marked read by
    /// [`Chat::mark_read`] once its messages are on screen.
    pub fn open(&mut self, key: ConvKey, name: &str, now: i64) {
        if Some(key) == self.me.map(ConvKey::User) {
            return;
        }
        let c = self.conv_mut(key, name, now);
        if !name.is_empty() && (c.name != name) {
            c.name = name.to_string();
        }
        self.active = Some(key);
    }

    /// Learns usernames (from PRESENCE frames) for one-to-one
    /// conversations: a placeholder becomes the name, a renamed user's
    /// conversation follows. Returns whether a name changed.
    pub fn learn_names<'a>(&mut self, users: impl IntoIterator<Item = (UserId, &'a str)>) -> bool {
        let mut changed = false;
        for (user, name) in users {
            if let Some(rc) = self.conversations.get_mut(&ConvKey::User(user)) {
                if rc.name != name {
                    Rc::make_mut(rc).name = name.to_owned();
                    changed = true;
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn conversations_are_listed_newest_activity_first_then_by_name() {
        let mut c = chat();
        c.open(KC, "carol", 5);
        c.open(KB, "bob", 5);
        c.open(KG, "team", 9);
        c.open(ConvKey::User(UserId(4)), "dave", 1);
        let order: Vec<_> = c
            .sorted_conversations()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(order, ["team", "bob", "carol", "dave"]);
    }
}
