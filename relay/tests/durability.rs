//! An 81 is a promise: the message survives a relay restart and a
//! `kill -9`.

mod common;

use common::*;
use shared::api::Session;
use shared::ClientFrame;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn messages_survive_a_restart() {
    let relay = TestRelay::start(&[]).await;
    let db = relay.db.clone();
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        alice
            .chat(b.user_id, &format!("d-{i}"), &format!("durable {i}"))
            .await;
        ids.push(next_resp(&mut alice).await.0);
    }
    drop(alice);
    // Stop before bob ever connects; keep the database directory.
    let dir = relay.stop().await;

    let relay = TestRelay::start_on(&db, &[], "127.0.0.1:0").await;
    let mut bob = relay.login(&b).await;
    for (i, id) in ids.iter().enumerate() {
        let p = next_push(&mut bob).await;
        assert_eq!(p.msg_id, *id);
        assert_eq!(p.content.body, format!("durable {i}"));
    }
    // Tokens, accounts and sequences survived too.
    let mut alice = relay.login(&a).await;
    alice.chat(b.user_id, "d-after", "after restart").await;
    let (_, _, seq) = next_resp(&mut alice).await;
    assert_eq!(seq, 6);
    relay.stop().await;
    drop(dir);
}

/// The relay binary as a child process, killed with SIGKILL.
struct ChildRelay {
    child: Child,
    relay: TestRelay,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[allow(clippy::zombie_processes)] // the caller's ChildRelay waits in Drop
async fn spawn_relay(db: &str, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_ferrochat-relay"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
            db,
            "--max-hashing",
            "2",
        ])
        .args(["--rate-limit", "100000", "--rate-burst", "100000"])
        .env("FERROCHAT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("relay binary runs");
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("relay binary did not listen");
}

impl ChildRelay {
    async fn start(db: &str, port: u16) -> ChildRelay {
        let child = spawn_relay(db, port).await;
        ChildRelay {
            child,
            relay: TestRelay::external(format!("127.0.0.1:{port}").parse().unwrap(), db),
        }
    }

    fn kill9(mut self) {
        // SIGKILL: no shutdown code runs, nothing is flushed by the relay.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn messages_survive_kill_dash_nine() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("kill9.db").display());
    let port = free_port();
    let r = ChildRelay::start(&db, port).await;
    let a: Session = r.relay.register("alice").await;
    let b: Session = r.relay.register("bob").await;
    let mut alice = r.relay.login(&a).await;
    // Fire a burst, and kill the relay the moment the last 81 arrives.
    let n = 200;
    for i in 0..n {
        alice
            .chat(b.user_id, &format!("k-{i}"), &format!("kill {i}"))
            .await;
    }
    let mut acked = Vec::new();
    for _ in 0..n {
        acked.push(next_resp(&mut alice).await.0);
    }
    r.kill9();
    drop(alice);

    let r = ChildRelay::start(&db, port).await;
    let mut bob = r.relay.login(&b).await;
    for (i, id) in acked.iter().enumerate() {
        let p = next_push(&mut bob).await;
        assert_eq!(
            p.msg_id, *id,
            "message {i} lost or out of order after kill -9"
        );
        bob.send(&ClientFrame::Ack { msg_id: p.msg_id }).await;
    }
    drop(r);
}
