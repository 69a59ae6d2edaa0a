//! Talking to a relay: accounts over HTTP, WebSocket sessions over TCP.
//!
//! Everything here is shared by the scenarios: the relay's address, the
//! account registration that precedes every run, and opening a logged-in
//! socket. Scenarios own what happens on the socket afterwards.

use crate::{Error, Log};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use shared::api::{Credentials, Session};
use shared::{ServerFrame, UserId};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A client WebSocket as the scenarios use it: plain TCP, no TLS (the
/// generator measures the relay, and runs next to it).
pub type Ws = WebSocketStream<TcpStream>;

/// How long a LOGIN may take before the attempt counts as failed.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long TCP connect plus WebSocket handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the relay is and how to reach it.
#[derive(Clone, Debug)]
pub struct Target {
    /// The relay's socket address (resolved once).
    pub addr: SocketAddr,
    /// `http://host:port`, for the HTTP API.
    pub http_base: String,
    /// `ws://host:port/ws`.
    pub ws_url: String,
    /// Source addresses to bind outgoing sockets to, round-robin; empty
    /// means "let the kernel choose".
    source_ips: Vec<Ipv4Addr>,
    /// WebSocket settings for every client socket.
    pub ws_config: WebSocketConfig,
}

impl Target {
    /// Resolves `url` (`http://host:port`, path ignored) and prepares
    /// `source_ips` loopback source addresses (127.0.0.1 ..= 127.0.0.K).
    ///
    /// One source address gives at most one ephemeral port range's worth of
    /// connections to the relay's single `ip:port` (about 28,000 on a
    /// default Linux), so larger idle runs spread over several loopback
    /// addresses, all of which the kernel routes locally.
    pub async fn resolve(
        url: &str,
        source_ips: u8,
        ws_config: WebSocketConfig,
    ) -> Result<Target, Error> {
        let (host, port) = parse_http_url(url)?;
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .find(|a| a.is_ipv4())
            .ok_or_else(|| format!("{host} has no IPv4 address"))?;
        let source_ips = match source_ips {
            0 => return Err("--source-ips must be at least 1".into()),
            1 => Vec::new(),
            k => {
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "--source-ips {k} binds to 127.0.0.x, which can only reach a loopback relay, not {addr}"
                    )
                    .into());
                }
                (1..=k).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect()
            }
        };
        let authority = match addr.ip() {
            IpAddr::V4(_) => format!("{host}:{port}"),
            IpAddr::V6(_) => format!("[{host}]:{port}"),
        };
        Ok(Target {
            addr,
            http_base: format!("http://{authority}"),
            ws_url: format!("ws://{authority}/ws"),
            source_ips,
            ws_config,
        })
    }

    /// Number of distinct source addresses in use (1 when unbound).
    pub fn source_ip_count(&self) -> usize {
        self.source_ips.len().max(1)
    }

    /// Opens socket number `i`: TCP (bound to the i-th source address
    /// round-robin, `TCP_NODELAY` on) and the WebSocket handshake on `/ws`.
    pub async fn connect(&self, i: usize) -> Result<Ws, String> {
        let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        if !self.source_ips.is_empty() {
            let ip = self.source_ips[i % self.source_ips.len()];
            // Defer the ephemeral port choice to connect(), where the kernel
            // knows the destination; without it bind() reserves a port per
            // source address for every destination and runs out early.
            set_bind_address_no_port(&sock);
            sock.bind(SocketAddr::new(IpAddr::V4(ip), 0))
                .map_err(|e| format!("bind {ip}: {e}"))?;
        }
        let stream = sock
            .connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            self.ws_url.as_str(),
            stream,
            Some(self.ws_config),
        )
        .await
        .map_err(|e| format!("handshake: {e}"))?;
        Ok(ws)
    }

    /// [`connect`](Self::connect) then [`login`], each with its timeout.
    pub async fn open_session(&self, i: usize, token: &str) -> Result<(Ws, UserId), SessionError> {
        let mut ws = match tokio::time::timeout(CONNECT_TIMEOUT, self.connect(i)).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => return Err(SessionError::Connect(e)),
            Err(_) => return Err(SessionError::Connect("connect timed out".into())),
        };
        match login(&mut ws, token, LOGIN_TIMEOUT).await {
            Ok(uid) => Ok((ws, uid)),
            Err(e) => Err(SessionError::Login(e)),
        }
    }
}

