//! `floor_relay`: a measuring aid, **not part of the product**.
//!
//! A deliberately minimal, non-durable, in-memory relay that speaks just
//! enough of the protocol for `loadgen chat`: register/login over HTTP,
//! `/healthz`, and on `/ws` LOGIN, PING, one-to-one CHAT, ACK. Nothing is
//! stored, validated beyond frame decoding, rate limited or retried; a push
//! to an offline user is simply dropped. What it keeps is what the real
//! relay's hot path cannot avoid: the same accept loop (`TCP_NODELAY`,
//! hyper-util serving warp), the same WebSocket settings, the `shared` crate's
//! JSON codec, and one reader plus one batching writer task per socket. Its
//! latency is therefore the floor of this machine: what a relay with zero
//! storage cost achieves, to compare the real relay's figures against.
//!
//! ```text
//! cargo run --release -p ferrochat-relay --example floor_relay -- --listen 127.0.0.1:9300
//! target/release/loadgen --url http://127.0.0.1:9300 --relay-pid <pid> chat --pairs 100 --rate 10000 --duration 15s
//! ```

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use relay::clock::now_ms;
use shared::api::{ApiError, Credentials, Session};
use shared::{close, ClientFrame, ErrorCode, MsgId, ServerFrame, Target, UserId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tower_service::Service;
use warp::http::{header, HeaderMap, Response, StatusCode};
use warp::{Filter, Reply};

/// Outbound queue per socket, in frames.
const QUEUE: usize = 1024;
/// Frames written per flush at most (as the real relay's writer).
const WRITE_BATCH: usize = 64;

#[derive(Parser)]
#[command(about = "Minimal in-memory relay: the latency floor of this machine")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9300")]
    listen: SocketAddr,
    /// Make chats durable the cheapest way: before a chat is answered or
    /// pushed, a log thread appends it to this preallocated file (64 MiB,
    /// reused from the start when full) and `fdatasync`s it, one write and
    /// one sync for everything that queued meanwhile (group commit). The
    /// latency of a log-first write path, without anything else.
    #[arg(long)]
    log: Option<std::path::PathBuf>,
}

/// A chat waiting for the log: its record, then what to send once it is
/// on disk.
struct Logged {
    record: Vec<u8>,
    reply_to: Tx,
    reply: Utf8Bytes,
    push: Utf8Bytes,
    targets: Vec<Tx>,
}

/// Size of the preallocated log file.
const LOG_BYTES: u64 = 64 << 20;

/// The log thread: append every queued record in one write, `fdatasync`,
/// then answer and push, in order.
fn log_thread(path: &std::path::Path, mut rx: mpsc::Receiver<Logged>) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::FileExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    // Written for real, not just allocated: overwriting written blocks
    // needs no metadata update, so `fdatasync` is one data flush.
    file.write_all(&vec![0u8; LOG_BYTES as usize])?;
    file.sync_all()?;
    let (mut at, mut batch, mut buf) = (0u64, Vec::new(), Vec::new());
    while rx.blocking_recv_many(&mut batch, 4096) > 0 {
        buf.clear();
        for l in &batch {
            buf.extend_from_slice(&(l.record.len() as u32).to_le_bytes());
            buf.extend_from_slice(&l.record);
        }
        if at + buf.len() as u64 > LOG_BYTES {
            at = 0;
        }
        file.write_all_at(&buf, at)?;
        file.sync_data()?;
        at += buf.len() as u64;
        for l in batch.drain(..) {
            let _ = l.reply_to.try_send(l.reply);
            for t in l.targets {
                let _ = t.try_send(l.push.clone());
            }
        }
    }
    Ok(())
}

type Tx = mpsc::Sender<Utf8Bytes>;

#[derive(Default)]
struct Accounts {
    next_id: i64,
    /// username → (user id, password)
    by_name: HashMap<String, (UserId, String)>,
    /// token → (user id, username)
    tokens: HashMap<String, (UserId, Arc<str>)>,
}

#[derive(Default)]
struct Hub {
    /// Online sockets per user: (socket id, queue).
    online: HashMap<UserId, Vec<(u64, Tx)>>,
    /// Per-conversation sequence numbers, keyed by (lower id, higher id).
    seqs: HashMap<(UserId, UserId), u64>,
    /// Pushed, not yet acked: msgId → (sender, recipient).
    pending: HashMap<MsgId, (UserId, UserId)>,
}

#[derive(Default)]
struct State {
    accounts: Mutex<Accounts>,
    hub: Mutex<Hub>,
    next_socket: AtomicU64,
    /// To the log thread, with `--log`.
    log: Option<mpsc::Sender<Logged>>,
}

