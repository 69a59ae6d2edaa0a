//! The backend against real PostgreSQL servers (`services::Postgres`):
//! two stores on one database stand for two relays of a cluster. Nothing
//! waits for a fixed time: a test waits for a condition, with a deadline.

mod crash;
mod desk;

use super::PostgresStore;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::rules::group::GroupOp;
use crate::store::{answer, Answer, ChatOutcome, NewChat, Original, Placed, Store};
use shared::{Content, GroupId, Target, UserId};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(30);

/// A fresh database on this test process's shared server.
async fn database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "backend_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    tokio::task::spawn_blocking(move || services::Postgres::shared().create_database(&name))
        .await
        .unwrap()
        .expect("a test database")
}

async fn open(url: &str) -> PostgresStore {
    PostgresStore::open(url, 8, Arc::new(Metrics::default()))
        .await
        .expect("the store opens")
}

async fn user(store: &PostgresStore, name: &str) -> UserId {
    store.create_user(name.into(), "hash".into()).await.unwrap()
}

fn chat(from: UserId, to: Target, key: &str, body: &str) -> NewChat {
    NewChat {
        received: Instant::now(),
        from,
        from_name: Arc::from(format!("u{}", from.0)),
        to,
        client_msg_id: Some(key.to_string()),
        content: Content::text(body),
    }
}

/// Queues a chat and returns its answer, to await later.
async fn send(store: &PostgresStore, c: NewChat) -> Answer<ChatOutcome> {
    let (reply, answer) = answer();
    store.submit_chat(c, reply).await;
    answer
}

fn stored(outcome: crate::error::Result<ChatOutcome>) -> Placed {
    match outcome {
        Ok(ChatOutcome::Stored(p)) => p,
        other => panic!("expected a stored chat, got {other:?}"),
    }
}

fn original(outcome: &ChatOutcome) -> Original {
    match outcome {
        ChatOutcome::Stored(p) => Original {
            msg_id: p.msg.msg_id,
            ts: p.msg.ts,
            seq: p.msg.seq,
        },
        ChatOutcome::Duplicate(o) => *o,
    }
}

/// A group owned by `owner` with `members` added.
async fn group(store: &PostgresStore, owner: UserId, members: &[&str]) -> GroupId {
    let created = store
        .change_group(GroupOp::Create {
            owner,
            name: "g".into(),
            public: true,
        })
        .await
        .unwrap();
    for m in members {
        store
            .change_group(GroupOp::Add {
                group: created.group,
                actor: owner,
                username: m.to_string(),
            })
            .await
            .unwrap();
    }
    created.group
}

/// The `seq`s stored in a conversation, in order, read through the store.
async fn seqs_of(store: &PostgresStore, viewer: UserId, conv: i64) -> Vec<u64> {
    let (page, _) = store
        .messages(viewer, conv, 0, u64::MAX, 10_000)
        .await
        .unwrap();
    page.iter().rev().map(|m| m.seq).collect()
}

/// Two relays writing into one group at the same moment make one
/// sequence: no gaps, no `seq` twice, each sender's chats in the order
/// they were sent, every message with the group's members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_writing_into_one_group_make_one_gap_free_sequence() {
    let url = database().await;
    let (one, two) = (open(&url).await, open(&url).await);
    let (a, b) = (user(&one, "alice").await, user(&two, "bob").await);
    let g = group(&one, a, &["bob"]).await;
    let n = 400;
    let (from_one, from_two) = tokio::join!(
        async {
            let mut answers = Vec::new();
            for i in 0..n {
                answers.push(send(&one, chat(a, Target::Group(g), &format!("a{i}"), "x")).await);
            }
            answers
        },
        async {
            let mut answers = Vec::new();
            for i in 0..n {
                answers.push(send(&two, chat(b, Target::Group(g), &format!("b{i}"), "y")).await);
            }
            answers
        }
    );
    let mut all = BTreeSet::new();
    let mut batches = Vec::new();
    for answers in [from_one, from_two] {
        let mut last = 0;
        for answer in answers {
            let p = stored(answer.await);
            assert!(p.msg.seq > last, "a sender's chats are stored in order");
            last = p.msg.seq;
            assert_eq!(p.members.as_deref(), Some(&vec![a.min(b), a.max(b)]));
            assert!(all.insert(p.msg.seq), "seq {} twice", p.msg.seq);
            batches.push(p.batch);
        }
    }
    assert_eq!(all, (1..=2 * n as u64).collect(), "one gap-free sequence");
    assert!(batches.iter().any(|b| *b > 1), "chats shared transactions");
    assert_eq!(
        seqs_of(&two, b, g.0).await,
        (1..=2 * n as u64).collect::<Vec<_>>()
    );
}

