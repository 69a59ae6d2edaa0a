//! Voice-room helpers for WebSocket test clients: audio frames, joins,
//! and waiting for a room's 125 (with a deadline, never a sleep).

use super::{Client, WAIT};
use shared::audio::{self, AudioHeader, KIND_OPUS};
use shared::{ClientFrame, ErrorFrame, GroupId, ServerFrame, UserId};
use std::time::Duration;

/// A client audio frame.
pub fn audio_frame(group: GroupId, seq: u32, payload: &[u8]) -> Vec<u8> {
    audio::encode_client(
        &AudioHeader {
            kind: KIND_OPUS,
            group_id: group,
            seq,
            ts: seq * 20,
        },
        payload,
    )
}

/// (speaker, seq, payload) of a relayed frame in `group`.
pub fn heard(b: &[u8], group: GroupId) -> (UserId, u32, Vec<u8>) {
    let (h, speaker, payload) = audio::parse_listener(b).expect("a valid relayed frame");
    assert_eq!(h.group_id, group);
    (speaker, h.seq, payload.to_vec())
}

/// A room as a 121 or 125 shows it: its change number and usernames (with
/// "*" after a muted one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub seq: u64,
    pub names: Vec<String>,
}

fn names(ps: Vec<shared::VoiceParticipant>) -> Vec<String> {
    ps.into_iter()
        .map(|p| p.username + if p.muted { "*" } else { "" })
        .collect()
}

/// Sends VOICE_JOIN and returns the 121, or the type 0 frame refusing it.
pub async fn try_join(c: &mut Client, group: GroupId) -> Result<Seen, ErrorFrame> {
    c.send(&ClientFrame::VoiceJoin { group_id: group }).await;
    match c
        .recv_where(|f| matches!(f, ServerFrame::VoiceJoined { .. } | ServerFrame::Error(_)))
        .await
    {
        ServerFrame::VoiceJoined {
            group_id,
            participants,
            seq,
            ..
        } => {
            assert_eq!(group_id, group);
            Ok(Seen {
                seq,
                names: names(participants),
            })
        }
        ServerFrame::Error(e) => Err(e),
        _ => unreachable!(),
    }
}

/// Sends VOICE_QUERY and returns the 125 answering it, or the type 0
/// frame refusing it (call it with no room change in flight to `c`).
pub async fn query(c: &mut Client, group: GroupId) -> Result<Seen, ErrorFrame> {
    c.send(&ClientFrame::VoiceQuery { group_id: group }).await;
    match c
        .recv_where(|f| {
            matches!(f, ServerFrame::VoiceRoom { group_id, .. } if *group_id == group)
                || matches!(f, ServerFrame::Error(_))
        })
        .await
    {
        ServerFrame::VoiceRoom {
            participants, seq, ..
        } => Ok(Seen {
            seq,
            names: names(participants),
        }),
        ServerFrame::Error(e) => Err(e),
        _ => unreachable!(),
    }
}

/// Joins; panics if refused.
pub async fn join(c: &mut Client, group: GroupId) -> Seen {
    try_join(c, group)
        .await
        .unwrap_or_else(|e| panic!("join refused: {e:?}"))
}

/// The next type 0 frame.
pub async fn error(c: &mut Client) -> ErrorFrame {
    match c.recv_where(|f| matches!(f, ServerFrame::Error(_))).await {
        ServerFrame::Error(e) => e,
        _ => unreachable!(),
    }
}

/// Reads 125s for `group` until one lists exactly `want`, within `wait`;
/// returns every 125 read for the group on the way (its last is `want`).
pub async fn room_within(
    c: &mut Client,
    group: GroupId,
    want: &[&str],
    wait: Duration,
) -> Vec<Seen> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.try_recv(left).await {
            Some(ServerFrame::VoiceRoom {
                group_id,
                participants,
                seq,
            }) if group_id == group => {
                let s = Seen {
                    seq,
                    names: names(participants),
                };
                let done = s.names == want;
                seen.push(s);
                if done {
                    return seen;
                }
            }
            Some(_) => continue,
            None => panic!("no 125 listing {want:?} within {wait:?}; saw {seen:?}"),
        }
    }
}

/// [`room_within`] the usual wait.
pub async fn room_is(c: &mut Client, group: GroupId, want: &[&str]) -> Vec<Seen> {
    room_within(c, group, want, WAIT).await
}
