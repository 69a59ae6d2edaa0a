//! Voice rooms across the relays of a cluster (issue 14), with real parts:
//! relay processes on one PostgreSQL database and one Redis, participants
//! on different relays. Nothing here sleeps to wait: every wait is for a
//! condition, with a deadline.

mod common;

use common::child::burst;
use common::cluster::TestCluster;
use common::voice::*;
use common::{Client, WAIT};
use futures_util::StreamExt;
use shared::{ClientFrame, ErrorCode, GroupId, ServerFrame, UserId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// How long the survivors may take to notice a relay killed with `kill -9`:
/// its liveness key's TTL (10 s) and a voice round, with room to spare.
const GONE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn participants_on_two_relays_share_the_roster_and_hear_each_other() {
    let c = TestCluster::start(2, &[]).await;
    let (r0, r1) = (c.relay(0), c.relay(1));
    let alice = r0.register("valice").await;
    let dave = r0.register("vdave").await;
    let frank = r0.register("vfrank").await;
    let bob = r1.register("vbob").await;
    let carol = r1.register("vcarol").await;
    let erin = r1.register("verin").await;
    let g = r0
        .group(&alice, "call", false, &[&dave, &frank, &bob, &carol, &erin])
        .await;
    let mut a = r0.login(&alice).await;
    let mut d = r0.login(&dave).await;
    let mut f = r0.login(&frank).await;
    let mut b = r1.login(&bob).await;
    let mut k = r1.login(&carol).await;
    let mut e = r1.login(&erin).await;

    // Joins from both relays, alternating: each 121 has the room so far,
    // across relays, with a growing change number.
    let mut seqs = Vec::new();
    let j = join(&mut a, g).await;
    assert_eq!(j.names, ["valice"]);
    seqs.push(j.seq);
    let j = join(&mut b, g).await;
    assert_eq!(j.names, ["valice", "vbob"]);
    seqs.push(j.seq);
    let j = join(&mut d, g).await;
    assert_eq!(j.names, ["valice", "vbob", "vdave"]);
    seqs.push(j.seq);
    let j = join(&mut k, g).await;
    let all = ["valice", "vbob", "vdave", "vcarol"];
    assert_eq!(j.names, all);
    seqs.push(j.seq);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "121 seqs grow: {seqs:?}"
    );

    // Every member on either relay, in the room or not, gets the 125s, the
    // last one with everybody, numbered as the last join (the newest
    // number any of them saw).
    for m in [&mut a, &mut b, &mut d, &mut k, &mut e, &mut f] {
        let seen = room_is(m, g, &all).await;
        let last = seen.last().unwrap().seq;
        assert_eq!(last, *seqs.last().unwrap());
        assert!(seen.iter().all(|s| s.seq <= last), "{seen:?}");
    }

    // alice (relay 0) speaks: dave (relay 0) and bob, carol (relay 1)
    // hear her, with her id, once.
    a.send_binary(audio_frame(g, 1, b"from alice")).await;
    for m in [&mut d, &mut b, &mut k] {
        assert_eq!(
            heard(&m.recv_binary().await, g),
            (alice.user_id, 1, b"from alice".to_vec())
        );
    }
    // bob (relay 1) speaks: the first audio alice gets is bob's (not her
    // own echo); carol, on bob's relay, hears him once.
    b.send_binary(audio_frame(g, 7, b"from bob")).await;
    assert_eq!(
        heard(&a.recv_binary().await, g),
        (bob.user_id, 7, b"from bob".to_vec())
    );
    assert_eq!(heard(&d.recv_binary().await, g).0, bob.user_id);
    assert_eq!(heard(&k.recv_binary().await, g).0, bob.user_id);
    a.send_binary(audio_frame(g, 2, b"again")).await;
    // bob's next audio is alice's, not his own frame back through Redis;
    // carol's is alice's too, not bob's a second time.
    for m in [&mut b, &mut k] {
        assert_eq!(
            heard(&m.recv_binary().await, g),
            (alice.user_id, 2, b"again".to_vec())
        );
    }
    // erin (relay 1) and frank (relay 0) are members outside the room:
    // the first audio they get after joining is a frame sent after that.
    join(&mut e, g).await;
    join(&mut f, g).await;
    b.send_binary(audio_frame(g, 8, b"welcome")).await;
    for m in [&mut e, &mut f] {
        assert_eq!(
            heard(&m.recv_binary().await, g),
            (bob.user_id, 8, b"welcome".to_vec())
        );
    }
    // One publish per frame per room, whatever the number of listeners.
    r0.wait_metric("ferrochat_cluster_voice_published_total", 2)
        .await;
    r1.wait_metric("ferrochat_cluster_voice_published_total", 2)
        .await;

    // Leaving crosses relays too.
    a.send(&ClientFrame::VoiceLeave { group_id: g }).await;
    room_is(&mut k, g, &["vbob", "vdave", "vcarol", "verin", "vfrank"]).await;
    drop(b); // closing the socket leaves
    let now = ["vdave", "vcarol", "verin", "vfrank"];
    let last = room_is(&mut d, g, &now).await.last().unwrap().seq;
    // A tab opened now on relay 1 asks (VOICE_QUERY) and gets the room as
    // Redis has it, current at the newest change number or later.
    let mut k2 = r1.login(&carol).await;
    let q = query(&mut k2, g).await.unwrap();
    assert_eq!(q.names, now);
    assert!(q.seq >= last, "{} < {last}", q.seq);
}

