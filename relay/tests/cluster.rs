//! Cluster mode with real parts: relay processes on one PostgreSQL
//! database and one Redis, users on different relays.

mod common;

use common::child::burst;
use common::cluster::TestCluster;
use common::{eventually, next_push, next_resp, Client, Ended, WAIT};
use shared::{close, ClientFrame, ServerFrame, Target};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Receives the next frame matching `pred` within `wait` (presence frames
/// included).
async fn within(
    c: &mut Client,
    wait: Duration,
    pred: impl Fn(&ServerFrame) -> bool,
) -> ServerFrame {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.try_recv_raw(left).await {
            Some(f) if pred(&f) => return f,
            Some(_) => continue,
            None => panic!("no matching frame within {wait:?}"),
        }
    }
}

/// The 81 of a first message to `peer`, which must come after a presence
/// frame saying `peer` is online.
async fn answer_after_presence(a: &mut Client, peer: shared::UserId) -> (shared::MsgId, u64) {
    let mut online = false;
    loop {
        match within(a, WAIT, |_| true).await {
            ServerFrame::Presence {
                user_id,
                online: true,
                ..
            } if user_id == peer => online = true,
            ServerFrame::ChatResp { msg_id, seq, .. } => {
                assert!(online, "the peer's presence came before the 81 (seq {seq})");
                return (msg_id, seq);
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn users_on_different_relays_chat_with_receipts_typing_read_markers_and_presence() {
    let c = TestCluster::start(2, &[]).await;
    let (r0, r1) = (c.relay(0), c.relay(1));
    let alice = r0.register("alice").await;
    let bob = r1.register("bob").await;
    let mut b = r1.login(&bob).await;
    let mut a = r0.login(&alice).await;

    a.chat(bob.user_id, "c1", "hello across relays").await;
    // The first message makes them contacts: alice hears bob is online
    // (before her 81).
    let (id, seq) = answer_after_presence(&mut a, bob.user_id).await;
    let p = next_push(&mut b).await;
    assert_eq!((p.msg_id, p.seq), (id, seq));
    assert_eq!(p.content.body, "hello across relays");
    // Bob's ack reaches alice as a delivery receipt.
    b.send(&ClientFrame::Ack { msg_id: id }).await;
    within(&mut a, WAIT, |f| {
        matches!(f, ServerFrame::Delivered { msg_id, by_id, .. } if *msg_id == id && *by_id == bob.user_id)
    })
    .await;
    // Typing and a read marker cross too.
    b.send(&ClientFrame::Typing {
        to: Target::User(alice.user_id),
    })
    .await;
    within(
        &mut a,
        WAIT,
        |f| matches!(f, ServerFrame::Typing { from_id, .. } if *from_id == bob.user_id),
    )
    .await;
    b.send(&ClientFrame::Read {
        to: Target::User(alice.user_id),
        seq,
    })
    .await;
    within(&mut a, WAIT, |f| {
        matches!(f, ServerFrame::ReadReceipt { by_id, seq: s, .. } if *by_id == bob.user_id && *s == seq)
    })
    .await;
    // Bob leaves: after the grace period alice hears it, across relays.
    drop(b);
    within(&mut a, WAIT, |f| {
        matches!(f, ServerFrame::Presence { user_id, online: false, .. } if *user_id == bob.user_id)
    })
    .await;
}

#[tokio::test]
async fn group_events_and_group_chats_reach_members_on_every_relay() {
    let c = TestCluster::start(2, &[]).await;
    let (r0, r1) = (c.relay(0), c.relay(1));
    let alice = r0.register("galice").await;
    let bob = r1.register("gbob").await;
    let carol = r1.register("gcarol").await;
    let mut b = r1.login(&bob).await;
    let mut k = r1.login(&carol).await;
    let mut a = r0.login(&alice).await;
    let g = r0.group(&alice, "crossing", true, &[&bob, &carol]).await;
    // The group events reach the members on the other relay.
    for m in [&mut b, &mut k] {
        within(
            m,
            WAIT,
            |f| matches!(f, ServerFrame::GroupEvent(e) if e.group_id == g),
        )
        .await;
    }
    a.group_chat(g, "g1", "to everyone").await;
    let (id, _, _) = next_resp(&mut a).await;
    for m in [&mut b, &mut k] {
        assert_eq!(next_push(m).await.msg_id, id);
    }
}

#[tokio::test]
async fn a_logout_closes_that_sessions_sockets_on_every_relay() {
    let c = TestCluster::start(2, &[]).await;
    let alice = c.relay(0).register("lalice").await;
    let mut here = c.relay(0).login(&alice).await;
    let mut there = c.relay(1).login(&alice).await;
    let (status, _) = c
        .relay(0)
        .post("/api/logout", Some(&alice.token), serde_json::json!({}))
        .await;
    assert_eq!(status, 204);
    assert_eq!(here.ended().await, Ended::Closed(close::LOGGED_OUT));
    assert_eq!(there.ended().await, Ended::Closed(close::LOGGED_OUT));
}

/// Two relays write into one group at the same moment: every member sees
/// one sequence, gap-free, in order, without duplicates, and history
/// agrees on every relay.
#[tokio::test]
async fn two_relays_writing_into_one_group_make_one_gap_free_sequence() {
    let c = TestCluster::start(2, &[]).await;
    let (r0, r1) = (c.relay(0), c.relay(1));
    let w0 = r0.register("writer0").await;
    let w1 = r1.register("writer1").await;
    let reader = r1.register("reader").await;
    let g = r0.group(&w0, "busy", true, &[&w1, &reader]).await;
    let mut rd = r1.login(&reader).await;
    let mut a = r0.login(&w0).await;
    let mut b = r1.login(&w1).await;
    const N: usize = 150;
    let (s0, s1) = tokio::join!(
        async {
            for i in 0..N {
                a.group_chat(g, &format!("a-{i}"), &format!("a {i}")).await;
            }
            let mut seqs = Vec::new();
            for _ in 0..N {
                seqs.push(next_resp(&mut a).await.2);
            }
            seqs
        },
        async {
            for i in 0..N {
                b.group_chat(g, &format!("b-{i}"), &format!("b {i}")).await;
            }
            let mut seqs = Vec::new();
            for _ in 0..N {
                seqs.push(next_resp(&mut b).await.2);
            }
            seqs
        }
    );
    let mut all: Vec<u64> = s0.iter().chain(&s1).copied().collect();
    all.sort_unstable();
    let first = all[0];
    assert_eq!(
        all,
        (first..first + 2 * N as u64).collect::<Vec<_>>(),
        "one gap-free sequence"
    );
    // Each writer's own messages are in the order it sent them.
    assert!(s0.windows(2).all(|w| w[0] < w[1]));
    assert!(s1.windows(2).all(|w| w[0] < w[1]));
    // The reader gets all of them, in seq order, once.
    let mut got = Vec::new();
    while got.len() < 2 * N {
        let p = next_push(&mut rd).await;
        rd.send(&ClientFrame::Ack { msg_id: p.msg_id }).await;
        got.push(p.seq);
    }
    assert_eq!(got, (first..first + 2 * N as u64).collect::<Vec<_>>());
    rd.expect_no_push(Duration::from_millis(300)).await;
}

/// A relay killed with `kill -9` while a client is sending through it: the
/// client reconnects to another relay and resends what had no 81, with
/// the same keys; the recipient gets every message once.
#[tokio::test]
async fn a_relay_killed_mid_burst_loses_nothing_and_stores_nothing_twice() {
    let mut c = TestCluster::start(3, &[]).await;
    let alice = c.relay(0).register("kalice").await;
    let bob = c.relay(1).register("kbob").await;
    let mut b = c.relay(1).login(&bob).await;
    let mut a = c.relay(0).login(&alice).await;
    const N: usize = 200;
    for i in 0..N {
        a.chat(bob.user_id, &format!("k-{i}"), &format!("k {i}"))
            .await;
    }
    // Some answers arrive, then the relay dies under the rest.
    let mut answered = BTreeMap::new();
    for _ in 0..N / 4 {
        let (id, cid, _) = next_resp(&mut a).await;
        answered.insert(cid.unwrap(), id);
    }
    c.kill9(0);
    drop(a);
    // Through another relay: resend everything not answered (a client
    // does not know which of the rest were stored), with the same keys.
    let mut a = c.relay(2).login(&alice).await;
    let resend: Vec<usize> = (0..N)
        .filter(|i| !answered.contains_key(&format!("k-{i}")))
        .collect();
    for i in &resend {
        a.chat(bob.user_id, &format!("k-{i}"), &format!("k {i}"))
            .await;
    }
    for _ in &resend {
        let (id, cid, _) = next_resp(&mut a).await;
        answered.insert(cid.unwrap(), id);
    }
    assert_eq!(answered.len(), N);
    // Bob gets each message once (a redelivery of the same msgId is
    // allowed: clients dedupe by it), in seq order.
    let mut seen = HashSet::new();
    let mut last = 0;
    while seen.len() < N {
        let p = next_push(&mut b).await;
        b.send(&ClientFrame::Ack { msg_id: p.msg_id }).await;
        if seen.insert(p.msg_id) {
            assert!(p.seq > last, "in order");
            last = p.seq;
            let cid = p.client_msg_id.clone().unwrap();
            assert_eq!(answered[&cid], p.msg_id, "one row per key");
        }
    }
    let ids: HashSet<_> = answered.values().collect();
    assert_eq!(ids.len(), N, "no key stored twice");
}

/// A chat whose event is never published (its relay "died" between
/// commit and publish) still reaches the online recipient on another
/// relay, by the periodic check, not at their next login.
#[tokio::test]
async fn a_message_stored_but_never_published_still_reaches_the_recipient() {
    let c = TestCluster::start_with(
        2,
        &[],
        &[("FERROCHAT_FAULT", "publish:never published")],
        None,
    )
    .await;
    let alice = c.relay(0).register("palice").await;
    let bob = c.relay(1).register("pbob").await;
    let mut b = c.relay(1).login(&bob).await;
    let mut a = c.relay(0).login(&alice).await;
    a.chat(bob.user_id, "p1", "published").await;
    next_resp(&mut a).await;
    assert_eq!(next_push(&mut b).await.content.body, "published");
    a.chat(bob.user_id, "p2", "never published").await;
    let (id, _, _) = next_resp(&mut a).await;
    let p = next_push(&mut b).await;
    assert_eq!(p.msg_id, id);
    assert!(c.relay(1).metric("ferrochat_cluster_recovered_total").await >= 1);
}

/// Redis stopped and started empty under traffic: chats still commit and
/// get their 81, the relays say they are degraded meanwhile, and the
/// recipient gets everything in order without reconnecting; a logout made
/// meanwhile (its event lost) still closes that session's socket on the
/// other relay once it has subscribed again.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_restart_loses_nothing_and_a_logout_meanwhile_still_closes_sockets() {
    let mut c = TestCluster::start(2, &[]).await;
    let alice = c.relay(0).register("ralice").await;
    let bob = c.relay(1).register("rbob").await;
    let carol = c.relay(0).register("rcarol").await;
    let mut b = c.relay(1).login(&bob).await;
    let mut a = c.relay(0).login(&alice).await;
    let mut carol_there = c.relay(1).login(&carol).await;
    let before = burst(&mut a, bob.user_id, "r-before", 10, "before").await;
    let redis = &mut c.redis;
    tokio::task::block_in_place(|| redis.kill().unwrap());
    let during = burst(&mut a, bob.user_id, "r-during", 20, "during").await;
    let r0 = c.relay(0);
    eventually("the relay says it is degraded", || async {
        let (status, _) = r0.get("/healthz", None).await;
        (status == 503).then_some(())
    })
    .await;
    // A logout while Redis is down: its event cannot reach relay 1.
    let (status, _) = r0
        .post("/api/logout", Some(&carol.token), serde_json::json!({}))
        .await;
    assert_eq!(status, 204);
    let redis = &mut c.redis;
    tokio::task::block_in_place(|| redis.start_again().unwrap());
    c.wait_linked(0).await;
    c.wait_linked(1).await;
    // Relay 1's catch-up after subscribing again finds the token revoked.
    assert_eq!(carol_there.ended().await, Ended::Closed(close::LOGGED_OUT));
    let after = burst(&mut a, bob.user_id, "r-after", 10, "after").await;
    let mut expected = before;
    expected.extend(during);
    expected.extend(after);
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let p = next_push(&mut b).await;
        b.send(&ClientFrame::Ack { msg_id: p.msg_id }).await;
        if !got.contains(&p.msg_id) {
            got.push(p.msg_id);
        }
    }
    assert_eq!(got, expected, "everything, in order, once");
}

/// A relay that dies takes its users offline for their contacts on the
/// other relays, within the liveness TTL (10 s) and a tick.
#[tokio::test]
async fn a_dead_relays_users_go_offline_within_seconds() {
    let mut c = TestCluster::start(2, &[]).await;
    let alice = c.relay(0).register("dalice").await;
    let bob = c.relay(1).register("dbob").await;
    let mut b = c.relay(1).login(&bob).await;
    let mut a = c.relay(0).login(&alice).await;
    a.chat(bob.user_id, "d1", "hi").await;
    answer_after_presence(&mut a, bob.user_id).await;
    next_push(&mut b).await;
    c.kill9(1);
    within(&mut a, Duration::from_secs(20), |f| {
        matches!(f, ServerFrame::Presence { user_id, online: false, .. } if *user_id == bob.user_id)
    })
    .await;
}

/// PostgreSQL stopped under traffic: chats get an error frame, never an
/// 81; when it is back the relays reconnect by themselves and nothing
/// answered is lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restart_answers_errors_never_acks_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut pg = tokio::task::spawn_blocking({
        let d = dir.path().join("pg");
        move || services::postgres::Postgres::start(d).expect("postgres starts")
    })
    .await
    .unwrap();
    let db = pg.create_database("restart").unwrap();
    let c = TestCluster::start_with(2, &[], &[], Some(db)).await;
    let alice = c.relay(0).register("salice").await;
    let bob = c.relay(1).register("sbob").await;
    let mut b = c.relay(1).login(&bob).await;
    let mut a = c.relay(0).login(&alice).await;
    let mut stored = burst(&mut a, bob.user_id, "s-before", 10, "before").await;
    tokio::task::block_in_place(|| pg.kill().unwrap());
    // While it is down: an error for each chat, never an 81.
    for i in 0..5 {
        a.chat(bob.user_id, &format!("s-down-{i}"), "while down")
            .await;
        match a
            .recv_where(|f| matches!(f, ServerFrame::ChatResp { .. } | ServerFrame::Error(_)))
            .await
        {
            ServerFrame::Error(e) => {
                assert_eq!(e.client_msg_id.as_deref(), Some(&*format!("s-down-{i}")))
            }
            other => panic!("an answer while PostgreSQL is down: {other:?}"),
        }
    }
    tokio::task::block_in_place(|| pg.start_again().unwrap());
    // The relays reconnect by themselves: the client resends with the same
    // keys until they are answered.
    let deadline = tokio::time::Instant::now() + WAIT;
    let resent = loop {
        a.chat(bob.user_id, "s-down-0", "while down").await;
        match a
            .recv_where(|f| matches!(f, ServerFrame::ChatResp { .. } | ServerFrame::Error(_)))
            .await
        {
            ServerFrame::ChatResp { msg_id, .. } => break msg_id,
            _ => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "chats are not answered again"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    stored.push(resent);
    stored.extend(burst(&mut a, bob.user_id, "s-after", 10, "after").await);
    let mut got = Vec::new();
    while got.len() < stored.len() {
        let p = next_push(&mut b).await;
        b.send(&ClientFrame::Ack { msg_id: p.msg_id }).await;
        if !got.contains(&p.msg_id) {
            got.push(p.msg_id);
        }
    }
    assert_eq!(got, stored);
}
