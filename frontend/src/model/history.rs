//! What comes from the HTTP API about conversations: the conversation list
//! (`GET /api/conversations`) and history pages, merged with what is held
//! and with live pushes.

use super::{Chat, ConvKey, HistoryState, Message};
use shared::api::{ConversationSummary, History};

/// History page size (`limit`).
pub const HISTORY_PAGE: u32 = 50;

impl Chat {
    /// `GET /api/conversations`: the server's list is the source of truth
    /// for which conversations exist, their names, cursors and unread
    /// counts; live pushes that arrived meanwhile are kept on top.
    pub fn apply_summaries(&mut self, list: &[ConversationSummary]) {
        let Some(me) = self.me else { return };
        let mut listed = Vec::with_capacity(list.len());
        for s in list {
            let (key, name) = match (&s.group, &s.peer) {
                (Some(g), _) => (ConvKey::Group(g.group_id), g.name.clone()),
                (None, Some(p)) => (ConvKey::User(p.user_id), p.username.clone()),
                (None, None) => continue,
            };
            listed.push(key);
            // Ordered by the server's activity, not by when we learned of it.
            let ts = s.last_message.as_ref().map_or(0, |m| m.ts);
            let c = self.conv_mut(key, &name, ts);
            if c.name != name {
                c.name = name;
            }
            if let (Some(g), Some(meta)) = (&s.group, c.group.as_mut()) {
                meta.owner_id = Some(g.owner_id);
                meta.public = g.public;
                meta.member_count = g.member_count;
                meta.gone = None;
            }
            if let Some(v) = &s.last_message {
                c.upsert(Message::from_chat(v, me), false);
                c.last_activity = c.last_activity.max(v.ts);
            }
            // Pushed after the server counted: on top of its count.
            let newer = c
                .messages
                .iter()
                .filter(|m| !m.mine && m.seq > s.last_seq && m.seq > s.read_seq)
                .count() as u32;
            let local_read = c.read_seq;
            c.read_seq = c.read_seq.max(s.read_seq);
            c.last_seq = c.last_seq.max(s.last_seq);
            c.unread = u32::try_from(s.unread).unwrap_or(u32::MAX) + newer;
            if local_read > s.read_seq {
                c.recount_unread();
            }
            c.peer_read_seq = c.peer_read_seq.max(s.peer_read_seq.unwrap_or(0));
            c.peer_delivered_seq = c.peer_delivered_seq.max(s.peer_delivered_seq.unwrap_or(0));
        }
        // Gone from the server: groups we left or were removed from while
        // away. Kept: purely local chats (nothing stored yet) and groups
        // shown read-only with a notice.
        self.conversations.retain(|c| {
            listed.contains(&c.key) || c.read_only() || c.messages.iter().all(|m| m.seq == 0)
        });
        if self
            .active
            .is_some_and(|a| !self.conversations.contains_key(&a))
        {
            self.active = None;
        }
    }

    /// A history request is in flight (or failed: `false`).
    pub fn set_loading(&mut self, key: ConvKey, loading: bool) -> bool {
        match self.existing_mut(key) {
            Some(c) if c.history.loading != loading => {
                c.history.loading = loading;
                true
            }
            _ => false,
        }
    }

