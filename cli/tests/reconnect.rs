//! A listener across a relay restart (same port, same database): it
//! reconnects by itself and prints every message exactly once.

mod common;

use common::*;

#[test]
fn a_listener_survives_a_relay_restart_without_loss_or_repetition() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = relay(dir.path());
    let alice = register(&relay, dir.path(), "alice");
    let bob = register(&relay, dir.path(), "bob");
    let (child, mut lines, mut err) = listen(&relay, &bob);
    assert!(send(&relay, &alice, "bob", "before").status.success());
    lines.wait_for("before");

    relay.stop().expect("the relay stops");
    err.wait_for("offline");
    relay
        .restart()
        .expect("the relay starts again on the same port");
    for text in ["after 1", "after 2", "after 3"] {
        let out = send(&relay, &alice, "bob", text);
        assert!(out.status.success(), "{out:?}");
    }
    err.wait_for("online as bob");
    lines.wait_for("after 3");
    assert!(send(&relay, &alice, "bob", "marker").status.success());
    lines.wait_for("marker");
    for text in ["before", "after 1", "after 2", "after 3", "marker"] {
        assert_eq!(
            lines.count(&format!("\"{text}\"")),
            1,
            "{text}: {:#?}",
            lines.seen
        );
    }
    assert_eq!(lines.seen.len(), 5, "{:#?}", lines.seen);
    terminate(child);
}
