//! A group's member list, a page at a time.
//!
//! `GET /api/groups/{id}` brings the first page (by username, at most
//! `shared::limits::MEMBER_PAGE`) and a cursor; further pages come from
//! `GET /api/groups/{id}/members?after=<cursor>` when the user asks for
//! them. GROUP_EVENT frames keep what is loaded current in between. The
//! list only ever holds pages the user asked for, so it is bounded by the
//! group's size and the user's clicks.

use shared::api::MemberInfo;
use shared::UserId;

/// A group member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Their username.
    pub username: String,
    /// Whether they own the group.
    pub owner: bool,
    /// Whether they were online when the page was loaded; PRESENCE frames
    /// win over it (see `state::Presence`).
    pub online: bool,
}

impl From<&MemberInfo> for Member {
    fn from(m: &MemberInfo) -> Self {
        Member {
            user_id: m.user_id,
            username: m.username.clone(),
            owner: m.owner,
            online: m.online,
        }
    }
}

/// The members loaded so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// By username, as the relay pages them.
    pub list: Vec<Member>,
    /// Whether the first page arrived.
    pub loaded: bool,
    /// Where the next page starts (`after`); `None` once all are here.
    pub next: Option<String>,
    /// A further page is on its way.
    pub loading: bool,
    /// GROUP_EVENT frames may have been missed (the socket was down since
    /// the pages were loaded): the next first page replaces everything.
    pub stale: bool,
}

