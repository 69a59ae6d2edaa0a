//! ferrochat voice rooms in the browser (issue 14): a second wasm module
//! that the web app imports when a logged-in socket is up, so the app's
//! first download stays within its budget (`xtask/src/dist.rs`).
//!
//! - [`state`]: the panel's state and what clicks send (pure, tested);
//! - [`jitter`]: each speaker's playback schedule (pure, tested);
//! - [`level`]: loudness for the speaking indicator (pure, tested);
//! - `capture.rs`: microphone → WebCodecs Opus → binary frames;
//! - `playback.rs`: binary frames → `AudioDecoder` → Web Audio;
//! - `view.rs`: the panel in the app's `#voice-slot`;
//! - `engine.rs`: the `Voice` class the app drives.
//!
//! The browser parts (`codecs.rs` declares the WebCodecs bindings) are
//! wasm32-only.

pub mod jitter;
pub mod level;
pub mod state;

#[cfg(target_arch = "wasm32")]
mod capture;
#[cfg(target_arch = "wasm32")]
mod codecs;
#[cfg(target_arch = "wasm32")]
mod engine;
#[cfg(target_arch = "wasm32")]
mod playback;
#[cfg(target_arch = "wasm32")]
mod view;

#[cfg(target_arch = "wasm32")]
pub use engine::Voice;
