//! Voice rooms (issue 14), on one relay: a room per group, whose
//! participants' audio frames are forwarded to each other and stored
//! nowhere.
//!
//! - `rooms.rs`: one room's participants, capacity and mute;
//! - this file: the registry of rooms, behind one short-held lock (never
//!   held across an await nor during fan-out: callers get cloned handles
//!   and send after it is released);
//! - `connection/voice.rs`: the frames (120/122/124, binary audio) and the
//!   per-socket caps;
//! - `cluster/voice*.rs`: in a cluster, the rooms span relays: Redis holds
//!   the cluster-wide roster and decides capacity, and this registry holds
//!   this relay's own participants only (their handles and mute).

mod rooms;

pub use rooms::{JoinError, Participant, SpeakError};

use crate::hub::{Hub, SMALL_GROUP};
use crate::socket::{encode, SocketHandle};
use crate::store::Store;
use crate::App;
use rooms::Room;
use shared::{GroupId, ServerFrame, UserId, VoiceParticipant};
use std::collections::HashMap;

/// A room's state after a change: who is in it now (for the 125 push),
/// and the users in it (for groups too large to look up every member).
#[derive(Debug)]
pub struct Change {
    /// The participant list now (empty: the call ended).
    pub roster: Vec<VoiceParticipant>,
    /// Users in the room before or after the change.
    pub users: Vec<UserId>,
    /// The change number (the 121/125 `seq`).
    pub seq: u64,
}

/// Every voice room on this relay.
#[derive(Debug)]
pub struct Voice {
    capacity: u32,
    rooms: parking_lot::Mutex<HashMap<GroupId, Room>>,
    /// Changes made so far to any room, counted under the rooms' lock: the
    /// 121/125 `seq`, so members can drop a push that arrives after a later
    /// one (announcements run after the lock is released, and may race).
    /// One counter for every room, so a room that empties and starts again
    /// keeps growing.
    changes: std::sync::atomic::AtomicU64,
}

