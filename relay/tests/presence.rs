//! Presence: contacts see each other come and go; non-contacts do not.

mod common;

use common::*;
use shared::{ServerFrame, UserId};
use std::time::Duration;

/// The next presence frame about `who`: (online).
async fn presence_of(c: &mut Client, who: UserId) -> bool {
    loop {
        match c
            .try_recv_raw(WAIT)
            .await
            .expect("a presence frame in time")
        {
            ServerFrame::Presence {
                user_id, online, ..
            } if user_id == who => return online,
            _ => continue,
        }
    }
}

async fn no_presence(c: &mut Client, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    while let Some(f) = c
        .try_recv_raw(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        assert!(
            !matches!(f, ServerFrame::Presence { .. }),
            "unexpected {f:?}"
        );
    }
}

#[tokio::test]
async fn contacts_see_each_other_come_and_go() {
    let relay = TestRelay::start(&["--presence-grace", "200ms"]).await;
    let (a, b, c) = (
        relay.register("alice").await,
        relay.register("bob").await,
        relay.register("carol").await,
    );
    // alice and bob have a conversation; carol has none with either.
    let mut alice = relay.login(&a).await;
    alice.chat(b.user_id, "hi", "hi bob").await;
    next_resp(&mut alice).await;
    let mut carol = relay.login(&c).await;

    let mut bob = relay.login(&b).await;
    assert!(
        presence_of(&mut alice, b.user_id).await,
        "alice sees bob come online"
    );
    // bob's login snapshot shows alice online.
    assert!(presence_of(&mut bob, a.user_id).await);

    // A second tab and closing one of two tabs change nothing.
    let bob2 = relay.login(&b).await;
    drop(bob2);
    no_presence(&mut alice, Duration::from_millis(600)).await;

    // The last tab closes: offline after the grace period.
    drop(bob);
    assert!(
        !presence_of(&mut alice, b.user_id).await,
        "alice sees bob go offline"
    );
    // carol, not a contact, heard none of it.
    no_presence(&mut carol, Duration::from_millis(100)).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_reload_is_not_a_departure() {
    let relay = TestRelay::start(&["--presence-grace", "1s"]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    alice.chat(b.user_id, "hi", "hi").await;
    next_resp(&mut alice).await;
    let bob = relay.login(&b).await;
    assert!(presence_of(&mut alice, b.user_id).await);
    drop(bob);
    // Bob's socket is gone (he is in his grace period)…
    relay.wait_metric("ferrochat_users_online", 1).await;
    let _bob = relay.login(&b).await; // …and back within it
    no_presence(&mut alice, Duration::from_millis(1500)).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_is_offline_after_the_idle_timeout() {
    let relay = TestRelay::start(&["--presence-grace", "100ms", "--idle-timeout", "500ms"]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut bob = relay.login(&b).await;
    bob.chat(a.user_id, "hi", "hi").await;
    next_resp(&mut bob).await;
    let mut alice = relay.login(&a).await;
    assert!(presence_of(&mut alice, b.user_id).await);
    // alice keeps pinging; bob goes silent without closing (a dead network).
    let pinger = async {
        loop {
            alice
                .send(&shared::ClientFrame::Ping { from_id: None })
                .await;
            match tokio::time::timeout(
                Duration::from_millis(200),
                presence_of(&mut alice, b.user_id),
            )
            .await
            {
                Ok(online) => return online,
                Err(_) => continue,
            }
        }
    };
    let online = tokio::time::timeout(WAIT, pinger)
        .await
        .expect("bob goes offline");
    assert!(!online);
    drop(bob);
    relay.stop().await;
}

#[tokio::test]
async fn a_first_message_makes_two_users_contacts() {
    let relay = TestRelay::start(&[]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    no_presence(&mut alice, Duration::from_millis(200)).await; // strangers
    alice.chat(b.user_id, "first", "nice to meet you").await;
    assert!(presence_of(&mut alice, b.user_id).await);
    assert!(presence_of(&mut bob, a.user_id).await);
    relay.stop().await;
}

#[tokio::test]
async fn small_groups_make_members_contacts() {
    let relay = TestRelay::start(&["--presence-grace", "100ms"]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    relay.group(&a, "club", false, &[&b]).await;
    let mut alice = relay.login(&a).await;
    let bob = relay.login(&b).await;
    assert!(presence_of(&mut alice, b.user_id).await);
    drop(bob);
    assert!(!presence_of(&mut alice, b.user_id).await);
    relay.stop().await;
}
