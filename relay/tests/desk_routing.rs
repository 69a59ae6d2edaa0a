//! The support desk's routing over real sockets: the queue and its
//! positions, the least busy agent below capacity, an agent going
//! offline, transfer, close, offline delivery to a returning visitor, and
//! what visitors and users may not do. Runs on SQLite and, with
//! `FERROCHAT_TEST_BACKEND=postgres`, on PostgreSQL.

mod common;

use common::desk::{agent, board_where, session, status_where, visitor_in};
use common::{next_push, next_resp, TestRelay};
use shared::desk::{DeskAgentSet, DeskState};
use shared::{ClientFrame, ErrorCode, ServerFrame, Target};

fn set(available: Option<bool>, capacity: Option<u32>) -> ClientFrame {
    ClientFrame::DeskAgent(DeskAgentSet {
        available,
        capacity,
    })
}

#[tokio::test]
async fn a_queued_visitor_reaches_the_agent_who_comes_online_and_they_chat() {
    let relay = TestRelay::start(&[]).await;
    let ann = agent(&relay, "ann").await;
    let (v, mut vc, first) = visitor_in(&relay, "Vera").await;
    assert_eq!(first.state, DeskState::Queued);
    let queued = status_where(&mut vc, |s| s.position.is_some()).await;
    assert_eq!(queued.position, Some(1));
    let g = queued.group_id;
    // Written while waiting: stored (81) before anyone answers.
    vc.group_chat(g, "v-1", "hello, anyone?").await;
    next_resp(&mut vc).await;

    let mut ac = relay.login(&ann).await;
    let board = board_where(&mut ac, |b| !b.mine.is_empty()).await;
    assert_eq!(board.mine[0].group_id, g);
    assert_eq!(board.mine[0].name, "Vera");
    assert_eq!(board.mine[0].page.as_deref(), Some("https://shop.example/"));
    let open = status_where(&mut vc, |s| s.state == DeskState::Open).await;
    assert_eq!(open.agent_name.as_deref(), Some("ann"));
    // The agent reads what the visitor wrote while queued.
    let path = format!("/api/conversations/group/{g}/messages");
    let h = relay.history(&ann.token, &path).await;
    assert_eq!(h.messages.len(), 1, "{h:?}");
    assert_eq!(h.messages[0].content.body, "hello, anyone?");
    // Signed with the name the visitor gave, not their internal username.
    assert_eq!(h.messages[0].from_name, "Vera");
    // They chat, both ways, on the durable path.
    ac.group_chat(g, "a-1", "Hi Vera, how can I help?").await;
    next_resp(&mut ac).await;
    let m = next_push(&mut vc).await;
    assert_eq!(m.content.body, "Hi Vera, how can I help?");
    assert_eq!(m.to, Target::Group(g));
    vc.send(&ClientFrame::Ack { msg_id: m.msg_id }).await;
    vc.group_chat(g, "v-2", "my order is late").await;
    next_resp(&mut vc).await;
    let m = next_push(&mut ac).await;
    assert_eq!(
        (m.content.body.as_str(), m.from_name.as_str()),
        ("my order is late", "Vera")
    );
    // The visitor reads their own conversation's history too.
    let h = relay.history(&v.token, &path).await;
    assert_eq!(h.messages.len(), 3);
}

