//! The support desk on a cluster (relay processes on one PostgreSQL and
//! Redis): visitors and agents on different relays, arrivals racing on
//! both relays (never assigned twice, never over capacity), and an agent
//! whose relay dies has their conversations put back at the front.

mod common;

use common::cluster::TestCluster;
use common::desk::{agent, board_where, session, status_where, visitor};
use common::{next_push, next_resp};
use shared::desk::{DeskAgentSet, DeskState};
use shared::ClientFrame;
use std::collections::HashSet;

fn capacity(n: u32) -> ClientFrame {
    ClientFrame::DeskAgent(DeskAgentSet {
        available: None,
        capacity: Some(n),
    })
}

#[tokio::test]
async fn arrivals_on_both_relays_are_assigned_once_within_capacity() {
    let c = TestCluster::start(2, &["--visitor-limit", "off"]).await;
    let (r0, r1) = (c.relay(0), c.relay(1));
    let (a0, a1) = (agent(r0, "agent0").await, agent(r0, "agent1").await);
    let mut c0 = r0.login(&a0).await;
    c0.send(&capacity(2)).await;
    board_where(&mut c0, |b| b.capacity == 2).await;
    let mut c1 = r1.login(&a1).await;
    c1.send(&capacity(2)).await;
    board_where(&mut c1, |b| b.capacity == 2).await;
    // Ten visitors open at once, half on each relay.
    let mut clients = Vec::new();
    for i in 0..10 {
        let r = if i % 2 == 0 { r0 } else { r1 };
        let v = visitor(r, serde_json::json!({ "name": format!("v{i}") })).await;
        clients.push(r.login(&session(&v)).await);
    }
    futures_util::future::join_all(
        clients
            .iter_mut()
            .map(|cl| async move { cl.send(&ClientFrame::DeskOpen).await }),
    )
    .await;
    let b0 = board_where(&mut c0, |b| b.mine.len() == 2 && b.queued == 6).await;
    let b1 = board_where(&mut c1, |b| b.mine.len() == 2 && b.queued == 6).await;
    let mut assigned = HashSet::new();
    for e in b0.mine.iter().chain(&b1.mine) {
        assert!(assigned.insert(e.group_id), "assigned twice: {e:?}");
    }
    let queued: HashSet<_> = b0.queue.iter().map(|e| e.group_id).collect();
    assert_eq!(queued.len(), 6);
    assert!(queued.is_disjoint(&assigned));
    // Every visitor, on either relay, comes to see where they stand (a
    // position may move while opens on the other relay still commit).
    let order: Vec<_> = b0.queue.iter().map(|e| e.group_id).collect();
    let mut seen = Vec::new();
    for cl in &mut clients {
        let first = status_where(cl, |_| true).await;
        let want = order
            .iter()
            .position(|q| *q == first.group_id)
            .map(|i| i as u32 + 1);
        let settled = |s: &shared::desk::DeskStatus| match want {
            Some(p) => s.position == Some(p),
            None => s.state == DeskState::Open && assigned.contains(&s.group_id),
        };
        if !settled(&first) {
            status_where(cl, settled).await;
        }
        seen.extend(want);
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn an_agent_whose_relay_dies_loses_their_conversations_to_the_queue() {
    let mut c = TestCluster::start(2, &[]).await;
    let ann = agent(c.relay(0), "ann").await;
    let bob = agent(c.relay(0), "bob").await;
    // bob is on relay 0, away; ann on relay 1, with room for one.
    let mut bc = c.relay(0).login(&bob).await;
    bc.send(&ClientFrame::DeskAgent(DeskAgentSet {
        available: Some(false),
        capacity: None,
    }))
    .await;
    board_where(&mut bc, |b| !b.available).await;
    let mut ac = c.relay(1).login(&ann).await;
    ac.send(&capacity(1)).await;
    board_where(&mut ac, |b| b.capacity == 1).await;
    // A visitor on relay 0 gets ann (on relay 1); they chat across relays.
    let v1 = visitor(c.relay(0), serde_json::json!({"name": "first"})).await;
    let mut vc1 = c.relay(0).login(&session(&v1)).await;
    vc1.send(&ClientFrame::DeskOpen).await;
    let open = status_where(&mut vc1, |s| s.agent_name.is_some()).await;
    assert_eq!(open.agent_name.as_deref(), Some("ann"));
    let g = open.group_id;
    board_where(&mut ac, |b| b.mine.len() == 1).await;
    vc1.group_chat(g, "q", "where is my parcel?").await;
    next_resp(&mut vc1).await;
    assert_eq!(next_push(&mut ac).await.content.body, "where is my parcel?");
    ac.group_chat(g, "a", "checking").await;
    next_resp(&mut ac).await;
    assert_eq!(next_push(&mut vc1).await.content.body, "checking");
    let v2 = visitor(c.relay(0), serde_json::json!({"name": "second"})).await;
    let mut vc2 = c.relay(0).login(&session(&v2)).await;
    vc2.send(&ClientFrame::DeskOpen).await;
    status_where(&mut vc2, |s| s.position == Some(1)).await;

    // ann's relay dies: her lease lapses and relay 0 puts the conversation
    // back at the front of the queue.
    c.kill9(1);
    let back = status_where(&mut vc1, |s| s.state == DeskState::Queued).await;
    assert_eq!(back.position, Some(1));
    status_where(&mut vc2, |s| s.position == Some(2)).await;
    // bob becomes available and takes it first.
    bc.send(&ClientFrame::DeskAgent(DeskAgentSet {
        available: Some(true),
        capacity: Some(1),
    }))
    .await;
    let b = board_where(&mut bc, |b| b.mine.len() == 1).await;
    assert_eq!(b.mine[0].group_id, g);
    status_where(&mut vc1, |s| s.agent_name.as_deref() == Some("bob")).await;
    // bob reads what was said before.
    let path = format!("/api/conversations/group/{g}/messages");
    assert_eq!(
        c.relay(0).history(&bob.token, &path).await.messages.len(),
        2
    );
}
