//! A stored chat message: one shape for the type 80 push, the history API
//! and the conversation list, so a client maps messages from the relay in
//! one place.

use crate::frame::{Content, Target};
use crate::ids::{GroupId, MsgId, UserId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A chat message as the relay stored it. In JSON (the push frame's fields
/// and the HTTP API alike) the recipient is `toId` for a one-to-one message
/// and `groupId` for a group message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// Relay-assigned id (UUIDv7). Dedupe and ack by this.
    pub msg_id: MsgId,
    /// The authenticated sender.
    pub from_id: UserId,
    /// The sender's username, for display.
    pub from_name: String,
    /// The recipient (one-to-one) or the group.
    pub to: Target,
    /// The content.
    pub content: Content,
    /// When the relay stored it, milliseconds since the Unix epoch.
    pub ts: i64,
    /// Position in the conversation (1, 2, 3, … per conversation).
    pub seq: u64,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
}

/// The JSON form: the target spread over `toId` / `groupId`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Json {
    msg_id: MsgId,
    seq: u64,
    from_id: UserId,
    #[serde(default)]
    from_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_id: Option<GroupId>,
    content: Content,
    ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<String>,
}

impl Serialize for ChatMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (to_id, group_id) = match self.to {
            Target::User(u) => (Some(u), None),
            Target::Group(g) => (None, Some(g)),
        };
        Json {
            msg_id: self.msg_id,
            seq: self.seq,
            from_id: self.from_id,
            from_name: self.from_name.clone(),
            to_id,
            group_id,
            content: self.content.clone(),
            ts: self.ts,
            client_msg_id: self.client_msg_id.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ChatMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = Json::deserialize(d)?;
        let to = match (j.to_id, j.group_id) {
            (Some(u), None) => Target::User(u),
            (None, Some(g)) => Target::Group(g),
            _ => {
                return Err(serde::de::Error::custom(
                    "a message has exactly one of `toId` and `groupId`",
                ))
            }
        };
        Ok(ChatMessage {
            msg_id: j.msg_id,
            from_id: j.from_id,
            from_name: j.from_name,
            to,
            content: j.content,
            ts: j.ts,
            seq: j.seq,
            client_msg_id: j.client_msg_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(to: Target) -> ChatMessage {
        ChatMessage {
            msg_id: MsgId::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            from_id: UserId(1),
            from_name: "alice".into(),
            to,
            content: Content::text("hi"),
            ts: 1_700_000_000_000,
            seq: 3,
            client_msg_id: Some("c1".into()),
        }
    }

    #[test]
    fn json_names_the_target_by_kind_and_round_trips() {
        let direct = sample(Target::User(UserId(2)));
        let v = serde_json::to_value(&direct).unwrap();
        assert_eq!(v["toId"], "2");
        assert!(v.get("groupId").is_none());
        assert_eq!(serde_json::from_value::<ChatMessage>(v).unwrap(), direct);

        let group = sample(Target::Group(GroupId(9)));
        let v = serde_json::to_value(&group).unwrap();
        assert_eq!(v["groupId"], "9");
        assert!(v.get("toId").is_none());
        assert_eq!(serde_json::from_value::<ChatMessage>(v).unwrap(), group);
    }

    #[test]
    fn a_message_with_both_or_no_targets_is_refused() {
        let mut v = serde_json::to_value(sample(Target::User(UserId(2)))).unwrap();
        v["groupId"] = "9".into();
        assert!(serde_json::from_value::<ChatMessage>(v.clone()).is_err());
        v.as_object_mut().unwrap().remove("groupId");
        v.as_object_mut().unwrap().remove("toId");
        assert!(serde_json::from_value::<ChatMessage>(v).is_err());
    }
}
