//! The hub: who is online, on which sockets, and which pushes each of them
//! still owes an ack for.
//!
//! State is sharded by user id behind short-lived `parking_lot` mutexes. No
//! lock is ever held across an `.await`, and frames are queued to sockets
//! after the lock is released (handles are cloned out first), so one user's
//! slow socket never holds up anyone else.
//!
//! Delivery bookkeeping, per online user and conversation:
//! - `outstanding`: pushed, not yet acked, by `seq`; re-pushed with
//!   exponential backoff until acked or the user's last socket closes;
//! - `dispatched_max`: the highest `seq` pushed to the user;
//! - `cursor`: everything up to it was acked (persisted through the store).
//!
//! After an ack the cursor becomes `min(outstanding) - 1`, or
//! `dispatched_max` when nothing is outstanding. That is only sound if every
//! message above the stored cursor is tracked before any ack is counted,
//! which the session guarantees: a socket processes no frames until its
//! backlog is fully loaded, and pushes arrive here in commit order.

use crate::auth::TokenHash;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::socket::{encode, SocketHandle};
use crate::store::{CommitSink, Committed, ConvId, GroupChange, ReadMoved, StoredMessage, UserRef};
use parking_lot::Mutex;
use shared::{ErrorFrame, GroupEventKind, MsgId, ServerFrame, Target, UserId};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Utf8Bytes;

const SHARDS: usize = 64;
/// Acks remembered per user to answer repeats without the database.
const RECENT_ACKS: usize = 256;
/// Live pushes buffered for a socket that is still receiving its backlog;
/// past this the socket reloads from the database instead.
const SYNC_BUFFER: usize = 4096;

/// Groups up to this size are "small": their members are each other's
/// contacts (presence), see each other type, and hear every membership
/// change. In bigger groups those would cost O(members²) frames (every
/// login, keystroke or join reaching thousands of sockets), so they are
/// pulled instead (`GET /api/groups/{id}` shows who is online).
pub const SMALL_GROUP: usize = 256;

/// Retry and queue settings.
#[derive(Clone, Copy, Debug)]
pub struct HubConfig {
    /// First retry after this long without an ack.
    pub ack_timeout: Duration,
    /// Longest interval between retries.
    pub max_retry_interval: Duration,
    /// Most retries queued to one socket per retry round.
    pub retry_budget: usize,
    /// A user whose last socket closed is announced offline this much
    /// later, unless they are back (a page reload is not a departure).
    pub presence_grace: Duration,
}

struct Pending {
    msg_id: MsgId,
    from: UserId,
    /// One-to-one messages get delivery receipts (92); group messages do
    /// not (thousands of receipts per message), they get read counts.
    receipt: bool,
    frame: Utf8Bytes,
    attempts: u32,
    due: Instant,
}

#[derive(Default)]
struct ConvState {
    outstanding: BTreeMap<u64, Pending>,
    dispatched_max: u64,
    cursor: u64,
}

struct Sock {
    handle: SocketHandle,
    token: TokenHash,
    /// `Some` while the socket is receiving its backlog: live pushes wait
    /// here so they cannot overtake older messages.
    sync: Option<SyncBuffer>,
}

#[derive(Default)]
struct SyncBuffer {
    frames: Vec<(MsgId, Utf8Bytes)>,
    overflow: bool,
}

struct UserEntry {
    username: Arc<str>,
    sockets: Vec<Sock>,
    /// Who hears this user's presence (and whose presence this user hears).
    contacts: HashSet<UserId>,
    convs: HashMap<ConvId, ConvState>,
    by_msg: HashMap<MsgId, (ConvId, u64)>,
    recent_acks: VecDeque<MsgId>,
    next_due: Option<Instant>,
}

impl UserEntry {
    fn live_handles(&self) -> Vec<SocketHandle> {
        self.sockets
            .iter()
            .filter(|s| s.sync.is_none())
            .map(|s| s.handle.clone())
            .collect()
    }

    /// Starts tracking a push; false if it is already tracked or acked.
    fn track(&mut self, msg: &StoredMessage, frame: &Utf8Bytes, due: Instant) -> bool {
        if self.by_msg.contains_key(&msg.msg_id) || self.recent_acks.contains(&msg.msg_id) {
            return false;
        }
        let conv = self.convs.entry(msg.conv).or_default();
        if msg.seq <= conv.cursor {
            return false;
        }
        conv.dispatched_max = conv.dispatched_max.max(msg.seq);
        conv.outstanding.insert(
            msg.seq,
            Pending {
                msg_id: msg.msg_id,
                from: msg.from,
                receipt: matches!(msg.to, Target::User(_)),
                frame: frame.clone(),
                attempts: 0,
                due,
            },
        );
        self.by_msg.insert(msg.msg_id, (msg.conv, msg.seq));
        self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
        true
    }
}