#[tokio::test]
async fn a_muted_speaker_is_refused_at_his_relay_and_nothing_crosses() {
    let c = TestCluster::start(2, &[]).await;
    let (r0, r1) = (c.relay(0), c.relay(1));
    let alice = r0.register("malice").await;
    let bob = r1.register("mbob").await;
    let g = r0.group(&alice, "call", false, &[&bob]).await;
    let (mut a, mut b) = (r0.login(&alice).await, r1.login(&bob).await);
    join(&mut a, g).await;
    join(&mut b, g).await;
    a.send(&ClientFrame::VoiceMute {
        group_id: g,
        muted: true,
    })
    .await;
    // The mute shows on the other relay.
    room_is(&mut b, g, &["malice*", "mbob"]).await;
    a.send_binary(audio_frame(g, 1, b"muted")).await;
    assert_eq!(error(&mut a).await.code, ErrorCode::Muted);
    a.send(&ClientFrame::VoiceMute {
        group_id: g,
        muted: false,
    })
    .await;
    room_is(&mut a, g, &["malice", "mbob"]).await;
    a.send_binary(audio_frame(g, 2, b"live")).await;
    // The first audio bob hears is the frame after the unmute.
    assert_eq!(
        heard(&b.recv_binary().await, g),
        (alice.user_id, 2, b"live".to_vec())
    );
    // One frame published: the live one, not the muted one.
    r0.wait_metric("ferrochat_cluster_voice_published_total", 1)
        .await;
    assert_eq!(r0.metric("ferrochat_audio_frames_refused_total").await, 1);
    assert_eq!(r1.metric("ferrochat_cluster_voice_received_total").await, 1);
}

#[tokio::test]
async fn capacity_holds_across_relays_when_joins_race() {
    let c = TestCluster::start(2, &["--voice-capacity", "2"]).await;
    let (r0, r1) = (c.relay(0), c.relay(1));
    let u = [
        r0.register("cap0").await,
        r0.register("cap1").await,
        r1.register("cap2").await,
        r1.register("cap3").await,
    ];
    let g = r0
        .group(&u[0], "small", false, &[&u[1], &u[2], &u[3]])
        .await;
    let mut cs = [
        r0.login(&u[0]).await,
        r0.login(&u[1]).await,
        r1.login(&u[2]).await,
        r1.login(&u[3]).await,
    ];
    // Four joins at once, two on each relay.
    for cl in cs.iter_mut() {
        cl.send(&ClientFrame::VoiceJoin { group_id: g }).await;
    }
    let mut answers = Vec::new();
    for cl in cs.iter_mut() {
        answers.push(
            match cl
                .recv_where(|f| {
                    matches!(f, ServerFrame::VoiceJoined { .. } | ServerFrame::Error(_))
                })
                .await
            {
                ServerFrame::VoiceJoined {
                    participants,
                    capacity,
                    seq,
                    ..
                } => {
                    assert_eq!(capacity, 2);
                    assert!(participants.len() <= 2, "{participants:?}");
                    Ok(seq)
                }
                ServerFrame::Error(e) => {
                    assert_eq!(
                        (e.code, e.req_type.as_deref()),
                        (ErrorCode::RoomFull, Some("120"))
                    );
                    Err(())
                }
                _ => unreachable!(),
            },
        );
    }
    let joined: Vec<usize> = (0..4).filter(|i| answers[*i].is_ok()).collect();
    let refused: Vec<usize> = (0..4).filter(|i| answers[*i].is_err()).collect();
    assert_eq!(joined.len(), 2, "{answers:?}");
    // A place frees up: one refused joins, the other is still refused.
    let (out, inn, still) = (joined[0], refused[0], refused[1]);
    cs[out].send(&ClientFrame::VoiceLeave { group_id: g }).await;
    let stay = u[joined[1]].username.as_str();
    // The 125 of the leave: listing `stay` alone, numbered after the joins.
    let before = answers.iter().flatten().max().copied().unwrap();
    while room_is(&mut cs[inn], g, &[stay]).await.last().unwrap().seq < before {}
    assert_eq!(join(&mut cs[inn], g).await.names.len(), 2);
    let e = try_join(&mut cs[still], g).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::RoomFull);
}