impl Members {
    /// The first page (on open, at each socket login, after our own
    /// changes). It replaces what is held up to its last username. Members
    /// from further pages the user had loaded stay, with their cursor, so
    /// a refresh does not collapse a list the user expanded: GROUP_EVENT
    /// frames have kept them current, unless the socket was down since
    /// ([`Members::stale`]), when the page replaces everything.
    pub fn first_page(&mut self, page: &[MemberInfo], next: Option<String>) {
        let fresh: Vec<Member> = page.iter().map(Member::from).collect();
        let beyond: Vec<Member> = match (&next, fresh.last()) {
            (Some(_), Some(last)) if self.loaded && !self.stale => self
                .list
                .iter()
                .filter(|m| m.username > last.username)
                .filter(|m| !fresh.iter().any(|f| f.user_id == m.user_id))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        self.next = if beyond.is_empty() {
            next
        } else {
            self.next.take()
        };
        self.list = fresh;
        self.list.extend(beyond);
        self.loaded = true;
        self.stale = false;
    }

    /// A further page, asked for with `after`. An answer for a cursor that
    /// is no longer the current one (a refresh came in between) is dropped.
    /// Returns whether the list changed.
    pub fn more(&mut self, after: &str, page: &[MemberInfo], next: Option<String>) -> bool {
        self.loading = false;
        if self.next.as_deref() != Some(after) {
            return false;
        }
        for m in page {
            if !self.contains(m.user_id) {
                self.list.push(Member::from(m));
            }
        }
        self.next = next;
        true
    }

    /// Whether `user` is among the loaded members.
    pub fn contains(&self, user: UserId) -> bool {
        self.list.iter().any(|m| m.user_id == user)
    }

    /// Someone joined or was added. Placed by username among the loaded
    /// members; someone who sorts after them while more pages follow
    /// arrives with their page instead. Returns whether the list changed.
    pub fn add(&mut self, m: Member) -> bool {
        if !self.loaded || self.contains(m.user_id) {
            return false;
        }
        let at = self.list.partition_point(|x| x.username < m.username);
        if at == self.list.len() && self.next.is_some() {
            return false;
        }
        self.list.insert(at, m);
        true
    }

    /// Someone left or was removed.
    pub fn remove(&mut self, user: UserId) -> bool {
        let n = self.list.len();
        self.list.retain(|m| m.user_id != user);
        self.list.len() != n
    }

    /// A new owner (the previous one left).
    pub fn set_owner(&mut self, user: UserId) {
        for m in &mut self.list {
            m.owner = m.user_id == user;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: i64, name: &str) -> MemberInfo {
        MemberInfo {
            user_id: UserId(id),
            username: name.into(),
            owner: id == 1,
            read_seq: 0,
            delivered_seq: 0,
            online: id % 2 == 0,
        }
    }

    fn member(id: i64, name: &str) -> Member {
        Member::from(&info(id, name))
    }

    fn names(m: &Members) -> Vec<&str> {
        m.list.iter().map(|m| m.username.as_str()).collect()
    }

    #[test]
    fn pages_load_on_demand_and_stale_answers_are_dropped() {
        let mut m = Members::default();
        m.first_page(&[info(1, "ann"), info(2, "bob")], Some("bob".into()));
        assert!(m.loaded);
        assert_eq!(names(&m), ["ann", "bob"]);
        assert!(m.list[1].online && !m.list[0].online, "as the page said");
        assert!(!m.more("ann", &[info(3, "cy")], None), "not the cursor");
        assert_eq!(names(&m), ["ann", "bob"]);
        m.loading = true;
        assert!(m.more("bob", &[info(3, "cy"), info(2, "bob")], Some("cy".into())));
        assert!(!m.loading);
        assert_eq!(names(&m), ["ann", "bob", "cy"], "no duplicates");
        assert!(m.more("cy", &[info(4, "dee")], None));
        assert_eq!(m.next, None, "all here");
        assert!(!m.more("cy", &[info(5, "eve")], None), "answered twice");
        assert_eq!(names(&m), ["ann", "bob", "cy", "dee"]);
    }

    #[test]
    fn a_refreshed_first_page_keeps_what_the_user_expanded() {
        let mut m = Members::default();
        m.first_page(&[info(1, "ann"), info(2, "bob")], Some("bob".into()));
        m.more("bob", &[info(3, "cy"), info(4, "dee")], Some("dee".into()));
        // abe joined: the first page shifts; what lies beyond it stays.
        m.first_page(&[info(6, "abe"), info(1, "ann")], Some("ann".into()));
        assert_eq!(names(&m), ["abe", "ann", "bob", "cy", "dee"]);
        assert_eq!(m.next.as_deref(), Some("dee"), "the expanded cursor");
        // After the socket was down (events missed): only the page is sure.
        m.stale = true;
        m.first_page(&[info(6, "abe"), info(1, "ann")], Some("ann".into()));
        assert_eq!(names(&m), ["abe", "ann"]);
        assert_eq!(m.next.as_deref(), Some("ann"));
        assert!(!m.stale);
        // A group that now fits on one page: exactly that page.
        m.first_page(&[info(1, "ann")], None);
        assert_eq!(names(&m), ["ann"]);
        assert_eq!(m.next, None);
        // Never expanded: the page and its cursor.
        let mut fresh = Members::default();
        fresh.first_page(&[info(1, "ann")], Some("ann".into()));
        fresh.first_page(&[info(2, "bob")], Some("bob".into()));
        assert_eq!(
            (names(&fresh), fresh.next.as_deref()),
            (vec!["bob"], Some("bob"))
        );
    }

    #[test]
    fn events_change_only_the_loaded_range() {
        let mut m = Members::default();
        assert!(!m.add(member(9, "zed")), "nothing loaded yet");
        m.first_page(&[info(1, "ann"), info(3, "cy")], Some("cy".into()));
        assert!(m.add(member(2, "bob")));
        assert!(!m.add(member(2, "bob")), "twice is once");
        assert!(!m.add(member(9, "zed")), "comes with a later page");
        assert_eq!(names(&m), ["ann", "bob", "cy"]);
        assert!(m.remove(UserId(1)));
        assert!(!m.remove(UserId(1)));
        m.set_owner(UserId(3));
        let owners: Vec<_> = m
            .list
            .iter()
            .filter(|x| x.owner)
            .map(|x| x.user_id)
            .collect();
        assert_eq!(owners, [UserId(3)]);
        // Everything loaded: a late username goes at the end.
        m.more("cy", &[], None);
        assert!(m.add(member(9, "zed")));
        assert_eq!(names(&m), ["bob", "cy", "zed"]);
    }
}
