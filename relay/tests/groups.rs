//! Group chat: read fan-out with per-member acks, membership rules, and
//! the group management API.

mod common;

use common::*;
use serde_json::json;
use shared::{ClientFrame, ErrorCode, GroupEventKind, GroupId, ServerFrame, Target};
use std::time::Duration;

fn is_push(f: &ServerFrame) -> bool {
    matches!(f, ServerFrame::Chat(_))
}

async fn group_event(c: &mut Client) -> shared::GroupEvent {
    match c
        .recv_where(|f| matches!(f, ServerFrame::GroupEvent(_)))
        .await
    {
        ServerFrame::GroupEvent(e) => e,
        _ => unreachable!(),
    }
}

/// `actor` removes `user` from `g`: the status and the body.
async fn remove(
    relay: &TestRelay,
    actor: &shared::api::Session,
    g: GroupId,
    user: shared::UserId,
) -> (u16, serde_json::Value) {
    let (status, body, _) = relay
        .request(
            "DELETE",
            &format!("/api/groups/{g}/members/{user}"),
            Some(&actor.token),
            None,
        )
        .await;
    (status, body)
}

#[tokio::test]
async fn a_group_message_reaches_every_member_and_each_acks_separately() {
    let relay = TestRelay::start(&["--ack-timeout", "300ms"]).await;
    let (a, b, c, d) = (
        relay.register("alice").await,
        relay.register("bob").await,
        relay.register("carol").await,
        relay.register("dave").await,
    );
    let g = relay.group(&a, "friends", false, &[&b, &c, &d]).await;
    let mut alice = relay.login(&a).await;
    let mut alice2 = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    let mut carol = relay.login(&c).await;

    alice.group_chat(g, "g-1", "hello all").await;
    let (msg_id, _, seq) = next_resp(&mut alice).await;
    assert_eq!(seq, 1);
    for member in [&mut bob, &mut carol] {
        let p = next_push(member).await;
        assert_eq!(
            (p.msg_id, p.to, p.from_id),
            (msg_id, Target::Group(g), a.user_id)
        );
        assert_eq!(p.from_name, "alice");
    }
    // The sender's other tab gets the echo.
    assert_eq!(next_push(&mut alice2).await.msg_id, msg_id);

    // bob acks; carol does not and keeps getting it; bob gets nothing more.
    bob.send(&ClientFrame::Ack { msg_id }).await;
    bob.recv_where(|f| matches!(f, ServerFrame::AckResp { .. }))
        .await;
    assert_eq!(
        next_push(&mut carol).await.msg_id,
        msg_id,
        "carol is retried"
    );
    let _ = bob.try_recv(Duration::from_millis(50)).await;
    bob.expect_silence(Duration::from_millis(700)).await;
    carol.send(&ClientFrame::Ack { msg_id }).await;
    carol
        .recv_where(|f| matches!(f, ServerFrame::AckResp { .. }))
        .await;
    // No per-member delivery receipts for group messages.
    assert!(alice.try_recv(Duration::from_millis(300)).await.is_none());

    // dave was offline: he gets it, in order with a second one, at login.
    alice.group_chat(g, "g-2", "second").await;
    next_resp(&mut alice).await;
    let mut dave = relay.login(&d).await;
    let first = next_push(&mut dave).await;
    let second = next_push(&mut dave).await;
    assert_eq!((first.seq, second.seq), (1, 2));
    assert_eq!(second.content.body, "second");
    relay.stop().await;
}

