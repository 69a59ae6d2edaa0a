//! Test harness: a real relay on 127.0.0.1:0 and real WebSocket/HTTP
//! clients. Nothing is mocked.
#![allow(dead_code)]

pub mod bots;
pub mod child;
pub mod cluster;
pub mod desk;
pub mod postgres;
pub mod voice;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use relay::Config;
use serde_json::Value;
use shared::api::Session;
use shared::{ClientFrame, Content, ServerFrame, Target, UserId};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// Which backend the suite runs against: `FERROCHAT_TEST_BACKEND=postgres`
/// for PostgreSQL, SQLite otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("FERROCHAT_TEST_BACKEND").as_deref() {
        Ok("postgres") | Ok("postgresql") => Backend::Postgres,
        Ok("sqlite") | Ok("") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("FERROCHAT_TEST_BACKEND={other:?}: use sqlite or postgres"),
    }
}

/// For a test of something only the SQLite backend has (its commit log,
/// its file lock, its threads): true, after saying so, when the suite runs
/// on another backend, and the test returns at once.
pub fn sqlite_only(what: &str) -> bool {
    if backend() == Backend::Sqlite {
        return false;
    }
    eprintln!("skipped on {:?}: SQLite-specific ({what})", backend());
    true
}

/// A fresh, empty database for the backend under test: its URL, and the
/// directory to keep for as long as it is used (SQLite).
pub async fn fresh_db() -> (String, Option<tempfile::TempDir>) {
    match backend() {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let db = format!("sqlite://{}", dir.path().join("ferrochat.db").display());
            (db, Some(dir))
        }
        Backend::Postgres => (pg::fresh_database().await, None),
    }
}

/// PostgreSQL databases for the suite.
pub mod pg {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A new database: on the server named by `FERROCHAT_TEST_PG_URL` if
    /// set (a URL whose user may create databases), else on this test
    /// process's private server (`services::Postgres::shared`).
    pub async fn fresh_database() -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ferrochat_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        match std::env::var("FERROCHAT_TEST_PG_URL") {
            Ok(admin) => on_server(&admin, &name).await,
            Err(_) => tokio::task::spawn_blocking(move || {
                services::Postgres::shared()
                    .create_database(&name)
                    .expect("create a test database")
            })
            .await
            .unwrap(),
        }
    }

    async fn on_server(admin: &str, name: &str) -> String {
        let (client, connection) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
            .await
            .expect("connect to FERROCHAT_TEST_PG_URL");
        let driver = tokio::spawn(connection);
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            client
                .batch_execute(&sql)
                .await
                .expect("create a test database");
        }
        drop(client);
        let _ = driver.await;
        let (base, _) = admin.rsplit_once('/').expect("a URL ending in /DATABASE");
        format!("{base}/{name}")
    }
}

