//! Bad input, floods and slow consumers: each gets a clear error or close
//! code, nothing crashes, and other users are unaffected.

mod common;

use common::*;
use futures_util::SinkExt;
use shared::limits::{MAX_BODY_BYTES, MAX_FRAME_BYTES};
use shared::{close, ClientFrame, ErrorCode, ServerFrame};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn error_code(f: ServerFrame) -> ErrorCode {
    match f {
        ServerFrame::Error(e) => e.code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_socket_stays_healthy() {
    let relay = TestRelay::start(&["--rate-limit", "1000", "--rate-burst", "1000"]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    let to = b.user_id;
    let cases: Vec<(String, ErrorCode)> = vec![
        ("{".into(), ErrorCode::MalformedJson),
        ("".into(), ErrorCode::MalformedJson),
        ("[]".into(), ErrorCode::MalformedJson),
        ("null".into(), ErrorCode::MalformedJson),
        ("\u{feff}{\"type\":\"40\"}".into(), ErrorCode::MalformedJson),
        (r#"{"type":"77"}"#.into(), ErrorCode::UnknownType),
        (r#"{"type":"81"}"#.into(), ErrorCode::UnknownType),
        (r#"{"fromId":"1"}"#.into(), ErrorCode::MissingField),
        (
            r#"{"type":"80","content":{"contentType":1,"body":"x"}}"#.into(),
            ErrorCode::MissingField,
        ),
        (
            format!(r#"{{"type":"80","toId":"{to}"}}"#),
            ErrorCode::MissingField,
        ),
        (r#"{"type":"90"}"#.into(), ErrorCode::MissingField),
        (
            format!(r#"{{"type":"80","toId":{to},"content":{{"contentType":1,"body":"x"}}}}"#),
            ErrorCode::InvalidField,
        ),
        (
            format!(r#"{{"type":"80","toId":"{to}","content":"x"}}"#),
            ErrorCode::InvalidField,
        ),
        (
            format!(r#"{{"type":"80","toId":"{to}","content":{{"contentType":"1","body":"x"}}}}"#),
            ErrorCode::InvalidField,
        ),
        (
            r#"{"type":"90","msgId":42}"#.into(),
            ErrorCode::InvalidField,
        ),
        (r#"{"type":["80"]}"#.into(), ErrorCode::InvalidField),
        (
            format!(r#"{{"type":"80","toId":"{to}","content":{{"contentType":7,"body":"x"}}}}"#),
            ErrorCode::UnsupportedContentType,
        ),
        (
            format!(r#"{{"type":"80","toId":"{to}","content":{{"contentType":1,"body":"  "}}}}"#),
            ErrorCode::EmptyBody,
        ),
        (
            format!(
                r#"{{"type":"80","toId":"{to}","content":{{"contentType":1,"body":"{}"}}}}"#,
                "x".repeat(MAX_BODY_BYTES + 1)
            ),
            ErrorCode::BodyTooLarge,
        ),
        (
            format!(
                r#"{{"type":"80","toId":"{to}","content":{{"contentType":1,"body":"\ud800"}}}}"#
            ),
            ErrorCode::MalformedJson,
        ),
        (
            format!(
                r#"{{"type":"80","toId":"{to}","content":{{"contentType":1,"body":"a\u0000b"}}}}"#
            ),
            ErrorCode::InvalidField,
        ),
    ];
    for (text, code) in &cases {
        alice.send_text(text).await;
        assert_eq!(error_code(alice.recv().await), *code, "{text:.80}");
    }
    // Still logged in and working; nothing reached bob.
    alice.send(&ClientFrame::Ping { from_id: None }).await;
    assert!(matches!(alice.recv().await, ServerFrame::Pong { .. }));
    bob.expect_silence(Duration::from_millis(200)).await;
    // Unicode that is valid goes through intact.
    let body = "😀 e\u{301} \u{202e}rtl 日本語 \"quotes\" <b>&amp;</b>\n\ttab";
    alice.chat(b.user_id, "uni-1", body).await;
    next_resp(&mut alice).await;
    assert_eq!(next_push(&mut bob).await.content.body, body);
    relay.stop().await;
}

#[tokio::test]
async fn binary_frames_close_with_1003_before_login_and_get_errors_after() {
    let relay = TestRelay::start(&[]).await;
    let a = relay.register("alice").await;
    // Before login: unsupported data, the socket is closed.
    let mut anon = relay.connect().await;
    anon.ws
        .send(Message::Binary(vec![0u8, 159, 146, 150].into()))
        .await
        .unwrap();
    assert_eq!(error_code(anon.recv().await), ErrorCode::BinaryNotSupported);
    assert_eq!(anon.ended().await, Ended::Closed(close::UNSUPPORTED_DATA));
    // Logged in: audio frames (voice rooms). A malformed one, or one for a
    // room this socket is not in, gets an error frame; the socket stays.
    let mut alice = relay.login(&a).await;
    alice
        .ws
        .send(Message::Binary(vec![0u8, 159, 146, 150].into()))
        .await
        .unwrap();
    assert_eq!(error_code(alice.recv().await), ErrorCode::MalformedAudio);
    let mut audio = vec![1u8, 1, 0, 0, 0, 0, 0, 0, 0, 42];
    audio.extend_from_slice(&[0; 8]);
    alice.ws.send(Message::Binary(audio.into())).await.unwrap();
    assert_eq!(error_code(alice.recv().await), ErrorCode::NotInRoom);
    alice.send(&ClientFrame::Ping { from_id: None }).await;
    assert!(matches!(alice.recv().await, ServerFrame::Pong { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn oversized_frames_close_with_1009_and_others_are_unaffected() {
    let relay = TestRelay::start(&[]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    let mut bob_sender = relay.login(&b).await;
    let big = format!(r#"{{"type":"40","pad":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
    alice.send_text(&big).await;
    assert_eq!(error_code(alice.recv().await), ErrorCode::FrameTooLarge);
    assert_eq!(alice.ended().await, Ended::Closed(close::TOO_BIG));
    // The relay and other users carry on.
    bob_sender.chat(a.user_id, "after-1", "still here").await;
    next_resp(&mut bob_sender).await;
    bob.send(&ClientFrame::Ping { from_id: None }).await;
    assert!(matches!(
        bob.recv_where(|f| matches!(f, ServerFrame::Pong { .. }))
            .await,
        ServerFrame::Pong { .. }
    ));
    relay.stop().await;
}

#[tokio::test]
async fn the_rate_limit_answers_with_errors_and_keeps_the_connection() {
    let relay = TestRelay::start(&["--rate-limit", "5", "--rate-burst", "10"]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    for i in 0..30 {
        alice.chat(b.user_id, &format!("flood-{i}"), "spam").await;
    }
    let (mut stored, mut limited) = (0, 0);
    for _ in 0..30 {
        match alice.recv().await {
            ServerFrame::ChatResp { .. } => stored += 1,
            ServerFrame::Error(e) => {
                assert_eq!(e.code, ErrorCode::RateLimited);
                assert!(e.client_msg_id.unwrap().starts_with("flood-"));
                limited += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    // The burst passes (plus what refilled meanwhile); the rest is refused.
    assert!((10..=13).contains(&stored), "stored {stored}");
    assert_eq!(stored + limited, 30);
    // Pings and acks are never rate limited; the socket is healthy.
    alice.send(&ClientFrame::Ping { from_id: None }).await;
    assert!(matches!(alice.recv().await, ServerFrame::Pong { .. }));
    // The bucket refills: a chat is accepted again (retried until it is).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        alice.chat(b.user_id, "later", "after a pause").await;
        match alice.recv().await {
            ServerFrame::ChatResp { .. } => break,
            ServerFrame::Error(e) if e.code == ErrorCode::RateLimited => {
                assert!(tokio::time::Instant::now() < deadline, "never refilled")
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(relay.metric("ferrochat_rate_limited_total").await >= 17);
    relay.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_while_others_keep_receiving() {
    let relay = TestRelay::start(&[
        "--outbound-queue",
        "32",
        "--rate-limit",
        "100000",
        "--rate-burst",
        "100000",
    ])
    .await;
    let (a, slow, fast) = (
        relay.register("alice").await,
        relay.register("slowpoke").await,
        relay.register("speedy").await,
    );
    let mut alice = relay.login(&a).await;
    // slowpoke logs in and then never reads again.
    let mut slowpoke = relay.login(&slow).await;
    let mut speedy = relay.login(&fast).await;
    let body = "x".repeat(MAX_BODY_BYTES);
    // Enough to fill the kernel's socket buffers and then the queue.
    let mut i = 0;
    while relay.metric("ferrochat_slow_consumers_total").await == 0 {
        for _ in 0..50 {
            alice.chat(slow.user_id, &format!("s-{i}"), &body).await;
            i += 1;
        }
        for _ in 0..50 {
            next_resp(&mut alice).await;
        }
        assert!(i < 20_000, "the slow consumer was never disconnected");
    }
    // speedy is unaffected: messages still arrive promptly.
    for j in 0..20 {
        alice.chat(fast.user_id, &format!("f-{j}"), "quick").await;
        let p = next_push(&mut speedy).await;
        assert_eq!(p.content.body, "quick");
        speedy.send(&ClientFrame::Ack { msg_id: p.msg_id }).await;
    }
    // The slow socket was closed (after the frames it had buffered).
    let ended = slowpoke.ended().await;
    assert!(
        matches!(ended, Ended::Closed(close::SLOW_CONSUMER) | Ended::Dropped),
        "{ended:?}"
    );
    // Nothing was lost: the messages wait for slowpoke's next login.
    drop(slowpoke);
    let mut again = relay.login(&slow).await;
    let first = next_push(&mut again).await;
    assert_eq!(first.client_msg_id.as_deref(), Some("s-0"));
    relay.stop().await;
}

/// A WebSocket, once the relay has a free slot for it: a connection that
/// is closing (a metrics probe, a dropped socket) holds its slot until the
/// relay has seen it go, so this retries while the answer is a 503.
async fn connect_when_free(relay: &TestRelay) -> Client {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio_tungstenite::connect_async(format!("ws://{}/ws", relay.addr)).await {
            Ok((ws, _)) => return Client { ws },
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) if res.status() == 503 => {
                assert!(tokio::time::Instant::now() < deadline, "no slot freed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_with_503() {
    let relay = TestRelay::start(&["--max-connections", "3"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_when_free(&relay).await);
    }
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", relay.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("expected a 503, got {other:?}"),
    }
    // Free one slot: it is reusable, and only one is.
    held.pop();
    held.push(connect_when_free(&relay).await);
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", relay.addr)).await;
    assert!(
        matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 503),
        "{refused:?}"
    );
    drop(held);
    // Both refusals counted (and any 503 while a slot was freeing).
    eventually("the refusals are counted", || async {
        let n = relay
            .try_metric("ferrochat_connections_rejected_total")
            .await;
        n.filter(|n| *n >= 2)
    })
    .await;
    relay.stop().await;
}

#[tokio::test]
async fn garbage_before_the_handshake_does_not_hurt() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let relay = TestRelay::start(&[]).await;
    let mut raw = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    raw.write_all(b"\x16\x03\x01garbage\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut buf)).await;
    let a = relay.register("alice").await;
    relay.login(&a).await;
    relay.stop().await;
}

/// ACKs for ids the hub does not track used to go through the store's
/// fresh-read barrier, and were free of the rate limit: 3,000 random-id
/// ACKs from one socket caused 3,002 store commits. Now each costs a plain
/// read, and past a small allowance a rate-limit token.
#[tokio::test]
async fn bogus_acks_cost_no_commit_and_count_against_the_rate_limit() {
    let relay = TestRelay::start(&[]).await; // 50 frames/s, burst 100
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    let commits = relay.metric("ferrochat_store_commits_total").await;
    let started = std::time::Instant::now();
    let n = 3000;
    for _ in 0..n {
        let msg_id = shared::MsgId::now_v7();
        alice.send(&ClientFrame::Ack { msg_id }).await;
    }
    let (mut unknown, mut limited) = (0, 0);
    for _ in 0..n {
        match alice.recv().await {
            ServerFrame::Error(e) if e.code == ErrorCode::UnknownMessage => unknown += 1,
            ServerFrame::Error(e) if e.code == ErrorCode::RateLimited => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let commits = relay.metric("ferrochat_store_commits_total").await - commits;
    // The indexer's own quiet commits (about one a second) are all there is.
    assert!(
        (commits as f64) <= 3.0 + 2.0 * elapsed,
        "{commits} store commits for {n} bogus acks in {elapsed:.1}s"
    );
    // A free allowance of 32 (4/s) plus the rate limit's burst of 100
    // (50/s) were looked up; the rest were refused.
    let allowed = 32.0 + 100.0 + 54.0 * elapsed + 1.0;
    assert!(
        (unknown as f64) <= allowed,
        "{unknown} looked up in {elapsed:.1}s"
    );
    assert_eq!(unknown + limited, n);
    // Alice's socket is healthy, and bob was never affected.
    bob.chat(a.user_id, "still", "still here").await;
    next_resp(&mut bob).await;
    assert_eq!(next_push(&mut alice).await.content.body, "still here");
    relay.stop().await;
}
