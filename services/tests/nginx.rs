//! nginx in front of real relay processes built from this workspace.

mod common;

use common::{refused, relay_args, relay_bin, Scratch};
use services::{Nginx, RelayProcess};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A WebSocket handshake on `/ws`; the response's status line.
fn upgrade(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response head");
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn websockets_upgrade_through_nginx_and_a_relay_restarts_on_its_port() {
    let scratch = Scratch::new("nginx");
    let log = scratch.path().join("relay.log");
    let mut relay = RelayProcess::spawn(&relay_bin(), &relay_args(scratch.path()), &log).unwrap();
    assert_eq!(relay.health(), Some(200));
    let nginx = Nginx::start(scratch.path().join("nginx"), 0, &[relay.addr()], None).unwrap();
    assert!(
        upgrade(nginx.addr()).starts_with("HTTP/1.1 101"),
        "through nginx"
    );
    let through = services::RelayProcess::health_at(nginx.addr());
    assert_eq!(through, Some(200));

    let addr = relay.addr();
    relay.kill().unwrap();
    assert_eq!(relay.health(), None);
    assert!(refused(addr.port()));
    assert_eq!(services::RelayProcess::health_at(nginx.addr()), Some(502));
    relay.restart().unwrap();
    assert_eq!(relay.addr(), addr);
    assert_eq!(relay.health(), Some(200));
}

#[test]
fn a_bad_configuration_is_reported_with_nginx_s_words() {
    let scratch = Scratch::new("nginx-bad");
    // A quote in the path ends nginx's quoted string early.
    let bad_root = scratch.path().join("a\"b");
    std::fs::create_dir_all(&bad_root).unwrap();
    let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let err = Nginx::start(
        scratch.path().join("nginx"),
        0,
        &[upstream],
        Some(&bad_root),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nginx rejects"), "{err}");
    assert!(err.contains("nginx.conf"), "{err}");
}