/// Why a session could not be opened. The `String`s are short and stable so
/// they can be tallied ("connect: Connection refused (os error 111)" × 40).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// TCP connect or WebSocket handshake failed.
    Connect(String),
    /// The socket opened but LOGIN did not succeed.
    Login(String),
}

fn set_bind_address_no_port(sock: &TcpSocket) {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd, a pointer to a live c_int and its size. Failure
    // only costs port-range headroom, so the result is ignored.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Splits `http://host[:port][/path]` into host and port (default 80).
pub fn parse_http_url(url: &str) -> Result<(String, u16), Error> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("--url must start with http:// (got {url:?}); TLS is not supported")
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("no host in {url:?}").into());
    }
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unterminated [ in --url")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port in {url:?}"))?,
            None => 80,
        };
        return Ok((host.to_string(), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in {url:?}"))?),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("no host in {url:?}").into());
    }
    Ok((host.to_string(), port))
}

/// Sends LOGIN and waits for the 11. Anything other than `ok:true` is an
/// error described in a short, tally-friendly string.
pub async fn login(ws: &mut Ws, token: &str, within: Duration) -> Result<UserId, String> {
    let frame = shared::ClientFrame::Login {
        token: token.to_string(),
    }
    .encode();
    ws.send(Message::text(frame))
        .await
        .map_err(|e| format!("send LOGIN: {e}"))?;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("no LOGIN_RESP in time".into()),
            Ok(None) => return Err("closed before LOGIN_RESP".into()),
            Ok(Some(Err(e))) => return Err(format!("read: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => {
                return match ServerFrame::decode(t.as_str()) {
                    Ok(ServerFrame::LoginOk { user_id, .. }) => Ok(user_id),
                    Ok(ServerFrame::LoginFailed { code, .. }) => Err(format!("refused: {code}")),
                    Ok(ServerFrame::Error(e)) => Err(format!("error: {}", e.code)),
                    Ok(other) => Err(format!(
                        "unexpected frame before LOGIN_RESP: {}",
                        kind_of(&other)
                    )),
                    Err(e) => Err(format!("undecodable LOGIN_RESP: {}", e.code)),
                };
            }
            Message::Close(c) => {
                return Err(match c {
                    Some(c) => format!("closed {} before LOGIN_RESP", u16::from(c.code)),
                    None => "closed before LOGIN_RESP".into(),
                })
            }
            _ => continue,
        }
    }
}

fn kind_of(f: &ServerFrame) -> &'static str {
    match f {
        ServerFrame::Error(_) => "0",
        ServerFrame::LoginOk { .. } | ServerFrame::LoginFailed { .. } => "11",
        ServerFrame::HeartbeatTimeout { .. } => "30",
        ServerFrame::Pong { .. } => "41",
        ServerFrame::Chat(_) => "80",
        ServerFrame::ChatResp { .. } => "81",
        ServerFrame::AckResp { .. } => "91",
        ServerFrame::Delivered { .. } => "92",
        ServerFrame::Presence { .. } => "50",
        ServerFrame::Typing { .. } => "60",
        ServerFrame::ReadReceipt { .. } => "71",
        ServerFrame::GroupEvent(_) => "100",
    }
}

/// A registered account and its session token.
#[derive(Clone, Debug)]
pub struct Account {
    /// The relay's id for the user.
    pub user_id: UserId,
    /// `lg<run>u<i>`.
    pub username: String,
    /// Bearer token for LOGIN frames.
    pub token: Arc<str>,
}

impl From<Session> for Account {
    fn from(s: Session) -> Self {
        Account {
            user_id: s.user_id,
            username: s.username,
            token: s.token.into(),
        }
    }
}

