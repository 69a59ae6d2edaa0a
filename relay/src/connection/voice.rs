//! Voice rooms on the session: VOICE_JOIN (120), VOICE_LEAVE (122),
//! VOICE_MUTE (124), and binary audio frames, with their per-socket caps.
//! Audio is lossy by design: it is forwarded to the other participants'
//! audio lanes (`socket.rs`) and stored nowhere.

use super::frames::{error_frame, relay_error};
use super::{Session, Stop};
use crate::cluster::{Cluster, VoiceError};
use crate::error::Error;
use crate::ratelimit::TokenBucket;
use crate::voice::{announce, JoinError, Participant, SpeakError};
use crate::App;
use bytes::Bytes;
use shared::audio::{self, MAX_AUDIO_FRAME};
use shared::{close, frame_type, ErrorCode, GroupId, ServerFrame, Target, UserId};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};

/// Audio frames per second a socket may send, after a burst.
pub(super) const AUDIO_FRAMES_PER_SEC: f64 = 100.0;
/// The burst of audio frames.
pub(super) const AUDIO_FRAME_BURST: f64 = 50.0;
/// Audio bytes per second a socket may send (Opus tops out at 510 kbit/s).
pub(super) const AUDIO_BYTES_PER_SEC: f64 = 64_000.0;
/// The burst of audio bytes.
pub(super) const AUDIO_BYTE_BURST: f64 = 64_000.0;
/// Refused audio frames a socket may send before it is closed (4002): a
/// burst, refilled at [`AUDIO_VIOLATION_RATE`] per second.
pub(super) const AUDIO_VIOLATION_BURST: f64 = 64.0;
/// See [`AUDIO_VIOLATION_BURST`].
pub(super) const AUDIO_VIOLATION_RATE: f64 = 8.0;

/// A socket's voice state, made on its first voice frame (an idle socket
/// carries only the `None`).
pub(super) struct VoiceState {
    /// The rooms this socket is in, to leave when it closes.
    pub(super) joined: Vec<GroupId>,
    frames: TokenBucket,
    bytes: TokenBucket,
    violations: TokenBucket,
}

impl VoiceState {
    fn new() -> Self {
        let now = Instant::now();
        VoiceState {
            joined: Vec::new(),
            frames: TokenBucket::new(AUDIO_FRAMES_PER_SEC, AUDIO_FRAME_BURST, now),
            bytes: TokenBucket::new(AUDIO_BYTES_PER_SEC, AUDIO_BYTE_BURST, now),
            violations: TokenBucket::new(AUDIO_VIOLATION_RATE, AUDIO_VIOLATION_BURST, now),
        }
    }
}

