//! ferrochat end to end on a cluster: two users in headless Chromium
//! behind nginx, their sockets on different relays (PostgreSQL, Redis,
//! relay processes; `services`). The relay of one of them is killed with
//! `kill -9`: the app reconnects through nginx to the other relay and the
//! conversation goes on, nothing lost, nothing shown twice.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_survives_the_loss_of_a_relay() {
    run_cluster(
        "a_conversation_survives_the_loss_of_a_relay",
        2,
        |env| async move {
            let (alice_name, alice) = env.signed_up("alice").await;
            let alice_node = env.node_of_only_user().await;
            let (bob_name, bob) = env.signed_up("bob").await;
            env.until_apart(alice_node, &bob).await;

            alice.open_chat_via_search(&bob_name).await;
            let before = "Across two relays";
            alice.send(before).await;
            bob.click(&conv_item(&alice_name)).await;
            bob.wait_received(before, &alice_name).await;
            alice.wait_state(before, "read").await;

            // Alice's relay dies.
            env.kill_node(alice_node).await;
            alice.wait_reconnecting().await;
            // Written while reconnecting: it waits, then goes out once.
            let during = "Sent while my relay was gone";
            alice.send(during).await;
            alice.wait_connected(Duration::from_secs(30)).await;
            bob.wait_received(during, &alice_name).await;
            let reply = "Still here, on the other relay";
            bob.send(reply).await;
            alice.wait_received(reply, &bob_name).await;
            alice.wait_state(during, "read").await;

            // Nothing shown twice on either side.
            for b in [&alice, &bob] {
                let msgs = b.messages().await.unwrap();
                for body in [before, during, reply] {
                    let n = msgs.iter().filter(|m| m.body == body).count();
                    assert_eq!(n, 1, "{body:?} shown {n} times in {}'s view", b.label);
                }
            }
        },
    )
    .await;
}
