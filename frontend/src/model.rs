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

use serde::{Deserialize, Serialize};
use shared::api::{ConversationSummary, GroupInfo, GroupSummary, History};
use shared::{
    ChatMessage, ChatSend, ClientFrame, Content, ErrorFrame, GroupEvent, GroupEventKind, GroupId,
    MsgId, Target, UserId,
};
use std::collections::BTreeMap;
use std::rc::Rc;

/// Upper bound of messages kept in memory per conversation (older ones are
/// dropped and can be loaded again from the server).
pub const MAX_MESSAGES_PER_CONVERSATION: usize = 2_000;

/// Messages per conversation kept in the localStorage cache.
pub const CACHED_MESSAGES_PER_CONVERSATION: usize = 100;

/// History page size (`limit`).
pub const HISTORY_PAGE: u32 = 50;

/// A message of ours with no CHAT_RESP (81) this long after it went out is
/// marked failed, so the user can retry it.
pub const SEND_TIMEOUT_MS: i64 = 10_000;

/// How long "… is typing" shows after the last notice.
pub const TYPING_SHOW_MS: i64 = 5_000;

/// How many early delivery receipts (92 before our 81) are remembered.
const MAX_EARLY_RECEIPTS: usize = 64;

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

/// Where a message is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MsgState {
    /// Ours, not yet confirmed by the relay (no 81).
    Sending,
    /// Ours, durably stored by the relay (81).
    Sent,
    /// Ours, acked by the recipient (92).
    Delivered,
    /// Ours, read by the peer (one-to-one) or by every other member
    /// (group). Derived from read cursors, see
    /// [`Conversation::display_state`].
    Read,
    /// Ours, refused (type 0) or unconfirmed after [`SEND_TIMEOUT_MS`].
    Failed,
    /// Theirs.
    Received,
}

impl MsgState {
    /// The `data-state` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgState::Sending => "sending",
            MsgState::Sent => "sent",
            MsgState::Delivered => "delivered",
            MsgState::Read => "read",
            MsgState::Failed => "failed",
            MsgState::Received => "received",
        }
    }

    /// How far along a message of ours is; states never move backwards
    /// (a late 81 must not undo a 92).
    fn rank(self) -> u8 {
        match self {
            MsgState::Failed | MsgState::Sending => 0,
            MsgState::Sent => 1,
            MsgState::Delivered => 2,
            MsgState::Read => 3,
            MsgState::Received => 4,
        }
    }
}

/// One chat message, ours or theirs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The relay's id, once known (always known for theirs).
    #[serde(default)]
    pub msg_id: Option<MsgId>,
    /// The sender's idempotency key.
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// Who wrote it.
    pub from_id: UserId,
    /// Their username.
    pub from_name: String,
    /// The text, shown verbatim (never as HTML).
    pub body: String,
    /// Relay time once stored; local time while sending.
    pub ts: i64,
    /// Position in the conversation; 0 until the relay assigns one.
    #[serde(default)]
    pub seq: u64,
    /// Whether we wrote it (possibly in another tab).
    pub mine: bool,
    /// Its state (as far as our own frames tell; read receipts are applied
    /// on display).
    pub state: MsgState,
    /// Local time it was last put on the wire (for the send timeout). Not
    /// cached: after a reload it is set again when the message is resent.
    #[serde(skip)]
    pub last_sent_at: i64,
    /// Why it failed, for the tooltip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Message {
    /// Ordering key: stored messages by `seq`, then ours that the relay
    /// has not numbered yet, in the order they were written.
    fn sort_key(&self) -> (bool, u64, i64) {
        (self.seq == 0, self.seq, self.ts)
    }

    /// The CHAT frame that (re)sends this message, same `clientMsgId`.
    pub fn send_frame(&self, to: Target) -> ClientFrame {
        ClientFrame::Chat(ChatSend {
            from_id: None,
            to,
            client_msg_id: self.client_msg_id.clone(),
            content: Content::text(self.body.clone()),
        })
    }

    /// A stable key for rendering lists.
    pub fn key(&self) -> String {
        match (&self.client_msg_id, &self.msg_id) {
            (Some(c), _) if self.mine => format!("c:{c}"),
            (_, Some(m)) => format!("m:{m}"),
            (Some(c), None) => format!("c:{c}"),
            (None, None) => format!("t:{}:{}", self.ts, self.seq),
        }
    }

    /// A message as the relay sends it: pushed (type 80), in a history
    /// page or as a conversation's last message. The one mapping from the
    /// wire shape: ours (`from_id == me`, possibly from another tab) start
    /// as sent, theirs as received.
    pub fn from_chat(m: &ChatMessage, me: UserId) -> Message {
        let mine = m.from_id == me;
        Message {
            msg_id: Some(m.msg_id),
            client_msg_id: m.client_msg_id.clone(),
            from_id: m.from_id,
            from_name: m.from_name.clone(),
            body: m.content.body.clone(),
            ts: m.ts,
            seq: m.seq,
            mine,
            state: if mine {
                MsgState::Sent
            } else {
                MsgState::Received
            },
            last_sent_at: 0,
            error: None,
        }
    }
}

/// A group member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Their username.
    pub username: String,
    /// Whether they own the group.
    pub owner: bool,
}

/// What we know about a group beyond its messages (not cached: reloaded
/// from the server).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupMeta {
    /// The owner.
    pub owner_id: Option<UserId>,
    /// Whether anyone may join.
    pub public: bool,
    /// Member count (from the last summary or event).
    pub member_count: u32,
    /// Members, owner first, then by username; empty until loaded with
    /// `GET /api/groups/{id}`.
    pub members: Vec<Member>,
    /// Members' read cursors (from `GET /api/groups/{id}` and 71 frames).
    pub reads: Vec<(UserId, u64)>,
    /// Set when we are no longer a member: the conversation is read-only
    /// and this says why.
    pub gone: Option<String>,
}

impl GroupMeta {
    /// A member's read cursor.
    pub fn read_seq(&self, user: UserId) -> u64 {
        self.reads
            .iter()
            .find(|(u, _)| *u == user)
            .map_or(0, |(_, s)| *s)
    }

    /// Moves a member's read cursor forward; whether it moved.
    fn set_read(&mut self, user: UserId, seq: u64) -> bool {
        match self.reads.iter_mut().find(|(u, _)| *u == user) {
            Some((_, s)) if *s >= seq => false,
            Some((_, s)) => {
                *s = seq;
                true
            }
            None => {
                self.reads.push((user, seq));
                true
            }
        }
    }
}

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
enum Upsert {
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

    /// Group: how many members other than `me` have read up to `seq`.
    pub fn read_by(&self, seq: u64, me: UserId) -> Option<u32> {
        let g = self.group.as_ref()?;
        let reads = |u: &UserId| g.read_seq(*u) >= seq;
        Some(if g.members.is_empty() {
            g.reads
                .iter()
                .filter(|(u, s)| *u != me && *s >= seq)
                .count() as u32
        } else {
            g.members
                .iter()
                .filter(|m| m.user_id != me && reads(&m.user_id))
                .count() as u32
        })
    }

