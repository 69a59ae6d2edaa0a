//! The support desk's routing: who gets the next conversation, who may
//! hand one on or close it, and what each visitor and agent is shown.
//!
//! Decided here, once; applied by each backend inside one transaction
//! (`store/sqlite/desk.rs` on the single writer, `store/postgres/desk.rs`
//! with row locks: the oldest queued conversation `FOR UPDATE SKIP
//! LOCKED`, the agents `FOR UPDATE`), so two relays racing never assign a
//! conversation twice and never put an agent over capacity.
//!
//! The queue is first come, first served by `queued_at` (then the
//! conversation id). A conversation put back (its agent went offline, or
//! handed it back) keeps its first `queued_at`, so it goes to the front.
//! An agent takes conversations while they chose to be available and a
//! tab of theirs is connected: every relay renews a lease
//! (`desk_agents.seen_until`) for the agents connected to it, so an agent
//! whose tabs all closed (past the presence grace), or whose relay died,
//! loses the lease, and their open conversations go back to the queue.

use crate::error::Error;
use crate::rules::group::GroupChange;
use shared::desk::{
    DeskAgentInfo, DeskAgentSet, DeskBoard, DeskEntry, DeskState, DeskStatus, DESK_BOARD_QUEUE_MAX,
};
use shared::{GroupId, UserId};
use std::collections::HashMap;

/// A change to the desk, as asked for (every one ends by assigning what
/// can be assigned).
#[derive(Clone, Debug)]
pub enum DeskOp {
    /// A visitor starts a conversation, or resumes the one not closed.
    Open {
        /// The visitor.
        visitor: UserId,
    },
    /// An agent changes availability or capacity.
    Agent {
        /// The agent (role checked by the caller).
        agent: UserId,
        /// What changes.
        set: DeskAgentSet,
    },
    /// This relay renews the lease of the agents connected to it.
    Seen {
        /// The agents.
        agents: Vec<UserId>,
        /// Lease end, ms since the epoch.
        until: i64,
    },
    /// Puts the open conversations of agents whose lease ended back at the
    /// front of the queue.
    Sweep,
    /// An agent hands a conversation to another agent, or back to the
    /// queue (`to: None`).
    Transfer {
        /// The conversation.
        group: GroupId,
        /// Who asks.
        by: UserId,
        /// The agent to take it.
        to: Option<UserId>,
    },
    /// The visitor or the agent closes a conversation.
    Close {
        /// The conversation.
        group: GroupId,
        /// Who asks.
        by: UserId,
    },
}

/// What a desk change did.
#[derive(Clone, Debug, Default)]
pub struct DeskDone {
    /// For [`DeskOp::Open`]: the visitor's conversation.
    pub row: Option<DeskRow>,
    /// The agents added to and taken from conversations, for the hub to
    /// announce like any group change (deliveries start and stop).
    pub groups: Vec<GroupChange>,
    /// Whether what visitors and agents are shown may have changed.
    pub changed: bool,
}

/// A desk conversation as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeskRow {
    /// Its group.
    pub group: GroupId,
    /// The visitor.
    pub visitor: UserId,
    /// The agent, while open (and the last one, once closed).
    pub agent: Option<UserId>,
    /// Queued, open or closed.
    pub state: DeskState,
    /// When it first entered the queue.
    pub queued_at: i64,
    /// When its agent got it.
    pub assigned_at: Option<i64>,
}

/// An agent as routing sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentLoad {
    /// The agent.
    pub agent: UserId,
    /// Open conversations.
    pub open: u32,
    /// Most at once.
    pub capacity: u32,
}

/// Who gets the next conversation: among agents who are available and
/// connected (the caller passes only those), the one with the fewest open
/// conversations below their capacity; the lowest id on a tie.
pub fn pick(agents: &[AgentLoad]) -> Option<UserId> {
    agents
        .iter()
        .filter(|a| a.open < a.capacity)
        .min_by_key(|a| (a.open, a.agent))
        .map(|a| a.agent)
}

/// Whether `by` may hand `row` on to `to` (whose load is `target`, `None`
/// if they are not an available, connected agent).
pub fn may_transfer(
    row: &DeskRow,
    by: UserId,
    to: Option<UserId>,
    target: Option<AgentLoad>,
) -> Result<(), Error> {
    if row.state != DeskState::Open || row.agent != Some(by) {
        return Err(Error::Forbidden(
            "only the agent of an open conversation can hand it on",
        ));
    }
    match (to, target) {
        (None, _) => Ok(()),
        (Some(t), _) if t == by => Err(Error::Forbidden("the conversation is yours already")),
        (Some(_), None) => Err(Error::Forbidden(
            "that agent is not available (away, offline or not an agent)",
        )),
        (Some(_), Some(l)) if l.open >= l.capacity => {
            Err(Error::Forbidden("that agent is at capacity"))
        }
        (Some(_), Some(_)) => Ok(()),
    }
}

/// Whether `by` may close `row`: its visitor, or its agent.
pub fn may_close(row: &DeskRow, by: UserId) -> Result<(), Error> {
    if row.visitor == by || row.agent == Some(by) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "only the visitor or the agent of a conversation can close it",
        ))
    }
}

/// What a backend reads for the notices: every conversation not closed
/// and every agent.
#[derive(Clone, Debug, Default)]
pub struct DeskSnapshot {
    /// Queued conversations, in queue order.
    pub queue: Vec<DeskEntry>,
    /// Open conversations.
    pub open: Vec<DeskEntry>,
    /// Agents and administrators, by username (`online`: lease valid).
    pub agents: Vec<DeskAgentInfo>,
}

