//! The group rules against plain maps: permissions, the cap, the heir, and
//! the events each change announces.

use super::*;
use std::collections::HashMap;

/// A backend as plain maps; `seq` stands for the conversation's end.
#[derive(Default)]
struct Groups {
    groups: HashMap<GroupId, GroupState>,
    names: HashMap<UserId, String>,
    seq: u64,
    next_id: i64,
}

impl GroupStore for Groups {
    type Error = std::convert::Infallible;
    fn group(&mut self, group: GroupId) -> Result<Option<GroupState>, Self::Error> {
        Ok(self.groups.get(&group).cloned())
    }
    fn user_named(&mut self, username: &str) -> Result<Option<UserRef>, Self::Error> {
        Ok(self
            .names
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(username))
            .map(|(id, n)| UserRef {
                id: *id,
                username: n.clone(),
            }))
    }
    fn username(&mut self, user: UserId) -> Result<Option<String>, Self::Error> {
        Ok(self.names.get(&user).cloned())
    }
    fn create(&mut self, name: &str, public: bool) -> Result<GroupId, Self::Error> {
        self.next_id += 1;
        let g = GroupId(100 + self.next_id);
        self.groups.insert(
            g,
            GroupState {
                name: name.into(),
                owner: None,
                public,
                members: vec![],
                desk: false,
            },
        );
        Ok(g)
    }
    fn add(&mut self, group: GroupId, user: UserId) -> Result<u64, Self::Error> {
        let seq = self.seq;
        let m = &mut self.groups.get_mut(&group).unwrap().members;
        m.push((user, seq));
        m.sort();
        Ok(seq)
    }
    fn remove(&mut self, group: GroupId, user: UserId) -> Result<(), Self::Error> {
        let g = self.groups.get_mut(&group).unwrap();
        g.members.retain(|m| m.0 != user);
        Ok(())
    }
    fn set_owner(&mut self, group: GroupId, owner: Option<UserId>) -> Result<(), Self::Error> {
        self.groups.get_mut(&group).unwrap().owner = owner;
        Ok(())
    }
    fn rename(&mut self, group: GroupId, name: &str) -> Result<(), Self::Error> {
        self.groups.get_mut(&group).unwrap().name = name.into();
        Ok(())
    }
}

const OWNER: UserId = UserId(5);
const BOB: UserId = UserId(2);
const CAROL: UserId = UserId(9);
const DAN: UserId = UserId(1);

fn world() -> Groups {
    let mut w = Groups::default();
    for (id, n) in [
        (OWNER, "olga"),
        (BOB, "bob"),
        (CAROL, "carol"),
        (DAN, "dan"),
    ] {
        w.names.insert(id, n.into());
    }
    w
}

fn run(w: &mut Groups, op: GroupOp) -> Result<GroupChange, Error> {
    change(w, &op).unwrap()
}

fn create(w: &mut Groups, public: bool) -> GroupId {
    let c = run(
        w,
        GroupOp::Create {
            owner: OWNER,
            name: "g".into(),
            public,
        },
    )
    .unwrap();
    assert_eq!(c.events[0].kind, GroupEventKind::Created);
    assert_eq!(c.joined, Some((OWNER, 0)));
    c.group
}

fn add(w: &mut Groups, g: GroupId, actor: UserId, name: &str) -> Result<GroupChange, Error> {
    run(
        w,
        GroupOp::Add {
            group: g,
            actor,
            username: name.into(),
        },
    )
}

fn kinds(c: &GroupChange) -> Vec<GroupEventKind> {
    c.events.iter().map(|e| e.kind).collect()
}

#[test]
fn members_add_by_name_and_only_members_may() {
    let mut w = world();
    let g = create(&mut w, false);
    w.seq = 7;
    let c = add(&mut w, g, OWNER, "BOB").unwrap();
    assert_eq!(kinds(&c), [GroupEventKind::MemberAdded]);
    assert_eq!(c.events[0].by_id, Some(OWNER));
    assert_eq!(c.joined, Some((BOB, 7)));
    assert_eq!(*c.members, vec![BOB, OWNER]);
    assert_eq!(c.summary.member_count, 2);
    // Any member may add; an outsider may not; nobody adds a stranger.
    assert!(add(&mut w, g, BOB, "carol").is_ok());
    assert!(matches!(add(&mut w, g, DAN, "dan"), Err(Error::NotMember)));
    assert!(matches!(
        add(&mut w, g, BOB, "zed"),
        Err(Error::UnknownRecipient)
    ));
    // Adding a member again changes nothing and announces nothing.
    let again = add(&mut w, g, OWNER, "bob").unwrap();
    assert!(again.events.is_empty() && again.joined.is_none());
    assert!(matches!(
        add(&mut w, GroupId(1), OWNER, "bob"),
        Err(Error::NoSuchGroup)
    ));
}

