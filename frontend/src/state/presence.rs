//! Who among our contacts is online, from PRESENCE (type 50) frames alone.
//!
//! The relay sends presence only for contacts: a snapshot of those online
//! right after each socket login, then every change. Nothing is polled: the
//! "Online" list and every presence dot are read from here. What we knew is
//! dropped when the socket goes (we cannot tell who left while we were
//! away) and the next login's snapshot fills it again.

use shared::api::UserSummary;
use shared::UserId;

/// Most users remembered. Contacts bound it already; this is a backstop
/// against a relay that sends presence for everyone.
pub const MAX_TRACKED: usize = 10_000;

/// One user the frames told us about.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    user: UserSummary,
    online: bool,
}

/// The presence of contacts, as the frames since the last login told it.
///
/// A `Vec` kept sorted by username (the "Online" list's order) rather than
/// a map: contacts are few, a lookup by id scans them, and the module stays
/// small in the wasm (a `BTreeMap` of another key type, or a sort, would
/// each bring their own copy of the std code).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    /// Offline entries are kept: they override a stale `online` flag in a
    /// member page.
    seen: Vec<Seen>,
}

impl Presence {
    fn position(&self, user: UserId) -> Option<usize> {
        self.seen.iter().position(|s| s.user.user_id == user)
    }

    /// Applies one PRESENCE frame. Returns whether anything shown changed
    /// (a repeated frame changes nothing). At [`MAX_TRACKED`] an offline
    /// entry makes room; when every entry is online the newcomer is not
    /// tracked.
    pub fn apply(&mut self, user: UserId, username: &str, online: bool) -> bool {
        if let Some(i) = self.position(user) {
            let s = &mut self.seen[i];
            if s.online == online && s.user.username == username {
                return false;
            }
            if s.user.username == username {
                s.online = online;
                return true;
            }
            // Renamed: re-placed below, in username order.
            self.seen.remove(i);
        } else if self.seen.len() >= MAX_TRACKED {
            match self.seen.iter().position(|s| !s.online) {
                Some(i) => {
                    self.seen.remove(i);
                }
                None => return false,
            }
        }
        let at = self
            .seen
            .partition_point(|s| (s.user.username.as_str(), s.user.user_id) < (username, user));
        self.seen.insert(
            at,
            Seen {
                user: UserSummary {
                    user_id: user,
                    username: username.to_owned(),
                },
                online,
            },
        );
        true
    }

    /// Forgets everything (the socket went away). Returns whether anything
    /// was known.
    pub fn clear(&mut self) -> bool {
        let had = !self.seen.is_empty();
        self.seen.clear();
        had
    }

    /// What the frames said about `user`, if anything.
    pub fn get(&self, user: UserId) -> Option<bool> {
        self.position(user).map(|i| self.seen[i].online)
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
        self.seen
            .iter()
            .filter(|s| s.online)
            .map(|s| s.user.clone())
            .collect()
    }

    /// Every user the frames named, for placeholders that need a name.
    pub fn names(&self) -> impl Iterator<Item = (UserId, &str)> {
        self.seen
            .iter()
            .map(|s| (s.user.user_id, s.user.username.as_str()))
    }

    /// How many users are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
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
        assert_eq!(known, [2, 3, 4], "bob, carol, dave2");
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