fn api_error(status: StatusCode, code: ErrorCode, message: &str) -> warp::reply::Response {
    let body = ApiError {
        code,
        message: message.into(),
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn session(st: &State, id: UserId, username: String) -> Session {
    let token = relay::auth::new_token();
    st.accounts
        .lock()
        .tokens
        .insert(token.clone(), (id, username.as_str().into()));
    Session {
        user_id: id,
        username,
        token,
        expires_at: now_ms() + 30 * 24 * 3600 * 1000,
    }
}

fn register(st: &State, c: Credentials) -> warp::reply::Response {
    let id = {
        let mut a = st.accounts.lock();
        if a.by_name.contains_key(&c.username) {
            return api_error(StatusCode::CONFLICT, ErrorCode::UsernameTaken, "taken");
        }
        a.next_id += 1;
        let id = UserId(a.next_id);
        a.by_name.insert(c.username.clone(), (id, c.password));
        id
    };
    let s = session(st, id, c.username);
    warp::reply::with_status(warp::reply::json(&s), StatusCode::CREATED).into_response()
}

fn login(st: &State, c: Credentials) -> warp::reply::Response {
    let found = st.accounts.lock().by_name.get(&c.username).cloned();
    match found {
        Some((id, pw)) if pw == c.password => {
            warp::reply::json(&session(st, id, c.username)).into_response()
        }
        _ => api_error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "no",
        ),
    }
}

/// `GET /ws`: the same handshake as the relay (tokio-tungstenite over the
/// hyper upgrade, with the relay's WebSocket settings).
fn ws_upgrade(
    headers: HeaderMap,
    on_upgrade: Option<OnUpgrade>,
    st: Arc<State>,
) -> warp::reply::Response {
    let (Some(key), Some(on_upgrade)) = (headers.get(header::SEC_WEBSOCKET_KEY), on_upgrade) else {
        let mut res = Response::new(
            warp::hyper::body::Bytes::from_static(b"expected a WebSocket upgrade\n").into(),
        );
        *res.status_mut() = StatusCode::BAD_REQUEST;
        return res;
    };
    let accept = derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(relay::connection::ws_config()),
            )
            .await;
            tokio::spawn(serve_socket(ws, st));
        }
    });
    relay::handlers::switching_protocols(&accept)
}

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Drains the queue into the socket, every ready frame in one flush, then
/// sends a close frame once every sender is gone.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    mut rx: mpsc::Receiver<Utf8Bytes>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        for t in batch.drain(..) {
            if sink.feed(Message::Text(t)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let bye = Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(bye)).await;
}

fn enc(f: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(f.encode())
}

