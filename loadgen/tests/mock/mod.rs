//! A minimal in-process relay for testing the load generator end to end:
//! `POST /api/register`, public groups (`POST /api/groups`,
//! `POST /api/groups/{id}/join`, answered with the `GroupSummary` alone;
//! `GET /api/groups/{id}` with the first page of members and
//! `GET /api/groups/{id}/members?after=&limit=` with the next ones, pages
//! of at most [`PAGE`] members) and `/ws` with
//! LOGIN, PING, CHAT (to a user or a group) and ACK, built on
//! the `shared` codec (so every frame the generator sends is validated by
//! the same decoder as the real relay uses), plus fault injection so the
//! tests can prove that the generator notices lost, duplicated and
//! redelivered messages.

use futures_util::{SinkExt, StreamExt};
use shared::api::{
    Credentials, GroupInfo, GroupSummary, MemberInfo, MemberPage, NewGroup, Session,
};
use shared::{ClientFrame, ErrorCode, GroupId, ServerFrame, Target, UserId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Faults to inject, each "every Nth chat" (0 = never). For group chats,
/// `drop_every`, `duplicate_every` and `redeliver_every` count pushes to
/// members instead (every Nth push across all group messages).
#[derive(Clone, Copy, Default)]
pub struct Faults {
    /// Push an extra copy under a second msgId (a duplicate).
    pub duplicate_every: u64,
    /// Answer 81 but never push (a loss).
    pub drop_every: u64,
    /// Push the same frame twice (a legal redelivery).
    pub redeliver_every: u64,
    /// Refuse with `rate_limited` (no 81, no push).
    pub refuse_every: u64,
}

type Tx = mpsc::UnboundedSender<String>;

/// The mock's state (opaque to tests; see [`registrations`]).
#[derive(Default)]
pub struct State {
    next_user: i64,
    tokens: HashMap<String, (UserId, String)>,
    online: HashMap<UserId, Vec<Tx>>,
    senders: HashMap<uuid::Uuid, UserId>,
    stored: HashMap<(UserId, String), (uuid::Uuid, u64)>,
    seqs: HashMap<(UserId, UserId), u64>,
    chats: u64,
    names: HashMap<UserId, String>,
    groups: HashMap<i64, Group>,
    /// Group message ids (acks of those get no 92).
    group_msgs: std::collections::HashSet<uuid::Uuid>,
    group_pushes: u64,
}

struct Group {
    name: String,
    owner: UserId,
    members: Vec<UserId>,
    seq: u64,
}

/// The largest page of members (the relay's is
/// `shared::limits::MAX_MEMBER_PAGE`): small, so that the tests' groups
/// take several pages.
const PAGE: usize = 3;

impl State {
    fn summary(&self, id: i64) -> GroupSummary {
        let g = &self.groups[&id];
        GroupSummary {
            group_id: GroupId(id),
            name: g.name.clone(),
            owner_id: g.owner,
            public: true,
            member_count: g.members.len() as u32,
        }
    }

    /// The members after username `after`, by username, at most `limit`
    /// (and [`PAGE`]); the cursor for the next page when more follow.
    fn members_page(
        &self,
        id: i64,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> (Vec<MemberInfo>, Option<String>) {
        let g = &self.groups[&id];
        let mut all: Vec<(&str, UserId)> = g
            .members
            .iter()
            .map(|u| (self.names[u].as_str(), *u))
            .filter(|(name, _)| after.is_none_or(|a| *name > a))
            .collect();
        all.sort();
        let n = limit.unwrap_or(PAGE).clamp(1, PAGE);
        let next = (all.len() > n).then(|| all[n - 1].0.to_string());
        let members = all
            .into_iter()
            .take(n)
            .map(|(name, u)| MemberInfo {
                user_id: u,
                username: name.to_string(),
                owner: u == g.owner,
                read_seq: 0,
                delivered_seq: 0,
                online: self.online.contains_key(&u),
            })
            .collect();
        (members, next)
    }
}

/// The percent-decoded value of `key` in a query string.
fn param(query: &str, key: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?;
    let mut out = Vec::new();
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex: String = bytes.by_ref().take(2).map(char::from).collect();
                out.push(u8::from_str_radix(&hex, 16).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// An API body.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}

/// Starts the mock on 127.0.0.1 and returns its address.
pub async fn start(faults: Faults) -> SocketAddr {
    start_counting(faults).await.0
}

/// Like [`start`], also returning a handle to the number of registrations.
pub async fn start_counting(faults: Faults) -> (SocketAddr, Arc<Mutex<State>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let st = Arc::new(Mutex::new(State::default()));
    let handle = st.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let st = st.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 8];
                loop {
                    match s.peek(&mut head).await {
                        Ok(n) if n >= 7 => break,
                        Ok(0) | Err(_) => return,
                        Ok(_) => tokio::task::yield_now().await,
                    }
                }
                if head.starts_with(b"GET /ws") {
                    websocket(s, st, faults).await;
                } else {
                    http(s, st).await;
                }
            });
        }
    });
    (addr, handle)
}

