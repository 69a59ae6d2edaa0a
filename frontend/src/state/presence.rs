//! Who among our contacts is online, from PRESENCE (type 50) frames alone.
//!
//! The relay sends presence only for contacts: a snapshot of those online
//! right after each socket login, then every change. Nothing is polled: the
//! "Online" list and every presence dot are read from here. What we knew is
//! dropped when the socket goes (we cannot tell who left while we were
//! away) and the next login's snapshot fills it again.

use shared::api::UserSummary;
use shared::UserId;
use std::collections::BTreeMap;

/// Most users remembered. Contacts bound it already; this is a backstop
/// against a relay that sends presence for everyone.
pub const MAX_TRACKED: usize = 10_000;

/// The presence of contacts, as the frames since the last login told it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    /// By user: their username and whether they are online. Offline entries
    /// are kept: they override a stale `online` flag in a member page.
    users: BTreeMap<UserId, (String, bool)>,
}

impl Presence {
    /// Applies one PRESENCE frame. Returns whether anything shown changed
    /// (a repeated frame changes nothing). At [`MAX_TRACKED`] an offline
    /// entry makes room; when every entry is online the newcomer is not
    /// tracked.
    pub fn apply(&mut self, user: UserId, username: &str, online: bool) -> bool {
        if let Some((name, on)) = self.users.get_mut(&user) {
            if *on == online && name == username {
                return false;
            }
            *on = online;
            username.clone_into(name);
            return true;
        }
        if self.users.len() >= MAX_TRACKED {
            let offline = self.users.iter().find(|(_, (_, on))| !on).map(|(u, _)| *u);
            match offline {
                Some(u) => {
                    self.users.remove(&u);
                }
                None => return false,
            }
        }
        self.users.insert(user, (username.to_owned(), online));
        true
    }

    /// Forgets everything (the socket went away). Returns whether anything
    /// was known.
    pub fn clear(&mut self) -> bool {
        let had = !self.users.is_empty();
        self.users.clear();
        had
    }

    /// What the frames said about `user`, if anything.
    pub fn get(&self, user: UserId) -> Option<bool> {
        self.users.get(&user).map(|(_, on)| *on)
    }

    /// Whether `user` is online as far as the frames tell.
    pub fn is_online(&self, user: UserId) -> bool {
        self.get(user) == Some(true)
    }

    /// Whether to show `user` online: what the frames said, else
    /// `fallback` (the `online` flag of a member page, for members whose
    /// presence we are not sent or have not heard of since the last login).
    pub fn online_or(&self, user: UserId, fallback: bool) -> bool {
        self.get(user).unwrap_or(fallback)
    }

    /// The "Online" list: contacts online now, by username.
    pub fn online_users(&self) -> Vec<UserSummary> {
        let mut v: Vec<UserSummary> = self
            .users
            .iter()
            .filter(|(_, (_, on))| *on)
            .map(|(u, (name, _))| UserSummary {
                user_id: *u,
                username: name.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.username.cmp(&b.username).then(a.user_id.cmp(&b.user_id)));
        v
    }

    /// Every user the frames named, for placeholders that need a name.
    pub fn names(&self) -> impl Iterator<Item = (UserId, &str)> {
        self.users.iter().map(|(u, (name, _))| (*u, name.as_str()))
    }

    /// How many users are remembered.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Presence) -> Vec<String> {
        p.online_users().into_iter().map(|u| u.username).collect()
    }

    #[test]
    fn the_snapshot_and_changes_build_the_online_list() {
        let mut p = Presence::default();
        // The snapshot after login, in whatever order the relay sends it.
        assert!(p.apply(UserId(3), "carol", true));
        assert!(p.apply(UserId(2), "bob", true));
        assert_eq!(names(&p), ["bob", "carol"], "by username");
        assert!(!p.apply(UserId(2), "bob", true), "a repeat changes nothing");
        // Live changes.
        assert!(p.apply(UserId(3), "carol", false));
        assert_eq!(names(&p), ["bob"]);
        assert_eq!(p.get(UserId(3)), Some(false), "offline is remembered");
        assert!(!p.is_online(UserId(3)));
        assert!(!p.online_or(UserId(3), true), "frames win over a page");
        assert!(p.online_or(UserId(9), true) && !p.online_or(UserId(9), false));
        assert_eq!(p.get(UserId(4)), None, "never heard of");
        assert!(p.apply(UserId(4), "dave", true));
        assert!(p.apply(UserId(4), "dave2", true), "a rename is a change");
        assert_eq!(names(&p), ["bob", "dave2"]);
        let known: Vec<_> = p.names().map(|(u, _)| u.0).collect();
        assert_eq!(known, [2, 3, 4]);
    }

    #[test]
    fn a_lost_socket_forgets_everyone() {
        let mut p = Presence::default();
        assert!(!p.clear(), "nothing to forget");
        p.apply(UserId(2), "bob", true);
        p.apply(UserId(3), "carol", false);
        assert!(p.clear());
        assert!(p.is_empty());
        assert_eq!(p.get(UserId(3)), None);
        assert!(p.online_users().is_empty());
    }

    #[test]
    fn tracking_is_bounded_and_sheds_offline_users_first() {
        let mut p = Presence::default();
        for i in 0..MAX_TRACKED as i64 {
            p.apply(UserId(i + 10), &format!("u{i}"), i != 5);
        }
        assert_eq!(p.len(), MAX_TRACKED);
        // Full: the one offline entry makes room.
        assert!(p.apply(UserId(1), "new", true));
        assert_eq!(p.len(), MAX_TRACKED);
        assert_eq!(p.get(UserId(15)), None);
        assert!(p.is_online(UserId(1)));
        // Full of online users: a newcomer is not tracked, known ones are.
        assert!(!p.apply(UserId(2), "late", true));
        assert_eq!(p.get(UserId(2)), None);
        assert!(p.apply(UserId(10), "u0", false));
        assert_eq!(p.len(), MAX_TRACKED);
    }
}
