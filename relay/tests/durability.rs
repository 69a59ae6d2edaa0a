//! An 81 is a promise: the message survives a relay restart and a
//! `kill -9`.

mod common;

use common::child::*;
use common::*;
use shared::api::Session;
use shared::{ClientFrame, ServerFrame};
use std::time::Duration;

#[tokio::test]
async fn messages_survive_a_restart() {
    let relay = TestRelay::start(&[]).await;
    let db = relay.db.clone();
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        alice
            .chat(b.user_id, &format!("d-{i}"), &format!("durable {i}"))
            .await;
        ids.push(next_resp(&mut alice).await.0);
    }
    drop(alice);
    // Stop before bob ever connects; keep the database directory.
    let dir = relay.stop().await;

    let relay = TestRelay::start_on(&db, &[], "127.0.0.1:0").await;
    let mut bob = relay.login(&b).await;
    for (i, id) in ids.iter().enumerate() {
        let p = next_push(&mut bob).await;
        assert_eq!(p.msg_id, *id);
        assert_eq!(p.content.body, format!("durable {i}"));
    }
    // Tokens, accounts and sequences survived too.
    let mut alice = relay.login(&a).await;
    alice.chat(b.user_id, "d-after", "after restart").await;
    let (_, _, seq) = next_resp(&mut alice).await;
    assert_eq!(seq, 6);
    relay.stop().await;
    drop(dir);
}

/// Acks move the delivery cursor through a map the indexer takes at its
/// commits, not through the write queue: the next login's backlog (a fresh
/// read) and a graceful restart must both see it.
#[tokio::test]
async fn acked_messages_are_not_pushed_again_after_a_login_or_a_restart() {
    let relay = TestRelay::start(&[]).await;
    let db = relay.db.clone();
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    for i in 0..3 {
        alice
            .chat(b.user_id, &format!("k-{i}"), &format!("acked {i}"))
            .await;
        let p = next_push(&mut bob).await;
        bob.send(&ClientFrame::Ack { msg_id: p.msg_id }).await;
        bob.recv_where(|f| matches!(f, ServerFrame::AckResp { .. }))
            .await;
    }
    drop(bob);
    let mut bob = relay.login(&b).await;
    bob.expect_no_push(Duration::from_millis(500)).await;
    drop((alice, bob));
    let dir = relay.stop().await;

    let relay = TestRelay::start_on(&db, &[], "127.0.0.1:0").await;
    let mut bob = relay.login(&b).await;
    bob.expect_no_push(Duration::from_millis(500)).await;
    let mut alice = relay.login(&a).await;
    alice.chat(b.user_id, "k-after", "after the restart").await;
    assert_eq!(next_push(&mut bob).await.content.body, "after the restart");
    relay.stop().await;
    drop(dir);
}

/// The indexer's transactions can fail (a full disk, say). By then the
/// chats are in the commit log, answered and pushed; the failed gathering is
/// rolled back and retried until it succeeds, and nothing is lost or
/// reordered. A trigger stands in for the failure.
#[tokio::test]
async fn a_failing_index_transaction_is_retried_without_losing_chats() {
    if sqlite_only("the indexer's retries, injected with an SQLite trigger") {
        return;
    }
    let relay = TestRelay::start(&[]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    // The first message creates the conversation through the indexer.
    alice.chat(b.user_id, "f-0", "first").await;
    next_resp(&mut alice).await;
    next_push(&mut bob).await;

    let db = rusqlite::Connection::open(relay.db_path()).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.body = 'boom'
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();
    let bodies = ["before", "boom", "after"];
    for (i, body) in bodies.iter().enumerate() {
        alice.chat(b.user_id, &format!("f-{}", i + 1), body).await;
        next_resp(&mut alice).await;
        assert_eq!(next_push(&mut bob).await.content.body, *body);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while relay.metric("ferrochat_store_failures_total").await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the injected failure never happened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.execute_batch("DROP TRIGGER boom").unwrap();

    // History is a fresh read: it waits until the indexer has stored
    // everything answered before it.
    let path = format!("/api/conversations/user/{}/messages", a.user_id);
    let history = relay.history(&b.token, &path).await;
    let got: Vec<(u64, &str)> = history
        .messages
        .iter()
        .map(|m| (m.seq, m.content.body.as_str()))
        .collect();
    assert_eq!(
        got,
        [(1, "first"), (2, "before"), (3, "boom"), (4, "after")]
    );
    drop((alice, bob, db));
    relay.stop().await;
}

/// On SQLite the answered chats are in the commit log, most not yet in
/// SQLite, and the restart replays them; on PostgreSQL they were committed
/// before they were answered.
#[tokio::test]
async fn messages_survive_kill_dash_nine() {
    let (db, _dir) = fresh_db().await;
    let port = free_port();
    let r = ChildRelay::start(&db, port).await;
    let a: Session = r.relay.register("alice").await;
    let b: Session = r.relay.register("bob").await;
    let mut alice = r.relay.login(&a).await;
    // Fire a burst, and kill the relay the moment the last 81 arrives.
    let acked = burst(&mut alice, b.user_id, "k", 200, "kill").await;
    r.kill9();
    drop(alice);

    let r = ChildRelay::start(&db, port).await;
    let mut bob = r.relay.login(&b).await;
    receive_in_order(&mut bob, &acked).await;
    // Resending every key after the replay creates nothing: each answer
    // carries the original id, and bob gets no new push.
    let mut alice = r.relay.login(&a).await;
    let again = burst(&mut alice, b.user_id, "k", 200, "kill").await;
    assert_eq!(
        again, acked,
        "a resend after replay must return the original ids"
    );
    bob.expect_no_push(Duration::from_millis(300)).await;
    drop(r);
}

#[tokio::test]
async fn the_commit_log_wraps_without_losing_anything() {
    if sqlite_only("the commit log") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("wrap.db").display());
    let port = free_port();
    // A 1 MiB log and ~4 MiB of chats: it is reused from its start about
    // four times, each time only after SQLite has everything in it.
    let r = ChildRelay::start_with(&db, port, &["--commit-log-mib", "1"]).await;
    let a: Session = r.relay.register("alice").await;
    let b: Session = r.relay.register("bob").await;
    let mut alice = r.relay.login(&a).await;
    let body = "w".repeat(4000);
    let mut acked = Vec::new();
    for round in 0..4 {
        acked.extend(burst(&mut alice, b.user_id, &format!("w{round}"), 250, &body).await);
    }
    r.kill9();
    drop(alice);

    let r = ChildRelay::start_with(&db, port, &["--commit-log-mib", "1"]).await;
    let mut bob = r.relay.login(&b).await;
    receive_in_order(&mut bob, &acked).await;
    let log = std::fs::metadata(dir.path().join("wrap.db-log")).unwrap();
    assert_eq!(log.len(), 1 << 20, "the log keeps its size");
    drop(r);
}
