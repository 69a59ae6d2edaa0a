//! The flat JSON form every frame shares, how it is parsed, and how a
//! parse failure is turned into an error that names the field at fault.

#[cfg(feature = "voice")]
use super::VoiceParticipant;
use super::{FrameError, GroupEventKind, Target};
use crate::codes::ErrorCode;
use crate::desk::{DeskBoard, DeskStatus};
use crate::frame::Content;
use crate::ids::{GroupId, MsgId, UserId};
use crate::limits::MAX_FRAME_BYTES;
use crate::validate;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// The `type` field as read: a known numeric code, or anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TypeField {
    Code(u16),
    Other(String),
}

impl TypeField {
    pub(super) fn as_string(&self) -> String {
        match self {
            TypeField::Code(c) => c.to_string(),
            TypeField::Other(s) => s.clone(),
        }
    }
}

impl Serialize for TypeField {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TypeField::Code(c) => s.collect_str(c),
            TypeField::Other(o) => s.serialize_str(o),
        }
    }
}

impl<'de> Deserialize<'de> for TypeField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = TypeField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a type code as a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeField, E> {
                Ok(match v.parse::<u16>() {
                    Ok(c) if !v.starts_with('+') => TypeField::Code(c),
                    _ => TypeField::Other(v.chars().take(32).collect()),
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TypeField, E> {
                Ok(u16::try_from(v)
                    .map(TypeField::Code)
                    .unwrap_or_else(|_| TypeField::Other(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TypeField, E> {
                Ok(TypeField::Other(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The flat JSON form shared by every frame type.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Wire {
    #[serde(rename = "type", default)]
    pub(super) ty: Option<TypeField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) user_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) msg_id: Option<MsgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) client_msg_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) from_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) from_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) to_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) group_id: Option<GroupId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) by_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) prev_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) req_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) online: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) event: Option<GroupEventKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg(feature = "voice")]
    pub(super) muted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) capacity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) available: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) desk: Option<DeskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) board: Option<DeskBoard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg(feature = "voice")]
    pub(super) participants: Option<Vec<VoiceParticipant>>,
}

impl Wire {
    pub(super) fn of(code: u16) -> Self {
        Wire {
            ty: Some(TypeField::Code(code)),
            ..Wire::default()
        }
    }

    pub(super) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("frames always serialize")
    }

    pub(super) fn set_target(&mut self, to: Target) {
        match to {
            Target::User(u) => self.to_id = Some(u),
            Target::Group(g) => self.group_id = Some(g),
        }
    }

    pub(super) fn target(&mut self) -> Result<Target, FrameError> {
        match (self.to_id.take(), self.group_id.take()) {
            (Some(u), None) => Ok(Target::User(u)),
            (None, Some(g)) => Ok(Target::Group(g)),
            (None, None) => Err(missing("toId")),
            (Some(_), Some(_)) => Err(FrameError::new(
                ErrorCode::InvalidField,
                "give either toId or groupId, not both",
            )),
        }
    }

    /// Reads the JSON text; on failure, finds which field is at fault.
    pub(super) fn parse(text: &str) -> Result<Wire, FrameError> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(FrameError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "frame is {} bytes; the limit is {MAX_FRAME_BYTES}",
                    text.len()
                ),
            ));
        }
        // serde would also accept a struct written as a JSON array.
        if !text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .starts_with('{')
        {
            return Err(match serde_json::from_str::<Value>(text) {
                Err(e) => FrameError::new(ErrorCode::MalformedJson, format!("malformed JSON: {e}")),
                Ok(_) => FrameError::new(ErrorCode::MalformedJson, "a frame must be a JSON object"),
            });
        }
        serde_json::from_str::<Wire>(text).map_err(|e| diagnose(text, e))
    }
}

fn missing(field: &str) -> FrameError {
    FrameError::new(ErrorCode::MissingField, format!("missing field `{field}`"))
}

pub(super) fn need<T>(v: Option<T>, field: &str) -> Result<T, FrameError> {
    v.ok_or_else(|| missing(field))
}

/// Checks one field's JSON value; the error says what it must be.
type FieldRule = fn(&Value) -> Result<(), String>;

/// What each field must be, for error messages that name the field.
fn field_rule(name: &str) -> Option<FieldRule> {
    fn string(v: &Value) -> Result<(), String> {
        v.is_string().then_some(()).ok_or_else(|| "a string".into())
    }
    fn id(v: &Value) -> Result<(), String> {
        UserId::deserialize(v)
            .map(drop)
            .map_err(|_| "an id: a string of digits such as \"42\"".into())
    }
    fn msg_id(v: &Value) -> Result<(), String> {
        MsgId::deserialize(v)
            .map(drop)
            .map_err(|_| "a UUID string".into())
    }
    fn content(v: &Value) -> Result<(), String> {
        let o = v.as_object().ok_or("an object {contentType, body}")?;
        match o.get("contentType") {
            None => return Err("an object with `contentType`".into()),
            Some(ct) if ct.as_u64().is_none_or(|n| n > u16::MAX as u64) => {
                return Err("an object whose `contentType` is a small integer".into())
            }
            _ => {}
        }
        match o.get("body") {
            Some(b) if b.is_string() => Ok(()),
            Some(_) => Err("an object whose `body` is a string".into()),
            None => Err("an object with `body`".into()),
        }
    }
    fn boolean(v: &Value) -> Result<(), String> {
        v.is_boolean()
            .then_some(())
            .ok_or_else(|| "true or false".into())
    }
    fn integer(v: &Value) -> Result<(), String> {
        (v.is_i64() || v.is_u64())
            .then_some(())
            .ok_or_else(|| "an integer".into())
    }
    Some(match name {
        "token" | "message" | "username" | "clientMsgId" | "fromName" | "reqType" | "code"
        | "event" | "name" => string,
        "fromId" | "toId" | "groupId" | "userId" | "byId" => id,
        "msgId" => msg_id,
        "content" => content,
        "ok" | "online" | "muted" | "available" => boolean,
        "seq" | "prevSeq" | "ts" | "capacity" => integer,
        _ => return None,
    })
}

/// Turns a serde failure into an error that says which field is wrong.
fn diagnose(text: &str, err: serde_json::Error) -> FrameError {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return FrameError::new(ErrorCode::MalformedJson, format!("malformed JSON: {e}")),
    };
    let Some(obj) = value.as_object() else {
        return FrameError::new(ErrorCode::MalformedJson, "a frame must be a JSON object");
    };
    let mut fe = FrameError::new(ErrorCode::InvalidField, err.to_string());
    if let Some(t) = obj.get("type") {
        match t {
            Value::String(s) => fe.req_type = Some(s.chars().take(32).collect()),
            Value::Number(n) => fe.req_type = Some(n.to_string()),
            _ => {
                fe.message = "field `type` must be a type code such as \"80\"".into();
                return fe;
            }
        }
    }
    if let Some(Value::String(c)) = obj.get("clientMsgId") {
        if validate::client_msg_id(c).is_ok() {
            fe.client_msg_id = Some(c.clone());
        }
    }
    for (name, v) in obj {
        if v.is_null() {
            continue;
        }
        if let Some(rule) = field_rule(name) {
            if let Err(expected) = rule(v) {
                fe.message = format!("field `{name}` must be {expected}");
                return fe;
            }
        }
    }
    fe
}
