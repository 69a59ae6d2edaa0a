//! Failed-login lockouts and the registration cap (`relay/src/throttle.rs`):
//! 429 with `Retry-After` before any password hashing, keyed by username
//! and client address, the latter taken from a forwarding header only when
//! the peer is a trusted proxy.

mod common;

use common::*;
use hyper::HeaderMap;
use serde_json::{json, Value};
use std::time::Duration;

const RIGHT: &str = "password123";
const WRONG: &str = "not-the-password";

/// A POST with a JSON body and `headers` on top.
async fn post_with(
    relay: &TestRelay,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (u16, Value, HeaderMap) {
    relay.post_with(path, body, headers).await
}

/// `POST /api/login`, optionally with `X-Forwarded-For: forwarded`.
async fn login(
    relay: &TestRelay,
    user: &str,
    password: &str,
    forwarded: Option<&str>,
) -> (u16, Value, HeaderMap) {
    let headers: Vec<(&str, &str)> = forwarded
        .map(|f| ("x-forwarded-for", f))
        .into_iter()
        .collect();
    post_with(
        relay,
        "/api/login",
        json!({"username": user, "password": password}),
        &headers,
    )
    .await
}

/// A login that must be refused as a wrong password (not throttled).
async fn wrong(relay: &TestRelay, user: &str, forwarded: Option<&str>) {
    let (status, body, _) = login(relay, user, WRONG, forwarded).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_credentials")),
        "{user} from {forwarded:?}: {body}"
    );
}

/// A login that must succeed.
async fn right(relay: &TestRelay, user: &str, forwarded: Option<&str>) {
    let (status, body, _) = login(relay, user, RIGHT, forwarded).await;
    assert_eq!(status, 200, "{user} from {forwarded:?}: {body}");
    assert_eq!(
        body["username"].as_str().map(str::to_lowercase),
        Some(user.to_lowercase())
    );
}