#[tokio::test]
async fn the_least_busy_agent_below_capacity_gets_it_and_the_rest_wait_in_order() {
    let relay = TestRelay::start(&[]).await;
    let (a1, a2) = (agent(&relay, "agent1").await, agent(&relay, "agent2").await);
    let mut c1 = relay.login(&a1).await;
    c1.send(&set(None, Some(1))).await;
    board_where(&mut c1, |b| b.capacity == 1).await;
    let mut c2 = relay.login(&a2).await;
    c2.send(&set(None, Some(2))).await;
    board_where(&mut c2, |b| b.capacity == 2).await;

    let mut visitors = Vec::new();
    for name in ["v1", "v2", "v3", "v4", "v5"] {
        let (_, c, s) = visitor_in(&relay, name).await;
        visitors.push((c, s.group_id));
    }
    // v1 → agent1 (tie: lowest id), v2 → agent2 (fewest), v3 → agent2
    // (agent1 is full), v4 and v5 wait, in order of arrival.
    let b1 = board_where(&mut c1, |b| b.mine.len() == 1 && b.queued == 2).await;
    assert_eq!(b1.mine[0].group_id, visitors[0].1);
    let b2 = board_where(&mut c2, |b| b.mine.len() == 2 && b.queued == 2).await;
    let mine: Vec<_> = b2.mine.iter().map(|e| e.group_id).collect();
    assert!(mine.contains(&visitors[1].1) && mine.contains(&visitors[2].1));
    assert_eq!(b2.queue[0].group_id, visitors[3].1);
    assert_eq!(b2.queue[1].group_id, visitors[4].1);
    let p4 = status_where(&mut visitors[3].0, |s| s.position.is_some()).await;
    let p5 = status_where(&mut visitors[4].0, |s| s.position.is_some()).await;
    assert_eq!((p4.position, p5.position), (Some(1), Some(2)));

    // agent1 closes v1's conversation: v4 is next, v5 moves up.
    c1.send(&ClientFrame::DeskClose {
        group_id: visitors[0].1,
    })
    .await;
    let closed = status_where(&mut visitors[0].0, |s| s.state == DeskState::Closed).await;
    assert_eq!(closed.group_id, visitors[0].1);
    let b1 = board_where(&mut c1, |b| b.mine.len() == 1 && b.queued == 1).await;
    assert_eq!(b1.mine[0].group_id, visitors[3].1);
    status_where(&mut visitors[3].0, |s| s.state == DeskState::Open).await;
    status_where(&mut visitors[4].0, |s| s.position == Some(1)).await;
    // A closed conversation stays readable to its agent, and to every
    // agent (agent2 was never in it); not to a user.
    let path = format!("/api/conversations/group/{}/messages", visitors[0].1);
    for a in [&a1, &a2] {
        let (status, body) = relay.get(&path, Some(&a.token)).await;
        assert_eq!(status, 200, "{body}");
    }
    let stranger = relay.register("stranger").await;
    let (status, _) = relay.get(&path, Some(&stranger.token)).await;
    assert_ne!(status, 200);

    // Away: agent2 takes nothing new even with room.
    c2.send(&set(Some(false), Some(3))).await;
    board_where(&mut c2, |b| !b.available && b.capacity == 3).await;
    let (_, mut v6, _) = visitor_in(&relay, "v6").await;
    let s6 = status_where(&mut v6, |s| s.position.is_some()).await;
    assert_eq!(s6.position, Some(2));
    c2.send(&set(Some(true), None)).await;
    board_where(&mut c2, |b| b.mine.len() == 3).await;
    status_where(&mut visitors[4].0, |s| s.state == DeskState::Open).await;
}