#[tokio::test]
async fn non_members_cannot_post_read_or_type() {
    let relay = TestRelay::start(&[]).await;
    let (a, b, eve) = (
        relay.register("alice").await,
        relay.register("bob").await,
        relay.register("eve").await,
    );
    let g = relay.group(&a, "private", false, &[&b]).await;
    let mut eve_ws = relay.login(&eve).await;
    let mut bob_ws = relay.login(&b).await;
    eve_ws.group_chat(g, "e-1", "let me in").await;
    match eve_ws.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, ErrorCode::NotMember);
            assert_eq!(e.client_msg_id.as_deref(), Some("e-1"));
        }
        other => panic!("{other:?}"),
    }
    eve_ws
        .send(&ClientFrame::Typing {
            to: Target::Group(g),
        })
        .await;
    assert!(matches!(eve_ws.recv().await, ServerFrame::Error(e) if e.code == ErrorCode::NotMember));
    eve_ws
        .send(&ClientFrame::Read {
            to: Target::Group(g),
            seq: 1,
        })
        .await;
    assert!(matches!(eve_ws.recv().await, ServerFrame::Error(e) if e.code == ErrorCode::NotMember));
    bob_ws.expect_silence(Duration::from_millis(300)).await;

    // History and details of a private group are invisible to outsiders.
    let (status, body) = relay
        .get(
            &format!("/api/conversations/group/{g}/messages"),
            Some(&eve.token),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_member")));
    let (status, _) = relay
        .get(&format!("/api/groups/{g}"), Some(&eve.token))
        .await;
    assert_eq!(status, 404);
    let (status, _) = relay
        .post(
            &format!("/api/groups/{g}/join"),
            Some(&eve.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "private groups cannot be joined");
    // A member may not add people to a group that does not exist.
    let (status, _) = relay
        .post(
            "/api/groups/999999/members",
            Some(&a.token),
            json!({"username": "eve"}),
        )
        .await;
    assert_eq!(status, 404);
    relay.stop().await;
}

#[tokio::test]
async fn removed_and_departed_members_stop_receiving_and_cannot_post() {
    let relay = TestRelay::start(&[]).await;
    let (a, b, c) = (
        relay.register("alice").await,
        relay.register("bob").await,
        relay.register("carol").await,
    );
    let g = relay.group(&a, "team", false, &[&b, &c]).await;
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    let mut carol = relay.login(&c).await;

    // Only the owner removes.
    let (status, body) = remove(&relay, &b, g, c.user_id).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(remove(&relay, &a, g, b.user_id).await.0, 204);
    let e = group_event(&mut bob).await;
    assert_eq!(
        (e.kind, e.user_id),
        (GroupEventKind::MemberRemoved, Some(b.user_id))
    );
    let e = group_event(&mut carol).await;
    assert_eq!(e.kind, GroupEventKind::MemberRemoved);

    // carol leaves on her own.
    let (status, _, _) = relay
        .request(
            "POST",
            &format!("/api/groups/{g}/leave"),
            Some(&c.token),
            None,
        )
        .await;
    assert_eq!(status, 204);

    alice.group_chat(g, "after", "only me now").await;
    next_resp(&mut alice).await;
    for gone in [&mut bob, &mut carol] {
        let pushed = gone.try_recv(Duration::from_millis(400)).await;
        assert!(!pushed.as_ref().is_some_and(is_push), "{pushed:?}");
    }
    bob.group_chat(g, "b-late", "still here?").await;
    assert!(
        matches!(bob.recv_where(|f| matches!(f, ServerFrame::Error(_))).await,
        ServerFrame::Error(e) if e.code == ErrorCode::NotMember)
    );
    let (status, _) = relay
        .get(
            &format!("/api/conversations/group/{g}/messages"),
            Some(&b.token),
        )
        .await;
    assert_eq!(status, 403);
    relay.stop().await;
}

#[tokio::test]
async fn joiners_see_history_from_when_they_joined() {
    let relay = TestRelay::start(&[]).await;
    let (a, b) = (relay.register("alice").await, relay.register("bob").await);
    let g = relay.group(&a, "open house", true, &[]).await;
    let mut alice = relay.login(&a).await;
    alice.group_chat(g, "before", "before bob").await;
    next_resp(&mut alice).await;

    // bob finds the public group and joins.
    let (_, found) = relay.get("/api/groups?q=open", Some(&b.token)).await;
    assert_eq!(found["groups"][0]["groupId"], json!(g.0.to_string()));
    let (status, info) = relay
        .post(&format!("/api/groups/{g}/join"), Some(&b.token), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["memberCount"], 2);
    let e = group_event(&mut alice).await;
    assert_eq!(
        (e.kind, e.user_id),
        (GroupEventKind::MemberJoined, Some(b.user_id))
    );

    let mut bob = relay.login(&b).await;
    // Nothing from before bob joined is pushed (presence frames may come).
    while let Some(f) = bob.try_recv(Duration::from_millis(300)).await {
        assert!(!is_push(&f), "{f:?}");
    }
    alice.group_chat(g, "after", "welcome bob").await;
    next_resp(&mut alice).await;
    assert_eq!(next_push(&mut bob).await.content.body, "welcome bob");
    let (_, h) = relay
        .get(
            &format!("/api/conversations/group/{g}/messages"),
            Some(&b.token),
        )
        .await;
    let bodies: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["welcome bob"]);
    let (_, h) = relay
        .get(
            &format!("/api/conversations/group/{g}/messages"),
            Some(&a.token),
        )
        .await;
    assert_eq!(h["messages"].as_array().unwrap().len(), 2);
    relay.stop().await;
}

