//! The support desk on PostgreSQL: the same routing as on SQLite, and two
//! relays racing on one database never assign a conversation twice, never
//! put an agent over capacity, never leave a conversation waiting beside
//! an agent with room, and keep `members` in step with the desk.

use super::*;
use crate::clock::now_ms;
use crate::rules::routing::{DeskDone, DeskOp};
use shared::desk::{DeskAgentSet, DeskState, NewVisitor, Role};
use shared::GroupEventKind;
use std::collections::{BTreeMap, HashMap, HashSet};

async fn agent(store: &PostgresStore, name: &str) -> UserId {
    let id = user(store, name).await;
    store.set_role(id, Role::Agent).await.unwrap();
    id
}

async fn visitor(store: &PostgresStore, name: &str) -> UserId {
    let about = NewVisitor {
        name: Some(name.into()),
        email: None,
        page: None,
    };
    store
        .create_visitor(format!("~{name}"), about)
        .await
        .unwrap()
}

async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

fn lease() -> i64 {
    now_ms() + 600_000
}

async fn desk(store: &PostgresStore, op: DeskOp) -> DeskDone {
    store.desk(op).await.unwrap()
}

async fn seen(store: &PostgresStore, agents: &[UserId]) -> DeskDone {
    let agents = agents.to_vec();
    desk(
        store,
        DeskOp::Seen {
            agents,
            until: lease(),
        },
    )
    .await
}

async fn open_desk(store: &PostgresStore, visitor: UserId) -> (GroupId, DeskDone) {
    let done = desk(store, DeskOp::Open { visitor }).await;
    (
        done.row.as_ref().expect("the visitor's conversation").group,
        done,
    )
}

async fn capacity(store: &PostgresStore, agent: UserId, n: u32) {
    let set = DeskAgentSet {
        available: None,
        capacity: Some(n),
    };
    desk(store, DeskOp::Agent { agent, set }).await;
}

/// (group, agent, added) of each member change, in order.
fn moves(done: &DeskDone) -> Vec<(GroupId, UserId, bool)> {
    done.groups
        .iter()
        .map(|g| {
            let e = &g.events[0];
            let added = e.kind == GroupEventKind::MemberAdded;
            (g.group, e.user_id.unwrap(), added)
        })
        .collect()
}

