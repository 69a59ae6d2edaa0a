//! Group permissions and what each change announces.
//!
//! [`change`] decides; the backend's [`GroupStore`] only loads a group and
//! applies primitive changes, inside its own serialisation, so the check
//! and the write are atomic there.

use crate::error::Error;
use crate::store::UserRef;
use shared::api::GroupSummary;
use shared::{GroupEvent, GroupEventKind, GroupId, UserId};
use std::sync::Arc;

/// Most members a group may have.
pub const MAX_GROUP_MEMBERS: usize = 20_000;

/// A change to a group, as asked for.
#[derive(Clone, Debug)]
pub enum GroupOp {
    /// A new group owned by `owner`.
    Create {
        /// Owner and first member.
        owner: UserId,
        /// Name (validated).
        name: String,
        /// Anyone may join.
        public: bool,
    },
    /// A member adds someone by username.
    Add {
        /// The group.
        group: GroupId,
        /// Who adds (must be a member).
        actor: UserId,
        /// Who is added.
        username: String,
    },
    /// Someone joins a public group.
    Join {
        /// The group.
        group: GroupId,
        /// Who joins.
        user: UserId,
    },
    /// A member leaves (an owner who leaves hands the group on).
    Leave {
        /// The group.
        group: GroupId,
        /// Who leaves.
        user: UserId,
    },
    /// The owner removes a member.
    Remove {
        /// The group.
        group: GroupId,
        /// Who removes (must be the owner).
        actor: UserId,
        /// Who is removed.
        user: UserId,
    },
    /// The owner renames the group.
    Rename {
        /// The group.
        group: GroupId,
        /// Who renames (must be the owner).
        actor: UserId,
        /// New name (validated).
        name: String,
    },
}

impl GroupOp {
    /// The existing group it changes (`None` for a new one).
    pub fn group(&self) -> Option<GroupId> {
        match self {
            GroupOp::Create { .. } => None,
            GroupOp::Add { group, .. }
            | GroupOp::Join { group, .. }
            | GroupOp::Leave { group, .. }
            | GroupOp::Remove { group, .. }
            | GroupOp::Rename { group, .. } => Some(*group),
        }
    }
}

/// A group as the rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupState {
    /// Its name.
    pub name: String,
    /// Its owner (`None` once the last member left).
    pub owner: Option<UserId>,
    /// Whether anyone may join.
    pub public: bool,
    /// Members and the `seq` each joined at, sorted by user id.
    pub members: Vec<(UserId, u64)>,
    /// A support desk conversation: its members change only through the
    /// desk (`rules::routing`), never through these operations.
    pub desk: bool,
}

impl GroupState {
    fn is_member(&self, user: UserId) -> bool {
        self.members.binary_search_by_key(&user, |m| m.0).is_ok()
    }
}

/// A committed group change, for the hub to announce and the caller to
/// answer with.
#[derive(Clone, Debug)]
pub struct GroupChange {
    /// The group.
    pub group: GroupId,
    /// The group after the change.
    pub summary: GroupSummary,
    /// What happened, in order (none if nothing changed).
    pub events: Vec<GroupEvent>,
    /// Members after the change, sorted.
    pub members: Arc<Vec<UserId>>,
    /// Former members who must hear about it too (left or removed).
    pub former: Vec<UserId>,
    /// A newcomer and the `seq` they joined at: they get what follows it.
    pub joined: Option<(UserId, u64)>,
}

/// What a backend offers the group rules.
pub trait GroupStore {
    /// A storage failure (aborts the change, not a refusal).
    type Error;
    /// A group, if it exists.
    fn group(&mut self, group: GroupId) -> Result<Option<GroupState>, Self::Error>;
    /// A user by username (case-insensitive).
    fn user_named(&mut self, username: &str) -> Result<Option<UserRef>, Self::Error>;
    /// A user's name.
    fn username(&mut self, user: UserId) -> Result<Option<String>, Self::Error>;
    /// Creates an empty group.
    fn create(&mut self, name: &str, public: bool) -> Result<GroupId, Self::Error>;
    /// Adds a member at the conversation's current end; returns that `seq`.
    fn add(&mut self, group: GroupId, user: UserId) -> Result<u64, Self::Error>;
    /// Removes a member.
    fn remove(&mut self, group: GroupId, user: UserId) -> Result<(), Self::Error>;
    /// Sets the owner.
    fn set_owner(&mut self, group: GroupId, owner: Option<UserId>) -> Result<(), Self::Error>;
    /// Renames.
    fn rename(&mut self, group: GroupId, name: &str) -> Result<(), Self::Error>;
}

