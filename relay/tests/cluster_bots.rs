//! Bots on a cluster (relay processes on one PostgreSQL and Redis): a
//! message sent on one relay to a bot is delivered to its webhook once,
//! whichever relay claims it, and `POST /api/messages` on one relay
//! reaches a user online on the other.

mod common;

use common::bots::{admin_ok, create_bot, Receiver, FLAGS};
use common::cluster::TestCluster;
use common::next_push;
use serde_json::json;

#[tokio::test]
async fn a_message_to_a_bot_is_delivered_once_across_relays() {
    let c = TestCluster::start(2, FLAGS).await;
    let (r0, r1) = (c.relay(0), c.relay(1));
    let receiver = Receiver::start().await;
    let alice = r0.register("alice").await;
    let bot = create_bot(&c.db, "clustered", Some(&receiver.url)).await;
    for i in 0..10 {
        let (status, _) = r0
            .post(
                "/api/messages",
                Some(&alice.token),
                json!({"toId": bot.id, "clientMsgId": format!("m{i}"),
                         "content": {"contentType": 1, "body": format!("n{i}")}}),
            )
            .await;
        assert_eq!(status, 201);
    }
    receiver.wait_for(10).await;
    common::eventually("the outbox drained", || async {
        let out = admin_ok(&c.db, &["list-bots"]).await;
        out.contains("pending=0").then_some(())
    })
    .await;
    let got = receiver.received();
    assert_eq!(got.len(), 10, "each delivered once");

    // A bot's HTTP send on relay 0 reaches a user online on relay 1.
    let mut a = r1.login(&alice).await;
    let (status, _) = r0
        .post(
            "/api/messages",
            Some(&bot.token),
            json!({"toId": alice.user_id, "content": {"contentType": 1, "body": "across"}}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(next_push(&mut a).await.content.body, "across");
}
