//! Voice rooms live in a second wasm module (`frontend-voice`), imported
//! after the socket's first login: the app's first download stays within
//! its budget, and voice costs nothing until a group is open. The page
//! names the module in `<meta name="ferrochat-voice" content="<js>"
//! data-wasm="<wasm>">` (written by `cargo xtask dist`); without it (`trunk
//! serve`) the group view shows no voice panel.
//!
//! The app stays the socket's only owner. [`Port`] hands the module what
//! the app does not handle itself (frames it cannot parse, which is how
//! 121 and 125 arrive, voice errors, and binary audio) and the socket's
//! logins and drops; the module sends through a function the app gives it.
//! Everything is called outside the connection's `RefCell` borrow.

use gloo_net::websocket::Message;
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use shared::{ErrorCode, ErrorFrame};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Frames kept for the module while it loads (a room's 125s come right
/// after the login that starts the import).
const BACKLOG: usize = 64;

/// The imported module's `Voice` object.
#[derive(Clone)]
pub struct Module(JsValue);

impl Module {
    fn call(&self, method: &str, arg: &JsValue) {
        if let Ok(f) = Reflect::get(&self.0, &method.into()) {
            if let Some(f) = f.dyn_ref::<Function>() {
                let _ = f.call1(&self.0, arg);
            }
        }
    }
}

/// Where the module stands, kept in the connection.
#[derive(Default)]
pub enum Port {
    /// Not asked for yet.
    #[default]
    Idle,
    /// Importing; frames wait here.
    Loading(Vec<String>),
    /// Running.
    Ready(Module),
    /// Not available (no `<meta>`, or the import failed).
    Off,
}

/// What to hand the module, taken out of the borrow first.
pub enum Deliver {
    Text(String),
    Binary(Vec<u8>),
    Online(bool),
}

impl Port {
    /// Starts the import on the first login; true if it should begin now.
    pub fn begin(&mut self) -> bool {
        if matches!(self, Port::Idle) {
            *self = Port::Loading(Vec::new());
            return true;
        }
        false
    }

    /// Queues `what` while loading; returns the module to call when ready.
    pub fn route(&mut self, what: &Deliver) -> Option<Module> {
        match self {
            Port::Ready(m) => Some(m.clone()),
            Port::Loading(backlog) => {
                if let Deliver::Text(t) = what {
                    if backlog.len() < BACKLOG {
                        backlog.push(t.clone());
                    }
                }
                None
            }
            Port::Idle | Port::Off => None,
        }
    }
}

impl Port {
    /// The import finished: the module and the frames queued meanwhile,
    /// unless it failed or the connection stopped.
    pub fn attach(
        &mut self,
        loaded: Result<Module, JsValue>,
        stopped: bool,
    ) -> Option<(Module, Vec<String>)> {
        let backlog = match std::mem::replace(self, Port::Off) {
            Port::Loading(b) => b,
            _ => Vec::new(),
        };
        match loaded {
            Ok(m) if !stopped => {
                *self = Port::Ready(m.clone());
                Some((m, backlog))
            }
            Ok(_) => None,
            Err(e) => {
                web_sys::console::warn_2(&"voice rooms unavailable:".into(), &e);
                None
            }
        }
    }
}

/// The function the module sends through: a string goes out as a text
/// frame, anything else (a `Uint8Array`) as a binary one; `put` sends it
/// if the socket is logged in.
pub fn sender(put: impl Fn(Message) -> bool + 'static) -> Closure<dyn FnMut(JsValue) -> bool> {
    Closure::new(move |data: JsValue| {
        put(match data.as_string() {
            Some(t) => Message::Text(t),
            None => Message::Bytes(Uint8Array::new(&data).to_vec()),
        })
    })
}

/// Imports the module in the background and hands the result to `done`.
pub fn spawn_load(send: Function, me: i64, done: impl FnOnce(Result<Module, JsValue>) + 'static) {
    wasm_bindgen_futures::spawn_local(async move { done(load(&send, me).await) });
}

/// Hands `what` to the module.
pub fn deliver(m: &Module, what: Deliver) {
    match what {
        Deliver::Text(t) => m.call("text", &t.into()),
        Deliver::Binary(b) => m.call("binary", &Uint8Array::from(&b[..]).into()),
        Deliver::Online(on) => m.call("online", &on.into()),
    }
}

/// Leaves any room and stops the module (sign-out).
pub fn close(m: &Module) {
    m.call("close", &JsValue::UNDEFINED);
}

/// Whether an error frame answers a voice frame (so the module shows it,
/// not the chat).
pub fn is_voice_error(e: &ErrorFrame) -> bool {
    matches!(e.req_type.as_deref(), Some("120" | "122" | "124"))
        || matches!(
            e.code,
            ErrorCode::RoomFull
                | ErrorCode::NotInRoom
                | ErrorCode::Muted
                | ErrorCode::MalformedAudio
                | ErrorCode::AudioTooLarge
                | ErrorCode::AudioRateLimited
        )
}

/// Imports the module named by the page and constructs its `Voice` with
/// `send` (the socket) and this user's id. Err: voice is not available.
async fn load(send: &Function, me: i64) -> Result<Module, JsValue> {
    let meta = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| {
            d.query_selector("meta[name=ferrochat-voice]")
                .ok()
                .flatten()
        })
        .ok_or("no voice module in this build")?;
    let js = meta.get_attribute("content").ok_or("no module URL")?;
    let wasm = meta.get_attribute("data-wasm").ok_or("no wasm URL")?;
    // A dynamic import from Rust: wasm-bindgen has no `import()` binding.
    let import = Function::new_with_args("u", "return import(u)");
    let module = JsFuture::from(Promise::from(import.call1(&JsValue::NULL, &js.into())?)).await?;
    let init: Function = Reflect::get(&module, &"default".into())?.dyn_into()?;
    let arg = Object::new();
    Reflect::set(&arg, &"module_or_path".into(), &wasm.into())?;
    JsFuture::from(Promise::from(init.call1(&JsValue::NULL, &arg)?)).await?;
    let class: Function = Reflect::get(&module, &"Voice".into())?.dyn_into()?;
    let args = Array::of2(send, &JsValue::from_f64(me as f64));
    Ok(Module(Reflect::construct(&class, &args)?))
}