/// A relay running in this process.
pub struct TestRelay {
    pub addr: SocketAddr,
    pub db: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<relay::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestRelay {
    /// A relay on a fresh database of the backend under test (see
    /// [`backend`]) and `args` on top of test defaults.
    pub async fn start(args: &[&str]) -> TestRelay {
        let (db, dir) = fresh_db().await;
        let mut r = TestRelay::start_on(&db, args, "127.0.0.1:0").await;
        r._dir = dir;
        r
    }

    /// A relay on an existing database URL.
    pub async fn start_on(db: &str, args: &[&str], listen: &str) -> TestRelay {
        let listener = TcpListener::bind(listen).await.expect("bind");
        TestRelay::start_listening(db, args, listener).await
    }

    /// A relay on a fresh database whose sockets have a small kernel send
    /// buffer (accepted sockets inherit the listener's): a client that
    /// stops reading stalls the relay's writes to it within kilobytes.
    pub async fn start_small_sndbuf(args: &[&str]) -> TestRelay {
        let (db, dir) = fresh_db().await;
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_send_buffer_size(4096).expect("SO_SNDBUF");
        sock.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        let listener = sock.listen(1024).expect("listen");
        let mut r = TestRelay::start_listening(&db, args, listener).await;
        r._dir = dir;
        r
    }

    /// A relay on `listener`.
    pub async fn start_listening(db: &str, args: &[&str], listener: TcpListener) -> TestRelay {
        let mut argv: Vec<String> =
            vec!["--db".into(), db.into(), "--max-hashing".into(), "2".into()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let config = Config::from_args(&argv).expect("valid test config");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(relay::run(listener, config, async {
            let _ = stopped.await;
        }));
        let r = TestRelay {
            addr,
            db: db.to_string(),
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        };
        // Wait until it answers.
        for _ in 0..200 {
            if r.get("/healthz", None).await.0 == 200 {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("relay did not come up");
    }

    /// A handle on a relay running elsewhere (a child process).
    pub fn external(addr: SocketAddr, db: &str) -> TestRelay {
        TestRelay {
            addr,
            db: db.to_string(),
            stop: None,
            task: None,
            _dir: None,
        }
    }

    /// Graceful shutdown; returns the temp dir so the database survives.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(WAIT, t)
                .await
                .expect("relay stops in time")
                .expect("relay task")
                .expect("relay shut down cleanly");
        }
        self._dir.take()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// One HTTP request; returns status and body (JSON or text).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value, hyper::HeaderMap) {
        self.try_request(method, path, token, body)
            .await
            .expect("HTTP")
    }

    /// [`TestRelay::request`], or `None` if the connection failed.
    pub async fn try_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Option<(u16, Value, hyper::HeaderMap)> {
        let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        // `connection: close`, so the relay's connection count is exact the
        // moment a response arrives (the connection cap tests count them).
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("connection", "close");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let res = tokio::time::timeout(WAIT, client.request(req))
            .await
            .expect("HTTP in time")
            .ok()?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.ok()?.to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Some((status, value, headers))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let (s, v, _) = self.request("GET", path, token, None).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let (s, v, _) = self
            .request("POST", path, token, Some(body.to_string()))
            .await;
        (s, v)
    }

    /// A POST with a JSON body and `headers` on top.
    pub async fn post_with(
        &self,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> (u16, Value, hyper::HeaderMap) {
        let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = hyper::Request::builder()
            .method("POST")
            .uri(self.url(path))
            .header("connection", "close")
            .header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let res = tokio::time::timeout(WAIT, client.request(req))
            .await
            .expect("HTTP in time")
            .expect("HTTP");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value, headers)
    }

    /// Registers `name` (password `password123`) and returns the session.
    pub async fn register(&self, name: &str) -> Session {
        let (status, body) = self
            .post(
                "/api/register",
                None,
                serde_json::json!({"username": name, "password": "password123"}),
            )
            .await;
        assert_eq!(status, 201, "register {name}: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// A WebSocket that has not logged in.
    pub async fn connect(&self) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", self.addr))
            .await
            .expect("WebSocket connect");
        Client { ws }
    }

    /// A logged-in WebSocket whose kernel receive buffer is small: once
    /// it stops reading, the relay's writes to it stall within kilobytes.
    pub async fn login_small_rcvbuf(&self, s: &Session) -> Client {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = sock.connect(self.addr).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async(
            format!("ws://{}/ws", self.addr),
            MaybeTlsStream::Plain(stream),
        )
        .await
        .expect("WebSocket connect");
        self.log_in(Client { ws }, s).await
    }

    /// A logged-in WebSocket.
    pub async fn login(&self, s: &Session) -> Client {
        let c = self.connect().await;
        self.log_in(c, s).await
    }

    async fn log_in(&self, mut c: Client, s: &Session) -> Client {
        c.send(&ClientFrame::Login {
            token: s.token.clone(),
        })
        .await;
        match c.recv().await {
            ServerFrame::LoginOk { user_id, .. } => assert_eq!(user_id, s.user_id),
            other => panic!("login failed: {other:?}"),
        }
        c
    }

    /// A metric's current value.
    pub async fn metric(&self, name: &str) -> i64 {
        self.try_metric(name).await.expect("/metrics answers")
    }

    /// A metric's current value, or `None` if `/metrics` did not answer
    /// 200 (a connection cap full of test sockets, say).
    pub async fn try_metric(&self, name: &str) -> Option<i64> {
        let (status, body, _) = self.try_request("GET", "/metrics", None, None).await?;
        if status != 200 {
            return None;
        }
        let text = body.as_str().expect("metrics text").to_string();
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no metric {name}"))
            .trim()
            .parse()
            .unwrap();
        Some(value)
    }

    /// Waits until a metric reads `value`.
    pub async fn wait_metric(&self, name: &str, value: i64) {
        eventually(&format!("{name} == {value}"), || async {
            (self.try_metric(name).await == Some(value)).then_some(())
        })
        .await
    }

    /// Creates a group owned by `owner` and adds `members` by username.
    pub async fn group(
        &self,
        owner: &Session,
        name: &str,
        public: bool,
        members: &[&Session],
    ) -> shared::GroupId {
        let (status, body) = self
            .post(
                "/api/groups",
                Some(&owner.token),
                serde_json::json!({"name": name, "public": public}),
            )
            .await;
        assert_eq!(status, 201, "create group: {body}");
        let summary: shared::api::GroupSummary = serde_json::from_value(body).unwrap();
        let g = summary.group_id;
        for m in members {
            let (status, body) = self
                .post(
                    &format!("/api/groups/{g}/members"),
                    Some(&owner.token),
                    serde_json::json!({"username": m.username}),
                )
                .await;
            assert_eq!(status, 200, "add {}: {body}", m.username);
        }
        g
    }

    /// One page of a conversation's history (`path` with its query).
    pub async fn history(&self, token: &str, path: &str) -> shared::api::History {
        let (status, body) = self.get(path, Some(token)).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// The SQLite database file (SQLite-specific tests only).
    pub fn db_path(&self) -> PathBuf {
        PathBuf::from(
            self.db
                .strip_prefix("sqlite://")
                .expect("db_path is for SQLite databases"),
        )
    }
}

/// A test WebSocket client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Closed(u16),
    Dropped,
}

impl Client {
    pub async fn send(&mut self, f: &ClientFrame) {
        self.send_text(&f.encode()).await;
    }

    pub async fn send_text(&mut self, t: &str) {
        self.ws.send(Message::Text(t.into())).await.expect("send");
    }

    pub async fn chat(&mut self, to: UserId, client_msg_id: &str, body: &str) {
        self.send(&ClientFrame::Chat(shared::ChatSend {
            from_id: None,
            to: Target::User(to),
            client_msg_id: Some(client_msg_id.into()),
            content: Content::text(body),
        }))
        .await;
    }

    pub async fn group_chat(&mut self, group: shared::GroupId, client_msg_id: &str, body: &str) {
        self.send(&ClientFrame::Chat(shared::ChatSend {
            from_id: None,
            to: Target::Group(group),
            client_msg_id: Some(client_msg_id.into()),
            content: Content::text(body),
        }))
        .await;
    }

    /// The next server frame other than PRESENCE (which arrives whenever
    /// contacts come and go; `presence.rs` reads those with `try_recv_raw`),
    /// or None on timeout or close.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<ServerFrame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv_raw(left).await? {
                ServerFrame::Presence { .. } => continue,
                f => return Some(f),
            }
        }
    }