#[tokio::test]
async fn owners_rename_and_hand_over_when_they_leave() {
    let relay = TestRelay::start(&[]).await;
    let (a, b, c) = (
        relay.register("alice").await,
        relay.register("bob").await,
        relay.register("carol").await,
    );
    let g = relay.group(&a, "old name", false, &[&b, &c]).await;
    let mut bob = relay.login(&b).await;

    let (status, _, _) = relay
        .request(
            "PATCH",
            &format!("/api/groups/{g}"),
            Some(&b.token),
            Some(json!({"name": "mine"}).to_string()),
        )
        .await;
    assert_eq!(status, 403, "only the owner renames");
    let (status, info, _) = relay
        .request(
            "PATCH",
            &format!("/api/groups/{g}"),
            Some(&a.token),
            Some(json!({"name": "new name"}).to_string()),
        )
        .await;
    assert_eq!((status, info["name"].as_str()), (200, Some("new name")));
    let e = group_event(&mut bob).await;
    assert_eq!(
        (e.kind, e.name.as_deref()),
        (GroupEventKind::Renamed, Some("new name"))
    );
    let (status, _, _) = relay
        .request(
            "PATCH",
            &format!("/api/groups/{g}"),
            Some(&a.token),
            Some(json!({"name": "  "}).to_string()),
        )
        .await;
    assert_eq!(status, 400);

    // The owner leaves: the longest-standing member (bob) owns it now.
    relay
        .request(
            "POST",
            &format!("/api/groups/{g}/leave"),
            Some(&a.token),
            None,
        )
        .await;
    let e = group_event(&mut bob).await;
    assert_eq!(e.kind, GroupEventKind::MemberLeft);
    let e = group_event(&mut bob).await;
    assert_eq!(
        (e.kind, e.user_id),
        (GroupEventKind::OwnerChanged, Some(b.user_id))
    );
    let (_, info) = relay.get(&format!("/api/groups/{g}"), Some(&b.token)).await;
    assert_eq!(info["ownerId"], json!(b.user_id.0.to_string()));
    assert_eq!(info["members"][0]["username"], "bob", "owner listed first");
    assert_eq!(info["members"][0]["online"], true);
    assert_eq!(info["members"][1]["online"], false);
    relay.stop().await;
}

