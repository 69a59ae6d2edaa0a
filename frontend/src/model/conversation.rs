//! One conversation (a peer or a group): its messages in `seq` order, read
//! cursors and unread count, and how a pushed message lands in it.

use super::{Chat, ConvKey, GroupMeta, Message, MsgState, MAX_MESSAGES_PER_CONVERSATION};
use serde::{Deserialize, Serialize};
use shared::{ChatMessage, MsgId, Target, UserId};

/// What has been loaded from the history API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryState {
    /// The latest page was loaded (since this page load).
    pub loaded: bool,
    /// The lowest `seq` from which every message up to the newest is here.
    pub from_seq: Option<u64>,
    /// Whether the server has messages older than `from_seq`.
    pub has_more: bool,
    /// A request is in flight.
    pub loading: bool,
}

/// A conversation with a peer or a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// Which conversation.
    pub key: ConvKey,
    /// The peer's username, or the group's name (a placeholder until
    /// learned).
    pub name: String,
    /// Oldest first.
    pub messages: Vec<Message>,
    /// Messages from others above our read cursor.
    #[serde(default)]
    pub unread: u32,
    /// Time of the latest message (or of opening it), for the sidebar order.
    #[serde(default)]
    pub last_activity: i64,
    /// Our read cursor.
    #[serde(default)]
    pub read_seq: u64,
    /// The highest `seq` known in the conversation.
    #[serde(default)]
    pub last_seq: u64,
    /// One-to-one: the peer's read cursor.
    #[serde(default)]
    pub peer_read_seq: u64,
    /// One-to-one: the peer's delivery cursor.
    #[serde(default)]
    pub peer_delivered_seq: u64,
    /// Groups only (not cached).
    #[serde(skip)]
    pub group: Option<GroupMeta>,
    /// Paged history (not cached: reloaded per page load).
    #[serde(skip)]
    pub history: HistoryState,
}

/// What an upsert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Upsert {
    New,
    Merged,
    Duplicate,
}

impl Conversation {
    /// An empty conversation.
    pub fn new(key: ConvKey, name: impl Into<String>, now: i64) -> Self {
        Conversation {
            key,
            name: name.into(),
            messages: Vec::new(),
            unread: 0,
            last_activity: now,
            read_seq: 0,
            last_seq: 0,
            peer_read_seq: 0,
            peer_delivered_seq: 0,
            group: key.is_group().then(GroupMeta::default),
            history: HistoryState::default(),
        }
    }

    /// The newest message, for the sidebar preview.
    pub fn last_message(&self) -> Option<&Message> {
        self.messages.last()
    }

    /// The highest `seq` among the messages held.
    pub fn top_seq(&self) -> u64 {
        self.messages.iter().map(|m| m.seq).max().unwrap_or(0)
    }

    /// The `seq` to ask older history before (`None`: nothing older).
    pub fn older_cursor(&self) -> Option<u64> {
        let h = &self.history;
        if !h.loaded || !h.has_more {
            return None;
        }
        h.from_seq
    }

    /// Whether we can still post here.
    pub fn read_only(&self) -> bool {
        self.group.as_ref().is_some_and(|g| g.gone.is_some())
    }

    /// Whether `user` owns this group.
    pub fn is_owner(&self, user: UserId) -> bool {
        self.group
            .as_ref()
            .is_some_and(|g| g.owner_id == Some(user))
    }

    /// The state to show for a message: ours move on to delivered and read
    /// as the peer's cursors pass them (one-to-one), or to read once as
    /// many members as there are others have read it (group, see
    /// `read_by.rs`).
    pub fn display_state(&self, m: &Message) -> MsgState {
        if !m.mine || m.seq == 0 || matches!(m.state, MsgState::Sending | MsgState::Failed) {
            return m.state;
        }
        let derived = match &self.group {
            None if self.peer_read_seq >= m.seq => MsgState::Read,
            None if self.peer_delivered_seq >= m.seq => MsgState::Delivered,
            None => MsgState::Sent,
            Some(g) => {
                let others = g.member_count.saturating_sub(1);
                if others > 0 && m.read_by >= others {
                    MsgState::Read
                } else {
                    MsgState::Sent
                }
            }
        };
        if derived.rank() > m.state.rank() {
            derived
        } else {
            m.state
        }
    }

