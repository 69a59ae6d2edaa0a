//! Protocol round-trip and validation tests, including every seed frame of
//! the classic Netty protocol, verbatim.

use shared::limits::{MAX_BODY_BYTES, MAX_FRAME_BYTES};
use shared::*;

fn uuid() -> MsgId {
    "0190a6e2-7c3b-7d1e-9f00-2bfea1336a10".parse().unwrap()
}

fn err(text: &str) -> FrameError {
    ClientFrame::decode(text).expect_err(text)
}

// ---- seed frames, exactly as the original articles write them ----

#[test]
fn seed_login() {
    assert_eq!(
        ClientFrame::decode(r#"{"type":"10","token":"<token>"}"#).unwrap(),
        ClientFrame::Login {
            token: "<token>".into()
        }
    );
    assert_eq!(
        ClientFrame::decode(r#"{"type":"10","token":"2"}"#).unwrap(),
        ClientFrame::Login { token: "2".into() }
    );
}

#[test]
fn seed_ping() {
    assert_eq!(
        ClientFrame::decode(r#"{"type":"40","fromId":"2"}"#).unwrap(),
        ClientFrame::Ping {
            from_id: Some(UserId(2))
        }
    );
    assert_eq!(
        ClientFrame::decode(r#"{"type":"40"}"#).unwrap(),
        ClientFrame::Ping { from_id: None }
    );
}

#[test]
fn seed_chat() {
    let f = ClientFrame::decode(
        r#"{"type":"80","fromId":"1","toId":"2","content":{"contentType":1,"body":"hi"}}"#,
    )
    .unwrap();
    assert_eq!(
        f,
        ClientFrame::Chat(ChatSend {
            from_id: Some(UserId(1)),
            to: Target::User(UserId(2)),
            client_msg_id: None,
            content: Content::text("hi"),
        })
    );
    let f = ClientFrame::decode(
        r#"{"type":"80","fromId":"1","toId":"2","content":{"contentType":1,"body":"text"}}"#,
    )
    .unwrap();
    assert!(matches!(f, ClientFrame::Chat(c) if c.content.body == "text"));
}

#[test]
fn seed_ack() {
    assert_eq!(
        ClientFrame::decode(r#"{"type":"90","msgId":"0190a6e2-7c3b-7d1e-9f00-2bfea1336a10"}"#)
            .unwrap(),
        ClientFrame::Ack { msg_id: uuid() }
    );
}

#[test]
fn seed_server_frames_decode() {
    assert_eq!(
        ServerFrame::decode(r#"{"type":"41"}"#).unwrap(),
        ServerFrame::Pong { ts: 0 }
    );
    assert!(matches!(
        ServerFrame::decode(r#"{"type":"30"}"#).unwrap(),
        ServerFrame::HeartbeatTimeout { .. }
    ));
    assert!(matches!(
        ServerFrame::decode(r#"{"type":"0","code":"unknown_type","message":"x"}"#).unwrap(),
        ServerFrame::Error(ErrorFrame {
            code: ErrorCode::UnknownType,
            ..
        })
    ));
}

// ---- numeric codes are accepted, strings are always emitted ----

#[test]
fn numeric_type_codes_are_accepted() {
    assert_eq!(
        ClientFrame::decode(r#"{"type":40}"#).unwrap(),
        ClientFrame::Ping { from_id: None }
    );
    assert_eq!(
        ClientFrame::decode(r#"{"type":10,"token":"abc"}"#).unwrap(),
        ClientFrame::Login {
            token: "abc".into()
        }
    );
}

#[test]
fn type_is_always_emitted_as_string() {
    let frames = [
        ServerFrame::Pong { ts: 5 },
        ServerFrame::AckResp { msg_id: uuid() },
        ServerFrame::error(ErrorCode::RateLimited, "slow down"),
    ];
    for f in frames {
        let v: serde_json::Value = serde_json::from_str(&f.encode()).unwrap();
        assert!(v["type"].is_string(), "{v}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&ClientFrame::Ping { from_id: None }.encode()).unwrap();
    assert_eq!(v, serde_json::json!({"type":"40"}));
}

// ---- round trips ----

#[test]
fn client_frames_round_trip() {
    let frames = vec![
        ClientFrame::Login {
            token: "tok_123-ABC".into(),
        },
        ClientFrame::Ping {
            from_id: Some(UserId(9)),
        },
        ClientFrame::Chat(ChatSend {
            from_id: None,
            to: Target::Group(GroupId(3)),
            client_msg_id: Some("c-1".into()),
            content: Content::text("héllo \"world\" \n 😀 <b>not html</b>"),
        }),
        ClientFrame::Ack { msg_id: uuid() },
    ];
    for f in frames {
        let text = f.encode();
        assert_eq!(ClientFrame::decode(&text).unwrap(), f, "{text}");
    }
}

#[test]
fn server_frames_round_trip() {
    let frames = vec![
        ServerFrame::error(ErrorCode::MalformedJson, "bad"),
        ServerFrame::Error(ErrorFrame {
            code: ErrorCode::BodyTooLarge,
            message: "too big".into(),
            req_type: Some("80".into()),
            client_msg_id: Some("c-9".into()),
            msg_id: None,
        }),
        ServerFrame::LoginOk {
            user_id: UserId(1),
            username: "alice".into(),
            ts: 1_700_000_000_000,
        },
        ServerFrame::LoginFailed {
            code: ErrorCode::InvalidToken,
            message: "nope".into(),
        },
        ServerFrame::HeartbeatTimeout {
            message: "idle".into(),
        },
        ServerFrame::Pong { ts: 42 },
        ServerFrame::Chat(ChatMessage {
            msg_id: uuid(),
            from_id: UserId(1),
            from_name: "alice".into(),
            to: Target::User(UserId(2)),
            content: Content::text("hi"),
            ts: 7,
            seq: 3,
            client_msg_id: Some("c-1".into()),
        }),
        ServerFrame::ChatResp {
            msg_id: uuid(),
            client_msg_id: None,
            ts: 8,
            seq: 1,
        },
        ServerFrame::AckResp { msg_id: uuid() },
        ServerFrame::Delivered {
            msg_id: uuid(),
            by_id: UserId(2),
            ts: 9,
        },
    ];
    for f in frames {
        let text = f.encode();
        assert_eq!(ServerFrame::decode(&text).unwrap(), f, "{text}");
    }
}

#[test]
fn push_carries_the_documented_fields() {
    let f = ServerFrame::Chat(ChatMessage {
        msg_id: uuid(),
        from_id: UserId(1),
        from_name: "alice".into(),
        to: Target::User(UserId(2)),
        content: Content::text("hi"),
        ts: 7,
        seq: 3,
        client_msg_id: None,
    });
    let v: serde_json::Value = serde_json::from_str(&f.encode()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "type": "80", "msgId": "0190a6e2-7c3b-7d1e-9f00-2bfea1336a10",
            "fromId": "1", "fromName": "alice", "toId": "2",
            "content": {"contentType": 1, "body": "hi"}, "ts": 7, "seq": 3
        })
    );
}

// ---- validation: the same rejections in the browser and the relay ----

#[test]
fn malformed_json() {
    for text in [
        "",
        "{",
        "not json",
        "{\"type\":\"40\"",
        "[1,2]",
        "[]",
        "[\"40\"]",
        "\"40\"",
        "null",
        "42",
    ] {
        assert_eq!(err(text).code, ErrorCode::MalformedJson, "{text:?}");
    }
}

#[test]
fn unknown_and_missing_types() {
    assert_eq!(err(r#"{"type":"77"}"#).code, ErrorCode::UnknownType);
    assert_eq!(err(r#"{"type":"hello"}"#).code, ErrorCode::UnknownType);
    assert_eq!(err(r#"{"type":-1}"#).code, ErrorCode::UnknownType);
    assert_eq!(
        err(r#"{"type":"81","msgId":"x"}"#).code,
        ErrorCode::InvalidField
    );
    assert_eq!(err(r#"{"type":"41"}"#).code, ErrorCode::UnknownType);
    assert_eq!(err(r#"{"type":"41"}"#).req_type.as_deref(), Some("41"));
    assert_eq!(err(r#"{"fromId":"1"}"#).code, ErrorCode::MissingField);
    assert_eq!(err(r#"{"type":true}"#).code, ErrorCode::InvalidField);
}

#[test]
fn missing_fields_are_named() {
    let e = err(r#"{"type":"80","toId":"2"}"#);
    assert_eq!(e.code, ErrorCode::MissingField);
    assert!(e.message.contains("content"), "{}", e.message);
    let e = err(r#"{"type":"80","content":{"contentType":1,"body":"x"}}"#);
    assert_eq!(e.code, ErrorCode::MissingField);
    assert!(e.message.contains("toId"));
    assert_eq!(err(r#"{"type":"10"}"#).code, ErrorCode::MissingField);
    assert_eq!(err(r#"{"type":"90"}"#).code, ErrorCode::MissingField);
    let e = err(r#"{"type":"80","toId":"2","content":{"contentType":1}}"#);
    assert_eq!(e.code, ErrorCode::InvalidField);
    assert!(e.message.contains("body"), "{}", e.message);
}

#[test]
fn wrong_field_types_are_named() {
    let cases = [
        (
            r#"{"type":"80","toId":2,"content":{"contentType":1,"body":"x"}}"#,
            "toId",
        ),
        (
            r#"{"type":"80","toId":"bob","content":{"contentType":1,"body":"x"}}"#,
            "toId",
        ),
        (r#"{"type":"80","toId":"2","content":"hi"}"#, "content"),
        (
            r#"{"type":"80","toId":"2","content":{"contentType":"1","body":"x"}}"#,
            "content",
        ),
        (
            r#"{"type":"80","toId":"2","content":{"contentType":1,"body":5}}"#,
            "content",
        ),
        (r#"{"type":"10","token":123}"#, "token"),
        (r#"{"type":"90","msgId":"not-a-uuid"}"#, "msgId"),
        (r#"{"type":"40","fromId":{"id":1}}"#, "fromId"),
    ];
    for (text, field) in cases {
        let e = err(text);
        assert_eq!(e.code, ErrorCode::InvalidField, "{text}");
        assert!(e.message.contains(field), "{text}: {}", e.message);
    }
}

#[test]
fn content_rules() {
    let chat = |body: &str, ct: u16| {
        ClientFrame::Chat(ChatSend {
            from_id: None,
            to: Target::User(UserId(2)),
            client_msg_id: Some("c-7".into()),
            content: Content {
                content_type: ct,
                body: body.into(),
            },
        })
        .encode()
    };
    assert_eq!(err(&chat("", 1)).code, ErrorCode::EmptyBody);
    assert_eq!(err(&chat("   ", 1)).code, ErrorCode::EmptyBody);
    assert_eq!(err(&chat("x", 9)).code, ErrorCode::UnsupportedContentType);
    let big = err(&chat(&"x".repeat(MAX_BODY_BYTES + 1), 1));
    assert_eq!(big.code, ErrorCode::BodyTooLarge);
    // errors about a chat carry its clientMsgId so the sender can mark it failed
    assert_eq!(big.client_msg_id.as_deref(), Some("c-7"));
    assert_eq!(big.req_type.as_deref(), Some("80"));
    assert!(ClientFrame::decode(&chat(&"x".repeat(MAX_BODY_BYTES), 1)).is_ok());
    assert_eq!(err(&chat("bell\u{7}", 1)).code, ErrorCode::InvalidField);
}

#[test]
fn oversized_frames() {
    let padding = "x".repeat(MAX_FRAME_BYTES);
    let text = format!(r#"{{"type":"40","pad":"{padding}"}}"#);
    assert_eq!(err(&text).code, ErrorCode::FrameTooLarge);
}

#[test]
fn unicode_edge_cases() {
    // escaped and raw astral characters, RTL marks, combining characters
    let ok = r#"{"type":"80","toId":"2","content":{"contentType":1,"body":"\ud83d\ude00 e\u0301 \u202eabc 𝕏"}}"#;
    let ClientFrame::Chat(c) = ClientFrame::decode(ok).unwrap() else {
        panic!()
    };
    assert!(c.content.body.starts_with('😀'));
    // a lone surrogate is not valid Unicode
    let lone = r#"{"type":"80","toId":"2","content":{"contentType":1,"body":"\ud800"}}"#;
    assert_eq!(err(lone).code, ErrorCode::MalformedJson);
    // escaped NUL is valid JSON but not allowed in a body
    let nul = r#"{"type":"80","toId":"2","content":{"contentType":1,"body":"a\u0000b"}}"#;
    assert_eq!(err(nul).code, ErrorCode::InvalidField);
}

#[test]
fn target_rules() {
    let both = r#"{"type":"80","toId":"2","groupId":"3","content":{"contentType":1,"body":"x"}}"#;
    assert_eq!(err(both).code, ErrorCode::InvalidField);
    let group = r#"{"type":"80","groupId":"3","content":{"contentType":1,"body":"x"}}"#;
    assert!(
        matches!(ClientFrame::decode(group).unwrap(), ClientFrame::Chat(c) if c.to == Target::Group(GroupId(3)))
    );
}

#[test]
fn client_msg_id_rules() {
    let bad = r#"{"type":"80","toId":"2","clientMsgId":"has space","content":{"contentType":1,"body":"x"}}"#;
    let e = err(bad);
    assert_eq!(e.code, ErrorCode::InvalidField);
    assert_eq!(e.client_msg_id, None);
}

#[test]
fn unknown_fields_are_ignored() {
    assert_eq!(
        ClientFrame::decode(r#"{"type":"40","fromId":"2","extra":[1,{"a":null}]}"#).unwrap(),
        ClientFrame::Ping {
            from_id: Some(UserId(2))
        }
    );
}

#[test]
fn duplicate_keys_are_refused() {
    let e = err(r#"{"type":"40","type":"80"}"#);
    assert_eq!(e.code, ErrorCode::InvalidField);
}

#[test]
fn error_codes_spell_as_documented() {
    for (code, s) in [
        (ErrorCode::MalformedJson, "malformed_json"),
        (ErrorCode::SpoofedSender, "spoofed_sender"),
        (ErrorCode::UsernameTaken, "username_taken"),
    ] {
        assert_eq!(code.as_str(), s);
        assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{s}\""));
    }
    let unknown: ErrorCode = serde_json::from_str("\"from_the_future\"").unwrap();
    assert_eq!(unknown, ErrorCode::Other);
}

// ---- groups, presence, read receipts, typing ----

#[test]
fn social_frames_round_trip() {
    let client = vec![
        ClientFrame::Typing {
            to: Target::User(UserId(2)),
        },
        ClientFrame::Typing {
            to: Target::Group(GroupId(7)),
        },
        ClientFrame::Read {
            to: Target::Group(GroupId(7)),
            seq: 42,
        },
    ];
    for f in client {
        assert_eq!(ClientFrame::decode(&f.encode()).unwrap(), f);
    }
    let server = vec![
        ServerFrame::Presence {
            user_id: UserId(3),
            username: "carol".into(),
            online: false,
            ts: 5,
        },
        ServerFrame::Typing {
            from_id: UserId(1),
            from_name: "alice".into(),
            to: Target::Group(GroupId(7)),
        },
        ServerFrame::ReadReceipt {
            by_id: UserId(2),
            to: Target::User(UserId(1)),
            prev_seq: None,
            seq: 9,
            ts: 6,
        },
        ServerFrame::ReadReceipt {
            by_id: UserId(2),
            to: Target::Group(GroupId(4)),
            prev_seq: Some(3),
            seq: 9,
            ts: 6,
        },
        ServerFrame::GroupEvent(GroupEvent {
            group_id: GroupId(7),
            kind: GroupEventKind::MemberRemoved,
            user_id: Some(UserId(4)),
            username: Some("dave".into()),
            by_id: Some(UserId(1)),
            name: Some("team".into()),
        }),
    ];
    for f in server {
        assert_eq!(ServerFrame::decode(&f.encode()).unwrap(), f);
    }
}

#[test]
fn social_frames_on_the_wire() {
    let v: serde_json::Value = serde_json::from_str(
        &ServerFrame::Presence {
            user_id: UserId(3),
            username: "carol".into(),
            online: true,
            ts: 5,
        }
        .encode(),
    )
    .unwrap();
    assert_eq!(
        v,
        serde_json::json!({"type":"50","userId":"3","username":"carol","online":true,"ts":5})
    );
    let v: serde_json::Value = serde_json::from_str(
        &ServerFrame::GroupEvent(GroupEvent {
            group_id: GroupId(7),
            kind: GroupEventKind::Renamed,
            user_id: None,
            username: None,
            by_id: Some(UserId(1)),
            name: Some("new".into()),
        })
        .encode(),
    )
    .unwrap();
    assert_eq!(
        v,
        serde_json::json!({"type":"100","groupId":"7","event":"renamed","byId":"1","name":"new"})
    );
    // A READ needs a seq and a target; a typing notice a target.
    assert_eq!(
        err(r#"{"type":"70","toId":"2"}"#).code,
        ErrorCode::MissingField
    );
    assert_eq!(err(r#"{"type":"60"}"#).code, ErrorCode::MissingField);
    assert_eq!(
        err(r#"{"type":"70","groupId":"2","seq":-1}"#).code,
        ErrorCode::InvalidField
    );
}

#[cfg(feature = "voice")]
#[test]
fn voice_frames_round_trip() {
    use shared::{GroupId, VoiceParticipant};
    for f in [
        ClientFrame::VoiceJoin {
            group_id: GroupId(3),
        },
        ClientFrame::VoiceLeave {
            group_id: GroupId(3),
        },
        ClientFrame::VoiceMute {
            group_id: GroupId(3),
            muted: true,
        },
        ClientFrame::VoiceQuery {
            group_id: GroupId(3),
        },
    ] {
        assert_eq!(ClientFrame::decode(&f.encode()).unwrap(), f);
    }
    let j = ClientFrame::decode(r#"{"type":"120","groupId":"9"}"#).unwrap();
    assert_eq!(
        j,
        ClientFrame::VoiceJoin {
            group_id: GroupId(9)
        }
    );
    let e = ClientFrame::decode(r#"{"type":"124","groupId":"9"}"#).unwrap_err();
    assert_eq!(e.code, shared::ErrorCode::MissingField);
    let e = ClientFrame::decode(r#"{"type":"124","groupId":"9","muted":"yes"}"#).unwrap_err();
    assert!(e.message.contains("muted"), "{}", e.message);
    let p = vec![VoiceParticipant {
        user_id: shared::UserId(1),
        username: "a".into(),
        muted: false,
    }];
    for f in [
        ServerFrame::VoiceJoined {
            group_id: GroupId(3),
            participants: p.clone(),
            capacity: 50,
            seq: 7,
        },
        ServerFrame::VoiceRoom {
            group_id: GroupId(3),
            participants: vec![],
            seq: 8,
        },
        ServerFrame::VoiceRoom {
            group_id: GroupId(3),
            participants: p,
            seq: 9,
        },
    ] {
        assert_eq!(ServerFrame::decode(&f.encode()).unwrap(), f);
    }
    let room = ServerFrame::VoiceRoom {
        group_id: GroupId(3),
        participants: vec![],
        seq: 1,
    };
    assert!(room.encode().contains(r#""participants":[]"#));
}
