//! The WebSocket session, with the web app's rules
//! (`frontend/src/services/ws/mod.rs`): LOGIN first, a PING every 10 s, a
//! socket silent for 25 s is dead, reconnect with backoff and jitter, chats
//! resent with the same `clientMsgId` until their 81, pushes deduped by
//! `msgId` and acked once the consumer has shown them (a re-push of a shown
//! message is acked again, never shown twice).

use crate::backoff::Backoff;
use futures_util::{SinkExt, StreamExt};
use shared::{
    close, ChatMessage, ChatSend, ClientFrame, ErrorCode, GroupEvent, MsgId, ServerFrame, UserId,
};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Heartbeat period.
const PING_EVERY: Duration = Duration::from_secs(10);
/// A socket that has read nothing for this long is dead.
const DEAD_AFTER: Duration = Duration::from_secs(25);
/// Time to connect and get the LOGIN answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Message ids remembered for dedupe.
const SEEN_CAP: usize = 100_000;
/// Events waiting for the display, at most.
const EVENTS: usize = 256;

/// What the session tells its consumer.
#[derive(Debug)]
pub enum Event {
    /// Logged in (again).
    Online {
        /// Who.
        user_id: UserId,
        /// Their name.
        username: String,
    },
    /// The socket is gone; the next attempt is in `retry_in`.
    Offline {
        /// Why.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// A message not shown before: show it, then call [`Session::ack`].
    Message(ChatMessage),
    /// A chat of ours is stored (81).
    Stored {
        /// Our key.
        client_msg_id: String,
        /// The relay's id.
        msg_id: MsgId,
    },
    /// A chat of ours (or another frame) was refused (type 0).
    Refused {
        /// Our key, when it was a chat.
        client_msg_id: Option<String>,
        /// Why.
        code: ErrorCode,
        /// Human-readable.
        message: String,
    },
    /// A contact came online or left.
    Presence {
        /// Who.
        username: String,
        /// Online now.
        online: bool,
    },
    /// A group changed.
    Group(GroupEvent),
    /// The token was refused or revoked: the session has ended.
    AuthFailed(String),
}

enum Cmd {
    Send(ChatSend),
    Ack(MsgId),
    Quit,
}

/// The handle of a running session; dropping it ends the session.
pub struct Session {
    tx: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Starts a session on `ws_url` with `token`. With `receive` false,
    /// pushes are ignored and never acked (a `send` must not take the
    /// user's messages away from their real clients).
    pub fn start(ws_url: String, token: String, receive: bool) -> (Session, mpsc::Receiver<Event>) {
        // Commands are the user's lines and one ack per event shown, so
        // their number is bounded by `EVENTS` and typing; events are
        // bounded: a display that falls behind stops the socket's reads,
        // and the relay's own per-socket queue takes it from there.
        let (tx, rx) = mpsc::unbounded_channel();
        let (etx, erx) = mpsc::channel(EVENTS);
        let task = tokio::spawn(run(ws_url, token, receive, rx, etx));
        (Session { tx, task }, erx)
    }

    /// Sends a chat (its `client_msg_id` must be set); resent after a
    /// reconnect until it is answered.
    pub fn send(&self, chat: ChatSend) {
        let _ = self.tx.send(Cmd::Send(chat));
    }

    /// The message was shown: ack it.
    pub fn ack(&self, msg_id: MsgId) {
        let _ = self.tx.send(Cmd::Ack(msg_id));
    }

    /// Closes the socket (1000), after what was queued before (acks), and
    /// waits (at most 3 s) for the session to end.
    pub async fn close(self) {
        let _ = self.tx.send(Cmd::Quit);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.task).await;
    }
}

/// How one socket ended.
enum End {
    Quit,
    Lost(String),
    Auth(String),
}

