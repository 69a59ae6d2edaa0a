//! The WebSocket session: LOGIN, heartbeat, automatic acks, reconnect.
//!
//! Decisions (when to ping, when a socket is dead, how long to wait before
//! reconnecting) are made by the pure `heartbeat` and `backoff` modules; this
//! file only wires them to the browser's `WebSocket` and timers.
//!
//! Re-entrancy: handlers never hold the `RefCell` borrow while calling into
//! yew (dispatch may run the reducer synchronously), and JS closures are never
//! dropped while they may be running (dropping is deferred to a microtask).

use crate::services::backoff::Backoff;
use crate::services::heartbeat::{Beat, Heartbeat, LOGIN_TIMEOUT_MS};
use crate::services::{now_ms, random};
use crate::state::{Action, ConnStatus};
use gloo_timers::callback::{Interval, Timeout};
use shared::{close, ClientFrame, ErrorCode, ServerFrame};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};
use yew::Callback;

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

/// One open socket and the JS callbacks attached to it.
struct Socket {
    ws: WebSocket,
    _handlers: Vec<Closure<dyn FnMut(Event)>>,
}

impl Socket {
    /// Detaches the handlers and closes; the closures are dropped later.
    fn shut(self, code: u16) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close_with_code(code);
        defer_drop(self);
    }
}

/// Drops a value after the current JS callback has returned (a closure must
/// not be freed while it runs).
fn defer_drop<T: 'static>(value: T) {
    wasm_bindgen_futures::spawn_local(async move { drop(value) });
}

struct Inner {
    url: String,
    token: String,
    hooks: Hooks,
    socket: Option<Socket>,
    /// Bumped per socket, so a late event of an old socket is ignored.
    generation: u64,
    attempt_started: i64,
    heartbeat: Option<Heartbeat>,
    backoff: Backoff,
    ever_online: bool,
    retry: Option<Timeout>,
    ticker: Option<Interval>,
    /// `window.ononline`: the network is back, skip the backoff.
    on_online: Option<Closure<dyn FnMut(Event)>>,
    stopped: bool,
}

impl Inner {
    fn logged_in(&self) -> bool {
        self.heartbeat.is_some()
    }

    fn send(&self, frame: &ClientFrame) -> bool {
        match &self.socket {
            Some(s) if s.ws.ready_state() == WebSocket::OPEN => {
                s.ws.send_with_str(&frame.encode()).is_ok()
            }
            _ => false,
        }
    }

