//! `ferrochat-relay admin …` as a process: against a running relay on
//! SQLite (its admin socket), with no relay, with a stale socket left by a
//! killed relay, and on PostgreSQL with two relays running.

mod common;

use common::child::{free_port, ChildRelay};
use common::cluster::TestCluster;
use common::{eventually, TestRelay};
use std::process::{Command, Output};

/// Runs `ferrochat-relay admin <args> --db <db>` to the end.
async fn admin(db: &str, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrochat-relay"));
    c.arg("admin").args(args).args(["--db", db]);
    tokio::task::spawn_blocking(move || c.output().expect("admin command runs"))
        .await
        .unwrap()
}

/// Runs it and asserts it worked; its stdout.
async fn admin_ok(db: &str, args: &[&str]) -> String {
    let out = admin(db, args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "admin {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// The role `GET /api/me` shows for `token`.
async fn role(relay: &TestRelay, token: &str) -> String {
    let (status, me) = relay.get("/api/me", Some(token)).await;
    assert_eq!(status, 200, "{me}");
    me["role"].as_str().unwrap().to_string()
}

fn sqlite_db(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("ferrochat.db").display())
}

#[tokio::test]
async fn roles_change_through_the_running_relays_admin_socket() {
    if common::sqlite_only("the admin socket of a relay holding its SQLite file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(&dir);
    let relay = ChildRelay::start(&db, free_port()).await;
    let r = &relay.relay;
    // Answered over HTTP: the relay is past making its admin socket.
    let alice = r.register("alice").await;
    let bob = r.register("bob").await;
    let socket = dir.path().join("ferrochat.db.admin.sock");
    {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let meta = std::fs::metadata(&socket).expect("the relay made its admin socket");
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(role(r, &alice.token).await, "user");

    let out = admin_ok(&db, &["grant-admin", "alice"]).await;
    assert!(out.contains("alice: user -> admin"), "{out}");
    assert_eq!(role(r, &alice.token).await, "admin");
    admin_ok(&db, &["grant-agent", "BOB"]).await;
    assert_eq!(role(r, &bob.token).await, "agent");
    let out = admin_ok(&db, &["list-agents"]).await;
    assert_eq!(out, "alice\tadmin\nbob\tagent\n");
    admin_ok(&db, &["revoke-agent", "bob"]).await;
    assert_eq!(role(r, &bob.token).await, "user");
    assert_eq!(admin_ok(&db, &["list-agents"]).await, "alice\tadmin\n");

    // Refusals: an unknown user, a visitor.
    let out = admin(&db, &["grant-agent", "nobody"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no such user") && err.contains("nobody"),
        "{err}"
    );
    let (status, v) = r.post("/api/visitors", None, serde_json::json!({})).await;
    assert_eq!(status, 201);
    let (_, me) = r.get("/api/me", v["token"].as_str()).await;
    let internal = me["username"].as_str().unwrap();
    let out = admin(&db, &["grant-agent", internal]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("visitor"));
}

#[tokio::test]
async fn roles_change_with_no_relay_running_and_after_a_relay_was_killed() {
    if common::sqlite_only("opening the SQLite file with no relay, and a stale socket") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(&dir);
    let socket = dir.path().join("ferrochat.db.admin.sock");
    // No database yet: a clear error, nothing created.
    let out = admin(&db, &["list-agents"]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
    assert!(!dir.path().join("ferrochat.db").exists());

    let port = free_port();
    let relay = ChildRelay::start(&db, port).await;
    let alice = relay.relay.register("alice").await;
    relay.relay.register("carol").await;
    // A relay that dies leaves its socket behind; its lock goes with it.
    relay.kill9();
    assert!(socket.exists(), "the killed relay left its socket");
    let out = admin_ok(&db, &["grant-agent", "alice"]).await;
    assert!(out.contains("alice: user -> agent"), "{out}");
    // Nothing runs now: the command opens the database itself.
    admin_ok(&db, &["grant-admin", "carol"]).await;
    assert_eq!(
        admin_ok(&db, &["list-agents"]).await,
        "alice\tagent\ncarol\tadmin\n"
    );
    let out = admin(&db, &["revoke-agent", "nobody"]).await;
    assert_eq!(out.status.code(), Some(1));
    // A relay started again sees the roles, and replaces the stale socket.
    let relay = ChildRelay::start(&db, port).await;
    assert_eq!(role(&relay.relay, &alice.token).await, "agent");
    admin_ok(&db, &["revoke-agent", "alice"]).await;
    assert_eq!(role(&relay.relay, &alice.token).await, "user");
}

#[tokio::test]
async fn roles_granted_on_postgres_are_seen_by_every_relay_at_once() {
    let cluster = TestCluster::start(2, &[]).await;
    let (one, two) = (cluster.relay(0), cluster.relay(1));
    let alice = one.register("alice").await;
    let bob = two.register("bob").await;
    let out = admin_ok(&cluster.db, &["grant-agent", "alice"]).await;
    assert!(out.contains("alice: user -> agent"), "{out}");
    admin_ok(&cluster.db, &["grant-admin", "bob"]).await;
    for relay in [one, two] {
        eventually("both relays show the roles", || async {
            let ok = role(relay, &alice.token).await == "agent"
                && role(relay, &bob.token).await == "admin";
            ok.then_some(())
        })
        .await;
    }
    assert_eq!(
        admin_ok(&cluster.db, &["list-agents"]).await,
        "alice\tagent\nbob\tadmin\n"
    );
    admin_ok(&cluster.db, &["revoke-agent", "alice"]).await;
    assert_eq!(role(two, &alice.token).await, "user");
    assert_eq!(role(one, &alice.token).await, "user");
    let out = admin(&cluster.db, &["grant-agent", "nobody"]).await;
    assert_eq!(out.status.code(), Some(1));
    // An unreachable database: exit code 3, a clear message.
    let port = free_port();
    let out = admin(
        &format!("postgres://nobody@127.0.0.1:{port}/nothing"),
        &["list-agents"],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open the database"));
}
