//! Talking to a relay: accounts over HTTP, WebSocket sessions over TCP.
//!
//! Everything here is shared by the scenarios: a relay's address and
//! opening a logged-in socket (this file), the relays of a run
//! (`targets.rs`: `--url` may list several), the account registration
//! that precedes every run (`accounts.rs`) and the HTTP API (`api.rs`).
//! Scenarios own what happens on the socket afterwards
//! ([`socket`](crate::socket) has the common parts).

mod accounts;
mod api;
mod targets;

pub use accounts::{accounts, register_accounts, username, Account};
pub use api::{Api, ApiResponse};
pub use targets::{per_node, split_urls, Targets};

use crate::Error;
use futures_util::{SinkExt, StreamExt};
use shared::{ServerFrame, UserId};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;
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

/// WebSocket settings for a scenario's sockets: buffers of `read_buffer`
/// and `write_buffer` bytes, frames up to 1 MiB.
pub fn ws_config(read_buffer: usize, write_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(write_buffer)
        .max_message_size(Some(1 << 20))
}

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
        self.open_session_within(i, token, CONNECT_TIMEOUT, LOGIN_TIMEOUT)
            .await
    }

    /// [`open_session`](Self::open_session) with other timeouts for the
    /// connection and the LOGIN (a reconnecting session keeps them short).
    pub async fn open_session_within(
        &self,
        i: usize,
        token: &str,
        connect_timeout: Duration,
        login_timeout: Duration,
    ) -> Result<(Ws, UserId), SessionError> {
        let mut ws = match tokio::time::timeout(connect_timeout, self.connect(i)).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => return Err(SessionError::Connect(e)),
            Err(_) => return Err(SessionError::Connect("connect timed out".into())),
        };
        match login(&mut ws, token, login_timeout).await {
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

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Connect(s) => write!(f, "connect: {s}"),
            SessionError::Login(s) => write!(f, "login: {s}"),
        }
    }
}

fn set_bind_address_no_port(sock: &TcpSocket) {
    let one: libc::c_int = 1;
    // Linux only: elsewhere the option does not exist and ports are
    // simply chosen at bind time.
    // SAFETY: a valid fd, a pointer to a live c_int and its size. Failure
    // only costs port-range headroom, so the result is ignored.
    #[cfg(target_os = "linux")]
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
        ServerFrame::VoiceJoined { .. } => "121",
        ServerFrame::VoiceRoom { .. } => "125",
        ServerFrame::DeskStatus(_) => "131",
        ServerFrame::DeskBoard(_) => "133",
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