/// Asserts a 429 with the JSON error body and a `Retry-After` of at least
/// `min` and at most `max` seconds; returns it.
fn assert_throttled(answer: &(u16, Value, HeaderMap), min: u64, max: u64) -> u64 {
    let (status, body, headers) = answer;
    assert_eq!(*status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let secs: u64 = headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((min..=max).contains(&secs), "Retry-After: {secs}");
    secs
}

#[tokio::test]
async fn failed_logins_lock_the_username_then_the_address() {
    let relay = TestRelay::start(&[
        "--login-limit",
        "3",
        "--login-limit-ip",
        "7",
        "--login-backoff",
        "10m",
        "--login-backoff-max",
        "10m",
    ])
    .await;
    relay.register("alice").await;
    relay.register("bob").await;

    for _ in 0..3 {
        wrong(&relay, "alice", None).await;
    }
    // Locked: even the right password is refused, in any spelling.
    let refused = login(&relay, "alice", RIGHT, None).await;
    assert_throttled(&refused, 590, 600);
    assert_throttled(&login(&relay, "ALICE", RIGHT, None).await, 590, 600);

    // Other usernames from the same address go on until the address has
    // had 7 failures (alice's 3 among them).
    wrong(&relay, "bob", None).await;
    wrong(&relay, "ghost1", None).await;
    wrong(&relay, "ghost2", None).await;
    wrong(&relay, "ghost3", None).await;
    let refused = login(&relay, "mallory", RIGHT, None).await;
    assert_throttled(&refused, 590, 600);
    assert_throttled(&login(&relay, "ghost1", WRONG, None).await, 590, 600);
    // bob registered from this address, so its lock does not apply to him
    // (only his own username-and-address count would).
    right(&relay, "bob", None).await;
    assert_eq!(relay.metric("ferrochat_login_throttled_total").await, 4);
    relay.stop().await;
}

#[tokio::test]
async fn a_lockout_passes_and_the_right_password_resets_the_count() {
    let relay = TestRelay::start(&["--login-limit", "2", "--login-backoff", "1s"]).await;
    relay.register("alice").await;
    wrong(&relay, "alice", None).await;
    wrong(&relay, "alice", None).await;
    assert_throttled(&login(&relay, "alice", RIGHT, None).await, 1, 1);

    // Retry until the lock has passed; nothing but 429 before that.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = login(&relay, "alice", RIGHT, None).await;
        if answer.0 == 200 {
            break;
        }
        assert_throttled(&answer, 1, 1);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lockout did not pass"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The success cleared alice's count: two more failures are allowed
    // before the next lock, not none.
    wrong(&relay, "alice", None).await;
    right(&relay, "alice", None).await;
    wrong(&relay, "alice", None).await;
    wrong(&relay, "alice", None).await;
    assert_throttled(&login(&relay, "alice", RIGHT, None).await, 1, 1);
    relay.stop().await;
}

#[tokio::test]
async fn registrations_are_capped_per_address() {
    let relay = TestRelay::start(&["--register-limit", "3/1h"]).await;
    for name in ["user1", "user2", "user3"] {
        relay.register(name).await;
    }
    let refused = post_with(
        &relay,
        "/api/register",
        json!({"username": "user4", "password": RIGHT}),
        &[],
    )
    .await;
    // One registration every 20 minutes from here.
    assert_throttled(&refused, 1190, 1200);
    // Nothing was created.
    let (status, _, _) = login(&relay, "user4", RIGHT, None).await;
    assert_eq!(status, 401);
    assert_eq!(relay.metric("ferrochat_register_throttled_total").await, 1);
    assert_eq!(relay.metric("ferrochat_registrations_total").await, 3);
    relay.stop().await;
}

#[tokio::test]
async fn a_trusted_proxy_header_gives_each_client_its_own_counts() {
    let relay = TestRelay::start(&[
        "--trusted-proxy",
        "10.0.0.0/8",
        "--trusted-proxy",
        "127.0.0.0/8",
        "--client-ip-header",
        "X-Forwarded-For",
        "--login-limit",
        "2",
        "--login-backoff",
        "10m",
        "--login-backoff-max",
        "10m",
    ])
    .await;
    relay.register("alice").await;

    let a = Some("203.0.113.5");
    wrong(&relay, "alice", a).await;
    wrong(&relay, "alice", a).await;
    assert_throttled(&login(&relay, "alice", RIGHT, a).await, 590, 600);

    // Another client behind the proxy has counts of its own.
    let b = Some("198.51.100.7");
    wrong(&relay, "alice", b).await;
    wrong(&relay, "alice", b).await;
    assert_throttled(&login(&relay, "alice", RIGHT, b).await, 590, 600);

    // The client cannot pick its address: what it sends is left of what
    // the proxy appends, and the right-most address that is not a trusted
    // proxy counts (here behind two proxies).
    let spoofed = Some("192.0.2.44, 203.0.113.5");
    assert_throttled(&login(&relay, "alice", RIGHT, spoofed).await, 590, 600);
    let two_proxies = Some("192.0.2.44, 203.0.113.5, 10.1.2.3");
    assert_throttled(&login(&relay, "alice", RIGHT, two_proxies).await, 590, 600);

    // Neither locked the proxy's own address.
    right(&relay, "alice", None).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_forwarding_header_from_an_untrusted_peer_is_ignored() {
    for proxies in [&[][..], &["--trusted-proxy", "10.0.0.1"]] {
        let mut args = vec![
            "--client-ip-header",
            "X-Forwarded-For",
            "--login-limit",
            "2",
            "--login-backoff",
            "10m",
        ];
        args.extend_from_slice(proxies);
        let relay = TestRelay::start(&args).await;
        relay.register("alice").await;
        wrong(&relay, "alice", Some("203.0.113.5")).await;
        wrong(&relay, "alice", Some("198.51.100.7")).await;
        // All three are 127.0.0.1, whatever the header says.
        let answer = login(&relay, "alice", RIGHT, Some("192.0.2.33")).await;
        assert_throttled(&answer, 590, 600);
        relay.stop().await;
    }
}

#[tokio::test]
async fn the_registration_cap_follows_the_forwarded_address() {
    let relay = TestRelay::start(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--client-ip-header",
        "X-Real-IP",
        "--register-limit",
        "1/1h",
    ])
    .await;
    let register = |name: &'static str, from: &'static str| {
        let relay = &relay;
        async move {
            post_with(
                relay,
                "/api/register",
                json!({"username": name, "password": RIGHT}),
                &[("x-real-ip", from)],
            )
            .await
        }
    };
    assert_eq!(register("user1", "203.0.113.5").await.0, 201);
    assert_throttled(&register("user2", "203.0.113.5").await, 3590, 3600);
    assert_eq!(register("user3", "198.51.100.7").await.0, 201);
    // The proxy's own address has its own allowance too.
    relay.register("user4").await;
    relay.stop().await;
}
