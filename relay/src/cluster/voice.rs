//! Voice rooms across the relays of a cluster (issue 14).
//!
//! A room's roster lives in Redis (`voice_redis.rs`): every join, leave,
//! mute and eviction is one Lua script that decides (capacity, across
//! relays at once), changes the room, takes the next change number and
//! publishes the room on the control channel. Every relay applies what the
//! control channel says (`voice_loops.rs`): it pushes the 125 to its own
//! online members of the group and drops its participants the room no
//! longer has (evicted elsewhere, or taken out as part of a relay that was
//! thought gone). This relay's `crate::voice::Voice` keeps only its own
//! participants: their audio lanes, and their mute, checked here as on a
//! single box.
//!
//! Audio: a speaker's frame goes to the participants here directly, and,
//! if another relay has participants in the room, is published once on the
//! room's audio channel, in the listeners' format (the speaker's id
//! inserted), prefixed by this relay's name; each relay subscribes to the
//! audio channels of the rooms it has participants in and forwards what
//! the others publish to them as it is.
//!
//! Voice has Redis connections and a thread of its own (`cluster-voice`):
//! a command connection for the sessions' scripts, a publisher and a
//! subscriber, none shared with chat events, so a burst of audio never
//! queues chat behind it. The publisher's queue is bounded and drops
//! (counted in `ferrochat_cluster_voice_dropped_total`) rather than waits:
//! audio never applies back-pressure to anyone.

use super::voice_redis::{field, room_of, Reply, Script, NODES};
use super::{Shared, COMMAND_TIMEOUT};
use crate::voice::{Participant, Voice};
use bytes::Bytes;
use shared::{GroupId, UserId, VoiceParticipant};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};
use tokio::time::timeout;

/// Audio frames waiting for the voice publisher, at most; past it new
/// frames are dropped (1,000 frames is 20 ms of 50 speakers, 20 times).
pub(super) const AUDIO_QUEUE: usize = 1024;
/// Leaves that could not reach Redis, kept for the next round, at most.
const ORPHANS: usize = 10_000;

/// Why a voice operation failed in a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoiceError {
    /// The room is at capacity (counted across every relay).
    Full,
    /// The socket is not in that room.
    NotInRoom,
    /// Redis cannot be reached now (or the voice link is not up yet).
    Unavailable,
}

/// A join's answer: the cluster-wide room.
#[derive(Debug)]
pub struct Joined {
    /// Whether the socket was not in the room before.
    pub changed: bool,
    /// Everyone in the room, on every relay, in joining order.
    pub roster: Vec<VoiceParticipant>,
    /// The change number (121 `seq`).
    pub seq: u64,
}

/// What this relay knows of a room it has participants in.
#[derive(Debug, Default)]
pub(super) struct View {
    /// The newest change applied.
    pub seq: u64,
    /// Whether another relay has participants (audio is published).
    pub elsewhere: bool,
    /// This relay's sockets in the room, with the change number of their
    /// join: a room read at a later change without them means they were
    /// taken out.
    pub joined: HashMap<u64, u64>,
}

/// The state the voice tasks and the sessions share.
pub(super) struct VShared {
    pub node: Arc<str>,
    pub cluster: Arc<Shared>,
    pub voice: Arc<Voice>,
    /// The relay's own runtime (announcements run there).
    pub main: tokio::runtime::Handle,
    /// The sessions' command connection (made on first use).
    pub conn: parking_lot::Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// Subscribed to the control channel.
    pub subscribed: AtomicBool,
    /// This relay's entries left from a previous run were removed.
    pub purged: AtomicBool,
    pub views: parking_lot::Mutex<HashMap<GroupId, View>>,
    /// The rooms with participants here changed: the subscriber follows
    /// (audio channels).
    pub rooms_changed: Notify,
    /// Asks the voice tick to run now (after a resubscription).
    pub resync: Notify,
    /// Leaves not yet made in Redis: (group, field).
    pub orphans: parking_lot::Mutex<Vec<(GroupId, String)>>,
}

impl VShared {
    /// Whether joins can be decided now.
    pub fn ready(&self) -> bool {
        self.subscribed.load(Acquire)
            && self.purged.load(Acquire)
            && self.cluster.reachable.load(Acquire)
    }

    /// Forgets a socket of this relay's (it left the room here).
    pub fn forget(&self, group: GroupId, socket: u64) {
        let mut views = self.views.lock();
        if let Some(v) = views.get_mut(&group) {
            v.joined.remove(&socket);
            if v.joined.is_empty() {
                views.remove(&group);
            }
        }
    }

    /// Takes a socket out of the room here; returns whether it was in.
    pub fn leave_here(&self, group: GroupId, socket: u64) -> bool {
        let was = self.voice.leave(group, socket).is_some();
        if was {
            self.cluster
                .metrics
                .voice_participants
                .fetch_sub(1, Relaxed);
            self.rooms_changed.notify_one();
        }
        self.forget(group, socket);
        was
    }
}

/// The cluster's voice rooms, as the sessions use them.
pub struct VoiceLink {
    pub(super) s: Arc<VShared>,
    pub(super) tx: mpsc::Sender<(GroupId, Bytes)>,
}

impl VoiceLink {
    /// Whether the voice link is up (subscribed, Redis reachable).
    pub fn ready(&self) -> bool {
        self.s.ready()
    }

