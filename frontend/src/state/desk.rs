//! The support desk as an agent sees it: the role from `GET /api/me` and
//! the board the relay pushes (type 133) at login and on every change.

use super::{Screen, State};
use crate::model::ConvKey;
use shared::desk::{DeskAgentInfo, DeskBoard, DeskStatus, Role};
use shared::UserId;
use std::rc::Rc;

impl State {
    /// Whether this account answers at the desk (the sidebar's "Desk").
    pub fn is_agent(&self) -> bool {
        self.role.is_some_and(Role::is_agent)
    }

    /// Agents a conversation can be handed to: online, available, with
    /// room, and not us.
    pub fn transfer_targets(&self) -> Vec<DeskAgentInfo> {
        let me = self.me();
        self.desk
            .as_ref()
            .map(|b| {
                b.agents
                    .iter()
                    .filter(|a| {
                        Some(a.user_id) != me && a.online && a.available && a.open < a.capacity
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `GET /api/me` said what we are. `None`: nothing changed.
    pub(super) fn apply_role(&mut self, role: Role) -> Option<()> {
        if self.role == Some(role) {
            return None;
        }
        self.role = Some(role);
        if !role.is_agent() {
            // Demoted meanwhile: no desk any more.
            self.desk = None;
            if self.screen == Screen::Desk {
                self.screen = Screen::Chat;
            }
        }
        Some(())
    }

    /// A type 133. `None`: the same board as shown.
    pub(super) fn apply_board(&mut self, board: &DeskBoard) -> Option<()> {
        if self.desk.as_deref() == Some(board) {
            return None;
        }
        // Only agents get boards: one proves the role before `/api/me`
        // answers.
        if !self.is_agent() {
            self.role = Some(Role::Agent);
        }
        self.desk = Some(Rc::new(board.clone()));
        Some(())
    }

    /// A type 131 (visitors): shows the conversation it names. `None`:
    /// nothing changed.
    pub(super) fn apply_desk_status(&mut self, d: &DeskStatus, now: i64) -> Option<()> {
        if self.desk_status.as_ref() == Some(d) {
            return None;
        }
        let key = ConvKey::Group(d.group_id);
        if self.chat.active != Some(key) {
            self.open(key, "Support", now);
        }
        self.desk_status = Some(d.clone());
        Some(())
    }

    /// The name of a desk conversation's visitor, if the board lists it.
    pub fn desk_visitor(&self, group: shared::GroupId) -> Option<(UserId, &str)> {
        let b = self.desk.as_deref()?;
        b.mine
            .iter()
            .chain(&b.queue)
            .find(|e| e.group_id == group)
            .map(|e| (e.visitor_id, e.name.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::Action;
    use super::*;
    use shared::desk::{DeskEntry, DeskState};
    use shared::{GroupId, ServerFrame};

    fn entry(g: i64, name: &str, state: DeskState) -> DeskEntry {
        DeskEntry {
            group_id: GroupId(g),
            visitor_id: UserId(100 + g),
            name: name.into(),
            email: None,
            page: Some("https://shop.example/cart".into()),
            state,
            agent_id: (state == DeskState::Open).then_some(UserId(1)),
            queued_at: 1_000,
            assigned_at: (state == DeskState::Open).then_some(2_000),
        }
    }

    fn agent(id: i64, online: bool, available: bool, open: u32) -> DeskAgentInfo {
        DeskAgentInfo {
            user_id: UserId(id),
            username: format!("a{id}"),
            available,
            online,
            open,
            capacity: 2,
        }
    }

    fn board() -> DeskBoard {
        DeskBoard {
            available: true,
            capacity: 5,
            queued: 1,
            queue: vec![entry(8, "Ann", DeskState::Queued)],
            mine: vec![entry(9, "Bea", DeskState::Open)],
            agents: vec![
                agent(1, true, true, 1),
                agent(2, true, true, 0),
                agent(3, false, true, 0),
                agent(4, true, false, 0),
                agent(5, true, true, 2),
            ],
        }
    }

    #[test]
    fn the_role_decides_the_desk() {
        let s = online(&signed_in());
        assert!(!s.is_agent());
        let s = reduce(&s, Action::Role(Role::User));
        assert!(!s.is_agent());
        let s2 = reduce(&s, Action::Role(Role::User));
        assert!(Rc::ptr_eq(&s, &s2), "same role: no re-render");
        let s = reduce(&s, Action::Role(Role::Admin));
        assert!(s.is_agent(), "admins are agents too");
        let s = frame(&s, ServerFrame::DeskBoard(Box::new(board())));
        let s = reduce(&s, Action::Show(Screen::Desk));
        assert_eq!(s.screen, Screen::Desk);
        let s = reduce(&s, Action::Role(Role::User));
        assert!(s.desk.is_none() && s.screen == Screen::Chat, "demoted");
        let s = reduce(&s, Action::SignedOut);
        assert_eq!(s.role, None);
    }

    #[test]
    fn boards_replace_the_last_one() {
        let s = reduce(&online(&signed_in()), Action::Role(Role::Agent));
        let s = frame(&s, ServerFrame::DeskBoard(Box::new(board())));
        let b = s.desk.clone().unwrap();
        assert_eq!(b.queued, 1);
        assert_eq!(s.desk_visitor(GroupId(9)), Some((UserId(109), "Bea")));
        assert_eq!(s.desk_visitor(GroupId(8)), Some((UserId(108), "Ann")));
        assert_eq!(s.desk_visitor(GroupId(7)), None);
        let s2 = frame(&s, ServerFrame::DeskBoard(Box::new(board())));
        assert!(Rc::ptr_eq(&s, &s2), "the same board: no re-render");
        let mut next = board();
        next.queue.clear();
        next.queued = 0;
        next.mine.push(entry(8, "Ann", DeskState::Open));
        let s = frame(&s, ServerFrame::DeskBoard(Box::new(next)));
        let b = s.desk.clone().unwrap();
        assert_eq!((b.queued, b.queue.len(), b.mine.len()), (0, 0, 2));
    }

    #[test]
    fn a_board_before_the_role_means_an_agent() {
        let s = online(&signed_in());
        let s = frame(&s, ServerFrame::DeskBoard(Box::new(board())));
        assert!(s.is_agent());
        let s = reduce(&s, Action::Role(Role::Admin));
        assert_eq!(s.role, Some(Role::Admin));
        assert!(s.desk.is_some(), "an admin keeps the board");
    }

    #[test]
    fn transfers_go_to_online_available_agents_with_room_but_us() {
        let s = reduce(&online(&signed_in()), Action::Role(Role::Agent));
        assert!(s.transfer_targets().is_empty(), "no board yet");
        let s = frame(&s, ServerFrame::DeskBoard(Box::new(board())));
        let ids: Vec<_> = s.transfer_targets().iter().map(|a| a.user_id.0).collect();
        assert_eq!(ids, vec![2]);
    }

    #[test]
    fn a_visitor_follows_their_conversation() {
        let s = online(&signed_in());
        let st = |state, position, agent: Option<&str>| DeskStatus {
            group_id: GroupId(7),
            state,
            position,
            agent_id: agent.map(|_| UserId(3)),
            agent_name: agent.map(Into::into),
        };
        let s = frame(
            &s,
            ServerFrame::DeskStatus(st(DeskState::Queued, None, None)),
        );
        assert_eq!(s.chat.active, Some(KG), "the conversation opens");
        let s = frame(
            &s,
            ServerFrame::DeskStatus(st(DeskState::Queued, Some(2), None)),
        );
        assert_eq!(s.desk_status.as_ref().unwrap().position, Some(2));
        let s2 = frame(
            &s,
            ServerFrame::DeskStatus(st(DeskState::Queued, Some(2), None)),
        );
        assert!(Rc::ptr_eq(&s, &s2));
        let s = frame(
            &s,
            ServerFrame::DeskStatus(st(DeskState::Open, None, Some("ann"))),
        );
        let d = s.desk_status.clone().unwrap();
        assert_eq!(
            (d.state, d.agent_name.as_deref()),
            (DeskState::Open, Some("ann"))
        );
        assert_eq!(s.chat.active, Some(KG));
        // A new conversation after a close is opened in its place.
        let mut next = st(DeskState::Queued, Some(1), None);
        next.group_id = GroupId(8);
        let s = frame(&s, ServerFrame::DeskStatus(next));
        assert_eq!(s.chat.active, Some(ConvKey::Group(GroupId(8))));
    }

    #[test]
    fn the_desk_screen_ticks() {
        let s = reduce(&online(&signed_in()), Action::Role(Role::Agent));
        let s = frame(&s, ServerFrame::DeskBoard(Box::new(board())));
        let s2 = reduce(&s, Action::Tick { now: 5_000 });
        assert!(Rc::ptr_eq(&s, &s2), "off the desk: idle ticks are free");
        let s = reduce(&s, Action::Show(Screen::Desk));
        let s2 = reduce(&s, Action::Tick { now: 5_000 });
        assert!(!Rc::ptr_eq(&s, &s2), "waiting times move");
    }
}
