//! The hub's delivery rule, without a network: pushes, acks and cursors
//! for out-of-order arrivals, gaps, backlog sync, retries.

use super::*;
use crate::socket::SocketHandle;
use crate::store::{Placed, Position, StoredMessage, UserRef};
use shared::{ChatMessage, Content, GroupId, MsgId, ServerFrame, Target};
use std::time::Duration;
use tokio::sync::mpsc;

pub(super) const ALICE: UserId = UserId(1);
pub(super) const BOB: UserId = UserId(2);
/// Alice and bob's conversation.
pub(super) const PAIR: crate::store::ConvId = 10;
const ACK_TIMEOUT: Duration = Duration::from_secs(1);
const GAP_WAIT: Duration = Duration::from_millis(500);

pub(super) fn hub(retry_budget: usize) -> Arc<Hub> {
    Arc::new(Hub::new(
        HubConfig {
            ack_timeout: ACK_TIMEOUT,
            max_retry_interval: Duration::from_secs(8),
            retry_budget,
            presence_grace: Duration::from_secs(1),
            gap_wait: GAP_WAIT,
        },
        Arc::new(Metrics::default()),
    ))
}

/// A message in the pair's conversation (or group `g`'s) from `from`.
pub(super) fn msg(conv: crate::store::ConvId, seq: u64, from: UserId) -> StoredMessage {
    let to = if conv == PAIR {
        Target::User(if from == ALICE { BOB } else { ALICE })
    } else {
        Target::Group(GroupId(conv))
    };
    StoredMessage {
        conv,
        seq,
        msg_id: MsgId::from_u128(((conv as u128) << 32) | seq as u128),
        from,
        from_name: "x".into(),
        to,
        client_msg_id: None,
        content: Content::text(format!("{conv}/{seq}")),
        ts: 0,
    }
}

pub(super) fn placed(m: StoredMessage) -> Placed {
    let members = match m.to {
        Target::Group(_) => Some(Arc::new(vec![ALICE, BOB])),
        Target::User(_) => None,
    };
    Placed {
        msg: Arc::new(m),
        members,
        batch: 1,
    }
}

/// A socket of `user`'s, registered and (unless `syncing`) live with
/// `positions`.
pub(super) struct Tab {
    _reg: Registration,
    id: u64,
    pub(super) rx: mpsc::Receiver<Utf8Bytes>,
}

pub(super) fn login(hub: &Arc<Hub>, user: UserId, positions: &[Position], syncing: bool) -> Tab {
    let (handle, rx) = SocketHandle::new(hub.next_socket_id(), 64);
    let id = handle.id();
    let me = UserRef {
        id: user,
        username: format!("u{}", user.0),
    };
    let (reg, _) = hub.register(&me, handle, [user.0 as u8; 32], &[]);
    if !syncing {
        assert_eq!(hub.finish_sync(user, id, positions), SyncEnd::Done);
    }
    Tab { _reg: reg, id, rx }
}

impl Tab {
    /// The `(conversation, seq)` of every chat queued to this socket so far.
    pub(super) fn pushed(&mut self) -> Vec<(i64, u64)> {
        let mut out = Vec::new();
        while let Ok(f) = self.rx.try_recv() {
            if let Ok(ServerFrame::Chat(ChatMessage { to, seq, .. })) = ServerFrame::decode(&f) {
                let conv = match to {
                    Target::Group(g) => g.0,
                    Target::User(_) => PAIR,
                };
                out.push((conv, seq));
            }
        }
        out
    }
}

pub(super) fn at(conv: crate::store::ConvId, last: u64) -> Position {
    Position {
        conv,
        delivered: last,
        last,
    }
}

fn cursor(outcome: AckOutcome) -> Option<u64> {
    match outcome {
        AckOutcome::Acked { cursor, .. } => cursor,
        other => panic!("not a first ack: {other:?}"),
    }
}

fn id(conv: crate::store::ConvId, seq: u64) -> MsgId {
    msg(conv, seq, ALICE).msg_id
}

/// The defect this rule fixes: seq 6 pushed and acked before 5 arrived
/// moved the cursor past 5, and 5 was never delivered, not even after a
/// restart.
#[test]
fn a_push_past_a_gap_waits_and_the_cursor_never_passes_an_unpushed_seq() {
    let hub = hub(100);
    let mut bob = login(&hub, BOB, &[at(PAIR, 4)], false);
    hub.fanout(&placed(msg(PAIR, 6, ALICE)), None);
    assert_eq!(bob.pushed(), [], "6 is held until 5 arrives");
    // Even an ack of 6 (a client may ack an id it guessed) moves nothing.
    assert_eq!(cursor(hub.ack(BOB, id(PAIR, 6))), None);
    hub.fanout(&placed(msg(PAIR, 5, ALICE)), None);
    assert_eq!(
        bob.pushed(),
        [(PAIR, 5)],
        "5 is pushed; 6 was acked already"
    );
    assert_eq!(cursor(hub.ack(BOB, id(PAIR, 5))), Some(6));
}

