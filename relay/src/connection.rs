//! One WebSocket session: login, heartbeat, chat, acks.
//!
//! Each socket runs two tasks. The **reader** (this module's `Session`)
//! parses frames and acts on them, one at a time. The **writer** drains the
//! socket's bounded queue into the connection, batching every frame that is
//! ready into one flush. Splitting them means a client that stops reading
//! blocks only its own writer; the queue then fills and the socket is closed
//! as a slow consumer, while the reader keeps the idle timer honest.

use crate::auth::token_hash;
use crate::clock::now_ms;
use crate::hub::{AckOutcome, Registration, SyncEnd, SMALL_GROUP};
use crate::ratelimit::TokenBucket;
use crate::socket::{close_reason, encode, SocketHandle};
use crate::store::{ChatWrite, UserRef, Write};
use crate::App;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use shared::{
    close, ChatSend, ClientFrame, ErrorCode, ErrorFrame, FrameError, MsgId, ServerFrame, Target,
};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// Typing notices per conversation are relayed at most this often.
const TYPING_THROTTLE: Duration = Duration::from_secs(1);
/// Backlog messages loaded per query at login.
const BACKLOG_PAGE: u32 = 256;
/// Frames written per flush at most.
const WRITE_BATCH: usize = 64;
/// How long a closing socket gets to flush and exchange close frames.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// WebSocket settings: frames over the protocol limit are refused by
/// tungstenite before they are buffered; the small read buffer is what keeps
/// an idle connection cheap (tungstenite's default is 128 KiB, all of it
/// resident once read into). 2 KiB still takes a dozen typical frames per
/// read; a larger frame grows that one socket's buffer as needed.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(0)
        .max_write_buffer_size(shared::limits::MAX_FRAME_BYTES * 4)
        .max_message_size(Some(shared::limits::MAX_FRAME_BYTES))
        .max_frame_size(Some(shared::limits::MAX_FRAME_BYTES))
}

/// Runs a session on an upgraded connection until it closes. `permit` is
/// the connection's slot under the connection cap, held until the end.
pub async fn serve<S, P: Send>(ws: WebSocketStream<S>, app: Arc<App>, permit: P)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _permit = permit;
    let (handle, rx) = SocketHandle::new(app.hub.next_socket_id(), app.config.outbound_queue);
    let (sink, stream) = ws.split();
    app.metrics.ws_sessions.fetch_add(1, Relaxed);
    let writer = tokio::spawn(write_loop(sink, rx, handle.clone()));
    let mut session = Session {
        inflight: Arc::new(Semaphore::new((app.config.outbound_queue / 2).max(1))),
        typed: Vec::new(),
        bucket: TokenBucket::new(
            app.config.rate_limit,
            app.config.rate_burst,
            std::time::Instant::now(),
        ),
        app: app.clone(),
        handle,
        stream,
        user: None,
        registration: None,
    };
    session.run().await;
    // Unregister before waiting for the writer, so nothing new is queued.
    let Session {
        handle,
        mut stream,
        registration,
        ..
    } = session;
    drop(registration);
    if handle.killed_with().is_none() {
        handle.kill(close::NORMAL);
    }
    drop(handle);
    // Let the writer flush and send its close frame, and read until the
    // peer answers: closing with unread input would make the kernel send a
    // reset, and the client could miss the close code.
    let _ = timeout(CLOSE_GRACE, async {
        let _ = writer.await;
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    app.metrics.ws_sessions.fetch_sub(1, Relaxed);
}

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;

fn close_message(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: close_reason(code).into(),
    }))
}

async fn write_batch<S>(sink: &mut Sink<S>, batch: &mut Vec<Utf8Bytes>) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for t in batch.drain(..) {
        sink.feed(Message::Text(t)).await?;
    }
    sink.flush().await
}

