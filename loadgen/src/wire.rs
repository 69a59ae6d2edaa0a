//! The hot-path view of the protocol.
//!
//! `shared::ServerFrame::decode` builds a fully typed, validated frame, with
//! owned strings for every field. At tens of thousands of frames per second on
//! a machine the relay shares, that cost lands on the measurement, so the
//! generator reads only the fields it needs ([`Lite`], borrowing from the
//! text) and skips parsing entirely for frames it only counts
//! ([`fast_type`]). Outgoing frames are written with `write!` into one buffer.
//! The tests check both directions against the `shared` codec, so this
//! shortcut cannot drift from the real protocol.

use serde::{de, Deserialize, Deserializer};
use shared::codes::frame_type as ft;
use shared::Target;
use std::borrow::Cow;
use std::fmt::{self, Write as _};

pub use shared::codes::frame_type;

/// The `PING` frame. Static, so sending it allocates nothing.
pub const PING: &str = r#"{"type":"40"}"#;

/// Reads the `type` code of a frame without parsing it, when the frame starts
/// with `{"type":"NN"` as the relay's encoder writes it. `None` means "parse
/// it properly" (different field order, numeric type, whitespace, …).
pub fn fast_type(text: &str) -> Option<u16> {
    let rest = text.strip_prefix(r#"{"type":""#)?;
    let end = rest.find('"')?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The fields of a relay frame that the generator looks at. Everything else
/// (content, names, …) is skipped by the parser without being stored.
#[derive(Debug, Deserialize)]
pub struct Lite<'a> {
    /// Frame type code; accepts `"80"` and `80` like the shared decoder.
    #[serde(rename = "type", deserialize_with = "de_type")]
    pub ty: u16,
    /// Message id (80, 81, 91, 92, some 0).
    #[serde(rename = "msgId", borrow, default)]
    pub msg_id: Option<Cow<'a, str>>,
    /// The sender's idempotency key (80, 81, 0).
    #[serde(rename = "clientMsgId", borrow, default)]
    pub client_msg_id: Option<Cow<'a, str>>,
    /// Error code (0, failed 11).
    #[serde(borrow, default)]
    pub code: Option<Cow<'a, str>>,
    /// Conversation sequence number (80, 81).
    #[serde(default)]
    pub seq: Option<u64>,
    /// Login success flag (11).
    #[serde(default)]
    pub ok: Option<bool>,
}

impl<'a> Lite<'a> {
    /// Parses the subset of fields above.
    pub fn parse(text: &'a str) -> Result<Lite<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }
}

fn de_type<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = u16;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a frame type code")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u16, E> {
            v.parse().map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u16, E> {
            u16::try_from(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// Writes a CHAT frame (to a user or a group) into `out`, cleared first.
/// `body` must not need JSON escaping (the generator only ever uses
/// [`filler_body`]), nor `client_msg_id` (a [`MsgTag`]).
pub fn write_chat(out: &mut String, to: Target, client_msg_id: &str, body: &str) {
    out.clear();
    debug_assert!(!body.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
    let (field, id) = match to {
        Target::User(u) => ("toId", u.0),
        Target::Group(g) => ("groupId", g.0),
    };
    let _ = write!(
        out,
        r#"{{"type":"80","{field}":"{id}","clientMsgId":"{client_msg_id}","content":{{"contentType":1,"body":"{body}"}}}}"#
    );
}

/// The ACK frame for a pushed message. `msg_id` is echoed verbatim from the
/// push (it is a UUID, which needs no escaping).
pub fn ack(msg_id: &str) -> String {
    let mut s = String::with_capacity(30 + msg_id.len());
    s.push_str(r#"{"type":"90","msgId":""#);
    s.push_str(msg_id);
    s.push_str(r#""}"#);
    s
}

/// Checks a `--body-bytes` option: the protocol allows bodies of
/// 1 ..= [`MAX_BODY_BYTES`](shared::limits::MAX_BODY_BYTES) bytes.
pub fn check_body_bytes(bytes: usize) -> Result<(), crate::Error> {
    let max = shared::limits::MAX_BODY_BYTES;
    if bytes == 0 || bytes > max {
        return Err(format!("--body-bytes must be 1..={max}").into());
    }
    Ok(())
}

/// A chat body of exactly `bytes` printable ASCII characters that needs no
/// JSON escaping and is never blank.
pub fn filler_body(bytes: usize) -> String {
    const PATTERN: &[u8] = b"ferrochat loadgen ";
    let n = bytes.max(1);
    let mut s: String = (0..n).map(|i| PATTERN[i % PATTERN.len()] as char).collect();
    if s.ends_with(' ') {
        s.pop();
        s.push('.');
    }
    s
}

/// The `clientMsgId` of a generated message: `lg<run>.<pair>.<seq>.<t_us>`.
///
/// It carries everything the recipient needs to account for the message with
/// no shared state between sender and recipient tasks: which run and pair it
/// belongs to, its position in the sender's stream (for order and loss
/// accounting) and its intended send time in microseconds since the run's
/// start (for latency: both tasks read the same monotonic clock). It is
/// unique per sender because `seq` is, which is all the idempotency key
/// needs. The run id tells a push of this run from a backlog left by an
/// earlier run that used the same accounts (`--accounts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgTag {
    /// Which sender→recipient pair (or, later, which fan-out sender).
    pub pair: u32,
    /// 1, 2, 3, … per sender.
    pub seq: u64,
    /// Intended send time, µs since the run's shared start instant.
    pub t_us: u64,
    /// How late the generator actually sent it (open loop), µs: the frame
    /// left at `t_us + lag_us`.
    pub lag_us: u64,
}

/// Why a `clientMsgId` is not a tag of the current run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotOurs {
    /// A well-formed tag of another run: backlog from an earlier run.
    OtherRun,
    /// Not written by this generator at all.
    Foreign,
}

impl MsgTag {
    /// Writes the tag of run `run` into `out` (cleared first).
    pub fn write(&self, run: &str, out: &mut String) {
        out.clear();
        let _ = write!(out, "lg{run}.{}.{}.{}", self.pair, self.seq, self.t_us);
        if self.lag_us > 0 {
            let _ = write!(out, ".{}", self.lag_us);
        }
    }

    /// The tag as a new string.
    pub fn encode(&self, run: &str) -> String {
        let mut s = String::with_capacity(48);
        self.write(run, &mut s);
        s
    }

    /// Parses a tag of run `run`.
    pub fn decode(s: &str, run: &str) -> Result<MsgTag, NotOurs> {
        let rest = s.strip_prefix("lg").ok_or(NotOurs::Foreign)?;
        let mut parts = rest.split('.');
        let tag_run = parts.next().ok_or(NotOurs::Foreign)?;
        if tag_run.is_empty() || !tag_run.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(NotOurs::Foreign);
        }
        let num = |p: Option<&str>| -> Option<u64> {
            let p = p?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let tag = (|| {
            let pair = u32::try_from(num(parts.next())?).ok()?;
            let seq = num(parts.next())?;
            let t_us = num(parts.next())?;
            let lag_us = match parts.next() {
                None => 0,
                lag => num(lag)?,
            };
            parts.next().is_none().then_some(MsgTag {
                pair,
                seq,
                t_us,
                lag_us,
            })
        })()
        .ok_or(NotOurs::Foreign)?;
        if tag_run != run {
            return Err(NotOurs::OtherRun);
        }
        Ok(tag)
    }
}

/// True for the frame types the generator only counts.
pub fn is_count_only(ty: u16) -> bool {
    matches!(ty, ft::PONG | ft::ACK_RESP | ft::DELIVERED)
}

/// True for the relay's notices that any client may receive unasked and
/// the generator ignores: PRESENCE (a contact came or went), TYPING,
/// READ_RECEIPT and GROUP_EVENT. They need no answer.
pub fn is_notice(ty: u16) -> bool {
    matches!(
        ty,
        ft::PRESENCE | ft::TYPING | ft::READ_RECEIPT | ft::GROUP_EVENT
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{ClientFrame, ServerFrame, UserId};

    #[test]
    fn tags_round_trip_and_fit_the_protocol() {
        let t = MsgTag {
            pair: 17,
            seq: 123_456,
            t_us: 3_000_001,
            lag_us: 0,
        };
        assert_eq!(t.encode("k3x9"), "lgk3x9.17.123456.3000001");
        assert_eq!(MsgTag::decode(&t.encode("k3x9"), "k3x9"), Ok(t));
        // The largest tag the generator can produce still fits the protocol.
        let max = MsgTag {
            pair: u32::MAX,
            seq: crate::track::MAX_SEQ,
            t_us: u64::MAX,
            lag_us: 0,
        };
        let run = "abcdefghijkl";
        assert_eq!(MsgTag::decode(&max.encode(run), run), Ok(max));
        shared::validate::client_msg_id(&max.encode(run)).expect("valid clientMsgId");
    }

    #[test]
    fn other_runs_and_foreign_ids_are_told_apart() {
        let t = MsgTag {
            pair: 1,
            seq: 2,
            t_us: 3,
            lag_us: 0,
        };
        assert_eq!(
            MsgTag::decode(&t.encode("old"), "new"),
            Err(NotOurs::OtherRun)
        );
        let late = MsgTag { lag_us: 250, ..t };
        assert_eq!(late.encode("r"), "lgr.1.2.3.250");
        assert_eq!(MsgTag::decode("lgr.1.2.3.250", "r"), Ok(late));
        for bad in [
            "",
            "lg",
            "lgr.1.2",
            "lgr.1.2.3.4.5",
            "lgr.1.2.3.x",
            "xxr.1.2.3",
            "lgr.1..3",
            "lg.1.2.3",
            "lgr-x.1.2.3",
            "lgr.+1.2.3",
            "lgr.4294967296.1.1",
            "lgr.1.2.99999999999999999999",
            "a-1",
        ] {
            assert_eq!(
                MsgTag::decode(bad, "r"),
                Err(NotOurs::Foreign),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn chat_frames_decode_with_the_shared_codec() {
        let mut buf = String::new();
        let tag = MsgTag {
            pair: 3,
            seq: 9,
            t_us: 42,
            lag_us: 0,
        };
        let body = filler_body(40);
        for to in [
            Target::User(UserId(1234)),
            Target::Group(shared::GroupId(77)),
        ] {
            write_chat(&mut buf, to, &tag.encode("r1"), &body);
            match ClientFrame::decode(&buf).unwrap() {
                ClientFrame::Chat(c) => {
                    assert_eq!(c.to, to);
                    assert_eq!(c.client_msg_id.as_deref(), Some("lgr1.3.9.42"));
                    assert_eq!(c.content.body, body);
                    assert_eq!(c.content.content_type, 1);
                    assert_eq!(c.from_id, None);
                }
                other => panic!("decoded as {other:?}"),
            }
        }
    }

    #[test]
    fn ack_and_ping_decode_with_the_shared_codec() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(
            ClientFrame::decode(&ack(&id.to_string())).unwrap(),
            ClientFrame::Ack { msg_id: id }
        );
        assert_eq!(
            ClientFrame::decode(PING).unwrap(),
            ClientFrame::Ping { from_id: None }
        );
    }

    #[test]
    fn filler_bodies_are_valid_and_exact() {
        for n in [1, 2, 17, 18, 19, 100, 8192] {
            let b = filler_body(n);
            assert_eq!(b.len(), n);
            shared::validate::content(1, &b).expect("valid body");
        }
        let max = shared::limits::MAX_BODY_BYTES;
        shared::validate::content(1, &filler_body(max)).expect("valid body");
        assert!(check_body_bytes(1).is_ok() && check_body_bytes(max).is_ok());
        assert!(check_body_bytes(0).is_err() && check_body_bytes(max + 1).is_err());
    }

    #[test]
    fn fast_type_reads_the_relays_encoding() {
        let pong = ServerFrame::Pong { ts: 5 }.encode();
        assert_eq!(fast_type(&pong), Some(41));
        let err = ServerFrame::error(shared::ErrorCode::RateLimited, "slow").encode();
        assert_eq!(fast_type(&err), Some(0));
        assert_eq!(fast_type(r#"{ "type":"41"}"#), None);
        assert_eq!(fast_type(r#"{"type":41}"#), None);
        assert_eq!(fast_type(r#"{"type":"4x1"}"#), None);
        assert_eq!(fast_type(r#"{"type":""}"#), None);
    }

    #[test]
    fn lite_reads_pushes_resps_and_errors_from_the_shared_encoder() {
        let id = uuid::Uuid::now_v7();
        let push = ServerFrame::Chat(shared::ChatMessage {
            msg_id: id,
            from_id: UserId(1),
            from_name: "al\"ice".into(),
            to: Target::User(UserId(2)),
            content: shared::Content::text("hi \"there\" {\"type\":\"81\"}"),
            ts: 1,
            seq: 7,
            client_msg_id: Some("lg1.7.99".into()),
        })
        .encode();
        let l = Lite::parse(&push).unwrap();
        assert_eq!(l.ty, 80);
        assert_eq!(l.msg_id.as_deref(), Some(id.to_string().as_str()));
        assert_eq!(l.client_msg_id.as_deref(), Some("lg1.7.99"));
        assert_eq!(l.seq, Some(7));

        let resp = ServerFrame::ChatResp {
            msg_id: id,
            client_msg_id: Some("lg1.8.100".into()),
            ts: 1,
            seq: 8,
        }
        .encode();
        let l = Lite::parse(&resp).unwrap();
        assert_eq!((l.ty, l.client_msg_id.as_deref()), (81, Some("lg1.8.100")));

        let mut e = shared::ErrorFrame {
            code: shared::ErrorCode::RateLimited,
            message: "too \"fast\"".into(),
            req_type: Some("80".into()),
            client_msg_id: Some("lg1.9.1".into()),
            msg_id: None,
        };
        let l_text = ServerFrame::Error(e.clone()).encode();
        let l = Lite::parse(&l_text).unwrap();
        assert_eq!(l.ty, 0);
        assert_eq!(l.code.as_deref(), Some("rate_limited"));
        assert_eq!(l.client_msg_id.as_deref(), Some("lg1.9.1"));
        e.client_msg_id = None;
        let l_text = ServerFrame::Error(e).encode();
        assert_eq!(Lite::parse(&l_text).unwrap().client_msg_id, None);

        let numeric = Lite::parse(r#"{"type":11,"ok":false,"code":"invalid_token"}"#).unwrap();
        assert_eq!((numeric.ty, numeric.ok), (11, Some(false)));
        assert!(Lite::parse(r#"{"ok":true}"#).is_err());
    }

    #[test]
    fn count_only_types() {
        assert!(is_count_only(41) && is_count_only(91) && is_count_only(92));
        assert!(!is_count_only(80) && !is_count_only(81) && !is_count_only(0));
    }

    #[test]
    fn notices_are_the_unasked_frames_of_the_shared_codec() {
        let g = shared::GroupId(3);
        let frames = [
            ServerFrame::Presence {
                user_id: UserId(1),
                username: "a".into(),
                online: true,
                ts: 1,
            },
            ServerFrame::Typing {
                from_id: UserId(1),
                from_name: "a".into(),
                to: Target::Group(g),
            },
            ServerFrame::ReadReceipt {
                by_id: UserId(1),
                to: Target::Group(g),
                prev_seq: Some(2),
                seq: 4,
                ts: 1,
            },
            ServerFrame::GroupEvent(shared::GroupEvent {
                group_id: g,
                kind: shared::GroupEventKind::MemberJoined,
                user_id: Some(UserId(2)),
                username: Some("b".into()),
                by_id: None,
                name: Some("g".into()),
            }),
        ];
        for f in frames {
            let text = f.encode();
            let ty = Lite::parse(&text).unwrap().ty;
            assert!(is_notice(ty), "{text}");
        }
        for ty in [0, 11, 30, 41, 80, 81, 91, 92] {
            assert!(!is_notice(ty), "{ty}");
        }
    }
}