#[derive(Default)]
struct State {
    /// Chats waiting for their 81, in sending order.
    pending: Vec<(String, ChatSend)>,
    /// Pushed ids: `true` once shown (acked by the consumer).
    seen: HashMap<MsgId, bool>,
    seen_order: VecDeque<MsgId>,
}

impl State {
    fn queue(&mut self, c: ChatSend) {
        let key = c.client_msg_id.clone().unwrap_or_default();
        if !self.pending.iter().any(|(k, _)| *k == key) {
            self.pending.push((key, c));
        }
    }

    fn answered(&mut self, key: &str) -> bool {
        let before = self.pending.len();
        self.pending.retain(|(k, _)| k != key);
        before != self.pending.len()
    }

    fn shown(&mut self, id: MsgId) {
        if let Some(s) = self.seen.get_mut(&id) {
            *s = true;
        }
    }

    /// A push: `Some(true)` to ack (shown before), `Some(false)` new (to
    /// show), `None` already waiting to be shown.
    fn pushed(&mut self, id: MsgId) -> Option<bool> {
        match self.seen.get(&id) {
            Some(true) => Some(true),
            Some(false) => None,
            None => {
                self.seen.insert(id, false);
                self.seen_order.push_back(id);
                while self.seen_order.len() > SEEN_CAP {
                    if let Some(old) = self.seen_order.pop_front() {
                        self.seen.remove(&old);
                    }
                }
                Some(false)
            }
        }
    }
}

async fn run(
    url: String,
    token: String,
    receive: bool,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::Sender<Event>,
) {
    let mut st = State::default();
    let mut backoff = Backoff::default();
    loop {
        let reason = match socket(
            &url,
            &token,
            receive,
            &mut st,
            &mut cmds,
            &events,
            &mut backoff,
        )
        .await
        {
            End::Quit => return,
            End::Auth(m) => {
                let _ = events.send(Event::AuthFailed(m)).await;
                return;
            }
            End::Lost(reason) => reason,
        };
        let retry_in = backoff.next_delay();
        if events
            .send(Event::Offline { reason, retry_in })
            .await
            .is_err()
        {
            return;
        }
        let pause = tokio::time::sleep(retry_in);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                c = cmds.recv() => match c {
                    None | Some(Cmd::Quit) => return,
                    Some(Cmd::Send(c)) => st.queue(c),
                    // Acked when the relay pushes it again.
                    Some(Cmd::Ack(id)) => st.shown(id),
                },
            }
        }
    }
}

fn text(f: &ClientFrame) -> Message {
    Message::text(f.encode())
}