/// Members and `members_version` of a conversation, from the database.
async fn members(db: &tokio_postgres::Client, g: GroupId) -> (Vec<(i64, i64, i64, i64)>, i64) {
    let rows = db
        .query(
            "SELECT user_id, joined_seq, delivered_seq, read_seq FROM members
             WHERE conv_id = $1 ORDER BY user_id",
            &[&g.0],
        )
        .await
        .unwrap();
    let version: i64 = db
        .query_one(
            "SELECT members_version FROM conversations WHERE id = $1",
            &[&g.0],
        )
        .await
        .unwrap()
        .get(0);
    let rows = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    (rows, version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_goes_to_the_least_busy_leased_available_agent() {
    let url = database().await;
    let store = open(&url).await;
    let db = sql(&url).await;
    let (ann, bob, carol, dave) = (
        agent(&store, "ann").await,
        agent(&store, "bob").await,
        agent(&store, "carol").await,
        agent(&store, "dave").await,
    );
    let eve = user(&store, "eve").await; // not an agent
    let set = DeskAgentSet {
        available: Some(false),
        capacity: None,
    };
    desk(&store, DeskOp::Agent { agent: dave, set }).await;
    // Nobody leased yet: the first one waits, and meanwhile it has messages.
    let v1 = visitor(&store, "Vera").await;
    let (g1, done) = open_desk(&store, v1).await;
    assert!(done.changed && done.groups.is_empty());
    assert_eq!(done.row.as_ref().unwrap().state, DeskState::Queued);
    db.execute(
        "UPDATE conversations SET last_seq = 3 WHERE id = $1",
        &[&g1.0],
    )
    .await
    .unwrap();
    // Leases for ann, bob, dave (away) and eve (no agent); carol has none.
    let done = seen(&store, &[ann, bob, dave, eve]).await;
    assert!(done.changed);
    assert_eq!(
        moves(&done),
        vec![(g1, ann, true)],
        "ann: lowest id on a tie"
    );
    let change = &done.groups[0];
    assert_eq!(change.joined, Some((ann, 3)));
    assert_eq!(change.summary.name, "Support: Vera");
    assert_eq!(change.summary.owner_id, UserId(0));
    assert!(!change.summary.public);
    let mut both = vec![v1, ann];
    both.sort();
    assert_eq!(*change.members, both);
    // ann reads the whole conversation and is delivered what follows.
    let (rows, version) = members(&db, g1).await;
    let expected = |visitor: UserId, agent: UserId, last: i64| {
        let mut m = vec![(visitor.0, 0, 0, 0), (agent.0, 0, last, last)];
        m.sort();
        m
    };
    assert_eq!(rows, expected(v1, ann, 3));
    assert_eq!(version, 2, "created, then assigned: two bumps");

    // The least busy next: bob, then ann again (a tie), then bob.
    let mut got = Vec::new();
    for name in ["v2", "v3", "v4"] {
        let v = visitor(&store, name).await;
        let (g, done) = open_desk(&store, v).await;
        let m = moves(&done);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].0, g);
        assert_eq!(done.groups[0].joined, Some((m[0].1, 0)));
        assert_eq!(members(&db, g).await.0, expected(v, m[0].1, 0));
        got.push(m[0].1);
    }
    assert_eq!(got, vec![bob, ann, bob]);

    // Opening again resumes the conversation not closed.
    let done = desk(&store, DeskOp::Open { visitor: v1 }).await;
    assert_eq!(done.row.as_ref().unwrap().group, g1);
    assert_eq!(done.row.as_ref().unwrap().agent, Some(ann));
    assert!(done.groups.is_empty() && !done.changed);

    let snap = store.desk_snapshot(now_ms()).await.unwrap();
    assert!(snap.queue.is_empty());
    assert_eq!(snap.open.len(), 4);
    assert_eq!(snap.open[0].name, "Vera");
    let agents: Vec<_> = snap
        .agents
        .iter()
        .map(|a| (a.user_id, a.online, a.available, a.open, a.capacity))
        .collect();
    assert_eq!(
        agents,
        vec![
            (ann, true, true, 2, 5),
            (bob, true, true, 2, 5),
            (carol, false, true, 0, 5),
            (dave, true, false, 0, 5),
        ]
    );
    let row = store.desk_row(g1).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.agent, row.visitor),
        (DeskState::Open, Some(ann), v1)
    );
    assert!(store.desk_row(GroupId(999_999)).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_queue_order_transfers_sweeps_and_closes() {
    let url = database().await;
    let store = open(&url).await;
    let db = sql(&url).await;
    let (ann, bob) = (agent(&store, "ann").await, agent(&store, "bob").await);
    capacity(&store, ann, 1).await;
    capacity(&store, bob, 1).await;
    seen(&store, &[ann]).await;
    let mut vs = Vec::new();
    let mut gs = Vec::new();
    for name in ["v1", "v2", "v3"] {
        let v = visitor(&store, name).await;
        vs.push(v);
        gs.push(open_desk(&store, v).await.0);
    }
    let snap = store.desk_snapshot(now_ms()).await.unwrap();
    let ids = |e: &[shared::desk::DeskEntry]| e.iter().map(|e| e.group_id).collect::<Vec<_>>();
    assert_eq!(
        ids(&snap.queue),
        vec![gs[1], gs[2]],
        "capacity 1: the rest wait"
    );
    assert_eq!(ids(&snap.open), vec![gs[0]]);

    // Refusals change nothing.
    let refused = [
        DeskOp::Transfer {
            group: gs[0],
            by: bob,
            to: None,
        },
        DeskOp::Transfer {
            group: gs[0],
            by: ann,
            to: Some(bob),
        }, // bob not leased
        DeskOp::Transfer {
            group: gs[1],
            by: ann,
            to: None,
        }, // queued
        DeskOp::Close {
            group: gs[0],
            by: vs[1],
        },
    ];
    for op in refused {
        let r = store.desk(op.clone()).await;
        assert!(matches!(r, Err(Error::Forbidden(_))), "{op:?}: {r:?}");
    }
    let g = group(&store, ann, &[]).await; // not a desk conversation
    for op in [
        DeskOp::Close { group: g, by: ann },
        DeskOp::Transfer {
            group: g,
            by: ann,
            to: None,
        },
    ] {
        let r = store.desk(op).await;
        assert!(matches!(r, Err(Error::NoSuchGroup)), "{r:?}");
    }

    // bob's lease: he gets the oldest queued one.
    let done = seen(&store, &[bob]).await;
    assert_eq!(moves(&done), vec![(gs[1], bob, true)]);
    // Back to the queue with nobody else to take it: it goes to the front,
    // and so back to ann, the only one with room.
    let done = desk(
        &store,
        DeskOp::Transfer {
            group: gs[0],
            by: ann,
            to: None,
        },
    )
    .await;
    assert_eq!(moves(&done), vec![(gs[0], ann, false), (gs[0], ann, true)]);
    assert_eq!(done.groups[0].former, vec![ann]);
    assert!(!done.groups[0].members.contains(&ann));
    // More room: the next one.
    capacity(&store, ann, 2).await;
    assert_eq!(
        store.desk_row(gs[2]).await.unwrap().unwrap().agent,
        Some(ann)
    );
    capacity(&store, bob, 2).await;
    // Back to the queue prefers another agent with room.
    let done = desk(
        &store,
        DeskOp::Transfer {
            group: gs[0],
            by: ann,
            to: None,
        },
    )
    .await;
    assert_eq!(moves(&done), vec![(gs[0], ann, false), (gs[0], bob, true)]);
    // Handed to a named agent with room, and back.
    let done = desk(
        &store,
        DeskOp::Transfer {
            group: gs[0],
            by: bob,
            to: Some(ann),
        },
    )
    .await;
    assert_eq!(moves(&done), vec![(gs[0], bob, false), (gs[0], ann, true)]);
    let done = desk(
        &store,
        DeskOp::Transfer {
            group: gs[0],
            by: ann,
            to: Some(bob),
        },
    )
    .await;
    assert_eq!(moves(&done), vec![(gs[0], ann, false), (gs[0], bob, true)]);
    // To an agent at capacity: refused, rolled back.
    let r = store
        .desk(DeskOp::Transfer {
            group: gs[2],
            by: ann,
            to: Some(bob),
        })
        .await;
    assert!(matches!(r, Err(Error::Forbidden(_))), "{r:?}");
    assert_eq!(
        store.desk_row(gs[2]).await.unwrap().unwrap().agent,
        Some(ann)
    );

    // ann's lease lapses: her conversation goes back to the front.
    db.execute(
        "UPDATE desk_agents SET seen_until = 1 WHERE user_id = $1",
        &[&ann.0],
    )
    .await
    .unwrap();
    let queued_at = store.desk_row(gs[2]).await.unwrap().unwrap().queued_at;
    let v4 = visitor(&store, "v4").await;
    let (g4, _) = open_desk(&store, v4).await;
    let done = desk(&store, DeskOp::Sweep).await;
    assert_eq!(moves(&done), vec![(gs[2], ann, false)]);
    assert_eq!(members(&db, gs[2]).await.0.len(), 1, "only the visitor");
    let snap = store.desk_snapshot(now_ms()).await.unwrap();
    assert_eq!(ids(&snap.queue), vec![gs[2], g4], "kept its place");
    assert_eq!(snap.queue[0].queued_at, queued_at);
    assert!(!snap.agents[0].online);

    // The visitor closes: bob keeps the conversation's membership, and
    // his room goes to the front of the queue.
    let done = desk(
        &store,
        DeskOp::Close {
            group: gs[0],
            by: vs[0],
        },
    )
    .await;
    assert_eq!(moves(&done), vec![(gs[2], bob, true)]);
    let closed = store.desk_row(gs[0]).await.unwrap().unwrap();
    assert_eq!((closed.state, closed.agent), (DeskState::Closed, Some(bob)));
    assert!(members(&db, gs[0]).await.0.iter().any(|m| m.0 == bob.0));
    let done = desk(
        &store,
        DeskOp::Close {
            group: gs[0],
            by: bob,
        },
    )
    .await;
    assert!(!done.changed && done.groups.is_empty());
    let snap = store.desk_snapshot(now_ms()).await.unwrap();
    assert_eq!(ids(&snap.queue), vec![g4]);
    assert_eq!(ids(&snap.open), vec![gs[1], gs[2]]);
    // A visitor whose conversation closed starts a new one.
    let (again, _) = open_desk(&store, vs[0]).await;
    assert_ne!(again, gs[0]);
}

/// Everything about the desk's rows that must hold whatever raced: each
/// agent within capacity, no conversation waiting while a leased agent
/// has room, `members` exactly the visitor and the agent (kept once
/// closed). Returns the open conversations by agent.
async fn check(db: &tokio_postgres::Client, caps: &HashMap<i64, i64>) -> BTreeMap<i64, Vec<i64>> {
    let rows = db
        .query(
            "SELECT d.group_id, d.visitor_id, d.agent_id, d.state,
                    array(SELECT user_id FROM members m WHERE m.conv_id = d.group_id
                          ORDER BY user_id)
             FROM desk_conversations d",
            &[],
        )
        .await
        .unwrap();
    let (mut by_agent, mut queued) = (BTreeMap::<i64, Vec<i64>>::new(), 0);
    let mut visitors = HashSet::new();
    for r in &rows {
        let (g, v, a, state): (i64, i64, Option<i64>, i16) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let members: Vec<i64> = r.get(4);
        let mut expected = vec![v];
        match state {
            0 => {
                assert_eq!(a, None);
                queued += 1;
                assert!(visitors.insert(v), "visitor {v}: two conversations");
            }
            _ => {
                expected.push(a.expect("an agent"));
                if state == 1 {
                    by_agent.entry(a.unwrap()).or_default().push(g);
                    assert!(visitors.insert(v), "visitor {v}: two conversations");
                }
            }
        }
        expected.sort();
        assert_eq!(members, expected, "members of {g} (state {state})");
    }
    for (a, gs) in &by_agent {
        assert!(
            gs.len() as i64 <= caps[a],
            "agent {a} over capacity: {gs:?}"
        );
    }
    let open: i64 = by_agent.values().map(|g| g.len() as i64).sum();
    let room: i64 = caps.values().sum::<i64>() - open;
    assert!(
        queued == 0 || room == 0,
        "{queued} waiting, room for {room}"
    );
    by_agent
}

/// Two relays, 40 visitors at once and 6 agents of capacity 1 (leases renewed and
/// queues swept through both at the same time): 6 conversations open,
/// each with one agent, and the rest queued; then the agents close theirs
/// while more visitors arrive, and the freed room goes to exactly as many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_racing_never_assign_twice_nor_over_capacity() {
    let url = database().await;
    let one = Arc::new(open(&url).await);
    let two = Arc::new(open(&url).await);
    let db = sql(&url).await;
    let mut agents = Vec::new();
    for i in 0..6 {
        let a = agent(&one, &format!("agent{i}")).await;
        capacity(&one, a, 1).await;
        agents.push(a);
    }
    let caps: HashMap<i64, i64> = agents.iter().map(|a| (a.0, 1)).collect();
    let mut visitors = Vec::new();
    for i in 0..55 {
        visitors.push(visitor(&one, &format!("v{i}")).await);
    }
    let relay = |i: usize| {
        if i.is_multiple_of(2) {
            one.clone()
        } else {
            two.clone()
        }
    };
    let run = |ops: Vec<(usize, DeskOp)>| {
        let tasks: Vec<_> = ops
            .into_iter()
            .map(|(i, op)| {
                let store = relay(i);
                tokio::spawn(async move { store.desk(op).await })
            })
            .collect();
        async move {
            let mut done = Vec::new();
            for t in tasks {
                done.push(t.await.unwrap().expect("every change succeeds"));
            }
            done
        }
    };

    // Round one: every agent leased, then 40 visitors at once through both
    // relays, with leases renewed and sweeps meanwhile.
    seen(&one, &agents).await;
    let mut ops = Vec::new();
    for (i, v) in visitors[..40].iter().enumerate() {
        ops.push((i, DeskOp::Open { visitor: *v }));
        if i % 5 == 2 {
            let (agents, until) = (agents.clone(), lease());
            ops.push((i + 1, DeskOp::Seen { agents, until }));
        }
        if i % 9 == 4 {
            ops.push((i, DeskOp::Sweep));
        }
    }
    let done = run(ops).await;
    let mut added: HashMap<GroupId, Vec<UserId>> = HashMap::new();
    for d in &done {
        for (g, a, add) in moves(d) {
            assert!(add, "nothing taken back in round one");
            added.entry(g).or_default().push(a);
        }
    }
    assert!(
        added.values().all(|a| a.len() == 1),
        "assigned twice: {added:?}"
    );
    let open = check(&db, &caps).await;
    assert_eq!(open.len(), 6, "every agent has one: {open:?}");
    let announced: HashMap<GroupId, UserId> = added.iter().map(|(g, a)| (*g, a[0])).collect();
    for (a, gs) in &open {
        assert_eq!(
            announced[&GroupId(gs[0])],
            UserId(*a),
            "announced as stored"
        );
    }
    assert_eq!(announced.len(), 6);

    // Round two: every agent closes theirs while 10 more visitors arrive.
    let mut ops = Vec::new();
    for (i, (a, gs)) in open.iter().enumerate() {
        let op = DeskOp::Close {
            group: GroupId(gs[0]),
            by: UserId(*a),
        };
        ops.push((i, op));
        ops.push((
            i + 1,
            DeskOp::Open {
                visitor: visitors[40 + i],
            },
        ));
        ops.push((i, DeskOp::Sweep));
    }
    for (i, v) in visitors[46..].iter().enumerate() {
        ops.push((i, DeskOp::Open { visitor: *v }));
    }
    let done = run(ops).await;
    let mut taken = HashMap::new();
    for d in &done {
        for (g, a, add) in moves(d) {
            assert!(add);
            assert!(taken.insert(g, a).is_none(), "{g:?} assigned twice");
        }
    }
    let after = check(&db, &caps).await;
    assert_eq!(after.len(), 6);
    assert_eq!(taken.len(), 6, "each freed room taken once: {taken:?}");
    // Round three: two more agents (their rows there, no lease yet) get
    // their lease through each relay while five more visitors arrive: a
    // lease and a queued conversation committed at the same moment still
    // meet, so nobody waits beside an agent with room.
    let mut more = Vec::new();
    for i in 0..2 {
        let a = agent(&one, &format!("late{i}")).await;
        capacity(&two, a, 1).await;
        more.push(a);
    }
    let mut ops = Vec::new();
    for (i, v) in visitors[50..].iter().enumerate() {
        ops.push((i, DeskOp::Open { visitor: *v }));
        if i < 2 {
            let (agents, until) = (vec![more[i]], lease());
            ops.push((i, DeskOp::Seen { agents, until }));
        }
    }
    let done = run(ops).await;
    let taken: Vec<_> = done.iter().flat_map(moves).collect();
    assert_eq!(taken.len(), 2, "{taken:?}");
    let mut caps = caps;
    caps.extend(more.iter().map(|a| (a.0, 1)));
    assert_eq!(check(&db, &caps).await.len(), 8);
    let snap = two.desk_snapshot(now_ms()).await.unwrap();
    assert_eq!((snap.open.len(), snap.queue.len()), (8, 55 - 6 - 8));
    assert!(snap.agents.iter().all(|a| a.online && a.open == 1));
}
