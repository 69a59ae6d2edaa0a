//! `register`, `login`, `logout`, `send` and `listen --json` end to end
//! against a real relay process.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn one_user_listens_the_other_sends_each_message_shows_once() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());
    let alice = register(&relay, dir.path(), "alice");
    let bob = register(&relay, dir.path(), "bob");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&bob.join("session.json")), 0o600);
    assert_eq!(mode(&bob), 0o700);

    // A message waiting while bob is offline, then one while he listens.
    let out = send(&relay, &alice, "bob", "while you were away");
    assert!(out.status.success(), "{out:?}");
    let (child, mut lines, _err) = listen(&relay, &bob);
    lines.wait_for("while you were away");
    let out = send(&relay, &alice, "bob", "hello bob");
    assert!(out.status.success(), "{out:?}");
    let line = lines.wait_for("hello bob");
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(v["fromName"], "alice");
    assert_eq!(v["content"]["body"], "hello bob");
    assert!(v["msgId"].is_string() && v["seq"].is_u64(), "{v}");
    // Anything that would come twice comes before a later marker.
    assert!(send(&relay, &alice, "bob", "marker 1").status.success());
    lines.wait_for("marker 1");
    assert_eq!(lines.count("hello bob"), 1, "{:#?}", lines.seen);
    assert_eq!(lines.count("while you were away"), 1);
    assert_eq!(lines.seen.len(), 3, "{:#?}", lines.seen);
    terminate(child);

    // Everything shown was acked: a new listener gets only what is new.
    let (child, mut lines, _err) = listen(&relay, &bob);
    assert!(send(&relay, &alice, "bob", "marker 2").status.success());
    lines.wait_for("marker 2");
    assert_eq!(lines.seen.len(), 1, "re-delivered: {:#?}", lines.seen);
    terminate(child);
}

#[test]
fn failures_exit_non_zero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());
    let alice = register(&relay, dir.path(), "alice");
    let code = |o: &std::process::Output| o.status.code().unwrap_or(-1);
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).to_string();

    let out = send(&relay, &alice, "nobody", "hi");
    assert_eq!(code(&out), 4, "{out:?}");
    assert!(stderr(&out).contains("unknown user"), "{out:?}");

    let mut c = cli(&relay, &alice);
    c.args(["send", "--group", "424242", "hi"]);
    let out = run(c);
    assert_eq!(code(&out), 4, "{out:?}");
    assert!(stderr(&out).contains("not_member"), "{out:?}");

    let mut c = cli(&relay, &alice);
    c.args(["send", "--group", "no-such-group", "hi"]);
    assert_eq!(code(&run(c)), 4);

    // Wrong password.
    let mut c = cli(&relay, &dir.path().join("other"));
    c.args(["login", "alice"])
        .env("FERROCHAT_PASSWORD", "wrong");
    let out = run(c);
    assert_eq!(code(&out), 3, "{out:?}");

    // Never logged in.
    let out = send(&relay, &dir.path().join("empty"), "alice", "hi");
    assert_eq!(code(&out), 3, "{out:?}");
    assert!(stderr(&out).contains("not logged in"), "{out:?}");

    // A revoked token: keep a copy of the session, log out, use the copy.
    register(&relay, dir.path(), "bob");
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(alice.join("session.json"), copy.join("session.json")).unwrap();
    let mut c = cli(&relay, &alice);
    c.arg("logout");
    let out = run(c);
    assert!(out.status.success(), "{out:?}");
    assert!(!alice.join("session.json").exists());
    let out = send(&relay, &copy, "bob", "hi");
    assert_eq!(code(&out), 3, "{out:?}");

    // Logging in again works and sends.
    let mut c = cli(&relay, &alice);
    c.args(["login", "alice"]);
    assert!(run(c).status.success());
    assert!(send(&relay, &alice, "bob", "hi again").status.success());

    // TLS is refused up front.
    let mut c = cli(&relay, &alice);
    c.args([
        "--server",
        "https://example.invalid",
        "send",
        "--to",
        "bob",
        "x",
    ]);
    assert_eq!(code(&run(c)), 2);
}