/// The group after a change.
struct After {
    state: GroupState,
    events: Vec<GroupEvent>,
    former: Vec<UserId>,
    joined: Option<(UserId, u64)>,
}

impl After {
    fn unchanged(state: GroupState) -> After {
        After {
            state,
            events: Vec::new(),
            former: Vec::new(),
            joined: None,
        }
    }

    fn into_change(self, group: GroupId) -> GroupChange {
        let members: Vec<UserId> = self.state.members.iter().map(|m| m.0).collect();
        GroupChange {
            group,
            summary: GroupSummary {
                group_id: group,
                name: self.state.name.clone(),
                owner_id: self.state.owner.unwrap_or(UserId(0)),
                public: self.state.public,
                member_count: members.len() as u32,
            },
            events: self.events,
            members: Arc::new(members),
            former: self.former,
            joined: self.joined,
        }
    }
}

fn event(
    group: GroupId,
    kind: GroupEventKind,
    user: Option<(UserId, Option<String>)>,
    by: Option<UserId>,
    name: &str,
) -> GroupEvent {
    GroupEvent {
        group_id: group,
        kind,
        user_id: user.as_ref().map(|u| u.0),
        username: user.and_then(|u| u.1),
        by_id: by,
        name: Some(name.to_string()),
    }
}

/// Applies `op` through `store` if the rules allow it. The outer error is a
/// storage failure; the inner one refuses just this change.
pub fn change<S: GroupStore>(
    store: &mut S,
    op: &GroupOp,
) -> Result<Result<GroupChange, Error>, S::Error> {
    if let Some(g) = op.group() {
        if store.group(g)?.is_some_and(|s| s.desk) {
            return Ok(Err(Error::Forbidden(
                "a support conversation changes only through the desk",
            )));
        }
    }
    let (group, after) = match op {
        GroupOp::Create {
            owner,
            name,
            public,
        } => {
            let g = store.create(name, *public)?;
            let joined = store.add(g, *owner)?;
            store.set_owner(g, Some(*owner))?;
            let me = store.username(*owner)?;
            let state = GroupState {
                name: name.clone(),
                owner: Some(*owner),
                public: *public,
                members: vec![(*owner, joined)],
                desk: false,
            };
            let e = event(
                g,
                GroupEventKind::Created,
                Some((*owner, me)),
                Some(*owner),
                name,
            );
            let after = After {
                state,
                events: vec![e],
                former: Vec::new(),
                joined: Some((*owner, joined)),
            };
            (g, after)
        }
        GroupOp::Add {
            group,
            actor,
            username,
        } => {
            let Some(state) = store.group(*group)? else {
                return Ok(Err(Error::NoSuchGroup));
            };
            if !state.is_member(*actor) {
                return Ok(Err(Error::NotMember));
            }
            let Some(user) = store.user_named(username)? else {
                return Ok(Err(Error::UnknownRecipient));
            };
            match admit(store, *group, state, user.id)? {
                Ok(Some(mut after)) => {
                    let name = after.state.name.clone();
                    let who = Some((user.id, Some(user.username)));
                    after.events.push(event(
                        *group,
                        GroupEventKind::MemberAdded,
                        who,
                        Some(*actor),
                        &name,
                    ));
                    (*group, after)
                }
                Ok(None) => return Ok(Err(Error::Forbidden("the group is full"))),
                Err(same) => (*group, After::unchanged(same)),
            }
        }
        GroupOp::Join { group, user } => {
            let Some(state) = store.group(*group)? else {
                return Ok(Err(Error::NoSuchGroup));
            };
            if !state.is_member(*user) && !state.public {
                // Private groups are invisible to outsiders.
                return Ok(Err(Error::NoSuchGroup));
            }
            match admit(store, *group, state, *user)? {
                Ok(Some(mut after)) => {
                    let name = after.state.name.clone();
                    let me = store.username(*user)?;
                    after.events.push(event(
                        *group,
                        GroupEventKind::MemberJoined,
                        Some((*user, me)),
                        None,
                        &name,
                    ));
                    (*group, after)
                }
                Ok(None) => return Ok(Err(Error::Forbidden("the group is full"))),
                Err(same) => (*group, After::unchanged(same)),
            }
        }
        GroupOp::Leave { group, user } => match depart(store, *group, *user, None)? {
            Ok(after) => (*group, after),
            Err(e) => return Ok(Err(e)),
        },
        GroupOp::Remove { group, actor, user } => {
            let Some(state) = store.group(*group)? else {
                return Ok(Err(Error::NoSuchGroup));
            };
            if !state.is_member(*actor) {
                return Ok(Err(Error::NotMember));
            }
            if state.owner != Some(*actor) {
                return Ok(Err(Error::Forbidden("only the owner can remove members")));
            }
            let by = (actor != user).then_some(*actor);
            match depart(store, *group, *user, by)? {
                Ok(after) => (*group, after),
                Err(e) => return Ok(Err(e)),
            }
        }
        GroupOp::Rename { group, actor, name } => {
            let Some(mut state) = store.group(*group)? else {
                return Ok(Err(Error::NoSuchGroup));
            };
            if !state.is_member(*actor) {
                return Ok(Err(Error::NotMember));
            }
            if state.owner != Some(*actor) {
                return Ok(Err(Error::Forbidden("only the owner can rename the group")));
            }
            store.rename(*group, name)?;
            state.name = name.clone();
            let e = event(*group, GroupEventKind::Renamed, None, Some(*actor), name);
            let mut after = After::unchanged(state);
            after.events.push(e);
            (*group, after)
        }
    };
    Ok(Ok(after.into_change(group)))
}

