//! One WebSocket session: login, heartbeat, chat, acks.
//!
//! Each socket runs two tasks. The **reader** (this module's `Session`)
//! parses frames and acts on them, one at a time; the **writer**
//! (`writer.rs`) drains the socket's bounded queue into the connection.
//! Splitting them means a client that stops reading blocks only its own
//! writer; the queue then fills and the socket is closed as a slow
//! consumer, while the reader keeps the idle timer honest.
//!
//! - `login.rs`: LOGIN, the presence snapshot and the backlog sync;
//! - `frames.rs`: every frame after login, and the one way errors are
//!   framed;
//! - `answers.rs`: chats queued to the store, and how their answers reach
//!   the client;
//! - `voice.rs`: voice rooms (120/122/124) and binary audio frames.

mod answers;
mod desk;
mod frames;
mod login;
mod voice;
mod writer;

pub use writer::ws_config;

use crate::hub::Registration;
use crate::ratelimit::TokenBucket;
use crate::socket::SocketHandle;
use crate::store::UserRef;
use crate::App;
use answers::{HeldAnswers, Slots};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use shared::{close, ErrorCode, ServerFrame, Target};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long a closing socket gets to flush and exchange close frames.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Runs a session on an upgraded connection until it closes. `permit` is
/// the connection's slot under the connection cap, held until the end.
pub async fn serve<S, P: Send>(
    ws: WebSocketStream<S>,
    app: Arc<App>,
    permit: P,
    client: std::net::IpAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _permit = permit;
    let (handle, rx) = SocketHandle::new(app.hub.next_socket_id(), app.config.outbound_queue);
    let (sink, stream) = ws.split();
    app.metrics.ws_sessions.fetch_add(1, Relaxed);
    let writer = tokio::spawn(writer::write_loop(sink, rx, handle.clone()));
    let (slots, held) = Slots::new((app.config.outbound_queue / 2).max(1));
    let mut session = Session {
        slots,
        held,
        typed: Vec::new(),
        bucket: TokenBucket::new(
            app.config.rate_limit,
            app.config.rate_burst,
            std::time::Instant::now(),
        ),
        unknown_acks: TokenBucket::new(
            frames::UNKNOWN_ACK_RATE,
            frames::UNKNOWN_ACK_BURST,
            std::time::Instant::now(),
        ),
        app: app.clone(),
        client,
        handle,
        stream,
        user: None,
        role: shared::desk::Role::User,
        registration: None,
        voice: None,
        desk: None,
    };
    session.run().await;
    // Unregister before waiting for the writer, so nothing new is queued.
    let Session {
        handle,
        mut stream,
        registration,
        voice: voice_state,
        ..
    } = session;
    drop(registration);
    // Out of every voice room (the members get a 125 without it).
    if let Some(v) = voice_state {
        voice::leave_all(&app, handle.id(), &v).await;
    }
    // Chats still in flight are stored and fanned out whatever happens to
    // this socket: their replies do it (`answers.rs`).
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

struct Session<S> {
    app: Arc<App>,
    /// The client's address (`throttle::ClientAddr`): visitors' messages
    /// are limited per address.
    client: std::net::IpAddr,
    handle: SocketHandle,
    stream: SplitStream<WebSocketStream<S>>,
    bucket: TokenBucket,
    /// ACKs for ids the hub does not track cost a read each: a few are
    /// free, the rest count against `bucket`.
    unknown_acks: TokenBucket,
    /// Chats queued and not yet answered (81 or error), bounded to half the
    /// outbound queue: a client is never closed as a slow consumer because
    /// of replies to its own burst.
    slots: Slots,
    /// Answers that found the socket's queue full.
    held: HeldAnswers,
    /// Recent typing notices, for the per-conversation throttle.
    typed: Vec<(Target, Instant)>,
    user: Option<(UserRef, Arc<str>)>,
    /// The logged-in user's role, as stored at LOGIN (`rules::desk`).
    role: shared::desk::Role,
    registration: Option<Registration>,
    /// Voice rooms joined and the audio caps; made on first use.
    voice: Option<Box<voice::VoiceState>>,
    /// An agent's or a visitor's place at the support desk (`desk.rs`).
    desk: Option<crate::desk::DeskGuard>,
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
        self.handle
            .send(crate::socket::encode(frame), &self.app.metrics)
            .await
    }

    fn reply(&self, sent: bool) -> Result<(), Stop> {
        if sent {
            Ok(())
        } else {
            Err(Stop::Gone)
        }
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
                Some(Ok(m)) => Ok(Some(m)),
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

    fn user_id(&self) -> shared::UserId {
        self.user.as_ref().expect("logged in").0.id
    }

    /// A binary frame before login: closed as unsupported data.
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
                held = self.held.next() => {
                    // An answer that found no room: wait for room, reading
                    // nothing meanwhile.
                    if !self.handle.send(held.0.clone(), &self.app.metrics).await {
                        return Stop::Gone;
                    }
                    self.held.queued(held);
                    continue;
                }
                // No free slot (every one is a chat in flight) stops reading
                // from this client until its earlier chats are answered:
                // backpressure, not disconnection.
                slot = self.slots.acquire(), if !self.slots.ready() => {
                    self.slots.reserve(slot);
                    continue;
                }
                m = self.stream.next(), if self.slots.ready() => m,
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
                // Audio (voice rooms): errors are framed, not closes.
                Message::Binary(b) => {
                    if let Err(stop) = Box::pin(self.on_binary(b)).await {
                        return stop;
                    }
                }
                Message::Close(_) => return Stop::Gone,
                _ => {} // ping/pong control frames: tungstenite answers pings
            }
        }
    }
}