/// Drains the socket's queue into the connection until a close.
async fn write_loop<S>(mut sink: Sink<S>, mut rx: mpsc::Receiver<Utf8Bytes>, handle: SocketHandle)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Grows on demand: most sockets are idle, and a preallocated batch of
    // 64 frames would cost 2 KiB per connection.
    let mut batch = Vec::new();
    let killed = handle.killed();
    tokio::pin!(killed);
    let code = loop {
        tokio::select! {
            biased;
            code = &mut killed => break Some(code),
            n = rx.recv_many(&mut batch, WRITE_BATCH) => {
                if n == 0 {
                    break None;
                }
                handle.writing(true);
                tokio::select! {
                    biased;
                    code = &mut killed => break Some(code),
                    r = write_batch(&mut sink, &mut batch) => if r.is_err() {
                        // The peer is gone: stop the reader too.
                        handle.kill(close::NORMAL);
                        return;
                    },
                }
                handle.writing(false);
            }
        }
    };
    // Killed (or every sender gone): flush what is already queued, then
    // close, within a bounded time; a stuck peer just gets dropped.
    let code = code.unwrap_or(close::NORMAL);
    let _ = timeout(CLOSE_GRACE, async {
        while let Ok(t) = rx.try_recv() {
            if code != close::SLOW_CONSUMER {
                sink.feed(Message::Text(t)).await?;
            }
        }
        sink.send(close_message(code)).await
    })
    .await;
}

struct Session<S> {
    app: Arc<App>,
    handle: SocketHandle,
    stream: SplitStream<WebSocketStream<S>>,
    bucket: TokenBucket,
    /// Chats sent but not yet answered (81 or error); bounded to half the
    /// outbound queue, see `ChatWrite::slot`.
    inflight: Arc<Semaphore>,
    /// Recent typing notices, for the per-conversation throttle.
    typed: Vec<(Target, Instant)>,
    user: Option<(UserRef, Arc<str>)>,
    registration: Option<Registration>,
}

/// Why the main loop stopped.
enum Stop {
    /// Close with this code after flushing what is queued.
    Close(u16),
    /// Already closing (killed, or the peer went away).
    Gone,
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn send(&self, frame: &ServerFrame) -> bool {
        if matches!(frame, ServerFrame::Error(_)) {
            self.app.metrics.errors_total.fetch_add(1, Relaxed);
        }
        self.handle.send(encode(frame), &self.app.metrics).await
    }

    async fn send_error(&self, e: &FrameError) -> bool {
        self.send(&e.to_frame()).await
    }

    async fn run(&mut self) {
        // Boxed: the login state is only needed once, and inline it would
        // enlarge every idle connection's task for its whole life.
        let stop = match Box::pin(self.login()).await {
            Ok(()) => self.main_loop().await,
            Err(stop) => stop,
        };
        if let Stop::Close(code) = stop {
            self.handle.kill(code);
        }
    }

    /// Reads the next message, or stops on kill / deadline.
    async fn next(&mut self, deadline: Instant) -> Result<Option<Message>, Stop> {
        tokio::select! {
            biased;
            _ = self.handle.killed() => Err(Stop::Gone),
            m = self.stream.next() => match m {
                None => Err(Stop::Gone),
                Some(Ok(m)) => {
                    Ok(Some(m))
                }
                Some(Err(e)) => Err(self.stream_error(e).await),
            },
            _ = sleep_until(deadline) => Ok(None),
        }
    }

