//! The WebSocket session: LOGIN, heartbeat, automatic acks, reconnect.
//!
//! Decisions (when to ping, when a socket is dead, how long to wait before
//! reconnecting) are made by the pure `heartbeat` and `backoff` modules; this
//! file runs them in one task over gloo-net's `WebSocket` (a `Stream` of the
//! relay's messages, a `Sink` for ours), woken by gloo-timers' timers.
//!
//! Re-entrancy:
//! - the logic runs in the task, never inside a browser callback: gloo-net's
//!   JS closures only queue an event, and ours (the 1 s interval, the
//!   backoff timeout, `window.ononline`) only set a flag in `Inner` and
//!   wake the task. So dropping a socket or a timer (which frees its
//!   closures) is safe wherever the task is, and a timer's callback, which
//!   runs from the event loop, never finds the `RefCell` borrowed;
//! - the `RefCell` borrow is never held while calling into yew (a dispatch
//!   may run the reducer synchronously, and the app calls
//!   [`Connection::send`] from its callbacks), nor across an `.await`.

use crate::services::backoff::Backoff;
use crate::services::heartbeat::{Beat, Heartbeat, LOGIN_TIMEOUT_MS};
use crate::services::voice::{self, Deliver, Port};
use crate::services::{now_ms, random};
use crate::state::{Action, ConnStatus};
use futures_core::Stream;
use futures_sink::Sink;
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, State, WebSocketError};
use gloo_timers::callback::{Interval, Timeout};
use shared::{close, ClientFrame, ErrorCode, ServerFrame};
use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use voice_link::{start_voice, to_voice};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::Event;
use yew::Callback;

mod voice_link;

/// How the connection talks back to the app.
#[derive(Clone)]
pub struct Hooks {
    /// Where state changes go.
    pub dispatch: Callback<Action>,
    /// Reads the messages still waiting for their 81 (resent after login).
    pub pending: Rc<dyn Fn() -> Vec<ClientFrame>>,
    /// The relay says the token is no longer valid: back to sign-in.
    pub session_gone: Callback<()>,
}

struct Inner {
    url: String,
    token: String,
    hooks: Hooks,
    /// The current socket, from `WebSocket::open` until it ends.
    socket: Option<WebSocket>,
    /// Set once the relay accepted our LOGIN on the current socket.
    heartbeat: Option<Heartbeat>,
    backoff: Backoff,
    ever_online: bool,
    attempt_started: i64,
    /// [`Connection::stop`] was called: the task ends.
    stopped: bool,
    /// End the backoff delay now (its timer ran out, the user asked, or
    /// the network is back).
    retry_now: bool,
    /// A second passed (set by the interval, taken by the task).
    tick: bool,
    /// Wakes the task when a flag above is set from outside.
    waker: Option<Waker>,
    /// `window.ononline`: the network is back, skip the backoff.
    on_online: Option<Closure<dyn FnMut(Event)>>,
    /// The voice module (`services/voice.rs`).
    voice: Port,
    /// The function the voice module sends through.
    voice_send: Option<Closure<dyn FnMut(JsValue) -> bool>>,
}

impl Inner {
    fn logged_in(&self) -> bool {
        self.heartbeat.is_some()
    }

    /// Puts a frame on the open socket. gloo-net's `start_send` sends at
    /// once (the browser buffers), so no `.await` is needed.
    fn send(&mut self, frame: &ClientFrame) -> bool {
        self.put(Message::Text(frame.encode()))
    }

    /// [`Inner::send`] for any message (the voice module's text and audio).
    fn put(&mut self, msg: Message) -> bool {
        match self.socket.as_mut() {
            Some(ws) if matches!(ws.state(), State::Open) => Pin::new(ws).start_send(msg).is_ok(),
            _ => false,
        }
    }

