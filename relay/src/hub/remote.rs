//! The hub in a cluster: what the other relays must hear from this one,
//! and what they say.
//!
//! Every relay's hub holds its own sockets only. What reaches users
//! (stored chats, receipts, read markers, typing, group events, presence,
//! logouts) is applied here and also handed, as a [`Remote`], to the
//! cluster link ([`Peers`], `crate::cluster`), which publishes it once to
//! every other relay; they apply it to their own sockets with
//! [`Hub::apply_remote`], never publishing it again. A single box has no
//! link and publishes nothing.
//!
//! The link is a fast path and may lose events (Redis pub/sub is
//! at-most-once): chats are recovered by the delivery rule's gap fetch and
//! the cluster's catch-ups ([`Hub::tail_gaps`]); the rest is ephemeral or
//! re-read at the next login.
//!
//! Presence across relays: each relay tells the others when a user's first
//! socket on it opens and, after the grace period, when the last one
//! closed. A user is online while any relay has them ([`Hub::is_online`]);
//! contacts hear a change only when it changes that.

use super::delivery::Gap;
use super::{Hub, Mode};
use crate::store::{ConvId, Placed, Position, StoredMessage};
use serde::{Deserialize, Serialize};
use shared::{ChatMessage, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// Something the other relays of a cluster apply to their own sockets.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum Remote {
    /// A stored chat: push it to the recipients and echo it to the
    /// sender's sockets there.
    Chat {
        /// Its conversation.
        conv: ConvId,
        /// The message.
        msg: ChatMessage,
        /// For a group message, the members when it was stored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        members: Option<Vec<UserId>>,
    },
    /// A frame for users' sockets (receipts, read markers, typing).
    Frame {
        /// Who.
        users: Vec<UserId>,
        /// The encoded frame.
        frame: String,
        /// Only where a queue has room (ephemeral frames).
        #[serde(default)]
        offer: bool,
    },
    /// A group change, as the sockets see it.
    Group(GroupPlan),
    /// Close the user's sockets that logged in with this token.
    Kick {
        /// Whose.
        user: UserId,
        /// The token's hash, hex.
        token: String,
        /// The close code.
        code: u16,
    },
    /// A user's first socket on the sending relay opened, or (after the
    /// grace period) its last one closed.
    Presence {
        /// Who.
        user: UserId,
        /// Their name.
        username: String,
        /// Online or gone.
        online: bool,
        /// Who hears about it.
        contacts: Vec<UserId>,
    },
    /// The support desk changed: look at it again.
    Desk,
}

/// A group change's effect on sockets, computed once where it was made.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GroupPlan {
    /// The group's conversation.
    pub conv: ConvId,
    /// A newcomer and the `seq` they joined at.
    #[serde(default)]
    pub joined: Option<(UserId, u64)>,
    /// Members who left or were removed.
    #[serde(default)]
    pub former: Vec<UserId>,
    /// Event frames and who gets each.
    pub sends: Vec<(Vec<UserId>, String)>,
    /// Pairs who became contacts.
    #[serde(default)]
    pub friends: Vec<(UserId, UserId)>,
}

/// The cluster link, as the hub sees it.
pub trait Peers: Send + Sync {
    /// Publishes `event` to the other relays; never blocks (an event that
    /// cannot be queued is dropped and counted).
    fn publish(&self, event: Remote);
    /// The link is reachable but far behind: new chats should wait.
    fn congested(&self) -> bool;
    /// Notified whenever the link has taken events off its queue (or given
    /// up on them), so what waits in [`Hub::publish_room`] looks again.
    fn drained(&self) -> &tokio::sync::Notify;
}

/// A user online on other relays.
pub(super) struct RemoteUser {
    pub username: Arc<str>,
    /// The relays that have them.
    pub nodes: HashSet<Arc<str>>,
    /// Their contacts, as the relay that has them last said.
    pub contacts: Vec<UserId>,
}

impl Hub {
    /// Connects the hub to the cluster link (once, at start).
    pub fn link(&self, peers: Arc<dyn Peers>) {
        let _ = self.peers.set(peers);
    }

