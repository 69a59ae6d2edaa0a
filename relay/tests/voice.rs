//! Voice rooms (issue 14) on one relay, over real sockets: joining and
//! leaving, who hears whom, membership and capacity, mute, the audio caps,
//! closing a tab, a stalled listener, and chat during an audio flood.

mod common;

use common::voice::{audio_frame, error, heard, join, room_is};
use common::*;
use futures_util::{SinkExt, StreamExt};
use shared::api::Session;
use shared::audio;
use shared::{close, ClientFrame, ErrorCode, GroupId, ServerFrame};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

async fn users(relay: &TestRelay, names: &[&str]) -> Vec<Session> {
    let mut v = Vec::new();
    for n in names {
        v.push(relay.register(n).await);
    }
    v
}

#[tokio::test]
async fn join_and_leave_push_the_room_to_every_online_member() {
    let relay = TestRelay::start(&[]).await;
    let u = users(&relay, &["alice", "bob", "carol"]).await;
    let g = relay.group(&u[0], "call", false, &[&u[1], &u[2]]).await;
    let (mut alice, mut bob, mut carol) = (
        relay.login(&u[0]).await,
        relay.login(&u[1]).await,
        relay.login(&u[2]).await,
    );
    assert_eq!(join(&mut alice, g).await.names, ["alice"]);
    room_is(&mut alice, g, &["alice"]).await;
    room_is(&mut carol, g, &["alice"]).await;
    assert_eq!(join(&mut bob, g).await.names, ["alice", "bob"]);
    room_is(&mut alice, g, &["alice", "bob"]).await;
    room_is(&mut carol, g, &["alice", "bob"]).await;
    // Joining twice changes nothing.
    assert_eq!(join(&mut bob, g).await.names, ["alice", "bob"]);
    alice.send(&ClientFrame::VoiceLeave { group_id: g }).await;
    room_is(&mut bob, g, &["bob"]).await;
    room_is(&mut carol, g, &["bob"]).await;
    room_is(&mut alice, g, &["bob"]).await;
    // Leaving a room you are not in is an error, not a close.
    alice.send(&ClientFrame::VoiceLeave { group_id: g }).await;
    let e = error(&mut alice).await;
    assert_eq!(
        (e.code, e.req_type.as_deref()),
        (ErrorCode::NotInRoom, Some("122"))
    );
    bob.send(&ClientFrame::VoiceLeave { group_id: g }).await;
    // Empty list: the call ended.
    room_is(&mut carol, g, &[]).await;
    relay.wait_metric("ferrochat_voice_participants", 0).await;
    relay.stop().await;
}

#[tokio::test]
async fn audio_reaches_every_other_participant_and_nobody_else() {
    let relay = TestRelay::start(&[]).await;
    let u = users(&relay, &["alice", "bob", "carol", "dave"]).await;
    let g = relay
        .group(&u[0], "call", false, &[&u[1], &u[2], &u[3]])
        .await;
    let mut c: Vec<Client> = Vec::new();
    for s in &u {
        c.push(relay.login(s).await);
    }
    for client in c.iter_mut().take(3) {
        join(client, g).await;
    }
    // alice speaks; bob and carol hear her, with her id inserted.
    c[0].send_binary(audio_frame(g, 1, b"from alice")).await;
    for i in [1, 2] {
        let got = heard(&c[i].recv_binary().await, g);
        assert_eq!(got, (u[0].user_id, 1, b"from alice".to_vec()));
    }
    // bob speaks: the first audio alice gets is bob's, not her own echo.
    c[1].send_binary(audio_frame(g, 7, b"from bob")).await;
    assert_eq!(heard(&c[0].recv_binary().await, g).0, u[1].user_id);
    assert_eq!(heard(&c[2].recv_binary().await, g).0, u[1].user_id);
    // dave (a member outside the room) heard neither: the first audio he
    // gets after joining is a frame sent after he joined.
    join(&mut c[3], g).await;
    c[0].send_binary(audio_frame(g, 2, b"welcome")).await;
    assert_eq!(
        heard(&c[3].recv_binary().await, g),
        (u[0].user_id, 2, b"welcome".to_vec())
    );
    relay
        .wait_metric("ferrochat_audio_frames_in_total", 3)
        .await;
    relay
        .wait_metric("ferrochat_audio_frames_out_total", 7)
        .await;
    relay.stop().await;
}

