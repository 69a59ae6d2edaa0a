//! Paged history, the conversation list, read receipts and typing.

mod common;

use common::*;
use serde_json::Value;
use shared::api::Conversations;
use shared::{ClientFrame, ServerFrame, Target};
use std::time::Duration;

#[tokio::test]
async fn history_pages_backwards_without_gaps_or_repeats() {
    let relay = TestRelay::start(&["--rate-limit", "1000", "--rate-burst", "1000"]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    for i in 1..=25 {
        alice
            .chat(b.user_id, &format!("h-{i}"), &format!("m{i}"))
            .await;
        next_resp(&mut alice).await;
    }
    let base = format!("/api/conversations/user/{}/messages", a.user_id);
    let mut seen = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let q = match before {
            Some(b) => format!("{base}?limit=10&before={b}"),
            None => format!("{base}?limit=10"),
        };
        let page = relay.history(&b.token, &q).await;
        let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] + 1 == w[1]),
            "oldest first, contiguous: {seqs:?}"
        );
        for m in &page.messages {
            assert_eq!(m.content.body, format!("m{}", m.seq));
            assert_eq!(m.to, Target::User(b.user_id), "to bob, as bob sees it");
        }
        seen.splice(0..0, seqs.iter().copied());
        before = page.messages.first().map(|m| m.seq);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
    // The sender reads the same conversation under the peer's id.
    let mine = relay
        .history(
            &a.token,
            &format!("/api/conversations/user/{}/messages?limit=200", b.user_id),
        )
        .await;
    assert_eq!(mine.messages.len(), 25);
    assert!(!mine.has_more);
    // A stranger's conversation, or yourself, is not readable.
    let eve = relay.register("eve").await;
    let empty = relay.history(&eve.token, &base).await;
    assert!(
        empty.messages.is_empty(),
        "eve has no conversation with alice"
    );
    let (status, _) = relay
        .get(
            &format!("/api/conversations/user/{}/messages", eve.user_id),
            Some(&eve.token),
        )
        .await;
    assert_eq!(status, 404);
    relay.stop().await;
}