#[test]
fn out_of_order_arrivals_are_pushed_in_order_and_acks_in_any_order_keep_the_cursor_safe() {
    let hub = hub(100);
    let mut bob = login(&hub, BOB, &[at(PAIR, 4)], false);
    for seq in [7, 6, 5] {
        hub.fanout(&placed(msg(PAIR, seq, ALICE)), None);
    }
    assert_eq!(bob.pushed(), [(PAIR, 5), (PAIR, 6), (PAIR, 7)]);
    assert_eq!(
        cursor(hub.ack(BOB, id(PAIR, 7))),
        None,
        "5 and 6 are unacked"
    );
    assert_eq!(cursor(hub.ack(BOB, id(PAIR, 5))), Some(5));
    assert_eq!(cursor(hub.ack(BOB, id(PAIR, 6))), Some(7));
    assert_eq!(hub.ack(BOB, id(PAIR, 6)), AckOutcome::Repeat);
    assert_eq!(hub.ack(BOB, id(PAIR, 99)), AckOutcome::Unknown);
}

#[test]
fn own_messages_fill_the_sequence_too() {
    let hub = hub(100);
    let mut alice = login(&hub, ALICE, &[at(PAIR, 4)], false);
    let mut bob = login(&hub, BOB, &[at(PAIR, 4)], false);
    hub.fanout(&placed(msg(PAIR, 5, BOB)), Some(bob.id));
    hub.fanout(&placed(msg(PAIR, 6, ALICE)), Some(alice.id));
    assert_eq!(bob.pushed(), [(PAIR, 6)], "bob's own 5 is no gap for him");
    assert_eq!(alice.pushed(), [(PAIR, 5)]);
    assert_eq!(cursor(hub.ack(BOB, id(PAIR, 6))), Some(6));
}

#[test]
fn with_an_unknown_base_pushes_go_out_but_the_cursor_waits_for_the_join_point() {
    let hub = hub(100);
    let g = 20;
    let mut bob = login(&hub, BOB, &[], false);
    // Bob joined the group at seq 7; its first message reaches the hub
    // before the join is announced.
    hub.fanout(&placed(msg(g, 8, ALICE)), None);
    assert_eq!(bob.pushed(), [(g, 8)]);
    assert_eq!(
        cursor(hub.ack(BOB, id(g, 8))),
        None,
        "where bob started is unknown"
    );
    hub.set_base(BOB, g, 7);
    hub.fanout(&placed(msg(g, 9, ALICE)), None);
    assert_eq!(bob.pushed(), [(g, 9)]);
    assert_eq!(cursor(hub.ack(BOB, id(g, 9))), Some(9));
}

#[test]
fn a_gap_is_reported_once_after_the_wait_and_filling_it_releases_what_was_held() {
    let hub = hub(100);
    let mut bob = login(&hub, BOB, &[at(PAIR, 4)], false);
    hub.fanout(&placed(msg(PAIR, 7, ALICE)), None);
    let now = std::time::Instant::now();
    assert_eq!(hub.due_gaps(now), [], "not before the wait");
    let later = now + GAP_WAIT * 2;
    let gaps = hub.due_gaps(later);
    let gap = Gap {
        user: BOB,
        conv: PAIR,
        after: 4,
        before: 7,
    };
    assert_eq!(gaps, [gap]);
    assert_eq!(hub.due_gaps(later), [], "reported once while it is fetched");
    // The store had 5 for bob; 6 was bob's own.
    hub.fill_gap(gap, Some(&[msg(PAIR, 5, ALICE)]));
    assert_eq!(bob.pushed(), [(PAIR, 5), (PAIR, 7)]);
    assert_eq!(cursor(hub.ack(BOB, id(PAIR, 5))), Some(6));
    assert_eq!(cursor(hub.ack(BOB, id(PAIR, 7))), Some(7));
    assert_eq!(hub.due_gaps(later + GAP_WAIT * 4), []);
}

#[test]
fn a_failed_gap_fetch_is_reported_again_later() {
    let hub = hub(100);
    let mut bob = login(&hub, BOB, &[at(PAIR, 4)], false);
    hub.fanout(&placed(msg(PAIR, 6, ALICE)), None);
    let later = std::time::Instant::now() + GAP_WAIT * 2;
    let [gap] = hub.due_gaps(later)[..] else {
        panic!("one gap")
    };
    hub.fill_gap(gap, None);
    assert_eq!(bob.pushed(), []);
    let again = std::time::Instant::now() + GAP_WAIT * 2;
    assert_eq!(hub.due_gaps(again), [gap]);
}