#[tokio::test]
async fn transfer_to_an_agent_or_back_to_the_queue_and_who_may() {
    let relay = TestRelay::start(&[]).await;
    let (a1, a2) = (agent(&relay, "agent1").await, agent(&relay, "agent2").await);
    let mut c1 = relay.login(&a1).await;
    c1.send(&set(None, Some(1))).await;
    board_where(&mut c1, |b| b.capacity == 1).await;
    let (_, mut vc, s) = visitor_in(&relay, "Tom").await;
    let g = s.group_id;
    board_where(&mut c1, |b| b.mine.len() == 1).await;
    // agent2 is not online: refused.
    c1.send(&ClientFrame::DeskTransfer {
        group_id: g,
        to: Some(a2.user_id),
    })
    .await;
    match c1.recv_where(|f| matches!(f, ServerFrame::Error(_))).await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::Forbidden, "{e:?}"),
        _ => unreachable!(),
    }
    let mut c2 = relay.login(&a2).await;
    board_where(&mut c2, |b| {
        b.agents.iter().filter(|a| a.online).count() == 2
    })
    .await;
    // Only the conversation's agent hands it on.
    c2.send(&ClientFrame::DeskTransfer {
        group_id: g,
        to: None,
    })
    .await;
    match c2.recv_where(|f| matches!(f, ServerFrame::Error(_))).await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::Forbidden, "{e:?}"),
        _ => unreachable!(),
    }
    c1.send(&ClientFrame::DeskTransfer {
        group_id: g,
        to: Some(a2.user_id),
    })
    .await;
    board_where(&mut c2, |b| b.mine.len() == 1 && b.mine[0].group_id == g).await;
    board_where(&mut c1, |b| b.mine.is_empty()).await;
    let s = status_where(&mut vc, |s| s.agent_name.as_deref() == Some("agent2")).await;
    assert_eq!(s.state, DeskState::Open);
    // The new agent gets the visitor's next message; the old one does not.
    vc.group_chat(g, "t-1", "still there?").await;
    next_resp(&mut vc).await;
    assert_eq!(next_push(&mut c2).await.content.body, "still there?");
    // Back to the queue: to someone else with room (agent1).
    c2.send(&ClientFrame::DeskTransfer {
        group_id: g,
        to: None,
    })
    .await;
    board_where(&mut c1, |b| b.mine.len() == 1).await;
    status_where(&mut vc, |s| s.agent_name.as_deref() == Some("agent1")).await;
    // The visitor closes.
    vc.send(&ClientFrame::DeskClose { group_id: g }).await;
    status_where(&mut vc, |s| s.state == DeskState::Closed).await;
    board_where(&mut c1, |b| b.mine.is_empty()).await;
}

#[tokio::test]
async fn an_agent_who_goes_offline_has_their_conversations_put_back_at_the_front() {
    let relay = TestRelay::start(&["--presence-grace", "200ms"]).await;
    let (a1, a2) = (agent(&relay, "agent1").await, agent(&relay, "agent2").await);
    // agent2 is online but away, with room for one.
    let mut c2 = relay.login(&a2).await;
    c2.send(&set(Some(false), Some(1))).await;
    board_where(&mut c2, |b| !b.available && b.capacity == 1).await;
    let mut c1 = relay.login(&a1).await;
    c1.send(&set(None, Some(1))).await;
    board_where(&mut c1, |b| b.capacity == 1).await;
    let (_, mut first, s1) = visitor_in(&relay, "first").await;
    board_where(&mut c1, |b| b.mine.len() == 1).await;
    let (_, mut second, s2) = visitor_in(&relay, "second").await;
    status_where(&mut second, |s| s.position == Some(1)).await;
    // Every tab of agent1 closes: past the grace and the lease, the
    // conversation goes back to the queue ahead of the one waiting.
    drop(c1);
    let back = status_where(&mut first, |s| s.state == DeskState::Queued).await;
    assert_eq!(back.position, Some(1));
    status_where(&mut second, |s| s.position == Some(2)).await;
    // agent2 becomes available: takes the first one back first.
    c2.send(&set(Some(true), None)).await;
    let b = board_where(&mut c2, |b| b.mine.len() == 1).await;
    assert_eq!(b.mine[0].group_id, s1.group_id);
    assert_eq!(b.queue[0].group_id, s2.group_id);
}

#[tokio::test]
async fn a_returning_visitor_gets_the_replies_sent_while_away() {
    let relay = TestRelay::start(&[]).await;
    let ann = agent(&relay, "ann").await;
    let mut ac = relay.login(&ann).await;
    let (v, vc, s) = visitor_in(&relay, "Rita").await;
    let g = s.group_id;
    board_where(&mut ac, |b| b.mine.len() == 1).await;
    drop(vc);
    ac.group_chat(g, "a-1", "Your parcel ships today.").await;
    next_resp(&mut ac).await;
    // The next day: the same token, the same conversation, the reply.
    let mut back = relay.login(&session(&v)).await;
    let m = next_push(&mut back).await;
    assert_eq!(m.content.body, "Your parcel ships today.");
    back.send(&ClientFrame::DeskOpen).await;
    let again = status_where(&mut back, |_| true).await;
    assert_eq!(again.group_id, g);
    assert_eq!(again.state, DeskState::Open);
}

