//! The connection's side of the voice module (`services/voice.rs`):
//! handing it frames, and importing it after the first login.

use super::Inner;
use crate::services::voice::{self, Deliver};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;

/// Hands the voice module what is its own (queued while it loads).
pub(super) fn to_voice(rc: &Rc<RefCell<Inner>>, what: Deliver) {
    let module = rc.borrow_mut().voice.route(&what);
    if let Some(m) = module {
        voice::deliver(&m, what);
    }
}

/// Imports the voice module after the first login.
pub(super) fn start_voice(rc: &Rc<RefCell<Inner>>, me: i64) {
    let send = {
        let mut i = rc.borrow_mut();
        if !i.voice.begin() {
            return;
        }
        let weak = Rc::downgrade(rc);
        // Called by the module from its own callbacks, never inside ours.
        let f = voice::sender(move |msg| {
            weak.upgrade().is_some_and(|rc| {
                rc.try_borrow_mut()
                    .is_ok_and(|mut i| i.logged_in() && i.put(msg))
            })
        });
        let send = f.as_ref().unchecked_ref::<js_sys::Function>().clone();
        i.voice_send = Some(f);
        send
    };
    let weak = Rc::downgrade(rc);
    voice::spawn_load(send, me, move |loaded| {
        let Some(rc) = weak.upgrade() else {
            return;
        };
        let ready = {
            let mut i = rc.borrow_mut();
            let (stopped, online) = (i.stopped, i.logged_in());
            i.voice.attach(loaded, stopped).map(|r| (r, online))
        };
        if let Some(((module, backlog), online)) = ready {
            voice::deliver(&module, Deliver::Online(online));
            for t in backlog {
                voice::deliver(&module, Deliver::Text(t));
            }
        }
    });
}