    /// Ends the current socket, if any.
    fn drop_socket(&mut self) {
        self.heartbeat = None;
        if let Some(ws) = self.socket.take() {
            let _ = ws.close(Some(close::NORMAL), None);
        }
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// A live session with the relay; clone freely, [`Connection::stop`] once.
#[derive(Clone)]
pub struct Connection {
    inner: Rc<RefCell<Inner>>,
}

impl Connection {
    /// Connects to `/ws` on the page's origin and keeps the session up until
    /// [`Connection::stop`].
    pub fn start(token: String, hooks: Hooks) -> Connection {
        let inner = Rc::new(RefCell::new(Inner {
            url: ws_url(),
            token,
            hooks,
            socket: None,
            heartbeat: None,
            backoff: Backoff::default(),
            ever_online: false,
            attempt_started: 0,
            stopped: false,
            retry_now: false,
            tick: false,
            waker: None,
            on_online: None,
            voice: Port::Idle,
            voice_send: None,
        }));
        let on_online = Closure::<dyn FnMut(Event)>::new({
            let weak = Rc::downgrade(&inner);
            move |_: Event| {
                if let Some(inner) = weak.upgrade() {
                    Connection { inner }.retry_now();
                }
            }
        });
        if let Some(w) = web_sys::window() {
            let _ =
                w.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
        }
        inner.borrow_mut().on_online = Some(on_online);
        wasm_bindgen_futures::spawn_local(run(inner.clone()));
        Connection { inner }
    }

    /// Sends a frame if the socket is logged in. Chats that cannot be sent
    /// now stay "sending" and go out after the next login.
    pub fn send(&self, frame: &ClientFrame) -> bool {
        let mut i = self.inner.borrow_mut();
        i.logged_in() && i.send(frame)
    }

    /// Skips the rest of the backoff delay and tries now (the banner's
    /// "Retry now" button, or the browser saying the network is back).
    pub fn retry_now(&self) {
        let mut i = self.inner.borrow_mut();
        if !i.stopped && !i.logged_in() {
            i.retry_now = true;
            i.wake();
        }
    }

    /// Closes for good (logout, or the app unmounts). Never called from the
    /// `online` listener, so that closure is not running when dropped here.
    pub fn stop(&self) {
        let module = match std::mem::replace(&mut self.inner.borrow_mut().voice, Port::Off) {
            Port::Ready(m) => Some(m),
            _ => None,
        };
        if let Some(m) = module {
            voice::close(&m);
        }
        let mut i = self.inner.borrow_mut();
        i.stopped = true;
        i.drop_socket();
        if let Some(cb) = i.on_online.take() {
            if let Some(w) = web_sys::window() {
                let _ =
                    w.remove_event_listener_with_callback("online", cb.as_ref().unchecked_ref());
            }
        }
        i.wake();
    }
}

/// `ws:`/`wss:` matching the page, same host, path `/ws`.
fn ws_url() -> String {
    let loc = web_sys::window().expect("a window").location();
    let scheme = match loc.protocol().as_deref() {
        Ok("https:") => "wss:",
        _ => "ws:",
    };
    format!("{scheme}//{}/ws", loc.host().unwrap_or_default())
}

/// Emits an action with the borrow released.
fn dispatch(rc: &Rc<RefCell<Inner>>, action: Action) {
    let dispatch = rc.borrow().hooks.dispatch.clone();
    dispatch.emit(action);
}

/// How one socket's life ended.
enum End {
    /// Closed, failed or found dead: reconnect after a backoff.
    Dropped,
    /// [`Connection::stop`].
    Stopped,
    /// The relay refused the token or revoked it: back to sign-in.
    Gone,
}

/// What woke the task during a session.
enum Wake {
    Stop,
    Tick,
    Socket(Option<Result<Message, WebSocketError>>),
}

/// The connection's one task: a socket's session, a backoff pause, again,
/// until stopped. The 1 s ticker runs throughout: it drives the heartbeat
/// and the app's own clock ([`Action::Tick`]), online or not.
async fn run(rc: Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(&rc);
    let _ticker = Interval::new(1_000, move || {
        flag(&weak, |i| i.tick = true);
    });
    loop {
        let end = if open(&rc) {
            session(&rc).await
        } else {
            End::Dropped
        };
        match end {
            End::Stopped => return,
            End::Gone => {
                let gone = {
                    let mut i = rc.borrow_mut();
                    i.stopped = true;
                    i.drop_socket();
                    i.hooks.session_gone.clone()
                };
                gone.emit(());
                return;
            }
            End::Dropped => to_voice(&rc, Deliver::Online(false)),
        }
        let (attempt, delay) = {
            let mut i = rc.borrow_mut();
            i.drop_socket();
            let delay = i.backoff.next_delay_ms(&mut random);
            (i.backoff.attempt(), delay)
        };
        dispatch(
            &rc,
            Action::Conn(ConnStatus::Reconnecting {
                attempt,
                retry_in_ms: delay,
            }),
        );
        if !pause(&rc, delay).await {
            return;
        }
    }
}

/// Opens a new socket; `false` when the browser refused to (bad URL,
/// blocked port).
fn open(rc: &Rc<RefCell<Inner>>) -> bool {
    let first = {
        let mut i = rc.borrow_mut();
        i.retry_now = false;
        i.heartbeat = None;
        match WebSocket::open(&i.url) {
            Ok(ws) => i.socket = Some(ws),
            Err(_) => return false,
        }
        i.attempt_started = now_ms();
        !i.ever_online && i.backoff.attempt() == 0
    };
    // Later attempts keep showing "reconnecting…" until LOGIN_RESP.
    if first {
        dispatch(rc, Action::Conn(ConnStatus::Connecting));
    }
    true
}

/// One socket, from open to its end.
async fn session(rc: &Rc<RefCell<Inner>>) -> End {
    let mut login_sent = false;
    loop {
        let wake = poll_fn(|cx| poll_session(rc, &mut login_sent, cx)).await;
        match wake {
            Wake::Stop => return End::Stopped,
            Wake::Tick => {
                if tick(rc) {
                    return End::Dropped;
                }
            }
            Wake::Socket(Some(Ok(Message::Text(text)))) => {
                if let Some(end) = on_text(rc, &text) {
                    return end;
                }
            }
            // Binary frames are voice rooms' audio.
            Wake::Socket(Some(Ok(Message::Bytes(b)))) => to_voice(rc, Deliver::Binary(b)),
            Wake::Socket(Some(Err(WebSocketError::ConnectionClose(e)))) => {
                return if e.code == close::LOGGED_OUT {
                    // The token was revoked (logout in another tab).
                    End::Gone
                } else {
                    End::Dropped
                };
            }
            // An error event is always followed by the close event.
            Wake::Socket(Some(Err(_))) => {}
            Wake::Socket(None) => return End::Dropped,
        }
    }
}

/// Polls what a session waits for. LOGIN goes out as soon as the socket
/// is open (gloo-net's `poll_ready` wakes us on the open event).
fn poll_session(
    rc: &Rc<RefCell<Inner>>,
    login_sent: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Wake> {
    let mut guard = rc.borrow_mut();
    let i = &mut *guard;
    if i.stopped {
        return Poll::Ready(Wake::Stop);
    }
    let Some(ws) = i.socket.as_mut() else {
        return Poll::Ready(Wake::Socket(None));
    };
    if !*login_sent {
        match Pin::new(&mut *ws).poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                *login_sent = true;
                let login = ClientFrame::Login {
                    token: i.token.clone(),
                };
                let sent = Pin::new(&mut *ws).start_send(Message::Text(login.encode()));
                if sent.is_err() {
                    return Poll::Ready(Wake::Socket(None));
                }
            }
            Poll::Ready(Err(_)) => return Poll::Ready(Wake::Socket(None)),
            Poll::Pending => {}
        }
    }
    if let Poll::Ready(m) = Pin::new(ws).poll_next(cx) {
        return Poll::Ready(Wake::Socket(m));
    }
    if std::mem::take(&mut i.tick) {
        return Poll::Ready(Wake::Tick);
    }
    i.waker = Some(cx.waker().clone());
    Poll::Pending
}

/// Sets a flag from a timer's callback and wakes the task.
fn flag(weak: &Weak<RefCell<Inner>>, set: impl FnOnce(&mut Inner)) {
    if let Some(rc) = weak.upgrade() {
        let mut i = rc.borrow_mut();
        set(&mut i);
        i.wake();
    }
}

/// The backoff delay: ticks go on; the delay's timer, the "Retry now"
/// button or the `online` event start the next attempt. `false`: stopped.
async fn pause(rc: &Rc<RefCell<Inner>>, delay: u32) -> bool {
    enum Next {
        Stop,
        Go,
        Tick,
    }
    let weak = Rc::downgrade(rc);
    // Dropped (cancelled, if it has not run) when the pause ends.
    let _timer = Timeout::new(delay, move || flag(&weak, |i| i.retry_now = true));
    loop {
        let next = poll_fn(|cx| {
            let mut i = rc.borrow_mut();
            if i.stopped {
                Poll::Ready(Next::Stop)
            } else if i.retry_now {
                Poll::Ready(Next::Go)
            } else if std::mem::take(&mut i.tick) {
                Poll::Ready(Next::Tick)
            } else {
                i.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        match next {
            Next::Stop => return false,
            Next::Go => return true,
            Next::Tick => dispatch(rc, Action::Tick { now: now_ms() }),
        }
    }
}

/// Every second of a session: heartbeat, login timeout, and the app's
/// clock. Returns whether the socket is to be given up.
fn tick(rc: &Rc<RefCell<Inner>>) -> bool {
    let now = now_ms();
    let dead = {
        let mut i = rc.borrow_mut();
        match i.heartbeat.as_mut().map(|h| h.on_tick(now)) {
            Some(Beat::SendPing) => {
                i.send(&ClientFrame::Ping { from_id: None });
                false
            }
            Some(Beat::Dead) => true,
            Some(Beat::Idle) => false,
            // No LOGIN_RESP yet: give up on a socket that takes too long.
            None => now - i.attempt_started >= LOGIN_TIMEOUT_MS,
        }
    };
    dispatch(rc, Action::Tick { now });
    dead
}

/// One frame from the relay; `Some` when it ends the session.
fn on_text(rc: &Rc<RefCell<Inner>>, text: &str) -> Option<End> {
    let Ok(frame) = ServerFrame::decode(text) else {
        // Frames the app does not know (voice rooms' 121 and 125).
        to_voice(rc, Deliver::Text(text.to_owned()));
        return None;
    };
    let now = now_ms();
    let mut action = None;
    let mut logged_in = None;
    {
        let mut i = rc.borrow_mut();
        match frame {
            ServerFrame::Chat(ref p) => {
                // Ack first, before anything is rendered: the relay stops
                // re-pushing as soon as it has the ack. Re-pushes are acked
                // again (acks are idempotent) and deduped by the reducer.
                i.send(&ClientFrame::Ack { msg_id: p.msg_id });
                action = Some(Action::Frame { frame, now });
            }
            ServerFrame::LoginOk { user_id, .. } => {
                i.heartbeat = Some(Heartbeat::new(now));
                i.backoff.reset();
                i.ever_online = true;
                action = Some(Action::SocketLoggedIn { now });
                logged_in = Some(user_id.0);
            }
            ServerFrame::Error(ref e) if voice::is_voice_error(e) => {
                drop(i);
                to_voice(rc, Deliver::Text(text.to_owned()));
                return None;
            }
            ServerFrame::LoginFailed { code, .. } => {
                if code == ErrorCode::InvalidToken {
                    return Some(End::Gone);
                }
                // Otherwise the close (4001) that follows triggers a retry.
            }
            ServerFrame::Pong { .. } => {
                if let Some(h) = i.heartbeat.as_mut() {
                    h.on_pong();
                }
            }
            ServerFrame::HeartbeatTimeout { .. } => {}
            other => action = Some(Action::Frame { frame: other, now }),
        }
    }
    if let Some(a) = action {
        dispatch(rc, a);
    }
    if let Some(me) = logged_in {
        // After a (re)login, resend everything still waiting for its 81,
        // with the same clientMsgId: the relay dedupes.
        let pending = rc.borrow().hooks.pending.clone();
        let frames = pending();
        {
            let mut i = rc.borrow_mut();
            for f in &frames {
                i.send(f);
            }
        }
        start_voice(rc, me);
        to_voice(rc, Deliver::Online(true));
    }
    None
}
