//! Visitors of the support desk (`POST /api/visitors`): their tokens, and
//! everything they may not do (`rules::desk`). Runs on SQLite and, with
//! `FERROCHAT_TEST_BACKEND=postgres`, on PostgreSQL.

mod common;

use common::desk::{session, visitor};
use common::{eventually, Client, TestRelay, WAIT};
use serde_json::json;
use shared::{ClientFrame, Content, ErrorCode, ErrorFrame, GroupId, ServerFrame, Target, UserId};
use std::time::Duration;

/// The next frame, which must be an error of `code` answering `req_type`.
async fn refused(c: &mut Client, code: ErrorCode, req_type: u16) -> ErrorFrame {
    match c.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, code, "{e:?}");
            assert_eq!(e.req_type.as_deref(), Some(req_type.to_string().as_str()));
            e
        }
        other => panic!("expected a {code:?} error, got {other:?}"),
    }
}

/// The socket is alive and nothing else was queued for it: a PING's PONG
/// is the next frame.
async fn only_pong_next(c: &mut Client) {
    c.send(&ClientFrame::Ping { from_id: None }).await;
    match c.recv().await {
        ServerFrame::Pong { .. } => {}
        other => panic!("expected PONG, got {other:?}"),
    }
}

#[tokio::test]
async fn a_visitor_token_logs_in_and_a_reload_is_the_same_visitor() {
    let relay = TestRelay::start(&[]).await;
    let v = visitor(
        &relay,
        json!({"name": " Ann ", "email": "ann@example.com", "page": "https://shop.example/cart"}),
    )
    .await;
    assert_eq!(v.name, "Ann");
    assert!(v.expires_at > 0 && !v.token.is_empty());
    let s = session(&v);
    let first = relay.login(&s).await;
    drop(first);
    // A reload: the same token again, the same visitor.
    let mut again = relay.login(&s).await;
    only_pong_next(&mut again).await;
    let (status, me) = relay.get("/api/me", Some(&v.token)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["role"], "visitor");
    assert_eq!(me["userId"], v.visitor_id.0.to_string());
    assert!(me["username"].as_str().unwrap().starts_with('~'), "{me}");
    // Without a body, and with an empty object: a nameless visitor.
    let (status, body, _) = relay.request("POST", "/api/visitors", None, None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "Visitor");
    let other = visitor(&relay, json!({})).await;
    assert_ne!(other.visitor_id, v.visitor_id);
    // A user's /api/me shows their role too.
    let alice = relay.register("alice").await;
    let (_, me) = relay.get("/api/me", Some(&alice.token)).await;
    assert_eq!(me["role"], "user");
}

