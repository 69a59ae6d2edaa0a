//! The hub in a cluster, without a network: what it publishes, and what
//! it does with what other relays publish (each event through its JSON
//! form, as Redis carries it).

use super::tests::{at, hub, login, msg, placed, ALICE, BOB, PAIR};
use super::*;
use shared::{GroupId, ServerFrame};
use std::time::Instant;

/// A cluster link that keeps what it is given, behind when told so.
#[derive(Default)]
struct Recorder(
    Mutex<Vec<Remote>>,
    std::sync::atomic::AtomicBool,
    tokio::sync::Notify,
);

impl Peers for Recorder {
    fn publish(&self, event: Remote) {
        self.0.lock().push(event);
    }

    fn congested(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn drained(&self) -> &tokio::sync::Notify {
        &self.2
    }
}

fn linked() -> (Arc<Hub>, Arc<Recorder>) {
    let hub = hub(100);
    let rec = Arc::new(Recorder::default());
    hub.link(rec.clone());
    (hub, rec)
}

/// What another relay receives: the event after a trip through JSON.
fn wire(e: &Remote) -> Remote {
    serde_json::from_str(&serde_json::to_string(e).unwrap()).unwrap()
}

fn node(name: &str) -> Arc<str> {
    name.into()
}

/// `(user, online)` of every presence frame queued to a tab.
fn presence(rx: &mut tokio::sync::mpsc::Receiver<Utf8Bytes>) -> Vec<(UserId, bool)> {
    let mut out = Vec::new();
    while let Ok(f) = rx.try_recv() {
        if let Ok(ServerFrame::Presence {
            user_id, online, ..
        }) = ServerFrame::decode(&f)
        {
            out.push((user_id, online));
        }
    }
    out
}

const CAROL: UserId = UserId(3);

#[test]
fn a_group_chat_is_published_once_whatever_the_number_of_recipients() {
    let (hub, rec) = linked();
    let _bob = login(&hub, BOB, &[at(77, 0)], false);
    let mut m = placed(msg(77, 1, ALICE));
    m.members = Some(Arc::new(vec![ALICE, BOB, CAROL, UserId(4), UserId(5)]));
    hub.fanout(&m, None);
    let events = rec.0.lock();
    let chats: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Remote::Chat { .. }))
        .collect();
    assert_eq!(chats.len(), 1);
    match wire(chats[0]) {
        Remote::Chat { conv, msg, members } => {
            assert_eq!((conv, msg.seq), (77, 1));
            assert_eq!(members.unwrap().len(), 5);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_chat_from_another_relay_reaches_the_recipient_and_the_senders_tabs_here() {
    let (sender_hub, rec) = linked();
    let here = hub(100);
    let mut bob = login(&here, BOB, &[at(PAIR, 0)], false);
    let mut alice_tab = login(&here, ALICE, &[at(PAIR, 0)], false);
    sender_hub.fanout(&placed(msg(PAIR, 1, ALICE)), None);
    let chat = rec
        .0
        .lock()
        .iter()
        .find(|e| matches!(e, Remote::Chat { .. }))
        .cloned()
        .unwrap();
    here.apply_remote(&node("a"), wire(&chat));
    assert_eq!(bob.pushed(), [(PAIR, 1)]);
    assert_eq!(alice_tab.pushed(), [(PAIR, 1)], "the sender's other tab");
    // Tracked like any push: bob's ack moves his cursor.
    match here.ack(BOB, msg(PAIR, 1, ALICE).msg_id) {
        AckOutcome::Acked { cursor, .. } => assert_eq!(cursor, Some(1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn presence_follows_the_user_across_relays() {
    let (hub, rec) = linked();
    let (h, mut bob_rx) = crate::socket::SocketHandle::new(hub.next_socket_id(), 64);
    let bob_ref = crate::store::UserRef {
        id: BOB,
        username: "bob".into(),
    };
    let alice_ref = crate::store::UserRef {
        id: ALICE,
        username: "alice".into(),
    };
    let (_reg, _) = hub.register(&bob_ref, h, [2; 32], std::slice::from_ref(&alice_ref));
    // Bob's login here was published, with his contacts.
    assert!(rec.0.lock().iter().any(|e| matches!(
        e,
        Remote::Presence { user, online: true, contacts, .. } if *user == BOB && contacts == &[ALICE]
    )));
    let online = |u| Remote::Presence {
        user: u,
        username: "alice".into(),
        online: true,
        contacts: vec![BOB],
    };
    let offline = |u| Remote::Presence {
        user: u,
        username: "alice".into(),
        online: false,
        contacts: vec![BOB],
    };
    // Alice opens a tab on relay a, then one on relay b: bob hears it once.
    hub.apply_remote(&node("a"), wire(&online(ALICE)));
    hub.apply_remote(&node("b"), wire(&online(ALICE)));
    assert_eq!(presence(&mut bob_rx), [(ALICE, true)]);
    assert!(hub.is_online(ALICE));
    assert_eq!(hub.online_contacts(BOB).unwrap()[0].username, "alice");
    // She leaves a: still online on b.
    hub.apply_remote(&node("a"), wire(&offline(ALICE)));
    assert_eq!(presence(&mut bob_rx), []);
    assert!(hub.is_online(ALICE));
    // Relay b dies: she is gone.
    hub.node_gone("b");
    assert_eq!(presence(&mut bob_rx), [(ALICE, false)]);
    assert!(!hub.is_online(ALICE));
}

#[test]
fn a_departure_is_published_after_the_grace_period_and_not_announced_if_online_elsewhere() {
    let (hub, rec) = linked();
    let mut carol = login(&hub, CAROL, &[], false);
    hub.befriend(CAROL, BOB);
    let bob = login(&hub, BOB, &[], false);
    presence(&mut carol.rx);
    // Bob also has a tab on relay a.
    hub.apply_remote(
        &node("a"),
        Remote::Presence {
            user: BOB,
            username: "u2".into(),
            online: true,
            contacts: vec![CAROL],
        },
    );
    drop(bob);
    hub.presence_tick(Instant::now() + Duration::from_secs(5));
    assert!(rec
        .0
        .lock()
        .iter()
        .any(|e| matches!(e, Remote::Presence { user, online: false, .. } if *user == BOB)));
    assert_eq!(
        presence(&mut carol.rx),
        [],
        "bob is still online on relay a"
    );
}

#[test]
fn a_lost_last_message_is_found_by_a_catch_up_and_pushed_once() {
    let hub = hub(100);
    let mut bob = login(&hub, BOB, &[at(PAIR, 4)], false);
    // The store says the conversation is at 6; nothing brought 5 and 6.
    let gaps = hub.tail_gaps(BOB, &[at(PAIR, 6)]);
    assert_eq!(gaps.len(), 1);
    let g = gaps[0];
    assert_eq!((g.conv, g.after, g.before), (PAIR, 4, 7));
    // Being fetched: a second catch-up does not report it again.
    assert!(hub.tail_gaps(BOB, &[at(PAIR, 6)]).is_empty());
    hub.fill_gap(g, Some(&[msg(PAIR, 5, ALICE), msg(PAIR, 6, ALICE)]));
    assert_eq!(bob.pushed(), [(PAIR, 5), (PAIR, 6)]);
    // The event for 6 arrives late after all: not pushed twice.
    hub.apply_remote(
        &node("a"),
        Remote::Chat {
            conv: PAIR,
            msg: msg(PAIR, 6, ALICE).message(),
            members: None,
        },
    );
    assert_eq!(bob.pushed(), []);
    assert!(hub.tail_gaps(BOB, &[at(PAIR, 6)]).is_empty());
}

#[test]
fn a_logout_on_another_relay_closes_that_tokens_sockets_here() {
    let hub = hub(100);
    let (h, _rx) = crate::socket::SocketHandle::new(hub.next_socket_id(), 8);
    let token = [9u8; 32];
    let me = crate::store::UserRef {
        id: BOB,
        username: "bob".into(),
    };
    let (_reg, _) = hub.register(&me, h.clone(), token, &[]);
    let other = login(&hub, BOB, &[], false);
    hub.apply_remote(
        &node("a"),
        wire(&Remote::Kick {
            user: BOB,
            token: crate::auth::token_hash_hex(&token),
            code: shared::close::LOGGED_OUT,
        }),
    );
    assert_eq!(h.killed_with(), Some(shared::close::LOGGED_OUT));
    drop(other);
}

#[test]
fn a_group_change_from_another_relay_reaches_members_here() {
    let (origin, rec) = linked();
    let here = hub(100);
    let mut bob = login(&here, BOB, &[], false);
    origin.group_changed(&crate::store::GroupChange {
        group: GroupId(77),
        summary: shared::api::GroupSummary {
            group_id: GroupId(77),
            name: "g".into(),
            owner_id: ALICE,
            public: true,
            member_count: 2,
        },
        events: vec![shared::GroupEvent {
            group_id: GroupId(77),
            kind: shared::GroupEventKind::MemberJoined,
            user_id: Some(BOB),
            username: Some("bob".into()),
            by_id: None,
            name: Some("g".into()),
        }],
        members: Arc::new(vec![ALICE, BOB]),
        former: vec![],
        joined: Some((BOB, 3)),
    });
    let event = rec
        .0
        .lock()
        .iter()
        .find(|e| matches!(e, Remote::Group(_)))
        .cloned()
        .unwrap();
    here.apply_remote(&node("a"), wire(&event));
    let mut got = Vec::new();
    while let Ok(f) = bob.rx.try_recv() {
        got.push(ServerFrame::decode(&f).unwrap());
    }
    assert!(
        got.iter().any(|f| matches!(f, ServerFrame::GroupEvent(_))),
        "{got:?}"
    );
    // He joined at 3: 3 is not his, 4 is.
    here.apply_remote(
        &node("a"),
        Remote::Chat {
            conv: 77,
            msg: msg(77, 3, ALICE).message(),
            members: Some(vec![ALICE, BOB]),
        },
    );
    here.apply_remote(
        &node("a"),
        Remote::Chat {
            conv: 77,
            msg: msg(77, 4, ALICE).message(),
            members: Some(vec![ALICE, BOB]),
        },
    );
    assert_eq!(bob.pushed(), [(77, 4)]);
}

#[test]
fn a_new_contact_online_on_another_relay_is_announced() {
    let hub = hub(100);
    hub.apply_remote(
        &node("b"),
        wire(&Remote::Presence {
            user: BOB,
            username: "bob".into(),
            online: true,
            contacts: vec![],
        }),
    );
    let mut alice = login(&hub, ALICE, &[], false);
    hub.new_pair(&placed(msg(PAIR, 1, ALICE)));
    assert_eq!(presence(&mut alice.rx), [(BOB, true)]);
}

#[test]
fn a_dead_relays_users_go_offline_for_contacts_made_after_their_login() {
    let hub = hub(100);
    // Bob logged in on relay b with no contacts yet.
    hub.apply_remote(
        &node("b"),
        wire(&Remote::Presence {
            user: BOB,
            username: "bob".into(),
            online: true,
            contacts: vec![],
        }),
    );
    let mut alice = login(&hub, ALICE, &[], false);
    hub.new_pair(&placed(msg(PAIR, 1, ALICE)));
    assert_eq!(presence(&mut alice.rx), [(BOB, true)]);
    hub.node_gone("b");
    assert_eq!(presence(&mut alice.rx), [(BOB, false)]);
}

#[tokio::test]
async fn chats_wait_while_the_link_is_behind_and_go_on_once_it_drains() {
    use std::sync::atomic::Ordering::SeqCst;
    let (hub, rec) = linked();
    // Keeping up: no wait.
    hub.publish_room().await;
    rec.1.store(true, SeqCst);
    let waiting = {
        let hub = hub.clone();
        tokio::spawn(async move { hub.publish_room().await })
    };
    // A drain that leaves the link behind does not release it.
    for _ in 0..10 {
        tokio::task::yield_now().await;
        rec.2.notify_waiters();
    }
    assert!(
        !waiting.is_finished(),
        "a chat went on while the link was behind"
    );
    rec.1.store(false, SeqCst);
    rec.2.notify_waiters();
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("the chat waits on after the link drained")
        .unwrap();
}
