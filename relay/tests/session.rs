//! Login, heartbeat, idle timeout and logout over real WebSockets.

mod common;

use common::*;
use shared::{close, ClientFrame, ErrorCode, ServerFrame};
use std::time::Duration;

#[tokio::test]
async fn login_with_a_good_token() {
    let relay = TestRelay::start(&[]).await;
    let s = relay.register("alice").await;
    let mut c = relay.connect().await;
    c.send_text(&format!(r#"{{"type":"10","token":"{}"}}"#, s.token))
        .await;
    match c.recv().await {
        ServerFrame::LoginOk {
            user_id,
            username,
            ts,
        } => {
            assert_eq!(user_id, s.user_id);
            assert_eq!(username, "alice");
            assert!(ts > 1_600_000_000_000);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(relay.metric("ferrochat_users_online").await, 1);
    relay.stop().await;
}

#[tokio::test]
async fn login_with_a_bad_token_fails_and_closes() {
    let relay = TestRelay::start(&[]).await;
    for token in ["2", "not-a-real-token", &"x".repeat(300)] {
        let mut c = relay.connect().await;
        c.send(&ClientFrame::Login {
            token: token.into(),
        })
        .await;
        match c.recv().await {
            ServerFrame::LoginFailed { code, .. } => assert_eq!(code, ErrorCode::InvalidToken),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.ended().await, Ended::Closed(close::AUTH_FAILED));
    }
    assert_eq!(relay.metric("ferrochat_login_failures_total").await, 3);
    relay.stop().await;
}

#[tokio::test]
async fn the_first_frame_must_be_login() {
    let relay = TestRelay::start(&[]).await;
    let mut c = relay.connect().await;
    c.send_text(r#"{"type":"40","fromId":"2"}"#).await;
    match c.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, ErrorCode::NotLoggedIn);
            assert_eq!(e.req_type.as_deref(), Some("40"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.ended().await, Ended::Closed(close::PROTOCOL_VIOLATION));

    let mut c = relay.connect().await;
    c.send_text("{not json").await;
    assert!(matches!(c.recv().await, ServerFrame::Error(e) if e.code == ErrorCode::MalformedJson));
    assert_eq!(c.ended().await, Ended::Closed(close::PROTOCOL_VIOLATION));
    relay.stop().await;
}

#[tokio::test]
async fn no_login_in_time_closes() {
    let relay = TestRelay::start(&["--login-timeout", "300ms"]).await;
    let mut c = relay.connect().await;
    assert!(matches!(c.recv().await, ServerFrame::Error(e) if e.code == ErrorCode::NotLoggedIn));
    assert_eq!(c.ended().await, Ended::Closed(close::PROTOCOL_VIOLATION));
    relay.stop().await;
}

#[tokio::test]
async fn ping_pong_and_a_second_login() {
    let relay = TestRelay::start(&[]).await;
    let s = relay.register("alice").await;
    let mut c = relay.login(&s).await;
    c.send_text(&format!(r#"{{"type":"40","fromId":"{}"}}"#, s.user_id))
        .await;
    assert!(matches!(c.recv().await, ServerFrame::Pong { ts } if ts > 0));
    c.send_text(r#"{"type":40}"#).await;
    assert!(matches!(c.recv().await, ServerFrame::Pong { .. }));
    c.send(&ClientFrame::Login {
        token: s.token.clone(),
    })
    .await;
    assert!(
        matches!(c.recv().await, ServerFrame::Error(e) if e.code == ErrorCode::AlreadyLoggedIn)
    );
    c.send(&ClientFrame::Ping { from_id: None }).await;
    assert!(matches!(c.recv().await, ServerFrame::Pong { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn idle_sockets_get_type_30_then_close() {
    let relay = TestRelay::start(&["--idle-timeout", "400ms"]).await;
    let s = relay.register("alice").await;
    let mut idle = relay.login(&s).await;
    let mut active = relay.login(&s).await;
    // `active` pings faster than the timeout and stays; `idle` is closed.
    let pinger = tokio::spawn(async move {
        for _ in 0..8 {
            active.send(&ClientFrame::Ping { from_id: None }).await;
            assert!(matches!(active.recv().await, ServerFrame::Pong { .. }));
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        active
    });
    assert!(matches!(
        idle.recv().await,
        ServerFrame::HeartbeatTimeout { .. }
    ));
    assert_eq!(idle.ended().await, Ended::Closed(close::IDLE_TIMEOUT));
    let mut active = pinger.await.unwrap();
    active.send(&ClientFrame::Ping { from_id: None }).await;
    assert!(matches!(active.recv().await, ServerFrame::Pong { .. }));
    assert_eq!(relay.metric("ferrochat_idle_timeouts_total").await, 1);
    relay.stop().await;
}

#[tokio::test]
async fn logout_revokes_the_token_and_closes_its_sockets() {
    let relay = TestRelay::start(&[]).await;
    let s = relay.register("alice").await;
    let other = {
        let (status, body) = relay
            .post(
                "/api/login",
                None,
                serde_json::json!({"username":"alice","password":"password123"}),
            )
            .await;
        assert_eq!(status, 200);
        serde_json::from_value::<shared::api::Session>(body).unwrap()
    };
    let mut c = relay.login(&s).await;
    let mut kept = relay.login(&other).await;
    let (status, _, _) = relay
        .request("POST", "/api/logout", Some(&s.token), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(c.ended().await, Ended::Closed(close::LOGGED_OUT));
    // The token is dead for HTTP and WebSocket alike.
    assert_eq!(relay.get("/api/me", Some(&s.token)).await.0, 401);
    let mut again = relay.connect().await;
    again
        .send(&ClientFrame::Login {
            token: s.token.clone(),
        })
        .await;
    assert!(matches!(
        again.recv().await,
        ServerFrame::LoginFailed { .. }
    ));
    // The other session of the same user is untouched.
    kept.send(&ClientFrame::Ping { from_id: None }).await;
    assert!(matches!(kept.recv().await, ServerFrame::Pong { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn expired_tokens_do_not_log_in() {
    let relay = TestRelay::start(&["--token-ttl", "300ms"]).await;
    let s = relay.register("alice").await;
    eventually("the token expires", || async {
        (relay.get("/api/me", Some(&s.token)).await.0 == 401).then_some(())
    })
    .await;
    let mut c = relay.connect().await;
    c.send(&ClientFrame::Login {
        token: s.token.clone(),
    })
    .await;
    assert!(matches!(
        c.recv().await,
        ServerFrame::LoginFailed {
            code: ErrorCode::InvalidToken,
            ..
        }
    ));
    assert_eq!(relay.get("/api/me", Some(&s.token)).await.0, 401);
    relay.stop().await;
}

#[tokio::test]
async fn shutdown_closes_sockets_with_going_away() {
    let relay = TestRelay::start(&[]).await;
    let s = relay.register("alice").await;
    let mut c = relay.login(&s).await;
    let stop = tokio::spawn(relay.stop());
    assert_eq!(c.ended().await, Ended::Closed(close::GOING_AWAY));
    stop.await.unwrap();
}
