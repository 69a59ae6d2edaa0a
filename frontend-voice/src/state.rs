//! What the voice panel knows and what a click sends: pure, so it is tested
//! natively (`cargo test -p frontend-voice`). The browser parts (`capture`,
//! `playback`, `view`) act on the [`Effect`]s it returns.

use shared::{ClientFrame, ErrorCode, ErrorFrame, GroupId, ServerFrame, UserId, VoiceParticipant};
use std::collections::HashMap;

/// What this browser can do with voice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Microphone capture and Opus encoding (WebCodecs `AudioEncoder` and
    /// `MediaStreamTrackProcessor`), and decoding.
    Talk,
    /// Decoding only: joins muted, hears the others.
    Listen,
    /// No WebCodecs `AudioDecoder`: voice rooms are not available.
    None,
}

/// Where this tab stands with a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// VOICE_JOIN sent, no answer yet.
    Joining,
    /// In the room (121 received).
    In,
}

/// A button in the panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Click {
    /// Join (or start) the group's call.
    Join(GroupId),
    /// Leave the call this tab is in.
    Leave,
    /// Mute (true) or unmute.
    Mute(bool),
}

/// What the browser side must do after a change.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send this frame on the app's socket.
    Send(ClientFrame),
    /// We are in `GroupId`'s room: start playback, and capture unless muted.
    Start(GroupId),
    /// We are out: stop the microphone and playback.
    Stop,
    /// Capture pauses (true) or resumes.
    Muted(bool),
}

/// The voice state of one tab.
#[derive(Debug)]
pub struct Model {
    me: UserId,
    capability: Capability,
    /// Every room with someone in it that this tab was told of.
    rooms: HashMap<GroupId, Vec<VoiceParticipant>>,
    /// The last change number applied per group (121/125 `seq`): a push
    /// with a lower one is stale.
    seqs: HashMap<GroupId, u64>,
    /// The room this tab is in or joining (at most one at a time).
    mine: Option<(GroupId, Phase)>,
    /// Rejoin this room after the socket comes back.
    rejoin: Option<GroupId>,
    /// The group whose view (and panel) is open.
    shown: Option<GroupId>,
    muted: bool,
    online: bool,
    /// The last problem to show, if any.
    error: Option<String>,
}

impl Model {
    /// A tab of user `me` that can do `capability`.
    pub fn new(me: UserId, capability: Capability) -> Self {
        Model {
            me,
            capability,
            rooms: HashMap::new(),
            seqs: HashMap::new(),
            mine: None,
            rejoin: None,
            shown: None,
            muted: false,
            online: false,
            error: match capability {
                Capability::None => Some(
                    "This browser cannot play voice rooms (it lacks WebCodecs); \
                     use a current Chrome, Edge or Safari."
                        .into(),
                ),
                _ => None,
            },
        }
    }

    /// Who is in `group`'s room (empty: no call).
    pub fn participants(&self, group: GroupId) -> &[VoiceParticipant] {
        self.rooms.get(&group).map_or(&[], |v| v.as_slice())
    }

    /// The room this tab is in or joining.
    pub fn mine(&self) -> Option<(GroupId, Phase)> {
        self.mine
    }

    /// Whether this tab is muted.
    pub fn muted(&self) -> bool {
        self.muted
    }

    /// The message to show, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// What the browser can do.
    pub fn capability(&self) -> Capability {
        self.capability
    }

    /// Whether the socket is logged in.
    pub fn online(&self) -> bool {
        self.online
    }

    /// This tab's user.
    pub fn me(&self) -> UserId {
        self.me
    }

    /// Shows a problem the browser side met (no microphone, …).
    pub fn set_error(&mut self, message: String) {
        self.error = Some(message);
    }

    /// A button was pressed.
    pub fn click(&mut self, click: Click) -> Vec<Effect> {
        let mut out = Vec::new();
        match click {
            Click::Join(group) => {
                if self.capability == Capability::None {
                    return out;
                }
                if !self.online {
                    self.error = Some("Offline: voice comes back with the connection.".into());
                    return out;
                }
                if let Some((old, _)) = self.mine {
                    if old == group {
                        return out;
                    }
                    out.push(Effect::Send(ClientFrame::VoiceLeave { group_id: old }));
                    out.push(Effect::Stop);
                }
                self.error = None;
                self.mine = Some((group, Phase::Joining));
                self.rejoin = Some(group);
                self.muted = self.capability == Capability::Listen;
                out.push(Effect::Send(ClientFrame::VoiceJoin { group_id: group }));
            }
            Click::Leave => {
                self.rejoin = None;
                if let Some((group, _)) = self.mine.take() {
                    out.push(Effect::Send(ClientFrame::VoiceLeave { group_id: group }));
                    out.push(Effect::Stop);
                }
            }
            Click::Mute(muted) => {
                if muted == self.muted || (!muted && self.capability != Capability::Talk) {
                    return out;
                }
                if let Some((group, Phase::In)) = self.mine {
                    self.muted = muted;
                    out.push(Effect::Muted(muted));
                    out.push(Effect::Send(ClientFrame::VoiceMute {
                        group_id: group,
                        muted,
                    }));
                }
            }
        }
        out
    }