/// The `count` accounts a scenario needs: from `--accounts FILE` when it
/// exists (the first `count` of them), otherwise freshly registered (and
/// saved to `FILE` when given).
pub async fn accounts(
    ctx: &crate::Ctx,
    target: &Target,
    count: usize,
) -> Result<Vec<Account>, Error> {
    let file = ctx.common.accounts.as_deref();
    if let Some(path) = file.filter(|p| p.exists()) {
        let saved: Vec<Session> = serde_json::from_slice(&std::fs::read(path)?)
            .map_err(|e| format!("{}: not an accounts file: {e}", path.display()))?;
        if saved.len() < count {
            return Err(format!(
                "{} holds {} accounts but this run needs {count}; delete it to register anew",
                path.display(),
                saved.len()
            )
            .into());
        }
        ctx.log.say(format_args!(
            "using {count} accounts from {}",
            path.display()
        ));
        return Ok(saved.into_iter().take(count).map(Account::from).collect());
    }
    let sessions = register_accounts(
        target,
        &ctx.run_id,
        count,
        ctx.common.register_concurrency,
        &ctx.log,
    )
    .await?;
    if let Some(path) = file {
        std::fs::write(path, serde_json::to_vec(&sessions)?)?;
        ctx.log
            .say(format_args!("saved {count} accounts to {}", path.display()));
    }
    Ok(sessions.into_iter().map(Account::from).collect())
}

/// The username of the i-th account of a run.
pub fn username(run_id: &str, i: usize) -> String {
    format!("lg{run_id}u{i}")
}