    pub(super) fn publish(&self, event: impl FnOnce() -> Remote) {
        if let Some(p) = self.peers.get() {
            p.publish(event());
        }
    }

    /// Waits while the cluster link is too far behind to take what a new
    /// chat would make it publish: back-pressure on the sockets that send
    /// chats, as a full disk queue is on a single box, instead of events
    /// dropped and recovered late from the database. Returns at once on a
    /// single box, when the link keeps up, or while Redis is unreachable
    /// (nothing waits on a link that cannot drain; the catch-up recovers).
    pub async fn publish_room(&self) {
        let Some(p) = self.peers.get() else { return };
        if !p.congested() {
            return;
        }
        self.metrics
            .cluster_backpressure_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        loop {
            // Registered before the check: a drain between the two is not
            // missed (`notify_waiters` reaches futures already created).
            let drained = p.drained().notified();
            if !p.congested() {
                return;
            }
            drained.await;
        }
    }

    /// Whether another relay has the user online.
    pub(super) fn remote_online(&self, user: UserId) -> bool {
        self.remote.lock().contains_key(&user)
    }

    /// The name of a user another relay has online.
    pub(super) fn remote_name(&self, user: UserId) -> Option<Arc<str>> {
        self.remote.lock().get(&user).map(|r| r.username.clone())
    }

    /// Applies what another relay (`node`) published.
    pub fn apply_remote(&self, node: &Arc<str>, event: Remote) {
        match event {
            Remote::Chat { conv, msg, members } => {
                let placed = Placed {
                    msg: Arc::new(StoredMessage::from_wire(conv, msg)),
                    members: members.map(Arc::new),
                    batch: 1,
                };
                self.new_pair(&placed);
                self.fan_out_here(&placed, None);
            }
            Remote::Frame {
                users,
                frame,
                offer,
            } => {
                let mode = if offer { Mode::Offer } else { Mode::Push };
                self.to_users(&users, &frame.into(), mode);
            }
            Remote::Group(plan) => self.apply_group_plan(&plan),
            Remote::Kick { user, token, code } => {
                if let Some(token) = crate::auth::token_hash_from_hex(&token) {
                    self.kick_token_here(user, &token, code);
                }
            }
            Remote::Presence {
                user,
                username,
                online,
                contacts,
            } => self.remote_presence(node, user, username, online, contacts),
            Remote::Desk => self.desk_changed.notify_one(),
        }
    }

    fn remote_presence(
        &self,
        node: &Arc<str>,
        user: UserId,
        username: String,
        online: bool,
        contacts: Vec<UserId>,
    ) {
        let was = self.is_online(user);
        {
            let mut remote = self.remote.lock();
            if online {
                let r = remote.entry(user).or_insert_with(|| RemoteUser {
                    username: username.as_str().into(),
                    nodes: HashSet::new(),
                    contacts: Vec::new(),
                });
                r.nodes.insert(node.clone());
                r.contacts = contacts.clone();
            } else if let Some(r) = remote.get_mut(&user) {
                r.nodes.remove(node);
                if r.nodes.is_empty() {
                    remote.remove(&user);
                }
            }
        }
        if was != self.is_online(user) {
            self.announce(user, &username, online, contacts);
        }
    }

    /// Users another relay had online (a snapshot read at start or after a
    /// reconnect of the link): presence without announcements.
    pub fn remote_snapshot(&self, node: &Arc<str>, users: Vec<(UserId, String, Vec<UserId>)>) {
        let mut remote = self.remote.lock();
        for (user, username, contacts) in users {
            let r = remote.entry(user).or_insert_with(|| RemoteUser {
                username: username.as_str().into(),
                nodes: HashSet::new(),
                contacts: Vec::new(),
            });
            r.nodes.insert(node.clone());
            r.contacts = contacts;
        }
    }