/// Accounts registered so far.
pub fn registrations(st: &Mutex<State>) -> i64 {
    st.lock().unwrap().next_user
}

async fn http(mut s: TcpStream, st: Arc<Mutex<State>>) {
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
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..head_end + len];
    let caller = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("authorization")
            .then(|| v.trim().strip_prefix("Bearer ").map(str::to_string))?
    });
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let mut words = request_line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body) = if head.starts_with("POST /api/register ") {
        match serde_json::from_slice::<Credentials>(body) {
            Ok(c) => {
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
            Err(_) => (
                "400 Bad Request",
                r#"{"code":"bad_request","message":"x"}"#.into(),
            ),
        }
    } else if path.starts_with("/api/groups") {
        groups_api(&st, method, path, caller.as_deref(), body)
    } else {
        (
            "404 Not Found",
            r#"{"code":"not_found","message":"x"}"#.into(),
        )
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// The group endpoints the fan-out scenario uses.
fn groups_api(
    st: &Mutex<State>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (&'static str, String) {
    let mut g = st.lock().unwrap();
    let Some(me) = token.and_then(|t| g.tokens.get(t)).map(|(u, _)| *u) else {
        return (
            "401 Unauthorized",
            r#"{"code":"unauthorized","message":"x"}"#.into(),
        );
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("POST", ["api", "groups"]) => {
            let Ok(new) = serde_json::from_slice::<NewGroup>(body) else {
                return (
                    "400 Bad Request",
                    r#"{"code":"bad_request","message":"x"}"#.into(),
                );
            };
            let id = g.groups.len() as i64 + 1;
            g.groups.insert(
                id,
                Group {
                    name: new.name,
                    owner: me,
                    members: vec![me],
                    seq: 0,
                },
            );
            ("201 Created", json(&g.summary(id)))
        }
        (_, ["api", "groups", id, rest @ ..]) => {
            let Some(id) = id.parse().ok().filter(|id| g.groups.contains_key(id)) else {
                return (
                    "404 Not Found",
                    r#"{"code":"not_found","message":"x"}"#.into(),
                );
            };
            match (method, rest) {
                ("GET", []) => {
                    let (members, next) = g.members_page(id, None, None);
                    let info = GroupInfo {
                        summary: g.summary(id),
                        members,
                        next,
                    };
                    ("200 OK", json(&info))
                }
                ("GET", ["members"]) => {
                    let q = |k: &str| param(query, k);
                    let limit = q("limit").and_then(|l| l.parse().ok());
                    let (members, next) = g.members_page(id, q("after").as_deref(), limit);
                    ("200 OK", json(&MemberPage { members, next }))
                }
                ("POST", ["join"]) => {
                    let grp = g.groups.get_mut(&id).unwrap();
                    if !grp.members.contains(&me) {
                        grp.members.push(me);
                    }
                    ("200 OK", json(&g.summary(id)))
                }
                _ => (
                    "405 Method Not Allowed",
                    r#"{"code":"method_not_allowed","message":"x"}"#.into(),
                ),
            }
        }
        _ => (
            "404 Not Found",
            r#"{"code":"not_found","message":"x"}"#.into(),
        ),
    }
}

async fn websocket(s: TcpStream, st: Arc<Mutex<State>>, faults: Faults) {
    let Ok(ws) = tokio_tungstenite::accept_async(s).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(Message::text(first)).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(Message::text(more)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut me: Option<UserId> = None;
    while let Some(Ok(m)) = stream.next().await {
        let text = match m {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let frame = match ClientFrame::decode(text.as_str()) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(e.to_frame().encode());
                continue;
            }
        };
        let mut g = st.lock().unwrap();
        match (frame, me) {
            (ClientFrame::Login { token }, None) => match g.tokens.get(&token).cloned() {
                Some((uid, name)) => {
                    me = Some(uid);
                    g.online.entry(uid).or_default().push(tx.clone());
                    let _ = tx.send(
                        ServerFrame::LoginOk {
                            user_id: uid,
                            username: name.clone(),
                            ts: 1,
                        }
                        .encode(),
                    );
                    // Notices a client gets unasked: they must be ignored.
                    let in_group = g.groups.iter().find(|(_, gr)| gr.members.contains(&uid));
                    if let Some((&gid, gr)) = in_group {
                        let _ = tx.send(
                            ServerFrame::Presence {
                                user_id: gr.owner,
                                username: "owner".into(),
                                online: true,
                                ts: 1,
                            }
                            .encode(),
                        );
                        let _ = tx.send(
                            ServerFrame::GroupEvent(shared::GroupEvent {
                                group_id: GroupId(gid),
                                kind: shared::GroupEventKind::MemberJoined,
                                user_id: Some(uid),
                                username: Some(name),
                                by_id: None,
                                name: Some(gr.name.clone()),
                            })
                            .encode(),
                        );
                    }
                }
                None => {
                    let _ = tx.send(
                        ServerFrame::LoginFailed {
                            code: ErrorCode::InvalidToken,
                            message: "no".into(),
                        }
                        .encode(),
                    );
                    break;
                }
            },
            (_, None) => {
                let _ = tx.send(ServerFrame::error(ErrorCode::NotLoggedIn, "login first").encode());
                break;
            }
            (ClientFrame::Ping { .. }, Some(_)) => {
                let _ = tx.send(ServerFrame::Pong { ts: 1 }.encode());
            }
            (ClientFrame::Chat(c), Some(uid)) if matches!(c.to, Target::Group(_)) => {
                let Target::Group(gid) = c.to else { continue };
                let cmid = c.client_msg_id.clone().unwrap_or_default();
                g.chats += 1;
                let n = g.chats;
                #[allow(clippy::manual_is_multiple_of)]
                if faults.refuse_every > 0 && n % faults.refuse_every == 0 {
                    let mut e = ServerFrame::error(ErrorCode::RateLimited, "slow down");
                    if let ServerFrame::Error(ef) = &mut e {
                        ef.req_type = Some("80".into());
                        ef.client_msg_id = c.client_msg_id.clone();
                    }
                    let _ = tx.send(e.encode());
                    continue;
                }
                let members = match g.groups.get(&gid.0) {
                    Some(gr) if gr.members.contains(&uid) => gr.members.clone(),
                    _ => {
                        let _ = tx.send(ServerFrame::error(ErrorCode::NotMember, "no").encode());
                        continue;
                    }
                };
                let (id, seq) = match g.stored.get(&(uid, cmid.clone())) {
                    Some(&v) => v,
                    None => {
                        let grp = g.groups.get_mut(&gid.0).unwrap();
                        grp.seq += 1;
                        let seq = grp.seq;
                        let id = uuid::Uuid::now_v7();
                        g.stored.insert((uid, cmid.clone()), (id, seq));
                        g.group_msgs.insert(id);
                        (id, seq)
                    }
                };
                let _ = tx.send(
                    ServerFrame::ChatResp {
                        msg_id: id,
                        client_msg_id: c.client_msg_id.clone(),
                        ts: 1,
                        seq,
                    }
                    .encode(),
                );
                let push = |msg_id| {
                    ServerFrame::Chat(shared::ChatMessage {
                        msg_id,
                        from_id: uid,
                        from_name: "x".into(),
                        to: Target::Group(gid),
                        content: c.content.clone(),
                        ts: 1,
                        seq,
                        client_msg_id: c.client_msg_id.clone(),
                    })
                    .encode()
                };
                for m in members.into_iter().filter(|&m| m != uid) {
                    g.group_pushes += 1;
                    let k = g.group_pushes;
                    #[allow(clippy::manual_is_multiple_of)]
                    let every = |e: u64| e > 0 && k % e == 0;
                    if every(faults.drop_every) {
                        continue;
                    }
                    let mut frames = vec![push(id)];
                    if every(faults.redeliver_every) {
                        frames.push(push(id));
                    }
                    if every(faults.duplicate_every) {
                        frames.push(push(uuid::Uuid::now_v7()));
                    }
                    for t in g.online.get(&m).into_iter().flatten() {
                        for f in &frames {
                            let _ = t.send(f.clone());
                        }
                    }
                }
            }
            (ClientFrame::Chat(c), Some(uid)) => {
                let Target::User(to) = c.to else { continue };
                let cmid = c.client_msg_id.clone().unwrap_or_default();
                g.chats += 1;
                let n = g.chats;
                // (`is_multiple_of` is newer than the workspace's MSRV.)
                #[allow(clippy::manual_is_multiple_of)]
                let every = |k: u64| k > 0 && n % k == 0;
                if every(faults.refuse_every) {
                    let mut e = ServerFrame::error(ErrorCode::RateLimited, "slow down");
                    if let ServerFrame::Error(ef) = &mut e {
                        ef.req_type = Some("80".into());
                        ef.client_msg_id = c.client_msg_id.clone();
                    }
                    let _ = tx.send(e.encode());
                    continue;
                }
                let (id, seq) = match g.stored.get(&(uid, cmid.clone())) {
                    Some(&v) => v,
                    None => {
                        let seq = {
                            let s = g.seqs.entry((uid, to)).or_default();
                            *s += 1;
                            *s
                        };
                        let id = uuid::Uuid::now_v7();
                        g.stored.insert((uid, cmid.clone()), (id, seq));
                        g.senders.insert(id, uid);
                        (id, seq)
                    }
                };
                let _ = tx.send(
                    ServerFrame::ChatResp {
                        msg_id: id,
                        client_msg_id: c.client_msg_id.clone(),
                        ts: 1,
                        seq,
                    }
                    .encode(),
                );
                if every(faults.drop_every) {
                    continue;
                }
                let push = |msg_id| {
                    ServerFrame::Chat(shared::ChatMessage {
                        msg_id,
                        from_id: uid,
                        from_name: "x".into(),
                        to: Target::User(to),
                        content: c.content.clone(),
                        ts: 1,
                        seq,
                        client_msg_id: c.client_msg_id.clone(),
                    })
                    .encode()
                };
                let mut frames = vec![push(id)];
                if every(faults.redeliver_every) {
                    frames.push(push(id));
                }
                if every(faults.duplicate_every) {
                    let dup = uuid::Uuid::now_v7();
                    g.senders.insert(dup, uid);
                    frames.push(push(dup));
                }
                for t in g.online.get(&to).into_iter().flatten() {
                    for f in &frames {
                        let _ = t.send(f.clone());
                    }
                }
            }
            (ClientFrame::Ack { msg_id }, Some(uid)) => {
                let _ = tx.send(ServerFrame::AckResp { msg_id }.encode());
                if g.group_msgs.contains(&msg_id) {
                    continue; // no receipts for group messages
                }
                if let Some(from) = g.senders.get(&msg_id).copied() {
                    let receipt = ServerFrame::Delivered {
                        msg_id,
                        by_id: uid,
                        ts: 1,
                    }
                    .encode();
                    for t in g.online.get(&from).into_iter().flatten() {
                        let _ = t.send(receipt.clone());
                    }
                }
            }
            (ClientFrame::Typing { .. } | ClientFrame::Read { .. }, Some(_)) => {}
            (ClientFrame::Login { .. }, Some(_)) => {
                let _ = tx.send(ServerFrame::error(ErrorCode::AlreadyLoggedIn, "again").encode());
            }
        }
    }
    if let Some(uid) = me {
        let mut g = st.lock().unwrap();
        if let Some(v) = g.online.get_mut(&uid) {
            v.retain(|t| !t.same_channel(&tx));
        }
    }
    drop(tx);
    let _ = writer.await;
}
