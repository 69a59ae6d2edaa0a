//! Outgoing webhooks against a real HTTP receiver: signed deliveries of
//! direct and group messages, retries after 500s and after a timeout, the
//! reply loop (a webhook's answer posted back, once), and an idle
//! dispatcher that writes nothing.

mod common;

use common::bots::{admin_ok, create_bot, verify, Answer, Receiver};
use common::{next_push, TestRelay};
use serde_json::json;
use shared::Target;

#[tokio::test]
async fn deliveries_are_signed_and_carry_the_message() {
    let relay = TestRelay::start(common::bots::FLAGS).await;
    let receiver = Receiver::start().await;
    let alice = relay.register("alice").await;
    let bob = relay.register("bob").await;
    let bot = create_bot(&relay.db, "signed", Some(&receiver.url)).await;
    let secret = bot.secret.clone().expect("a secret");
    let mut ws = relay.login(&alice).await;
    ws.chat(bot.id, "a-1", "hello bot").await;
    let got = receiver.wait_for(1).await;
    let sig = got[0].signature.as_deref().expect("a signature header");
    assert!(verify(&secret, sig, &got[0].body), "{sig}");
    assert!(!verify("another secret", sig, &got[0].body));
    let e = got[0].json();
    assert_eq!(e["event"], "message");
    assert_eq!(e["bot"]["username"], "signed");
    assert_eq!(e["message"]["fromId"], json!(alice.user_id));
    assert_eq!(e["message"]["toId"], json!(bot.id));
    assert_eq!(e["message"]["content"]["body"], "hello bot");

    // A group with the bot: every message but the bot's own.
    let g = relay.group(&alice, "g", false, &[&bob]).await;
    admin_ok(&relay.db, &["list-bots"]).await;
    let (status, _) = relay
        .post(
            &format!("/api/groups/{g}/members"),
            Some(&alice.token),
            json!({"username": "signed"}),
        )
        .await;
    assert_eq!(status, 200);
    ws.group_chat(g, "a-2", "to the group").await;
    let (status, _) = relay
        .post(
            "/api/messages",
            Some(&bot.token),
            json!({"groupId": g, "content": {"contentType": 1, "body": "mine"}}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = relay
        .post(
            "/api/messages",
            Some(&bob.token),
            json!({"groupId": g, "content": {"contentType": 1, "body": "bob too"}}),
        )
        .await;
    assert_eq!(status, 201);
    let got = receiver.wait_for(3).await;
    let bodies: Vec<String> = got
        .iter()
        .map(|r| {
            r.json()["message"]["content"]["body"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(bodies.contains(&"to the group".into()) && bodies.contains(&"bob too".into()));
    assert!(!bodies.contains(&"mine".into()), "{bodies:?}");
    assert_eq!(got[2].json()["message"]["groupId"], json!(g));
    let out = common::eventually("outbox drained", || async {
        let out = admin_ok(&relay.db, &["list-bots"]).await;
        out.contains("pending=0").then_some(out)
    })
    .await;
    assert!(out.contains("failed=0"), "{out}");
}

#[tokio::test]
async fn failed_deliveries_are_retried_after_500s_and_timeouts() {
    let relay = TestRelay::start(common::bots::FLAGS).await;
    let receiver = Receiver::start().await;
    let alice = relay.register("alice").await;
    let bot = create_bot(&relay.db, "flaky", Some(&receiver.url)).await;
    receiver.answer(Answer::Status(500));
    let (status, _) = relay
        .post(
            "/api/messages",
            Some(&alice.token),
            json!({"toId": bot.id, "content": {"contentType": 1, "body": "again"}}),
        )
        .await;
    assert_eq!(status, 201);
    receiver.wait_for(2).await;
    // Then it hangs past --webhook-timeout (1s): still retried.
    receiver.answer(Answer::Hang);
    let n = receiver.received().len();
    receiver.wait_for(n + 2).await;
    receiver.answer(Answer::Ok);
    let out = common::eventually("delivered at last", || async {
        let out = admin_ok(&relay.db, &["list-bots"]).await;
        out.contains("pending=0").then_some(out)
    })
    .await;
    assert!(out.contains("failed=0"), "{out}");
    let got = receiver.received();
    let ids: std::collections::HashSet<_> =
        got.iter().map(|r| r.json()["deliveryId"].clone()).collect();
    assert_eq!(ids.len(), 1, "one delivery, tried {} times", got.len());
    // Counted: every failed attempt but none given up, then the delivery.
    let retries = relay.metric("ferrochat_webhook_retries_total").await;
    assert!(retries >= 4, "{retries} retries counted");
    assert!(
        retries < got.len() as i64,
        "{retries} of {} attempts",
        got.len()
    );
    assert_eq!(relay.metric("ferrochat_webhook_delivered_total").await, 1);
    assert_eq!(relay.metric("ferrochat_webhook_given_up_total").await, 0);
}

#[tokio::test]
async fn deliveries_are_given_up_after_the_max_age_and_recorded() {
    let mut flags = common::bots::FLAGS.to_vec();
    flags.extend(["--webhook-max-age", "500ms"]);
    let relay = TestRelay::start(&flags).await;
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Status(503));
    let alice = relay.register("alice").await;
    let bot = create_bot(&relay.db, "doomed", Some(&receiver.url)).await;
    let (status, _) = relay
        .post(
            "/api/messages",
            Some(&alice.token),
            json!({"toId": bot.id, "content": {"contentType": 1, "body": "x"}}),
        )
        .await;
    assert_eq!(status, 201);
    let out = common::eventually("given up", || async {
        let out = admin_ok(&relay.db, &["list-bots"]).await;
        out.contains("failed=1").then_some(out)
    })
    .await;
    assert!(
        out.contains("pending=0") && out.contains("answered 503"),
        "{out}"
    );
    assert_eq!(relay.metric("ferrochat_webhook_given_up_total").await, 1);
}

#[tokio::test]
async fn a_webhooks_reply_is_posted_back_once() {
    let relay = TestRelay::start(common::bots::FLAGS).await;
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Json(r#"{"reply":{"body":"pong"}}"#.into()));
    let alice = relay.register("alice").await;
    let bob = relay.register("bob").await;
    let bot = create_bot(&relay.db, "echo", Some(&receiver.url)).await;
    let mut ws = relay.login(&alice).await;
    ws.chat(bot.id, "p-1", "ping").await;
    let push = next_push(&mut ws).await;
    assert_eq!((push.from_id, push.content.body.as_str()), (bot.id, "pong"));
    assert_eq!(push.to, Target::User(alice.user_id));
    // In a group, the reply goes to the group.
    let g = relay.group(&alice, "g", false, &[&bob]).await;
    relay
        .post(
            &format!("/api/groups/{g}/members"),
            Some(&alice.token),
            json!({"username": "echo"}),
        )
        .await;
    let mut bob_ws = relay.login(&bob).await;
    ws.group_chat(g, "p-2", "ping all").await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(next_push(&mut bob_ws).await);
    }
    assert_eq!(seen[1].from_id, bot.id);
    assert_eq!(
        (seen[1].to, seen[1].content.body.as_str()),
        (Target::Group(g), "pong")
    );
    // The bot's own replies are not delivered back to it.
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn an_idle_dispatcher_does_not_claim_and_a_message_still_goes_out() {
    let relay = TestRelay::start(common::bots::FLAGS).await;
    let receiver = Receiver::start().await;
    let alice = relay.register("alice").await;
    let bot = create_bot(&relay.db, "idle", Some(&receiver.url)).await;
    // Let the setup's writes settle, then watch a few of the dispatcher's
    // polls: it only reads. A claim is a store commit: claiming every
    // 250 ms made ten a second here. (SQLite's indexer still commits its
    // cursor flush about once a second.)
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let before = relay.metric("ferrochat_store_commits_total").await;
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    let after = relay.metric("ferrochat_store_commits_total").await;
    assert!(
        after - before <= 4,
        "an idle relay made {} commits in 3 s",
        after - before
    );
    // A message to the bot still goes out.
    let (status, _) = relay
        .post(
            "/api/messages",
            Some(&alice.token),
            json!({"toId": bot.id, "content": {"contentType": 1, "body": "wake up"}}),
        )
        .await;
    assert_eq!(status, 201);
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].json()["message"]["content"]["body"], "wake up");
}
