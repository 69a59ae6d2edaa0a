//! Read markers: how a user's read cursor moves, and who hears about it.

use crate::error::Error;
use crate::store::{ConvId, Membership};
use shared::{Target, UserId};

/// A committed read-cursor move, for the hub to announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadMoved {
    /// The reader.
    pub reader: UserId,
    /// The conversation, as the reader names it.
    pub to: Target,
    /// Its id.
    pub conv: ConvId,
    /// The read cursor before.
    pub prev: u64,
    /// The read cursor now.
    pub seq: u64,
    /// Senders of the newly read messages (not the reader).
    pub senders: Vec<UserId>,
}

/// What a backend offers the read rule.
pub trait ReadStore {
    /// A storage failure.
    type Error;
    /// The user's membership of the conversation `to` names.
    fn membership(&mut self, user: UserId, to: Target) -> Result<Option<Membership>, Self::Error>;
    /// The conversation's last `seq`.
    fn last_seq(&mut self, conv: ConvId) -> Result<u64, Self::Error>;
    /// Stores the read cursor.
    fn set_read(&mut self, conv: ConvId, user: UserId, seq: u64) -> Result<(), Self::Error>;
    /// Who sent the messages with `after < seq <= upto`, other than `except`.
    fn senders(
        &mut self,
        conv: ConvId,
        after: u64,
        upto: u64,
        except: UserId,
    ) -> Result<Vec<UserId>, Self::Error>;
}

/// Moves `user`'s read cursor in `to` up to `seq`: clamped to the last
/// message, forward only. A pair that never spoke has nothing to read; a
/// group is read by its members only.
pub fn mark<S: ReadStore>(
    store: &mut S,
    user: UserId,
    to: Target,
    seq: u64,
) -> Result<Result<Option<ReadMoved>, Error>, S::Error> {
    let Some(m) = store.membership(user, to)? else {
        return Ok(match to {
            Target::User(_) => Ok(None),
            Target::Group(_) => Err(Error::NotMember),
        });
    };
    let seq = seq.min(store.last_seq(m.conv)?);
    if seq <= m.read {
        return Ok(Ok(None));
    }
    store.set_read(m.conv, user, seq)?;
    let senders = store.senders(m.conv, m.read, seq, user)?;
    Ok(Ok(Some(ReadMoved {
        reader: user,
        to,
        conv: m.conv,
        prev: m.read,
        seq,
        senders,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::GroupId;

    /// One group (conv 7, members 1 and 2) and messages by sender.
    struct Reads {
        read: Vec<(UserId, u64)>,
        from: Vec<UserId>,
    }

    impl ReadStore for Reads {
        type Error = std::convert::Infallible;
        fn membership(
            &mut self,
            user: UserId,
            to: Target,
        ) -> Result<Option<Membership>, Self::Error> {
            Ok(match to {
                Target::Group(GroupId(7)) => {
                    self.read.iter().find(|r| r.0 == user).map(|r| Membership {
                        conv: 7,
                        joined: 0,
                        read: r.1,
                    })
                }
                _ => None,
            })
        }
        fn last_seq(&mut self, _: ConvId) -> Result<u64, Self::Error> {
            Ok(self.from.len() as u64)
        }
        fn set_read(&mut self, _: ConvId, user: UserId, seq: u64) -> Result<(), Self::Error> {
            self.read.iter_mut().find(|r| r.0 == user).unwrap().1 = seq;
            Ok(())
        }
        fn senders(
            &mut self,
            _: ConvId,
            after: u64,
            upto: u64,
            except: UserId,
        ) -> Result<Vec<UserId>, Self::Error> {
            let mut s: Vec<UserId> = self.from[after as usize..upto as usize]
                .iter()
                .copied()
                .filter(|u| *u != except)
                .collect();
            s.sort();
            s.dedup();
            Ok(s)
        }
    }

    #[test]
    fn the_cursor_moves_forward_to_the_last_message_and_tells_the_senders() {
        let (a, b) = (UserId(1), UserId(2));
        let mut r = Reads {
            read: vec![(a, 0), (b, 0)],
            from: vec![a, b, a, a],
        };
        let g = Target::Group(GroupId(7));
        let m = mark(&mut r, b, g, 2).unwrap().unwrap().unwrap();
        assert_eq!((m.prev, m.seq, m.senders.clone()), (0, 2, vec![a]));
        // Past the end: clamped.
        let m = mark(&mut r, b, g, 99).unwrap().unwrap().unwrap();
        assert_eq!((m.prev, m.seq), (2, 4));
        // Backwards or in place: nothing.
        assert_eq!(mark(&mut r, b, g, 3).unwrap().unwrap(), None);
        assert_eq!(mark(&mut r, b, g, 4).unwrap().unwrap(), None);
        // Outsiders are refused; a pair with no conversation has nothing to read.
        assert!(matches!(
            mark(&mut r, UserId(3), g, 1).unwrap(),
            Err(Error::NotMember)
        ));
        assert_eq!(
            mark(&mut r, a, Target::User(UserId(3)), 1)
                .unwrap()
                .unwrap(),
            None
        );
    }
}
