//! Webhook deliveries survive a relay killed with `kill -9`: the message
//! was answered (its outbox row is durable with it) while the receiver
//! failed; the relay restarted on the same database delivers it.

mod common;

use common::bots::{create_bot, Answer, Receiver, FLAGS};
use common::child::{free_port, ChildRelay};
use serde_json::json;

#[tokio::test]
async fn pending_deliveries_survive_a_kill_9() {
    let (db, _dir) = common::fresh_db().await;
    let port = free_port();
    let relay = ChildRelay::start_with(&db, port, FLAGS).await;
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Status(500));
    let alice = relay.relay.register("alice").await;
    let bot = create_bot(&db, "durable", Some(&receiver.url)).await;
    let (status, sent) = relay
        .relay
        .post(
            "/api/messages",
            Some(&alice.token),
            json!({"toId": bot.id, "content": {"contentType": 1, "body": "survive"}}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    // The first attempt failed: the delivery is pending when the relay dies.
    receiver.wait_for(1).await;
    relay.kill9();
    receiver.answer(Answer::Ok);
    let n = receiver.received().len();
    let relay = ChildRelay::start_with(&db, port, FLAGS).await;
    let got = receiver.wait_for(n + 1).await;
    let last = got.last().unwrap().json();
    assert_eq!(last["message"]["content"]["body"], "survive");
    assert_eq!(last["message"]["msgId"], sent["msgId"]);
    common::eventually("the outbox drained", || async {
        let out = common::bots::admin_ok(&db, &["list-bots"]).await;
        out.contains("pending=0").then_some(())
    })
    .await;
    drop(relay);
}
