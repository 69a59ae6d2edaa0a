//! The hub: who is online, on which sockets, and which pushes each of them
//! still owes an ack for.
//!
//! - [`registry`](self::registry): sockets logging in and out, kicks,
//!   online contacts;
//! - [`delivery`](self::delivery): the per-(user, conversation) delivery
//!   rule, acks, retries, backlog sync, gaps;
//! - [`fanout`](self::fanout): stored chats, group changes and read markers
//!   going out to sockets;
//! - [`presence`](self::presence): who hears that a contact came or went;
//! - [`remote`](self::remote): in a cluster, what the other relays hear
//!   from this one and what they say.
//!
//! State is sharded by user id behind short-lived `parking_lot` mutexes. No
//! lock is ever held across an `.await`, and frames are queued to sockets
//! after the lock is released (handles are cloned out first), so one user's
//! slow socket never holds up anyone else.

mod conv;
mod delivery;
mod dispatch;
mod fanout;
mod presence;
mod registry;
mod remote;
#[cfg(test)]
mod remote_tests;
#[cfg(test)]
mod tests;

pub use delivery::{AckOutcome, Gap, SyncEnd};
pub use registry::Registration;
pub use remote::{GroupPlan, Peers, Remote};

use crate::auth::TokenHash;
use crate::metrics::Metrics;
use crate::socket::SocketHandle;
use conv::ConvState;
use parking_lot::Mutex;
use presence::Departed;
use shared::{MsgId, UserId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Utf8Bytes;

const SHARDS: usize = 64;

/// Groups up to this size are "small": their members are each other's
/// contacts (presence), see each other type, and hear every membership
/// change. In bigger groups those would cost O(members²) frames (every
/// login, keystroke or join reaching thousands of sockets), so they are
/// pulled instead (`GET /api/groups/{id}/members` shows who is online).
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
    /// How long pushes wait behind a missing `seq` before the gap is
    /// fetched from the store.
    pub gap_wait: Duration,
}

/// One logged-in socket.
struct Sock {
    handle: SocketHandle,
    token: TokenHash,
    /// `Some` while the socket is receiving its backlog: live pushes wait
    /// here so they cannot overtake older messages.
    sync: Option<delivery::SyncBuffer>,
}

/// An online user.
struct UserEntry {
    username: Arc<str>,
    sockets: Vec<Sock>,
    /// Who hears this user's presence (and whose presence this user hears).
    contacts: HashSet<UserId>,
    /// Delivery state per conversation.
    convs: HashMap<crate::store::ConvId, ConvState>,
    /// Where each outstanding push sits.
    by_msg: HashMap<MsgId, (crate::store::ConvId, u64)>,
    /// Acks remembered to answer repeats without the database.
    recent_acks: VecDeque<MsgId>,
    /// The earliest retry due.
    next_due: Option<Instant>,
    /// Conversations with pushes held behind a gap.
    gapped: HashSet<crate::store::ConvId>,
}

impl UserEntry {
    fn new(username: &str) -> UserEntry {
        UserEntry {
            username: username.into(),
            sockets: Vec::with_capacity(1),
            contacts: HashSet::new(),
            convs: HashMap::new(),
            by_msg: HashMap::new(),
            recent_acks: VecDeque::new(),
            next_due: None,
            gapped: HashSet::new(),
        }
    }

    fn live_handles(&self) -> Vec<SocketHandle> {
        self.sockets
            .iter()
            .filter(|s| s.sync.is_none())
            .map(|s| s.handle.clone())
            .collect()
    }
}

/// How frames reach sockets in [`Hub::to_users`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Queue to live sockets (a full queue closes the socket); to syncing
    /// sockets only if there is room.
    Push,
    /// Queue only where there is room; never closes a socket. For
    /// ephemeral frames (typing, presence).
    Offer,
}

type Shard = HashMap<UserId, UserEntry>;

