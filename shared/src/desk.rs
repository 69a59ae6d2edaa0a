//! The support desk's shared shapes: roles, visitors, and the checks on a
//! visitor's details (`POST /api/visitors`).

use crate::codes::ErrorCode;
use crate::ids::UserId;
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