impl DeskSnapshot {
    /// Each visitor's status, for the visitors in it.
    pub fn statuses(&self) -> HashMap<UserId, DeskStatus> {
        let names: HashMap<UserId, &str> = self
            .agents
            .iter()
            .map(|a| (a.user_id, a.username.as_str()))
            .collect();
        let mut out = HashMap::new();
        for (i, e) in self.queue.iter().enumerate() {
            out.insert(
                e.visitor_id,
                DeskStatus {
                    group_id: e.group_id,
                    state: DeskState::Queued,
                    position: Some(i as u32 + 1),
                    agent_id: None,
                    agent_name: None,
                },
            );
        }
        for e in &self.open {
            out.insert(
                e.visitor_id,
                DeskStatus {
                    group_id: e.group_id,
                    state: DeskState::Open,
                    position: None,
                    agent_id: e.agent_id,
                    agent_name: e
                        .agent_id
                        .and_then(|a| names.get(&a).map(|n| n.to_string())),
                },
            );
        }
        out
    }

    /// The board `agent` sees.
    pub fn board(&self, agent: UserId) -> DeskBoard {
        let me = self.agents.iter().find(|a| a.user_id == agent);
        DeskBoard {
            available: me.is_some_and(|a| a.available),
            capacity: me.map_or(shared::desk::DESK_DEFAULT_CAPACITY, |a| a.capacity),
            queued: self.queue.len() as u32,
            queue: self
                .queue
                .iter()
                .take(DESK_BOARD_QUEUE_MAX)
                .cloned()
                .collect(),
            mine: self
                .open
                .iter()
                .filter(|e| e.agent_id == Some(agent))
                .cloned()
                .collect(),
            agents: self.agents.clone(),
        }
    }
}

/// The status a visitor is shown for a conversation that is in no
/// snapshot list any more: closed.
pub fn closed(group: GroupId) -> DeskStatus {
    DeskStatus {
        group_id: group,
        state: DeskState::Closed,
        position: None,
        agent_id: None,
        agent_name: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(agent: i64, open: u32, capacity: u32) -> AgentLoad {
        AgentLoad {
            agent: UserId(agent),
            open,
            capacity,
        }
    }

    #[test]
    fn the_least_busy_agent_below_capacity_gets_it() {
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&[load(1, 5, 5)]), None);
        assert_eq!(pick(&[load(1, 2, 5), load(2, 1, 5)]), Some(UserId(2)));
        assert_eq!(pick(&[load(3, 1, 5), load(2, 1, 5)]), Some(UserId(2)));
        assert_eq!(pick(&[load(1, 0, 0), load(2, 4, 5)]), Some(UserId(2)));
    }

    fn row(agent: Option<i64>, state: DeskState) -> DeskRow {
        DeskRow {
            group: GroupId(10),
            visitor: UserId(9),
            agent: agent.map(UserId),
            state,
            queued_at: 1,
            assigned_at: None,
        }
    }

    #[test]
    fn only_the_agent_hands_on_and_only_to_an_agent_with_room() {
        let open = row(Some(1), DeskState::Open);
        assert!(may_transfer(&open, UserId(1), None, None).is_ok());
        assert!(may_transfer(&open, UserId(2), None, None).is_err());
        assert!(may_transfer(&open, UserId(1), Some(UserId(2)), None).is_err());
        assert!(may_transfer(&open, UserId(1), Some(UserId(2)), Some(load(2, 5, 5))).is_err());
        assert!(may_transfer(&open, UserId(1), Some(UserId(2)), Some(load(2, 4, 5))).is_ok());
        assert!(may_transfer(&open, UserId(1), Some(UserId(1)), Some(load(1, 1, 5))).is_err());
        let queued = row(None, DeskState::Queued);
        assert!(may_transfer(&queued, UserId(1), None, None).is_err());
    }

    #[test]
    fn the_visitor_or_the_agent_closes() {
        let open = row(Some(1), DeskState::Open);
        assert!(may_close(&open, UserId(9)).is_ok());
        assert!(may_close(&open, UserId(1)).is_ok());
        assert!(may_close(&open, UserId(2)).is_err());
    }

    fn entry(group: i64, visitor: i64, agent: Option<i64>, state: DeskState) -> DeskEntry {
        DeskEntry {
            group_id: GroupId(group),
            visitor_id: UserId(visitor),
            name: "V".into(),
            email: None,
            page: None,
            state,
            agent_id: agent.map(UserId),
            queued_at: group,
            assigned_at: None,
        }
    }

    #[test]
    fn visitors_see_their_position_or_their_agent() {
        let snap = DeskSnapshot {
            queue: vec![
                entry(5, 50, None, DeskState::Queued),
                entry(6, 60, None, DeskState::Queued),
            ],
            open: vec![entry(4, 40, Some(1), DeskState::Open)],
            agents: vec![DeskAgentInfo {
                user_id: UserId(1),
                username: "ann".into(),
                available: true,
                online: true,
                open: 1,
                capacity: 5,
            }],
        };
        let s = snap.statuses();
        assert_eq!(s[&UserId(50)].position, Some(1));
        assert_eq!(s[&UserId(60)].position, Some(2));
        assert_eq!(s[&UserId(40)].agent_name.as_deref(), Some("ann"));
        let b = snap.board(UserId(1));
        assert_eq!((b.queued, b.mine.len(), b.available), (2, 1, true));
        assert_eq!(snap.board(UserId(2)).mine.len(), 0);
    }
}
