//! Our outgoing messages: queued as sending, confirmed by the relay (81),
//! delivered (92), failed (type 0 or no answer in time), retried, and resent
//! after a reconnect with the same `clientMsgId`.

use super::{Chat, ConvKey, Message, MsgState};
use shared::{ClientFrame, ErrorFrame, MsgId};
use std::rc::Rc;

/// A message of ours with no CHAT_RESP (81) this long after it went out is
/// marked failed, so the user can retry it.
pub const SEND_TIMEOUT_MS: i64 = 10_000;

/// How many early delivery receipts (92 before our 81) are remembered.
pub(super) const MAX_EARLY_RECEIPTS: usize = 64;

impl Chat {
    /// Queues a new message of ours (state sending) and returns its frame.
    pub fn queue_outgoing(
        &mut self,
        key: ConvKey,
        name: &str,
        client_msg_id: String,
        body: String,
        now: i64,
    ) -> Option<ClientFrame> {
        let me = self.me?;
        let my_name = self.my_name.clone();
        let c = self.conv_mut(key, name, now);
        if c.read_only() {
            return None;
        }
        let m = Message {
            msg_id: None,
            client_msg_id: Some(client_msg_id),
            from_id: me,
            from_name: my_name,
            body,
            ts: now,
            seq: 0,
            mine: true,
            state: MsgState::Sending,
            last_sent_at: now,
            error: None,
            read_by: 0,
        };
        let frame = m.send_frame(key.target());
        c.insert(m);
        c.last_activity = c.last_activity.max(now);
        Some(frame)
    }

    /// CHAT_RESP (81): our message is stored. Returns whether it matched.
    pub fn on_chat_resp(
        &mut self,
        msg_id: MsgId,
        client_msg_id: Option<&str>,
        ts: i64,
        seq: u64,
    ) -> bool {
        let found = client_msg_id
            .and_then(|cid| self.find_mine(cid))
            .or_else(|| self.find_msg(&msg_id));
        let Some((key, i)) = found else {
            return false;
        };
        let early = self.early_receipts.contains(&msg_id);
        self.early_receipts.retain(|x| *x != msg_id);
        let c = self.existing_mut(key).expect("found");
        let m = &mut c.messages[i];
        m.msg_id = Some(msg_id);
        m.ts = ts;
        m.seq = seq;
        m.error = None;
        let target = if early {
            MsgState::Delivered
        } else {
            MsgState::Sent
        };
        if m.state.rank() < target.rank() {
            m.state = target;
        }
        c.last_seq = c.last_seq.max(seq);
        c.last_activity = c.last_activity.max(ts);
        c.reposition(i);
        true
    }

    /// DELIVERED (92), matched by `msgId`. A receipt for a message we do not
    /// know yet is kept until its 81 arrives.
    pub fn on_delivered(&mut self, msg_id: MsgId) -> bool {
        match self.find_msg(&msg_id) {
            Some((key, i)) => {
                let c = self.existing_mut(key).expect("found");
                let m = &mut c.messages[i];
                if m.mine && m.state.rank() < MsgState::Delivered.rank() {
                    m.state = MsgState::Delivered;
                    m.error = None;
                }
                true
            }
            None => {
                if !self.early_receipts.contains(&msg_id) {
                    if self.early_receipts.len() >= MAX_EARLY_RECEIPTS {
                        self.early_receipts.remove(0);
                    }
                    self.early_receipts.push(msg_id);
                }
                false
            }
        }
    }

    /// A type 0 error: when it names one of our sending messages by
    /// `clientMsgId`, that message fails. Returns whether it matched.
    pub fn on_error(&mut self, e: &ErrorFrame) -> bool {
        let Some((key, i)) = e.client_msg_id.as_deref().and_then(|c| self.find_mine(c)) else {
            return false;
        };
        let c = self.existing_mut(key).expect("found");
        let m = &mut c.messages[i];
        if m.state != MsgState::Sending {
            return false;
        }
        m.state = MsgState::Failed;
        m.error = Some(if e.message.is_empty() {
            e.code.to_string()
        } else {
            e.message.clone()
        });
        true
    }