#[tokio::test]
async fn only_members_join_and_only_participants_speak() {
    let relay = TestRelay::start(&[]).await;
    let u = users(&relay, &["alice", "mallory"]).await;
    let g = relay.group(&u[0], "private", false, &[]).await;
    let mut mallory = relay.login(&u[1]).await;
    mallory.send(&ClientFrame::VoiceJoin { group_id: g }).await;
    let e = error(&mut mallory).await;
    assert_eq!(
        (e.code, e.req_type.as_deref()),
        (ErrorCode::NotMember, Some("120"))
    );
    mallory
        .send(&ClientFrame::VoiceJoin {
            group_id: GroupId(987_654),
        })
        .await;
    assert_eq!(error(&mut mallory).await.code, ErrorCode::NotMember);
    // Audio to a room she is not in: an error frame, the socket stays.
    mallory.send_binary(audio_frame(g, 1, b"psst")).await;
    assert_eq!(error(&mut mallory).await.code, ErrorCode::NotInRoom);
    mallory.send(&ClientFrame::Ping { from_id: None }).await;
    assert!(matches!(mallory.recv().await, ServerFrame::Pong { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn a_full_room_refuses_with_room_full() {
    let relay = TestRelay::start(&["--voice-capacity", "2"]).await;
    let u = users(&relay, &["alice", "bob", "carol"]).await;
    let g = relay.group(&u[0], "small", false, &[&u[1], &u[2]]).await;
    let mut c: Vec<Client> = Vec::new();
    for s in &u {
        c.push(relay.login(s).await);
    }
    c[0].send(&ClientFrame::VoiceJoin { group_id: g }).await;
    match c[0]
        .recv_where(|f| matches!(f, ServerFrame::VoiceJoined { .. }))
        .await
    {
        ServerFrame::VoiceJoined { capacity, .. } => assert_eq!(capacity, 2),
        _ => unreachable!(),
    }
    join(&mut c[1], g).await;
    c[2].send(&ClientFrame::VoiceJoin { group_id: g }).await;
    let e = error(&mut c[2]).await;
    assert_eq!(
        (e.code, e.req_type.as_deref()),
        (ErrorCode::RoomFull, Some("120"))
    );
    // A place frees up: carol gets in.
    c[0].send(&ClientFrame::VoiceLeave { group_id: g }).await;
    room_is(&mut c[2], g, &["bob"]).await;
    assert_eq!(join(&mut c[2], g).await.names, ["bob", "carol"]);
    relay.stop().await;
}

#[tokio::test]
async fn a_muted_speaker_is_refused_and_not_forwarded() {
    let relay = TestRelay::start(&[]).await;
    let u = users(&relay, &["alice", "bob"]).await;
    let g = relay.group(&u[0], "call", false, &[&u[1]]).await;
    let (mut alice, mut bob) = (relay.login(&u[0]).await, relay.login(&u[1]).await);
    join(&mut alice, g).await;
    join(&mut bob, g).await;
    alice
        .send(&ClientFrame::VoiceMute {
            group_id: g,
            muted: true,
        })
        .await;
    room_is(&mut bob, g, &["alice*", "bob"]).await;
    alice.send_binary(audio_frame(g, 1, b"muted")).await;
    assert_eq!(error(&mut alice).await.code, ErrorCode::Muted);
    alice
        .send(&ClientFrame::VoiceMute {
            group_id: g,
            muted: false,
        })
        .await;
    room_is(&mut alice, g, &["alice", "bob"]).await;
    alice.send_binary(audio_frame(g, 2, b"live")).await;
    // The first audio bob hears is the frame after the unmute.
    assert_eq!(
        heard(&bob.recv_binary().await, g),
        (u[0].user_id, 2, b"live".to_vec())
    );
    relay
        .wait_metric("ferrochat_audio_frames_in_total", 1)
        .await;
    relay.stop().await;
}

#[tokio::test]
async fn size_rate_and_header_caps_give_error_frames_and_abuse_closes() {
    let relay = TestRelay::start(&[]).await;
    let u = users(&relay, &["alice", "bob"]).await;
    let g = relay.group(&u[0], "call", false, &[&u[1]]).await;
    let (mut alice, mut bob) = (relay.login(&u[0]).await, relay.login(&u[1]).await);
    join(&mut alice, g).await;
    join(&mut bob, g).await;
    // Over the size cap.
    alice
        .send_binary(audio_frame(g, 1, &vec![0u8; audio::MAX_AUDIO_FRAME]))
        .await;
    assert_eq!(error(&mut alice).await.code, ErrorCode::AudioTooLarge);
    // A malformed header.
    alice.send_binary(vec![9, 1, 0]).await;
    assert_eq!(error(&mut alice).await.code, ErrorCode::MalformedAudio);
    let mut bad_version = audio_frame(g, 1, b"x");
    bad_version[0] = 2;
    alice.send_binary(bad_version).await;
    assert_eq!(error(&mut alice).await.code, ErrorCode::MalformedAudio);
    // Over the frame rate: 100 frames at once against a burst of 50
    // (refilled at 100/s while they arrive).
    for seq in 0..100 {
        alice.send_binary(audio_frame(g, seq, b"tick")).await;
    }
    let limited = error(&mut alice).await;
    assert_eq!(limited.code, ErrorCode::AudioRateLimited);
    let (forwarded, refused) = eventually("every frame forwarded or refused", || async {
        let i = relay.metric("ferrochat_audio_frames_in_total").await;
        let r = relay.metric("ferrochat_audio_frames_refused_total").await;
        (i + r == 103).then_some((i, r))
    })
    .await;
    assert!((50..100).contains(&forwarded), "{forwarded} forwarded");
    assert!(refused > 3);
    // bob, who was not reading meanwhile, hears at least the newest lane's
    // worth of them, in order (audio is lossy: his lane drops the oldest).
    let mut last = None;
    for _ in 0..relay::socket::AUDIO_LANE {
        let (_, seq, _) = heard(&bob.recv_binary().await, g);
        assert!(last < Some(seq));
        last = Some(seq);
    }
    // Persistent abuse: a stream of malformed frames closes the socket.
    let mut mallory = relay.login(&u[1]).await;
    let mut n = 0;
    let code = loop {
        let _ = mallory.ws.send(Message::Binary(vec![0xFF; 4].into())).await;
        n += 1;
        assert!(n <= 200, "never closed");
        match tokio::time::timeout(WAIT, mallory.ws.next())
            .await
            .expect("an answer in time")
        {
            Some(Ok(Message::Text(_))) => continue,
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(n > 60, "closed after {n} refusals only");
    assert_eq!(code, Some(close::PROTOCOL_VIOLATION));
    relay.stop().await;
}

#[tokio::test]
async fn closing_the_tab_leaves_the_room() {
    let relay = TestRelay::start(&[]).await;
    let u = users(&relay, &["alice", "bob"]).await;
    let g = relay.group(&u[0], "call", false, &[&u[1]]).await;
    let (mut alice, mut bob) = (relay.login(&u[0]).await, relay.login(&u[1]).await);
    join(&mut alice, g).await;
    join(&mut bob, g).await;
    room_is(&mut bob, g, &["alice", "bob"]).await;
    relay.wait_metric("ferrochat_voice_participants", 2).await;
    drop(alice);
    room_is(&mut bob, g, &["bob"]).await;
    relay.wait_metric("ferrochat_voice_participants", 1).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_stalled_listener_loses_only_its_own_audio() {
    // Small kernel buffers on both ends: a client that stops reading
    // stalls the relay's writes to it within a few kilobytes.
    let relay = TestRelay::start_small_sndbuf(&[]).await;
    let u = users(&relay, &["speaker", "listener", "stalled"]).await;
    let g = relay.group(&u[0], "call", false, &[&u[1], &u[2]]).await;
    let mut speaker = relay.login(&u[0]).await;
    let mut listener = relay.login(&u[1]).await;
    let mut stalled = relay.login_small_rcvbuf(&u[2]).await;
    join(&mut speaker, g).await;
    join(&mut listener, g).await;
    join(&mut stalled, g).await;
    // From here on `stalled` reads nothing.
    let payload = vec![0x5A; 600]; // 618-byte frames: under both caps at 100/s
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut seq = 0u32;
    let mut rounds_after_drops = 0;
    let mut round = 0;
    while rounds_after_drops < 5 {
        round += 1;
        assert!(round <= 600, "the stalled listener's lane never dropped");
        tick.tick().await; // pacing under the speaker's rate cap
        let first = seq;
        for _ in 0..10 {
            speaker.send_binary(audio_frame(g, seq, &payload)).await;
            seq += 1;
        }
        // The reading listener gets every frame of the round, in order,
        // promptly.
        for want in first..seq {
            let b = listener
                .try_recv_binary(Duration::from_secs(2))
                .await
                .unwrap_or_else(|| panic!("frame {want} late (round {round})"));
            let (who, got, _) = heard(&b, g);
            assert_eq!((who, got), (u[0].user_id, want));
        }
        if relay.metric("ferrochat_audio_frames_dropped_total").await > 0 {
            rounds_after_drops += 1;
        }
    }
    // Nothing was refused from the speaker, and the stalled socket is not
    // closed as a slow consumer: audio never goes through its text queue.
    assert_eq!(
        relay.metric("ferrochat_audio_frames_refused_total").await,
        0
    );
    assert_eq!(relay.metric("ferrochat_slow_consumers_total").await, 0);
    // Once it reads again it gets the newest audio, not all of it.
    let mut got = 0;
    while let Some(b) = stalled.try_recv_binary(Duration::from_millis(500)).await {
        heard(&b, g);
        got += 1;
    }
    assert!(got < seq, "{got} of {seq}: the lane dropped the oldest");
    relay.stop().await;
}

#[tokio::test]
async fn chat_still_flows_to_a_participant_during_an_audio_flood() {
    let relay = TestRelay::start(&[]).await;
    let u = users(&relay, &["alice", "bob", "carol"]).await;
    let g = relay.group(&u[0], "call", false, &[&u[1]]).await;
    let (mut alice, mut bob, mut carol) = (
        relay.login(&u[0]).await,
        relay.login(&u[1]).await,
        relay.login(&u[2]).await,
    );
    join(&mut alice, g).await;
    join(&mut bob, g).await;
    // A burst of audio at the speaker's cap, with a chat in the middle.
    for seq in 0..25 {
        alice.send_binary(audio_frame(g, seq, &[1u8; 900])).await;
    }
    carol.chat(u[1].user_id, "during-audio", "still here").await;
    for seq in 25..50 {
        alice.send_binary(audio_frame(g, seq, &[1u8; 900])).await;
    }
    next_resp(&mut carol).await;
    // bob reads both kinds: the chat arrives, and so does the newest audio
    // (he was not reading during the burst: his lane kept the newest).
    let mut last = None;
    let mut chat = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while chat.is_none() || last != Some(49) {
        let m = tokio::time::timeout_at(deadline, bob.ws.next())
            .await
            .unwrap_or_else(|_| panic!("chat {chat:?}, audio up to {last:?}"))
            .expect("open")
            .expect("ok");
        match m {
            Message::Binary(b) => {
                let seq = heard(&b, g).1;
                assert!(last < Some(seq), "in order");
                last = Some(seq);
            }
            Message::Text(t) => {
                if let ServerFrame::Chat(p) = ServerFrame::decode(&t).unwrap() {
                    chat = Some(p.content.body);
                }
            }
            _ => {}
        }
    }
    assert_eq!(chat.as_deref(), Some("still here"));
    relay.stop().await;
}

#[tokio::test]
async fn leaving_or_being_removed_from_the_group_leaves_its_room() {
    let relay = TestRelay::start(&[]).await;
    let u = users(&relay, &["alice", "bob", "carol"]).await;
    let g = relay.group(&u[0], "call", false, &[&u[1], &u[2]]).await;
    let mut c: Vec<Client> = Vec::new();
    for s in &u {
        c.push(relay.login(s).await);
    }
    for client in c.iter_mut() {
        join(client, g).await;
    }
    room_is(&mut c[0], g, &["alice", "bob", "carol"]).await;
    // The owner removes bob.
    let (status, _, _) = relay
        .request(
            "DELETE",
            &format!("/api/groups/{g}/members/{}", u[1].user_id),
            Some(&u[0].token),
            None,
        )
        .await;
    assert_eq!(status, 204);
    room_is(&mut c[0], g, &["alice", "carol"]).await;
    c[1].send_binary(audio_frame(g, 1, b"still here?")).await;
    assert_eq!(error(&mut c[1]).await.code, ErrorCode::NotInRoom);
    // carol leaves the group.
    let (status, _, _) = relay
        .request(
            "POST",
            &format!("/api/groups/{g}/leave"),
            Some(&u[2].token),
            None,
        )
        .await;
    assert_eq!(status, 204);
    room_is(&mut c[0], g, &["alice"]).await;
    relay.wait_metric("ferrochat_voice_participants", 1).await;
    relay.stop().await;
}

/// The next 125 for `group`: its change number and usernames.
async fn numbered_room(c: &mut Client, group: GroupId) -> (u64, Vec<String>) {
    loop {
        if let ServerFrame::VoiceRoom {
            group_id,
            participants,
            seq,
        } = c
            .recv_where(|f| matches!(f, ServerFrame::VoiceRoom { .. }))
            .await
        {
            if group_id == group {
                return (seq, participants.into_iter().map(|p| p.username).collect());
            }
        }
    }
}

/// VOICE_QUERY (126): a page that opens a group (or comes back online)
/// learns of a call that started before, as a 125 to that socket only.
#[tokio::test]
async fn a_query_answers_the_room_as_it_is_to_members_only() {
    let relay = TestRelay::start(&[]).await;
    let u = users(&relay, &["qalice", "qbob", "qcarol"]).await;
    let g = relay.group(&u[0], "asked", false, &[&u[1]]).await;
    let mut alice = relay.login(&u[0]).await;
    // No call: an empty room.
    let mut bob = relay.login(&u[1]).await;
    let before = common::voice::query(&mut bob, g).await.unwrap();
    assert!(before.names.is_empty());
    join(&mut alice, g).await;
    room_is(&mut bob, g, &["qalice"]).await;
    // A tab opened during the call learns of it by asking: the room now,
    // numbered no lower than the join it saw nothing of.
    let mut bob2 = relay.login(&u[1]).await;
    let during = common::voice::query(&mut bob2, g).await.unwrap();
    assert_eq!(during.names, ["qalice"]);
    assert!(during.seq > before.seq);
    // Not a member: refused, nothing told.
    let mut carol = relay.login(&u[2]).await;
    let e = common::voice::query(&mut carol, g).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotMember);
    assert_eq!(e.req_type.as_deref(), Some("126"));
    relay.stop().await;
}

/// Announcements run after the room's lock is released and may race, so
/// every 121 and 125 carries the change's number: it grows with each
/// change, also across a call that ended and started again, and a 121
/// carries the same number as the 125 of the same join.
#[tokio::test]
async fn room_changes_are_numbered_so_a_stale_push_can_be_told() {
    let relay = TestRelay::start(&[]).await;
    let u = users(&relay, &["nalice", "nbob", "ncarol"]).await;
    let g = relay.group(&u[0], "numbered", false, &[&u[1], &u[2]]).await;
    let (mut alice, mut bob, mut carol) = (
        relay.login(&u[0]).await,
        relay.login(&u[1]).await,
        relay.login(&u[2]).await,
    );
    let mut seen = Vec::new();
    alice.send(&ClientFrame::VoiceJoin { group_id: g }).await;
    let joined = match alice
        .recv_where(|f| matches!(f, ServerFrame::VoiceJoined { .. }))
        .await
    {
        ServerFrame::VoiceJoined { seq, .. } => seq,
        _ => unreachable!(),
    };
    let (first, names) = numbered_room(&mut carol, g).await;
    assert_eq!((first, names), (joined, vec!["nalice".to_string()]));
    seen.push(first);
    bob.send(&ClientFrame::VoiceJoin { group_id: g }).await;
    seen.push(numbered_room(&mut carol, g).await.0);
    bob.send(&ClientFrame::VoiceLeave { group_id: g }).await;
    seen.push(numbered_room(&mut carol, g).await.0);
    alice.send(&ClientFrame::VoiceLeave { group_id: g }).await;
    let (ended, names) = numbered_room(&mut carol, g).await;
    assert!(names.is_empty(), "the call ended");
    seen.push(ended);
    // A new call in the same group goes on counting.
    bob.send(&ClientFrame::VoiceJoin { group_id: g }).await;
    seen.push(numbered_room(&mut carol, g).await.0);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "change numbers grow: {seen:?}"
    );
    relay.stop().await;
}
