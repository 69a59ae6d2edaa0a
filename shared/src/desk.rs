//! The support desk's shared shapes: roles, visitors, and the checks on a
//! visitor's details (`POST /api/visitors`).

use crate::codes::ErrorCode;
use crate::ids::{GroupId, UserId};
use crate::validate::Invalid;
use serde::{Deserialize, Serialize};

/// Longest visitor name, in characters.
pub const VISITOR_NAME_MAX_CHARS: usize = 64;
/// Longest visitor email, in bytes (RFC 5321's path limit).
pub const VISITOR_EMAIL_MAX_BYTES: usize = 254;
/// Longest page address a visitor reports, in bytes.
pub const VISITOR_PAGE_MAX_BYTES: usize = 2048;
/// The name a visitor who gave none is shown under.
pub const VISITOR_DEFAULT_NAME: &str = "Visitor";
/// Internal usernames of visitors start with this character, which real
/// usernames may not contain (`validate::username`): they can never
/// collide, and nobody can log in with a password as a visitor.
pub const VISITOR_USERNAME_PREFIX: char = '~';

/// What an account is allowed to be. Stored per user; `user` for every
/// registered account until an administrator grants more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A registered account.
    #[default]
    User,
    /// A registered account that answers visitors at the desk.
    Agent,
    /// A registered account that may grant roles (and is an agent too).
    Admin,
    /// A visitor of the desk: no password, no contacts, only the desk.
    Visitor,
    /// A bot (`ferrochat-relay admin create-bot`): no password, a
    /// long-lived API token; added to groups and written to like a user.
    Bot,
}

impl Role {
    /// The number stored in `users.role` (both backends).
    pub fn code(self) -> i16 {
        match self {
            Role::User => 0,
            Role::Agent => 1,
            Role::Admin => 2,
            Role::Visitor => 3,
            Role::Bot => 4,
        }
    }

    /// The role stored as `code`; an unknown number reads as `user`, the
    /// role with the least rights besides a visitor's.
    pub fn from_code(code: i64) -> Role {
        match code {
            1 => Role::Agent,
            2 => Role::Admin,
            3 => Role::Visitor,
            4 => Role::Bot,
            _ => Role::User,
        }
    }