    /// The state to show for a message: ours move on to delivered and read
    /// as the peer's cursors (one-to-one) or every other member's read
    /// cursor (group) pass them.
    pub fn display_state(&self, m: &Message, me: UserId) -> MsgState {
        if !m.mine || m.seq == 0 || matches!(m.state, MsgState::Sending | MsgState::Failed) {
            return m.state;
        }
        let derived = match &self.group {
            None if self.peer_read_seq >= m.seq => MsgState::Read,
            None if self.peer_delivered_seq >= m.seq => MsgState::Delivered,
            None => MsgState::Sent,
            Some(g) => {
                let others = g.members.iter().filter(|x| x.user_id != me).count() as u32;
                let by = self.read_by(m.seq, me).unwrap_or(0);
                if others > 0 && by >= others {
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

    fn index_of_msg_id(&self, id: &MsgId) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.msg_id.as_ref() == Some(id))
    }

    fn index_of_mine(&self, client_msg_id: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.mine && m.client_msg_id.as_deref() == Some(client_msg_id))
    }

    /// Inserts in order and trims the oldest beyond the in-memory cap.
    fn insert(&mut self, m: Message) {
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
    fn reposition(&mut self, i: usize) {
        let m = self.messages.remove(i);
        self.insert(m);
    }

    /// Adds a stored message unless it is already here (by `msgId`); our
    /// own is merged into its local copy (by `clientMsgId`). `page`: it
    /// comes from a history page (else: a push or a summary).
    fn upsert(&mut self, m: Message, page: bool) -> Upsert {
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
    fn recount_unread(&mut self) {
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
    fn unread_held(&self) -> bool {
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

/// Someone typing somewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Typing {
    /// Where.
    pub key: ConvKey,
    /// Who.
    pub user: UserId,
    /// Their username.
    pub name: String,
    /// Shown until this local time.
    pub until: i64,
}

/// Everything the signed-in user sees of their chats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chat {
    /// The signed-in user.
    pub me: Option<UserId>,
    /// Their username.
    pub my_name: String,
    /// One per peer or group.
    pub conversations: BTreeMap<ConvKey, Rc<Conversation>>,
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

    /// Conversations, most recently active first.
    pub fn sorted_conversations(&self) -> Vec<Rc<Conversation>> {
        let mut v: Vec<_> = self.conversations.values().cloned().collect();
        v.sort_by(|a, b| {
            b.last_activity
                .cmp(&a.last_activity)
                .then_with(|| a.name.cmp(&b.name))
        });
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
            .entry(key)
            .or_insert_with(|| Rc::new(Conversation::new(key, name, now)));
        Rc::make_mut(rc)
    }

    fn existing_mut(&mut self, key: ConvKey) -> Option<&mut Conversation> {
        self.conversations.get_mut(&key).map(Rc::make_mut)
    }

    /// Finds a message of ours by `clientMsgId` in any conversation.
    fn find_mine(&self, client_msg_id: &str) -> Option<(ConvKey, usize)> {
        self.conversations
            .iter()
            .find_map(|(k, c)| c.index_of_mine(client_msg_id).map(|i| (*k, i)))
    }

    fn find_msg(&self, id: &MsgId) -> Option<(ConvKey, usize)> {
        self.conversations
            .iter()
            .find_map(|(k, c)| c.index_of_msg_id(id).map(|i| (*k, i)))
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

    /// Learns usernames for conversations that only had a placeholder.
    pub fn learn_names(&mut self, users: &[shared::api::UserSummary]) {
        for u in users {
            if let Some(rc) = self.conversations.get_mut(&ConvKey::User(u.user_id)) {
                if rc.name != u.username {
                    Rc::make_mut(rc).name.clone_from(&u.username);
                }
            }
        }
    }

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

    /// Queues a new message of ours (state sending) and returns its frame.
    pub fn queue_outgoing(
        &mut self,
        key: ConvKey,
        name: &str,
        client_msg_id: String,
        body: String,
        now: i64,
    ) -> Option<ClientFrame> {
        let me = self.me?;
        let my_name = self.my_name.clone();
        let c = self.conv_mut(key, name, now);
        if c.read_only() {
            return None;
        }
        let m = Message {
            msg_id: None,
            client_msg_id: Some(client_msg_id),
            from_id: me,
            from_name: my_name,
            body,
            ts: now,
            seq: 0,
            mine: true,
            state: MsgState::Sending,
            last_sent_at: now,
            error: None,
        };
        let frame = m.send_frame(key.target());
        c.insert(m);
        c.last_activity = c.last_activity.max(now);
        Some(frame)
    }

    /// CHAT_RESP (81): our message is stored. Returns whether it matched.
    pub fn on_chat_resp(
        &mut self,
        msg_id: MsgId,
        client_msg_id: Option<&str>,
        ts: i64,
        seq: u64,
    ) -> bool {
        let found = client_msg_id
            .and_then(|cid| self.find_mine(cid))
            .or_else(|| self.find_msg(&msg_id));
        let Some((key, i)) = found else {
            return false;
        };
        let early = self.early_receipts.contains(&msg_id);
        self.early_receipts.retain(|x| *x != msg_id);
        let c = self.existing_mut(key).expect("found");
        let m = &mut c.messages[i];
        m.msg_id = Some(msg_id);
        m.ts = ts;
        m.seq = seq;
        m.error = None;
        let target = if early {
            MsgState::Delivered
        } else {
            MsgState::Sent
        };
        if m.state.rank() < target.rank() {
            m.state = target;
        }
        c.last_seq = c.last_seq.max(seq);
        c.last_activity = c.last_activity.max(ts);
        c.reposition(i);
        true
    }

    /// DELIVERED (92), matched by `msgId`. A receipt for a message we do not
    /// know yet is kept until its 81 arrives.
    pub fn on_delivered(&mut self, msg_id: MsgId) -> bool {
        match self.find_msg(&msg_id) {
            Some((key, i)) => {
                let c = self.existing_mut(key).expect("found");
                let m = &mut c.messages[i];
                if m.mine && m.state.rank() < MsgState::Delivered.rank() {
                    m.state = MsgState::Delivered;
                    m.error = None;
                }
                true
            }
            None => {
                if !self.early_receipts.contains(&msg_id) {
                    if self.early_receipts.len() >= MAX_EARLY_RECEIPTS {
                        self.early_receipts.remove(0);
                    }
                    self.early_receipts.push(msg_id);
                }
                false
            }
        }
    }

    /// READ_RECEIPT (71). From us (another tab, or the echo of our own
    /// READ): our cursor, hence the unread count. From the peer or a
    /// member: their cursor, hence our messages' read state.
    pub fn on_read_receipt(&mut self, by: UserId, to: Target, seq: u64) -> bool {
        let Some(me) = self.me else { return false };
        if by == me {
            return self.mark_read(
                match to {
                    Target::User(u) => ConvKey::User(u),
                    Target::Group(g) => ConvKey::Group(g),
                },
                seq,
            );
        }
        match to {
            Target::User(_) => match self.existing_mut(ConvKey::User(by)) {
                Some(c) if c.peer_read_seq < seq => {
                    c.peer_read_seq = seq;
                    c.peer_delivered_seq = c.peer_delivered_seq.max(seq);
                    true
                }
                _ => false,
            },
            Target::Group(g) => {
                let Some(meta) = self
                    .existing_mut(ConvKey::Group(g))
                    .and_then(|c| c.group.as_mut())
                else {
                    return false;
                };
                meta.set_read(by, seq)
            }
        }
    }

    /// Our read cursor moved (we sent READ, or another tab did). Returns
    /// whether anything changed.
    pub fn mark_read(&mut self, key: ConvKey, seq: u64) -> bool {
        let Some(c) = self.conversations.get(&key) else {
            return false;
        };
        if seq <= c.read_seq {
            return false;
        }
        let c = self.existing_mut(key).expect("exists");
        c.read_seq = seq;
        c.last_seq = c.last_seq.max(seq);
        c.recount_unread();
        true
    }

    /// The READ to send now, if any: the open conversation, while the page
    /// is visible, up to the newest message held, when that is past our
    /// cursor and something from others is unread.
    pub fn read_candidate(&self) -> Option<(ConvKey, u64)> {
        if !self.visible {
            return None;
        }
        let c = self.active_conversation()?;
        if c.read_only() {
            return None;
        }
        let top = c.top_seq();
        (top > c.read_seq && (c.unread > 0 || c.unread_held())).then_some((c.key, top))
    }

    /// A type 0 error: when it names one of our sending messages by
    /// `clientMsgId`, that message fails. Returns whether it matched.
    pub fn on_error(&mut self, e: &ErrorFrame) -> bool {
        let Some((key, i)) = e.client_msg_id.as_deref().and_then(|c| self.find_mine(c)) else {
            return false;
        };
        let c = self.existing_mut(key).expect("found");
        let m = &mut c.messages[i];
        if m.state != MsgState::Sending {
            return false;
        }
        m.state = MsgState::Failed;
        m.error = Some(if e.message.is_empty() {
            e.code.to_string()
        } else {
            e.message.clone()
        });
        true
    }

    /// Marks messages failed that have waited too long for their 81.
    /// Returns whether anything changed.
    pub fn expire(&mut self, now: i64) -> bool {
        let mut changed = false;
        for rc in self.conversations.values_mut() {
            let overdue = |m: &Message| {
                m.state == MsgState::Sending && now - m.last_sent_at >= SEND_TIMEOUT_MS
            };
            if rc.messages.iter().any(overdue) {
                let c = Rc::make_mut(rc);
                for m in c.messages.iter_mut().filter(|m| overdue(m)) {
                    m.state = MsgState::Failed;
                    m.error = Some("no answer from the relay".into());
                    changed = true;
                }
            }
        }
        changed
    }

    /// The user pressed retry: the failed message goes back to sending and
    /// its frame (same `clientMsgId`, so never a duplicate) is returned.
    pub fn retry(&mut self, client_msg_id: &str, now: i64) -> Option<ClientFrame> {
        let (key, i) = self.find_mine(client_msg_id)?;
        let c = self.existing_mut(key).expect("found");
        if c.read_only() {
            return None;
        }
        let m = &mut c.messages[i];
        if m.state != MsgState::Failed {
            return None;
        }
        m.state = MsgState::Sending;
        m.error = None;
        m.last_sent_at = now;
        Some(m.send_frame(key.target()))
    }

    /// The frame of one of our messages that is sending (after a retry).
    pub fn sending_frame(&self, client_msg_id: &str) -> Option<ClientFrame> {
        let (key, i) = self.find_mine(client_msg_id)?;
        let m = &self.conversations[&key].messages[i];
        (m.state == MsgState::Sending).then(|| m.send_frame(key.target()))
    }

    /// The frames of every message still sending, oldest first: resent after
    /// a (re)connect with their original `clientMsgId`.
    pub fn pending_frames(&self) -> Vec<ClientFrame> {
        let mut v: Vec<(i64, ClientFrame)> = Vec::new();
        for c in self.conversations.values().filter(|c| !c.read_only()) {
            for m in c.messages.iter() {
                if m.mine && m.state == MsgState::Sending {
                    let at = v.partition_point(|(ts, _)| *ts <= m.ts);
                    v.insert(at, (m.ts, m.send_frame(c.key.target())));
                }
            }
        }
        v.into_iter().map(|(_, f)| f).collect()
    }

    /// After (re)login the pending messages are about to be resent: restart
    /// their timeout clocks.
    pub fn mark_resent(&mut self, now: i64) {
        for rc in self.conversations.values_mut() {
            if rc.messages.iter().any(|m| m.state == MsgState::Sending) {
                for m in Rc::make_mut(rc).messages.iter_mut() {
                    if m.state == MsgState::Sending {
                        m.last_sent_at = now;
                    }
                }
            }
        }
    }

    /// `GET /api/conversations`: the server's list is the source of truth
    /// for which conversations exist, their names, cursors and unread
    /// counts; live pushes that arrived meanwhile are kept on top.
    pub fn apply_summaries(&mut self, list: &[ConversationSummary]) {
        let Some(me) = self.me else { return };
        let mut listed = Vec::with_capacity(list.len());
        for s in list {
            let (key, name) = match (&s.group, &s.peer) {
                (Some(g), _) => (ConvKey::Group(g.group_id), g.name.clone()),
                (None, Some(p)) => (ConvKey::User(p.user_id), p.username.clone()),
                (None, None) => continue,
            };
            listed.push(key);
            // Ordered by the server's activity, not by when we learned of it.
            let ts = s.last_message.as_ref().map_or(0, |m| m.ts);
            let c = self.conv_mut(key, &name, ts);
            if c.name != name {
                c.name = name;
            }
            if let (Some(g), Some(meta)) = (&s.group, c.group.as_mut()) {
                meta.owner_id = Some(g.owner_id);
                meta.public = g.public;
                meta.member_count = g.member_count;
                meta.gone = None;
            }
            if let Some(v) = &s.last_message {
                c.upsert(Message::from_chat(v, me), false);
                c.last_activity = c.last_activity.max(v.ts);
            }
            // Pushed after the server counted: on top of its count.
            let newer = c
                .messages
                .iter()
                .filter(|m| !m.mine && m.seq > s.last_seq && m.seq > s.read_seq)
                .count() as u32;
            let local_read = c.read_seq;
            c.read_seq = c.read_seq.max(s.read_seq);
            c.last_seq = c.last_seq.max(s.last_seq);
            c.unread = u32::try_from(s.unread).unwrap_or(u32::MAX) + newer;
            if local_read > s.read_seq {
                c.recount_unread();
            }
            c.peer_read_seq = c.peer_read_seq.max(s.peer_read_seq.unwrap_or(0));
            c.peer_delivered_seq = c.peer_delivered_seq.max(s.peer_delivered_seq.unwrap_or(0));
        }
        // Gone from the server: groups we left or were removed from while
        // away. Kept: purely local chats (nothing stored yet) and groups
        // shown read-only with a notice.
        self.conversations.retain(|k, c| {
            listed.contains(k) || c.read_only() || c.messages.iter().all(|m| m.seq == 0)
        });
        if self
            .active
            .is_some_and(|a| !self.conversations.contains_key(&a))
        {
            self.active = None;
        }
    }

    /// A history request is in flight (or failed: `false`).
    pub fn set_loading(&mut self, key: ConvKey, loading: bool) -> bool {
        match self.existing_mut(key) {
            Some(c) if c.history.loading != loading => {
                c.history.loading = loading;
                true
            }
            _ => false,
        }
    }

    /// A history page: `before` = `None` for the latest page. Merged by
    /// `msgId`; after the latest page, stored messages older than a gap are
    /// dropped so what shows is always one unbroken run up to the newest.
    pub fn merge_history(&mut self, key: ConvKey, before: Option<u64>, page: &History) {
        let Some(me) = self.me else { return };
        let Some(c) = self.existing_mut(key) else {
            return;
        };
        c.history.loading = false;
        if before.is_some() && (!c.history.loaded || c.history.from_seq != before) {
            return; // stale: an answer for an older state of the list
        }
        for v in &page.messages {
            c.upsert(Message::from_chat(v, me), true);
        }
        let Some(first) = page.messages.first().map(|m| m.seq) else {
            if before.is_some() {
                c.history.has_more = false;
            } else {
                // Nothing on the server: anything stored here is stale.
                c.messages.retain(|m| m.seq == 0);
                c.history = HistoryState {
                    loaded: true,
                    ..HistoryState::default()
                };
            }
            return;
        };
        if let Some(v) = page.messages.last() {
            c.last_seq = c.last_seq.max(v.seq);
            c.last_activity = c.last_activity.max(v.ts);
        }
        if before.is_some() {
            c.history.from_seq = Some(first);
            c.history.has_more = page.has_more;
            return;
        }
        // Latest page: extend the run downwards over what is already held
        // (older pages loaded before a reconnect), drop what lies below a
        // gap.
        let seqs: Vec<u64> = c
            .messages
            .iter()
            .map(|m| m.seq)
            .filter(|s| *s > 0)
            .collect();
        let mut i = seqs.partition_point(|s| *s < first);
        while i > 0 && seqs[i - 1] + 1 == seqs[i] {
            i -= 1;
        }
        let low = seqs.get(i).copied().unwrap_or(first);
        c.messages.retain(|m| m.seq == 0 || m.seq >= low);
        let h = &c.history;
        let has_more = if low == first {
            page.has_more
        } else if h.loaded && h.from_seq == Some(low) {
            h.has_more
        } else {
            true
        };
        c.history = HistoryState {
            loaded: true,
            from_seq: Some(low),
            has_more,
            loading: false,
        };
    }

    /// `GET /api/groups/{id}` (or a group mutation's answer): name, owner,
    /// members and their read cursors.
    pub fn set_group_info(&mut self, info: &GroupInfo, now: i64) {
        let key = ConvKey::Group(info.summary.group_id);
        let me = self.me;
        let c = self.conv_mut(key, &info.summary.name, now);
        c.name.clone_from(&info.summary.name);
        let meta = c.group.get_or_insert_with(GroupMeta::default);
        meta.owner_id = Some(info.summary.owner_id);
        meta.public = info.summary.public;
        meta.member_count = info.summary.member_count;
        meta.members = info
            .members
            .iter()
            .map(|m| Member {
                user_id: m.user_id,
                username: m.username.clone(),
                owner: m.owner,
            })
            .collect();
        if info.members.iter().any(|m| Some(m.user_id) == me) {
            meta.gone = None; // (re)joined
        }
        meta.reads
            .retain(|(u, _)| info.members.iter().any(|m| m.user_id == *u));
        for m in &info.members {
            meta.set_read(m.user_id, m.read_seq);
        }
    }

    /// A group change we made (create, join, add, rename) answered with
    /// the group's summary: name, owner, visibility and member count. We
    /// are a member (we just acted as one), so a read-only group becomes
    /// writable again. The member list is reloaded separately.
    pub fn set_group_summary(&mut self, g: &GroupSummary, now: i64) {
        let c = self.conv_mut(ConvKey::Group(g.group_id), &g.name, now);
        c.name.clone_from(&g.name);
        let meta = c.group.get_or_insert_with(GroupMeta::default);
        meta.owner_id = Some(g.owner_id);
        meta.public = g.public;
        meta.member_count = g.member_count;
        meta.gone = None;
    }

    /// We left a group: it disappears.
    pub fn remove_group(&mut self, g: GroupId) -> bool {
        let key = ConvKey::Group(g);
        if self.active == Some(key) {
            self.active = None;
        }
        self.typing.retain(|t| t.key != key);
        self.conversations.remove(&key).is_some()
    }

    /// GROUP_EVENT (100). Returns whether anything changed and, when the
    /// event is about us leaving or being removed, a notice for the user.
    pub fn on_group_event(&mut self, e: &GroupEvent, now: i64) -> (bool, Option<String>) {
        let Some(me) = self.me else {
            return (false, None);
        };
        let key = ConvKey::Group(e.group_id);
        let about_me = e.user_id == Some(me);
        let name = e
            .name
            .clone()
            .unwrap_or_else(|| format!("group {}", e.group_id));
        use GroupEventKind as K;
        match e.kind {
            K::Created | K::MemberAdded | K::MemberJoined if about_me => {
                let c = self.conv_mut(key, &name, now);
                if let Some(g) = c.group.as_mut() {
                    g.gone = None;
                }
            }
            K::MemberLeft if about_me => {
                let had = self.remove_group(e.group_id);
                return (had, had.then(|| format!("You left {name}.")));
            }
            K::MemberRemoved if about_me => {
                let Some(c) = self.existing_mut(key) else {
                    return (false, None);
                };
                let g = c.group.get_or_insert_with(GroupMeta::default);
                let why = format!("You were removed from {name}.");
                g.gone = Some(why.clone());
                g.members.clear();
                self.typing.retain(|t| t.key != key);
                return (true, Some(why));
            }
            _ => {}
        }
        let Some(c) = self.existing_mut(key) else {
            return (false, None);
        };
        if e.name.is_some() && c.name != name {
            c.name = name;
        }
        let Some(g) = c.group.as_mut() else {
            return (true, None);
        };
        match (e.kind, e.user_id) {
            (K::MemberAdded | K::MemberJoined, Some(u))
                if !g.members.iter().any(|m| m.user_id == u) =>
            {
                g.member_count += 1;
                if !g.members.is_empty() {
                    let m = Member {
                        user_id: u,
                        username: e.username.clone().unwrap_or_else(|| format!("user {u}")),
                        owner: false,
                    };
                    let at = g
                        .members
                        .partition_point(|x| x.owner || x.username < m.username);
                    g.members.insert(at, m);
                }
            }
            (K::MemberLeft | K::MemberRemoved, Some(u)) => {
                if let Some(i) = g.members.iter().position(|m| m.user_id == u) {
                    g.members.remove(i);
                }
                g.member_count = g.member_count.saturating_sub(1);
                g.reads.retain(|(x, _)| *x != u);
                self.typing.retain(|t| !(t.key == key && t.user == u));
            }
            (K::OwnerChanged, Some(u)) => {
                g.owner_id = Some(u);
                for m in &mut g.members {
                    m.owner = m.user_id == u;
                }
                // Owner first, the rest by username (the old owner, if
                // still here, goes back among them).
                if let Some(i) = g.members.iter().position(|m| m.owner) {
                    let owner = g.members.remove(i);
                    if !g.members.is_empty() {
                        let old = g.members.remove(0);
                        let at = g.members.partition_point(|m| m.username < old.username);
                        g.members.insert(at, old);
                    }
                    g.members.insert(0, owner);
                }
            }
            _ => {}
        }
        (true, None)
    }

    /// TYPING (60) from someone.
    pub fn on_typing(&mut self, from: UserId, name: &str, to: Target, now: i64) -> bool {
        if Some(from) == self.me {
            return false;
        }
        let key = match to {
            Target::User(_) => ConvKey::User(from),
            Target::Group(g) => ConvKey::Group(g),
        };
        let until = now + TYPING_SHOW_MS;
        match self
            .typing
            .iter_mut()
            .find(|t| t.key == key && t.user == from)
        {
            Some(t) => t.until = until,
            None => self.typing.push(Typing {
                key,
                user: from,
                name: name.to_string(),
                until,
            }),
        }
        true
    }

    /// Forgets typing notices older than [`TYPING_SHOW_MS`].
    pub fn expire_typing(&mut self, now: i64) -> bool {
        let n = self.typing.len();
        self.typing.retain(|t| t.until > now);
        self.typing.len() != n
    }

    /// Who is typing in a conversation, in the order they started.
    pub fn typing_in(&self, key: ConvKey) -> Vec<String> {
        self.typing
            .iter()
            .filter(|t| t.key == key)
            .map(|t| t.name.clone())
            .collect()
    }

    /// The cacheable part, for localStorage.
    pub fn to_cache(&self) -> ChatCache {
        ChatCache {
            version: ChatCache::VERSION,
            user_id: self.me,
            active: self.active,
            conversations: self
                .conversations
                .values()
                .map(|c| {
                    let mut c = (**c).clone();
                    let n = c.messages.len();
                    c.messages
                        .drain(..n.saturating_sub(CACHED_MESSAGES_PER_CONVERSATION));
                    c
                })
                .collect(),
        }
    }

    /// Restores from the cache (ignored when it belongs to someone else).
    pub fn restore(&mut self, cache: ChatCache) {
        if cache.version != ChatCache::VERSION || cache.user_id != self.me {
            return;
        }
        for mut c in cache.conversations {
            if c.key.is_group() {
                c.group = Some(GroupMeta::default());
            }
            self.conversations.insert(c.key, Rc::new(c));
        }
        self.active = cache.active.filter(|a| self.conversations.contains_key(a));
    }
}

/// What `ferrochat.cache.<userId>` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatCache {
    /// Format version; a mismatch drops the cache.
    pub version: u32,
    /// Whose cache this is.
    pub user_id: Option<UserId>,
    /// The conversation that was open.
    #[serde(default)]
    pub active: Option<ConvKey>,
    /// The conversations.
    pub conversations: Vec<Conversation>,
}

impl ChatCache {
    /// The current format.
    pub const VERSION: u32 = 2;

    /// The localStorage key for a user's cache.
    pub fn key(user: UserId) -> String {
        format!("ferrochat.cache.{user}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::{ConversationKind, GroupSummary, MemberInfo, UserSummary};
    use shared::ErrorCode;

    const ME: UserId = UserId(1);
    const BOB: UserId = UserId(2);
    const CAROL: UserId = UserId(3);
    const G: GroupId = GroupId(9);
    const KB: ConvKey = ConvKey::User(BOB);
    const KC: ConvKey = ConvKey::User(CAROL);
    const KG: ConvKey = ConvKey::Group(G);

    fn mid(n: u128) -> MsgId {
        MsgId::from_u128(n)
    }

    fn name_of(u: UserId) -> String {
        match u.0 {
            1 => "me",
            2 => "bob",
            3 => "carol",
            _ => "dave",
        }
        .into()
    }

    fn push(
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

    fn gpush(id: u128, from: UserId, seq: u64) -> ChatMessage {
        ChatMessage {
            to: Target::Group(G),
            ..push(id, from, ME, seq as i64 * 10, seq, None)
        }
    }

    fn view(id: u128, from: UserId, seq: u64, to: Target) -> ChatMessage {
        ChatMessage {
            to,
            client_msg_id: None,
            ..push(id, from, ME, seq as i64 * 10, seq, None)
        }
    }

    /// A page of direct messages from bob with seqs `from..=to`.
    fn page(from: u64, to: u64, has_more: bool) -> History {
        History {
            messages: (from..=to)
                .map(|s| view(1_000 + u128::from(s), BOB, s, Target::User(ME)))
                .collect(),
            has_more,
            read_by: vec![],
        }
    }

    fn chat() -> Chat {
        Chat::new(ME, "me")
    }

    fn msgs(c: &Chat, key: ConvKey) -> Vec<Message> {
        c.conversation(key)
            .map(|c| c.messages.clone())
            .unwrap_or_default()
    }

    fn seqs(c: &Chat, key: ConvKey) -> Vec<u64> {
        msgs(c, key).iter().map(|m| m.seq).collect()
    }

    fn conv(c: &Chat, key: ConvKey) -> Rc<Conversation> {
        c.conversation(key).unwrap().clone()
    }

    fn cid_of(f: &ClientFrame) -> Option<String> {
        match f {
            ClientFrame::Chat(c) => c.client_msg_id.clone(),
            _ => None,
        }
    }

    fn summary_direct(peer: UserId, last: u64, unread: u64, read: u64) -> ConversationSummary {
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

    fn group_summary(name: &str, members: u32) -> GroupSummary {
        GroupSummary {
            group_id: G,
            name: name.into(),
            owner_id: ME,
            public: false,
            member_count: members,
        }
    }

    fn group_info(reads: &[(UserId, u64)]) -> GroupInfo {
        GroupInfo {
            summary: group_summary("team", reads.len() as u32),
            members: reads
                .iter()
                .map(|&(u, r)| MemberInfo {
                    user_id: u,
                    username: name_of(u),
                    owner: u == ME,
                    read_seq: r,
                    delivered_seq: 0,
                    online: false,
                })
                .collect(),
            next: None,
        }
    }

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
    fn sending_then_sent_then_delivered_then_read() {
        let mut c = chat();
        let f = c
            .queue_outgoing(KB, "bob", "w-2".into(), "hello".into(), 100)
            .unwrap();
        assert_eq!(cid_of(&f).as_deref(), Some("w-2"));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Sending);
        assert_eq!(msgs(&c, KB)[0].msg_id, None);
        assert!(c.on_chat_resp(mid(20), Some("w-2"), 2_000, 7));
        let m = &msgs(&c, KB)[0];
        assert_eq!(
            (m.state, m.msg_id, m.ts, m.seq),
            (MsgState::Sent, Some(mid(20)), 2_000, 7)
        );
        assert!(!c.on_delivered(mid(99)));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Sent);
        assert!(c.on_delivered(mid(20)));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Delivered);
        // A duplicate 81 (resend after reconnect) must not regress it.
        assert!(c.on_chat_resp(mid(20), Some("w-2"), 2_000, 7));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Delivered);
        // bob reads up to 6: not yet ours; up to 7: read.
        let shown = |c: &Chat| {
            let k = conv(c, KB);
            k.display_state(&k.messages[0], ME)
        };
        assert!(c.on_read_receipt(BOB, Target::User(ME), 6));
        assert_eq!(shown(&c), MsgState::Delivered);
        assert!(c.on_read_receipt(BOB, Target::User(ME), 7));
        assert_eq!(shown(&c), MsgState::Read);
        assert!(!c.on_read_receipt(BOB, Target::User(ME), 5), "never back");
        assert_eq!(shown(&c), MsgState::Read);
    }

    #[test]
    fn a_receipt_before_the_81_is_applied_when_the_81_arrives() {
        let mut c = chat();
        c.queue_outgoing(KB, "bob", "w-3".into(), "x".into(), 100)
            .unwrap();
        assert!(!c.on_delivered(mid(30)));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Sending);
        c.on_chat_resp(mid(30), Some("w-3"), 200, 1);
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Delivered);
    }

    #[test]
    fn timeout_fails_and_retry_resends_with_the_same_client_msg_id() {
        let mut c = chat();
        c.queue_outgoing(KB, "bob", "w-4".into(), "again".into(), 0)
            .unwrap();
        assert!(!c.expire(SEND_TIMEOUT_MS - 1));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Sending);
        assert!(c.expire(SEND_TIMEOUT_MS));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Failed);
        assert!(!c.expire(SEND_TIMEOUT_MS * 5), "already failed");
        assert!(c.pending_frames().is_empty());

        let f = c
            .retry("w-4", 20_000)
            .expect("failed messages can be retried");
        assert_eq!(cid_of(&f).as_deref(), Some("w-4"));
        match &f {
            ClientFrame::Chat(s) => {
                assert_eq!(s.to, Target::User(BOB));
                assert_eq!(s.content.body, "again");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.sending_frame("w-4"), Some(f));
        let m = &msgs(&c, KB)[0];
        assert_eq!((m.state, m.last_sent_at), (MsgState::Sending, 20_000));
        assert_eq!(msgs(&c, KB).len(), 1, "retry never duplicates");
        assert_eq!(c.retry("w-4", 20_001), None);
        assert_eq!(c.retry("nope", 20_001), None);
        assert!(!c.expire(20_000 + SEND_TIMEOUT_MS - 1));
        c.expire(20_000 + SEND_TIMEOUT_MS);
        assert!(c.on_chat_resp(mid(40), Some("w-4"), 3, 1));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Sent);
    }