    /// The next server frame of any kind, or None on timeout or close.
    pub async fn try_recv_raw(&mut self, wait: Duration) -> Option<ServerFrame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let m = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match m {
                Ok(Message::Text(t)) => {
                    return Some(ServerFrame::decode(&t).expect("relay sends valid frames"))
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, b: Vec<u8>) {
        self.ws.send(Message::Binary(b.into())).await.expect("send");
    }

    /// The next binary frame (text frames are skipped), or None on
    /// timeout or close.
    pub async fn try_recv_binary(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let m = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match m {
                Ok(Message::Binary(b)) => return Some(b.to_vec()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next binary frame; panics on timeout.
    pub async fn recv_binary(&mut self) -> Vec<u8> {
        self.try_recv_binary(WAIT)
            .await
            .expect("a binary frame in time")
    }

    /// The next server frame; panics on timeout.
    pub async fn recv(&mut self) -> ServerFrame {
        self.try_recv(WAIT).await.expect("a frame in time")
    }

    /// The next frame that is not a pong or receipt matching `skip`.
    pub async fn recv_where(&mut self, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            let f = self.recv().await;
            if pred(&f) {
                return f;
            }
        }
    }

    /// Asserts nothing arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(f) = self.try_recv(wait).await {
            panic!("unexpected frame {f:?}");
        }
    }

    /// Asserts no chat is pushed for `wait`; other frames are ignored.
    pub async fn expect_no_push(&mut self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        while let Some(f) = self
            .try_recv(until.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            assert!(!matches!(f, ServerFrame::Chat(_)), "unexpected push {f:?}");
        }
    }

    /// Reads until the socket ends; returns the close code if there was one.
    pub async fn ended(&mut self) -> Ended {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("socket ends in time")
            {
                Some(Ok(Message::Close(Some(f)))) => return Ended::Closed(u16::from(f.code)),
                Some(Ok(Message::Close(None))) => {
                    return Ended::Closed(u16::from(CloseCode::Status))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ended::Dropped,
            }
        }
    }
}

/// Polls `check` until it gives a value, failing the test if it has not
/// after [`WAIT`]: for waiting on a condition, never on a fixed time.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Receives the next chat push.
pub async fn next_push(c: &mut Client) -> shared::ChatMessage {
    match c.recv_where(|f| matches!(f, ServerFrame::Chat(_))).await {
        ServerFrame::Chat(p) => p,
        _ => unreachable!(),
    }
}

/// Receives the next 81.
pub async fn next_resp(c: &mut Client) -> (shared::MsgId, Option<String>, u64) {
    match c
        .recv_where(|f| matches!(f, ServerFrame::ChatResp { .. } | ServerFrame::Error(_)))
        .await
    {
        ServerFrame::ChatResp {
            msg_id,
            client_msg_id,
            seq,
            ..
        } => (msg_id, client_msg_id, seq),
        other => panic!("expected 81, got {other:?}"),
    }
}
