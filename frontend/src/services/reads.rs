//! READ (70) for what is on screen, throttled. Which READ is due is the
//! pure [`crate::model::Chat::read_candidate`]; this is the browser glue
//! that sends it through the connection and records it.

use crate::services::now_ms;
use crate::services::throttle::{Throttle, READ_INTERVAL_MS};
use crate::services::ws::Connection;
use crate::state::{Action, ConnStatus, State};
use gloo_timers::callback::Timeout;
use shared::ClientFrame;
use std::cell::RefCell;
use std::rc::Rc;
use yew::UseReducerHandle;

/// Sends READ for what is on screen, at most every [`READ_INTERVAL_MS`];
/// when too early, tries again when allowed (reading the state then).
pub struct ReadSender {
    throttle: Throttle,
    timer: Option<Timeout>,
}

impl Default for ReadSender {
    fn default() -> Self {
        ReadSender {
            throttle: Throttle::global(READ_INTERVAL_MS),
            timer: None,
        }
    }
}

/// Sends the READ the state asks for now, or schedules it.
pub fn flush_read(
    state: &UseReducerHandle<State>,
    conn: &Rc<RefCell<Option<Connection>>>,
    reads: &Rc<RefCell<ReadSender>>,
) {
    // A fresh handle: reads the current state without keeping old ones.
    let current = state.clone();
    if current.conn != ConnStatus::Online {
        return;
    }
    let Some((key, seq)) = current.chat.read_candidate() else {
        return;
    };
    let mut r = reads.borrow_mut();
    if r.timer.is_some() {
        return; // already scheduled
    }
    match r.throttle.try_send(key, now_ms()) {
        Ok(()) => {
            drop(r);
            let frame = ClientFrame::Read {
                to: key.target(),
                seq,
            };
            if conn.borrow().as_ref().is_some_and(|c| c.send(&frame)) {
                state.dispatch(Action::MarkRead { key, seq });
            }
        }
        Err(wait) => {
            let (state, conn, again) = (state.clone(), conn.clone(), reads.clone());
            r.timer = Some(Timeout::new(wait.max(1) as u32, move || {
                if let Some(t) = again.borrow_mut().timer.take() {
                    wasm_bindgen_futures::spawn_local(async move { drop(t) });
                }
                flush_read(&state, &conn, &again);
            }));
        }
    }
}
