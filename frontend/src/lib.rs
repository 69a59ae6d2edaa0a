//! ferrochat's browser client: a yew single-page app.
//!
//! Layout follows yew's `function_todomvc` example:
//! - [`state`]: the `Reducible` app state and its `Action`s (pure);
//! - [`model`]: conversations and message states (pure);
//! - [`format`](mod@format): display helpers (pure);
//! - [`services`]: WebSocket session, HTTP API, storage (browser glue, with
//!   the pure `backoff` and `heartbeat` decision logic);
//! - [`components`]: one widget per file.
//!
//! The pure modules are unit-tested natively with `cargo test -p frontend`.

pub mod components;
pub mod format;
pub mod model;
pub mod services;
pub mod state;

/// Entry point: renders the app into `<body>` once the wasm module loads.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    // `support.html` (framed by `widget.js`) is the visitor's chat with the
    // desk, a build of its own (feature `support`); otherwise the app.
    #[cfg(feature = "support")]
    yew::Renderer::<components::support::SupportApp>::new().render();
    #[cfg(not(feature = "support"))]
    yew::Renderer::<components::app::App>::new().render();
}