    #[test]
    fn errors_fail_exactly_the_message_they_name() {
        let mut c = chat();
        c.queue_outgoing(KB, "bob", "w-5".into(), "a".into(), 0)
            .unwrap();
        c.queue_outgoing(KB, "bob", "w-6".into(), "b".into(), 1)
            .unwrap();
        let err = |cid: Option<&str>| ErrorFrame {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            req_type: Some("80".into()),
            client_msg_id: cid.map(str::to_owned),
            msg_id: None,
        };
        assert!(!c.on_error(&err(None)));
        assert!(!c.on_error(&err(Some("unknown"))));
        assert!(c.on_error(&err(Some("w-6"))));
        let m = msgs(&c, KB);
        let by = |cid: &str| {
            m.iter()
                .find(|m| m.client_msg_id.as_deref() == Some(cid))
                .unwrap()
        };
        assert_eq!(by("w-5").state, MsgState::Sending);
        assert_eq!(by("w-6").state, MsgState::Failed);
        assert_eq!(by("w-6").error.as_deref(), Some("slow down"));
        c.on_chat_resp(mid(50), Some("w-5"), 10, 1);
        assert!(!c.on_error(&err(Some("w-5"))));
        assert_eq!(
            c.retry("w-6", 5).and_then(|f| cid_of(&f)).as_deref(),
            Some("w-6")
        );
    }