/// What an ack did.
#[derive(Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// First ack of a tracked push.
    Acked {
        /// The original sender.
        sender: UserId,
        /// Whether the sender gets a delivery receipt (one-to-one only).
        receipt: bool,
        /// The conversation.
        conv: ConvId,
        /// The new delivery cursor, when it moved.
        cursor: Option<u64>,
    },
    /// A repeat of a recent ack.
    Repeat,
    /// Not tracked here: check the database.
    Unknown,
}

/// How a backlog sync ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SyncEnd {
    /// The socket is live.
    Done,
    /// Too many live pushes piled up meanwhile: load again from the store.
    Reload,
}

/// A user whose last socket closed, not yet announced offline.
struct Departed {
    at: Instant,
    username: Arc<str>,
    contacts: HashSet<UserId>,
}

/// How frames reach sockets in `to_users`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Queue to live sockets (a full queue closes the socket); to syncing
    /// sockets only if there is room.
    Push,
    /// Queue only where there is room; never closes a socket. For
    /// ephemeral frames (typing, presence).
    Offer,
}

/// The registry of online users and their sockets.
pub struct Hub {
    shards: Box<[Mutex<HashMap<UserId, UserEntry>>]>,
    departed: Mutex<HashMap<UserId, Departed>>,
    config: HubConfig,
    metrics: Arc<Metrics>,
    next_socket: AtomicU64,
}

