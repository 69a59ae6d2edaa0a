//! The support desk: the board the relay pushes to agents (type 133) at
//! login and on every change, and, on the visitor's page, the visitor's
//! status (type 131).

use super::State;
use shared::desk::{DeskAgentInfo, DeskBoard};
use shared::UserId;
use std::rc::Rc;

/// Agents a conversation can be handed to: online, available, with room,
/// and not `me`.
pub fn transfer_targets(board: &DeskBoard, me: UserId) -> impl Iterator<Item = &DeskAgentInfo> {
    board
        .agents
        .iter()
        .filter(move |a| a.user_id != me && a.online && a.available && a.open < a.capacity)
}

impl State {
    /// A type 133: the relay sends one only when something changed, so
    /// it is taken as is (no comparison, no copy: the app's size budget).
    pub(super) fn apply_board(&mut self, board: Box<DeskBoard>) {
        self.desk = Some(Rc::from(board));
    }

    /// A type 131 (visitors): shows the conversation it names. `None`:
    /// nothing changed.
    #[cfg(any(test, feature = "support"))]
    pub(super) fn apply_desk_status(
        &mut self,
        d: &shared::desk::DeskStatus,
        now: i64,
    ) -> Option<()> {
        if self.desk_status.as_ref() == Some(d) {
            return None;
        }
        let key = crate::model::ConvKey::Group(d.group_id);
        if self.chat.active != Some(key) {
            self.open(key, "Support", now);
        }
        self.desk_status = Some(d.clone());
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Action, Screen};
    use super::*;
    use crate::model::ConvKey;
    use shared::desk::{DeskEntry, DeskState, DeskStatus};
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
    fn boards_replace_the_last_one() {
        let s = online(&signed_in());
        assert!(s.desk.is_none(), "no board: no Desk (not an agent)");
        let s = frame(&s, ServerFrame::DeskBoard(Box::new(board())));
        let b = s.desk.clone().unwrap();
        assert_eq!(b.queued, 1);
        let mut next = board();
        next.queue.clear();
        next.queued = 0;
        next.mine.push(entry(8, "Ann", DeskState::Open));
        let s = frame(&s, ServerFrame::DeskBoard(Box::new(next)));
        let b = s.desk.clone().unwrap();
        assert_eq!((b.queued, b.queue.len(), b.mine.len()), (0, 0, 2));
        let s = reduce(&s, Action::SignedOut);
        assert!(s.desk.is_none());
    }

    #[test]
    fn transfers_go_to_online_available_agents_with_room_but_us() {
        let b = board();
        let ids: Vec<_> = transfer_targets(&b, UserId(1))
            .map(|a| a.user_id.0)
            .collect();
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
        let s = frame(
            &online(&signed_in()),
            ServerFrame::DeskBoard(Box::new(board())),
        );
        let s2 = reduce(&s, Action::Tick { now: 5_000 });
        assert!(Rc::ptr_eq(&s, &s2), "off the desk: idle ticks are free");
        let s = reduce(&s, Action::Show(Screen::Desk));
        let s2 = reduce(&s, Action::Tick { now: 5_000 });
        assert!(!Rc::ptr_eq(&s, &s2), "waiting times move");
    }
}