    /// Its name on the wire and in the admin command.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Visitor => "visitor",
            Role::Bot => "bot",
        }
    }

    /// Whether this account may answer at the desk.
    pub fn is_agent(self) -> bool {
        matches!(self, Role::Agent | Role::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET /api/me`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The account.
    pub user_id: UserId,
    /// Its username (a visitor's is internal, starting with `~`).
    pub username: String,
    /// What it may do.
    pub role: Role,
}

/// `POST /api/visitors` request body; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewVisitor {
    /// The name the visitor gives, shown to agents.
    #[serde(default)]
    pub name: Option<String>,
    /// An email to answer at.
    #[serde(default)]
    pub email: Option<String>,
    /// The page the visitor wrote from.
    #[serde(default)]
    pub page: Option<String>,
}

/// `201` from `POST /api/visitors`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VisitorSession {
    /// The visitor's user id.
    pub visitor_id: UserId,
    /// A session token: keep it; LOGIN with it on `/ws`.
    pub token: String,
    /// When the token stops working, ms since the Unix epoch.
    pub expires_at: i64,
    /// The name agents see.
    pub name: String,
}

/// Where a desk conversation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeskState {
    /// Waiting in the queue for an agent.
    Queued,
    /// An agent has it.
    Open,
    /// Ended by the agent or the visitor; readable, no longer routed.
    Closed,
}

impl DeskState {
    /// The number stored in `desk_conversations.state` (both backends).
    pub fn code(self) -> i16 {
        match self {
            DeskState::Queued => 0,
            DeskState::Open => 1,
            DeskState::Closed => 2,
        }
    }

    /// The state stored as `code` (unknown numbers read as closed: never
    /// routed again).
    pub fn from_code(code: i64) -> DeskState {
        match code {
            0 => DeskState::Queued,
            1 => DeskState::Open,
            _ => DeskState::Closed,
        }
    }
}

/// Capacity an agent starts with (concurrent open conversations).
pub const DESK_DEFAULT_CAPACITY: u32 = 5;
/// Highest capacity an agent may set.
pub const DESK_MAX_CAPACITY: u32 = 100;
/// How many queued conversations a board lists (the count is exact).
pub const DESK_BOARD_QUEUE_MAX: usize = 50;

/// Type 131: a visitor's conversation with the desk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeskStatus {
    /// The conversation: send chats (type 80) to this group.
    pub group_id: GroupId,
    /// Queued, open or closed.
    pub state: DeskState,
    /// While queued: 1 for the next to be served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// While open: the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<UserId>,
    /// While open: the agent's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
}

/// One conversation on an agent's board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeskEntry {
    /// The conversation (a group the agent is a member of once assigned).
    pub group_id: GroupId,
    /// The visitor.
    pub visitor_id: UserId,
    /// The name the visitor gave (or the default).
    pub name: String,
    /// Their email, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The page they wrote from, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Queued, open or closed.
    pub state: DeskState,
    /// The agent, once assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<UserId>,
    /// When it (last) entered the queue, ms since the epoch: the wait.
    pub queued_at: i64,
    /// When its agent got it, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_at: Option<i64>,
}

/// An agent as the board shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeskAgentInfo {
    /// The agent.
    pub user_id: UserId,
    /// Their username.
    pub username: String,
    /// They chose to take conversations.
    pub available: bool,
    /// A tab of theirs is connected (within the presence grace).
    pub online: bool,
    /// Conversations they have open.
    pub open: u32,
    /// Most they take at once.
    pub capacity: u32,
}

/// Type 133: the desk as one agent sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeskBoard {
    /// This agent takes conversations.
    pub available: bool,
    /// This agent's capacity.
    pub capacity: u32,
    /// How many conversations wait in the queue.
    pub queued: u32,
    /// The first of them, oldest first (at most [`DESK_BOARD_QUEUE_MAX`]).
    pub queue: Vec<DeskEntry>,
    /// This agent's open conversations.
    pub mine: Vec<DeskEntry>,
    /// Every agent, by username (for transfers).
    pub agents: Vec<DeskAgentInfo>,
}

/// Type 132's settings: what to change (absent: unchanged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeskAgentSet {
    /// Take conversations (true) or not (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<bool>,
    /// Most conversations at once, 1 to [`DESK_MAX_CAPACITY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

impl DeskAgentSet {
    /// Checks the capacity's range.
    pub fn validated(self) -> Result<DeskAgentSet, Invalid> {
        match self.capacity {
            Some(c) if !(1..=DESK_MAX_CAPACITY).contains(&c) => Err(Invalid::new(
                ErrorCode::InvalidField,
                format!("capacity must be 1 to {DESK_MAX_CAPACITY}"),
            )),
            _ => Ok(self),
        }
    }
}

fn text_ok(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

impl NewVisitor {
    /// Checks the fields and returns them trimmed, empty ones as `None`.
    pub fn validated(self) -> Result<NewVisitor, Invalid> {
        let clean = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let (name, email, page) = (clean(self.name), clean(self.email), clean(self.page));
        if let Some(n) = &name {
            if n.chars().count() > VISITOR_NAME_MAX_CHARS || !text_ok(n) {
                return Err(Invalid::new(
                    ErrorCode::InvalidField,
                    format!("name must be at most {VISITOR_NAME_MAX_CHARS} characters, without control characters"),
                ));
            }
        }
        if let Some(e) = &email {
            let shape = e
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty());
            if e.len() > VISITOR_EMAIL_MAX_BYTES || !shape || e.chars().any(char::is_whitespace) {
                return Err(Invalid::new(
                    ErrorCode::InvalidField,
                    format!(
                        "email must look like name@domain, at most {VISITOR_EMAIL_MAX_BYTES} bytes"
                    ),
                ));
            }
        }
        if let Some(p) = &page {
            if p.len() > VISITOR_PAGE_MAX_BYTES || !text_ok(p) {
                return Err(Invalid::new(
                    ErrorCode::InvalidField,
                    format!("page must be at most {VISITOR_PAGE_MAX_BYTES} bytes, without control characters"),
                ));
            }
        }
        Ok(NewVisitor { name, email, page })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_codes_and_names() {
        for r in [Role::User, Role::Agent, Role::Admin, Role::Visitor] {
            assert_eq!(Role::from_code(r.code().into()), r);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        assert_eq!(Role::from_code(99), Role::User);
    }

    #[test]
    fn visitor_fields_are_trimmed_and_checked() {
        let v = NewVisitor {
            name: Some("  Ann ".into()),
            email: Some(" ".into()),
            page: None,
        };
        let v = v.validated().unwrap();
        assert_eq!(v.name.as_deref(), Some("Ann"));
        assert_eq!(v.email, None);
        for bad in [
            NewVisitor {
                name: Some("x".repeat(65)),
                ..Default::default()
            },
            NewVisitor {
                name: Some("a\u{1b}b".into()),
                ..Default::default()
            },
            NewVisitor {
                email: Some("nope".into()),
                ..Default::default()
            },
            NewVisitor {
                email: Some("a b@c".into()),
                ..Default::default()
            },
            NewVisitor {
                page: Some("p".repeat(2049)),
                ..Default::default()
            },
        ] {
            assert!(bad.clone().validated().is_err(), "{bad:?}");
        }
        assert!(crate::validate::username("~v1234").is_err());
    }
}