impl Voice {
    /// No rooms yet; each takes at most `capacity` participants.
    pub fn new(capacity: u32) -> Self {
        Voice {
            capacity,
            rooms: parking_lot::Mutex::new(HashMap::new()),
            changes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The next change number; called with the rooms' lock held.
    fn next_change(&self) -> u64 {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Most participants per room.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Adds a socket to a group's room (membership is the caller's check).
    /// Returns the room after the join, and whether it changed.
    pub fn join(&self, group: GroupId, p: Participant) -> Result<(Change, bool), JoinError> {
        self.join_with(group, p, self.capacity)
    }

    /// [`Voice::join`] with another capacity (in a cluster, Redis already
    /// decided, for every relay at once: the local room takes anyone).
    pub fn join_with(
        &self,
        group: GroupId,
        p: Participant,
        capacity: u32,
    ) -> Result<(Change, bool), JoinError> {
        let mut rooms = self.rooms.lock();
        let room = rooms.entry(group).or_default();
        let joined = room.join(p, capacity);
        let change = Change {
            roster: room.roster(),
            users: room.users(),
            seq: self.next_change(),
        };
        if room.is_empty() {
            rooms.remove(&group);
        }
        joined.map(|changed| (change, changed))
    }

    /// Removes a socket from a room; None if it was not in it.
    pub fn leave(&self, group: GroupId, socket: u64) -> Option<Change> {
        let mut rooms = self.rooms.lock();
        let room = rooms.get_mut(&group)?;
        let mut users = room.users();
        if !room.leave(socket) {
            return None;
        }
        let roster = room.roster();
        if room.is_empty() {
            rooms.remove(&group);
        }
        users.dedup();
        Some(Change {
            roster,
            users,
            seq: self.next_change(),
        })
    }

    /// Removes every socket of `user` from a room (they left the group or
    /// were removed from it); None if they had none there, else the room
    /// after and how many sockets left.
    pub fn evict(&self, group: GroupId, user: UserId) -> Option<(Change, usize)> {
        let mut rooms = self.rooms.lock();
        let room = rooms.get_mut(&group)?;
        let mut users = room.users();
        let gone = room.leave_user(user);
        if gone == 0 {
            return None;
        }
        let roster = room.roster();
        if room.is_empty() {
            rooms.remove(&group);
        }
        users.dedup();
        Some((
            Change {
                roster,
                users,
                seq: self.next_change(),
            },
            gone,
        ))
    }

    /// Mutes or unmutes a socket. Err if it is not in the room; Ok(None)
    /// if nothing changed.
    pub fn mute(
        &self,
        group: GroupId,
        socket: u64,
        muted: bool,
    ) -> Result<Option<Change>, SpeakError> {
        let mut rooms = self.rooms.lock();
        let room = rooms.get_mut(&group).ok_or(SpeakError::NotInRoom)?;
        match room.mute(socket, muted) {
            None => Err(SpeakError::NotInRoom),
            Some(false) => Ok(None),
            Some(true) => Ok(Some(Change {
                roster: room.roster(),
                users: room.users(),
                seq: self.next_change(),
            })),
        }
    }

    /// Where an audio frame from `socket` to `group`'s room goes: the
    /// other participants' handles, cloned out of the lock.
    pub fn listeners(&self, group: GroupId, socket: u64) -> Result<Vec<SocketHandle>, SpeakError> {
        let rooms = self.rooms.lock();
        rooms
            .get(&group)
            .ok_or(SpeakError::NotInRoom)?
            .listeners(socket)
    }

    /// Every participant's handle in `group`'s room here (for audio from
    /// another relay), cloned out of the lock.
    pub fn handles(&self, group: GroupId) -> Vec<SocketHandle> {
        let rooms = self.rooms.lock();
        rooms.get(&group).map(Room::handles).unwrap_or_default()
    }

    /// The sockets (and their users) in `group`'s room here.
    pub fn sockets(&self, group: GroupId) -> Vec<(u64, UserId)> {
        let rooms = self.rooms.lock();
        rooms.get(&group).map(Room::sockets).unwrap_or_default()
    }

    /// The groups whose rooms have someone here.
    pub fn groups(&self) -> Vec<GroupId> {
        self.rooms.lock().keys().copied().collect()
    }

    /// A room's participants now and the change number they are current
    /// at (VOICE_QUERY): read under the lock, so any change applied before
    /// has a number at most this one, and a push of it arriving later is
    /// seen as stale.
    pub fn roster(&self, group: GroupId) -> (Vec<VoiceParticipant>, u64) {
        let rooms = self.rooms.lock();
        let roster = rooms.get(&group).map(|r| r.roster()).unwrap_or_default();
        let seq = self.changes.load(std::sync::atomic::Ordering::Relaxed);
        (roster, seq)
    }

    /// How many rooms have anyone in them.
    pub fn rooms(&self) -> usize {
        self.rooms.lock().len()
    }
}

/// Sends a room's new participant list (type 125) to every online member
/// of the group, in the room or not. For a group over `SMALL_GROUP`
/// members, only to the users in the room (before or after the change).
pub async fn announce(app: &App, group: GroupId, change: Change) {
    announce_here(&*app.store, &app.hub, group, change).await
}

/// [`announce`] to the sockets on this relay only. On a single box that is
/// everyone; in a cluster every relay announces each change to its own
/// sockets (`cluster/voice_loops.rs`).
pub async fn announce_here(store: &dyn Store, hub: &Hub, group: GroupId, change: Change) {
    let users = match store.small_group_members(group, SMALL_GROUP as u32).await {
        // With the users the change concerns: one just removed from the
        // group is no longer a member, and hears that he is out too.
        Ok(Some(mut members)) => {
            members.extend(change.users);
            members.sort_unstable();
            members.dedup();
            members
        }
        Ok(None) | Err(_) => change.users,
    };
    let frame = ServerFrame::VoiceRoom {
        group_id: group,
        participants: change.roster,
        seq: change.seq,
    };
    hub.offer_here(&users, &encode(&frame));
}

/// Takes a user who is no longer a member of `group` out of its room.
pub async fn evict(app: &App, group: GroupId, user: UserId) {
    if let Some(c) = &app.cluster {
        // On every relay: the room in Redis, then each relay's control
        // message (125, and its sockets of theirs out).
        c.voice().evict(group, user).await;
        return;
    }
    if let Some((change, gone)) = app.voice.evict(group, user) {
        app.metrics
            .voice_participants
            .fetch_sub(gone as i64, std::sync::atomic::Ordering::Relaxed);
        // They get this 125 too (if it reaches them before the group
        // change, it does not matter: both say they are out).
        let mut change = change;
        change.users.push(user);
        announce(app, group, change).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(socket: u64) -> Participant {
        Participant {
            socket,
            user: UserId(socket as i64),
            username: "u".into(),
            handle: SocketHandle::new(socket, 1).0,
            muted: false,
        }
    }

    #[test]
    fn empty_rooms_are_removed() {
        let v = Voice::new(1);
        let g = GroupId(5);
        let (c, changed) = v.join(g, p(1)).unwrap();
        assert!(changed);
        assert_eq!(c.roster.len(), 1);
        assert_eq!(v.join(g, p(2)).unwrap_err(), JoinError::Full);
        assert_eq!(v.rooms(), 1);
        let c = v.leave(g, 1).unwrap();
        assert!(c.roster.is_empty());
        assert_eq!(c.users, vec![UserId(1)]);
        assert_eq!(v.rooms(), 0);
        assert!(v.leave(g, 1).is_none());
        assert_eq!(v.mute(g, 1, true).unwrap_err(), SpeakError::NotInRoom);
        let v0 = Voice::new(0);
        assert!(v0.join(g, p(1)).is_err());
        assert_eq!(v0.rooms(), 0);
    }
}