#[tokio::test]
async fn visitor_details_are_validated() {
    let relay = TestRelay::start(&[]).await;
    for bad in [
        json!({"email": "not-an-email"}),
        json!({"name": "x".repeat(65)}),
        json!({"page": "p".repeat(2049)}),
        json!({"name": "a\u{7}b"}),
        json!({"admin": true}),
        json!(["not", "an", "object"]),
    ] {
        let (status, body) = relay.post("/api/visitors", None, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let huge = json!({"name": "x".repeat(20_000)});
    let (status, _) = relay.post("/api/visitors", None, huge).await;
    assert_eq!(status, 413);
    assert_eq!(relay.metric("ferrochat_visitors_total").await, 0);
}

#[tokio::test]
async fn visitor_tokens_expire_after_the_visitor_token_ttl() {
    let relay = TestRelay::start(&["--visitor-token-ttl", "500ms"]).await;
    let v = visitor(&relay, json!({})).await;
    let (status, _) = relay.get("/api/me", Some(&v.token)).await;
    assert_eq!(status, 200);
    // Users' sessions keep the usual --token-ttl.
    let alice = relay.register("alice").await;
    assert!(alice.expires_at - v.expires_at > 86_400_000);
    eventually("the visitor token expires", || async {
        let (status, _) = relay.get("/api/me", Some(&v.token)).await;
        (status == 401).then_some(())
    })
    .await;
    let mut c = relay.connect().await;
    c.send(&ClientFrame::Login {
        token: v.token.clone(),
    })
    .await;
    match c.recv().await {
        ServerFrame::LoginFailed { code, .. } => assert_eq!(code, ErrorCode::InvalidToken),
        other => panic!("expected LOGIN_FAILED, got {other:?}"),
    }
    let (status, _) = relay.get("/api/me", Some(&alice.token)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_visitor_is_refused_everything_but_their_own_session() {
    let relay = TestRelay::start(&[]).await;
    let alice = relay.register("alice").await;
    let bob = relay.register("bob").await;
    let group = relay.group(&alice, "lobby", true, &[&bob]).await;
    let mut a = relay.login(&alice).await;
    let v = visitor(&relay, json!({"name": "Eve"})).await;
    // Alice is online: a visitor gets no presence snapshot (nothing but
    // the PONG comes after LOGIN_RESP).
    let mut c = relay.login(&session(&v)).await;
    only_pong_next(&mut c).await;

    // Users: never. Groups: only their desk conversations, which this is
    // not (the store checks membership, as for anyone).
    for (i, to, code) in [
        (0, Target::User(alice.user_id), ErrorCode::Forbidden),
        (1, Target::Group(group), ErrorCode::NotMember),
    ] {
        let key = format!("v-{i}");
        c.send(&ClientFrame::Chat(shared::ChatSend {
            from_id: None,
            to,
            client_msg_id: Some(key.clone()),
            content: Content::text("hello"),
        }))
        .await;
        let e = refused(&mut c, code, 80).await;
        assert_eq!(e.client_msg_id.as_deref(), Some(key.as_str()));
    }
    c.send(&ClientFrame::Typing {
        to: Target::User(alice.user_id),
    })
    .await;
    refused(&mut c, ErrorCode::Forbidden, 60).await;
    c.send(&ClientFrame::Read {
        to: Target::User(alice.user_id),
        seq: 1,
    })
    .await;
    refused(&mut c, ErrorCode::Forbidden, 70).await;
    c.send(&ClientFrame::VoiceJoin { group_id: group }).await;
    refused(&mut c, ErrorCode::Forbidden, 120).await;
    only_pong_next(&mut c).await;

    let t = Some(v.token.as_str());
    for path in [
        "/api/users?q=al".to_string(),
        "/api/users/online".to_string(),
        "/api/groups?q=lo".to_string(),
        format!("/api/groups/{group}"),
        format!("/api/groups/{group}/members"),
        "/api/conversations".to_string(),
        format!("/api/conversations/user/{}/messages", alice.user_id),
    ] {
        let (status, body) = relay.get(&path, t).await;
        assert_eq!(status, 403, "GET {path}: {body}");
        assert_eq!(body["code"], "forbidden", "GET {path}: {body}");
    }
    // A group's history: only a member's (a visitor's desk conversation).
    let path = format!("/api/conversations/group/{group}/messages");
    let (status, body) = relay.get(&path, t).await;
    assert!(
        status == 403 || status == 404,
        "GET {path}: {status} {body}"
    );
    for (path, body) in [
        (
            "/api/groups".to_string(),
            json!({"name": "mine", "public": true}),
        ),
        (format!("/api/groups/{group}/join"), json!({})),
        (
            format!("/api/groups/{group}/members"),
            json!({"username": "bob"}),
        ),
    ] {
        let (status, answer) = relay.post(&path, t, body).await;
        assert_eq!(status, 403, "POST {path}: {answer}");
    }
    // Nothing reached Alice; her own chats still work.
    a.expect_no_push(Duration::from_millis(200)).await;
    let mut b = relay.login(&bob).await;
    a.chat(bob.user_id, "a-1", "hi bob").await;
    assert_eq!(common::next_push(&mut b).await.content.body, "hi bob");
    // The visitor may still log out.
    let (status, _) = relay.post("/api/logout", t, json!({})).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn users_cannot_reach_or_find_a_visitor() {
    let relay = TestRelay::start(&[]).await;
    let alice = relay.register("alice").await;
    let v = visitor(&relay, json!({"name": "Eve"})).await;
    let (_, me) = relay.get("/api/me", Some(&v.token)).await;
    let internal = me["username"].as_str().unwrap().to_string();
    let mut c = relay.login(&session(&v)).await;
    let mut a = relay.login(&alice).await;
    a.chat(v.visitor_id, "a-1", "psst").await;
    match a
        .recv_where(|f| matches!(f, ServerFrame::Error(_) | ServerFrame::ChatResp { .. }))
        .await
    {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::UnknownRecipient, "{e:?}"),
        other => panic!("a chat to a visitor was accepted: {other:?}"),
    }
    for q in ["~", "%7E", "%7Ev"] {
        let (status, body) = relay
            .get(&format!("/api/users?q={q}"), Some(&alice.token))
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["users"], json!([]), "search {q}: {body}");
    }
    let g: GroupId = relay.group(&alice, "club", false, &[]).await;
    let (status, body) = relay
        .post(
            &format!("/api/groups/{g}/members"),
            Some(&alice.token),
            json!({"username": internal}),
        )
        .await;
    assert_ne!(status, 200, "a visitor was added to a group: {body}");
    let (status, _) = relay
        .get(
            &format!("/api/conversations/user/{}/messages", v.visitor_id),
            Some(&alice.token),
        )
        .await;
    assert_ne!(status, 200);
    // Alice's presence never reached the visitor.
    only_pong_next(&mut c).await;
    let _: UserId = v.visitor_id;
}

#[tokio::test]
async fn visitor_creation_is_limited_per_client_address() {
    let relay =
        TestRelay::start(&["--visitor-limit", "3/1h", "--trusted-proxy", "127.0.0.1"]).await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    for _ in 0..3 {
        let (status, body, _) = relay
            .post_with("/api/visitors", json!({}), &from("203.0.113.7"))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body, headers) = relay
        .post_with("/api/visitors", json!({}), &from("203.0.113.7"))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=1200).contains(&retry), "Retry-After {retry}");
    // Another address is not affected; nor are registrations.
    let (status, _, _) = relay
        .post_with("/api/visitors", json!({}), &from("198.51.100.1"))
        .await;
    assert_eq!(status, 201);
    relay.register("alice").await;
    assert_eq!(relay.metric("ferrochat_visitor_throttled_total").await, 1);
    assert_eq!(relay.metric("ferrochat_visitors_total").await, 4);
    let _ = WAIT;
}