    /// Drops the current socket (if any) and plans the next attempt.
    fn reconnect_later(&mut self, weak: Weak<RefCell<Inner>>) -> Option<Action> {
        if let Some(s) = self.socket.take() {
            s.shut(close::NORMAL);
        }
        self.heartbeat = None;
        if self.stopped {
            return None;
        }
        let delay = self.backoff.next_delay_ms(&mut random);
        if let Some(old) = self.retry.take() {
            defer_drop(old);
        }
        self.retry = Some(Timeout::new(delay, move || {
            if let Some(rc) = weak.upgrade() {
                connect(&rc);
            }
        }));
        Some(Action::Conn(ConnStatus::Reconnecting {
            attempt: self.backoff.attempt(),
            retry_in_ms: delay,
        }))
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
            generation: 0,
            attempt_started: 0,
            heartbeat: None,
            backoff: Backoff::default(),
            ever_online: false,
            retry: None,
            ticker: None,
            on_online: None,
            stopped: false,
        }));
        let weak = Rc::downgrade(&inner);
        inner.borrow_mut().ticker = Some(Interval::new(1_000, move || {
            if let Some(rc) = weak.upgrade() {
                tick(&rc);
            }
        }));
        let conn = Connection { inner };
        let on_online = Closure::<dyn FnMut(Event)>::new({
            let weak = Rc::downgrade(&conn.inner);
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
        conn.inner.borrow_mut().on_online = Some(on_online);
        connect(&conn.inner);
        conn
    }

    /// Sends a frame if the socket is logged in. Chats that cannot be sent
    /// now stay "sending" and go out after the next login.
    pub fn send(&self, frame: &ClientFrame) -> bool {
        let i = self.inner.borrow();
        i.logged_in() && i.send(frame)
    }

    /// Skips the rest of the backoff delay and tries now (the banner's
    /// "Retry now" button).
    pub fn retry_now(&self) {
        let idle = {
            let i = self.inner.borrow();
            !i.stopped && !i.logged_in()
        };
        if idle {
            connect(&self.inner);
        }
    }

    /// Closes for good (logout, or the app unmounts).
    pub fn stop(&self) {
        let mut i = self.inner.borrow_mut();
        i.stopped = true;
        i.heartbeat = None;
        if let Some(s) = i.socket.take() {
            s.shut(close::NORMAL);
        }
        if let Some(t) = i.retry.take() {
            defer_drop(t);
        }
        if let Some(t) = i.ticker.take() {
            defer_drop(t);
        }
        if let Some(cb) = i.on_online.take() {
            if let Some(w) = web_sys::window() {
                let _ =
                    w.remove_event_listener_with_callback("online", cb.as_ref().unchecked_ref());
            }
            defer_drop(cb);
        }
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

fn dispatch_all(rc: &Rc<RefCell<Inner>>, actions: Vec<Action>) {
    if actions.is_empty() {
        return;
    }
    let dispatch = rc.borrow().hooks.dispatch.clone();
    for a in actions {
        dispatch.emit(a);
    }
}

/// Opens a new socket.
fn connect(rc: &Rc<RefCell<Inner>>) {
    let mut actions = vec![];
    {
        let mut i = rc.borrow_mut();
        if i.stopped {
            return;
        }
        if let Some(t) = i.retry.take() {
            // We may be running inside this very timer's callback.
            defer_drop(t);
        }
        if let Some(s) = i.socket.take() {
            s.shut(close::NORMAL);
        }
        i.generation += 1;
        i.heartbeat = None;
        i.attempt_started = now_ms();
        let generation = i.generation;
        match WebSocket::new(&i.url) {
            Ok(ws) => {
                let weak = Rc::downgrade(rc);
                let on_open = Closure::<dyn FnMut(Event)>::new({
                    let weak = weak.clone();
                    move |_: Event| {
                        if let Some(rc) = weak.upgrade() {
                            let i = rc.borrow();
                            if i.generation == generation {
                                i.send(&ClientFrame::Login {
                                    token: i.token.clone(),
                                });
                            }
                        }
                    }
                });
                let on_message = Closure::<dyn FnMut(Event)>::new({
                    let weak = weak.clone();
                    move |e: Event| {
                        let text = e
                            .dyn_ref::<MessageEvent>()
                            .and_then(|m| m.data().as_string());
                        if let (Some(rc), Some(text)) = (weak.upgrade(), text) {
                            on_text(&rc, generation, &text);
                        }
                    }
                });
                let on_close = Closure::<dyn FnMut(Event)>::new({
                    let weak = weak.clone();
                    move |e: Event| {
                        let code = e.dyn_ref::<CloseEvent>().map_or(1006, |c| c.code());
                        if let Some(rc) = weak.upgrade() {
                            on_close(&rc, generation, code);
                        }
                    }
                });
                // Errors are always followed by a close event; nothing to do.
                let on_error = Closure::<dyn FnMut(Event)>::new(|_: Event| {});
                ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
                ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
                ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
                ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
                i.socket = Some(Socket {
                    ws,
                    _handlers: vec![on_open, on_message, on_close, on_error],
                });
                if i.ever_online || i.backoff.attempt() > 0 {
                    // Keep showing "reconnecting…" until LOGIN_RESP.
                } else {
                    actions.push(Action::Conn(ConnStatus::Connecting));
                }
            }
            Err(_) => actions.extend(i.reconnect_later(Rc::downgrade(rc))),
        }
    }
    dispatch_all(rc, actions);
}

/// One frame from the relay.
fn on_text(rc: &Rc<RefCell<Inner>>, generation: u64, text: &str) {
    let Ok(frame) = ServerFrame::decode(text) else {
        return;
    };
    let now = now_ms();
    let mut actions = vec![];
    let mut logged_in = false;
    let mut gone = false;
    {
        let mut i = rc.borrow_mut();
        if i.generation != generation || i.stopped {
            return;
        }
        match frame {
            ServerFrame::Chat(ref p) => {
                // Ack first, before anything is rendered: the relay stops
                // re-pushing as soon as it has the ack. Re-pushes are acked
                // again (acks are idempotent) and deduped by the reducer.
                i.send(&ClientFrame::Ack { msg_id: p.msg_id });
                actions.push(Action::Frame { frame, now });
            }
            ServerFrame::LoginOk { .. } => {
                i.heartbeat = Some(Heartbeat::new(now));
                i.backoff.reset();
                i.ever_online = true;
                actions.push(Action::SocketLoggedIn { now });
                logged_in = true;
            }
            ServerFrame::LoginFailed { code, .. } => {
                if code == ErrorCode::InvalidToken {
                    i.stopped = true;
                    gone = true;
                }
                // Otherwise the close (4001) that follows triggers a retry.
            }
            ServerFrame::Pong { .. } => {
                if let Some(h) = i.heartbeat.as_mut() {
                    h.on_pong();
                }
            }
            ServerFrame::HeartbeatTimeout { .. } => {}
            other => actions.push(Action::Frame { frame: other, now }),
        }
    }
    dispatch_all(rc, actions);
    if logged_in {
        // After a (re)login, resend everything still waiting for its 81,
        // with the same clientMsgId: the relay dedupes.
        let pending = rc.borrow().hooks.pending.clone();
        let frames = pending();
        let i = rc.borrow();
        for f in &frames {
            i.send(f);
        }
    }
    if gone {
        let cb = rc.borrow().hooks.session_gone.clone();
        cb.emit(());
    }
}

fn on_close(rc: &Rc<RefCell<Inner>>, generation: u64, code: u16) {
    let mut actions = vec![];
    let mut gone = false;
    {
        let mut i = rc.borrow_mut();
        if i.generation != generation || i.stopped {
            return;
        }
        if code == close::LOGGED_OUT {
            // The token was revoked (logout in another tab).
            i.stopped = true;
            i.heartbeat = None;
            if let Some(s) = i.socket.take() {
                s.shut(close::NORMAL);
            }
            gone = true;
        } else {
            actions.extend(i.reconnect_later(Rc::downgrade(rc)));
        }
    }
    dispatch_all(rc, actions);
    if gone {
        let cb = rc.borrow().hooks.session_gone.clone();
        cb.emit(());
    }
}

/// Every second: heartbeat, login timeout, and the app's send timeouts.
fn tick(rc: &Rc<RefCell<Inner>>) {
    let now = now_ms();
    let mut actions = vec![];
    {
        let mut i = rc.borrow_mut();
        if i.stopped {
            return;
        }
        let beat = i.heartbeat.as_mut().map(|h| h.on_tick(now));
        match beat {
            Some(Beat::SendPing) => {
                i.send(&ClientFrame::Ping { from_id: None });
            }
            Some(Beat::Dead) => actions.extend(i.reconnect_later(Rc::downgrade(rc))),
            Some(Beat::Idle) => {}
            None => {
                let stuck = i.socket.is_some() && now - i.attempt_started >= LOGIN_TIMEOUT_MS;
                if stuck {
                    actions.extend(i.reconnect_later(Rc::downgrade(rc)));
                }
            }
        }
    }
    actions.push(Action::Tick { now });
    dispatch_all(rc, actions);
}
