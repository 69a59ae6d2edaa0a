//! The CLI against a cluster: PostgreSQL, Redis, two relay processes and
//! nginx in front of them (issue 16: "the CLI and the bot API work against
//! one box and against the cluster"). A listener on one relay gets what is
//! sent on the other, users' and bots' alike, exactly once and in order;
//! a listener behind nginx whose relay is killed (`kill -9`) reconnects
//! through nginx to the survivor and misses nothing, repeats nothing (a
//! push it showed but could not ack is not shown again).

mod common;

use common::cluster::{self, bot_post, create_bot, holding_sockets, user_id};
use common::*;

/// The `content.body` of every JSON line printed so far.
fn bodies(lines: &Lines) -> Vec<String> {
    lines
        .seen
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["content"]["body"].as_str().expect("a body").to_string()
        })
        .collect()
}

fn sent(out: std::process::Output) {
    assert!(out.status.success(), "send: {out:?}");
}

#[test]
fn users_and_bots_on_one_relay_reach_a_listener_on_the_other_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster::start(dir.path());
    let (a, b) = (c.relays()[0].url(), c.relays()[1].url());
    let alice = account_at(&a, dir.path(), "alice", "register");
    let bob = account_at(&b, dir.path(), "bob", "register");
    let (child, mut lines, _err) = listen_at(&b, &bob);
    assert_eq!(holding_sockets(&c, 1.0), 1, "bob listens on relay B");

    // (a) `send` through relay A, one process per message.
    let mut expected = Vec::new();
    for i in 0..10 {
        let text = format!("a{i}");
        sent(send_at(&a, &alice, "bob", &text));
        expected.push(text);
    }
    lines.wait_for("\"a9\"");

    // (c) A bot's `POST /api/messages` on relay A.
    let token = create_bot(&cluster::db(&c), "notifier");
    let bob_id = user_id(&bob);
    for i in 0..3 {
        let text = format!("bot{i}");
        let status = bot_post(c.relays()[0].addr(), &token, &bob_id, &text);
        assert_eq!(status, 201, "the bot's send");
        expected.push(text);
    }
    let line = lines.wait_for("\"bot2\"");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["fromName"], "notifier", "{v}");

    // Anything that would come twice comes before a later marker.
    sent(send_at(&a, &alice, "bob", "marker"));
    expected.push("marker".into());
    lines.wait_for("\"marker\"");
    assert_eq!(bodies(&lines), expected);
    terminate(child);
}

#[test]
fn a_listener_behind_nginx_survives_its_relay_killed_without_loss_or_repetition() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster::start(dir.path());
    let urls: Vec<String> = c.relays().iter().map(|r| r.url()).collect();
    let lb = c.url();
    // A saved session is for one server URL: alice has one per relay, bob
    // one for nginx's.
    let alice = [
        account_at(&urls[0], dir.path(), "alice", "register"),
        account_at(&urls[1], dir.path(), "alice", "login"),
    ];
    let bob = account_at(&lb, dir.path(), "bob", "register");
    let (child, mut lines, mut err) = listen_at(&lb, &bob);
    let dead = holding_sockets(&c, 1.0);
    let live = 1 - dead;
    let mut expected = Vec::new();
    let mut send = |text: String| {
        sent(send_at(&urls[live], &alice[live], "bob", &text));
        expected.push(text);
    };
    for i in 0..3 {
        send(format!("before{i}"));
    }
    lines.wait_for("\"before2\"");

    // Frozen, bob's CLI cannot reconnect before everything below is sent:
    // a push it will read but cannot ack (its relay is gone by then), and
    // messages sent while its relay is dead and it is away.
    signal(&child, libc::SIGSTOP);
    send("inflight".into());
    cluster::poll("the push on bob's relay", || {
        let pushed = c.relays()[dead].metric("ferrochat_messages_out_total");
        (pushed == Some(4.0)).then_some(())
    });
    c.relay_mut(dead).kill().expect("kill -9 of bob's relay");
    for i in 0..3 {
        send(format!("during{i}"));
    }
    signal(&child, libc::SIGCONT);
    err.wait_for("offline");
    err.wait_for("online as bob");
    assert_eq!(holding_sockets(&c, 1.0), live, "back through nginx");
    for i in 0..3 {
        send(format!("after{i}"));
    }
    send("marker".into());
    lines.wait_for("\"marker\"");
    assert_eq!(bodies(&lines), expected, "stderr: {:#?}", err.seen);
    terminate(child);
}