/// Takes a closed socket out of every room it was in (its members get a
/// 125 without it).
pub(super) async fn leave_all(app: &App, socket: u64, state: &VoiceState) {
    if let Some(c) = &app.cluster {
        for &group in &state.joined {
            let _ = c.voice().leave(group, socket).await;
        }
        return;
    }
    for &group in &state.joined {
        if let Some(change) = app.voice.leave(group, socket) {
            app.metrics.voice_participants.fetch_sub(1, Relaxed);
            announce(app, group, change).await;
        }
    }
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn voice_state(&mut self) -> &mut VoiceState {
        self.voice
            .get_or_insert_with(|| Box::new(VoiceState::new()))
    }

    async fn voice_error(&self, code: ErrorCode, message: String, req: u16) -> Result<(), Stop> {
        self.reply(self.send(&error_frame(code, message, Some(req))).await)
    }

    /// VOICE_JOIN: members only, up to the capacity; answered with 121
    /// (or a type 0 frame), then 125 to the group's online members.
    pub(super) async fn voice_join(&mut self, group: GroupId) -> Result<(), Stop> {
        let (me, name) = {
            let (u, name) = self.user.as_ref().expect("logged in");
            (u.id, name.clone())
        };
        let req = frame_type::VOICE_JOIN;
        if let Some(refused) = self.voice_member(me, group, req).await {
            return refused;
        }
        let p = Participant {
            socket: self.handle.id(),
            user: me,
            username: name,
            handle: self.handle.clone(),
            muted: false,
        };
        let capacity = self.app.voice.capacity();
        if let Some(c) = self.app.cluster.clone() {
            return self.voice_join_cluster(&c, group, p, capacity).await;
        }
        match self.app.voice.join(group, p) {
            Err(JoinError::Full) => {
                self.voice_error(
                    ErrorCode::RoomFull,
                    format!("the voice room is full ({capacity} participants)"),
                    req,
                )
                .await
            }
            Ok((change, changed)) => {
                if changed {
                    self.app.metrics.voice_participants.fetch_add(1, Relaxed);
                    self.voice_state().joined.push(group);
                }
                let answer = ServerFrame::VoiceJoined {
                    group_id: group,
                    participants: change.roster.clone(),
                    capacity,
                    seq: change.seq,
                };
                let sent = self.send(&answer).await;
                if changed {
                    announce(&self.app, group, change).await;
                }
                self.reply(sent)
            }
        }
    }

    /// VOICE_JOIN in a cluster: Redis decides (capacity across relays) and
    /// every relay pushes the 125 to its own members.
    async fn voice_join_cluster(
        &mut self,
        c: &Cluster,
        group: GroupId,
        p: Participant,
        capacity: u32,
    ) -> Result<(), Stop> {
        let req = frame_type::VOICE_JOIN;
        match c.voice().join(group, p, capacity).await {
            Err(VoiceError::Full) => {
                self.voice_error(
                    ErrorCode::RoomFull,
                    format!("the voice room is full ({capacity} participants)"),
                    req,
                )
                .await
            }
            Err(_) => self.voice_unavailable(req).await,
            Ok(joined) => {
                if joined.changed {
                    self.voice_state().joined.push(group);
                }
                let answer = ServerFrame::VoiceJoined {
                    group_id: group,
                    participants: joined.roster,
                    capacity,
                    seq: joined.seq,
                };
                let sent = self.send(&answer).await;
                self.reply(sent)
            }
        }
    }

    /// None if `me` is a member of `group`, else the refusal sent.
    async fn voice_member(&self, me: UserId, group: GroupId, req: u16) -> Option<Result<(), Stop>> {
        let refused = match self.app.store.membership(me, Target::Group(group)).await {
            Ok(Some(_)) => return None,
            Ok(None) => relay_error(&Error::NotMember, req),
            Err(e) => relay_error(&e, req),
        };
        Some(self.reply(self.send(&refused).await))
    }

    /// VOICE_QUERY: the room as it is now, as a 125 to this socket only
    /// (members only).
    pub(super) async fn voice_query(&mut self, group: GroupId) -> Result<(), Stop> {
        let me = self.user.as_ref().expect("logged in").0.id;
        let req = frame_type::VOICE_QUERY;
        if let Some(refused) = self.voice_member(me, group, req).await {
            return refused;
        }
        let (participants, seq) = match self.app.cluster.clone() {
            Some(c) => match c.voice().roster(group).await {
                Ok(room) => room,
                Err(_) => return self.voice_unavailable(req).await,
            },
            None => self.app.voice.roster(group),
        };
        let room = ServerFrame::VoiceRoom {
            group_id: group,
            participants,
            seq,
        };
        self.reply(self.send(&room).await)
    }

    async fn voice_unavailable(&self, req: u16) -> Result<(), Stop> {
        self.voice_error(
            ErrorCode::Unavailable,
            "voice rooms are unavailable: this relay cannot reach the cluster's Redis now; \
             retry later"
                .into(),
            req,
        )
        .await
    }

    /// VOICE_LEAVE: the members get a 125 without this socket.
    pub(super) async fn voice_leave(&mut self, group: GroupId) -> Result<(), Stop> {
        if let Some(c) = self.app.cluster.clone() {
            return match c.voice().leave(group, self.handle.id()).await {
                Ok(()) => {
                    self.voice_state().joined.retain(|g| *g != group);
                    Ok(())
                }
                Err(VoiceError::NotInRoom) => self.not_in_room(frame_type::VOICE_LEAVE).await,
                Err(_) => self.voice_unavailable(frame_type::VOICE_LEAVE).await,
            };
        }
        match self.app.voice.leave(group, self.handle.id()) {
            None => {
                self.voice_error(
                    ErrorCode::NotInRoom,
                    "you are not in that voice room".into(),
                    frame_type::VOICE_LEAVE,
                )
                .await
            }
            Some(change) => {
                self.app.metrics.voice_participants.fetch_sub(1, Relaxed);
                self.voice_state().joined.retain(|g| *g != group);
                announce(&self.app, group, change).await;
                Ok(())
            }
        }
    }

    /// VOICE_MUTE: a change is announced with a 125.
    pub(super) async fn voice_mute(&mut self, group: GroupId, muted: bool) -> Result<(), Stop> {
        if let Some(c) = self.app.cluster.clone() {
            return match c.voice().mute(group, self.handle.id(), muted).await {
                Ok(()) => Ok(()),
                Err(VoiceError::NotInRoom) => self.not_in_room(frame_type::VOICE_MUTE).await,
                Err(_) => self.voice_unavailable(frame_type::VOICE_MUTE).await,
            };
        }
        match self.app.voice.mute(group, self.handle.id(), muted) {
            Err(_) => {
                self.voice_error(
                    ErrorCode::NotInRoom,
                    "you are not in that voice room".into(),
                    frame_type::VOICE_MUTE,
                )
                .await
            }
            Ok(None) => Ok(()),
            Ok(Some(change)) => {
                announce(&self.app, group, change).await;
                Ok(())
            }
        }
    }

    async fn not_in_room(&self, req: u16) -> Result<(), Stop> {
        self.voice_error(
            ErrorCode::NotInRoom,
            "you are not in that voice room".into(),
            req,
        )
        .await
    }

    /// A binary frame after login: an audio frame, forwarded to the other
    /// participants of its room with the speaker's id inserted. Refused
    /// frames get a type 0 frame; too many refusals close the socket.
    pub(super) async fn on_binary(&mut self, data: Bytes) -> Result<(), Stop> {
        let me = self.user_id();
        let socket = self.handle.id();
        let now = Instant::now();
        let len = data.len();
        let refused = if len > MAX_AUDIO_FRAME {
            Some((
                ErrorCode::AudioTooLarge,
                format!("audio frame is {len} bytes; the limit is {MAX_AUDIO_FRAME}"),
            ))
        } else {
            match audio::parse_client(&data) {
                Err(e) => Some((ErrorCode::MalformedAudio, e.to_string())),
                Ok((h, _)) => {
                    let st = self.voice_state();
                    if !st.frames.try_take(now) || !st.bytes.try_take_n(len as f32, now) {
                        Some((
                            ErrorCode::AudioRateLimited,
                            format!(
                                "more than {AUDIO_FRAMES_PER_SEC} audio frames or \
                                 {AUDIO_BYTES_PER_SEC} bytes per second; dropped"
                            ),
                        ))
                    } else {
                        match self.app.voice.listeners(h.group_id, socket) {
                            Err(SpeakError::NotInRoom) => Some((
                                ErrorCode::NotInRoom,
                                format!("you are not in the voice room of group {}", h.group_id),
                            )),
                            Err(SpeakError::Muted) => Some((
                                ErrorCode::Muted,
                                "you are muted in that voice room; nothing was sent".into(),
                            )),
                            Ok(listeners) => {
                                let m = &self.app.metrics;
                                m.audio_frames_in_total.fetch_add(1, Relaxed);
                                let out = Bytes::from(audio::to_listener(&data, me));
                                for l in listeners {
                                    l.push_audio(out.clone(), m);
                                }
                                if let Some(c) = &self.app.cluster {
                                    c.voice().publish_audio(h.group_id, &out);
                                }
                                None
                            }
                        }
                    }
                }
            }
        };
        match refused {
            None => Ok(()),
            Some((code, message)) => self.audio_refused(code, message, now).await,
        }
    }

    async fn audio_refused(
        &mut self,
        code: ErrorCode,
        message: String,
        now: Instant,
    ) -> Result<(), Stop> {
        self.app
            .metrics
            .audio_frames_refused_total
            .fetch_add(1, Relaxed);
        let persistent = !self.voice_state().violations.try_take(now);
        let sent = self.send(&error_frame(code, message, None)).await;
        if persistent {
            return Err(Stop::Close(close::PROTOCOL_VIOLATION));
        }
        self.reply(sent)
    }
}
