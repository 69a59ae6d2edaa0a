//! The module's entry point: the `Voice` class the app constructs once its
//! socket is logged in. The app passes it the frames it does not handle
//! itself (121, 125, voice errors), every binary (audio) frame, and the
//! socket's ups and downs; it sends through the `send` function the app
//! gives it (a string goes out as a text frame, bytes as a binary one).
//!
//! Re-entrancy: the engine's `RefCell` is never borrowed while calling
//! `send` (the app may be mid-dispatch) nor across an await.

use crate::capture::{self, Capture, Sink};
use crate::playback::Playback;
use crate::state::{Capability, Click, Effect, Model, Phase};
use crate::view::{self, Meters};
use js_sys::Reflect;
use shared::audio::parse_listener;
use shared::{GroupId, ServerFrame, UserId};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{AudioContext, Element, Event};

/// How often the panel looks for its slot and updates the meters.
const TICK_MS: i32 = 100;
/// The element the app renders for the panel.
const SLOT_ID: &str = "voice-slot";

struct Engine {
    model: Model,
    send: js_sys::Function,
    ctx: Option<AudioContext>,
    capture: Option<Capture>,
    playback: Option<Playback>,
    /// Bumped on every stop: a microphone that opens after it is closed.
    epoch: u32,
    slot: Option<(Element, GroupId)>,
    on_click: Option<Closure<dyn FnMut(Event)>>,
    dirty: bool,
    own: f32,
}

/// Voice rooms for one logged-in tab.
#[wasm_bindgen]
pub struct Voice {
    rc: Rc<RefCell<Engine>>,
    timer: i32,
    _tick: Closure<dyn FnMut()>,
}

#[wasm_bindgen]
impl Voice {
    /// `send(string | Uint8Array)`: the app's socket. `me`: the user id.
    #[wasm_bindgen(constructor)]
    pub fn new(send: js_sys::Function, me: f64) -> Voice {
        let rc = Rc::new(RefCell::new(Engine {
            model: Model::new(UserId(me as i64), capability()),
            send,
            ctx: None,
            capture: None,
            playback: None,
            epoch: 0,
            slot: None,
            on_click: None,
            dirty: true,
            own: 0.0,
        }));
        let weak = Rc::downgrade(&rc);
        let tick = Closure::<dyn FnMut()>::new(move || {
            if let Some(rc) = weak.upgrade() {
                tick(&rc);
            }
        });
        let timer = web_sys::window()
            .and_then(|w| {
                w.set_interval_with_callback_and_timeout_and_arguments_0(
                    tick.as_ref().unchecked_ref(),
                    TICK_MS,
                )
                .ok()
            })
            .unwrap_or(0);
        Voice {
            rc,
            timer,
            _tick: tick,
        }
    }

    /// A text frame the app did not handle.
    pub fn text(&self, text: &str) {
        if let Ok(frame) = ServerFrame::decode(text) {
            let fx = self.rc.borrow_mut().model.frame(frame);
            run(&self.rc, fx);
        }
    }

    /// A binary frame: relayed audio.
    pub fn binary(&self, bytes: &[u8]) {
        let Ok((h, speaker, payload)) = parse_listener(bytes) else {
            return;
        };
        if let Some(p) = self.rc.borrow_mut().playback.as_mut() {
            p.frame(h.group_id, speaker, h.seq, h.ts, payload);
        }
    }

    /// The app's socket logged in (true) or dropped (false).
    pub fn online(&self, online: bool) {
        let fx = self.rc.borrow_mut().model.set_online(online);
        run(&self.rc, fx);
    }

    /// Leaves any room and stops the timer (the app signed out).
    pub fn close(&self) {
        let fx = self.rc.borrow_mut().model.click(Click::Leave);
        run(&self.rc, fx);
        if let Some(w) = web_sys::window() {
            w.clear_interval_with_handle(self.timer);
        }
    }
}

/// What this browser supports.
fn capability() -> Capability {
    let g = js_sys::global();
    let has = |name: &str| Reflect::has(&g, &name.into()).unwrap_or(false);
    if !has("AudioDecoder") || !has("AudioContext") {
        Capability::None
    } else if has("AudioEncoder") && has("MediaStreamTrackProcessor") {
        Capability::Talk
    } else {
        Capability::Listen
    }
}

fn send(rc: &Rc<RefCell<Engine>>, data: &JsValue) {
    let f = rc.borrow().send.clone();
    let _ = f.call1(&JsValue::NULL, data);
}

/// Carries out what the model decided.
fn run(rc: &Rc<RefCell<Engine>>, effects: Vec<Effect>) {
    rc.borrow_mut().dirty = true;
    for fx in effects {
        match fx {
            Effect::Send(frame) => send(rc, &frame.encode().into()),
            Effect::Start(group) => {
                let talk = {
                    let mut e = rc.borrow_mut();
                    let Some(ctx) = audio_context(&mut e) else {
                        e.model.set_error("Audio output is unavailable.".into());
                        continue;
                    };
                    e.playback = Some(Playback::new(ctx, group));
                    e.model.capability() == Capability::Talk && !e.model.muted()
                };
                if talk {
                    start_capture(rc, group);
                }
            }
            Effect::Stop => {
                let mut e = rc.borrow_mut();
                e.epoch += 1;
                if let Some(c) = e.capture.take() {
                    c.stop();
                }
                if let Some(mut p) = e.playback.take() {
                    p.stop();
                }
            }
            Effect::Muted(muted) => {
                let open = {
                    let e = rc.borrow();
                    if let Some(c) = &e.capture {
                        c.set_muted(muted);
                    }
                    e.capture.is_none()
                };
                if open && !muted {
                    if let Some((group, Phase::In)) = rc.borrow().model.mine() {
                        start_capture(rc, group);
                    }
                }
            }
        }
    }
}

