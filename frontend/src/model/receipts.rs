//! Read cursors: ours (unread counts, the READ to send) and the others'
//! (our messages read by the peer, or by members of a group).

use super::{Chat, ConvKey};
use shared::{Target, UserId};

impl Chat {
    /// READ_RECEIPT (71): `by`'s cursor moved from `prev` (when the relay
    /// says) to `seq`. From us (another tab, or the echo of our own READ):
    /// our cursor, hence the unread count. From the peer: their cursor,
    /// hence our messages' read state. From a group member: one more reader
    /// for our messages in between (see `read_by.rs`).
    pub fn on_read_receipt(&mut self, by: UserId, to: Target, prev: Option<u64>, seq: u64) -> bool {
        let Some(me) = self.me else { return false };
        if by == me {
            return self.mark_read(
                match to {
                    Target::User(u) => ConvKey::User(u),
                    Target::Group(g) => ConvKey::Group(g),
                },
                seq,
            );
        }
        match to {
            Target::User(_) => match self.existing_mut(ConvKey::User(by)) {
                Some(c) if c.peer_read_seq < seq => {
                    c.peer_read_seq = seq;
                    c.peer_delivered_seq = c.peer_delivered_seq.max(seq);
                    true
                }
                _ => false,
            },
            Target::Group(g) => self.count_group_reader(g, prev, seq),
        }
    }

    /// Our read cursor moved (we sent READ, or another tab did). Returns
    /// whether anything changed.
    pub fn mark_read(&mut self, key: ConvKey, seq: u64) -> bool {
        let Some(c) = self.conversations.get(&key) else {
            return false;
        };
        if seq <= c.read_seq {
            return false;
        }
        let c = self.existing_mut(key).expect("exists");
        c.read_seq = seq;
        c.last_seq = c.last_seq.max(seq);
        c.recount_unread();
        true
    }

    /// The READ to send now, if any: the open conversation, while the page
    /// is visible, up to the newest message held, when that is past our
    /// cursor and something from others is unread.
    pub fn read_candidate(&self) -> Option<(ConvKey, u64)> {
        if !self.visible {
            return None;
        }
        let c = self.active_conversation()?;
        if c.read_only() {
            return None;
        }
        let top = c.top_seq();
        (top > c.read_seq && (c.unread > 0 || c.unread_held())).then_some((c.key, top))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::model::shown_read_by;
    use crate::model::MsgState;
    use shared::api::{History, ReadCount};
    use shared::{GroupEvent, GroupEventKind, Target};

    #[test]
    fn unread_counts_theirs_unless_on_screen_and_reads_clear_it() {
        let mut c = chat();
        c.on_push(&push(60, BOB, ME, 1, 1, None));
        c.on_push(&push(61, BOB, ME, 2, 2, None));
        c.on_push(&push(62, CAROL, ME, 3, 1, None));
        c.on_push(&push(63, ME, BOB, 4, 3, Some("x")));
        assert_eq!(conv(&c, KB).unread, 2);
        assert_eq!(conv(&c, KC).unread, 1);
        assert_eq!(c.total_unread(), 3);
        // Opening shows it; the READ for what is on screen clears it.
        c.open(KB, "bob", 10);
        assert_eq!(c.active, Some(KB));
        assert_eq!(c.read_candidate(), Some((KB, 3)));
        assert!(c.mark_read(KB, 3));
        assert_eq!(conv(&c, KB).unread, 0);
        assert_eq!(c.read_candidate(), None, "only when it advances");
        assert!(!c.mark_read(KB, 2), "never back");
        // On screen: no badge, and the next READ is due.
        c.on_push(&push(64, BOB, ME, 5, 4, None));
        assert_eq!(conv(&c, KB).unread, 0);
        assert_eq!(c.read_candidate(), Some((KB, 4)));
        // Hidden page: it counts, and nothing is read.
        c.visible = false;
        c.on_push(&push(65, BOB, ME, 6, 5, None));
        assert_eq!(conv(&c, KB).unread, 1);
        assert_eq!(c.read_candidate(), None);
        c.visible = true;
        assert_eq!(c.read_candidate(), Some((KB, 5)));
        c.on_push(&push(66, CAROL, ME, 7, 2, None));
        assert_eq!(conv(&c, KC).unread, 2);
        // Our own reading in another tab (71 with byId = us).
        assert!(c.on_read_receipt(ME, Target::User(CAROL), Some(0), 2));
        assert_eq!(conv(&c, KC).unread, 0);
        // Most recent first.
        let order: Vec<_> = c.sorted_conversations().iter().map(|c| c.key).collect();
        assert_eq!(order, [KC, KB]);
    }

    #[test]
    fn group_messages_show_read_by_counts_from_receipts() {
        let mut c = chat();
        c.set_group_info(&group_info(&[(ME, 0), (BOB, 0), (CAROL, 0)]), 0);
        c.open(KG, "team", 0);
        c.queue_outgoing(KG, "team", "g-1".into(), "hello team".into(), 1)
            .unwrap();
        c.on_chat_resp(mid(1), Some("g-1"), 10, 1);
        let state = |c: &Chat| {
            let k = conv(c, KG);
            let m = &k.messages[0];
            (k.display_state(m), shown_read_by(&k, m))
        };
        assert_eq!(state(&c), (MsgState::Sent, Some(0)));
        assert!(c.on_read_receipt(BOB, Target::Group(G), Some(0), 1));
        assert_eq!(state(&c), (MsgState::Sent, Some(1)));
        assert!(
            !c.on_read_receipt(BOB, Target::Group(G), Some(1), 1),
            "no change"
        );
        assert!(c.on_read_receipt(CAROL, Target::Group(G), Some(0), 3));
        assert_eq!(state(&c), (MsgState::Read, Some(2)), "everyone read it");
        // Initial counts come with the history page. A member who leaves
        // still counts until the next page says otherwise.
        let mut d = chat();
        d.set_group_info(&group_info(&[(ME, 0), (BOB, 5), (CAROL, 0)]), 0);
        let page = |count: u32| History {
            messages: vec![gpush(2, ME, 4)],
            has_more: false,
            read_by: vec![ReadCount { seq: 4, count }],
        };
        d.merge_history(KG, None, &page(1));
        let k = conv(&d, KG);
        assert_eq!(shown_read_by(&k, &k.messages[0]), Some(1));
        let left = GroupEvent {
            group_id: G,
            kind: GroupEventKind::MemberLeft,
            user_id: Some(BOB),
            username: Some("bob".into()),
            by_id: None,
            name: Some("team".into()),
        };
        assert_eq!(d.on_group_event(&left, 0), (true, None));
        let k = conv(&d, KG);
        assert_eq!(shown_read_by(&k, &k.messages[0]), Some(1));
        assert_eq!(k.group.as_ref().unwrap().members.list.len(), 2);
        d.merge_history(KG, None, &page(0));
        let k = conv(&d, KG);
        assert_eq!(shown_read_by(&k, &k.messages[0]), Some(0));
    }
}