/// A joiner's conversation list shows nothing from before their join, and a
/// group without messages yet ranks by its creation, not below every chat.
#[tokio::test]
async fn the_conversation_list_hides_what_a_joiner_may_not_read() {
    let relay = TestRelay::start(&[]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let g = relay.group(&a, "open house", true, &[]).await;
    let mut alice = relay.login(&a).await;
    alice.group_chat(g, "before", "before bob joined").await;
    next_resp(&mut alice).await;
    alice.chat(b.user_id, "d", "hi bob").await;
    next_resp(&mut alice).await;

    let (status, body) = relay
        .post(
            &format!("/api/groups/{g}/join"),
            Some(&b.token),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = relay.get("/api/conversations", Some(&b.token)).await;
    let list: Conversations = serde_json::from_value(body).unwrap();
    assert_eq!(list.conversations.len(), 2);
    let group = list
        .conversations
        .iter()
        .find(|c| c.group.as_ref().is_some_and(|x| x.group_id == g))
        .expect("the joined group is listed");
    assert!(group.last_message.is_none(), "{:?}", group.last_message);
    assert_eq!(group.unread, 0);

    // A brand-new empty group ranks above older conversations (timestamps
    // are milliseconds: step past the direct message's).
    let newest = list
        .conversations
        .iter()
        .filter_map(|c| c.last_message.as_ref().map(|m| m.ts))
        .max()
        .unwrap();
    eventually("the clock passes the last message", || async {
        (relay::clock::now_ms() > newest).then_some(())
    })
    .await;
    let fresh = relay.group(&b, "fresh", false, &[]).await;
    let (_, body) = relay.get("/api/conversations", Some(&b.token)).await;
    let list: Conversations = serde_json::from_value(body).unwrap();
    let first = list.conversations[0].group.as_ref().unwrap();
    assert_eq!(first.group_id, fresh, "{list:?}");
    assert!(list.conversations[0].last_message.is_none());
}

#[tokio::test]
async fn the_conversation_list_and_read_receipts() {
    let relay = TestRelay::start(&[]).await;
    let (a, b, c) = (
        relay.register("alice").await,
        relay.register("bob").await,
        relay.register("carol").await,
    );
    let mut alice = relay.login(&a).await;
    for i in 0..3 {
        alice
            .chat(b.user_id, &format!("l-{i}"), &format!("to bob {i}"))
            .await;
        next_resp(&mut alice).await;
    }
    let g = relay.group(&c, "carol's group", false, &[&b]).await;
    let mut carol = relay.login(&c).await;
    carol.group_chat(g, "cg", "group hello").await;
    next_resp(&mut carol).await;

    let (_, body) = relay.get("/api/conversations", Some(&b.token)).await;
    let list: Conversations = serde_json::from_value(body).unwrap();
    assert_eq!(list.conversations.len(), 2);
    let newest = &list.conversations[0];
    assert_eq!(
        newest.group.as_ref().unwrap().name,
        "carol's group",
        "newest first"
    );
    assert_eq!(newest.unread, 1);
    let direct = &list.conversations[1];
    assert_eq!(direct.peer.as_ref().unwrap().username, "alice");
    assert_eq!((direct.unread, direct.last_seq), (3, 3));
    assert_eq!(
        direct.last_message.as_ref().unwrap().content.body,
        "to bob 2"
    );
    assert_eq!(direct.peer_read_seq, Some(0));

    // bob reads the direct conversation up to 2 from one tab.
    let mut bob = relay.login(&b).await;
    let mut bob2 = relay.login(&b).await;
    bob.send(&ClientFrame::Read {
        to: Target::User(a.user_id),
        seq: 2,
    })
    .await;
    match alice
        .recv_where(|f| matches!(f, ServerFrame::ReadReceipt { .. }))
        .await
    {
        ServerFrame::ReadReceipt { by_id, to, seq, .. } => {
            assert_eq!((by_id, to, seq), (b.user_id, Target::User(a.user_id), 2));
        }
        _ => unreachable!(),
    }
    // bob's other tab learns it too (its unread count follows).
    match bob2
        .recv_where(|f| matches!(f, ServerFrame::ReadReceipt { .. }))
        .await
    {
        ServerFrame::ReadReceipt { by_id, to, seq, .. } => {
            assert_eq!((by_id, to, seq), (b.user_id, Target::User(a.user_id), 2));
        }
        _ => unreachable!(),
    }
    // Reading backwards changes nothing; reading past the end is clamped.
    bob.send(&ClientFrame::Read {
        to: Target::User(a.user_id),
        seq: 1,
    })
    .await;
    bob.send(&ClientFrame::Read {
        to: Target::User(a.user_id),
        seq: 99,
    })
    .await;
    match alice
        .recv_where(|f| matches!(f, ServerFrame::ReadReceipt { .. }))
        .await
    {
        ServerFrame::ReadReceipt { seq, .. } => assert_eq!(seq, 3),
        _ => unreachable!(),
    }
    // A new browser sees the same state from the server.
    let (_, body) = relay.get("/api/conversations", Some(&b.token)).await;
    let direct = body["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "direct")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        (direct["unread"].as_u64(), direct["readSeq"].as_u64()),
        (Some(0), Some(3))
    );
    let (_, body) = relay.get("/api/conversations", Some(&a.token)).await;
    assert_eq!(body["conversations"][0]["peerReadSeq"], 3);

    // Group: carol (the sender) hears that bob read her message.
    bob.send(&ClientFrame::Read {
        to: Target::Group(g),
        seq: 1,
    })
    .await;
    match carol
        .recv_where(|f| matches!(f, ServerFrame::ReadReceipt { .. }))
        .await
    {
        ServerFrame::ReadReceipt { by_id, to, seq, .. } => {
            assert_eq!((by_id, to, seq), (b.user_id, Target::Group(g), 1))
        }
        _ => unreachable!(),
    }
    let (_, info) = relay.get(&format!("/api/groups/{g}"), Some(&c.token)).await;
    let bob_member = info["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["username"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(bob_member["readSeq"], 1);
    relay.stop().await;
}

#[tokio::test]
async fn typing_is_relayed_throttled_and_never_stored() {
    let relay = TestRelay::start(&[]).await;
    let (a, b, c) = (
        relay.register("alice").await,
        relay.register("bob").await,
        relay.register("carol").await,
    );
    let g = relay.group(&a, "typists", false, &[&b, &c]).await;
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    let mut carol = relay.login(&c).await;

    alice
        .send(&ClientFrame::Typing {
            to: Target::User(b.user_id),
        })
        .await;
    match bob
        .recv_where(|f| matches!(f, ServerFrame::Typing { .. }))
        .await
    {
        ServerFrame::Typing {
            from_id,
            from_name,
            to,
        } => {
            assert_eq!(
                (from_id, from_name.as_str(), to),
                (a.user_id, "alice", Target::User(b.user_id))
            );
        }
        _ => unreachable!(),
    }
    // A second notice within a second is dropped.
    alice
        .send(&ClientFrame::Typing {
            to: Target::User(b.user_id),
        })
        .await;
    let again = bob.try_recv(Duration::from_millis(400)).await;
    assert!(
        !matches!(again, Some(ServerFrame::Typing { .. })),
        "{again:?}"
    );

    alice
        .send(&ClientFrame::Typing {
            to: Target::Group(g),
        })
        .await;
    for member in [&mut bob, &mut carol] {
        match member
            .recv_where(|f| matches!(f, ServerFrame::Typing { .. }))
            .await
        {
            ServerFrame::Typing { from_id, to, .. } => {
                assert_eq!((from_id, to), (a.user_id, Target::Group(g)))
            }
            _ => unreachable!(),
        }
    }
    let echo = alice.try_recv(Duration::from_millis(300)).await;
    assert!(
        !matches!(echo, Some(ServerFrame::Typing { .. })),
        "the typist does not hear itself"
    );
    // Never stored: no history, nothing pending at the next login.
    let h = relay
        .history(&b.token, &format!("/api/conversations/group/{g}/messages"))
        .await;
    assert!(h.messages.is_empty());
    relay.stop().await;
}

/// A read marker used to end the indexer's gathering with a FULL commit of
/// its own, though nobody waits for it to reach the disk. Now markers
/// gather with the chats: forty of them cost a handful of commits, and
/// their receipts still arrive, in order, once committed.
#[tokio::test]
async fn read_markers_gather_instead_of_each_committing() {
    let relay = TestRelay::start(&["--rate-limit", "100000", "--rate-burst", "100000"]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    let n = 40;
    for i in 0..n {
        alice.chat(b.user_id, &format!("m-{i}"), "read me").await;
        next_resp(&mut alice).await;
    }
    let commits = relay.metric("ferrochat_store_commits_total").await;
    let started = std::time::Instant::now();
    for seq in 1..=n {
        bob.send(&ClientFrame::Read {
            to: Target::User(a.user_id),
            seq,
        })
        .await;
    }
    for seq in 1..=n {
        match alice
            .recv_where(|f| matches!(f, ServerFrame::ReadReceipt { .. }))
            .await
        {
            ServerFrame::ReadReceipt {
                by_id,
                prev_seq,
                seq: got,
                ..
            } => assert_eq!((by_id, prev_seq, got), (b.user_id, Some(seq - 1), seq)),
            _ => unreachable!(),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let commits = relay.metric("ferrochat_store_commits_total").await - commits;
    assert!(
        (commits as f64) <= 3.0 + 2.0 * elapsed,
        "{commits} commits for {n} read markers in {elapsed:.1}s"
    );
    relay.stop().await;
}

/// "Read by N" used to be counted by the browser, over every member for
/// every message. The relay counts it: a group history page carries, for
/// the viewer's own messages, how many other members have read each (a
/// member who joined later does not count), and 71 frames carry the
/// reader's previous cursor, so a sender can keep the counts current.
#[tokio::test]
async fn group_history_counts_read_by_and_receipts_carry_the_previous_cursor() {
    let relay = TestRelay::start(&[]).await;
    let a = relay.register("alice").await;
    let b = relay.register("bob").await;
    let c = relay.register("carol").await;
    let d = relay.register("dave").await;
    let g = relay.group(&a, "readers", false, &[&b, &c]).await;
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    let mut carol = relay.login(&c).await;
    for i in 0..3 {
        alice.group_chat(g, &format!("g-{i}"), "mine").await;
        next_resp(&mut alice).await;
    }
    let group = Target::Group(g);
    let receipt = |f: &ServerFrame| matches!(f, ServerFrame::ReadReceipt { .. });
    bob.send(&ClientFrame::Read { to: group, seq: 2 }).await;
    carol.send(&ClientFrame::Read { to: group, seq: 3 }).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        if let ServerFrame::ReadReceipt {
            by_id,
            prev_seq,
            seq,
            ..
        } = alice.recv_where(receipt).await
        {
            seen.push((by_id, prev_seq, seq));
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [(b.user_id, Some(0), 2), (c.user_id, Some(0), 3)],
        "the senders hear who read how far, and from where"
    );
    // Dave joins after message 3: he starts at it, and does not count.
    let (status, _) = relay
        .post(
            &format!("/api/groups/{g}/members"),
            Some(&a.token),
            serde_json::json!({"username": d.username}),
        )
        .await;
    assert_eq!(status, 200);
    bob.group_chat(g, "b-4", "bob's").await;
    next_resp(&mut bob).await;
    let path = format!("/api/conversations/group/{g}/messages");
    let counts = |h: &shared::api::History| -> Vec<(u64, u32)> {
        h.read_by.iter().map(|r| (r.seq, r.count)).collect()
    };
    let history = relay.history(&a.token, &path).await;
    assert_eq!(history.messages.len(), 4);
    assert_eq!(
        counts(&history),
        [(1, 2), (2, 2), (3, 1)],
        "alice's own only"
    );
    // Bob reads on: alice hears it (from 2), and the count follows.
    bob.send(&ClientFrame::Read { to: group, seq: 4 }).await;
    match alice.recv_where(receipt).await {
        ServerFrame::ReadReceipt { prev_seq, seq, .. } => assert_eq!((prev_seq, seq), (Some(2), 4)),
        _ => unreachable!(),
    }
    let history = relay.history(&a.token, &path).await;
    assert_eq!(counts(&history), [(1, 2), (2, 2), (3, 2)]);
    let history = relay.history(&b.token, &path).await;
    assert_eq!(counts(&history), [(4, 0)], "nobody else read bob's yet");
    relay.stop().await;
}