/// The page's `AudioContext`, made on first use (from a click, so the
/// browser's autoplay policy lets it run).
fn audio_context(e: &mut Engine) -> Option<AudioContext> {
    if e.ctx.is_none() {
        e.ctx = AudioContext::new().ok();
    }
    let ctx = e.ctx.clone()?;
    let _ = ctx.resume();
    Some(ctx)
}

/// Opens the microphone for `group`; discarded if the room was left (or
/// the tab muted) meanwhile.
fn start_capture(rc: &Rc<RefCell<Engine>>, group: GroupId) {
    let (ctx, epoch, f) = {
        let mut e = rc.borrow_mut();
        let Some(ctx) = audio_context(&mut e) else {
            return;
        };
        (ctx, e.epoch, e.send.clone())
    };
    let sink: Sink = Rc::new(move |bytes: &[u8]| {
        let _ = f.call1(&JsValue::NULL, &capture::to_js(bytes));
    });
    let weak: Weak<RefCell<Engine>> = Rc::downgrade(rc);
    wasm_bindgen_futures::spawn_local(async move {
        let started = Capture::start(&ctx, group, sink).await;
        let Some(rc) = weak.upgrade() else {
            if let Ok(c) = started {
                c.stop();
            }
            return;
        };
        let mut e = rc.borrow_mut();
        e.dirty = true;
        match started {
            Ok(c) if e.epoch == epoch && e.model.mine() == Some((group, Phase::In)) => {
                c.set_muted(e.model.muted());
                if let Some(old) = e.capture.replace(c) {
                    old.stop();
                }
            }
            Ok(c) => c.stop(),
            Err(err) => {
                let why = err
                    .dyn_ref::<js_sys::Error>()
                    .map(|x| String::from(x.message()))
                    .unwrap_or_else(|| format!("{err:?}"));
                e.model
                    .set_error(format!("Microphone unavailable ({why}): you can listen."));
            }
        }
    });
}

/// Finds the panel's slot (the app renders it in a group's view), redraws
/// when needed, and moves the meters.
fn tick(rc: &Rc<RefCell<Engine>>) {
    let slot = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(SLOT_ID))
        .and_then(|s| {
            let g = s.get_attribute("data-group")?.parse::<i64>().ok()?;
            Some((s, GroupId(g)))
        });
    let mut e = rc.borrow_mut();
    if e.slot != slot {
        if let (Some((old, _)), Some(cb)) = (&e.slot, &e.on_click) {
            let _ = old.remove_event_listener_with_callback("click", cb.as_ref().unchecked_ref());
        }
        if let Some((new, _)) = &slot {
            if e.on_click.is_none() {
                e.on_click = Some(click_handler(Rc::downgrade(rc)));
            }
            if let Some(cb) = &e.on_click {
                let _ = new.add_event_listener_with_callback("click", cb.as_ref().unchecked_ref());
            }
        }
        let shown = slot.as_ref().map(|s| s.1);
        e.slot = slot;
        e.dirty = true;
        let fx = e.model.show(shown);
        drop(e);
        run(rc, fx);
        e = rc.borrow_mut();
    }
    let Some((slot, group)) = e.slot.clone() else {
        return;
    };
    if e.dirty {
        e.dirty = false;
        view::draw(&slot, group, &e.model);
    }
    let own = match e.capture.as_mut() {
        Some(c) => c.level(),
        None => 0.0,
    };
    e.own = crate::level::smooth(e.own, own);
    let mut levels = e.playback.as_mut().map(|p| p.levels()).unwrap_or_default();
    let heard = levels.iter().map(|l| l.1).fold(0.0, f32::max);
    let me = e.model.me();
    levels.retain(|l| l.0 != me);
    levels.push((me, e.own));
    let stats = e.playback.as_ref().map(|p| p.stats.clone());
    let get = |f: fn(&crate::playback::Stats) -> u32| stats.as_deref().map_or(0, f);
    view::levels(
        &slot,
        &Meters {
            levels: &levels,
            received: get(|s| s.received.get()),
            decoded: get(|s| s.decoded.get()),
            played: get(|s| s.played.get()),
            sent: e.capture.as_ref().map_or(0, |c| c.sent.get()),
            heard,
        },
    );
}

/// Clicks on the panel's buttons (`data-action`).
fn click_handler(weak: Weak<RefCell<Engine>>) -> Closure<dyn FnMut(Event)> {
    Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
        let Some(rc) = weak.upgrade() else {
            return;
        };
        let Some(target) = ev.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
            return;
        };
        let Ok(Some(button)) = target.closest("[data-action]") else {
            return;
        };
        let action = button.get_attribute("data-action").unwrap_or_default();
        let click = {
            let mut e = rc.borrow_mut();
            let Some((_, group)) = e.slot.clone() else {
                return;
            };
            // Made inside the click, so autoplay rules let it play.
            audio_context(&mut e);
            match action.as_str() {
                "join" => Click::Join(group),
                "leave" => Click::Leave,
                "mute" => Click::Mute(true),
                "unmute" => Click::Mute(false),
                _ => return,
            }
        };
        let fx = rc.borrow_mut().model.click(click);
        run(&rc, fx);
    })
}
