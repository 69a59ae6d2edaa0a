//! Who may read which history: a member reads a conversation from the
//! `seq` they joined at; a pair that never spoke has an empty history; a
//! stranger's group does not exist for them. And "read by N", counted here
//! so that no client loops over every member for every message.

use crate::error::{Error, Result};
use crate::handlers::Authed;
use crate::store::{Membership, Store};
use shared::api::{History, ReadCount};
use shared::Target;

/// A page of `viewer`'s history with `to`: messages with `seq` below
/// `before`, newest `limit` of them, oldest first. Agents of the support
/// desk read every desk conversation, whole, open or closed, not only
/// those they are members of.
pub async fn page(
    store: &dyn Store,
    who: &Authed,
    to: Target,
    before: Option<u64>,
    limit: u32,
) -> Result<History> {
    let viewer = who.user.id;
    let mut member = store.membership(viewer, to).await?;
    if let (None, Target::Group(g), true) = (member, to, who.role.is_agent()) {
        if store.desk_row(g).await?.is_some() {
            member = Some(Membership {
                conv: g.0,
                joined: 0,
                read: 0,
            });
        }
    }
    let Some(m) = member else {
        return match to {
            Target::User(peer) if peer != viewer && store.user_exists(peer).await? => Ok(History {
                messages: Vec::new(),
                has_more: false,
                read_by: Vec::new(),
            }),
            Target::User(_) => Err(Error::UnknownRecipient),
            Target::Group(_) => Err(Error::NotMember),
        };
    };
    let before = before.unwrap_or(u64::MAX);
    let (mut messages, has_more) = store
        .messages(viewer, m.conv, m.joined, before, limit)
        .await?;
    messages.reverse();
    let mine: Vec<u64> = messages
        .iter()
        .filter(|msg| msg.from_id == viewer)
        .map(|msg| msg.seq)
        .collect();
    let read_by = match to {
        Target::Group(_) if !mine.is_empty() => {
            read_counts(&store.read_cursors(m.conv, viewer).await?, &mine)
        }
        _ => Vec::new(),
    };
    Ok(History {
        messages,
        has_more,
        read_by,
    })
}

/// For each message `seq`, how many members (given as `(joined, read)`
/// cursors, the sender excluded) have read it: joined before it, read up
/// to it or past. Since `joined <= read` always, that is the members who
/// read up to it less those who joined at it or later.
pub fn read_counts(cursors: &[(u64, u64)], seqs: &[u64]) -> Vec<ReadCount> {
    let mut joined: Vec<u64> = cursors.iter().map(|c| c.0).collect();
    let mut read: Vec<u64> = cursors.iter().map(|c| c.1.max(c.0)).collect();
    joined.sort_unstable();
    read.sort_unstable();
    let at_or_after = |v: &[u64], s: u64| (v.len() - v.partition_point(|x| *x < s)) as u32;
    seqs.iter()
        .map(|&seq| ReadCount {
            seq,
            count: at_or_after(&read, seq) - at_or_after(&joined, seq),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counting shortcut agrees with the definition.
    #[test]
    fn read_counts_count_members_who_joined_before_and_read_up_to_each_message() {
        let cursors = [(0, 0), (0, 5), (0, 9), (3, 7), (6, 6), (8, 12)];
        let seqs: Vec<u64> = (1..=13).collect();
        let got = read_counts(&cursors, &seqs);
        for rc in &got {
            let want = cursors
                .iter()
                .filter(|(j, r)| *j < rc.seq && rc.seq <= *r)
                .count() as u32;
            assert_eq!(rc.count, want, "seq {}", rc.seq);
        }
        assert_eq!(got[4], ReadCount { seq: 5, count: 3 });
        assert!(read_counts(&[], &[1, 2]).iter().all(|c| c.count == 0));
    }
}
