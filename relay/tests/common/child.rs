//! The relay binary as a child process: for what only a process shows (a
//! `kill -9`, a second process on the same database, a thread that dies).

use super::{next_push, next_resp, Client, TestRelay, WAIT};
use shared::ClientFrame;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The relay binary's command line for `db` on `port`, with test defaults
/// and `extra` flags.
pub fn relay_command(db: &str, port: u16, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrochat-relay"));
    c.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--db",
        db,
        "--max-hashing",
        "2",
    ])
    .args(["--rate-limit", "100000", "--rate-burst", "100000"])
    .args(extra)
    .env("FERROCHAT_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    c
}

/// The relay binary as a child process; killed when dropped.
pub struct ChildRelay {
    pub child: Child,
    pub relay: TestRelay,
}

impl ChildRelay {
    pub async fn start(db: &str, port: u16) -> ChildRelay {
        ChildRelay::start_with(db, port, &[]).await
    }

    pub async fn start_with(db: &str, port: u16, extra: &[&str]) -> ChildRelay {
        ChildRelay::spawn(relay_command(db, port, extra), db, port).await
    }

    /// Runs `command` (from [`relay_command`]) and waits until it listens.
    #[allow(clippy::zombie_processes)] // waited for in Drop
    pub async fn spawn(mut command: Command, db: &str, port: u16) -> ChildRelay {
        let child = command.spawn().expect("relay binary runs");
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "relay binary did not listen"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ChildRelay {
            child,
            relay: TestRelay::external(format!("127.0.0.1:{port}").parse().unwrap(), db),
        }
    }

    /// SIGKILL: no shutdown code runs, nothing is flushed by the relay.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the process to exit by itself.
    pub async fn exited(&mut self) -> ExitStatus {
        exited(&mut self.child).await
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to [`WAIT`]) for a child process to exit.
pub async fn exited(child: &mut Child) -> ExitStatus {
    super::eventually("the relay process exits", || {
        let status = child.try_wait().expect("waitpid");
        async move { status }
    })
    .await
}

/// Sends `n` chats keyed `{prefix}-{i}` without waiting, then collects the
/// ids of their 81s.
pub async fn burst(
    c: &mut Client,
    to: shared::UserId,
    prefix: &str,
    n: usize,
    body: &str,
) -> Vec<shared::MsgId> {
    for i in 0..n {
        c.chat(to, &format!("{prefix}-{i}"), &format!("{body} {i}"))
            .await;
    }
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(next_resp(c).await.0);
    }
    ids
}

/// Receives (and acks) exactly `ids`, in order.
pub async fn receive_in_order(c: &mut Client, ids: &[shared::MsgId]) {
    for (i, id) in ids.iter().enumerate() {
        let p = next_push(c).await;
        assert_eq!(p.msg_id, *id, "message {i} lost or out of order");
        c.send(&ClientFrame::Ack { msg_id: p.msg_id }).await;
    }
}