/// The registry of online users and their sockets.
pub struct Hub {
    shards: Box<[Mutex<Shard>]>,
    departed: Mutex<HashMap<UserId, Departed>>,
    config: HubConfig,
    metrics: Arc<Metrics>,
    next_socket: AtomicU64,
    /// The dispatch thread, if started ([`Hub::start`]).
    dispatcher: Option<dispatch::Dispatcher>,
    /// The cluster link, if any ([`Hub::link`]).
    peers: std::sync::OnceLock<Arc<dyn Peers>>,
    /// Users online on other relays.
    remote: Mutex<HashMap<UserId, remote::RemoteUser>>,
    /// Woken when the support desk changed, here or on another relay: the
    /// desk's notices (`crate::desk`) look again.
    pub desk_changed: tokio::sync::Notify,
}

impl Hub {
    /// An empty hub that fans out inline (for tests).
    pub fn new(config: HubConfig, metrics: Arc<Metrics>) -> Hub {
        Hub {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            departed: Mutex::new(HashMap::new()),
            config,
            metrics,
            next_socket: AtomicU64::new(1),
            dispatcher: None,
            peers: std::sync::OnceLock::new(),
            remote: Mutex::new(HashMap::new()),
            desk_changed: tokio::sync::Notify::new(),
        }
    }

    /// An empty hub with its dispatch thread.
    pub fn start(config: HubConfig, metrics: Arc<Metrics>) -> std::io::Result<Arc<Hub>> {
        let mut started = Ok(());
        let hub = Arc::new_cyclic(|weak| {
            let mut hub = Hub::new(config, metrics);
            match dispatch::Dispatcher::start(weak.clone()) {
                Ok(d) => hub.dispatcher = Some(d),
                Err(e) => started = Err(e),
            }
            hub
        });
        started.map(|()| hub)
    }

    fn shard_index(user: UserId) -> usize {
        (user.0 as u64 % SHARDS as u64) as usize
    }

    fn shard(&self, user: UserId) -> &Mutex<Shard> {
        &self.shards[Self::shard_index(user)]
    }

    /// Calls `f` once per shard that holds any of `users`, with that shard
    /// locked and the users that live in it: a fan-out to thousands of users
    /// takes each lock once, and a single user costs one small allocation.
    fn each_shard(
        &self,
        users: impl Iterator<Item = UserId>,
        mut f: impl FnMut(&mut Shard, &[UserId]),
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

    /// Relays an ephemeral frame (typing) to users, here and on the other
    /// relays that have any of them; dropped where a queue is full.
    pub fn offer_to_users(&self, users: &[UserId], frame: &Utf8Bytes) {
        self.to_users(users, frame, Mode::Offer);
        if users.iter().any(|u| self.remote_online(*u)) {
            self.publish(|| Remote::Frame {
                users: users.to_vec(),
                frame: frame.to_string(),
                offer: true,
            });
        }
    }

    /// Offers an ephemeral frame to users' sockets on this relay only (each
    /// relay of a cluster announces voice-room changes to its own).
    pub fn offer_here(&self, users: &[UserId], frame: &Utf8Bytes) {
        self.to_users(users, frame, Mode::Offer);
    }

    /// Queues a frame to users' sockets on this relay only (each relay of a
    /// cluster sends the desk's notices to its own).
    pub fn push_here(&self, users: &[UserId], frame: &Utf8Bytes) {
        self.to_users(users, frame, Mode::Push);
    }

    /// The support desk changed here: this relay's notices and every
    /// other relay's look again.
    pub fn desk_touched(&self) {
        self.desk_changed.notify_one();
        self.publish(|| Remote::Desk);
    }

    /// Queues a frame to every socket of a user (receipts, notices), here
    /// and on the other relays. Syncing sockets get it only if there is
    /// room right now.
    pub fn send_to_user(&self, user: UserId, frame: &Utf8Bytes) {
        self.to_users_everywhere(&[user], frame);
    }

    /// [`Hub::to_users`] in push mode, and the same on the other relays.
    fn to_users_everywhere(&self, users: &[UserId], frame: &Utf8Bytes) {
        self.to_users(users, frame, Mode::Push);
        self.publish(|| Remote::Frame {
            users: users.to_vec(),
            frame: frame.to_string(),
            offer: false,
        });
    }
}