    async fn stream_error(&self, e: WsError) -> Stop {
        match e {
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                self.send(&ServerFrame::error(
                    ErrorCode::FrameTooLarge,
                    format!("frame is {size} bytes; the limit is {max_size}"),
                ))
                .await;
                Stop::Close(close::TOO_BIG)
            }
            WsError::Utf8(_) => Stop::Close(1007),
            e => {
                tracing::debug!(socket = self.handle.id(), error = %e, "WebSocket read error");
                Stop::Gone
            }
        }
    }

    /// Waits for LOGIN, authenticates, registers and sends the backlog.
    async fn login(&mut self) -> Result<(), Stop> {
        let deadline = Instant::now() + self.app.config.login_timeout;
        let text = loop {
            match self.next(deadline).await? {
                None => {
                    self.send(&ServerFrame::error(
                        ErrorCode::NotLoggedIn,
                        "no LOGIN frame in time",
                    ))
                    .await;
                    return Err(Stop::Close(close::PROTOCOL_VIOLATION));
                }
                Some(Message::Text(t)) => break t,
                Some(Message::Binary(_)) => return Err(self.binary().await),
                Some(Message::Close(_)) => return Err(Stop::Gone),
                Some(_) => continue, // control frames
            }
        };
        self.app.metrics.frames_in_total.fetch_add(1, Relaxed);
        let token = match ClientFrame::decode(&text) {
            Ok(ClientFrame::Login { token }) => token,
            Err(e) if e.code == ErrorCode::InvalidToken => return Err(self.login_failed().await),
            Err(e) => {
                self.send_error(&e).await;
                return Err(Stop::Close(close::PROTOCOL_VIOLATION));
            }
            Ok(other) => {
                let e = FrameError {
                    code: ErrorCode::NotLoggedIn,
                    message: "the first frame must be LOGIN (type 10)".into(),
                    req_type: Some(other.type_code().to_string()),
                    client_msg_id: None,
                };
                self.send_error(&e).await;
                return Err(Stop::Close(close::PROTOCOL_VIOLATION));
            }
        };
        let hash = token_hash(&token);
        let store = &self.app.store;
        let looked_up = match store.token_user(hash, now_ms()).await {
            Ok(Some(u)) => store
                .contacts(u.id, SMALL_GROUP as u32)
                .await
                .map(|c| Some((u, c))),
            other => other.map(|_| None),
        };
        let (user, contacts) = match looked_up {
            Ok(Some(found)) => found,
            Ok(None) => return Err(self.login_failed().await),
            Err(e) => {
                tracing::error!(error = %e, "login lookup failed");
                self.send(&ServerFrame::LoginFailed {
                    code: ErrorCode::Internal,
                    message: "internal error; try again".into(),
                })
                .await;
                return Err(Stop::Close(close::INTERNAL_ERROR));
            }
        };
        self.app.metrics.logins_total.fetch_add(1, Relaxed);
        tracing::debug!(socket = self.handle.id(), user = %user.id, "logged in");
        // LOGIN_RESP is queued before the socket is registered: once it is,
        // pushes and receipts for the user can reach it at any moment, and
        // the client must see the 11 first.
        let ok = ServerFrame::LoginOk {
            user_id: user.id,
            username: user.username.clone(),
            ts: now_ms(),
        };
        if !self.send(&ok).await {
            return Err(Stop::Gone);
        }
        let (registration, online) =
            self.app
                .hub
                .register(&user, self.handle.clone(), hash, &contacts);
        self.registration = Some(registration);
        let name: Arc<str> = user.username.as_str().into();
        self.user = Some((user, name));
        // Presence snapshot: which contacts are online right now.
        for c in online {
            let p = ServerFrame::Presence {
                user_id: c.id,
                username: c.username,
                online: true,
                ts: now_ms(),
            };
            if !self.send(&p).await {
                return Err(Stop::Gone);
            }
        }
        self.sync_backlog().await
    }

    async fn login_failed(&self) -> Stop {
        self.app.metrics.login_failures_total.fetch_add(1, Relaxed);
        self.send(&ServerFrame::LoginFailed {
            code: ErrorCode::InvalidToken,
            message: "unknown, expired or revoked token".into(),
        })
        .await;
        Stop::Close(close::AUTH_FAILED)
    }

    /// Pushes every unacked message, oldest first, page by page, waiting for
    /// queue room (the client's reading speed) between frames.
    async fn sync_backlog(&mut self) -> Result<(), Stop> {
        let user = self.user_id();
        let mut after: Option<MsgId> = None;
        loop {
            let page = match self.app.store.pending(user, after, BACKLOG_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, %user, "backlog query failed");
                    self.send(&ServerFrame::error(
                        ErrorCode::Internal,
                        "could not load your messages; reconnect",
                    ))
                    .await;
                    return Err(Stop::Close(close::INTERNAL_ERROR));
                }
            };
            let full = page.len() as u32 == BACKLOG_PAGE;
            if let Some(last) = page.last() {
                after = Some(last.msg_id);
            }
            for frame in self.app.hub.backlog(user, &page) {
                if !self.handle.send(frame, &self.app.metrics).await {
                    return Err(Stop::Gone);
                }
                self.app.metrics.messages_out_total.fetch_add(1, Relaxed);
            }
            if full {
                continue;
            }
            match self.app.hub.finish_sync(user, self.handle.id(), after) {
                SyncEnd::Done => return Ok(()),
                SyncEnd::Reload => continue,
            }
        }
    }

    fn user_id(&self) -> shared::UserId {
        self.user.as_ref().expect("logged in").0.id
    }

    async fn binary(&self) -> Stop {
        self.send(&ServerFrame::error(
            ErrorCode::BinaryNotSupported,
            "binary frames are not supported; send JSON text frames",
        ))
        .await;
        Stop::Close(close::UNSUPPORTED_DATA)
    }

    async fn main_loop(&mut self) -> Stop {
        let idle = self.app.config.idle_timeout;
        // One timer and one kill listener for the whole session, not one
        // per frame: re-arming a timer on every frame costs a timer-wheel
        // update per message. The timer fires at the earliest possible
        // deadline and is pushed back if frames arrived meanwhile.
        let handle = self.handle.clone();
        let killed = handle.killed();
        tokio::pin!(killed);
        let mut last_read = Instant::now();
        let timer = sleep_until(last_read + idle);
        tokio::pin!(timer);
        loop {
            let next = tokio::select! {
                biased;
                _ = &mut killed => return Stop::Gone,
                m = self.stream.next() => m,
                _ = &mut timer => {
                    let due = last_read + idle;
                    if due > Instant::now() {
                        timer.as_mut().reset(due);
                        continue;
                    }
                    self.app.metrics.idle_timeouts_total.fetch_add(1, Relaxed);
                    self.send(&ServerFrame::HeartbeatTimeout {
                        message: format!("no frame for {}s", idle.as_secs_f32()),
                    })
                    .await;
                    return Stop::Close(close::IDLE_TIMEOUT);
                }
            };
            let msg = match next {
                None => return Stop::Gone,
                Some(Err(e)) => return Box::pin(self.stream_error(e)).await,
                Some(Ok(m)) => m,
            };
            last_read = Instant::now();
            match msg {
                Message::Text(t) => {
                    self.app.metrics.frames_in_total.fetch_add(1, Relaxed);
                    // Boxed so the (rare, large) states of frame handling
                    // do not enlarge the idle connection's task.
                    if let Err(stop) = Box::pin(self.on_text(&t)).await {
                        return stop;
                    }
                }
                Message::Binary(_) => return Box::pin(self.binary()).await,
                Message::Close(_) => return Stop::Gone,
                _ => {} // ping/pong control frames: tungstenite answers pings
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Stop> {
        let frame = ClientFrame::decode(text);
        let exempt = matches!(
            frame,
            Ok(ClientFrame::Ping { .. } | ClientFrame::Ack { .. })
        );
        if !exempt && !self.bucket.try_take(std::time::Instant::now()) {
            self.app.metrics.rate_limited_total.fetch_add(1, Relaxed);
            let client_msg_id = match &frame {
                Ok(ClientFrame::Chat(c)) => c.client_msg_id.clone(),
                _ => None,
            };
            let e = FrameError {
                code: ErrorCode::RateLimited,
                message: format!(
                    "more than {} frames per second; this frame was dropped",
                    self.app.config.rate_limit
                ),
                req_type: frame.as_ref().ok().map(|f| f.type_code().to_string()),
                client_msg_id,
            };
            return self.reply(self.send_error(&e).await);
        }
        let me = self.user_id();
        match frame {
            Err(e) => self.reply(self.send_error(&e).await),
            Ok(ClientFrame::Login { .. }) => self.reply(
                self.send(&ServerFrame::error(
                    ErrorCode::AlreadyLoggedIn,
                    "this socket is already logged in",
                ))
                .await,
            ),
            Ok(ClientFrame::Ping { from_id }) => {
                if from_id.is_some_and(|f| f != me) {
                    return self.reply(self.spoofed(Some("40"), None).await);
                }
                self.reply(self.send(&ServerFrame::Pong { ts: now_ms() }).await)
            }
            Ok(ClientFrame::Chat(c)) => self.chat(c).await,
            Ok(ClientFrame::Ack { msg_id }) => self.ack(msg_id).await,
            Ok(ClientFrame::Typing { to }) => self.typing(to).await,
            Ok(ClientFrame::Read { to, seq }) => {
                let write = Write::Read {
                    user: me,
                    to,
                    seq,
                    origin: self.handle.clone(),
                };
                // Errors (not a member) come back from the hub as type 0.
                if self.app.store.write(write).await.is_err() {
                    return Err(Stop::Close(close::GOING_AWAY));
                }
                Ok(())
            }
        }
    }

    fn reply(&self, sent: bool) -> Result<(), Stop> {
        if sent {
            Ok(())
        } else {
            Err(Stop::Gone)
        }
    }

    async fn spoofed(&self, req_type: Option<&str>, client_msg_id: Option<String>) -> bool {
        self.send(&ServerFrame::Error(ErrorFrame {
            code: ErrorCode::SpoofedSender,
            message: "fromId must be your own user id; nothing was sent".into(),
            req_type: req_type.map(str::to_string),
            client_msg_id,
            msg_id: None,
        }))
        .await
    }

    async fn chat(&mut self, c: ChatSend) -> Result<(), Stop> {
        let (me, name) = {
            let (u, name) = self.user.as_ref().expect("logged in");
            (u.id, name.clone())
        };
        if c.from_id.is_some_and(|f| f != me) {
            return self.reply(self.spoofed(Some("80"), c.client_msg_id).await);
        }
        let received = std::time::Instant::now();
        // Waiting here stops reading from this client until its earlier
        // chats are answered: backpressure, not disconnection.
        let slot = self.inflight.clone().acquire_owned().await.ok();
        let write = Write::Chat(ChatWrite {
            received,
            slot,
            from: me,
            from_name: name,
            to: c.to,
            client_msg_id: c.client_msg_id.clone(),
            content: c.content,
            origin: self.handle.clone(),
        });
        // The 81 (or the error) is sent by the hub once the batch commits.
        if self.app.store.write(write).await.is_err() {
            let e = FrameError {
                code: ErrorCode::ShuttingDown,
                message: "the relay is shutting down; reconnect and resend".into(),
                req_type: Some("80".into()),
                client_msg_id: c.client_msg_id,
            };
            self.send_error(&e).await;
            return Err(Stop::Close(close::GOING_AWAY));
        }
        Ok(())
    }

    /// Relays "typing" to the peer, or to the members of a small group.
    /// At most one per conversation per second goes out; the rest are
    /// dropped silently (the indicator is refreshed anyway).
    async fn typing(&mut self, to: Target) -> Result<(), Stop> {
        let (me, name) = {
            let (u, name) = self.user.as_ref().expect("logged in");
            (u.id, name.clone())
        };
        let now = Instant::now();
        self.typed
            .retain(|(_, at)| now.duration_since(*at) < TYPING_THROTTLE);
        if self.typed.iter().any(|(t, _)| *t == to) || self.typed.len() >= 16 {
            return Ok(());
        }
        self.typed.push((to, now));
        let recipients = match to {
            Target::User(peer) if peer == me => return Ok(()),
            Target::User(peer) => vec![peer],
            Target::Group(g) => match self
                .app
                .store
                .group_members(me, g, SMALL_GROUP as u32)
                .await
            {
                Ok(Some(members)) => members.into_iter().filter(|m| *m != me).collect(),
                Ok(None) => return Ok(()), // big group: no typing indicators
                Err(e) => {
                    let e = ServerFrame::Error(ErrorFrame {
                        code: e.code(),
                        message: e.public_message(),
                        req_type: Some("60".into()),
                        client_msg_id: None,
                        msg_id: None,
                    });
                    return self.reply(self.send(&e).await);
                }
            },
        };
        let frame = ServerFrame::Typing {
            from_id: me,
            from_name: name.to_string(),
            to: match to {
                Target::User(peer) => Target::User(peer),
                g => g,
            },
        };
        self.app.hub.offer_to_users(&recipients, &encode(&frame));
        Ok(())
    }

    async fn ack(&mut self, msg_id: MsgId) -> Result<(), Stop> {
        let me = self.user_id();
        self.app.metrics.acks_total.fetch_add(1, Relaxed);
        let known = match self.app.hub.ack(me, msg_id) {
            AckOutcome::Acked {
                sender,
                receipt,
                conv,
                cursor,
            } => {
                if let Some(seq) = cursor {
                    // Written by the next cursor flush; if that never
                    // happens the message is pushed again and deduped.
                    self.app.store.move_cursor(me, conv, seq);
                }
                if receipt {
                    let receipt = ServerFrame::Delivered {
                        msg_id,
                        by_id: me,
                        ts: now_ms(),
                    };
                    self.app.hub.send_to_user(sender, &encode(&receipt));
                }
                true
            }
            AckOutcome::Repeat => true,
            AckOutcome::Unknown => match self.app.store.message_for(me, msg_id).await {
                Ok(found) => found.is_some(),
                Err(e) => {
                    tracing::error!(error = %e, "ack lookup failed");
                    return self.reply(
                        self.send(&ServerFrame::error(
                            ErrorCode::Internal,
                            "could not check that ack; retry",
                        ))
                        .await,
                    );
                }
            },
        };
        if known {
            self.reply(self.send(&ServerFrame::AckResp { msg_id }).await)
        } else {
            let e = ServerFrame::Error(ErrorFrame {
                code: ErrorCode::UnknownMessage,
                message: "no such message for you".into(),
                req_type: Some("90".into()),
                client_msg_id: None,
                msg_id: Some(msg_id),
            });
            self.reply(self.send(&e).await)
        }
    }
}