    /// Marks messages failed that have waited too long for their 81.
    /// Returns whether anything changed.
    pub fn expire(&mut self, now: i64) -> bool {
        let mut changed = false;
        for rc in self.conversations.values_mut() {
            let overdue = |m: &Message| {
                m.state == MsgState::Sending && now - m.last_sent_at >= SEND_TIMEOUT_MS
            };
            if rc.messages.iter().any(overdue) {
                let c = Rc::make_mut(rc);
                for m in c.messages.iter_mut().filter(|m| overdue(m)) {
                    m.state = MsgState::Failed;
                    m.error = Some("no answer from the relay".into());
                    changed = true;
                }
            }
        }
        changed
    }

    /// The user pressed retry: the failed message goes back to sending and
    /// its frame (same `clientMsgId`, so never a duplicate) is returned.
    pub fn retry(&mut self, client_msg_id: &str, now: i64) -> Option<ClientFrame> {
        let (key, i) = self.find_mine(client_msg_id)?;
        let c = self.existing_mut(key).expect("found");
        if c.read_only() {
            return None;
        }
        let m = &mut c.messages[i];
        if m.state != MsgState::Failed {
            return None;
        }
        m.state = MsgState::Sending;
        m.error = None;
        m.last_sent_at = now;
        Some(m.send_frame(key.target()))
    }

    /// The frame of one of our messages that is sending (after a retry).
    pub fn sending_frame(&self, client_msg_id: &str) -> Option<ClientFrame> {
        let (key, i) = self.find_mine(client_msg_id)?;
        let m = &self.conversations.get(&key)?.messages[i];
        (m.state == MsgState::Sending).then(|| m.send_frame(key.target()))
    }

    /// The frames of every message still sending, oldest first: resent after
    /// a (re)connect with their original `clientMsgId`.
    pub fn pending_frames(&self) -> Vec<ClientFrame> {
        let mut v: Vec<(i64, ClientFrame)> = Vec::new();
        for c in self.conversations.values().filter(|c| !c.read_only()) {
            for m in c.messages.iter() {
                if m.mine && m.state == MsgState::Sending {
                    let at = v.partition_point(|(ts, _)| *ts <= m.ts);
                    v.insert(at, (m.ts, m.send_frame(c.key.target())));
                }
            }
        }
        v.into_iter().map(|(_, f)| f).collect()
    }