    #[test]
    fn unread_counts_theirs_unless_on_screen_and_reads_clear_it() {
        let mut c = chat();
        c.on_push(&push(60, BOB, ME, 1, 1, None));
        c.on_push(&push(61, BOB, ME, 2, 2, None));
        c.on_push(&push(62, CAROL, ME, 3, 1, None));
        c.on_push(&push(63, ME, BOB, 4, 3, Some("x")));
        assert_eq!(conv(&c, KB).unread, 2);
        assert_eq!(conv(&c, KC).unread, 1);
        assert_eq!(c.total_unread(), 3);
        // Opening shows it; the READ for what is on screen clears it.
        c.open(KB, "bob", 10);
        assert_eq!(c.active, Some(KB));
        assert_eq!(c.read_candidate(), Some((KB, 3)));
        assert!(c.mark_read(KB, 3));
        assert_eq!(conv(&c, KB).unread, 0);
        assert_eq!(c.read_candidate(), None, "only when it advances");
        assert!(!c.mark_read(KB, 2), "never back");
        // On screen: no badge, and the next READ is due.
        c.on_push(&push(64, BOB, ME, 5, 4, None));
        assert_eq!(conv(&c, KB).unread, 0);
        assert_eq!(c.read_candidate(), Some((KB, 4)));
        // Hidden page: it counts, and nothing is read.
        c.visible = false;
        c.on_push(&push(65, BOB, ME, 6, 5, None));
        assert_eq!(conv(&c, KB).unread, 1);
        assert_eq!(c.read_candidate(), None);
        c.visible = true;
        assert_eq!(c.read_candidate(), Some((KB, 5)));
        c.on_push(&push(66, CAROL, ME, 7, 2, None));
        assert_eq!(conv(&c, KC).unread, 2);
        // Our own reading in another tab (71 with byId = us).
        assert!(c.on_read_receipt(ME, Target::User(CAROL), 2));
        assert_eq!(conv(&c, KC).unread, 0);
        // Most recent first.
        let order: Vec<_> = c.sorted_conversations().iter().map(|c| c.key).collect();
        assert_eq!(order, [KC, KB]);
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
    fn pending_messages_are_resent_oldest_first_to_users_and_groups() {
        let mut c = chat();
        c.queue_outgoing(KG, "team", "w-b".into(), "second".into(), 20)
            .unwrap();
        c.queue_outgoing(KB, "bob", "w-a".into(), "first".into(), 10)
            .unwrap();
        c.queue_outgoing(KB, "bob", "w-c".into(), "stored".into(), 30)
            .unwrap();
        c.on_chat_resp(mid(80), Some("w-c"), 31, 1);
        let frames = c.pending_frames();
        let cids: Vec<_> = frames.iter().filter_map(cid_of).collect();
        assert_eq!(cids, ["w-a", "w-b"]);
        match &frames[1] {
            ClientFrame::Chat(s) => assert_eq!(s.to, Target::Group(G)),
            other => panic!("{other:?}"),
        }
        c.mark_resent(5_000);
        assert!(!c.expire(5_000 + SEND_TIMEOUT_MS - 1));
    }

    #[test]
    fn cache_round_trips_and_belongs_to_one_user() {
        let mut c = chat();
        c.on_push(&push(90, BOB, ME, 1, 1, None));
        c.queue_outgoing(KB, "bob", "w-9".into(), "unsent <b>html</b>".into(), 2)
            .unwrap();
        c.on_push(&gpush(91, CAROL, 1));
        c.open(KB, "bob", 3);
        let json = serde_json::to_string(&c.to_cache()).unwrap();
        assert!(json.contains("\"msgId\""));

        let mut restored = chat();
        restored.restore(serde_json::from_str(&json).unwrap());
        assert_eq!(restored.active, Some(KB));
        let m = msgs(&restored, KB);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].body, "unsent <b>html</b>");
        assert_eq!(m[1].state, MsgState::Sending);
        assert_eq!(msgs(&restored, KG).len(), 1);
        let cids: Vec<_> = restored
            .pending_frames()
            .iter()
            .filter_map(cid_of)
            .collect();
        assert_eq!(cids, ["w-9"]);
        assert_eq!(
            restored.on_push(&push(90, BOB, ME, 1, 1, None)),
            PushOutcome::Duplicate
        );