#[tokio::test]
async fn a_killed_relays_participants_leave_the_room_within_seconds() {
    let mut c = TestCluster::start(2, &[]).await;
    let alice = c.relay(0).register("kalice").await;
    let bob = c.relay(1).register("kbob").await;
    let carol = c.relay(1).register("kcarol").await;
    let g = c
        .relay(0)
        .group(&alice, "call", false, &[&bob, &carol])
        .await;
    let mut a = c.relay(0).login(&alice).await;
    let mut b = c.relay(1).login(&bob).await;
    let mut k = c.relay(1).login(&carol).await;
    join(&mut a, g).await;
    join(&mut b, g).await;
    room_is(&mut k, g, &["kalice", "kbob"]).await;
    let killed = Instant::now();
    c.kill9(0);
    // The survivor's members hear the room without alice: a 125 is waited
    // for, up to a deadline.
    room_within(&mut k, g, &["kbob"], GONE).await;
    room_within(&mut b, g, &["kbob"], GONE).await;
    eprintln!(
        "the room lost the killed relay's participant after {:?}",
        killed.elapsed()
    );
    drop(a);
    // The room goes on, on the survivor.
    assert_eq!(join(&mut k, g).await.names, ["kbob", "kcarol"]);
}

/// A speaker's client: audio every 20 ms until told to stop.
fn speak(mut c: Client, g: GroupId, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Client> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut seq = 0;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await; // pacing: under the speaker's rate caps
            c.send_binary(audio_frame(g, seq, &[7u8; 100])).await;
            seq += 1;
        }
        c
    })
}

/// Chat between users on different relays keeps flowing, all of it and in
/// order, to a participant while 50 participants on both relays flood the
/// room with audio.
#[tokio::test]
async fn chat_across_relays_flows_while_fifty_participants_send_audio() {
    let c = TestCluster::start(2, &[]).await;
    let (r0, r1) = (c.relay(0), c.relay(1));
    let mut users = Vec::new();
    for i in 0..10 {
        let r = if i < 5 { r0 } else { r1 };
        users.push(r.register(&format!("flood{i}")).await);
    }
    let talker = r0.register("talker").await;
    let members: Vec<_> = users[1..].iter().collect();
    let g = r0.group(&users[0], "flood", false, &members).await;
    // Five sockets per user: 25 participants on each relay.
    let mut sockets = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let r = if i < 5 { r0 } else { r1 };
        for _ in 0..5 {
            let mut s = r.login(u).await;
            join(&mut s, g).await;
            sockets.push(s);
        }
    }
    assert_eq!(sockets.len(), 50);
    // The listener: a participant on relay 1, who also gets the chats.
    let mut listener = sockets.remove(25);
    let far: Vec<UserId> = users[..5].iter().map(|u| u.user_id).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let speakers: Vec<_> = sockets
        .into_iter()
        .map(|s| speak(s, g, stop.clone()))
        .collect();
    // The flood crosses relays before any chat is sent.
    loop {
        let b = listener.recv_binary().await;
        if far.contains(&heard(&b, g).0) {
            break;
        }
    }
    let mut t = r0.login(&talker).await;
    const N: usize = 30;
    let to = users[5].user_id;
    let (ids, (bodies, audio)) = tokio::join!(burst(&mut t, to, "c", N, "during audio"), async {
        let mut bodies = Vec::new();
        let mut audio = 0;
        let deadline = tokio::time::Instant::now() + WAIT * 3;
        // Every chat, and audio after the last one: the flood went on
        // all along.
        let mut after_last = 0;
        while bodies.len() < N || after_last == 0 {
            let m = tokio::time::timeout_at(deadline, listener.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{} chats, {audio} audio frames", bodies.len()))
                .expect("open")
                .expect("ok");
            match m {
                Message::Binary(b) => {
                    heard(&b, g);
                    audio += 1;
                    if bodies.len() == N {
                        after_last += 1;
                    }
                }
                Message::Text(text) => {
                    if let ServerFrame::Chat(p) = ServerFrame::decode(&text).unwrap() {
                        listener.send(&ClientFrame::Ack { msg_id: p.msg_id }).await;
                        bodies.push((p.msg_id, p.content.body));
                    }
                }
                _ => {}
            }
        }
        (bodies, audio)
    });
    stop.store(true, Ordering::Relaxed);
    let got: Vec<_> = bodies.iter().map(|(id, _)| *id).collect();
    assert_eq!(got, ids, "every chat, in order, once");
    for (i, (_, body)) in bodies.iter().enumerate() {
        assert_eq!(body, &format!("during audio {i}"));
    }
    assert!(audio > 1);
    for s in speakers {
        s.await.unwrap();
    }
    assert!(r0.metric("ferrochat_cluster_voice_published_total").await > 0);
    assert!(r1.metric("ferrochat_cluster_voice_received_total").await > 0);
}