    /// After (re)login the pending messages are about to be resent: restart
    /// their timeout clocks.
    pub fn mark_resent(&mut self, now: i64) {
        for rc in self.conversations.values_mut() {
            if rc.messages.iter().any(|m| m.state == MsgState::Sending) {
                for m in Rc::make_mut(rc).messages.iter_mut() {
                    if m.state == MsgState::Sending {
                        m.last_sent_at = now;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use shared::{ErrorCode, Target};

    #[test]
    fn sending_then_sent_then_delivered_then_read() {
        let mut c = chat();
        let f = c
            .queue_outgoing(KB, "bob", "w-2".into(), "hello".into(), 100)
            .unwrap();
        assert_eq!(cid_of(&f).as_deref(), Some("w-2"));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Sending);
        assert_eq!(msgs(&c, KB)[0].msg_id, None);
        assert!(c.on_chat_resp(mid(20), Some("w-2"), 2_000, 7));
        let m = &msgs(&c, KB)[0];
        assert_eq!(
            (m.state, m.msg_id, m.ts, m.seq),
            (MsgState::Sent, Some(mid(20)), 2_000, 7)
        );
        assert!(!c.on_delivered(mid(99)));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Sent);
        assert!(c.on_delivered(mid(20)));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Delivered);
        // A duplicate 81 (resend after reconnect) must not regress it.
        assert!(c.on_chat_resp(mid(20), Some("w-2"), 2_000, 7));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Delivered);
        // bob reads up to 6: not yet ours; up to 7: read.
        let shown = |c: &Chat| {
            let k = conv(c, KB);
            k.display_state(&k.messages[0])
        };
        assert!(c.on_read_receipt(BOB, Target::User(ME), Some(0), 6));
        assert_eq!(shown(&c), MsgState::Delivered);
        assert!(c.on_read_receipt(BOB, Target::User(ME), Some(6), 7));
        assert_eq!(shown(&c), MsgState::Read);
        assert!(
            !c.on_read_receipt(BOB, Target::User(ME), None, 5),
            "never back"
        );
        assert_eq!(shown(&c), MsgState::Read);
    }

    #[test]
    fn a_receipt_before_the_81_is_applied_when_the_81_arrives() {
        let mut c = chat();
        c.queue_outgoing(KB, "bob", "w-3".into(), "x".into(), 100)
            .unwrap();
        assert!(!c.on_delivered(mid(30)));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Sending);
        c.on_chat_resp(mid(30), Some("w-3"), 200, 1);
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Delivered);
    }

    #[test]
    fn timeout_fails_and_retry_resends_with_the_same_client_msg_id() {
        let mut c = chat();
        c.queue_outgoing(KB, "bob", "w-4".into(), "again".into(), 0)
            .unwrap();
        assert!(!c.expire(SEND_TIMEOUT_MS - 1));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Sending);
        assert!(c.expire(SEND_TIMEOUT_MS));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Failed);
        assert!(!c.expire(SEND_TIMEOUT_MS * 5), "already failed");
        assert!(c.pending_frames().is_empty());

        let f = c
            .retry("w-4", 20_000)
            .expect("failed messages can be retried");
        assert_eq!(cid_of(&f).as_deref(), Some("w-4"));
        match &f {
            ClientFrame::Chat(s) => {
                assert_eq!(s.to, Target::User(BOB));
                assert_eq!(s.content.body, "again");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.sending_frame("w-4"), Some(f));
        let m = &msgs(&c, KB)[0];
        assert_eq!((m.state, m.last_sent_at), (MsgState::Sending, 20_000));
        assert_eq!(msgs(&c, KB).len(), 1, "retry never duplicates");
        assert_eq!(c.retry("w-4", 20_001), None);
        assert_eq!(c.retry("nope", 20_001), None);
        assert!(!c.expire(20_000 + SEND_TIMEOUT_MS - 1));
        c.expire(20_000 + SEND_TIMEOUT_MS);
        assert!(c.on_chat_resp(mid(40), Some("w-4"), 3, 1));
        assert_eq!(msgs(&c, KB)[0].state, MsgState::Sent);
    }

    #[test]
    fn errors_fail_exactly_the_message_they_name() {
        let mut c = chat();
        c.queue_outgoing(KB, "bob", "w-5".into(), "a".into(), 0)
            .unwrap();
        c.queue_outgoing(KB, "bob", "w-6".into(), "b".into(), 1)
            .unwrap();
        let err = |cid: Option<&str>| ErrorFrame {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            req_type: Some("80".into()),
            client_msg_id: cid.map(str::to_owned),
            msg_id: None,
        };
        assert!(!c.on_error(&err(None)));
        assert!(!c.on_error(&err(Some("unknown"))));
        assert!(c.on_error(&err(Some("w-6"))));
        let m = msgs(&c, KB);
        let by = |cid: &str| {
            m.iter()
                .find(|m| m.client_msg_id.as_deref() == Some(cid))
                .unwrap()
        };
        assert_eq!(by("w-5").state, MsgState::Sending);
        assert_eq!(by("w-6").state, MsgState::Failed);
        assert_eq!(by("w-6").error.as_deref(), Some("slow down"));
        c.on_chat_resp(mid(50), Some("w-5"), 10, 1);
        assert!(!c.on_error(&err(Some("w-5"))));
        assert_eq!(
            c.retry("w-6", 5).and_then(|f| cid_of(&f)).as_deref(),
            Some("w-6")
        );
    }

    #[test]
    fn pending_messages_are_resent_oldest_first_to_users_and_groups() {
        let mut c = chat();
        c.queue_outgoing(KG, "team", "w-b".into(), "second".into(), 20)
            .unwrap();
        c.queue_outgoing(KB, "bob", "w-a".into(), "first".into(), 10)
            .unwrap();
        c.queue_outgoing(KB, "bob", "w-c".into(), "stored".into(), 30)
            .unwrap();
        c.on_chat_resp(mid(80), Some("w-c"), 31, 1);
        let frames = c.pending_frames();
        let cids: Vec<_> = frames.iter().filter_map(cid_of).collect();
        assert_eq!(cids, ["w-a", "w-b"]);
        match &frames[1] {
            ClientFrame::Chat(s) => assert_eq!(s.to, Target::Group(G)),
            other => panic!("{other:?}"),
        }
        c.mark_resent(5_000);
        assert!(!c.expire(5_000 + SEND_TIMEOUT_MS - 1));
    }
}
