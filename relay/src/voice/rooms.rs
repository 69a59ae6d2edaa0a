//! One group's voice room: its participants, at most `capacity`.

use crate::socket::SocketHandle;
use shared::{UserId, VoiceParticipant};
use std::sync::Arc;

/// One socket in a room. A user with two tabs in the room is two
/// participants.
#[derive(Clone, Debug)]
pub struct Participant {
    /// The socket's process-unique id.
    pub socket: u64,
    /// Its user.
    pub user: UserId,
    /// Their username.
    pub username: Arc<str>,
    /// Where relayed audio goes.
    pub handle: SocketHandle,
    /// Muted participants' audio is refused.
    pub muted: bool,
}

/// Why a join was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// The room is at capacity.
    Full,
}

/// Why an audio frame is not forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpeakError {
    /// The socket is not in that room.
    NotInRoom,
    /// The socket is muted there.
    Muted,
}

/// The participants of one room, in joining order.
#[derive(Debug, Default)]
pub struct Room {
    participants: Vec<Participant>,
}

impl Room {
    /// Whether nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Adds `p` unless the room is full. Joining twice is a no-op (still
    /// Ok). Returns whether the room changed.
    pub fn join(&mut self, p: Participant, capacity: u32) -> Result<bool, JoinError> {
        if self.participants.iter().any(|q| q.socket == p.socket) {
            return Ok(false);
        }
        if self.participants.len() >= capacity as usize {
            return Err(JoinError::Full);
        }
        self.participants.push(p);
        Ok(true)
    }

    /// Removes a socket; returns whether it was there.
    pub fn leave(&mut self, socket: u64) -> bool {
        let before = self.participants.len();
        self.participants.retain(|p| p.socket != socket);
        self.participants.len() != before
    }

    /// Removes every socket of `user`; returns how many there were.
    pub fn leave_user(&mut self, user: UserId) -> usize {
        let before = self.participants.len();
        self.participants.retain(|p| p.user != user);
        before - self.participants.len()
    }

    /// Sets a socket's mute; None if it is not in the room, else whether
    /// anything changed.
    pub fn mute(&mut self, socket: u64, muted: bool) -> Option<bool> {
        let p = self.participants.iter_mut().find(|p| p.socket == socket)?;
        let changed = p.muted != muted;
        p.muted = muted;
        Some(changed)
    }

    /// The handles audio from `socket` goes to: every other participant.
    pub fn listeners(&self, socket: u64) -> Result<Vec<SocketHandle>, SpeakError> {
        match self.participants.iter().find(|p| p.socket == socket) {
            None => return Err(SpeakError::NotInRoom),
            Some(p) if p.muted => return Err(SpeakError::Muted),
            Some(_) => {}
        }
        Ok(self
            .participants
            .iter()
            .filter(|p| p.socket != socket)
            .map(|p| p.handle.clone())
            .collect())
    }

    /// Every participant's handle (audio from another relay goes to all).
    pub fn handles(&self) -> Vec<SocketHandle> {
        self.participants.iter().map(|p| p.handle.clone()).collect()
    }

    /// The participants' sockets and users.
    pub fn sockets(&self) -> Vec<(u64, UserId)> {
        self.participants
            .iter()
            .map(|p| (p.socket, p.user))
            .collect()
    }

    /// The participant list as sent in 121 and 125 frames.
    pub fn roster(&self) -> Vec<VoiceParticipant> {
        self.participants
            .iter()
            .map(|p| VoiceParticipant {
                user_id: p.user,
                username: p.username.to_string(),
                muted: p.muted,
            })
            .collect()
    }

    /// The users in the room (with repeats for several tabs).
    pub fn users(&self) -> Vec<UserId> {
        self.participants.iter().map(|p| p.user).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(socket: u64, user: i64) -> Participant {
        Participant {
            socket,
            user: UserId(user),
            username: format!("u{user}").into(),
            handle: SocketHandle::new(socket, 1).0,
            muted: false,
        }
    }

    #[test]
    fn joins_up_to_capacity_and_twice_is_a_no_op() {
        let mut r = Room::default();
        assert_eq!(r.join(p(1, 1), 2), Ok(true));
        assert_eq!(r.join(p(1, 1), 2), Ok(false));
        assert_eq!(r.join(p(2, 2), 2), Ok(true));
        assert_eq!(r.join(p(3, 3), 2), Err(JoinError::Full));
        assert_eq!(r.users(), vec![UserId(1), UserId(2)]);
        assert!(r.leave(1));
        assert!(!r.leave(1));
        assert_eq!(r.join(p(3, 3), 2), Ok(true));
    }

    #[test]
    fn audio_goes_to_the_others_unless_muted_or_absent() {
        let mut r = Room::default();
        for s in 1..=3 {
            r.join(p(s, s as i64), 10).unwrap();
        }
        let ids: Vec<u64> = r.listeners(2).unwrap().iter().map(|h| h.id()).collect();
        assert_eq!(ids, vec![1, 3]);
        assert_eq!(r.listeners(9).unwrap_err(), SpeakError::NotInRoom);
        assert_eq!(r.mute(2, true), Some(true));
        assert_eq!(r.mute(2, true), Some(false));
        assert_eq!(r.mute(9, true), None);
        assert_eq!(r.listeners(2).unwrap_err(), SpeakError::Muted);
        assert!(r.roster()[1].muted);
    }
}
