//! Chat, acks, receipts, retries, offline delivery and multi-tab, over real
//! WebSockets against a real relay.

mod common;

use common::*;
use shared::{ClientFrame, ErrorCode, ServerFrame, Target};
use std::time::Duration;

#[tokio::test]
async fn chat_ack_and_delivery_receipt() {
    let relay = TestRelay::start(&[]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;

    alice.chat(b.user_id, "a-1", "hi bob").await;
    let (msg_id, cid, seq) = next_resp(&mut alice).await;
    assert_eq!(cid.as_deref(), Some("a-1"));
    assert_eq!(seq, 1);
    assert_eq!(msg_id.get_version_num(), 7, "msgId is a UUIDv7");

    let push = next_push(&mut bob).await;
    assert_eq!(push.msg_id, msg_id);
    assert_eq!(push.from_id, a.user_id);
    assert_eq!(push.from_name, "alice");
    assert_eq!(push.to, Target::User(b.user_id));
    assert_eq!(push.content.body, "hi bob");
    assert_eq!(push.client_msg_id.as_deref(), Some("a-1"));

    bob.send(&ClientFrame::Ack { msg_id }).await;
    assert_eq!(bob.recv().await, ServerFrame::AckResp { msg_id });
    match alice.recv().await {
        ServerFrame::Delivered {
            msg_id: m, by_id, ..
        } => {
            assert_eq!(m, msg_id);
            assert_eq!(by_id, b.user_id);
        }
        other => panic!("expected a receipt, got {other:?}"),
    }

    // A repeated ack is harmless: 91 again, no second receipt.
    bob.send(&ClientFrame::Ack { msg_id }).await;
    assert_eq!(bob.recv().await, ServerFrame::AckResp { msg_id });
    alice.expect_silence(Duration::from_millis(300)).await;
    relay.stop().await;
}

#[tokio::test]
async fn seed_chat_frame_verbatim() {
    let relay = TestRelay::start(&[]).await;
    let (a, b) = (relay.register("user1").await, relay.register("user2").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    // The classic frame, with the real ids in place of the article's 1 and 2.
    alice
        .send_text(&format!(
            r#"{{"type":"80","fromId":"{}","toId":"{}","content":{{"contentType":1,"body":"hi"}}}}"#,
            a.user_id, b.user_id
        ))
        .await;
    let (msg_id, cid, _) = next_resp(&mut alice).await;
    assert_eq!(cid, None);
    let push = next_push(&mut bob).await;
    assert_eq!((push.msg_id, push.content.body.as_str()), (msg_id, "hi"));
    bob.send_text(&format!(r#"{{"type":"90","msgId":"{msg_id}"}}"#))
        .await;
    assert_eq!(bob.recv().await, ServerFrame::AckResp { msg_id });
    relay.stop().await;
}

#[tokio::test]
async fn unacked_pushes_are_retried_then_stop_after_the_ack() {
    let relay = TestRelay::start(&["--ack-timeout", "200ms"]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    alice.chat(b.user_id, "r-1", "are you there?").await;
    let (msg_id, _, _) = next_resp(&mut alice).await;

    // No ack: the same message (same msgId) comes again, and again.
    let first = next_push(&mut bob).await;
    let second = next_push(&mut bob).await;
    let third = next_push(&mut bob).await;
    assert_eq!(
        (first.msg_id, second.msg_id, third.msg_id),
        (msg_id, msg_id, msg_id)
    );
    assert!(relay.metric("ferrochat_retries_total").await >= 2);

    bob.send(&ClientFrame::Ack { msg_id }).await;
    bob.recv_where(|f| matches!(f, ServerFrame::AckResp { .. }))
        .await;
    // Drain a retry that may already be queued, then nothing more.
    let _ = bob.try_recv(Duration::from_millis(100)).await;
    bob.expect_silence(Duration::from_millis(1000)).await;
    relay.stop().await;
}

#[tokio::test]
async fn retry_backoff_grows() {
    let relay = TestRelay::start(&["--ack-timeout", "100ms", "--max-retry-interval", "10s"]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    alice.chat(b.user_id, "r-2", "ping").await;
    next_resp(&mut alice).await;
    let t0 = tokio::time::Instant::now();
    let mut arrivals = Vec::new();
    for _ in 0..4 {
        next_push(&mut bob).await;
        arrivals.push(t0.elapsed());
    }
    // pushes at ~0, 100, 300, 700 ms: each gap about twice the previous
    let gaps: Vec<_> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[1] > gaps[0] + Duration::from_millis(40), "{gaps:?}");
    assert!(gaps[2] > gaps[1] + Duration::from_millis(80), "{gaps:?}");
    relay.stop().await;
}

#[tokio::test]
async fn offline_messages_arrive_in_order_at_next_login() {
    let relay = TestRelay::start(&[]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut sent = Vec::new();
    for i in 0..30 {
        alice
            .chat(b.user_id, &format!("o-{i}"), &format!("message {i}"))
            .await;
        sent.push(next_resp(&mut alice).await.0);
    }
    let mut bob = relay.login(&b).await;
    for (i, id) in sent.iter().enumerate() {
        let p = next_push(&mut bob).await;
        assert_eq!(p.msg_id, *id, "message {i} out of order");
        assert_eq!(p.content.body, format!("message {i}"));
        assert_eq!(p.seq, i as u64 + 1);
        bob.send(&ClientFrame::Ack { msg_id: p.msg_id }).await;
    }
    // Acked: a later login brings nothing back.
    for _ in 0..30 {
        bob.recv_where(|f| matches!(f, ServerFrame::AckResp { .. }))
            .await;
    }
    drop(bob);
    relay.wait_metric("ferrochat_ws_sessions", 1).await;
    let mut bob2 = relay.login(&b).await;
    bob2.expect_silence(Duration::from_millis(500)).await;
    relay.stop().await;
}

#[tokio::test]
async fn unacked_messages_come_back_at_next_login() {
    let relay = TestRelay::start(&[]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    alice.chat(b.user_id, "u-1", "one").await;
    alice.chat(b.user_id, "u-2", "two").await;
    let one = next_push(&mut bob).await;
    let two = next_push(&mut bob).await;
    // Ack only the second (out of order); the first is still owed.
    bob.send(&ClientFrame::Ack { msg_id: two.msg_id }).await;
    bob.recv_where(|f| matches!(f, ServerFrame::AckResp { .. }))
        .await;
    drop(bob);
    relay.wait_metric("ferrochat_ws_sessions", 1).await;
    let mut bob = relay.login(&b).await;
    // The cursor never skips an unacked message: "one" comes back (and
    // "two" too, which the client dedupes by msgId).
    let again = next_push(&mut bob).await;
    assert_eq!(again.msg_id, one.msg_id);
    relay.stop().await;
}

#[tokio::test]
async fn every_tab_gets_pushes_and_any_ack_counts() {
    let relay = TestRelay::start(&["--ack-timeout", "300ms"]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut alice_tab2 = relay.login(&a).await;
    let mut bob1 = relay.login(&b).await;
    let mut bob2 = relay.login(&b).await;

    alice.chat(b.user_id, "t-1", "to both tabs").await;
    let (msg_id, _, _) = next_resp(&mut alice).await;
    assert_eq!(next_push(&mut bob1).await.msg_id, msg_id);
    assert_eq!(next_push(&mut bob2).await.msg_id, msg_id);
    // The sender's other tab sees the message too.
    let echo = next_push(&mut alice_tab2).await;
    assert_eq!((echo.msg_id, echo.from_id), (msg_id, a.user_id));

    // One tab acks: retries stop for both.
    bob1.send(&ClientFrame::Ack { msg_id }).await;
    bob1.recv_where(|f| matches!(f, ServerFrame::AckResp { .. }))
        .await;
    let _ = bob2.try_recv(Duration::from_millis(50)).await;
    bob2.expect_silence(Duration::from_millis(900)).await;
    // The receipt reaches both of alice's tabs.
    for tab in [&mut alice, &mut alice_tab2] {
        let r = tab
            .recv_where(|f| matches!(f, ServerFrame::Delivered { .. }))
            .await;
        assert!(matches!(r, ServerFrame::Delivered { by_id, .. } if by_id == b.user_id));
    }
    relay.stop().await;
}

#[tokio::test]
async fn resends_with_the_same_client_msg_id_create_nothing_new() {
    let relay = TestRelay::start(&[]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    alice.chat(b.user_id, "same-key", "once").await;
    let (first, _, seq1) = next_resp(&mut alice).await;
    alice.chat(b.user_id, "same-key", "once").await;
    let (second, _, seq2) = next_resp(&mut alice).await;
    assert_eq!((first, seq1), (second, seq2));
    // Also across a reconnect.
    drop(alice);
    let mut alice = relay.login(&a).await;
    alice.chat(b.user_id, "same-key", "once").await;
    assert_eq!(next_resp(&mut alice).await.0, first);

    let mut bob = relay.login(&b).await;
    assert_eq!(next_push(&mut bob).await.msg_id, first);
    bob.expect_silence(Duration::from_millis(400)).await;
    assert_eq!(relay.metric("ferrochat_messages_in_total").await, 1);
    relay.stop().await;
}

#[tokio::test]
async fn spoofed_sender_is_rejected_and_nothing_is_delivered() {
    let relay = TestRelay::start(&[]).await;
    let (a, b, c) = (
        relay.register("alice").await,
        relay.register("bob").await,
        relay.register("carol").await,
    );
    let mut alice = relay.login(&a).await;
    let mut carol = relay.login(&c).await;
    // alice claims to be bob
    alice
        .send_text(&format!(
            r#"{{"type":"80","fromId":"{}","toId":"{}","clientMsgId":"sp-1","content":{{"contentType":1,"body":"I am bob"}}}}"#,
            b.user_id, c.user_id
        ))
        .await;
    match alice.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, ErrorCode::SpoofedSender);
            assert_eq!(e.client_msg_id.as_deref(), Some("sp-1"));
        }
        other => panic!("expected spoofed_sender, got {other:?}"),
    }
    carol.expect_silence(Duration::from_millis(400)).await;
    // A ping with someone else's fromId is refused too; the socket stays up.
    alice
        .send_text(&format!(r#"{{"type":"40","fromId":"{}"}}"#, b.user_id))
        .await;
    assert!(
        matches!(alice.recv().await, ServerFrame::Error(e) if e.code == ErrorCode::SpoofedSender)
    );
    alice
        .send_text(&format!(r#"{{"type":"40","fromId":"{}"}}"#, a.user_id))
        .await;
    assert!(matches!(alice.recv().await, ServerFrame::Pong { .. }));
    assert_eq!(relay.metric("ferrochat_messages_in_total").await, 0);
    relay.stop().await;
}

#[tokio::test]
async fn unknown_recipients_and_messages() {
    let relay = TestRelay::start(&[]).await;
    let a = relay.register("alice").await;
    let mut alice = relay.login(&a).await;
    alice.chat(shared::UserId(999_999), "x-1", "anyone?").await;
    assert!(matches!(alice.recv().await,
        ServerFrame::Error(e) if e.code == ErrorCode::UnknownRecipient && e.client_msg_id.as_deref() == Some("x-1")));
    alice.chat(a.user_id, "x-2", "note to self").await;
    assert!(
        matches!(alice.recv().await, ServerFrame::Error(e) if e.code == ErrorCode::UnknownRecipient)
    );
    // A group that does not exist (or that alice is not in).
    alice
        .send_text(r#"{"type":"80","groupId":"12345","clientMsgId":"x-3","content":{"contentType":1,"body":"hello group"}}"#)
        .await;
    assert!(matches!(alice.recv().await, ServerFrame::Error(e) if e.code == ErrorCode::NotMember));
    let bogus = uuid::Uuid::now_v7();
    alice.send(&ClientFrame::Ack { msg_id: bogus }).await;
    assert!(matches!(alice.recv().await,
        ServerFrame::Error(e) if e.code == ErrorCode::UnknownMessage && e.msg_id == Some(bogus)));
    relay.stop().await;
}

#[tokio::test]
async fn acks_for_someone_elses_message_are_refused() {
    let relay = TestRelay::start(&[]).await;
    let (a, b, c) = (
        relay.register("alice").await,
        relay.register("bob").await,
        relay.register("carol").await,
    );
    let mut alice = relay.login(&a).await;
    alice.chat(b.user_id, "p-1", "private").await;
    let (msg_id, _, _) = next_resp(&mut alice).await;
    let mut carol = relay.login(&c).await;
    carol.send(&ClientFrame::Ack { msg_id }).await;
    assert!(
        matches!(carol.recv().await, ServerFrame::Error(e) if e.code == ErrorCode::UnknownMessage)
    );
    // bob still gets it
    let mut bob = relay.login(&b).await;
    assert_eq!(next_push(&mut bob).await.msg_id, msg_id);
    relay.stop().await;
}

#[tokio::test]
async fn conversations_have_independent_sequences() {
    let relay = TestRelay::start(&[]).await;
    let (a, b, c) = (
        relay.register("alice").await,
        relay.register("bob").await,
        relay.register("carol").await,
    );
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    alice.chat(b.user_id, "s-1", "1").await;
    alice.chat(c.user_id, "s-2", "1").await;
    alice.chat(b.user_id, "s-3", "2").await;
    let seqs: Vec<u64> = [
        next_resp(&mut alice).await.2,
        next_resp(&mut alice).await.2,
        next_resp(&mut alice).await.2,
    ]
    .into();
    assert_eq!(seqs, vec![1, 1, 2]);
    bob.chat(a.user_id, "s-4", "reply").await;
    assert_eq!(
        next_resp(&mut bob).await.2,
        3,
        "one conversation per pair, both directions"
    );
    relay.stop().await;
}

/// The relay answers a chat once it is in its commit log and indexes it
/// into SQLite later; a resent key is found on either side of that line.
#[tokio::test]
async fn a_resent_key_is_deduplicated_before_and_after_indexing() {
    let relay = TestRelay::start(&[]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    // The first message of a pair creates the conversation in SQLite
    // directly; the ones after it go through the log.
    alice.chat(b.user_id, "warm-up", "hello").await;
    let warm = next_resp(&mut alice).await;
    assert_eq!(next_push(&mut bob).await.msg_id, warm.0);
    alice.chat(b.user_id, "same-key", "once").await;
    let first = next_resp(&mut alice).await;
    // At once: the key is still only in the log.
    alice.chat(b.user_id, "same-key", "twice").await;
    assert_eq!(next_resp(&mut alice).await, first);
    // A history read waits until SQLite has every answered chat.
    let (status, page) = relay
        .get(
            &format!("/api/conversations/user/{}/messages", b.user_id),
            Some(&a.token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["messages"].as_array().unwrap().len(), 2, "{page}");
    alice.chat(b.user_id, "same-key", "thrice").await;
    assert_eq!(next_resp(&mut alice).await, first);
    // bob got it once, and the next message takes the next seq.
    assert_eq!(next_push(&mut bob).await.msg_id, first.0);
    bob.expect_no_push(Duration::from_millis(300)).await;
    alice.chat(b.user_id, "other-key", "next").await;
    assert_eq!(next_resp(&mut alice).await.2, first.2 + 1);
    relay.stop().await;
}