#[test]
fn only_public_groups_can_be_joined_and_private_ones_are_invisible() {
    let mut w = world();
    let private = create(&mut w, false);
    let public = create(&mut w, true);
    let join = |w: &mut Groups, g| {
        run(
            w,
            GroupOp::Join {
                group: g,
                user: BOB,
            },
        )
    };
    assert!(matches!(join(&mut w, private), Err(Error::NoSuchGroup)));
    let c = join(&mut w, public).unwrap();
    assert_eq!(kinds(&c), [GroupEventKind::MemberJoined]);
    assert_eq!(c.events[0].username.as_deref(), Some("bob"));
    assert!(join(&mut w, public).unwrap().events.is_empty());
}

#[test]
fn a_full_group_takes_nobody_more() {
    let mut w = world();
    let g = create(&mut w, true);
    let state = w.groups.get_mut(&g).unwrap();
    state.members = (1000..1000 + MAX_GROUP_MEMBERS as i64)
        .map(|u| (UserId(u), 0))
        .collect();
    state.members[0] = (OWNER, 0);
    state.members.sort();
    let e = add(&mut w, g, OWNER, "bob").unwrap_err();
    assert!(matches!(e, Error::Forbidden(m) if m.contains("full")));
    let e = run(
        &mut w,
        GroupOp::Join {
            group: g,
            user: BOB,
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)));
}

#[test]
fn only_the_owner_renames_and_removes() {
    let mut w = world();
    let g = create(&mut w, false);
    add(&mut w, g, OWNER, "bob").unwrap();
    add(&mut w, g, OWNER, "carol").unwrap();
    let rename = |w: &mut Groups, actor| {
        run(
            w,
            GroupOp::Rename {
                group: g,
                actor,
                name: "new".into(),
            },
        )
    };
    assert!(matches!(rename(&mut w, BOB), Err(Error::Forbidden(_))));
    assert!(matches!(rename(&mut w, DAN), Err(Error::NotMember)));
    let c = rename(&mut w, OWNER).unwrap();
    assert_eq!(kinds(&c), [GroupEventKind::Renamed]);
    assert_eq!(c.summary.name, "new");
    assert_eq!(w.groups[&g].name, "new");

    let remove = |w: &mut Groups, actor, user| {
        run(
            w,
            GroupOp::Remove {
                group: g,
                actor,
                user,
            },
        )
    };
    assert!(matches!(
        remove(&mut w, BOB, CAROL),
        Err(Error::Forbidden(_))
    ));
    let c = remove(&mut w, OWNER, CAROL).unwrap();
    assert_eq!(kinds(&c), [GroupEventKind::MemberRemoved]);
    assert_eq!(c.events[0].by_id, Some(OWNER));
    assert_eq!(c.former, [CAROL]);
    assert!(matches!(
        remove(&mut w, OWNER, CAROL),
        Err(Error::NotMember)
    ));
    // Removing yourself is leaving.
    let c = remove(&mut w, OWNER, OWNER).unwrap();
    assert_eq!(c.events[0].kind, GroupEventKind::MemberLeft);
    assert_eq!(c.events[0].by_id, None);
}

#[test]
fn an_owner_who_leaves_hands_over_to_the_longest_standing_member() {
    let mut w = world();
    let g = create(&mut w, false);
    // Carol (id 9) joins at seq 3, dan (id 1) and bob (id 2) at seq 8:
    // seniority goes by join, then by id.
    w.seq = 3;
    add(&mut w, g, OWNER, "carol").unwrap();
    w.seq = 8;
    add(&mut w, g, OWNER, "dan").unwrap();
    add(&mut w, g, OWNER, "bob").unwrap();
    let c = run(
        &mut w,
        GroupOp::Leave {
            group: g,
            user: OWNER,
        },
    )
    .unwrap();
    assert_eq!(
        kinds(&c),
        [GroupEventKind::MemberLeft, GroupEventKind::OwnerChanged]
    );
    assert_eq!(c.events[1].user_id, Some(CAROL));
    assert_eq!(c.summary.owner_id, CAROL);
    assert_eq!(w.groups[&g].owner, Some(CAROL));
    let c = run(
        &mut w,
        GroupOp::Leave {
            group: g,
            user: CAROL,
        },
    )
    .unwrap();
    assert_eq!(c.events[1].user_id, Some(DAN), "same join seq: lower id");
    // A member who is not the owner leaves without a handover.
    let c = run(
        &mut w,
        GroupOp::Leave {
            group: g,
            user: BOB,
        },
    )
    .unwrap();
    assert_eq!(kinds(&c), [GroupEventKind::MemberLeft]);
    // The last one out leaves the group ownerless.
    let c = run(
        &mut w,
        GroupOp::Leave {
            group: g,
            user: DAN,
        },
    )
    .unwrap();
    assert_eq!(kinds(&c), [GroupEventKind::MemberLeft]);
    assert_eq!(w.groups[&g].owner, None);
    assert!(c.members.is_empty());
}
