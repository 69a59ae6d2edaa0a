//! Groups beyond their messages: owner, members, our membership, and the
//! GROUP_EVENT (100) frames that change them.

use super::{Chat, ConvKey, Member, Members};
use shared::api::{GroupInfo, GroupSummary, MemberPage};
use shared::{GroupEvent, GroupEventKind, GroupId, UserId};
use std::rc::Rc;

/// What we know about a group beyond its messages (not cached: reloaded
/// from the server).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupMeta {
    /// The owner.
    pub owner_id: Option<UserId>,
    /// Whether anyone may join.
    pub public: bool,
    /// Member count (from the last summary or event).
    pub member_count: u32,
    /// The members loaded so far, a page at a time.
    pub members: Members,
    /// Set when we are no longer a member: the conversation is read-only
    /// and this says why.
    pub gone: Option<String>,
}

impl Chat {
    /// `GET /api/groups/{id}`: name, owner, members. (Members' read cursors
    /// are not kept: "read by N" is counted per message, see `read_by.rs`.)
    pub fn set_group_info(&mut self, info: &GroupInfo, now: i64) {
        let key = ConvKey::Group(info.summary.group_id);
        let me = self.me;
        let c = self.conv_mut(key, &info.summary.name, now);
        c.name.clone_from(&info.summary.name);
        let meta = c.group.get_or_insert_with(GroupMeta::default);
        meta.owner_id = Some(info.summary.owner_id);
        meta.public = info.summary.public;
        meta.member_count = info.summary.member_count;
        meta.members.first_page(&info.members, info.next.clone());
        if info.members.iter().any(|m| Some(m.user_id) == me) {
            meta.gone = None; // (re)joined
        }
    }

    /// A group change we made (create, join, add, rename) answered with
    /// the group's summary: name, owner, visibility and member count. We
    /// are a member (we just acted as one), so a read-only group becomes
    /// writable again. The member list is reloaded separately.
    pub fn set_group_summary(&mut self, g: &GroupSummary, now: i64) {
        let c = self.conv_mut(ConvKey::Group(g.group_id), &g.name, now);
        c.name.clone_from(&g.name);
        let meta = c.group.get_or_insert_with(GroupMeta::default);
        meta.owner_id = Some(g.owner_id);
        meta.public = g.public;
        meta.member_count = g.member_count;
        meta.gone = None;
    }

    /// A page of further members is being loaded (or failed: `false`).
    /// Returns whether that changed.
    pub fn set_members_loading(&mut self, g: GroupId, loading: bool) -> bool {
        match self
            .existing_mut(ConvKey::Group(g))
            .and_then(|c| c.group.as_mut())
        {
            Some(meta) if meta.members.loading != loading => {
                meta.members.loading = loading;
                true
            }
            _ => false,
        }
    }

    /// A further page of members, asked for with `after`. Returns whether
    /// anything changed.
    pub fn add_member_page(&mut self, g: GroupId, after: &str, page: &MemberPage) -> bool {
        let Some(meta) = self
            .existing_mut(ConvKey::Group(g))
            .and_then(|c| c.group.as_mut())
        else {
            return false;
        };
        let was_loading = meta.members.loading;
        meta.members.more(after, &page.members, page.next.clone()) || was_loading
    }

    /// The socket logged in again: GROUP_EVENT frames may have been missed
    /// while it was down, so each group's next first page of members
    /// replaces what is held.
    pub fn members_may_be_stale(&mut self) {
        for rc in self.conversations.values_mut() {
            if rc.group.as_ref().is_some_and(|g| g.members.loaded) {
                if let Some(g) = Rc::make_mut(rc).group.as_mut() {
                    g.members.stale = true;
                }
            }
        }
    }

    /// We left a group: it disappears.
    pub fn remove_group(&mut self, g: GroupId) -> bool {
        let key = ConvKey::Group(g);
        if self.active == Some(key) {
            self.active = None;
        }
        self.typing.retain(|t| t.key != key);
        self.conversations.remove(&key).is_some()
    }