    /// The group view open now (None: no group's). A call that started
    /// before this page knew of it is learnt by asking (VOICE_QUERY).
    pub fn show(&mut self, group: Option<GroupId>) -> Vec<Effect> {
        if group == self.shown {
            return Vec::new();
        }
        self.shown = group;
        self.query()
    }

    fn query(&self) -> Vec<Effect> {
        match self.shown {
            Some(group) if self.online => {
                vec![Effect::Send(ClientFrame::VoiceQuery { group_id: group })]
            }
            _ => Vec::new(),
        }
    }

    /// The app's socket logged in (true) or dropped (false). The relay
    /// forgets a socket's rooms when it closes, and a restarted relay
    /// numbers its changes from scratch, so both forget what was known.
    pub fn set_online(&mut self, online: bool) -> Vec<Effect> {
        self.online = online;
        self.rooms.clear();
        self.seqs.clear();
        let mut out = Vec::new();
        if self.mine.take().is_some() {
            out.push(Effect::Stop);
        }
        if online {
            if let Some(group) = self.rejoin {
                out.extend(self.click(Click::Join(group)));
            }
            if self.shown != self.rejoin {
                out.extend(self.query());
            }
        }
        out
    }

    /// A frame from the relay the app passed on (121, 125, voice errors).
    pub fn frame(&mut self, frame: ServerFrame) -> Vec<Effect> {
        match frame {
            ServerFrame::VoiceJoined {
                group_id,
                participants,
                seq,
                ..
            } => {
                self.room(group_id, participants, seq);
                if self.mine == Some((group_id, Phase::Joining)) {
                    self.mine = Some((group_id, Phase::In));
                    let mut out = vec![Effect::Start(group_id)];
                    if self.muted {
                        out.push(Effect::Muted(true));
                        out.push(Effect::Send(ClientFrame::VoiceMute {
                            group_id,
                            muted: true,
                        }));
                    }
                    return out;
                }
                Vec::new()
            }
            ServerFrame::VoiceRoom {
                group_id,
                participants,
                seq,
            } => {
                if !self.room(group_id, participants, seq) {
                    return Vec::new();
                }
                let present = self
                    .participants(group_id)
                    .iter()
                    .any(|p| p.user_id == self.me);
                if self.mine == Some((group_id, Phase::In)) && !present {
                    // Taken out (left the group in another tab, removed).
                    self.mine = None;
                    self.rejoin = None;
                    return vec![Effect::Stop];
                }
                Vec::new()
            }
            ServerFrame::Error(e) => self.error_frame(&e),
            _ => Vec::new(),
        }
    }

    /// Applies a room's participant list unless it is stale; returns
    /// whether it was applied.
    fn room(&mut self, group: GroupId, participants: Vec<VoiceParticipant>, seq: u64) -> bool {
        if self.seqs.get(&group).is_some_and(|&last| seq < last) {
            return false;
        }
        self.seqs.insert(group, seq);
        if participants.is_empty() {
            self.rooms.remove(&group);
        } else {
            self.rooms.insert(group, participants);
        }
        true
    }

    fn error_frame(&mut self, e: &ErrorFrame) -> Vec<Effect> {
        match e.code {
            // Audio over the caps is dropped; nothing to show for a blip.
            ErrorCode::AudioRateLimited => Vec::new(),
            ErrorCode::NotInRoom => {
                // The relay lost us (restart, eviction): we are out.
                self.rejoin = None;
                self.error = Some("You are no longer in the call.".into());
                self.mine.take().map(|_| Effect::Stop).into_iter().collect()
            }
            _ if matches!(self.mine, Some((_, Phase::Joining))) => {
                self.mine = None;
                self.rejoin = None;
                self.error = Some(match e.code {
                    ErrorCode::RoomFull => "The call is full.".into(),
                    _ => format!("Could not join the call: {}", e.message),
                });
                Vec::new()
            }
            _ => {
                self.error = Some(e.message.clone());
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests;
