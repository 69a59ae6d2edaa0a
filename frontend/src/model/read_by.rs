//! "Read by N" for our own messages in a group, without knowing every
//! member's read cursor.
//!
//! Each of our messages carries its count ([`Message::read_by`]):
//! - it starts at 0 when we send (or when another tab's echo arrives);
//! - a history page sets it from the page's `readBy` (the relay counts the
//!   other members whose cursor is at or past the message; a message of
//!   ours the page does not list has no reader yet);
//! - a READ_RECEIPT (71) from a member says their cursor moved from
//!   `prevSeq` to `seq`: each of our loaded messages with
//!   `prevSeq < seq' <= seq` gained exactly one reader. Cursors only move
//!   forward and each move is one frame, so a member is counted once per
//!   message.
//!
//! Without `prevSeq` (a relay that does not send it) only the message at
//! `seq` itself is known to be newly read (the cursor moved, and landed
//! there): it gets its +1, the messages below it wait for the next history
//! page. This may undercount, it never counts a reader twice.
//!
//! A count never goes above the number of other members (when known), and
//! history pages correct what frames cannot know: a member who left still
//! counts until then, and a page and a 71 that cross on the way may count
//! that reader once too few or too many. Every open of the conversation and
//! every socket login loads the latest page.
//!
//! Cost: a 71 touches the messages in its range only (found by binary
//! search on `seq`); rendering reads one number per message shown.

use super::{Chat, ConvKey, Conversation, Message};
use shared::api::ReadCount;
use shared::{ChatMessage, GroupId, UserId};
use std::ops::Range;

impl Conversation {
    /// Indexes of the stored messages with `lo < seq <= hi` (messages are
    /// ordered by `seq`, unnumbered ones last).
    fn seq_range(&self, lo: u64, hi: u64) -> Range<usize> {
        let upto = |s: u64| self.messages.partition_point(|m| m.seq != 0 && m.seq <= s);
        upto(lo)..upto(hi)
    }

    /// The most readers a message of ours can have: the other members,
    /// when the member count is known.
    fn max_readers(&self) -> u32 {
        self.group
            .as_ref()
            .map(|g| g.member_count.saturating_sub(1))
            .filter(|n| *n > 0)
            .unwrap_or(u32::MAX)
    }

    /// A member's read cursor moved from `prev` to `seq` (see the module
    /// docs for `prev` = `None`). Returns whether a count changed.
    pub(super) fn count_reader(&mut self, prev: Option<u64>, seq: u64) -> bool {
        let lo = prev.unwrap_or(seq.saturating_sub(1));
        if lo >= seq {
            return false;
        }
        let cap = self.max_readers();
        let range = self.seq_range(lo, seq);
        let mut changed = false;
        for m in self.messages[range].iter_mut().filter(|m| m.mine) {
            if m.read_by < cap {
                m.read_by += 1;
                changed = true;
            }
        }
        changed
    }

    /// A history page's counts for our messages in it: each of ours in the
    /// page gets its listed count, or 0 when not listed.
    pub(super) fn set_read_counts(
        &mut self,
        page: &[ChatMessage],
        counts: &[ReadCount],
        me: UserId,
    ) {
        let cap = self.max_readers();
        let ours = page.iter().filter(|v| v.from_id == me).map(|v| (v.seq, 0));
        for (seq, n) in ours.chain(counts.iter().map(|r| (r.seq, r.count))) {
            let range = self.seq_range(seq.saturating_sub(1), seq);
            for m in self.messages[range].iter_mut().filter(|m| m.mine) {
                m.read_by = n.min(cap);
            }
        }
    }
}

impl Chat {
    /// A 71 from another member of group `g`: one more reader for each of
    /// our messages it newly covers. Returns whether a count changed.
    pub(super) fn count_group_reader(&mut self, g: GroupId, prev: Option<u64>, seq: u64) -> bool {
        self.existing_mut(ConvKey::Group(g))
            .is_some_and(|c| c.count_reader(prev, seq))
    }
}