        let mut other = Chat::new(CAROL, "carol");
        other.restore(serde_json::from_str(&json).unwrap());
        assert!(other.conversations.is_empty());
        // The old format (version 1) is dropped, not misread.
        let mut old = chat();
        old.restore(ChatCache {
            version: 1,
            ..c.to_cache()
        });
        assert!(old.conversations.is_empty());
    }

    #[test]
    fn the_cache_keeps_only_the_newest_messages() {
        let mut c = chat();
        let n = CACHED_MESSAGES_PER_CONVERSATION as u64 + 5;
        for i in 1..=n {
            c.on_push(&push(2_000 + u128::from(i), BOB, ME, i as i64, i, None));
        }
        assert_eq!(msgs(&c, KB).len() as u64, n, "memory keeps them all");
        let cache = c.to_cache();
        let kept = &cache.conversations[0].messages;
        assert_eq!(kept.len(), CACHED_MESSAGES_PER_CONVERSATION);
        assert_eq!(kept.last().unwrap().seq, n);
    }

    #[test]
    fn history_pages_merge_with_pushes_without_duplicates_or_gaps() {
        let mut c = chat();
        // Offline-first: an old cached message far below the latest page.
        c.on_push(&push(1_003, BOB, ME, 30, 3, None));
        // A push that arrived while the page was loading.
        c.open(KB, "bob", 0);
        assert!(c.set_loading(KB, true));
        c.on_push(&push(1_101, BOB, ME, 1_010, 101, None));
        c.merge_history(KB, None, &page(52, 100, true));
        let h = &conv(&c, KB).history;
        assert_eq!(
            (h.loaded, h.from_seq, h.has_more, h.loading),
            (true, Some(52), true, false)
        );
        assert_eq!(
            seqs(&c, KB),
            (52..=101).collect::<Vec<_>>(),
            "seq 3 was below a gap"
        );
        assert_eq!(conv(&c, KB).older_cursor(), Some(52));
        // A re-push of an old message from below the run waits for its page.
        assert_eq!(
            c.on_push(&push(1_010, BOB, ME, 100, 10, None)),
            PushOutcome::Duplicate
        );
        // Older pages prepend; a stale answer (wrong cursor) is ignored.
        c.merge_history(KB, Some(40), &page(1, 39, false));
        assert_eq!(conv(&c, KB).history.from_seq, Some(52));
        c.merge_history(KB, Some(52), &page(2, 51, true));
        assert_eq!(conv(&c, KB).older_cursor(), Some(2));
        c.merge_history(KB, Some(2), &page(1, 1, false));
        assert_eq!(seqs(&c, KB), (1..=101).collect::<Vec<_>>());
        assert_eq!(conv(&c, KB).older_cursor(), None, "start reached");
        // After a reconnect the latest page again: everything kept, once.
        c.merge_history(KB, None, &page(60, 101, true));
        assert_eq!(seqs(&c, KB), (1..=101).collect::<Vec<_>>());
        let h = &conv(&c, KB).history;
        assert_eq!((h.from_seq, h.has_more), (Some(1), false));
        // An empty older page ends the paging.
        let mut d = chat();
        d.open(KB, "bob", 0);
        d.merge_history(KB, None, &page(5, 9, true));
        d.merge_history(KB, Some(5), &page(1, 0, true));
        assert_eq!(conv(&d, KB).older_cursor(), None);
    }

    #[test]
    fn history_merges_our_unacknowledged_message_by_client_msg_id() {
        let mut c = chat();
        c.open(KB, "bob", 0);
        c.queue_outgoing(KB, "bob", "w-h".into(), "mine".into(), 5)
            .unwrap();
        let mut v = view(77, ME, 1, Target::User(BOB));
        v.client_msg_id = Some("w-h".into());
        c.merge_history(
            KB,
            None,
            &History {
                messages: vec![v],
                has_more: false,
                read_by: vec![],
            },
        );
        let m = msgs(&c, KB);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].seq, m[0].state), (1, MsgState::Sent));
        // An empty conversation on the server drops stale stored messages
        // but keeps unsent ones.
        let mut d = chat();
        d.on_push(&push(5, BOB, ME, 1, 1, None));
        d.queue_outgoing(KB, "bob", "w-x".into(), "x".into(), 2);
        d.merge_history(KB, None, &page(1, 0, false));
        assert_eq!(seqs(&d, KB), [0]);
    }

    #[test]
    fn summaries_are_the_source_of_truth_and_keep_later_pushes() {
        let mut c = chat();
        // Cached: a group we have since left, and a chat with nothing sent.
        c.on_push(&gpush(1, BOB, 1));
        c.open(KC, "carol", 0);
        // A pending push (seq 4) arrived before the list; seq 5 after it.
        c.on_push(&push(504, BOB, ME, 40, 4, None));
        assert_eq!(conv(&c, KB).unread, 1);
        c.apply_summaries(&[summary_direct(BOB, 4, 3, 1)]);
        assert_eq!(conv(&c, KB).unread, 3, "the server's count, not 3 + 1");
        assert_eq!(seqs(&c, KB), [4], "last message deduped with the push");
        assert!(c.conversation(KG).is_none(), "left while away");
        assert!(c.conversation(KC).is_some(), "local chat kept");
        c.on_push(&push(505, BOB, ME, 50, 5, None));
        assert_eq!(conv(&c, KB).unread, 4);
        // A list computed before seq 5 was stored counts it on top.
        c.apply_summaries(&[summary_direct(BOB, 4, 3, 1)]);
        assert_eq!(conv(&c, KB).unread, 4);
        assert_eq!(conv(&c, KB).read_seq, 1);
        // A group from the list, newest first by its last message.
        let mut g = summary_direct(BOB, 0, 0, 0);
        g.kind = ConversationKind::Group;
        g.peer = None;
        g.group = Some(group_summary("team", 3));
        g.last_message = Some(view(700, CAROL, 2, Target::Group(G)));
        g.last_seq = 2;
        g.unread = 2;
        c.apply_summaries(&[g, summary_direct(BOB, 5, 4, 1)]);
        let k = conv(&c, KG);
        assert_eq!((k.name.as_str(), k.unread), ("team", 2));
        assert_eq!(k.group.as_ref().unwrap().member_count, 3);
        assert_eq!(c.sorted_conversations()[0].key, KB, "bob's seq 5 is newer");
    }

    #[test]
    fn group_messages_show_read_by_counts_from_cursors() {
        let mut c = chat();
        c.set_group_info(&group_info(&[(ME, 0), (BOB, 0), (CAROL, 0)]), 0);
        c.open(KG, "team", 0);
        c.queue_outgoing(KG, "team", "g-1".into(), "hello team".into(), 1)
            .unwrap();
        c.on_chat_resp(mid(1), Some("g-1"), 10, 1);
        let state = |c: &Chat| {
            let k = conv(c, KG);
            let m = &k.messages[0];
            (k.display_state(m, ME), k.read_by(m.seq, ME))
        };
        assert_eq!(state(&c), (MsgState::Sent, Some(0)));
        assert!(c.on_read_receipt(BOB, Target::Group(G), 1));
        assert_eq!(state(&c), (MsgState::Sent, Some(1)));
        assert!(!c.on_read_receipt(BOB, Target::Group(G), 1), "no change");
        assert!(c.on_read_receipt(CAROL, Target::Group(G), 3));
        assert_eq!(state(&c), (MsgState::Read, Some(2)), "everyone read it");
        // Initial cursors from GET /api/groups/{id} count too, and a member
        // who leaves no longer does.
        let mut d = chat();
        d.set_group_info(&group_info(&[(ME, 0), (BOB, 5), (CAROL, 0)]), 0);
        d.on_push(&ChatMessage {
            from_id: ME,
            from_name: "me".into(),
            ..gpush(2, ME, 4)
        });
        let k = conv(&d, KG);
        assert_eq!(k.read_by(4, ME), Some(1));
        let left = GroupEvent {
            group_id: G,
            kind: GroupEventKind::MemberLeft,
            user_id: Some(BOB),
            username: Some("bob".into()),
            by_id: None,
            name: Some("team".into()),
        };
        assert_eq!(d.on_group_event(&left, 0), (true, None));
        let k = conv(&d, KG);
        assert_eq!(k.read_by(4, ME), Some(0));
        assert_eq!(k.group.as_ref().unwrap().members.len(), 2);
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
        assert!(c.on_read_receipt(ME, Target::Group(G), 1));
        assert_eq!(conv(&c, KG).unread, 1);
    }

    fn event(kind: GroupEventKind, user: UserId, name: &str) -> GroupEvent {
        GroupEvent {
            group_id: G,
            kind,
            user_id: Some(user),
            username: Some(name_of(user)),
            by_id: Some(ME),
            name: Some(name.into()),
        }
    }

    #[test]
    fn group_events_update_members_names_and_our_membership() {
        use GroupEventKind as K;
        let mut c = chat();
        // Added by someone: the group appears.
        assert!(c.on_group_event(&event(K::MemberAdded, ME, "team"), 5).0);
        assert_eq!(conv(&c, KG).name, "team");
        c.set_group_info(&group_info(&[(ME, 0), (BOB, 0)]), 6);
        c.on_group_event(&event(K::MemberJoined, CAROL, "team"), 7);
        let names = |c: &Chat| -> Vec<String> {
            conv(c, KG)
                .group
                .as_ref()
                .unwrap()
                .members
                .iter()
                .map(|m| m.username.clone())
                .collect()
        };
        assert_eq!(names(&c), ["me", "bob", "carol"]);
        assert_eq!(conv(&c, KG).group.as_ref().unwrap().member_count, 3);
        c.on_group_event(&event(K::MemberJoined, CAROL, "team"), 7);
        assert_eq!(
            conv(&c, KG).group.as_ref().unwrap().member_count,
            3,
            "twice is once"
        );
        c.on_group_event(&event(K::Renamed, ME, "dream team"), 8);
        assert_eq!(conv(&c, KG).name, "dream team");
        c.on_group_event(&event(K::OwnerChanged, BOB, "dream team"), 9);
        assert!(conv(&c, KG).is_owner(BOB));
        assert_eq!(names(&c), ["bob", "carol", "me"], "owner first");
        // Removed: read-only with a notice; nothing can be sent.
        c.open(KG, "", 10);
        let (changed, notice) = c.on_group_event(&event(K::MemberRemoved, ME, "dream team"), 11);
        assert!(changed);
        assert!(notice.unwrap().contains("removed"));
        assert!(conv(&c, KG).read_only());
        assert_eq!(c.read_candidate(), None);
        assert!(c
            .queue_outgoing(KG, "dream team", "x".into(), "hi".into(), 12)
            .is_none());
        // Kept by a later list (read-only) until we leave for good.
        c.apply_summaries(&[]);
        assert!(c.conversation(KG).is_some());
        // Joining again (a public group) makes it writable again.
        c.set_group_info(&group_info(&[(BOB, 0), (ME, 0)]), 12);
        assert!(!conv(&c, KG).read_only());
        c.on_group_event(&event(K::MemberRemoved, ME, "dream team"), 13);
        assert!(conv(&c, KG).read_only());
        let (changed, notice) = c.on_group_event(&event(K::MemberLeft, ME, "dream team"), 14);
        assert!(changed && notice.unwrap().contains("left"));
        assert!(c.conversation(KG).is_none());
        assert_eq!(c.active, None);
    }

    #[test]
    fn typing_notices_show_for_a_while_and_end_with_the_message() {
        let mut c = chat();
        assert!(c.on_typing(BOB, "bob", Target::User(ME), 0));
        assert!(c.on_typing(CAROL, "carol", Target::Group(G), 0));
        assert!(c.on_typing(BOB, "bob", Target::Group(G), 100));
        assert!(!c.on_typing(ME, "me", Target::Group(G), 100), "not us");
        assert_eq!(c.typing_in(KB), ["bob"]);
        assert_eq!(c.typing_in(KG), ["carol", "bob"]);
        // bob keeps typing in the group: his notice is extended.
        c.on_typing(BOB, "bob", Target::Group(G), 3_000);
        assert!(c.expire_typing(TYPING_SHOW_MS));
        assert_eq!(c.typing_in(KB), Vec::<String>::new());
        assert_eq!(c.typing_in(KG), ["bob"]);
        assert!(!c.expire_typing(TYPING_SHOW_MS + 1));
        // His message ends it.
        c.on_push(&gpush(5, BOB, 1));
        assert!(c.typing_in(KG).is_empty());
    }
}