    /// A history page: `before` = `None` for the latest page. Merged by
    /// `msgId`; after the latest page, stored messages older than a gap are
    /// dropped so what shows is always one unbroken run up to the newest.
    pub fn merge_history(&mut self, key: ConvKey, before: Option<u64>, page: &History) {
        let Some(me) = self.me else { return };
        let Some(c) = self.existing_mut(key) else {
            return;
        };
        c.history.loading = false;
        if before.is_some() && (!c.history.loaded || c.history.from_seq != before) {
            return; // stale: an answer for an older state of the list
        }
        for v in &page.messages {
            c.upsert(Message::from_chat(v, me), true);
        }
        if key.is_group() {
            c.set_read_counts(&page.messages, &page.read_by, me);
        }
        let Some(first) = page.messages.first().map(|m| m.seq) else {
            if before.is_some() {
                c.history.has_more = false;
            } else {
                // Nothing on the server: anything stored here is stale.
                c.messages.retain(|m| m.seq == 0);
                c.history = HistoryState {
                    loaded: true,
                    ..HistoryState::default()
                };
            }
            return;
        };
        if let Some(v) = page.messages.last() {
            c.last_seq = c.last_seq.max(v.seq);
            c.last_activity = c.last_activity.max(v.ts);
        }
        if before.is_some() {
            c.history.from_seq = Some(first);
            c.history.has_more = page.has_more;
            return;
        }
        // Latest page: extend the run downwards over what is already held
        // (older pages loaded before a reconnect), drop what lies below a
        // gap.
        let seqs: Vec<u64> = c
            .messages
            .iter()
            .map(|m| m.seq)
            .filter(|s| *s > 0)
            .collect();
        let mut i = seqs.partition_point(|s| *s < first);
        while i > 0 && seqs[i - 1] + 1 == seqs[i] {
            i -= 1;
        }
        let low = seqs.get(i).copied().unwrap_or(first);
        c.messages.retain(|m| m.seq == 0 || m.seq >= low);
        let h = &c.history;
        let has_more = if low == first {
            page.has_more
        } else if h.loaded && h.from_seq == Some(low) {
            h.has_more
        } else {
            true
        };
        c.history = HistoryState {
            loaded: true,
            from_seq: Some(low),
            has_more,
            loading: false,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::model::{MsgState, PushOutcome};
    use shared::api::ConversationKind;
    use shared::Target;

    #[test]
    fn history_pages_merge_with_pushes_without_duplicates_or_gaps() {
        let mut c = chat();
        // Offline-first: an old cached message far below the latest page.
        c.on_push(&push(1_003, BOB, ME, 30, 3, None));
        // A push that arrived while the page was loading.
        c.open(KB, "bob", 0);
        assert!(c.set_loading(KB, true));
        c.on_push(&push(1_101, BOB, ME, 1_010, 101, None));
        c.merge_history(KB, None, &page(52, 100, true));
        let h = &conv(&c, KB).history;
        assert_eq!(
            (h.loaded, h.from_seq, h.has_more, h.loading),
            (true, Some(52), true, false)
        );
        assert_eq!(
            seqs(&c, KB),
            (52..=101).collect::<Vec<_>>(),
            "seq 3 was below a gap"
        );
        assert_eq!(conv(&c, KB).older_cursor(), Some(52));
        // A re-push of an old message from below the run waits for its page.
        assert_eq!(
            c.on_push(&push(1_010, BOB, ME, 100, 10, None)),
            PushOutcome::Duplicate
        );
        // Older pages prepend; a stale answer (wrong cursor) is ignored.
        c.merge_history(KB, Some(40), &page(1, 39, false));
        assert_eq!(conv(&c, KB).history.from_seq, Some(52));
        c.merge_history(KB, Some(52), &page(2, 51, true));
        assert_eq!(conv(&c, KB).older_cursor(), Some(2));
        c.merge_history(KB, Some(2), &page(1, 1, false));
        assert_eq!(seqs(&c, KB), (1..=101).collect::<Vec<_>>());
        assert_eq!(conv(&c, KB).older_cursor(), None, "start reached");
        // After a reconnect the latest page again: everything kept, once.
        c.merge_history(KB, None, &page(60, 101, true));
        assert_eq!(seqs(&c, KB), (1..=101).collect::<Vec<_>>());
        let h = &conv(&c, KB).history;
        assert_eq!((h.from_seq, h.has_more), (Some(1), false));
        // An empty older page ends the paging.
        let mut d = chat();
        d.open(KB, "bob", 0);
        d.merge_history(KB, None, &page(5, 9, true));
        d.merge_history(KB, Some(5), &page(1, 0, true));
        assert_eq!(conv(&d, KB).older_cursor(), None);
    }

    #[test]
    fn history_merges_our_unacknowledged_message_by_client_msg_id() {
        let mut c = chat();
        c.open(KB, "bob", 0);
        c.queue_outgoing(KB, "bob", "w-h".into(), "mine".into(), 5)
            .unwrap();
        let mut v = view(77, ME, 1, Target::User(BOB));
        v.client_msg_id = Some("w-h".into());
        c.merge_history(
            KB,
            None,
            &History {
                messages: vec![v],
                has_more: false,
                read_by: vec![],
            },
        );
        let m = msgs(&c, KB);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].seq, m[0].state), (1, MsgState::Sent));
        // An empty conversation on the server drops stale stored messages
        // but keeps unsent ones.
        let mut d = chat();
        d.on_push(&push(5, BOB, ME, 1, 1, None));
        d.queue_outgoing(KB, "bob", "w-x".into(), "x".into(), 2);
        d.merge_history(KB, None, &page(1, 0, false));
        assert_eq!(seqs(&d, KB), [0]);
    }

    #[test]
    fn summaries_are_the_source_of_truth_and_keep_later_pushes() {
        let mut c = chat();
        // Cached: a group we have since left, and a chat with nothing sent.
        c.on_push(&gpush(1, BOB, 1));
        c.open(KC, "carol", 0);
        // A pending push (seq 4) arrived before the list; seq 5 after it.
        c.on_push(&push(504, BOB, ME, 40, 4, None));
        assert_eq!(conv(&c, KB).unread, 1);
        c.apply_summaries(&[summary_direct(BOB, 4, 3, 1)]);
        assert_eq!(conv(&c, KB).unread, 3, "the server's count, not 3 + 1");
        assert_eq!(seqs(&c, KB), [4], "last message deduped with the push");
        assert!(c.conversation(KG).is_none(), "left while away");
        assert!(c.conversation(KC).is_some(), "local chat kept");
        c.on_push(&push(505, BOB, ME, 50, 5, None));
        assert_eq!(conv(&c, KB).unread, 4);
        // A list computed before seq 5 was stored counts it on top.
        c.apply_summaries(&[summary_direct(BOB, 4, 3, 1)]);
        assert_eq!(conv(&c, KB).unread, 4);
        assert_eq!(conv(&c, KB).read_seq, 1);
        // A group from the list, newest first by its last message.
        let mut g = summary_direct(BOB, 0, 0, 0);
        g.kind = ConversationKind::Group;
        g.peer = None;
        g.group = Some(group_summary("team", 3));
        g.last_message = Some(view(700, CAROL, 2, Target::Group(G)));
        g.last_seq = 2;
        g.unread = 2;
        c.apply_summaries(&[g, summary_direct(BOB, 5, 4, 1)]);
        let k = conv(&c, KG);
        assert_eq!((k.name.as_str(), k.unread), ("team", 2));
        assert_eq!(k.group.as_ref().unwrap().member_count, 3);
        assert_eq!(c.sorted_conversations()[0].key, KB, "bob's seq 5 is newer");
    }
}
