//! The parts of the state that only steer the screen: search boxes and
//! their results, which pane shows, the member panel, the notice.

use super::{Action, Screen, State};
use shared::api::UserSummary;

impl State {
    fn without_me(&self, users: Vec<UserSummary>) -> Vec<UserSummary> {
        let me = self.me();
        users
            .into_iter()
            .filter(|u| Some(u.user_id) != me)
            .collect()
    }

    /// Applies one of the screen-only actions (the reducer routes only
    /// those here). `None`: nothing changed.
    pub(super) fn apply_ui(&mut self, action: Action) -> Option<()> {
        match action {
            Action::SearchQuery(q) => {
                if q.trim().is_empty() {
                    self.search_results.clear();
                }
                self.search_query = q;
            }
            Action::SearchResults { query, users } => {
                if query != self.search_query {
                    return None;
                }
                self.search_results = self.without_me(users);
            }
            Action::GroupQuery(q) => {
                if q.trim().is_empty() {
                    self.group_results.clear();
                }
                self.group_query = q;
            }
            Action::GroupResults { query, groups } => {
                if query != self.group_query {
                    return None;
                }
                self.group_results = groups;
            }
            Action::Show(screen) => {
                if self.screen == screen && !self.sidebar_open {
                    return None;
                }
                self.screen = screen;
                self.sidebar_open = false;
                if screen != Screen::Chat {
                    // The conversation is off screen: nothing in it is read.
                    self.chat.active = None;
                    self.members_open = false;
                }
            }
            Action::ShowMembers(open) => {
                if self.members_open == open {
                    return None;
                }
                self.members_open = open;
            }
            Action::Notice(n) => {
                if self.notice == n {
                    return None;
                }
                self.notice = n;
            }
            Action::ShowSidebar(open) => {
                if self.sidebar_open == open {
                    return None;
                }
                self.sidebar_open = open;
                if open {
                    // Back to the list (phones): the conversation is closed,
                    // so nothing more in it counts as read.
                    self.chat.active = None;
                    self.members_open = false;
                }
            }
            // Not a screen-only action: `try_apply` handles it.
            _ => return None,
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::model::ConvKey;
    use shared::UserId;
    use std::rc::Rc;

    #[test]
    fn search_excludes_us_and_ignores_stale_results() {
        let s = signed_in();
        let s = reduce(&s, Action::SearchQuery("ca".into()));
        let s = reduce(&s, Action::SearchQuery("car".into()));
        let s2 = reduce(
            &s,
            Action::SearchResults {
                query: "ca".into(),
                users: vec![user(4, "cat")],
            },
        );
        assert!(Rc::ptr_eq(&s, &s2), "stale answer dropped");
        let s = reduce(
            &s,
            Action::SearchResults {
                query: "car".into(),
                users: vec![user(1, "carme"), user(3, "carol")],
            },
        );
        assert_eq!(s.search_results, [user(3, "carol")]);
        let s = open(&s, ConvKey::User(UserId(3)), "carol");
        assert!(s.search_query.is_empty() && s.search_results.is_empty());
        // Group search: same rule.
        let s = reduce(&s, Action::GroupQuery("te".into()));
        let s2 = reduce(
            &s,
            Action::GroupResults {
                query: "t".into(),
                groups: vec![group_info().summary],
            },
        );
        assert!(Rc::ptr_eq(&s, &s2));
        let s = reduce(
            &s,
            Action::GroupResults {
                query: "te".into(),
                groups: vec![group_info().summary],
            },
        );
        assert_eq!(s.group_results.len(), 1);
    }
}