    /// A relay is gone (its liveness key expired): its users are offline
    /// unless another relay has them; their contacts here hear it. (The
    /// contacts a relay announced at login may be stale, so the users here
    /// who count a gone user among their contacts are found too.)
    pub fn node_gone(&self, node: &str) {
        let gone: HashMap<UserId, (Arc<str>, Vec<UserId>)> = {
            let mut remote = self.remote.lock();
            let mut gone = HashMap::new();
            remote.retain(|user, r| {
                r.nodes.retain(|n| &**n != node);
                if r.nodes.is_empty() {
                    gone.insert(*user, (r.username.clone(), std::mem::take(&mut r.contacts)));
                    false
                } else {
                    true
                }
            });
            gone
        };
        if gone.is_empty() {
            return;
        }
        let mut tell: HashMap<UserId, Vec<UserId>> = HashMap::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (local, e) in shard.iter() {
                for c in e.contacts.iter().filter(|c| gone.contains_key(c)) {
                    tell.entry(*c).or_default().push(*local);
                }
            }
        }
        for (user, (username, mut contacts)) in gone {
            if self.is_online(user) {
                continue;
            }
            contacts.extend(tell.remove(&user).unwrap_or_default());
            contacts.sort_unstable();
            contacts.dedup();
            self.announce(user, &username, false, contacts);
        }
    }

    /// The relays some user here is known to be online on.
    pub fn remote_nodes(&self) -> HashSet<Arc<str>> {
        let remote = self.remote.lock();
        remote
            .values()
            .flat_map(|r| r.nodes.iter().cloned())
            .collect()
    }

    /// Users with a live socket here, with their names and contacts (what
    /// the other relays need to know about this one).
    pub fn local_users(&self) -> Vec<(UserId, String, Vec<UserId>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            out.extend(shard.iter().map(|(u, e)| {
                (
                    *u,
                    e.username.to_string(),
                    e.contacts.iter().copied().collect(),
                )
            }));
        }
        out
    }

    /// Catch-up after events may have been lost (the link reconnected, a
    /// relay died between committing and publishing, a periodic check):
    /// given where the store says `user` stands (`positions`, read fresh),
    /// the ranges above what was pushed to them here, to fetch and fill
    /// like any gap ([`Hub::fill_gap`]). Conversations already being
    /// fetched are skipped.
    pub fn tail_gaps(&self, user: UserId, positions: &[Position]) -> Vec<Gap> {
        let mut gaps = Vec::new();
        let mut shard = self.shard(user).lock();
        let Some(e) = shard.get_mut(&user) else {
            return gaps;
        };
        if e.sockets.iter().any(|s| s.sync.is_some()) {
            // A socket is reading its backlog: it will see all of it.
            return gaps;
        }
        for p in positions {
            let cs = e.convs.entry(p.conv).or_default();
            if cs.through.is_none() {
                cs.install(p.delivered, Instant::now());
            }
            let through = cs.through.unwrap_or(p.delivered);
            let top = cs.outstanding.keys().next_back().copied().unwrap_or(0);
            let seen = through.max(cs.ahead.last().copied().unwrap_or(0)).max(top);
            if p.last > seen && !cs.fetching {
                cs.fetching = true;
                gaps.push(Gap {
                    user,
                    conv: p.conv,
                    after: through,
                    before: p.last + 1,
                });
            }
        }
        gaps
    }

    pub(super) fn apply_group_plan(&self, plan: &GroupPlan) {
        if let Some((user, seq)) = plan.joined {
            self.set_base(user, plan.conv, seq);
        }
        for &gone in &plan.former {
            self.forget(gone, plan.conv);
        }
        for (to, frame) in &plan.sends {
            self.to_users(to, &frame.as_str().into(), Mode::Push);
        }
        for &(a, b) in &plan.friends {
            self.befriend(a, b);
        }
    }

    /// Names of users online anywhere (here, leaving, or on another relay),
    /// for `users` not found here.
    pub(super) fn remote_names(&self, users: &[UserId]) -> HashMap<UserId, Arc<str>> {
        let remote = self.remote.lock();
        users
            .iter()
            .filter_map(|u| remote.get(u).map(|r| (*u, r.username.clone())))
            .collect()
    }
}
