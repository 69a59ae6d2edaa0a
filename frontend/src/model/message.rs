//! One chat message and the states it moves through. The relay's
//! [`ChatMessage`] (push, history page or conversation list alike) becomes a
//! [`Message`] in exactly one place, [`Message::from_chat`].

use serde::{Deserialize, Serialize};
use shared::{ChatMessage, ChatSend, ClientFrame, Content, MsgId, Target, UserId};

/// Where a message is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MsgState {
    /// Ours, not yet confirmed by the relay (no 81).
    Sending,
    /// Ours, durably stored by the relay (81).
    Sent,
    /// Ours, acked by the recipient (92).
    Delivered,
    /// Ours, read by the peer (one-to-one) or by every other member
    /// (group). Derived from read cursors, see
    /// [`super::Conversation::display_state`].
    Read,
    /// Ours, refused (type 0) or unconfirmed after [`super::SEND_TIMEOUT_MS`].
    Failed,
    /// Theirs.
    Received,
}

impl MsgState {
    /// The `data-state` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgState::Sending => "sending",
            MsgState::Sent => "sent",
            MsgState::Delivered => "delivered",
            MsgState::Read => "read",
            MsgState::Failed => "failed",
            MsgState::Received => "received",
        }
    }

    /// How far along a message of ours is; states never move backwards
    /// (a late 81 must not undo a 92).
    pub(super) fn rank(self) -> u8 {
        match self {
            MsgState::Failed | MsgState::Sending => 0,
            MsgState::Sent => 1,
            MsgState::Delivered => 2,
            MsgState::Read => 3,
            MsgState::Received => 4,
        }
    }
}

/// One chat message, ours or theirs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The relay's id, once known (always known for theirs).
    #[serde(default)]
    pub msg_id: Option<MsgId>,
    /// The sender's idempotency key.
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// Who wrote it.
    pub from_id: UserId,
    /// Their username.
    pub from_name: String,
    /// The text, shown verbatim (never as HTML).
    pub body: String,
    /// Relay time once stored; local time while sending.
    pub ts: i64,
    /// Position in the conversation; 0 until the relay assigns one.
    #[serde(default)]
    pub seq: u64,
    /// Whether we wrote it (possibly in another tab).
    pub mine: bool,
    /// Its state (as far as our own frames tell; read receipts are applied
    /// on display).
    pub state: MsgState,
    /// Local time it was last put on the wire (for the send timeout). Not
    /// cached: after a reload it is set again when the message is resent.
    #[serde(skip)]
    pub last_sent_at: i64,
    /// Why it failed, for the tooltip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Ours in a group: how many other members have read it, as counted in
    /// `read_by.rs` (history pages, then 71 frames). 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub read_by: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Message {
    /// Ordering key: stored messages by `seq`, then ours that the relay
    /// has not numbered yet, in the order they were written.
    pub(super) fn sort_key(&self) -> (bool, u64, i64) {
        (self.seq == 0, self.seq, self.ts)
    }

    /// The CHAT frame that (re)sends this message, same `clientMsgId`.
    pub fn send_frame(&self, to: Target) -> ClientFrame {
        ClientFrame::Chat(ChatSend {
            from_id: None,
            to,
            client_msg_id: self.client_msg_id.clone(),
            content: Content::text(self.body.clone()),
        })
    }

    /// A stable key for rendering lists.
    pub fn key(&self) -> String {
        match (&self.client_msg_id, &self.msg_id) {
            (Some(c), _) if self.mine => format!("c:{c}"),
            (_, Some(m)) => format!("m:{m}"),
            (Some(c), None) => format!("c:{c}"),
            (None, None) => format!("t:{}:{}", self.ts, self.seq),
        }
    }

    /// A message as the relay sends it: pushed (type 80), in a history
    /// page or as a conversation's last message. The one mapping from the
    /// wire shape: ours (`from_id == me`, possibly from another tab) start
    /// as sent, theirs as received.
    pub fn from_chat(m: &ChatMessage, me: UserId) -> Message {
        let mine = m.from_id == me;
        Message {
            msg_id: Some(m.msg_id),
            client_msg_id: m.client_msg_id.clone(),
            from_id: m.from_id,
            from_name: m.from_name.clone(),
            body: m.content.body.clone(),
            ts: m.ts,
            seq: m.seq,
            mine,
            state: if mine {
                MsgState::Sent
            } else {
                MsgState::Received
            },
            last_sent_at: 0,
            error: None,
            read_by: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn one_mapping_for_every_message_from_the_relay() {
        let theirs = Message::from_chat(&push(1, BOB, ME, 100, 3, Some("b-1")), ME);
        assert_eq!(
            (theirs.msg_id, theirs.from_id, theirs.ts, theirs.seq),
            (Some(mid(1)), BOB, 100, 3)
        );
        assert_eq!(
            (theirs.from_name.as_str(), theirs.body.as_str()),
            ("bob", "body 1")
        );
        assert_eq!((theirs.mine, theirs.state), (false, MsgState::Received));
        assert_eq!(theirs.key(), format!("m:{}", mid(1)), "theirs by msgId");
        // Ours, from another tab: sent, keyed by clientMsgId like the local
        // copy it may merge into.
        let ours = Message::from_chat(&push(2, ME, BOB, 5, 1, Some("w-1")), ME);
        assert_eq!((ours.mine, ours.state), (true, MsgState::Sent));
        assert_eq!(ours.key(), "c:w-1");
        assert_eq!(ours.client_msg_id.as_deref(), Some("w-1"));
    }
}
