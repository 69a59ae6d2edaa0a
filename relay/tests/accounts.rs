//! The HTTP API: register, login, logout, me, online users, search,
//! health and metrics.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn register_and_login() {
    let relay = TestRelay::start(&[]).await;
    let (status, body) = relay
        .post(
            "/api/register",
            None,
            json!({"username": "Alice", "password": "password123"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["userId"].is_string(), "{body}");
    assert_eq!(body["username"], "Alice");
    assert_eq!(body["token"].as_str().unwrap().len(), 43);
    assert!(body["expiresAt"].as_i64().unwrap() > 0);

    let (status, login) = relay
        .post(
            "/api/login",
            None,
            json!({"username": "Alice", "password": "password123"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(login["userId"], body["userId"]);
    assert_ne!(
        login["token"], body["token"],
        "every login gets its own token"
    );
    // Case-insensitive login; the registered spelling is kept.
    let (status, login) = relay
        .post(
            "/api/login",
            None,
            json!({"username": "ALICE", "password": "password123"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(login["username"], "Alice");

    let (status, me) = relay.get("/api/me", login["token"].as_str()).await;
    assert_eq!(status, 200);
    assert_eq!(
        me,
        json!({"userId": body["userId"], "username": "Alice", "role": "user"})
    );
    relay.stop().await;
}

#[tokio::test]
async fn registration_errors() {
    let relay = TestRelay::start(&[]).await;
    relay.register("alice").await;
    let (status, body) = relay
        .post(
            "/api/register",
            None,
            json!({"username": "ALICE", "password": "password123"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "username_taken");
    assert!(body["message"].as_str().unwrap().contains("taken"));

    let (status, body) = relay
        .post(
            "/api/register",
            None,
            json!({"username": "a b", "password": "password123"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_username"))
    );
    let (status, body) = relay
        .post(
            "/api/register",
            None,
            json!({"username": "bobby", "password": "short"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_password"))
    );
    let (status, body, _) = relay
        .request("POST", "/api/register", None, Some("{not json".into()))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    let (status, body) = relay
        .post("/api/register", None, json!({"username": "x"}))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    let huge = json!({"username": "bobby", "password": "p".repeat(20_000)});
    let (status, body) = relay.post("/api/register", None, huge).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    relay.stop().await;
}

#[tokio::test]
async fn wrong_credentials_do_not_reveal_whether_the_user_exists() {
    let relay = TestRelay::start(&[]).await;
    relay.register("alice").await;
    let (s1, wrong_pw) = relay
        .post(
            "/api/login",
            None,
            json!({"username": "alice", "password": "not-the-password"}),
        )
        .await;
    let (s2, no_user) = relay
        .post(
            "/api/login",
            None,
            json!({"username": "nobody", "password": "not-the-password"}),
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong_pw, no_user);
    assert_eq!(wrong_pw["code"], "invalid_credentials");
    relay.stop().await;
}

#[tokio::test]
async fn endpoints_need_a_valid_bearer_token() {
    let relay = TestRelay::start(&[]).await;
    for path in ["/api/me", "/api/users/online", "/api/users?q=a"] {
        let (status, body) = relay.get(path, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
        let (status, _) = relay.get(path, Some("bogus-token")).await;
        assert_eq!(status, 401, "{path}");
    }
    let (status, _, _) = relay.request("POST", "/api/logout", None, None).await;
    assert_eq!(status, 401);
    relay.stop().await;
}

/// The usernames in a `GET /api/users/online` answer, and its `next`.
async fn online(relay: &TestRelay, token: &str, query: &str) -> (Vec<String>, Option<String>) {
    let (status, body) = relay
        .get(&format!("/api/users/online{query}"), Some(token))
        .await;
    assert_eq!(status, 200, "{body}");
    let names = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    (names, body["next"].as_str().map(str::to_string))
}

/// Presence is for contacts only: `GET /api/users/online` used to list
/// every online user to anyone (a stranger saw you), and cost a lock of
/// every shard and a sort of everyone per call.
#[tokio::test]
async fn online_users_are_your_online_contacts_a_page_at_a_time() {
    let relay = TestRelay::start(&["--presence-grace", "50ms"]).await;
    let a = relay.register("alice").await;
    let b = relay.register("bob").await;
    let c = relay.register("carol").await;
    let d = relay.register("dave").await;
    let mut ws_a = relay.login(&a).await;
    let ws_b = relay.login(&b).await;
    let _ws_b2 = relay.login(&b).await;
    let _ws_c = relay.login(&c).await;
    let _ws_d = relay.login(&d).await;
    assert_eq!(
        online(&relay, &a.token, "").await.0,
        Vec::<String>::new(),
        "no contacts yet"
    );
    // A conversation makes alice and bob contacts; a small group alice and dave.
    ws_a.chat(b.user_id, "hi", "hi bob").await;
    next_resp(&mut ws_a).await;
    relay.group(&a, "pair", false, &[&d]).await;
    assert_eq!(
        online(&relay, &a.token, "").await,
        (vec!["bob".into(), "dave".into()], None)
    );
    assert_eq!(
        online(&relay, &b.token, "").await.0,
        ["alice"],
        "one entry per user"
    );
    assert_eq!(
        online(&relay, &c.token, "").await.0,
        Vec::<String>::new(),
        "carol is a stranger"
    );
    // Pages, by username.
    let (page, next) = online(&relay, &a.token, "?limit=1").await;
    assert_eq!(
        (page, next.as_deref()),
        (vec!["bob".to_string()], Some("bob"))
    );
    assert_eq!(
        online(&relay, &a.token, "?limit=1&after=bob").await,
        (vec!["dave".into()], None)
    );
    // Without a socket of her own alice still gets her contacts (from the store).
    drop(ws_a);
    eventually("bob sees alice go offline", || async {
        online(&relay, &b.token, "")
            .await
            .0
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(online(&relay, &a.token, "").await.0, ["bob", "dave"]);
    drop(ws_b);
    relay.stop().await;
}

#[tokio::test]
async fn user_search() {
    let relay = TestRelay::start(&[]).await;
    let a = relay.register("alice").await;
    relay.register("bob").await;
    relay.register("alfred").await;
    let (_, body) = relay.get("/api/users?q=AL", Some(&a.token)).await;
    let names: Vec<&str> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alfred", "alice"]);
    let (_, body) = relay.get("/api/users?q=_", Some(&a.token)).await;
    assert_eq!(body, json!({"users": []}), "LIKE wildcards are escaped");
    relay.stop().await;
}

#[tokio::test]
async fn health_metrics_and_unknown_routes() {
    let relay = TestRelay::start(&[]).await;
    let (status, body) = relay.get("/healthz", None).await;
    assert_eq!((status, body.as_str()), (200, Some("ok\n")));
    let (status, _, headers) = relay.request("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    relay.register("alice").await;
    assert_eq!(relay.metric("ferrochat_registrations_total").await, 1);
    let (status, body) = relay.get("/api/nope", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = relay.get("/api/register", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, body) = relay.get("/ws", None).await;
    assert_eq!(status, 400, "{body}");
    relay.stop().await;
}