async fn serve_socket(ws: Ws, st: Arc<State>) {
    let (mut sink, mut stream) = ws.split();
    let text = loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => break t,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return,
        }
    };
    let user = match ClientFrame::decode(&text) {
        Ok(ClientFrame::Login { token }) => st.accounts.lock().tokens.get(&token).cloned(),
        _ => None,
    };
    let Some((me, name)) = user else {
        let f = ServerFrame::LoginFailed {
            code: ErrorCode::InvalidToken,
            message: "bad token".into(),
        };
        let _ = sink.send(Message::Text(enc(&f))).await;
        let bye = CloseFrame {
            code: CloseCode::from(close::AUTH_FAILED),
            reason: "login failed".into(),
        };
        let _ = sink.send(Message::Close(Some(bye))).await;
        return;
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    // Queued before the socket is registered, so LOGIN_RESP goes out first.
    let _ = tx.try_send(enc(&ServerFrame::LoginOk {
        user_id: me,
        username: name.to_string(),
        ts: now_ms(),
    }));
    let sid = st.next_socket.fetch_add(1, Relaxed);
    st.hub
        .lock()
        .online
        .entry(me)
        .or_default()
        .push((sid, tx.clone()));
    let writer = tokio::spawn(write_loop(sink, rx));

    while let Some(Ok(msg)) = stream.next().await {
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) | Message::Binary(_) => break,
            _ => continue,
        };
        let reply = match ClientFrame::decode(&text) {
            Ok(ClientFrame::Ping { .. }) => ServerFrame::Pong { ts: now_ms() },
            Ok(ClientFrame::Chat(c)) => {
                let Target::User(to) = c.to else {
                    let e = ServerFrame::error(ErrorCode::NotMember, "floor_relay has no groups");
                    if tx.send(enc(&e)).await.is_err() {
                        break;
                    }
                    continue;
                };
                let (msg_id, ts) = (uuid::Uuid::now_v7(), now_ms());
                let mut targets: Vec<Tx> = Vec::new();
                let seq = {
                    let mut hub = st.hub.lock();
                    let seq = hub.seqs.entry((me.min(to), me.max(to))).or_insert(0);
                    *seq += 1;
                    let seq = *seq;
                    hub.pending.insert(msg_id, (me, to));
                    // The recipient's sockets, and the sender's other tabs.
                    let socks = |u: &UserId| hub.online.get(u).into_iter().flatten();
                    targets.extend(socks(&to).map(|(_, t)| t.clone()));
                    if to != me {
                        targets.extend(
                            socks(&me)
                                .filter(|(s, _)| *s != sid)
                                .map(|(_, t)| t.clone()),
                        );
                    }
                    seq
                };
                let resp = ServerFrame::ChatResp {
                    msg_id,
                    client_msg_id: c.client_msg_id.clone(),
                    ts,
                    seq,
                };
                let push = enc(&ServerFrame::Chat(shared::ChatMessage {
                    msg_id,
                    from_id: me,
                    from_name: name.to_string(),
                    to: c.to,
                    content: c.content,
                    ts,
                    seq,
                    client_msg_id: c.client_msg_id,
                }));
                if let Some(log) = &st.log {
                    let job = Logged {
                        record: text.as_bytes().to_vec(),
                        reply_to: tx.clone(),
                        reply: enc(&resp),
                        push,
                        targets,
                    };
                    if log.send(job).await.is_err() {
                        break;
                    }
                    continue;
                }
                for t in targets {
                    let _ = t.try_send(push.clone());
                }
                resp
            }
            Ok(ClientFrame::Ack { msg_id }) => {
                let receipt = {
                    let mut hub = st.hub.lock();
                    match hub.pending.get(&msg_id) {
                        Some(&(from, to)) if to == me => {
                            hub.pending.remove(&msg_id);
                            let socks = hub.online.get(&from).into_iter().flatten();
                            Some(socks.map(|(_, t)| t.clone()).collect::<Vec<_>>())
                        }
                        _ => None,
                    }
                };
                if let Some(senders) = receipt {
                    let d = enc(&ServerFrame::Delivered {
                        msg_id,
                        by_id: me,
                        ts: now_ms(),
                    });
                    for t in senders {
                        let _ = t.try_send(d.clone());
                    }
                }
                ServerFrame::AckResp { msg_id }
            }
            Ok(ClientFrame::Login { .. }) => {
                ServerFrame::error(ErrorCode::AlreadyLoggedIn, "already logged in")
            }
            Ok(
                ClientFrame::Typing { .. }
                | ClientFrame::Read { .. }
                | ClientFrame::VoiceJoin { .. }
                | ClientFrame::VoiceLeave { .. }
                | ClientFrame::VoiceMute { .. }
                | ClientFrame::VoiceQuery { .. }
                | ClientFrame::DeskOpen
                | ClientFrame::DeskAgent(_)
                | ClientFrame::DeskTransfer { .. }
                | ClientFrame::DeskClose { .. },
            ) => continue,
            Err(e) => e.to_frame(),
        };
        if tx.send(enc(&reply)).await.is_err() {
            break;
        }
    }

    {
        let mut hub = st.hub.lock();
        if let Some(v) = hub.online.get_mut(&me) {
            v.retain(|(s, _)| *s != sid);
            if v.is_empty() {
                hub.online.remove(&me);
            }
        }
    }
    drop(tx);
    // Let the writer flush and close, and read until the peer answers.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = writer.await;
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    relay::raise_fd_limit();
    let mut st = State::default();
    if let Some(path) = cli.log {
        let (tx, rx) = mpsc::channel(8192);
        std::thread::spawn(move || {
            if let Err(e) = log_thread(&path, rx) {
                eprintln!("floor_relay: log failed: {e}");
                std::process::exit(1);
            }
        });
        st.log = Some(tx);
    }
    let st = Arc::new(st);
    let with_st = {
        let st = st.clone();
        warp::any().map(move || st.clone())
    };
    let creds =
        || warp::body::content_length_limit(64 * 1024).and(warp::body::json::<Credentials>());
    let routes = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::with_status("ok\n", StatusCode::OK).into_response())
        .or(warp::path!("api" / "register")
            .and(warp::post())
            .and(with_st.clone())
            .and(creds())
            .map(|st: Arc<State>, c| register(&st, c)))
        .or(warp::path!("api" / "login")
            .and(warp::post())
            .and(with_st.clone())
            .and(creds())
            .map(|st: Arc<State>, c| login(&st, c)))
        .or(warp::path!("ws")
            .and(warp::get())
            .and(warp::header::headers_cloned())
            .and(warp::ext::optional::<OnUpgrade>())
            .and(with_st)
            .map(ws_upgrade));
    let routes = warp::service(routes);

    // The relay's accept loop (relay/src/server.rs), minus the connection
    // cap: `warp::serve` cannot set TCP_NODELAY.
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    eprintln!(
        "floor_relay on http://{} (pid {})",
        listener.local_addr()?,
        std::process::id()
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let shutdown = relay::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let routes = routes.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                routes.clone().call(req)
            });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
