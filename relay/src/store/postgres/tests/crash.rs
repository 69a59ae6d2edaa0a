//! PostgreSQL crashing under the store: nothing answered as stored is
//! lost, nothing refused was stored, and the store comes back by itself.

use super::*;

/// A private server (this test crashes it), with a store on it and two
/// users.
async fn crashable() -> (
    tempfile::TempDir,
    services::Postgres,
    PostgresStore,
    UserId,
    UserId,
) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pg");
    let pg = tokio::task::spawn_blocking(move || services::Postgres::start(root))
        .await
        .unwrap()
        .expect("a private PostgreSQL");
    let store = open(&pg.url(services::postgres::DATABASE)).await;
    let (a, b) = (user(&store, "alice").await, user(&store, "bob").await);
    (dir, pg, store, a, b)
}

async fn kill(mut pg: services::Postgres) -> services::Postgres {
    tokio::task::spawn_blocking(move || pg.kill().map(|()| pg))
        .await
        .unwrap()
        .expect("PostgreSQL killed")
}

async fn start_again(mut pg: services::Postgres) -> services::Postgres {
    tokio::task::spawn_blocking(move || pg.start_again().map(|()| pg))
        .await
        .unwrap()
        .expect("PostgreSQL back")
}

/// Sends `c` until it is answered with something other than
/// `storage_unavailable` (the store reconnecting), within the deadline.
async fn until_through(store: &PostgresStore, c: NewChat) -> ChatOutcome {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match send(store, c.clone()).await.await {
            Ok(outcome) => return outcome,
            Err(Error::Unavailable(e)) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never reconnected: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// While PostgreSQL is down, chats, reads and group changes are answered
/// `storage_unavailable` (never as stored); once it is back the store
/// reconnects by itself, and everything answered as stored is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_is_down_chats_are_refused_and_the_store_reconnects() {
    let (_dir, pg, store, a, b) = crashable().await;
    let mut answered = Vec::new();
    for i in 0..20 {
        let c = chat(a, Target::User(b), &format!("before{i}"), "x");
        answered.push(stored(send(&store, c).await.await));
    }
    let conv = answered[0].msg.conv;

    let pg = kill(pg).await;
    for i in 0..5 {
        match send(&store, chat(a, Target::User(b), &format!("down{i}"), "y"))
            .await
            .await
        {
            Err(e @ Error::Unavailable(_)) => {
                assert_eq!(e.code(), shared::ErrorCode::StorageUnavailable);
            }
            other => panic!("a chat while PostgreSQL is down: {other:?}"),
        }
    }
    assert!(matches!(
        store.positions(a).await,
        Err(Error::Unavailable(_))
    ));
    let create = GroupOp::Create {
        owner: a,
        name: "x".into(),
        public: false,
    };
    assert!(matches!(
        store.change_group(create).await,
        Err(Error::Unavailable(_))
    ));

    let pg = start_again(pg).await;
    // Refused while down means not stored: the resend is new, not a
    // duplicate, and takes the next seq.
    let back = match until_through(&store, chat(a, Target::User(b), "down0", "y")).await {
        ChatOutcome::Stored(p) => p,
        other => panic!("a chat refused while down was stored: {other:?}"),
    };
    assert_eq!(back.msg.seq, 21);
    let seqs = seqs_of(&store, b, conv).await;
    assert_eq!(
        seqs,
        (1..=21).collect::<Vec<_>>(),
        "everything answered is there"
    );
    for p in &answered {
        let key = p.msg.client_msg_id.as_deref().unwrap();
        let r = send(&store, chat(a, Target::User(b), key, "x"))
            .await
            .await
            .unwrap();
        assert_eq!(original(&r).msg_id, p.msg.msg_id);
    }
    store.close().await.unwrap();
    drop(pg);
}

/// PostgreSQL killed in the middle of a stream of chats, commits in
/// flight: every chat answered as stored survives; every one answered
/// `storage_unavailable`, resent with its key once the server is back, is
/// stored once (new, or the original if its commit made it after all);
/// and the conversation is one gap-free sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_of_a_stream_loses_nothing_answered() {
    let (_dir, pg, store, a, b) = crashable().await;
    let store: &'static PostgresStore = Box::leak(Box::new(store));
    let stored_so_far = Arc::new(AtomicU32::new(0));
    let refused_so_far = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = {
        let (stored_so_far, refused_so_far, stop) =
            (stored_so_far.clone(), refused_so_far.clone(), stop.clone());
        tokio::spawn(async move {
            // Ten in flight at a time, until told to stop.
            let mut outcomes = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut window = Vec::new();
                for _ in 0..10 {
                    let key = format!("s{i}");
                    i += 1;
                    window.push((
                        key.clone(),
                        send(store, chat(a, Target::User(b), &key, "s")).await,
                    ));
                }
                for (key, answer) in window {
                    let r = answer.await;
                    match &r {
                        Ok(_) => stored_so_far.fetch_add(1, Ordering::Relaxed),
                        Err(_) => refused_so_far.fetch_add(1, Ordering::Relaxed),
                    };
                    outcomes.push((key, r));
                }
            }
            outcomes
        })
    };
    let wait_for = |counter: Arc<AtomicU32>, at_least: u32, what: &'static str| async move {
        let deadline = tokio::time::Instant::now() + WAIT;
        while counter.load(Ordering::Relaxed) < at_least {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    wait_for(stored_so_far.clone(), 100, "chats stored before the crash").await;
    let pg = kill(pg).await;
    wait_for(refused_so_far.clone(), 20, "chats refused after the crash").await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = stream.await.unwrap();
    let pg = start_again(pg).await;

    let mut by_key = std::collections::HashMap::new();
    for (key, r) in outcomes {
        match r {
            Ok(ChatOutcome::Stored(p)) => {
                by_key.insert(key, p.msg.msg_id);
            }
            Err(Error::Unavailable(_)) => {
                let again = until_through(store, chat(a, Target::User(b), &key, "s")).await;
                by_key.insert(key, original(&again).msg_id);
            }
            other => panic!("{key}: {other:?}"),
        }
    }
    // Every key is one message, and the messages are 1..=n without gaps.
    let conv = store
        .membership(a, Target::User(b))
        .await
        .unwrap()
        .expect("their conversation")
        .conv;
    let (page, _) = store.messages(a, conv, 0, u64::MAX, 100_000).await.unwrap();
    let seqs: Vec<u64> = page.iter().rev().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=by_key.len() as u64).collect::<Vec<_>>());
    let ids: BTreeSet<_> = page.iter().map(|m| m.msg_id).collect();
    let answered: BTreeSet<_> = by_key.values().copied().collect();
    assert_eq!(ids, answered, "each key is exactly one stored message");
    store.close().await.unwrap();
    drop(pg);
}
