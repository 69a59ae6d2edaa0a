//! The interactive client in a pseudo-terminal (rexpect), against a real
//! relay process: it prints what arrives, sends `bob;;hello` and plain
//! lines, switches conversation, shows history and quits on `:q`.

mod common;

use common::*;

/// Types a line and Enter (a carriage return, as a terminal sends it).
fn type_line(p: &mut rexpect::session::PtySession, line: &str) {
    p.send(&format!("{line}\r")).unwrap();
    p.flush().unwrap();
}

#[test]
fn the_interactive_client_sends_receives_and_quits() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());
    let alice = register(&relay, dir.path(), "alice");
    let bob = register(&relay, dir.path(), "bob");
    let (listener, mut bob_sees, _err) = listen(&relay, &bob);

    let timeout = Some(DEADLINE.as_millis() as u64);
    let mut p = rexpect::session::spawn_command(cli(&relay, &alice), timeout).expect("a pty");
    p.exp_string("* connected as alice").expect("connects");
    p.exp_string("> ").expect("the prompt");

    type_line(&mut p, "bob;;hello");
    p.exp_string("you -> bob: hello").expect("its 81 is shown");
    let line = bob_sees.wait_for("\"hello\"");
    assert!(line.contains("\"fromName\":\"alice\""), "{line}");

    // An incoming message is printed while the prompt waits.
    assert!(send(&relay, &bob, "alice", "hi alice").status.success());
    p.exp_string("bob: hi alice").expect("the incoming message");

    // A plain line goes to the conversation switched to.
    type_line(&mut p, "nobody here");
    p.exp_string("no conversation")
        .expect("no current conversation yet");
    type_line(&mut p, ":u bob");
    p.exp_string("bob> ")
        .expect("the prompt names the conversation");
    type_line(&mut p, "second");
    p.exp_string("you -> bob: second").expect("shown");
    bob_sees.wait_for("\"second\"");

    type_line(&mut p, ":history 3");
    p.exp_string("-- last 3 of bob --").expect("shown");
    p.exp_string("alice: second").expect("shown");

    type_line(&mut p, ":nope");
    p.exp_string("unknown command :nope").expect("shown");
    type_line(&mut p, ":q");
    p.exp_eof().expect("quits");
    let status = p.process.wait().expect("exit status");
    assert!(
        matches!(status, rexpect::process::wait::WaitStatus::Exited(_, 0)),
        "{status:?}"
    );
    assert_eq!(bob_sees.count("\"hello\""), 1);
    terminate(listener);
}
