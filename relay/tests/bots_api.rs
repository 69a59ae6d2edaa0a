//! Bots over HTTP: `POST /api/messages` (durable before 201, idempotent by
//! `clientMsgId`, fanned out like a WebSocket send), revoked tokens, a bot
//! in a group, webhooks to private addresses refused without the flag, and
//! the per-user rate limit on HTTP sends.

mod common;

use common::bots::{admin, admin_ok, create_bot, Receiver};
use common::{eventually, next_push, TestRelay};
use serde_json::json;
use shared::Target;

#[tokio::test]
async fn a_bot_sends_over_http_idempotently_and_is_answered_after_the_commit() {
    let relay = TestRelay::start(common::bots::FLAGS).await;
    let alice = relay.register("alice").await;
    let mut ws = relay.login(&alice).await;
    let bot = create_bot(&relay.db, "helper", None).await;

    let body = json!({"toId": alice.user_id, "clientMsgId": "b-1",
                      "content": {"contentType": 1, "body": "hello from a bot"}});
    let (status, sent) = relay
        .post("/api/messages", Some(&bot.token), body.clone())
        .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["duplicate"], false);
    // Answered after the commit: the history has it at once.
    let h = relay
        .history(
            &alice.token,
            &format!("/api/conversations/user/{}/messages", bot.id),
        )
        .await;
    assert_eq!(h.messages.len(), 1);
    assert_eq!(
        h.messages[0].msg_id.to_string(),
        sent["msgId"].as_str().unwrap()
    );
    // Pushed to the online recipient like a WebSocket send.
    let push = next_push(&mut ws).await;
    assert_eq!(push.from_id, bot.id);
    assert_eq!(push.from_name, "helper");
    assert_eq!(push.content.body, "hello from a bot");

    // The same key again: the original's answer, nothing new stored.
    let (status, again) = relay.post("/api/messages", Some(&bot.token), body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["msgId"], sent["msgId"]);
    assert_eq!(again["seq"], sent["seq"]);
    ws.expect_no_push(std::time::Duration::from_millis(300))
        .await;

    // A user's token works too; bad requests are refused.
    let (status, _) = relay
        .post(
            "/api/messages",
            Some(&alice.token),
            json!({"toId": bot.id, "content": {"contentType": 1, "body": "hi bot"}}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = relay
        .post(
            "/api/messages",
            Some(&alice.token),
            json!({"content": {"contentType": 1, "body": "to nobody"}}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = relay
        .post(
            "/api/messages",
            None,
            json!({"toId": bot.id, "content": {"contentType": 1, "body": "x"}}),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn http_sends_beyond_the_rate_limit_get_429_and_other_callers_do_not() {
    // A burst of 3, then one every 10 s: the fourth send in a row is over.
    let mut flags = common::bots::FLAGS.to_vec();
    flags.extend(["--rate-limit", "0.1", "--rate-burst", "3"]);
    let relay = TestRelay::start(&flags).await;
    let alice = relay.register("alice").await;
    let noisy = create_bot(&relay.db, "noisy", None).await;
    let quiet = create_bot(&relay.db, "quiet", None).await;
    let send = |token: String, to: shared::UserId, n: u32| {
        let relay = &relay;
        async move {
            let body = json!({"toId": to, "content": {"contentType": 1, "body": format!("n{n}")}});
            relay
                .request(
                    "POST",
                    "/api/messages",
                    Some(&token),
                    Some(body.to_string()),
                )
                .await
        }
    };
    for n in 0..3 {
        let (status, body, _) = send(noisy.token.clone(), alice.user_id, n).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body, headers) = send(noisy.token.clone(), alice.user_id, 3).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "Retry-After: {retry}");
    // Another bot, and a user, still have their whole burst.
    for n in 0..3 {
        let (status, body, _) = send(quiet.token.clone(), alice.user_id, n).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body, _) = send(alice.token.clone(), noisy.id, 0).await;
    assert_eq!(status, 201, "{body}");
    // Refused sends stored nothing.
    assert_eq!(relay.metric("ferrochat_api_rate_limited_total").await, 1);
    let h = relay
        .history(
            &alice.token,
            &format!("/api/conversations/user/{}/messages", noisy.id),
        )
        .await;
    let from_noisy = h.messages.iter().filter(|m| m.from_id == noisy.id).count();
    assert_eq!(
        (from_noisy, h.messages.len()),
        (3, 4),
        "3 from the bot, 1 from alice"
    );
}

#[tokio::test]
async fn revoked_bot_tokens_are_refused_and_a_new_one_works() {
    let relay = TestRelay::start(common::bots::FLAGS).await;
    let alice = relay.register("alice").await;
    let bot = create_bot(&relay.db, "revokable", None).await;
    let send = |token: String| {
        let relay = &relay;
        let to = alice.user_id;
        async move {
            relay
                .post(
                    "/api/messages",
                    Some(&token),
                    json!({"toId": to, "content": {"contentType": 1, "body": "x"}}),
                )
                .await
                .0
        }
    };
    assert_eq!(send(bot.token.clone()).await, 201);
    let out = admin_ok(&relay.db, &["revoke-bot", "revokable"]).await;
    assert!(out.contains("1 token(s) revoked"), "{out}");
    assert_eq!(send(bot.token.clone()).await, 401);
    let out = admin_ok(&relay.db, &["bot-token", "revokable"]).await;
    let fresh = common::bots::field(&out, "token").unwrap();
    assert_eq!(send(fresh).await, 201);

    // Bots cannot log in with a password, and roles stay apart.
    let (status, _) = relay
        .post(
            "/api/login",
            None,
            json!({"username": "revokable", "password": "password123"}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        admin(&relay.db, &["grant-agent", "revokable"])
            .await
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        admin(&relay.db, &["revoke-bot", "alice"])
            .await
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        admin(&relay.db, &["create-bot", "alice"])
            .await
            .status
            .code(),
        Some(1)
    );
}

#[tokio::test]
async fn a_bot_in_a_group_sends_to_it_and_its_members_get_it() {
    let relay = TestRelay::start(common::bots::FLAGS).await;
    let alice = relay.register("alice").await;
    let bob = relay.register("bob").await;
    let bot = create_bot(&relay.db, "grouper", None).await;
    let g = relay.group(&alice, "team", false, &[&bob]).await;
    let (status, body) = relay
        .post(
            &format!("/api/groups/{g}/members"),
            Some(&alice.token),
            json!({"username": "grouper"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut bob_ws = relay.login(&bob).await;
    let (status, _) = relay
        .post(
            "/api/messages",
            Some(&bot.token),
            json!({"groupId": g, "content": {"contentType": 1, "body": "standup"}}),
        )
        .await;
    assert_eq!(status, 201);
    let push = next_push(&mut bob_ws).await;
    assert_eq!((push.to, push.from_id), (Target::Group(g), bot.id));
}

#[tokio::test]
async fn webhooks_to_private_addresses_are_refused_without_the_flag() {
    let relay = TestRelay::start(&["--webhook-backoff", "100ms"]).await;
    let receiver = Receiver::start().await;
    let alice = relay.register("alice").await;
    let bot = create_bot(&relay.db, "ssrf", Some(&receiver.url)).await;
    let (status, _) = relay
        .post(
            "/api/messages",
            Some(&alice.token),
            json!({"toId": bot.id, "content": {"contentType": 1, "body": "hi"}}),
        )
        .await;
    assert_eq!(status, 201);
    let list = eventually("the delivery given up", || async {
        let out = admin_ok(&relay.db, &["list-bots"]).await;
        out.contains("failed=1").then_some(out)
    })
    .await;
    assert!(
        list.contains("refused") && list.contains("127.0.0.1"),
        "{list}"
    );
    assert!(receiver.received().is_empty());
    // https is not supported, and said so at once.
    let out = admin(&relay.db, &["set-webhook", "ssrf", "https://example.com/"]).await;
    assert_eq!(out.status.code(), Some(1));
}
