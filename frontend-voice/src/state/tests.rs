use super::*;

fn p(id: i64, name: &str) -> VoiceParticipant {
    VoiceParticipant {
        user_id: UserId(id),
        username: name.into(),
        muted: false,
    }
}

fn joined(group: GroupId, who: Vec<VoiceParticipant>, seq: u64) -> ServerFrame {
    ServerFrame::VoiceJoined {
        group_id: group,
        participants: who,
        capacity: 50,
        seq,
    }
}

fn room(group: GroupId, who: Vec<VoiceParticipant>, seq: u64) -> ServerFrame {
    ServerFrame::VoiceRoom {
        group_id: group,
        participants: who,
        seq,
    }
}

fn error(code: ErrorCode) -> ServerFrame {
    ServerFrame::Error(ErrorFrame {
        code,
        message: "nope".into(),
        req_type: Some("120".into()),
        client_msg_id: None,
        msg_id: None,
    })
}

fn online(cap: Capability) -> Model {
    let mut m = Model::new(UserId(1), cap);
    assert!(m.set_online(true).is_empty());
    m
}

const G: GroupId = GroupId(7);

#[test]
fn join_then_121_starts_audio_and_leave_stops_it() {
    let mut m = online(Capability::Talk);
    assert_eq!(
        m.click(Click::Join(G)),
        vec![Effect::Send(ClientFrame::VoiceJoin { group_id: G })]
    );
    assert_eq!(m.mine(), Some((G, Phase::Joining)));
    assert_eq!(
        m.frame(joined(G, vec![p(2, "bob"), p(1, "me")], 4)),
        vec![Effect::Start(G)]
    );
    assert_eq!(m.mine(), Some((G, Phase::In)));
    assert_eq!(m.participants(G).len(), 2);
    assert_eq!(
        m.click(Click::Leave),
        vec![
            Effect::Send(ClientFrame::VoiceLeave { group_id: G }),
            Effect::Stop
        ]
    );
    assert_eq!(m.mine(), None);
    assert!(m.click(Click::Leave).is_empty());
}

#[test]
fn a_stale_room_push_is_dropped() {
    let mut m = online(Capability::Talk);
    m.frame(room(G, vec![p(2, "bob"), p(3, "carol")], 9));
    m.frame(room(G, vec![p(2, "bob")], 8));
    assert_eq!(m.participants(G).len(), 2, "seq 8 after 9 is stale");
    m.frame(room(G, vec![], 10));
    assert!(
        m.participants(G).is_empty(),
        "an empty room is a call that ended"
    );
}

#[test]
fn switching_rooms_leaves_the_old_one_first() {
    let mut m = online(Capability::Talk);
    m.click(Click::Join(G));
    m.frame(joined(G, vec![p(1, "me")], 1));
    let h = GroupId(8);
    assert_eq!(
        m.click(Click::Join(h)),
        vec![
            Effect::Send(ClientFrame::VoiceLeave { group_id: G }),
            Effect::Stop,
            Effect::Send(ClientFrame::VoiceJoin { group_id: h }),
        ]
    );
}

#[test]
fn a_full_room_is_explained_and_nothing_starts() {
    let mut m = online(Capability::Talk);
    m.click(Click::Join(G));
    assert!(m.frame(error(ErrorCode::RoomFull)).is_empty());
    assert_eq!(m.mine(), None);
    assert_eq!(m.error(), Some("The call is full."));
    // A later 121 for that group (another tab) does not start audio here.
    assert!(m.frame(joined(G, vec![p(1, "me")], 3)).is_empty());
}

#[test]
fn mute_is_sent_only_in_a_room_and_only_on_change() {
    let mut m = online(Capability::Talk);
    assert!(m.click(Click::Mute(true)).is_empty());
    m.click(Click::Join(G));
    m.frame(joined(G, vec![p(1, "me")], 1));
    assert_eq!(
        m.click(Click::Mute(true)),
        vec![
            Effect::Muted(true),
            Effect::Send(ClientFrame::VoiceMute {
                group_id: G,
                muted: true
            })
        ]
    );
    assert!(m.click(Click::Mute(true)).is_empty());
    assert!(m.muted());
}

#[test]
fn a_listen_only_browser_joins_muted_and_cannot_unmute() {
    let mut m = online(Capability::Listen);
    m.click(Click::Join(G));
    let out = m.frame(joined(G, vec![p(1, "me")], 1));
    assert_eq!(
        out,
        vec![
            Effect::Start(G),
            Effect::Muted(true),
            Effect::Send(ClientFrame::VoiceMute {
                group_id: G,
                muted: true
            })
        ]
    );
    assert!(m.click(Click::Mute(false)).is_empty());
    let none = Model::new(UserId(1), Capability::None);
    assert!(none.error().unwrap().contains("WebCodecs"));
}

#[test]
fn a_dropped_socket_stops_audio_and_the_next_login_rejoins() {
    let mut m = online(Capability::Talk);
    m.click(Click::Join(G));
    m.frame(joined(G, vec![p(1, "me")], 40));
    assert_eq!(m.set_online(false), vec![Effect::Stop]);
    assert!(m.participants(G).is_empty());
    assert_eq!(m.click(Click::Join(G)), vec![], "offline: nothing sent");
    assert_eq!(
        m.set_online(true),
        vec![Effect::Send(ClientFrame::VoiceJoin { group_id: G })]
    );
    // A restarted relay counts from 1 again: not stale.
    assert_eq!(
        m.frame(joined(G, vec![p(1, "me")], 1)),
        vec![Effect::Start(G)]
    );
}

#[test]
fn an_open_group_is_asked_for_its_room_now_and_after_each_login() {
    let mut m = Model::new(UserId(1), Capability::Talk);
    let ask = |g| vec![Effect::Send(ClientFrame::VoiceQuery { group_id: g })];
    assert!(m.show(Some(G)).is_empty(), "offline: asked once online");
    assert_eq!(m.set_online(true), ask(G));
    assert!(m.show(Some(G)).is_empty(), "same group: nothing new");
    let h = GroupId(8);
    assert_eq!(m.show(Some(h)), ask(h));
    assert!(m.show(None).is_empty());
    m.show(Some(G));
    m.click(Click::Join(G));
    m.frame(joined(G, vec![p(1, "me")], 1));
    m.set_online(false);
    // Rejoining answers with the room (121): no question needed.
    assert_eq!(
        m.set_online(true),
        vec![Effect::Send(ClientFrame::VoiceJoin { group_id: G })]
    );
}

#[test]
fn being_taken_out_of_the_room_stops_audio() {
    let mut m = online(Capability::Talk);
    m.click(Click::Join(G));
    m.frame(joined(G, vec![p(1, "me"), p(2, "bob")], 1));
    assert_eq!(m.frame(room(G, vec![p(2, "bob")], 2)), vec![Effect::Stop]);
    assert_eq!(m.mine(), None);
    assert!(
        m.set_online(false).is_empty(),
        "no rejoin after an eviction"
    );
    assert!(m.set_online(true).is_empty());
}