/// A key sent through one relay and resent through another is one
/// message; the same keys sent through both at the same moment are stored
/// once each, and no resend burns a `seq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_stored_once_whichever_relays_it_goes_through() {
    let url = database().await;
    let (one, two) = (open(&url).await, open(&url).await);
    let (a, b) = (user(&one, "alice").await, user(&one, "bob").await);
    let first = stored(
        send(&one, chat(a, Target::User(b), "k", "hello"))
            .await
            .await,
    );
    let again = send(&two, chat(a, Target::User(b), "k", "hello"))
        .await
        .await;
    assert!(
        matches!(again, Ok(ChatOutcome::Duplicate(o)) if o == original(&ChatOutcome::Stored(first.clone()))),
        "{again:?}"
    );
    // The same 200 keys through both relays at once.
    let n = 200;
    let (via_one, via_two) = tokio::join!(
        async {
            let mut answers = Vec::new();
            for i in 0..n {
                answers.push(send(&one, chat(a, Target::User(b), &format!("r{i}"), "r")).await);
            }
            answers
        },
        async {
            let mut answers = Vec::new();
            for i in 0..n {
                answers.push(send(&two, chat(a, Target::User(b), &format!("r{i}"), "r")).await);
            }
            answers
        }
    );
    let mut seqs = BTreeSet::new();
    for (x, y) in via_one.into_iter().zip(via_two) {
        let (x, y) = (x.await.unwrap(), y.await.unwrap());
        assert_eq!(original(&x), original(&y), "one message per key");
        let fresh = [&x, &y]
            .iter()
            .filter(|o| matches!(o, ChatOutcome::Stored(_)))
            .count();
        assert_eq!(fresh, 1, "stored once: {x:?} {y:?}");
        seqs.insert(original(&x).seq);
    }
    assert_eq!(
        seqs,
        (2..=n as u64 + 1).collect(),
        "no seq burned by a resend"
    );
    let conv = first.msg.conv;
    assert_eq!(
        seqs_of(&one, b, conv).await,
        (1..=n as u64 + 1).collect::<Vec<_>>()
    );
}

/// The first messages of a pair, sent through two relays at once, meet in
/// one conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_that_starts_talking_through_two_relays_gets_one_conversation() {
    let url = database().await;
    let (one, two) = (open(&url).await, open(&url).await);
    let (a, b) = (user(&one, "alice").await, user(&one, "bob").await);
    for round in 0..5 {
        let c = user(&one, &format!("carol{round}")).await;
        let (x, y) = tokio::join!(
            async {
                send(
                    &one,
                    chat(a, Target::User(c), &format!("first{round}"), "hi"),
                )
                .await
                .await
            },
            async {
                send(&two, chat(c, Target::User(a), "first", "hi"))
                    .await
                    .await
            }
        );
        let (x, y) = (stored(x), stored(y));
        assert_eq!(x.msg.conv, y.msg.conv, "one conversation per pair");
        let mut s = [x.msg.seq, y.msg.seq];
        s.sort();
        assert_eq!(s, [1, 2]);
    }
    // Oneself and nobody are refused, and create nothing.
    let r = send(&one, chat(a, Target::User(a), "me", "me")).await.await;
    assert!(matches!(r, Err(Error::UnknownRecipient)), "{r:?}");
    let r = send(&two, chat(a, Target::User(UserId(999_999)), "no", "no"))
        .await
        .await;
    assert!(matches!(r, Err(Error::UnknownRecipient)), "{r:?}");
    assert!(one.membership(a, Target::User(b)).await.unwrap().is_none());
}

/// Several relays starting at once on a new database: one migrates, the
/// others wait for it; all of them work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_starting_at_once_migrate_the_database_once() {
    let url = database().await;
    let stores = futures_util::future::join_all((0..4).map(|_| open(&url))).await;
    for (i, s) in stores.iter().enumerate() {
        user(s, &format!("user{i}")).await;
    }
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let version: i32 = client
        .query_one("SELECT version FROM schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version as usize, super::schema::MIGRATIONS.len());
    // A relay started later finds nothing to do.
    open(&url).await;
}