#[tokio::test]
async fn adding_unknown_users_and_bad_group_names_fail_cleanly() {
    let relay = TestRelay::start(&[]).await;
    let a = relay.register("alice").await;
    let (status, body) = relay
        .post("/api/groups", Some(&a.token), json!({"name": ""}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_field"))
    );
    let (status, _) = relay.post("/api/groups", None, json!({"name": "x"})).await;
    assert_eq!(status, 401);
    let g = relay.group(&a, "g", false, &[]).await;
    let (status, body) = relay
        .post(
            &format!("/api/groups/{g}/members"),
            Some(&a.token),
            json!({"username": "ghost"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_recipient"))
    );
    let (status, _) = relay
        .get(
            &format!("/api/groups/{}", GroupId(g.0 + 100)),
            Some(&a.token),
        )
        .await;
    assert_eq!(status, 404);
    relay.stop().await;
}

/// Group changes and messages share one ordered write path: a member added
/// in the middle of a burst gets exactly the messages stored after the add,
/// live and in history alike, and a member removed mid-burst gets a
/// prefix of the burst and nothing after it.
///
/// The changes race the middle third of the burst: the first third is
/// answered before they start and the last third is sent after they were
/// answered, so the split must fall inside the burst. A join that missed
/// it (carol getting nothing, or everything) fails the test.
#[tokio::test]
async fn membership_changes_racing_a_burst_split_it_cleanly() {
    let relay = TestRelay::start(&["--rate-limit", "100000", "--rate-burst", "100000"]).await;
    let (a, b, c) = (
        relay.register("alice").await,
        relay.register("bob").await,
        relay.register("carol").await,
    );
    let g = relay.group(&a, "race", false, &[&b]).await;
    let mut alice = relay.login(&a).await;
    let mut bob = relay.login(&b).await;
    let mut carol = relay.login(&c).await;
    let third: u64 = 70;
    let n = 3 * third;
    /// Chats `from..to` without waiting, then their answers' seqs.
    async fn burst(alice: &mut Client, g: GroupId, from: u64, to: u64) -> Vec<u64> {
        for i in from..to {
            alice
                .group_chat(g, &format!("r-{i}"), &format!("race {i}"))
                .await;
        }
        let mut got = Vec::new();
        for _ in from..to {
            got.push(next_resp(alice).await.2);
        }
        got
    }
    let mut seqs = burst(&mut alice, g, 0, third).await;
    let change = async {
        let (status, body) = relay
            .post(
                &format!("/api/groups/{g}/members"),
                Some(&a.token),
                json!({"username": c.username}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(remove(&relay, &a, g, b.user_id).await.0, 204);
    };
    let (middle, ()) = tokio::join!(burst(&mut alice, g, third, 2 * third), change);
    seqs.extend(middle);
    seqs.extend(burst(&mut alice, g, 2 * third, n).await);
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());

    async fn pushed_seqs(c: &mut Client) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Some(f) = c.try_recv(Duration::from_millis(500)).await {
            if let ServerFrame::Chat(p) = f {
                seqs.push(p.seq);
            }
        }
        seqs
    }
    let to_carol = pushed_seqs(&mut carol).await;
    let to_bob = pushed_seqs(&mut bob).await;
    // carol: a suffix of the burst, starting after the first third and
    // at the latest with the last, exactly what her history shows.
    let first = to_carol.first().copied().unwrap_or(n + 1);
    assert!(
        (third + 1..=2 * third + 1).contains(&first),
        "carol's first message is {first}: the join missed the middle of the burst"
    );
    assert_eq!(to_carol, (first..=n).collect::<Vec<_>>());
    let (status, page) = relay
        .get(
            &format!("/api/conversations/group/{g}/messages?limit=200"),
            Some(&c.token),
        )
        .await;
    assert_eq!(status, 200);
    let history: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        history, to_carol,
        "pushes and history disagree on when carol joined"
    );
    // bob: a prefix ending inside the burst, which ends before carol's
    // suffix begins or overlaps it (he was removed after she was added).
    let last = to_bob.last().copied().unwrap_or(0);
    assert!(
        (third..=2 * third).contains(&last),
        "bob's last message is {last}: the removal missed the middle of the burst"
    );
    assert_eq!(to_bob, (1..=last).collect::<Vec<_>>());
    assert!(
        last + 1 >= first,
        "bob {last}, carol from {first}: a message reached neither"
    );
    relay.stop().await;
}

/// Every group change used to answer with the full member list (filling a
/// 10,000-member group moved 5.1 GB). Changes now answer with the group's
/// summary, and members come a page at a time, by username.
#[tokio::test]
async fn group_changes_answer_with_the_summary_and_members_come_in_pages() {
    let relay = TestRelay::start(&[]).await;
    let owner = relay.register("olga").await;
    let mut users = Vec::new();
    for name in ["Bea", "alf", "carl", "Dee", "eddy", "fay"] {
        users.push(relay.register(name).await);
    }
    let _online = relay.login(&owner).await;
    let (status, body) = relay
        .post(
            "/api/groups",
            Some(&owner.token),
            json!({"name": "paged", "public": true}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(body.get("members").is_none(), "{body}");
    assert_eq!(body["memberCount"], 1);
    let g = GroupId(body["groupId"].as_str().unwrap().parse().unwrap());
    for (i, u) in users.iter().enumerate().take(4) {
        let (status, body) = relay
            .post(&format!("/api/groups/{g}/join"), Some(&u.token), json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("members").is_none(), "{body}");
        assert_eq!(body["memberCount"], i as u64 + 2);
    }
    for u in &users[4..] {
        let (status, body) = relay
            .post(
                &format!("/api/groups/{g}/members"),
                Some(&owner.token),
                json!({"username": u.username}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("members").is_none(), "{body}");
    }
    let (status, body, _) = relay
        .request(
            "PATCH",
            &format!("/api/groups/{g}"),
            Some(&owner.token),
            Some(json!({"name": "renamed"}).to_string()),
        )
        .await;
    assert_eq!((status, body["name"].as_str()), (200, Some("renamed")));
    assert!(body.get("members").is_none(), "{body}");

    // All seven, three at a time, by username whatever the letter case.
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = match &after {
            Some(a) => format!("?limit=3&after={a}"),
            None => "?limit=3".to_string(),
        };
        let (status, page) = relay
            .get(
                &format!("/api/groups/{g}/members{query}"),
                Some(&users[0].token),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let members = page["members"].as_array().unwrap();
        assert!(members.len() <= 3);
        for m in members {
            let name = m["username"].as_str().unwrap().to_string();
            assert_eq!(m["owner"], name == "olga", "{m}");
            assert_eq!(m["online"], name == "olga", "{m}");
            names.push(name);
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["alf", "Bea", "carl", "Dee", "eddy", "fay", "olga"]);
    // The group itself carries the first page (all of them, here).
    let (status, info) = relay
        .get(&format!("/api/groups/{g}"), Some(&owner.token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["members"].as_array().unwrap().len(), 7);
    assert!(info.get("next").is_none());
    // Pages are capped; a private group's members are nobody else's business.
    let (status, page) = relay
        .get(
            &format!("/api/groups/{g}/members?limit=100000"),
            Some(&owner.token),
        )
        .await;
    assert_eq!(
        (status, page["members"].as_array().unwrap().len()),
        (200, 7)
    );
    let private = relay.group(&owner, "private", false, &[]).await;
    for path in [
        format!("/api/groups/{private}"),
        format!("/api/groups/{private}/members"),
    ] {
        let (status, _) = relay.get(&path, Some(&users[0].token)).await;
        assert_eq!(status, 404, "{path}");
    }
    relay.stop().await;
}
