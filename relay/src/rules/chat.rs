//! Who may send a chat where, and what a resent key gets.
//!
//! Both places that place chats run [`resolve`]: the SQLite front (against
//! its caches) and the indexer (for the first message between two users,
//! which creates their conversation). The order of the checks is part of
//! the rule: an unknown recipient is refused before the key is looked at,
//! and a known key answers with the original before anything is created.

use crate::error::Error;
use crate::store::{ConvId, Original};
use shared::{GroupId, Target, UserId};
use std::sync::Arc;

/// What a backend knows, at the moment it places a chat.
pub trait ChatFacts {
    /// A storage failure (aborts the placement, not a refusal).
    type Error;
    /// The conversation between two users, if they have one.
    fn direct(&mut self, a: UserId, b: UserId) -> Result<Option<ConvId>, Self::Error>;
    /// Whether a user exists.
    fn user_exists(&mut self, user: UserId) -> Result<bool, Self::Error>;
    /// A group's members, sorted; `None` if no such group.
    fn group_members(&mut self, group: GroupId) -> Result<Option<Arc<Vec<UserId>>>, Self::Error>;
    /// The message this sender already stored under `key`, if any.
    fn original(&mut self, from: UserId, key: &str) -> Result<Option<Original>, Self::Error>;
}

/// Where a chat goes.
#[derive(Debug)]
pub enum Verdict {
    /// Into this conversation (with the group's members at this moment).
    Conv(ConvId, Option<Arc<Vec<UserId>>>),
    /// Into a new conversation between the sender and this user.
    NewDirect(UserId),
    /// Nowhere: the key was used before; answer with the original.
    Duplicate(Original),
    /// Nowhere: refused.
    Refused(Error),
}

/// Decides where a chat from `from` to `to` with idempotency key `key`
/// goes.
pub fn resolve<F: ChatFacts>(
    facts: &mut F,
    from: UserId,
    to: Target,
    key: Option<&str>,
) -> Result<Verdict, F::Error> {
    let place = match to {
        Target::User(peer) if peer == from => return Ok(Verdict::Refused(Error::UnknownRecipient)),
        Target::User(peer) => match facts.direct(from, peer)? {
            Some(conv) => Verdict::Conv(conv, None),
            None if facts.user_exists(peer)? => Verdict::NewDirect(peer),
            None => return Ok(Verdict::Refused(Error::UnknownRecipient)),
        },
        Target::Group(g) => match facts.group_members(g)? {
            Some(m) if m.binary_search(&from).is_ok() => Verdict::Conv(g.0, Some(m)),
            _ => return Ok(Verdict::Refused(Error::NotMember)),
        },
    };
    if let Some(key) = key {
        if let Some(original) = facts.original(from, key)? {
            return Ok(Verdict::Duplicate(original));
        }
    }
    Ok(place)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::MsgId;
    use std::collections::HashMap;

    /// Facts as plain maps: these tests are about the rule, not a backend.
    #[derive(Default)]
    struct Facts {
        users: Vec<UserId>,
        directs: HashMap<(UserId, UserId), ConvId>,
        groups: HashMap<GroupId, Arc<Vec<UserId>>>,
        keys: HashMap<(UserId, String), Original>,
        asked_for_keys: usize,
    }

    impl ChatFacts for Facts {
        type Error = std::convert::Infallible;
        fn direct(&mut self, a: UserId, b: UserId) -> Result<Option<ConvId>, Self::Error> {
            Ok(self.directs.get(&(a.min(b), a.max(b))).copied())
        }
        fn user_exists(&mut self, user: UserId) -> Result<bool, Self::Error> {
            Ok(self.users.contains(&user))
        }
        fn group_members(
            &mut self,
            group: GroupId,
        ) -> Result<Option<Arc<Vec<UserId>>>, Self::Error> {
            Ok(self.groups.get(&group).cloned())
        }
        fn original(&mut self, from: UserId, key: &str) -> Result<Option<Original>, Self::Error> {
            self.asked_for_keys += 1;
            Ok(self.keys.get(&(from, key.to_string())).copied())
        }
    }

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);
    const C: UserId = UserId(3);

    fn facts() -> Facts {
        let mut f = Facts {
            users: vec![A, B, C],
            ..Facts::default()
        };
        f.directs.insert((A, B), 10);
        f.groups.insert(GroupId(20), Arc::new(vec![A, B]));
        f.keys.insert(
            (A, "k".into()),
            Original {
                msg_id: MsgId::from_u128(5),
                ts: 1,
                seq: 4,
            },
        );
        f
    }

    fn go(f: &mut Facts, from: UserId, to: Target, key: Option<&str>) -> Verdict {
        resolve(f, from, to, key).unwrap()
    }

    #[test]
    fn a_pair_goes_to_its_conversation_or_a_new_one() {
        let mut f = facts();
        assert!(matches!(
            go(&mut f, A, Target::User(B), None),
            Verdict::Conv(10, None)
        ));
        assert!(matches!(
            go(&mut f, B, Target::User(A), None),
            Verdict::Conv(10, None)
        ));
        assert!(matches!(go(&mut f, A, Target::User(C), None), Verdict::NewDirect(p) if p == C));
    }

    #[test]
    fn unknown_recipients_and_oneself_are_refused() {
        let mut f = facts();
        let v = go(&mut f, A, Target::User(UserId(99)), None);
        assert!(matches!(v, Verdict::Refused(Error::UnknownRecipient)));
        let v = go(&mut f, A, Target::User(A), None);
        assert!(matches!(v, Verdict::Refused(Error::UnknownRecipient)));
    }

    #[test]
    fn only_members_send_to_a_group() {
        let mut f = facts();
        let v = go(&mut f, A, Target::Group(GroupId(20)), None);
        assert!(matches!(v, Verdict::Conv(20, Some(m)) if *m == vec![A, B]));
        let v = go(&mut f, C, Target::Group(GroupId(20)), None);
        assert!(matches!(v, Verdict::Refused(Error::NotMember)));
        let v = go(&mut f, A, Target::Group(GroupId(21)), None);
        assert!(matches!(v, Verdict::Refused(Error::NotMember)));
    }

    #[test]
    fn a_used_key_answers_with_the_original_wherever_it_is_sent() {
        let mut f = facts();
        for to in [Target::User(B), Target::User(C), Target::Group(GroupId(20))] {
            let v = go(&mut f, A, to, Some("k"));
            assert!(matches!(v, Verdict::Duplicate(o) if o.seq == 4), "{to:?}");
        }
        assert!(matches!(
            go(&mut f, A, Target::User(B), Some("new")),
            Verdict::Conv(10, None)
        ));
        // Another sender's key space is their own.
        assert!(matches!(
            go(&mut f, B, Target::User(A), Some("k")),
            Verdict::Conv(10, None)
        ));
    }

    #[test]
    fn a_refusal_comes_before_the_key_is_looked_up() {
        let mut f = facts();
        let v = go(&mut f, C, Target::Group(GroupId(20)), Some("k"));
        assert!(matches!(v, Verdict::Refused(Error::NotMember)));
        let v = go(&mut f, A, Target::User(UserId(99)), Some("k"));
        assert!(matches!(v, Verdict::Refused(Error::UnknownRecipient)));
        assert_eq!(f.asked_for_keys, 0);
    }
}