/// Unregisters its socket when dropped (on every exit path of a session).
pub struct Registration {
    hub: Arc<Hub>,
    user: UserId,
    socket: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.user, self.socket);
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(config: HubConfig, metrics: Arc<Metrics>) -> Hub {
        Hub {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            departed: Mutex::new(HashMap::new()),
            config,
            metrics,
            next_socket: AtomicU64::new(1),
        }
    }

    fn shard_index(user: UserId) -> usize {
        (user.0 as u64 % SHARDS as u64) as usize
    }

    fn shard(&self, user: UserId) -> &Mutex<HashMap<UserId, UserEntry>> {
        &self.shards[Self::shard_index(user)]
    }

    /// Whether the user has a socket (or left less than the presence grace
    /// ago).
    pub fn is_online(&self, user: UserId) -> bool {
        self.shard(user).lock().contains_key(&user) || self.departed.lock().contains_key(&user)
    }

    /// A fresh socket id.
    pub fn next_socket_id(&self) -> u64 {
        self.next_socket.fetch_add(1, Relaxed)
    }

    /// Adds a logged-in socket, in backlog-sync mode. `contacts` are the
    /// user's contacts from the store. When this is the user's first socket
    /// their contacts hear that they are online. Returns the registration
    /// and the contacts online now (the new socket's presence snapshot).
    pub fn register(
        self: &Arc<Self>,
        user: &UserRef,
        handle: SocketHandle,
        token: TokenHash,
        contacts: &[UserRef],
    ) -> (Registration, Vec<UserRef>) {
        let socket = handle.id();
        let first = {
            let mut shard = self.shard(user.id).lock();
            let mut first = false;
            let entry = shard.entry(user.id).or_insert_with(|| {
                first = true;
                self.metrics.users_online.fetch_add(1, Relaxed);
                UserEntry {
                    username: user.username.as_str().into(),
                    sockets: Vec::with_capacity(1),
                    contacts: HashSet::new(),
                    convs: HashMap::new(),
                    by_msg: HashMap::new(),
                    recent_acks: VecDeque::new(),
                    next_due: None,
                }
            });
            entry.contacts.extend(contacts.iter().map(|c| c.id));
            entry.sockets.push(Sock {
                handle,
                token,
                sync: Some(SyncBuffer::default()),
            });
            first
        };
        // Back within the grace period: contacts never saw them leave.
        let returning = self.departed.lock().remove(&user.id).is_some();
        if first && !returning {
            self.announce(user.id, &user.username, true, contacts.iter().map(|c| c.id));
        }
        let online = contacts
            .iter()
            .filter(|c| self.is_online(c.id))
            .cloned()
            .collect();
        (
            Registration {
                hub: self.clone(),
                user: user.id,
                socket,
            },
            online,
        )
    }

    /// Sends a presence frame about `user` to `to`.
    fn announce(
        &self,
        user: UserId,
        username: &str,
        online: bool,
        to: impl IntoIterator<Item = UserId>,
    ) {
        let frame = encode(&ServerFrame::Presence {
            user_id: user,
            username: username.to_string(),
            online,
            ts: now_ms(),
        });
        let to: Vec<UserId> = to.into_iter().collect();
        self.to_users(&to, &frame, Mode::Offer);
    }

    /// Announces users whose last socket closed more than the grace period
    /// ago as offline. Runs from a timer.
    pub fn presence_tick(&self, now: Instant) {
        let gone: Vec<(UserId, Departed)> = {
            let mut d = self.departed.lock();
            let expired: Vec<UserId> = d
                .iter()
                .filter(|(_, v)| now.saturating_duration_since(v.at) >= self.config.presence_grace)
                .map(|(k, _)| *k)
                .collect();
            expired
                .into_iter()
                .filter_map(|k| d.remove(&k).map(|v| (k, v)))
                .collect()
        };
        for (user, d) in gone {
            self.announce(user, &d.username, false, d.contacts);
        }
    }

    /// Makes two users each other's contacts (a new conversation or a small
    /// group), telling each about the other if they are online.
    fn befriend(&self, a: UserId, b: UserId) {
        if a == b {
            return;
        }
        let a_name = {
            let mut shard = self.shard(a).lock();
            shard
                .get_mut(&a)
                .map(|e| (e.contacts.insert(b), e.username.clone()))
        };
        let b_name = {
            let mut shard = self.shard(b).lock();
            shard
                .get_mut(&b)
                .map(|e| (e.contacts.insert(a), e.username.clone()))
        };
        // Each online side that just learned of the other hears it is online.
        if let (Some((true, _)), Some((_, name))) = (&a_name, &b_name) {
            self.announce(b, name, true, [a]);
        }
        if let (Some((true, _)), Some((_, name))) = (&b_name, &a_name) {
            self.announce(a, name, true, [b]);
        }
    }

    fn unregister(&self, user: UserId, socket: u64) {
        let left = {
            let mut shard = self.shard(user).lock();
            let Some(e) = shard.get_mut(&user) else {
                return;
            };
            e.sockets.retain(|s| s.handle.id() != socket);
            if !e.sockets.is_empty() {
                return;
            }
            // Unacked pushes stay in the store; they go out at next login.
            self.metrics.users_online.fetch_sub(1, Relaxed);
            shard.remove(&user)
        };
        if let Some(e) = left {
            self.departed.lock().insert(
                user,
                Departed {
                    at: Instant::now(),
                    username: e.username,
                    contacts: e.contacts,
                },
            );
        }
    }

    /// Tracks a page of backlog for a syncing socket and returns the frames
    /// to send it (every message, even ones another tab already has).
    pub fn backlog(&self, user: UserId, msgs: &[StoredMessage]) -> Vec<Utf8Bytes> {
        let due = Instant::now() + self.config.ack_timeout;
        let frames: Vec<Utf8Bytes> = msgs.iter().map(|m| encode(&m.push_frame())).collect();
        let mut shard = self.shard(user).lock();
        if let Some(e) = shard.get_mut(&user) {
            for (m, f) in msgs.iter().zip(&frames) {
                e.track(m, f, due);
            }
        }
        frames
    }

    /// Ends a socket's backlog sync: queues the live pushes that arrived
    /// meanwhile and are newer than `last` (the newest backlog message),
    /// and makes the socket live. Done under the lock so that no later push
    /// can overtake the buffered ones.
    pub fn finish_sync(&self, user: UserId, socket: u64, last: Option<MsgId>) -> SyncEnd {
        let mut shard = self.shard(user).lock();
        let Some(s) = shard
            .get_mut(&user)
            .and_then(|e| e.sockets.iter_mut().find(|s| s.handle.id() == socket))
        else {
            return SyncEnd::Done;
        };
        let Some(buf) = s.sync.as_mut() else {
            return SyncEnd::Done;
        };
        if buf.overflow {
            *buf = SyncBuffer::default();
            return SyncEnd::Reload;
        }
        let buf = s.sync.take().unwrap_or_default();
        for (id, frame) in buf.frames {
            if last.is_none_or(|l| id > l) {
                s.handle.push(frame, &self.metrics);
            }
        }
        SyncEnd::Done
    }

    /// Pushes a committed message to its recipients' sockets (the peer, or
    /// every member of the group as of the commit) and echoes it to the
    /// sender's other sockets.
    pub fn dispatch(&self, msg: &StoredMessage, origin: u64, members: Option<&[UserId]>) {
        let frame = encode(&msg.push_frame());
        match (msg.to, members) {
            (Target::Group(_), Some(members)) => self.deliver(members, msg, &frame),
            (Target::User(to), _) => self.deliver(&[to], msg, &frame),
            (Target::Group(_), None) => {}
        }
        self.echo(msg.from, origin, &frame);
    }

    /// Tracks and pushes `msg` to each online user in `users` (the sender
    /// excluded), locking each shard once.
    fn deliver(&self, users: &[UserId], msg: &StoredMessage, frame: &Utf8Bytes) {
        let due = Instant::now() + self.config.ack_timeout;
        let mut targets = Vec::new();
        let mut delivered = 0u64;
        let users = users.iter().copied().filter(|u| *u != msg.from);
        self.each_shard(users, |shard, users| {
            for u in users {
                let Some(e) = shard.get_mut(u) else {
                    continue; // offline: the message waits in the store
                };
                if !e.track(msg, frame, due) {
                    continue;
                }
                delivered += 1;
                for s in e.sockets.iter_mut() {
                    match s.sync.as_mut() {
                        None => targets.push(s.handle.clone()),
                        Some(buf) if buf.frames.len() >= SYNC_BUFFER => {
                            buf.overflow = true;
                            buf.frames.clear();
                        }
                        Some(buf) if !buf.overflow => buf.frames.push((msg.msg_id, frame.clone())),
                        Some(_) => {}
                    }
                }
            }
        });
        self.metrics
            .messages_out_total
            .fetch_add(delivered, Relaxed);
        for h in targets {
            h.push(frame.clone(), &self.metrics);
        }
    }

    /// Calls `f` once per shard that holds any of `users`, with that shard
    /// locked and the users that live in it: a fan-out to thousands of users
    /// takes each lock once, and a single user costs one small allocation.
    fn each_shard(
        &self,
        users: impl Iterator<Item = UserId>,
        mut f: impl FnMut(&mut HashMap<UserId, UserEntry>, &[UserId]),
    ) {
        let mut users: Vec<UserId> = users.collect();
        users.sort_unstable_by_key(|u| Self::shard_index(*u));
        for run in users.chunk_by(|a, b| Self::shard_index(*a) == Self::shard_index(*b)) {
            let mut shard = self.shards[Self::shard_index(run[0])].lock();
            f(&mut shard, run);
        }
    }

    /// Queues `frame` to every socket of each user in `users`, locking each
    /// shard once and queueing after the locks are released.
    fn to_users(&self, users: &[UserId], frame: &Utf8Bytes, mode: Mode) {
        let mut targets: Vec<(SocketHandle, bool)> = Vec::new();
        self.each_shard(users.iter().copied(), |shard, users| {
            for u in users {
                if let Some(e) = shard.get(u) {
                    targets.extend(
                        e.sockets
                            .iter()
                            .map(|s| (s.handle.clone(), s.sync.is_none())),
                    );
                }
            }
        });
        for (h, live) in targets {
            if live && mode == Mode::Push {
                h.push(frame.clone(), &self.metrics);
            } else {
                h.offer(frame.clone(), &self.metrics);
            }
        }
    }

    /// Relays an ephemeral frame (typing) to users; dropped where a queue
    /// is full.
    pub fn offer_to_users(&self, users: &[UserId], frame: &Utf8Bytes) {
        self.to_users(users, frame, Mode::Offer);
    }

    fn echo(&self, user: UserId, except: u64, frame: &Utf8Bytes) {
        let targets: Vec<SocketHandle> = {
            let shard = self.shard(user).lock();
            match shard.get(&user) {
                Some(e) => e
                    .live_handles()
                    .into_iter()
                    .filter(|h| h.id() != except)
                    .collect(),
                None => return,
            }
        };
        for h in targets {
            h.push(frame.clone(), &self.metrics);
        }
    }

    /// Queues a frame to every socket of a user (receipts, notices).
    /// Syncing sockets get it only if there is room right now.
    pub fn send_to_user(&self, user: UserId, frame: &Utf8Bytes) {
        self.to_users(&[user], frame, Mode::Push);
    }

    /// Records an ack from `user`.
    pub fn ack(&self, user: UserId, msg_id: MsgId) -> AckOutcome {
        let mut shard = self.shard(user).lock();
        let Some(e) = shard.get_mut(&user) else {
            return AckOutcome::Unknown;
        };
        let Some((conv, seq)) = e.by_msg.remove(&msg_id) else {
            return if e.recent_acks.contains(&msg_id) {
                AckOutcome::Repeat
            } else {
                AckOutcome::Unknown
            };
        };
        if e.recent_acks.len() >= RECENT_ACKS {
            e.recent_acks.pop_front();
        }
        e.recent_acks.push_back(msg_id);
        let cs = e
            .convs
            .get_mut(&conv)
            .expect("tracked pushes have a conversation");
        let pending = cs
            .outstanding
            .remove(&seq)
            .expect("by_msg and outstanding agree");
        let floor = match cs.outstanding.keys().next() {
            Some(&min) => min - 1,
            None => cs.dispatched_max,
        };
        let cursor = (floor > cs.cursor).then(|| {
            cs.cursor = floor;
            floor
        });
        AckOutcome::Acked {
            sender: pending.from,
            receipt: pending.receipt,
            conv,
            cursor,
        }
    }

    /// Re-pushes every push whose ack is overdue, with exponential backoff.
    /// Runs from a timer; each socket gets at most `retry_budget` per round
    /// and only if its queue has room, so retries never close a socket.
    pub fn retry_due(&self, now: Instant) {
        let mut work: Vec<(Vec<SocketHandle>, Vec<Utf8Bytes>)> = Vec::new();
        for shard in self.shards.iter() {
            {
                let mut shard = shard.lock();
                for e in shard.values_mut() {
                    if e.next_due.is_none_or(|d| d > now) {
                        continue;
                    }
                    let targets = e.live_handles();
                    if targets.is_empty() {
                        continue;
                    }
                    let mut frames = Vec::new();
                    let mut next_due: Option<Instant> = None;
                    for cs in e.convs.values_mut() {
                        for p in cs.outstanding.values_mut() {
                            if p.due <= now && frames.len() < self.config.retry_budget {
                                p.attempts += 1;
                                let backoff = self
                                    .config
                                    .ack_timeout
                                    .saturating_mul(1 << p.attempts.min(16))
                                    .min(self.config.max_retry_interval);
                                p.due = now + backoff;
                                frames.push(p.frame.clone());
                                tracing::debug!(msg = %p.msg_id, attempt = p.attempts, "retrying push");
                            }
                            next_due = Some(next_due.map_or(p.due, |d| d.min(p.due)));
                        }
                    }
                    e.next_due = next_due;
                    if !frames.is_empty() {
                        work.push((targets, frames));
                    }
                }
            }
            for (targets, frames) in work.drain(..) {
                self.metrics
                    .retries_total
                    .fetch_add(frames.len() as u64, Relaxed);
                for h in &targets {
                    for f in &frames {
                        h.offer(f.clone(), &self.metrics);
                    }
                }
            }
        }
    }

    /// Users with at least one logged-in socket, sorted by username.
    pub fn online(&self) -> Vec<UserRef> {
        let mut users: Vec<UserRef> = self
            .shards
            .iter()
            .flat_map(|s| {
                s.lock()
                    .iter()
                    .map(|(id, e)| UserRef {
                        id: *id,
                        username: e.username.to_string(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        users.sort_by_key(|u| u.username.to_lowercase());
        users
    }

    /// Closes the user's sockets that logged in with `token`.
    pub fn kick_token(&self, user: UserId, token: &TokenHash, code: u16) {
        let targets: Vec<SocketHandle> = {
            let shard = self.shard(user).lock();
            shard
                .get(&user)
                .map(|e| {
                    e.sockets
                        .iter()
                        .filter(|s| &s.token == token)
                        .map(|s| s.handle.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        for h in targets {
            h.kill(code);
        }
    }

    /// Closes every logged-in socket (shutdown).
    pub fn close_all(&self, code: u16) {
        for shard in self.shards.iter() {
            let handles: Vec<SocketHandle> = shard
                .lock()
                .values()
                .flat_map(|e| e.sockets.iter().map(|s| s.handle.clone()))
                .collect();
            for h in handles {
                h.kill(code);
            }
        }
    }
}

impl CommitSink for Hub {
    fn committed(&self, batch: Vec<Committed>) {
        let m = &self.metrics;
        for c in batch {
            match c {
                Committed::Chat {
                    msg,
                    origin,
                    slot,
                    members,
                } => {
                    m.messages_in_total.fetch_add(1, Relaxed);
                    if let (Target::User(to), 1) = (msg.to, msg.seq) {
                        // A new conversation: the two are contacts from now
                        // on. Before the 81, so that whatever the sender
                        // does once it has the answer finds them so.
                        self.befriend(msg.from, to);
                    }
                    let resp = ServerFrame::ChatResp {
                        msg_id: msg.msg_id,
                        client_msg_id: msg.client_msg_id.clone(),
                        ts: msg.ts,
                        seq: msg.seq,
                    };
                    origin.push(encode(&resp), m);
                    drop(slot);
                    self.dispatch(&msg, origin.id(), members.as_ref().map(|m| m.as_slice()));
                }
                Committed::Duplicate {
                    msg_id,
                    ts,
                    seq,
                    client_msg_id,
                    origin,
                    slot,
                } => {
                    m.messages_deduplicated_total.fetch_add(1, Relaxed);
                    let resp = ServerFrame::ChatResp {
                        msg_id,
                        client_msg_id,
                        ts,
                        seq,
                    };
                    origin.push(encode(&resp), m);
                    drop(slot);
                }
                Committed::Rejected {
                    error,
                    client_msg_id,
                    origin,
                    slot,
                } => {
                    m.errors_total.fetch_add(1, Relaxed);
                    let frame = ServerFrame::Error(ErrorFrame {
                        code: error.code(),
                        message: error.public_message(),
                        req_type: Some(shared::frame_type::CHAT.to_string()),
                        client_msg_id,
                        msg_id: None,
                    });
                    origin.push(encode(&frame), m);
                    drop(slot);
                }
                Committed::Group(change) => self.group_changed(change),
                Committed::Read(moved) => self.read_moved(moved),
                Committed::ReadRejected { error, origin } => {
                    m.errors_total.fetch_add(1, Relaxed);
                    let frame = ServerFrame::Error(ErrorFrame {
                        code: error.code(),
                        message: error.public_message(),
                        req_type: Some(shared::frame_type::READ.to_string()),
                        client_msg_id: None,
                        msg_id: None,
                    });
                    origin.push(encode(&frame), m);
                }
            }
        }
    }
}

impl Hub {
    /// Announces a group change. Small groups hear every event; in big
    /// ones, membership events reach only the people concerned (the
    /// member, whoever acted, the owner), renames reach everyone.
    fn group_changed(&self, change: GroupChange) {
        let small = change.members.len() <= SMALL_GROUP;
        for e in &change.events {
            let frame = encode(&ServerFrame::GroupEvent(e.clone()));
            let mut to: Vec<UserId> = change.former.clone();
            if small
                || matches!(
                    e.kind,
                    GroupEventKind::Renamed | GroupEventKind::OwnerChanged
                )
            {
                to.extend(change.members.iter().copied());
            } else {
                to.extend(e.user_id.iter().chain(e.by_id.iter()).copied());
            }
            to.sort_unstable();
            to.dedup();
            self.to_users(&to, &frame, Mode::Push);
            if small {
                if let (
                    GroupEventKind::Created
                    | GroupEventKind::MemberAdded
                    | GroupEventKind::MemberJoined,
                    Some(newcomer),
                ) = (e.kind, e.user_id)
                {
                    for &m in change.members.iter() {
                        self.befriend(newcomer, m);
                    }
                }
            }
        }
    }

    /// Tells the senders of newly read messages, and the reader's other
    /// tabs, how far the reader has read.
    fn read_moved(&self, r: ReadMoved) {
        let ts = now_ms();
        match r.to {
            Target::User(peer) => {
                let to_peer = encode(&ServerFrame::ReadReceipt {
                    prev_seq: None,
                    by_id: r.reader,
                    to: Target::User(peer),
                    seq: r.seq,
                    ts,
                });
                if r.senders.contains(&peer) {
                    self.send_to_user(peer, &to_peer);
                }
                // The reader's own tabs: "you read the conversation with
                // `peer` up to seq" (their unread counts follow).
                self.send_to_user(r.reader, &to_peer);
            }
            Target::Group(_) => {
                let frame = encode(&ServerFrame::ReadReceipt {
                    prev_seq: None,
                    by_id: r.reader,
                    to: r.to,
                    seq: r.seq,
                    ts,
                });
                let mut to = r.senders;
                to.push(r.reader);
                self.to_users(&to, &frame, Mode::Push);
            }
        }
    }
}