/// The change the desk made to a group's members (an agent assigned,
/// handed on or put back), announced like any other: `events` to the
/// members, a newcomer's delivery from `joined`, a former member's stopped.
pub fn desk_change(
    group: GroupId,
    state: GroupState,
    events: Vec<GroupEvent>,
    former: Vec<UserId>,
    joined: Option<(UserId, u64)>,
) -> GroupChange {
    After {
        state,
        events,
        former,
        joined,
    }
    .into_change(group)
}

/// A member event of a desk conversation (`MemberAdded` when an agent gets
/// it, `MemberRemoved` when it leaves them).
pub fn desk_event(
    group: GroupId,
    kind: GroupEventKind,
    user: UserId,
    username: Option<String>,
    name: &str,
) -> GroupEvent {
    event(group, kind, Some((user, username)), None, name)
}

/// Adds `user` unless they are a member already (`Err` with the group as
/// it is) or the group is full (`Ok(None)`).
#[allow(clippy::type_complexity)]
fn admit<S: GroupStore>(
    store: &mut S,
    group: GroupId,
    mut state: GroupState,
    user: UserId,
) -> Result<Result<Option<After>, GroupState>, S::Error> {
    let at = match state.members.binary_search_by_key(&user, |m| m.0) {
        Ok(_) => return Ok(Err(state)),
        Err(at) => at,
    };
    if state.members.len() >= MAX_GROUP_MEMBERS {
        return Ok(Ok(None));
    }
    let joined = store.add(group, user)?;
    state.members.insert(at, (user, joined));
    let mut after = After::unchanged(state);
    after.joined = Some((user, joined));
    Ok(Ok(Some(after)))
}

/// `user` leaves (or, with `by`, is removed by the owner). An owner who
/// leaves hands the group to the longest-standing member: the earliest to
/// join, the lowest id among those who joined at the same `seq`.
fn depart<S: GroupStore>(
    store: &mut S,
    group: GroupId,
    user: UserId,
    by: Option<UserId>,
) -> Result<Result<After, Error>, S::Error> {
    let Some(mut state) = store.group(group)? else {
        return Ok(Err(Error::NoSuchGroup));
    };
    let Ok(at) = state.members.binary_search_by_key(&user, |m| m.0) else {
        return Ok(Err(Error::NotMember));
    };
    let uname = store.username(user)?;
    store.remove(group, user)?;
    state.members.remove(at);
    let kind = if by.is_some() {
        GroupEventKind::MemberRemoved
    } else {
        GroupEventKind::MemberLeft
    };
    let mut events = vec![event(group, kind, Some((user, uname)), by, &state.name)];
    if state.owner == Some(user) {
        let heir = state.members.iter().min_by_key(|m| (m.1, m.0)).map(|m| m.0);
        store.set_owner(group, heir)?;
        state.owner = heir;
        if let Some(h) = heir {
            let hname = store.username(h)?;
            events.push(event(
                group,
                GroupEventKind::OwnerChanged,
                Some((h, hname)),
                None,
                &state.name,
            ));
        }
    }
    Ok(Ok(After {
        state,
        events,
        former: vec![user],
        joined: None,
    }))
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
