//! Presence: contacts hear when a user comes online and, after a grace
//! period, when their last socket closed.
//!
//! Presence reaches contacts only (people who share a one-to-one
//! conversation or a small group), never strangers: broadcasting it would
//! make every login cost O(online users) frames and tell anyone when you
//! are online.

use super::{Hub, Mode, Remote};
use crate::clock::now_ms;
use crate::socket::encode;
use shared::{ServerFrame, UserId};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

/// A user whose last socket closed, not yet announced offline.
pub(super) struct Departed {
    pub at: Instant,
    pub username: Arc<str>,
    pub contacts: HashSet<UserId>,
}

impl Hub {
    /// Whether the user has a socket here or on another relay (or left
    /// less than the presence grace ago).
    pub fn is_online(&self, user: UserId) -> bool {
        self.shard(user).lock().contains_key(&user)
            || self.departed.lock().contains_key(&user)
            || self.remote_online(user)
    }

    /// Sends a presence frame about `user` to `to`.
    pub(super) fn announce(
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
            let contacts: Vec<UserId> = d.contacts.into_iter().collect();
            // Back meanwhile (here or elsewhere): still online.
            if !self.is_online(user) {
                self.announce(user, &d.username, false, contacts.iter().copied());
            }
            self.publish(|| Remote::Presence {
                user,
                username: d.username.to_string(),
                online: false,
                contacts,
            });
        }
    }

    /// Makes two users each other's contacts (a new conversation or a small
    /// group), telling each side here about the other if it is online here
    /// or on another relay. (Each relay does this for its own sockets.)
    pub fn befriend(&self, a: UserId, b: UserId) {
        if a == b {
            return;
        }
        let a_here = self.add_contact(a, b);
        let b_here = self.add_contact(b, a);
        // Each side here that just learned of the other hears it is online.
        let name = |here: &Option<(bool, Arc<str>)>, u: UserId| match here {
            Some((_, name)) => Some(name.clone()),
            None => self.remote_name(u),
        };
        if let (Some((true, _)), Some(name)) = (&a_here, name(&b_here, b)) {
            self.announce(b, &name, true, [a]);
        }
        if let (Some((true, _)), Some(name)) = (&b_here, name(&a_here, a)) {
            self.announce(a, &name, true, [b]);
        }
    }

    /// Adds `contact` to `user`'s contacts if `user` is online here:
    /// whether it is new, and `user`'s name.
    fn add_contact(&self, user: UserId, contact: UserId) -> Option<(bool, Arc<str>)> {
        let mut shard = self.shard(user).lock();
        shard
            .get_mut(&user)
            .map(|e| (e.contacts.insert(contact), e.username.clone()))
    }
}
