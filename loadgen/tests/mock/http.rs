//! The mock's HTTP side: one request per connection, `POST /api/register`
//! here, `/api/groups…` in `groups.rs`.

use super::{groups, State};
use shared::api::{Credentials, Session};
use shared::UserId;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An error answer with the relay's body shape.
pub(super) fn error(status: &'static str, code: &str) -> (&'static str, String) {
    (status, format!(r#"{{"code":"{code}","message":"x"}}"#))
}

/// Reads one request, answers it and closes the connection.
pub(super) async fn serve(mut s: TcpStream, st: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..head_end + len];
    let caller =
        header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_string));
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let mut words = request_line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body) = if method == "POST" && target == "/api/register" {
        register(&st, body)
    } else if target.starts_with("/api/groups") {
        groups::api(&st, method, target, caller.as_deref(), body)
    } else {
        error("404 Not Found", "not_found")
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

fn register(st: &Mutex<State>, body: &[u8]) -> (&'static str, String) {
    let Ok(c) = serde_json::from_slice::<Credentials>(body) else {
        return error("400 Bad Request", "bad_request");
    };
    let mut g = st.lock().unwrap();
    g.next_user += 1;
    let user_id = UserId(g.next_user);
    let token = format!("tok{}x{}", g.next_user, uuid::Uuid::now_v7().simple());
    g.tokens
        .insert(token.clone(), (user_id, c.username.clone()));
    g.names.insert(user_id, c.username.clone());
    let sess = Session {
        user_id,
        username: c.username,
        token,
        expires_at: 0,
    };
    ("201 Created", serde_json::to_string(&sess).unwrap())
}