    /// GROUP_EVENT (100). Returns whether anything changed and, when the
    /// event is about us leaving or being removed, a notice for the user.
    pub fn on_group_event(&mut self, e: &GroupEvent, now: i64) -> (bool, Option<String>) {
        let Some(me) = self.me else {
            return (false, None);
        };
        let key = ConvKey::Group(e.group_id);
        let about_me = e.user_id == Some(me);
        let name = e
            .name
            .clone()
            .unwrap_or_else(|| format!("group {}", e.group_id));
        use GroupEventKind as K;
        match e.kind {
            K::Created | K::MemberAdded | K::MemberJoined if about_me => {
                let c = self.conv_mut(key, &name, now);
                if let Some(g) = c.group.as_mut() {
                    g.gone = None;
                }
            }
            K::MemberLeft if about_me => {
                let had = self.remove_group(e.group_id);
                return (had, had.then(|| format!("You left {name}.")));
            }
            K::MemberRemoved if about_me => {
                let Some(c) = self.existing_mut(key) else {
                    return (false, None);
                };
                let g = c.group.get_or_insert_with(GroupMeta::default);
                let why = format!("You were removed from {name}.");
                g.gone = Some(why.clone());
                g.members = Members::default();
                self.typing.retain(|t| t.key != key);
                return (true, Some(why));
            }
            _ => {}
        }
        let Some(c) = self.existing_mut(key) else {
            return (false, None);
        };
        if e.name.is_some() && c.name != name {
            c.name = name;
        }
        let Some(g) = c.group.as_mut() else {
            return (true, None);
        };
        match (e.kind, e.user_id) {
            (K::MemberAdded | K::MemberJoined, Some(u)) if !g.members.contains(u) => {
                g.member_count += 1;
                g.members.add(Member {
                    user_id: u,
                    username: e.username.clone().unwrap_or_else(|| format!("user {u}")),
                    owner: false,
                    // Just added or joined: they may well be online, but
                    // only a PRESENCE frame can say.
                    online: false,
                });
            }
            (K::MemberLeft | K::MemberRemoved, Some(u)) => {
                g.members.remove(u);
                g.member_count = g.member_count.saturating_sub(1);
                self.typing.retain(|t| !(t.key == key && t.user == u));
            }
            (K::OwnerChanged, Some(u)) => {
                g.owner_id = Some(u);
                g.members.set_owner(u);
            }
            _ => {}
        }
        (true, None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use shared::GroupEventKind;

    fn event(kind: GroupEventKind, user: UserId, name: &str) -> GroupEvent {
        GroupEvent {
            group_id: G,
            kind,
            user_id: Some(user),
            username: Some(name_of(user)),
            by_id: Some(ME),
            name: Some(name.into()),
        }
    }

    #[test]
    fn group_events_update_members_names_and_our_membership() {
        use GroupEventKind as K;
        let mut c = chat();
        // Added by someone: the group appears.
        assert!(c.on_group_event(&event(K::MemberAdded, ME, "team"), 5).0);
        assert_eq!(conv(&c, KG).name, "team");
        c.set_group_info(&group_info(&[(ME, 0), (BOB, 0)]), 6);
        c.on_group_event(&event(K::MemberJoined, CAROL, "team"), 7);
        let names = |c: &Chat| -> Vec<String> {
            conv(c, KG)
                .group
                .as_ref()
                .unwrap()
                .members
                .list
                .iter()
                .map(|m| m.username.clone())
                .collect()
        };
        assert_eq!(names(&c), ["bob", "carol", "me"], "by username");
        assert_eq!(conv(&c, KG).group.as_ref().unwrap().member_count, 3);
        c.on_group_event(&event(K::MemberJoined, CAROL, "team"), 7);
        assert_eq!(
            conv(&c, KG).group.as_ref().unwrap().member_count,
            3,
            "twice is once"
        );
        c.on_group_event(&event(K::Renamed, ME, "dream team"), 8);
        assert_eq!(conv(&c, KG).name, "dream team");
        c.on_group_event(&event(K::OwnerChanged, BOB, "dream team"), 9);
        assert!(conv(&c, KG).is_owner(BOB));
        let owners: Vec<_> = conv(&c, KG)
            .group
            .as_ref()
            .unwrap()
            .members
            .list
            .iter()
            .filter(|m| m.owner)
            .map(|m| m.user_id)
            .collect();
        assert_eq!(owners, [BOB], "tagged, in place");
        assert_eq!(names(&c), ["bob", "carol", "me"]);
        // Removed: read-only with a notice; nothing can be sent.
        c.open(KG, "", 10);
        let (changed, notice) = c.on_group_event(&event(K::MemberRemoved, ME, "dream team"), 11);
        assert!(changed);
        assert!(notice.unwrap().contains("removed"));
        assert!(conv(&c, KG).read_only());
        assert_eq!(c.read_candidate(), None);
        assert!(c
            .queue_outgoing(KG, "dream team", "x".into(), "hi".into(), 12)
            .is_none());
        // Kept by a later list (read-only) until we leave for good.
        c.apply_summaries(&[]);
        assert!(c.conversation(KG).is_some());
        // Joining again (a public group) makes it writable again.
        c.set_group_info(&group_info(&[(BOB, 0), (ME, 0)]), 12);
        assert!(!conv(&c, KG).read_only());
        c.on_group_event(&event(K::MemberRemoved, ME, "dream team"), 13);
        assert!(conv(&c, KG).read_only());
        let (changed, notice) = c.on_group_event(&event(K::MemberLeft, ME, "dream team"), 14);
        assert!(changed && notice.unwrap().contains("left"));
        assert!(c.conversation(KG).is_none());
        assert_eq!(c.active, None);
    }
}