    async fn eval(&self, script: Script, group: GroupId, args: &[String]) -> Option<Reply> {
        let conn = self.s.conn.lock().clone();
        let mut conn = match conn {
            Some(c) => c,
            None => {
                let c = super::link::connect(&self.s.cluster.client).await?;
                *self.s.conn.lock() = Some(c.clone());
                c
            }
        };
        let cmd = script.cmd(group, args);
        match timeout(COMMAND_TIMEOUT, cmd.query_async::<Reply>(&mut conn)).await {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, ?script, "voice: Redis script failed");
                *self.s.conn.lock() = None;
                None
            }
            Err(_) => {
                tracing::warn!(?script, "voice: Redis script timed out");
                *self.s.conn.lock() = None;
                None
            }
        }
    }

    /// Joins `p` to `group`'s room, if the room (on every relay together)
    /// has fewer than `capacity` participants.
    pub async fn join(
        &self,
        group: GroupId,
        p: Participant,
        capacity: u32,
    ) -> Result<Joined, VoiceError> {
        if !self.s.ready() {
            return Err(VoiceError::Unavailable);
        }
        let me = &*self.s.node;
        let args = [
            field(me, p.socket),
            p.user.0.to_string(),
            p.username.to_string(),
            capacity.to_string(),
            me.to_string(),
            NODES.to_string(),
        ];
        let reply = self
            .eval(Script::Join, group, &args)
            .await
            .ok_or(VoiceError::Unavailable)?;
        if reply.0 < 0 {
            return Err(VoiceError::Full);
        }
        let room = room_of(group, &reply);
        let order = room
            .entries
            .iter()
            .find(|e| e.node == me && e.socket == p.socket)
            .map_or(room.seq, |e| e.order);
        let socket = p.socket;
        {
            // Before the local join: a control message applied meanwhile
            // must know this socket joined at `order`.
            // The change number is left to the control message of this
            // join (applied here too, it announces the join here).
            let mut views = self.s.views.lock();
            let v = views.entry(group).or_default();
            v.joined.insert(socket, order);
            if room.seq > v.seq {
                v.elsewhere = room.elsewhere(me);
            }
        }
        let changed = matches!(self.s.voice.join_with(group, p, u32::MAX), Ok((_, true)));
        if changed {
            self.s
                .cluster
                .metrics
                .voice_participants
                .fetch_add(1, Relaxed);
            self.s.rooms_changed.notify_one();
        }
        Ok(Joined {
            changed,
            roster: room.roster(),
            seq: room.seq,
        })
    }

    /// A room's participants and the change number they are current at,
    /// read from Redis in one script (VOICE_QUERY).
    pub async fn roster(&self, group: GroupId) -> Result<(Vec<VoiceParticipant>, u64), VoiceError> {
        if !self.s.ready() {
            return Err(VoiceError::Unavailable);
        }
        let reply = self
            .eval(Script::Read, group, &[])
            .await
            .ok_or(VoiceError::Unavailable)?;
        let room = room_of(group, &reply);
        Ok((room.roster(), room.seq))
    }

    /// Takes a socket out of a room: here at once (its audio stops), then
    /// in Redis (the members everywhere get a 125). A leave Redis cannot
    /// take now is made by the next voice round.
    pub async fn leave(&self, group: GroupId, socket: u64) -> Result<(), VoiceError> {
        let here = self.s.leave_here(group, socket);
        let f = field(&self.s.node, socket);
        let reply = if self.s.ready() {
            self.eval(Script::Leave, group, std::slice::from_ref(&f))
                .await
        } else {
            None
        };
        match reply {
            Some(r) if r.0 == 1 => Ok(()),
            Some(_) if here => Ok(()),
            Some(_) => Err(VoiceError::NotInRoom),
            None => {
                if here {
                    let mut orphans = self.s.orphans.lock();
                    if orphans.len() < ORPHANS {
                        orphans.push((group, f));
                    }
                    Ok(())
                } else {
                    Err(VoiceError::Unavailable)
                }
            }
        }
    }

    /// Mutes or unmutes a socket: here at once (its audio is refused from
    /// now on), then in Redis (the 125).
    pub async fn mute(&self, group: GroupId, socket: u64, muted: bool) -> Result<(), VoiceError> {
        if self.s.voice.mute(group, socket, muted).is_err() {
            return Err(VoiceError::NotInRoom);
        }
        if !self.s.ready() {
            return Err(VoiceError::Unavailable);
        }
        let args = [
            field(&self.s.node, socket),
            if muted { "1" } else { "0" }.to_string(),
        ];
        match self.eval(Script::Mute, group, &args).await {
            Some(_) => Ok(()),
            None => Err(VoiceError::Unavailable),
        }
    }

    /// Takes every socket of `user` out of a room, on every relay (they
    /// are no longer a member of the group).
    pub async fn evict(&self, group: GroupId, user: UserId) {
        for (socket, u) in self.s.voice.sockets(group) {
            if u == user {
                self.s.leave_here(group, socket);
            }
        }
        if self
            .eval(Script::Evict, group, &[user.0.to_string()])
            .await
            .is_none()
        {
            tracing::warn!(%group, %user, "voice: could not evict from the room in Redis");
        }
    }

    /// Publishes a speaker's frame (listeners' format) for the other relays,
    /// if any has participants in the room. Never waits: a full queue drops
    /// the frame.
    pub fn publish_audio(&self, group: GroupId, frame: &[u8]) {
        let elsewhere = self.s.views.lock().get(&group).is_some_and(|v| v.elsewhere);
        if !elsewhere {
            return;
        }
        let node = self.s.node.as_bytes();
        let mut payload = Vec::with_capacity(1 + node.len() + frame.len());
        payload.push(node.len() as u8);
        payload.extend_from_slice(node);
        payload.extend_from_slice(frame);
        if self.tx.try_send((group, Bytes::from(payload))).is_err() {
            self.s
                .cluster
                .metrics
                .cluster_voice_dropped_total
                .fetch_add(1, Relaxed);
        }
    }
}