/// The idempotency lookup runs once per transaction: its plan must probe
/// the index per key even when it was made on a fresh, empty, never
/// analyzed `messages` table (a generic plan, as prepared statements get),
/// never scan the table, which grows with every message stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_lookup_never_scans_the_messages_table() {
    let url = database().await;
    open(&url).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan;
             PREPARE keys(int8[], text[]) AS {};",
            super::facts::KEYS
        ))
        .await
        .unwrap();
    let plan: Vec<String> = client
        .query("EXPLAIN EXECUTE keys('{1,2}', '{a,b}')", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(!plan.contains("Seq Scan on messages"), "{plan}");
    assert!(plan.contains("messages_idempotency"), "{plan}");
}

/// A member added while two relays post into the group gets exactly what
/// comes after the `seq` they joined at; a member removed meanwhile got a
/// prefix of it and can post no more. Every message names exactly its
/// members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_changes_split_chats_from_two_relays_by_seq() {
    let url = database().await;
    let (one, two) = (open(&url).await, open(&url).await);
    let (a, b, c) = (
        user(&one, "alice").await,
        user(&one, "bob").await,
        user(&one, "carol").await,
    );
    let g = group(&one, a, &["bob"]).await;
    let three = open(&url).await;
    let n = 300;
    // Each relay streams its chats ten at a time (each ten waits for the
    // ten before), so they spread over many transactions.
    let stream = |store: &'static PostgresStore, from: UserId, tag: &'static str| async move {
        let (mut results, mut pending) = (Vec::new(), Vec::new());
        for i in 0..n {
            let key = format!("{tag}{i}");
            pending.push(send(store, chat(from, Target::Group(g), &key, tag)).await);
            if i % 10 == 9 {
                results.extend(futures_util::future::join_all(pending.drain(..)).await);
            }
        }
        results.extend(futures_util::future::join_all(pending).await);
        results
    };
    let (one, two): (&'static PostgresStore, &'static PostgresStore) =
        (Box::leak(Box::new(one)), Box::leak(Box::new(two)));
    // A third relay changes the group while the two others stream, once
    // some of their chats are in.
    let changes = async {
        let probe = send(two, chat(b, Target::Group(g), "probe", "probe")).await;
        let probe = stored(probe.await);
        let added = three
            .change_group(GroupOp::Add {
                group: g,
                actor: a,
                username: "carol".into(),
            })
            .await
            .unwrap();
        let removed = three
            .change_group(GroupOp::Remove {
                group: g,
                actor: a,
                user: b,
            })
            .await
            .unwrap();
        (added, removed, probe)
    };
    let (from_a, from_b, (added, removed, probe)) =
        tokio::join!(stream(one, a, "a"), stream(two, b, "b"), changes);
    let joined = added.joined.expect("carol joined").1;
    assert!(!removed.members.contains(&b));
    let mut placed = vec![probe];
    for answer in from_a {
        placed.push(stored(answer));
    }
    let mut refused = 0;
    for answer in from_b {
        match answer {
            // Bob's chats: stored until he was removed, refused after.
            Ok(ChatOutcome::Stored(p)) if refused == 0 => placed.push(p),
            Err(Error::NotMember) => refused += 1,
            other => panic!("{other:?} after {refused} refusals"),
        }
    }
    placed.sort_by_key(|p| p.msg.seq);
    let seqs: Vec<u64> = placed.iter().map(|p| p.msg.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let with_b: Vec<u64> = placed
        .iter()
        .filter(|p| p.members.as_ref().unwrap().contains(&b))
        .map(|p| p.msg.seq)
        .collect();
    let last_b = with_b.last().copied().unwrap_or(0);
    assert_eq!(with_b, (1..=last_b).collect::<Vec<_>>(), "bob got a prefix");
    for p in &placed {
        let members = p.members.as_ref().unwrap();
        assert_eq!(
            members.contains(&c),
            p.msg.seq > joined,
            "carol at seq {}",
            p.msg.seq
        );
        if p.msg.from == b {
            assert!(p.msg.seq <= last_b, "bob posted after he was removed");
        }
    }
    assert!(
        joined > 0 && joined < seqs.len() as u64,
        "carol joined at {joined}, inside the stream of {}",
        seqs.len()
    );

    // History agrees: carol reads what came after her join.
    let history = seqs_of(one, c, g.0).await;
    let m = one.membership(c, Target::Group(g)).await.unwrap().unwrap();
    assert_eq!(m.joined, joined);
    assert_eq!(
        history.iter().filter(|s| **s > joined).count(),
        (seqs.len() as u64 - joined) as usize
    );
}