/// What the message list shows as "read by N": ours in a group only.
pub fn shown_read_by(c: &Conversation, m: &Message) -> Option<u32> {
    (m.mine && c.key.is_group()).then_some(m.read_by)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::model::MsgState;
    use shared::api::History;
    use shared::Target;

    /// A group of `members` (us included) with our messages at `ours` and
    /// bob's at `theirs`, the latest page loaded with `counts`.
    fn group(members: u32, ours: &[u64], theirs: &[u64], counts: &[(u64, u32)]) -> Chat {
        let mut c = chat();
        let mut info = group_info(&[(ME, 0), (BOB, 0)]);
        info.summary.member_count = members;
        c.set_group_info(&info, 0);
        let mut messages: Vec<ChatMessage> = ours
            .iter()
            .map(|&s| gpush(100 + u128::from(s), ME, s))
            .chain(theirs.iter().map(|&s| gpush(200 + u128::from(s), BOB, s)))
            .collect();
        messages.sort_by_key(|m| m.seq);
        let page = History {
            messages,
            has_more: false,
            read_by: counts
                .iter()
                .map(|&(seq, count)| ReadCount { seq, count })
                .collect(),
        };
        c.merge_history(KG, None, &page);
        c
    }

    fn counts(c: &Chat) -> Vec<(u64, Option<u32>)> {
        let k = conv(c, KG);
        k.messages
            .iter()
            .map(|m| (m.seq, shown_read_by(&k, m)))
            .collect()
    }

    fn receipt(c: &mut Chat, by: UserId, prev: Option<u64>, seq: u64) -> bool {
        c.on_read_receipt(by, Target::Group(G), prev, seq)
    }

    #[test]
    fn pages_set_the_counts_of_our_messages() {
        let c = group(5, &[1, 3, 4], &[2], &[(3, 2), (1, 4), (2, 9)]);
        assert_eq!(
            counts(&c),
            [(1, Some(4)), (2, None), (3, Some(2)), (4, Some(0))],
            "listed, theirs not shown, unlisted = nobody yet"
        );
        // A later page is the truth again (here: someone left meanwhile).
        let mut c = c;
        let page = History {
            messages: vec![gpush(101, ME, 1)],
            has_more: true,
            read_by: vec![ReadCount { seq: 1, count: 3 }],
        };
        c.merge_history(KG, None, &page);
        assert_eq!(counts(&c)[0], (1, Some(3)));
    }

    #[test]
    fn a_receipt_counts_one_reader_for_our_messages_in_its_range() {
        let mut c = group(5, &[1, 2, 4, 6], &[3, 5], &[(1, 1)]);
        // bob's cursor: 1 -> 4. Ours at 2 and 4 gain him; 1 had him.
        assert!(receipt(&mut c, BOB, Some(1), 4));
        assert_eq!(
            counts(&c),
            [
                (1, Some(1)),
                (2, Some(1)),
                (3, None),
                (4, Some(1)),
                (5, None),
                (6, Some(0))
            ]
        );
        // carol read everything from the start.
        assert!(receipt(&mut c, CAROL, Some(0), 6));
        let shown: Vec<_> = counts(&c).into_iter().filter_map(|(_, n)| n).collect();
        assert_eq!(shown, [2, 2, 2, 1]);
        // A move over none of ours changes nothing.
        assert!(!receipt(&mut c, BOB, Some(4), 5));
        assert!(!receipt(&mut c, BOB, Some(5), 5), "not a move");
    }

    #[test]
    fn without_prev_seq_only_the_message_at_seq_counts() {
        let mut c = group(5, &[1, 2, 3], &[], &[]);
        assert!(receipt(&mut c, BOB, None, 3));
        let shown: Vec<_> = counts(&c).into_iter().filter_map(|(_, n)| n).collect();
        assert_eq!(shown, [0, 0, 1], "1 and 2 wait for the next page");
        assert!(!receipt(&mut c, BOB, None, 4), "not one of ours");
    }

    #[test]
    fn counts_stop_at_the_other_members_and_make_a_message_read() {
        let mut c = group(3, &[1], &[], &[]);
        let state = |c: &Chat| {
            let k = conv(c, KG);
            k.display_state(&k.messages[0])
        };
        assert_eq!(state(&c), MsgState::Sent);
        assert!(receipt(&mut c, BOB, Some(0), 1));
        assert_eq!(state(&c), MsgState::Sent, "1 of 2");
        assert!(receipt(&mut c, CAROL, Some(0), 1));
        assert_eq!(state(&c), MsgState::Read, "2 of 2");
        assert!(!receipt(&mut c, UserId(4), Some(0), 1), "never above 2");
        assert_eq!(counts(&c), [(1, Some(2))]);
    }

    #[test]
    fn our_fresh_messages_start_at_zero_and_count_once_stored() {
        let mut c = group(3, &[], &[1], &[]);
        c.queue_outgoing(KG, "team", "g-1".into(), "hi".into(), 5)
            .unwrap();
        assert!(!receipt(&mut c, BOB, Some(0), 2), "not stored yet");
        c.on_chat_resp(mid(9), Some("g-1"), 10, 2);
        assert_eq!(counts(&c), [(1, None), (2, Some(0))]);
        assert!(receipt(&mut c, BOB, Some(1), 2));
        assert_eq!(counts(&c), [(1, None), (2, Some(1))]);
        // One-to-one messages never show a count.
        c.on_push(&push(7, ME, BOB, 1, 1, Some("d-1")));
        let k = conv(&c, KB);
        assert_eq!(shown_read_by(&k, &k.messages[0]), None);
    }
}
