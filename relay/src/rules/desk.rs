//! The support desk's rules: what a visitor may do, and which roles may be
//! granted to whom. Sessions (`connection/frames.rs`) and routes
//! (`filters.rs`) ask here, once, instead of each deciding for itself.
//!
//! A visitor has no account: a token from `POST /api/visitors`, nothing
//! else. A visitor may keep their session alive (log in, ping, ack, ask
//! who they are, log out) and talk in their desk conversation (open,
//! close, chat, typing, read markers, its history). Everything else that
//! reaches other people or their data is refused: chats to users, voice,
//! searches, group and other conversation APIs, presence. The stores add the
//! other half: a visitor is nobody to the chat's rules (never a recipient,
//! never a member, never in a search), so users cannot reach them either.

use crate::error::Error;
use shared::desk::Role;
use shared::{ClientFrame, Target};

/// Why a visitor is refused: shown to them as the `forbidden` error.
pub const VISITORS_ONLY_DESK: &str = "visitors can only talk to the support desk";

/// Why a user who is not an agent is refused an agent's frame.
pub const AGENTS_ONLY: &str = "only agents of the support desk can do this";
/// Why an account is refused a visitor's frame.
pub const VISITORS_ONLY: &str = "only visitors open conversations with the support desk";

/// Whether a caller of `role` may send `frame` on `/ws` after LOGIN.
///
/// A visitor may keep their session alive, open or close their desk
/// conversation, and chat, type and mark read in a group: the only groups
/// a visitor is ever a member of are their desk conversations (the stores
/// check membership), so that is all they can reach.
pub fn frame(role: Role, frame: &ClientFrame) -> Result<(), Error> {
    match frame {
        ClientFrame::DeskAgent(_) | ClientFrame::DeskTransfer { .. } if !role.is_agent() => {
            return Err(Error::Forbidden(AGENTS_ONLY))
        }
        ClientFrame::DeskOpen if role != Role::Visitor => {
            return Err(Error::Forbidden(VISITORS_ONLY))
        }
        _ => {}
    }
    if role != Role::Visitor {
        return Ok(());
    }
    match frame {
        ClientFrame::Login { .. }
        | ClientFrame::Ping { .. }
        | ClientFrame::Ack { .. }
        | ClientFrame::DeskOpen
        | ClientFrame::DeskClose { .. } => Ok(()),
        ClientFrame::Chat(c) if matches!(c.to, Target::Group(_)) => Ok(()),
        ClientFrame::Typing {
            to: Target::Group(_),
        }
        | ClientFrame::Read {
            to: Target::Group(_),
            ..
        } => Ok(()),
        _ => Err(Error::Forbidden(VISITORS_ONLY_DESK)),
    }
}

/// The HTTP APIs, as far as the desk's rules tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// The caller's own session: `GET /api/me`, `POST /api/logout`.
    OwnSession,
    /// A group's history: a visitor's desk conversation is a group
    /// (membership is checked by the history rules, as for everyone).
    GroupHistory,
    /// Everything about other users, groups and conversations
    /// (`/api/users…`, `/api/groups…`, `/api/conversations…`), and
    /// sending (`POST /api/messages`).
    Accounts,
}

/// Whether a caller of `role` may call `api`.
pub fn api(role: Role, api: Api) -> Result<(), Error> {
    match (role, api) {
        (Role::Visitor, Api::Accounts) => Err(Error::Forbidden(VISITORS_ONLY_DESK)),
        _ => Ok(()),
    }
}

/// Whether presence (the snapshot at login, changes later) flows to or
/// from a caller of `role`. A visitor sees nobody's and shows none.
pub fn sees_presence(role: Role) -> bool {
    role != Role::Visitor
}

/// Whether a user whose role is `current` may be given `wanted` (by the
/// admin command). Visitors are not accounts: they get no role, and no
/// account becomes a visitor. A bot is made by `create-bot` only and stays
/// a bot (it has no password, so it could not act as a person).
pub fn grant(current: Role, wanted: Role) -> Result<(), Error> {
    if current == Role::Visitor {
        return Err(Error::Forbidden("a visitor cannot be given a role"));
    }
    if wanted == Role::Visitor {
        return Err(Error::Forbidden("an account cannot be made a visitor"));
    }
    if current == Role::Bot || wanted == Role::Bot {
        return Err(Error::Forbidden(
            "bots are made by create-bot and keep their role",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{ChatSend, Content, Target, UserId};

    #[test]
    fn a_visitor_may_only_keep_their_session_alive_and_talk_to_the_desk() {
        let chat = ClientFrame::Chat(ChatSend {
            from_id: None,
            to: Target::User(UserId(1)),
            client_msg_id: None,
            content: Content::text("hi"),
        });
        let typing = ClientFrame::Typing {
            to: Target::User(UserId(1)),
        };
        let desk_chat = ClientFrame::Chat(ChatSend {
            from_id: None,
            to: Target::Group(shared::GroupId(7)),
            client_msg_id: None,
            content: Content::text("hi"),
        });
        assert!(frame(Role::Visitor, &desk_chat).is_ok());
        assert!(frame(Role::Visitor, &ClientFrame::DeskOpen).is_ok());
        assert!(frame(Role::User, &ClientFrame::DeskOpen).is_err());
        let away = ClientFrame::DeskAgent(Default::default());
        assert!(frame(Role::Visitor, &away).is_err());
        assert!(frame(Role::User, &away).is_err());
        assert!(frame(Role::Agent, &away).is_ok());
        let ping = ClientFrame::Ping { from_id: None };
        for f in [&chat, &typing] {
            assert!(matches!(frame(Role::Visitor, f), Err(Error::Forbidden(_))));
            assert!(frame(Role::User, f).is_ok());
            assert!(frame(Role::Agent, f).is_ok());
        }
        assert!(frame(Role::Visitor, &ping).is_ok());
        assert!(api(Role::Visitor, Api::Accounts).is_err());
        assert!(api(Role::Visitor, Api::OwnSession).is_ok());
        assert!(api(Role::Admin, Api::Accounts).is_ok());
        assert!(!sees_presence(Role::Visitor) && sees_presence(Role::User));
    }

    #[test]
    fn roles_are_for_accounts() {
        assert!(grant(Role::User, Role::Agent).is_ok());
        assert!(grant(Role::Agent, Role::User).is_ok());
        assert!(grant(Role::User, Role::Admin).is_ok());
        assert!(grant(Role::Visitor, Role::Agent).is_err());
        assert!(grant(Role::User, Role::Visitor).is_err());
        assert!(grant(Role::Bot, Role::Agent).is_err());
        assert!(grant(Role::User, Role::Bot).is_err());
    }
}
