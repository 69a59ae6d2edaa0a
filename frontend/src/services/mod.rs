//! Side effects: the WebSocket session, HTTP calls, storage, clocks.
//!
//! `backoff`, `heartbeat` and `throttle` are pure decision logic
//! (unit-tested natively); the other modules are the thin browser glue
//! around them.

pub mod backoff;
pub mod heartbeat;
pub mod http;
pub mod reads;
pub mod search;
pub mod storage;
pub mod sync;
pub mod throttle;
pub mod voice;
pub mod ws;

/// Milliseconds since the Unix epoch (browser clock).
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A number in `[0, 1)`.
pub fn random() -> f64 {
    js_sys::Math::random()
}

/// A fresh `clientMsgId` (see [`crate::format::client_msg_id`]).
pub fn new_client_msg_id() -> String {
    let r = (random() * 4_294_967_296.0) as u64 ^ (((random() * 4_294_967_296.0) as u64) << 32);
    crate::format::client_msg_id(now_ms(), r)
}