    pub(super) fn index_of_msg_id(&self, id: &MsgId) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.msg_id.as_ref() == Some(id))
    }

    pub(super) fn index_of_mine(&self, client_msg_id: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.mine && m.client_msg_id.as_deref() == Some(client_msg_id))
    }

    /// Inserts in order and trims the oldest beyond the in-memory cap.
    pub(super) fn insert(&mut self, m: Message) {
        let key = m.sort_key();
        let at = self.messages.partition_point(|x| x.sort_key() <= key);
        self.messages.insert(at, m);
        let excess = self
            .messages
            .len()
            .saturating_sub(MAX_MESSAGES_PER_CONVERSATION);
        if excess > 0 {
            self.messages.drain(..excess);
            self.history.from_seq = self.messages.first().map(|m| m.seq);
            self.history.has_more = true;
        }
    }

    /// Re-sorts one message whose key changed (81 gave it a real seq).
    pub(super) fn reposition(&mut self, i: usize) {
        let m = self.messages.remove(i);
        self.insert(m);
    }

    /// Adds a stored message unless it is already here (by `msgId`); our
    /// own is merged into its local copy (by `clientMsgId`). `page`: it
    /// comes from a history page (else: a push or a summary).
    pub(super) fn upsert(&mut self, m: Message, page: bool) -> Upsert {
        if let Some(id) = &m.msg_id {
            if self.index_of_msg_id(id).is_some() {
                return Upsert::Duplicate;
            }
        }
        if m.mine {
            if let Some(i) = m
                .client_msg_id
                .as_deref()
                .and_then(|c| self.index_of_mine(c))
            {
                let x = &mut self.messages[i];
                x.msg_id = m.msg_id;
                x.ts = m.ts;
                x.seq = m.seq;
                x.error = None;
                if x.state.rank() < MsgState::Sent.rank() {
                    x.state = MsgState::Sent;
                }
                self.reposition(i);
                return Upsert::Merged;
            }
        }
        // Older than the loaded run while more is on the server: it comes
        // back with its page; inserting it now would leave a gap on screen.
        let h = &self.history;
        if !page && h.loaded && h.has_more && m.seq > 0 && h.from_seq.is_some_and(|f| m.seq < f) {
            return Upsert::Duplicate;
        }
        self.insert(m);
        Upsert::New
    }

    /// Recomputes `unread` after our read cursor moved: exact when the
    /// messages after the cursor are all here, else an upper bound.
    pub(super) fn recount_unread(&mut self) {
        if self.read_seq >= self.last_seq {
            self.unread = 0;
            return;
        }
        let covered = self
            .history
            .from_seq
            .is_some_and(|f| f <= self.read_seq + 1);
        let here = self
            .messages
            .iter()
            .filter(|m| !m.mine && m.seq > self.read_seq)
            .count() as u32;
        self.unread = if covered {
            here
        } else {
            self.unread
                .min(u32::try_from(self.last_seq - self.read_seq).unwrap_or(u32::MAX))
                .max(here)
        };
    }

    /// Messages after our read cursor from others, as held.
    pub(super) fn unread_held(&self) -> bool {
        self.messages
            .iter()
            .any(|m| !m.mine && m.seq > self.read_seq)
    }
}

/// What happened to a pushed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// New: now shown.
    Shown,
    /// An echo of a message we have locally: merged into it (gets its
    /// `msgId`, `ts` and `seq`), not shown twice.
    Merged,
    /// Already shown (a re-push): nothing changes.
    Duplicate,
    /// Not for us (or not signed in).
    Ignored,
}