#[tokio::test]
async fn visitors_reach_only_their_conversation_and_users_cannot_act_as_agents() {
    let relay = TestRelay::start(&[]).await;
    let bob = relay.register("bob").await;
    let eve = relay.register("eve").await;
    let club = relay.group(&bob, "club", false, &[&eve]).await;
    let ann = agent(&relay, "ann").await;
    let mut ac = relay.login(&ann).await;
    let (_, mut vc, s) = visitor_in(&relay, "Val").await;
    let (other, _oc, other_status) = visitor_in(&relay, "Olga").await;
    board_where(&mut ac, |b| b.mine.len() == 2).await;
    // Not a member of another group, nor of another visitor's conversation.
    for g in [club, other_status.group_id] {
        vc.group_chat(g, "x", "let me in").await;
        match vc.recv_where(|f| matches!(f, ServerFrame::Error(_))).await {
            ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::NotMember, "{e:?}"),
            _ => unreachable!(),
        }
        let path = format!("/api/conversations/group/{g}/messages");
        let (status, _) = relay.get(&path, Some(&session(&other).token)).await;
        assert!(g == other_status.group_id || status == 403 || status == 404);
    }
    let (status, _) = relay
        .get(
            &format!("/api/conversations/group/{}/messages", s.group_id),
            Some(&other.token),
        )
        .await;
    assert_ne!(status, 200, "another visitor read this conversation");
    // No direct messages, not even to their agent; no agent frames.
    vc.chat(ann.user_id, "d", "psst").await;
    match vc.recv_where(|f| matches!(f, ServerFrame::Error(_))).await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::Forbidden, "{e:?}"),
        _ => unreachable!(),
    }
    vc.send(&set(Some(true), None)).await;
    match vc.recv_where(|f| matches!(f, ServerFrame::Error(_))).await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::Forbidden, "{e:?}"),
        _ => unreachable!(),
    }
    // A user is neither a visitor nor an agent.
    let mut bc = relay.login(&bob).await;
    for f in [
        ClientFrame::DeskOpen,
        set(Some(true), None),
        ClientFrame::DeskTransfer {
            group_id: s.group_id,
            to: None,
        },
    ] {
        bc.send(&f).await;
        match bc.recv_where(|f| matches!(f, ServerFrame::Error(_))).await {
            ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::Forbidden, "{e:?}"),
            _ => unreachable!(),
        }
    }
    // The desk's members change only through the desk.
    let (status, body) = relay
        .post(
            &format!("/api/groups/{}/members", s.group_id),
            Some(&ann.token),
            serde_json::json!({"username": "bob"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn visitor_messages_are_limited_per_client_address() {
    let relay = TestRelay::start(&["--visitor-message-limit", "3/1h"]).await;
    let ann = agent(&relay, "ann").await;
    let mut ac = relay.login(&ann).await;
    // Two visitors from the same address share the allowance.
    let (_, mut v1, s1) = visitor_in(&relay, "one").await;
    let (_, mut v2, s2) = visitor_in(&relay, "two").await;
    board_where(&mut ac, |b| b.mine.len() == 2).await;
    for i in 0..2 {
        v1.group_chat(s1.group_id, &format!("a{i}"), "hi").await;
        next_resp(&mut v1).await;
    }
    v2.group_chat(s2.group_id, "b0", "hi").await;
    next_resp(&mut v2).await;
    v2.group_chat(s2.group_id, "b1", "hi again").await;
    match v2.recv_where(|f| matches!(f, ServerFrame::Error(_))).await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}");
            assert_eq!(e.client_msg_id.as_deref(), Some("b1"));
        }
        _ => unreachable!(),
    }
    // Nothing refused was stored; the agent is not limited.
    let path = format!("/api/conversations/group/{}/messages", s2.group_id);
    assert_eq!(relay.history(&ann.token, &path).await.messages.len(), 1);
    ac.group_chat(s2.group_id, "r", "answer").await;
    next_resp(&mut ac).await;
}