#[test]
fn backlog_sync_merges_live_pushes_by_conversation_and_seq() {
    let hub = hub(100);
    let g = 20;
    let mut bob = login(&hub, BOB, &[], true);
    // Live pushes while bob's socket loads its backlog: buffered.
    hub.fanout(&placed(msg(PAIR, 5, ALICE)), None);
    hub.fanout(&placed(msg(g, 3, ALICE)), None);
    assert_eq!(bob.pushed(), []);
    // The backlog (read after those were stored) has the pair's 4 and 5
    // and nothing of the group: ids are no guide to what is newer.
    let page = [msg(PAIR, 4, ALICE), msg(PAIR, 5, ALICE)];
    let frames = hub.backlog(BOB, bob.id, &page);
    assert_eq!(frames.len(), 2);
    let positions = [
        Position {
            conv: PAIR,
            delivered: 3,
            last: 5,
        },
        at(g, 2),
    ];
    assert_eq!(hub.finish_sync(BOB, bob.id, &positions), SyncEnd::Done);
    assert_eq!(bob.pushed(), [(g, 3)], "the pair's 5 came with the backlog");
    // Everything is accounted for: acks move the cursors.
    assert_eq!(cursor(hub.ack(BOB, id(PAIR, 4))), Some(4));
    assert_eq!(cursor(hub.ack(BOB, id(PAIR, 5))), Some(5));
    assert_eq!(cursor(hub.ack(BOB, id(g, 3))), Some(3));
    hub.fanout(&placed(msg(PAIR, 6, ALICE)), None);
    assert_eq!(bob.pushed(), [(PAIR, 6)], "live now");
}

#[test]
fn too_many_live_pushes_during_a_sync_make_the_socket_reload() {
    let hub = hub(100);
    let bob = login(&hub, BOB, &[], true);
    for seq in 1..=5000 {
        hub.fanout(&placed(msg(PAIR, seq, ALICE)), None);
    }
    assert_eq!(
        hub.finish_sync(BOB, bob.id, &[at(PAIR, 0)]),
        SyncEnd::Reload
    );
    // The reload starts clean and ends the sync.
    assert_eq!(
        hub.finish_sync(BOB, bob.id, &[at(PAIR, 5000)]),
        SyncEnd::Done
    );
}

#[test]
fn unacked_pushes_are_retried_with_doubling_intervals_within_a_budget() {
    let hub = hub(2);
    let mut bob = login(&hub, BOB, &[at(PAIR, 0)], false);
    for seq in 1..=3 {
        hub.fanout(&placed(msg(PAIR, seq, ALICE)), None);
    }
    assert_eq!(bob.pushed().len(), 3);
    let t0 = std::time::Instant::now();
    hub.retry_due(t0);
    assert_eq!(bob.pushed(), [], "nothing is due before the ack timeout");
    // Due after the ack timeout: two per round (the budget), oldest first.
    let t1 = t0 + ACK_TIMEOUT + Duration::from_millis(10);
    hub.retry_due(t1);
    assert_eq!(bob.pushed(), [(PAIR, 1), (PAIR, 2)]);
    hub.retry_due(t1);
    assert_eq!(bob.pushed(), [(PAIR, 3)]);
    // After a retry the next one waits twice as long.
    hub.retry_due(t1 + ACK_TIMEOUT);
    assert_eq!(bob.pushed(), []);
    hub.retry_due(t1 + ACK_TIMEOUT * 2 + Duration::from_millis(10));
    assert_eq!(bob.pushed(), [(PAIR, 1), (PAIR, 2)]);
    // Acked pushes are not retried.
    for seq in 1..=3 {
        hub.ack(BOB, id(PAIR, seq));
    }
    hub.retry_due(t1 + Duration::from_secs(60));
    assert_eq!(bob.pushed(), []);
}

#[test]
fn held_pushes_are_not_retried_until_released() {
    let hub = hub(100);
    let mut bob = login(&hub, BOB, &[at(PAIR, 4)], false);
    hub.fanout(&placed(msg(PAIR, 6, ALICE)), None);
    hub.retry_due(std::time::Instant::now() + Duration::from_secs(5));
    assert_eq!(
        bob.pushed(),
        [],
        "a held push is not sent by a retry either"
    );
}

/// A tab still reading its backlog when its other tab sends gets the echo
/// once its backlog is done (it was dropped before).
#[test]
fn an_echo_to_a_tab_still_syncing_comes_after_its_backlog() {
    let hub = hub(100);
    let sender = login(&hub, ALICE, &[at(PAIR, 0)], false);
    let mut syncing = login(&hub, ALICE, &[at(PAIR, 0)], true);
    hub.fanout(&placed(msg(PAIR, 1, ALICE)), Some(sender.id));
    assert_eq!(syncing.pushed(), [], "not while syncing");
    assert_eq!(
        hub.finish_sync(ALICE, syncing.id, &[at(PAIR, 0)]),
        SyncEnd::Done
    );
    assert_eq!(syncing.pushed(), [(PAIR, 1)]);
}