impl Chat {
    /// A pushed CHAT (already acked by the connection). Deduped by `msgId`;
    /// our own echoes (from another tab) are merged by `clientMsgId`.
    pub fn on_push(&mut self, p: &ChatMessage) -> PushOutcome {
        let Some(me) = self.me else {
            return PushOutcome::Ignored;
        };
        let mine = p.from_id == me;
        let key = match p.to {
            Target::User(to) if mine => ConvKey::User(to),
            Target::User(to) if to == me => ConvKey::User(p.from_id),
            Target::User(_) => return PushOutcome::Ignored,
            Target::Group(g) => ConvKey::Group(g),
        };
        if key == ConvKey::User(me) {
            return PushOutcome::Ignored;
        }
        let name = match key {
            ConvKey::User(_) if !mine => p.from_name.clone(),
            ConvKey::User(u) => format!("user {u}"),
            ConvKey::Group(g) => format!("group {g}"),
        };
        let on_screen = self.on_screen(key);
        let c = self.conv_mut(key, &name, p.ts);
        if !mine && !key.is_group() && !p.from_name.is_empty() && c.name != p.from_name {
            c.name.clone_from(&p.from_name);
        }
        let counted = p.seq <= c.last_seq;
        let outcome = c.upsert(Message::from_chat(p, me), false);
        if outcome == Upsert::Duplicate {
            return PushOutcome::Duplicate;
        }
        c.last_seq = c.last_seq.max(p.seq);
        c.last_activity = c.last_activity.max(p.ts);
        if outcome == Upsert::Merged {
            return PushOutcome::Merged;
        }
        if !mine && !counted && p.seq > c.read_seq && !on_screen {
            c.unread += 1;
        }
        self.typing
            .retain(|t| !(t.key == key && t.user == p.from_id));
        PushOutcome::Shown
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use shared::Content;

    #[test]
    fn repushed_messages_are_shown_once() {
        let mut c = chat();
        let p = push(10, BOB, ME, 1_000, 1, Some("b-1"));
        assert_eq!(c.on_push(&p), PushOutcome::Shown);
        assert_eq!(c.on_push(&p), PushOutcome::Duplicate);
        assert_eq!(c.on_push(&p), PushOutcome::Duplicate);
        let m = msgs(&c, KB);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].state, MsgState::Received);
        assert!(!m[0].mine);
        assert_eq!(conv(&c, KB).unread, 1);
        assert_eq!(conv(&c, KB).name, "bob");
    }

    #[test]
    fn echo_of_our_own_message_merges_by_client_msg_id() {
        let mut c = chat();
        c.queue_outgoing(KB, "bob", "w-1".into(), "hi bob".into(), 500)
            .unwrap();
        let mut echo = push(11, ME, BOB, 1_000, 1, Some("w-1"));
        echo.content = Content::text("hi bob");
        assert_eq!(c.on_push(&echo), PushOutcome::Merged);
        let m = msgs(&c, KB);
        assert_eq!(m.len(), 1, "echo must not duplicate the local copy");
        assert!(m[0].mine);
        assert_eq!(m[0].msg_id, Some(mid(11)));
        assert_eq!(m[0].state, MsgState::Sent);
        assert_eq!((m[0].ts, m[0].seq), (1_000, 1));
        // And the 81 that arrives afterwards changes nothing visible.
        assert!(c.on_chat_resp(mid(11), Some("w-1"), 1_000, 1));
        assert_eq!(msgs(&c, KB).len(), 1);
        assert_eq!(conv(&c, KB).unread, 0);
    }

    #[test]
    fn echo_without_local_copy_is_shown_as_ours_in_the_peers_conversation() {
        let mut c = chat();
        let echo = push(12, ME, BOB, 1_000, 1, Some("other-tab-1"));
        assert_eq!(c.on_push(&echo), PushOutcome::Shown);
        let m = msgs(&c, KB);
        assert_eq!(m.len(), 1);
        assert!(m[0].mine);
        assert_eq!(m[0].state, MsgState::Sent);
        assert_eq!(conv(&c, KB).unread, 0);
        assert!(c.conversation(ConvKey::User(ME)).is_none());
        assert_eq!(c.on_push(&echo), PushOutcome::Duplicate);
        assert_eq!(msgs(&c, KB).len(), 1);
        // A push between two other users is not ours to show.
        assert_eq!(
            c.on_push(&push(13, BOB, CAROL, 1, 1, None)),
            PushOutcome::Ignored
        );
    }

    #[test]
    fn messages_are_ordered_by_seq_with_pending_last() {
        let mut c = chat();
        c.queue_outgoing(KB, "bob", "w-7".into(), "pending".into(), 0)
            .unwrap();
        c.on_push(&push(72, BOB, ME, 200, 2, None));
        c.on_push(&push(71, BOB, ME, 100, 1, None));
        c.on_push(&push(73, BOB, ME, 200, 3, None));
        let order: Vec<_> = msgs(&c, KB).iter().map(|m| m.msg_id).collect();
        assert_eq!(order, [Some(mid(71)), Some(mid(72)), Some(mid(73)), None]);
        c.on_chat_resp(mid(74), Some("w-7"), 150, 4);
        assert_eq!(seqs(&c, KB), [1, 2, 3, 4]);
    }

    #[test]
    fn group_pushes_count_unread_and_show_senders() {
        let mut c = chat();
        assert_eq!(c.on_push(&gpush(1, BOB, 1)), PushOutcome::Shown);
        assert_eq!(c.on_push(&gpush(2, CAROL, 2)), PushOutcome::Shown);
        assert_eq!(c.on_push(&gpush(2, CAROL, 2)), PushOutcome::Duplicate);
        let k = conv(&c, KG);
        assert_eq!(k.unread, 2);
        assert_eq!(k.name, "group 9", "placeholder until the name is known");
        let senders: Vec<_> = k.messages.iter().map(|m| m.from_name.as_str()).collect();
        assert_eq!(senders, ["bob", "carol"]);
        // Our own reading of the group, in another tab.
        assert!(c.on_read_receipt(ME, Target::Group(G), Some(0), 1));
        assert_eq!(conv(&c, KG).unread, 1);
    }
}