/// Registers `count` fresh accounts `lg<run>u0 …`, at most `concurrency`
/// requests in flight, and returns their sessions in index order.
///
/// The relay hashes passwords with argon2id, deliberately slow (tens of ms
/// of CPU each), so registration is bounded to avoid starving the relay, and
/// scenarios keep the account count small (idle shares one account between
/// `--tabs` sockets). 429 and 503 answers are retried with backoff, since a
/// relay may rate-limit registrations per address.
pub async fn register_accounts(
    target: &Target,
    run_id: &str,
    count: usize,
    concurrency: usize,
    log: &Log,
) -> Result<Vec<Session>, Error> {
    let api = Api::new(target);
    let password = format!("lg-{run_id}-password");
    let started = Instant::now();
    let done = AtomicUsize::new(0);
    let last_log = std::sync::Mutex::new(Instant::now());
    log.say(format_args!(
        "registering {count} accounts ({concurrency} in flight)"
    ));
    let results: Vec<Result<Session, Error>> = futures_util::stream::iter(0..count)
        .map(|i| {
            let (api, password, done, last_log) = (&api, &password, &done, &last_log);
            async move {
                let creds = Credentials {
                    username: username(run_id, i),
                    password: password.clone(),
                };
                let a = register_one(api, &creds).await;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                let mut last = last_log.lock().unwrap();
                if last.elapsed() >= Duration::from_secs(2) {
                    *last = Instant::now();
                    log.say(format_args!("registered {n}/{count}"));
                }
                a
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let accounts = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let secs = started.elapsed().as_secs_f64();
    log.say(format_args!(
        "registered {count} accounts in {secs:.1} s ({:.0}/s)",
        count as f64 / secs.max(1e-9)
    ));
    Ok(accounts)
}

async fn register_one(api: &Api, creds: &Credentials) -> Result<Session, Error> {
    let body = Bytes::from(serde_json::to_vec(creds)?);
    let r = api
        .request(hyper::Method::POST, "/api/register", None, Some(body))
        .await
        .map_err(|e| format!("register {}: {e}", creds.username))?;
    match r.status {
        200 | 201 => serde_json::from_slice(&r.body)
            .map_err(|e| format!("register {}: bad response body: {e}", creds.username).into()),
        _ => Err(format!("register {}: {}", creds.username, r.describe()).into()),
    }
}

/// An answer of the relay's HTTP API.
#[derive(Clone, Debug)]
pub struct ApiResponse {
    /// HTTP status code.
    pub status: u16,
    /// The whole body.
    pub body: Bytes,
}

impl ApiResponse {
    /// `HTTP 403: {"code":…}` (body cut at 300 bytes), for error messages.
    pub fn describe(&self) -> String {
        format!(
            "HTTP {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
        )
    }
}

/// The relay's JSON HTTP API (`/api/...`) over one pooled keep-alive client.
#[derive(Clone)]
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Api {
    /// A client for `target`'s HTTP API.
    pub fn new(target: &Target) -> Api {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Api {
            client: Client::builder(TokioExecutor::new()).build(http),
            base: target.http_base.clone(),
        }
    }

    /// Sends one request (`token` as a bearer token, `body` as JSON) and
    /// returns the final answer, whatever its status. 429 and 503 (the relay
    /// is busy or rate-limiting) are retried with backoff, honouring
    /// `Retry-After`; a failed connection is retried twice (most likely
    /// there is no relay at all, so give up soon). Errors are only for
    /// answers that never came.
    pub async fn request(
        &self,
        method: hyper::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<ApiResponse, Error> {
        let uri: hyper::Uri = format!("{}{path}", self.base).parse()?;
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = hyper::Request::builder()
                .method(method.clone())
                .uri(uri.clone());
            if body.is_some() {
                req = req.header("content-type", "application/json");
            }
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let req = req.body(Full::new(body.clone().unwrap_or_default()))?;
            // (reason, server-suggested delay, attempts allowed for this reason)
            let (why, retry_after, limit): (String, Option<Duration>, u32) =
                match self.client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let retry_after = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs);
                        let body = resp.into_body().collect().await?.to_bytes();
                        if !matches!(status, 429 | 503) {
                            return Ok(ApiResponse { status, body });
                        }
                        (format!("HTTP {status}"), retry_after, 12)
                    }
                    Err(e) => (format!("request failed: {e}"), None, 3),
                };
            if attempt >= limit {
                return Err(
                    format!("{method} {path}: giving up after {attempt} attempts: {why}").into(),
                );
            }
            tokio::time::sleep(retry_after.unwrap_or(backoff)).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_into_host_and_port() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:8080").unwrap(),
            ("127.0.0.1".into(), 8080)
        );
        assert_eq!(
            parse_http_url("http://localhost/").unwrap(),
            ("localhost".into(), 80)
        );
        assert_eq!(
            parse_http_url("http://[::1]:9000/x").unwrap(),
            ("::1".into(), 9000)
        );
        assert!(parse_http_url("https://x:1").is_err());
        assert!(parse_http_url("http://:1").is_err());
        assert!(parse_http_url("http://x:notaport").is_err());
        assert!(parse_http_url("http://").is_err());
    }

    #[test]
    fn usernames_are_valid_and_distinct() {
        let a = username("k3x9q2", 0);
        let b = username("k3x9q2", 1_000_000);
        assert_eq!(a, "lgk3x9q2u0");
        assert_ne!(a, b);
        shared::validate::username(&a).unwrap();
        shared::validate::username(&b).unwrap();
    }

    #[tokio::test]
    async fn source_addresses_need_a_loopback_relay() {
        let cfg = WebSocketConfig::default();
        let t = Target::resolve("http://127.0.0.1:8080", 3, cfg)
            .await
            .unwrap();
        assert_eq!(t.source_ip_count(), 3);
        assert_eq!(t.ws_url, "ws://127.0.0.1:8080/ws");
        assert_eq!(t.http_base, "http://127.0.0.1:8080");
        assert!(Target::resolve("http://127.0.0.1:8080", 0, cfg)
            .await
            .is_err());
        assert!(Target::resolve("http://192.0.2.1:8080", 2, cfg)
            .await
            .is_err());
        assert_eq!(
            Target::resolve("http://127.0.0.1:1", 1, cfg)
                .await
                .unwrap()
                .source_ip_count(),
            1
        );
    }
}