/// One socket: connect, LOGIN, then frames until it ends.
async fn socket(
    url: &str,
    token: &str,
    receive: bool,
    st: &mut State,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    events: &mpsc::Sender<Event>,
    backoff: &mut Backoff,
) -> End {
    let login = async {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        let login = ClientFrame::Login {
            token: token.to_string(),
        };
        sink.send(text(&login)).await.map_err(|e| e.to_string())?;
        while let Some(m) = stream.next().await {
            let Ok(Message::Text(t)) = m else { continue };
            match ServerFrame::decode(&t) {
                Ok(ServerFrame::LoginOk {
                    user_id, username, ..
                }) => return Ok(Ok((sink, stream, user_id, username))),
                Ok(ServerFrame::LoginFailed { code, message }) => {
                    return Ok(Err((code, message)));
                }
                _ => {}
            }
        }
        Err("closed before the login answer".to_string())
    };
    let (mut sink, mut stream, user_id, username) =
        match tokio::time::timeout(CONNECT_TIMEOUT, login).await {
            Err(_) => return End::Lost("no login answer in time".into()),
            Ok(Err(e)) => return End::Lost(e),
            Ok(Ok(Err((ErrorCode::InvalidToken, m)))) => {
                return End::Auth(format!("the relay refused the saved token: {m}"))
            }
            Ok(Ok(Err((code, m)))) => return End::Lost(format!("login failed: {m} ({code})")),
            Ok(Ok(Ok(s))) => s,
        };
    backoff.reset();
    if events
        .send(Event::Online { user_id, username })
        .await
        .is_err()
    {
        return End::Quit;
    }
    for (_, c) in &st.pending {
        if sink
            .send(text(&ClientFrame::Chat(c.clone())))
            .await
            .is_err()
        {
            return End::Lost("connection lost".into());
        }
    }
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_read = Instant::now();
    loop {
        let mut out: Vec<ClientFrame> = Vec::new();
        tokio::select! {
            m = stream.next() => {
                last_read = Instant::now();
                match m {
                    None | Some(Err(_)) => return End::Lost("connection lost".into()),
                    Some(Ok(Message::Close(f))) => {
                        let code = f.as_ref().map(|f| u16::from(f.code));
                        if code == Some(close::LOGGED_OUT) {
                            return End::Auth("logged out (the token was revoked)".into());
                        }
                        let why = f.map(|f| format!("closed ({}: {})", u16::from(f.code), f.reason));
                        return End::Lost(why.unwrap_or_else(|| "closed".into()));
                    }
                    Some(Ok(Message::Text(t))) => {
                        if let Some(ev) = on_frame(&t, receive, st, &mut out) {
                            if events.send(ev).await.is_err() {
                                return End::Quit;
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                if last_read.elapsed() > DEAD_AFTER {
                    return End::Lost("the relay stopped answering".into());
                }
                out.push(ClientFrame::Ping { from_id: None });
            }
            c = cmds.recv() => match c {
                None | Some(Cmd::Quit) => {
                    let _ = sink.send(Message::Close(None)).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(_)) = stream.next().await {}
                    }).await;
                    return End::Quit;
                }
                Some(Cmd::Send(c)) => {
                    st.queue(c.clone());
                    out.push(ClientFrame::Chat(c));
                }
                Some(Cmd::Ack(msg_id)) => {
                    st.shown(msg_id);
                    out.push(ClientFrame::Ack { msg_id });
                }
            },
        }
        for f in &out {
            if sink.send(text(f)).await.is_err() {
                return End::Lost("connection lost".into());
            }
        }
    }
}

/// One frame from the relay; frames to answer go to `out`.
/// What a frame from the relay means for the user, if anything; acks for
/// pushes already shown go to `out`.
fn on_frame(t: &str, receive: bool, st: &mut State, out: &mut Vec<ClientFrame>) -> Option<Event> {
    // Frames this build does not know (voice rooms) are ignored.
    let Ok(frame) = ServerFrame::decode(t) else {
        return None;
    };
    match frame {
        ServerFrame::Chat(m) if receive => match st.pushed(m.msg_id) {
            Some(true) => {
                out.push(ClientFrame::Ack { msg_id: m.msg_id });
                None
            }
            Some(false) => Some(Event::Message(m)),
            None => None,
        },
        ServerFrame::ChatResp {
            msg_id,
            client_msg_id: Some(key),
            ..
        } => st.answered(&key).then_some(Event::Stored {
            client_msg_id: key,
            msg_id,
        }),
        ServerFrame::Error(e) => {
            let ours = e.client_msg_id.as_deref().map(|k| st.answered(k));
            (ours != Some(false)).then_some(Event::Refused {
                client_msg_id: e.client_msg_id,
                code: e.code,
                message: e.message,
            })
        }
        ServerFrame::Presence {
            username, online, ..
        } => Some(Event::Presence { username, online }),
        ServerFrame::GroupEvent(g) => Some(Event::Group(g)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_are_shown_once_and_acked_again_after_shown() {
        let mut st = State::default();
        let id = MsgId::from_u128(1);
        assert_eq!(st.pushed(id), Some(false), "new: show it");
        assert_eq!(st.pushed(id), None, "still being shown: nothing");
        st.shown(id);
        assert_eq!(st.pushed(id), Some(true), "re-push of a shown one: ack");
    }
}
