//! Support desk helpers: visitors, agents granted by the real admin
//! command, and waiting for a visitor's 131 or an agent's 133 (with a
//! deadline, never a sleep).

use super::{Client, TestRelay, WAIT};
use serde_json::Value;
use shared::api::Session;
use shared::desk::{DeskBoard, DeskStatus, VisitorSession};
use shared::{ClientFrame, ServerFrame};
use std::process::Command;

/// A new visitor with `body`; asserts 201.
pub async fn visitor(relay: &TestRelay, body: Value) -> VisitorSession {
    let (status, body) = relay.post("/api/visitors", None, body).await;
    assert_eq!(status, 201, "{body}");
    serde_json::from_value(body).unwrap()
}

/// The visitor's token as the harness's session, for `login`.
pub fn session(v: &VisitorSession) -> Session {
    Session {
        user_id: v.visitor_id,
        username: String::new(),
        token: v.token.clone(),
        expires_at: v.expires_at,
    }
}

/// A visitor named `name`, logged in, who opened their conversation; and
/// their first 131.
pub async fn visitor_in(relay: &TestRelay, name: &str) -> (VisitorSession, Client, DeskStatus) {
    let v = visitor(
        relay,
        serde_json::json!({ "name": name, "page": "https://shop.example/" }),
    )
    .await;
    let mut c = relay.login(&session(&v)).await;
    c.send(&ClientFrame::DeskOpen).await;
    let s = status_where(&mut c, |_| true).await;
    (v, c, s)
}

/// Grants `username` the agent role with `ferrochat-relay admin` (through
/// the relay's admin socket on SQLite, directly on PostgreSQL).
pub async fn grant_agent(relay: &TestRelay, username: &str) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrochat-relay"));
    c.args(["admin", "grant-agent", username, "--db", &relay.db]);
    let out = tokio::task::spawn_blocking(move || c.output().expect("admin command runs"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "grant-agent {username}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A registered user made an agent (not logged in yet).
pub async fn agent(relay: &TestRelay, name: &str) -> Session {
    let s = relay.register(name).await;
    grant_agent(relay, name).await;
    s
}

/// The next 131 that satisfies `pred` (others are skipped).
pub async fn status_where(c: &mut Client, pred: impl Fn(&DeskStatus) -> bool) -> DeskStatus {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.try_recv(left).await {
            Some(ServerFrame::DeskStatus(s)) if pred(&s) => return s,
            Some(_) => {}
            None => panic!("no matching 131 in time"),
        }
    }
}

/// The next 133 that satisfies `pred` (others are skipped).
pub async fn board_where(c: &mut Client, pred: impl Fn(&DeskBoard) -> bool) -> DeskBoard {
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.try_recv(left).await {
            Some(ServerFrame::DeskBoard(b)) if pred(&b) => return *b,
            Some(_) => {}
            None => panic!("no matching 133 in time"),
        }
    }
}
