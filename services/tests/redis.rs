//! A real Redis: start, PING, kill, start again empty.

mod common;

use common::{refused, Scratch};
use services::Redis;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

/// Sends one command in RESP; returns the first reply line.
fn command(port: u16, args: &[&str]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    if line.starts_with('$') && line != "$-1\r\n" {
        let mut value = String::new();
        r.read_line(&mut value).unwrap();
        return value.trim_end().to_string();
    }
    line.trim_end().to_string()
}

#[test]
fn a_restart_comes_back_empty_on_the_same_port() {
    let scratch = Scratch::new("redis");
    let mut redis = Redis::start(scratch.path().join("redis")).unwrap();
    let port = redis.port();
    assert!(redis.ping());
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(command(port, &["SET", "k", "v"]), "+OK");
    assert_eq!(command(port, &["GET", "k"]), "v");

    redis.kill().unwrap();
    assert!(!redis.ping());
    assert!(refused(port));

    redis.start_again().unwrap();
    assert_eq!(redis.port(), port);
    assert!(redis.ping());
    assert_eq!(command(port, &["GET", "k"]), "$-1", "nothing persisted");

    redis.stop().unwrap();
    assert!(refused(port));
}
