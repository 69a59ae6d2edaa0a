//! Group actions: details and member pages from the API, and the answers
//! to our own group changes.

use super::{Action, State};
use crate::model::ConvKey;

impl State {
    /// Applies one of the group actions (the reducer routes only those
    /// here). `None`: nothing changed.
    pub(super) fn apply_group(&mut self, action: Action) -> Option<()> {
        match action {
            Action::Group { info, now } => {
                self.chat.set_group_info(&info, now);
                self.chat_rev += 1;
            }
            Action::GroupChanged { summary, open, now } => {
                self.chat.set_group_summary(&summary, now);
                self.chat_rev += 1;
                if open {
                    let key = ConvKey::Group(summary.group_id);
                    self.open(key, &summary.name, now);
                    self.group_query.clear();
                    self.group_results.clear();
                }
            }
            Action::LeftGroup(g) => {
                let name = self
                    .chat
                    .conversation(ConvKey::Group(g))
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| "the group".into());
                self.chat.remove_group(g);
                self.members_open = false;
                self.notice = Some(format!("You left {name}."));
                self.sidebar_open = true;
                self.chat_rev += 1;
            }
            Action::MembersLoading { group, loading } => {
                if !self.chat.set_members_loading(group, loading) {
                    return None;
                }
            }
            Action::MemberPage { group, after, page } => {
                if !self.chat.add_member_page(group, &after, &page) {
                    return None;
                }
            }
            // Not a group action: `try_apply` handles it.
            _ => return None,
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::Screen;
    use super::*;
    use shared::api::{MemberInfo, MemberPage};
    use shared::{GroupEvent, GroupEventKind, GroupId, ServerFrame, UserId};
    use std::rc::Rc;

    #[test]
    fn groups_created_joined_and_left() {
        let s = open(&online(&signed_in()), KB, "bob");
        let s = reduce(&s, Action::Show(Screen::NewGroup));
        assert_eq!(s.screen, Screen::NewGroup);
        assert_eq!(s.chat.active, None, "the form replaces the conversation");
        assert_eq!(s.chat.read_candidate(), None);
        let s = reduce(
            &s,
            Action::GroupChanged {
                summary: group_info().summary,
                open: true,
                now: 5,
            },
        );
        assert_eq!(s.screen, Screen::Chat);
        let s = reduce(
            &s,
            Action::Group {
                info: group_info(),
                now: 6,
            },
        );
        assert_eq!(s.chat.active, Some(KG));
        let s = reduce(&s, Action::ShowMembers(true));
        let c = s.chat.conversation(KG).unwrap();
        assert_eq!(c.name, "team");
        assert!(c.is_owner(UserId(1)));
        assert_eq!(c.group.as_ref().unwrap().members.list.len(), 2);
        // Another conversation closes the member panel.
        let s = open(&s, KB, "bob");
        assert!(!s.members_open);
        // Renamed from elsewhere.
        let renamed = GroupEvent {
            group_id: GroupId(7),
            kind: GroupEventKind::Renamed,
            user_id: None,
            username: None,
            by_id: Some(UserId(1)),
            name: Some("crew".into()),
        };
        let s = frame(&s, ServerFrame::GroupEvent(renamed));
        assert_eq!(s.chat.conversation(KG).unwrap().name, "crew");
        let s = open(&s, KG, "crew");
        let s = reduce(&s, Action::LeftGroup(GroupId(7)));
        assert!(s.chat.conversation(KG).is_none());
        assert_eq!(s.chat.active, None);
        assert_eq!(s.notice.as_deref(), Some("You left crew."));
        let s = reduce(&s, Action::Notice(None));
        assert_eq!(s.notice, None);
    }

    #[test]
    fn member_pages_load_on_demand() {
        let mut info = group_info();
        info.next = Some("bob".into());
        let s = reduce(&online(&signed_in()), Action::Group { info, now: 5 });
        let members = |s: &State| {
            let c = s.chat.conversation(KG).unwrap();
            c.group.as_ref().unwrap().members.clone()
        };
        assert_eq!(members(&s).next.as_deref(), Some("bob"));
        let loading = |loading| Action::MembersLoading {
            group: GroupId(7),
            loading,
        };
        let s = reduce(&s, loading(true));
        assert!(members(&s).loading);
        let s2 = reduce(&s, loading(true));
        assert!(Rc::ptr_eq(&s, &s2), "already loading");
        let page = |after: &str| Action::MemberPage {
            group: GroupId(7),
            after: after.into(),
            page: MemberPage {
                members: vec![MemberInfo {
                    user_id: UserId(3),
                    username: "carol".into(),
                    owner: false,
                    read_seq: 0,
                    delivered_seq: 0,
                    online: true,
                }],
                next: None,
            },
        };
        let s = reduce(&s, page("bob"));
        let m = members(&s);
        assert!(!m.loading && m.next.is_none());
        let names: Vec<_> = m.list.iter().map(|m| m.username.as_str()).collect();
        assert_eq!(names, ["me", "bob", "carol"]);
        let s2 = reduce(&s, page("bob"));
        assert!(Rc::ptr_eq(&s, &s2), "a stale page changes nothing");
        // After a reconnect the next first page replaces the expanded list.
        let s = reduce(&s, Action::SocketLoggedIn { now: 9 });
        assert!(members(&s).stale);
    }
}
