//! What only a process shows: one relay per database, and a storage thread
//! that dies takes the relay with it, after which a restart delivers every
//! message that was answered.

mod common;

use common::child::*;
use common::*;
use shared::ServerFrame;
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

/// A second relay on the same SQLite file used to start, answer 81s, and
/// lose those messages ("a logged message conflicts with a stored one").
#[tokio::test]
async fn a_second_relay_on_the_same_database_refuses_to_start_and_the_first_keeps_delivering() {
    if sqlite_only("one relay per database file; PostgreSQL takes several") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.db");
    let db = format!("sqlite://{}", path.display());
    let first = ChildRelay::start(&db, free_port()).await;
    let (a, b) = (
        first.relay.register("alice").await,
        first.relay.register("bob").await,
    );
    let mut alice = first.relay.login(&a).await;
    alice.chat(b.user_id, "k-0", "before").await;
    next_resp(&mut alice).await;

    let mut second = relay_command(&db, free_port(), &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exited(&mut second).await;
    assert!(!status.success(), "the second relay exited with {status}");
    let mut said = String::new();
    second
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    assert!(
        said.contains(&path.display().to_string()) && said.contains("in use by another process"),
        "the error names the database: {said}"
    );

    alice.chat(b.user_id, "k-1", "after").await;
    next_resp(&mut alice).await;
    let mut bob = first.relay.login(&b).await;
    for body in ["before", "after"] {
        assert_eq!(next_push(&mut bob).await.content.body, body);
    }
}

/// Chats keyed `c-{i}` for `i` in `range`, the one at `fatal` with the
/// body that kills a thread; sent without waiting.
async fn stream(
    alice: &mut Client,
    to: shared::UserId,
    range: std::ops::Range<usize>,
    fatal: usize,
) {
    for i in range {
        let body = if i == fatal {
            "boom".to_string()
        } else {
            format!("m {i}")
        };
        alice.chat(to, &format!("c-{i}"), &body).await;
    }
}

/// The 81s that reach `alice` until her socket ends.
async fn answers_until_closed(alice: &mut Client) -> Vec<(shared::MsgId, String)> {
    let mut answered = Vec::new();
    while let Some(f) = alice.try_recv(WAIT).await {
        if let ServerFrame::ChatResp {
            msg_id,
            client_msg_id,
            ..
        } = f
        {
            answered.push((msg_id, client_msg_id.unwrap_or_default()));
        }
    }
    answered
}

/// A relay whose `thread` panics on the chat with body "boom", with alice
/// and bob registered and alice's first chat (which creates the pair's
/// conversation) answered.
async fn doomed(
    db: &str,
    port: u16,
    thread: &str,
) -> (ChildRelay, shared::api::Session, Client, Vec<shared::MsgId>) {
    let mut command = relay_command(db, port, &[]);
    command.env("FERROCHAT_FAULT", format!("{thread}:boom"));
    let r = ChildRelay::spawn(command, db, port).await;
    let a = r.relay.register("alice").await;
    let b = r.relay.register("bob").await;
    let mut alice = r.relay.login(&a).await;
    let first = burst(&mut alice, b.user_id, "first", 1, "first").await;
    (r, b, alice, first)
}

/// The indexer dies after the front answered chats SQLite never got. It
/// used to die alone: the front went on answering, and with its log full
/// it would have waited forever (or reused the log over unapplied records).
#[tokio::test]
async fn an_indexer_that_dies_stops_the_relay_and_a_restart_delivers_every_answered_chat() {
    if sqlite_only("the indexer thread and its failure injection") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("i.db").display());
    let port = free_port();
    let (mut r, b, mut alice, mut answered) = doomed(&db, port, "indexer").await;
    stream(&mut alice, b.user_id, 0..300, 100).await;
    let got = answers_until_closed(&mut alice).await;
    let status = r.exited().await;
    assert!(!status.success(), "exited with {status}");
    // The front answers chats once they are in the log, before the
    // indexer sees them: "boom" itself was answered, and it is durable.
    assert!(got.iter().any(|(_, k)| k == "c-100"), "{got:?}");
    answered.extend(got.into_iter().map(|(id, _)| id));
    drop(r);

    let r = ChildRelay::start(&db, port).await;
    let mut bob = r.relay.login(&b).await;
    receive_in_order(&mut bob, &answered).await;
}

/// The front dies while placing a chat: nothing after it is answered, and
/// everything answered before it is delivered after a restart.
#[tokio::test]
async fn a_front_that_dies_answers_nothing_more_and_a_restart_delivers_what_it_answered() {
    if sqlite_only("the front thread and its failure injection") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("f.db").display());
    let port = free_port();
    let (mut r, b, mut alice, mut answered) = doomed(&db, port, "front").await;
    answered.extend(burst(&mut alice, b.user_id, "before", 20, "before").await);
    stream(&mut alice, b.user_id, 0..50, 0).await;
    let after = answers_until_closed(&mut alice).await;
    assert_eq!(after, [], "no 81 after the front died");
    let status = r.exited().await;
    assert!(!status.success(), "exited with {status}");
    drop(r);

    let r = ChildRelay::start(&db, port).await;
    let mut bob = r.relay.login(&b).await;
    receive_in_order(&mut bob, &answered).await;
    bob.expect_no_push(Duration::from_millis(300)).await;
}
