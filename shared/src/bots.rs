//! Bots' shared shapes: `POST /api/messages` (any token, a bot's or a
//! user's) and the JSON of an outgoing webhook, both ways. See
//! `docs/bots.md` and `docs/protocol.md`.

use crate::frame::{Content, Target};
use crate::ids::{GroupId, MsgId, UserId};
use crate::limits::CONTENT_TYPE_TEXT;
use crate::message::ChatMessage;
use serde::{Deserialize, Serialize};

/// The header carrying a webhook delivery's signature:
/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "X-Ferrochat-Signature";

/// `POST /api/messages` request body: exactly one of `toId` / `groupId`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessage {
    /// A user (one-to-one message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_id: Option<UserId>,
    /// A group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<GroupId>,
    /// Idempotency key, as on the WebSocket: a repeat answers the
    /// original and stores nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// The content.
    pub content: Content,
}

impl SendMessage {
    /// The recipient, if exactly one is named.
    pub fn target(&self) -> Option<Target> {
        match (self.to_id, self.group_id) {
            (Some(u), None) => Some(Target::User(u)),
            (None, Some(g)) => Some(Target::Group(g)),
            _ => None,
        }
    }
}

/// `201` (new) or `200` (a repeated `clientMsgId`) from
/// `POST /api/messages`: the message is durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSent {
    /// Its id.
    pub msg_id: MsgId,
    /// Storage time, ms since the Unix epoch.
    pub ts: i64,
    /// Its position in the conversation.
    pub seq: u64,
    /// Whether this answers a repeat of an earlier request.
    pub duplicate: bool,
}

/// A bot as a webhook delivery names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotRef {
    /// The bot's user id.
    pub user_id: UserId,
    /// Its username.
    pub username: String,
}

/// The body of a webhook delivery (`POST` to the bot's URL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// Always `"message"` for now.
    pub event: String,
    /// The delivery's id: the same on every retry of it.
    pub delivery_id: i64,
    /// Which bot this is for.
    pub bot: BotRef,
    /// The message, as pushed on the WebSocket (`toId` is the bot for a
    /// one-to-one message; `groupId` for a group's).
    pub message: ChatMessage,
}

/// What a webhook may answer (any 2xx): `{"reply": {"body": "…"}}` posts
/// a message from the bot back into the same conversation. Anything else
/// (an empty body, other JSON) just acknowledges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAnswer {
    /// The message to post back.
    #[serde(default)]
    pub reply: Option<WebhookReply>,
}

/// A reply's content; `contentType` defaults to text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReply {
    /// One of `limits::ALLOWED_CONTENT_TYPES`.
    #[serde(default = "text_type")]
    pub content_type: u16,
    /// The text.
    pub body: String,
}

fn text_type() -> u16 {
    CONTENT_TYPE_TEXT
}

impl WebhookReply {
    /// As chat content.
    pub fn content(self) -> Content {
        Content {
            content_type: self.content_type,
            body: self.body,
        }
    }
}

/// The `clientMsgId` of the reply to delivered message `msg_id`: the same
/// for every retry, so a redelivery never posts twice.
pub fn reply_key(msg_id: MsgId) -> String {
    format!("re:{msg_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_replies() {
        let s: SendMessage =
            serde_json::from_str(r#"{"toId":"2","content":{"contentType":1,"body":"hi"}}"#)
                .unwrap();
        assert_eq!(s.target(), Some(Target::User(UserId(2))));
        let both: SendMessage = serde_json::from_str(
            r#"{"toId":"2","groupId":"3","content":{"contentType":1,"body":"hi"}}"#,
        )
        .unwrap();
        assert_eq!(both.target(), None);
        let a: WebhookAnswer = serde_json::from_str(r#"{"reply":{"body":"pong"}}"#).unwrap();
        assert_eq!(a.reply.unwrap().content(), Content::text("pong"));
        assert!(
            crate::validate::client_msg_id(&reply_key(uuid::Uuid::from_u128(u128::MAX))).is_ok()
        );
    }
}