/// Leaving or being removed from the group through one relay takes the
/// user's sockets on the other relay out of the room.
#[tokio::test]
async fn a_removal_through_one_relay_takes_the_member_out_on_another() {
    let c = TestCluster::start(2, &[]).await;
    let (r0, r1) = (c.relay(0), c.relay(1));
    let alice = r0.register("ralice").await;
    let bob = r1.register("rbob").await;
    let g = r0.group(&alice, "call", false, &[&bob]).await;
    let (mut a, mut b) = (r0.login(&alice).await, r1.login(&bob).await);
    join(&mut a, g).await;
    join(&mut b, g).await;
    room_is(&mut a, g, &["ralice", "rbob"]).await;
    // The owner removes bob, through relay 0; bob's socket is on relay 1.
    let (status, _, _) = r0
        .request(
            "DELETE",
            &format!("/api/groups/{g}/members/{}", bob.user_id),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(status, 204);
    room_is(&mut a, g, &["ralice"]).await;
    room_is(&mut b, g, &["ralice"]).await;
    // Relay 1 took him out too: his audio is refused there.
    b.send_binary(audio_frame(g, 1, b"still here?")).await;
    assert_eq!(error(&mut b).await.code, ErrorCode::NotInRoom);
    r1.wait_metric("ferrochat_voice_participants", 0).await;
}

/// Without Redis a join is refused at once with `unavailable`, and chat on
/// the relay goes on; when Redis is back, joins work again.
#[tokio::test]
async fn without_redis_a_join_is_refused_at_once_and_chat_goes_on() {
    let mut c = TestCluster::start(2, &[]).await;
    let alice = c.relay(0).register("ualice").await;
    let bob = c.relay(0).register("ubob").await;
    let g = c.relay(0).group(&alice, "call", false, &[&bob]).await;
    let mut a = c.relay(0).login(&alice).await;
    let mut b = c.relay(0).login(&bob).await;
    c.redis.stop().unwrap();
    let r0 = c.relay(0);
    common::eventually("relay 0 sees Redis gone", || async {
        (r0.get("/healthz", None).await.0 == 503).then_some(())
    })
    .await;
    let e = try_join(&mut a, g).await.unwrap_err();
    assert_eq!(
        (e.code, e.req_type.as_deref()),
        (ErrorCode::Unavailable, Some("120"))
    );
    // Chat between two users on this relay is unaffected.
    a.chat(bob.user_id, "no-redis", "still chatting").await;
    let (id, _, _) = common::next_resp(&mut a).await;
    assert_eq!(common::next_push(&mut b).await.msg_id, id);
    c.redis.start_again().unwrap();
    c.wait_linked(0).await;
    assert_eq!(join(&mut a, g).await.names, ["ualice"]);
}
