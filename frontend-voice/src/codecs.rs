//! Bindings for the WebCodecs audio classes and `MediaStreamTrackProcessor`.
//!
//! web-sys has them only behind `--cfg=web_sys_unstable_apis`, a flag that
//! applies to a whole build and changes stable signatures the app relies on
//! (`Element::scroll_top` becomes `f64`); these few declarations keep this
//! module independent of it. Option dictionaries are plain objects
//! ([`dict`]).

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// WebCodecs `AudioEncoder`.
    #[wasm_bindgen(extends = Object)]
    #[derive(Clone, Debug)]
    pub type AudioEncoder;
    #[wasm_bindgen(constructor, catch)]
    pub fn new(init: &Object) -> Result<AudioEncoder, JsValue>;
    #[wasm_bindgen(method, catch)]
    pub fn configure(this: &AudioEncoder, config: &Object) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    pub fn encode(this: &AudioEncoder, data: &AudioData) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    pub fn close(this: &AudioEncoder) -> Result<(), JsValue>;
    /// "unconfigured", "configured" or "closed".
    #[wasm_bindgen(method, getter)]
    pub fn state(this: &AudioEncoder) -> String;

    /// WebCodecs `AudioDecoder`.
    #[wasm_bindgen(extends = Object)]
    #[derive(Clone, Debug)]
    pub type AudioDecoder;
    #[wasm_bindgen(constructor, catch)]
    pub fn new(init: &Object) -> Result<AudioDecoder, JsValue>;
    #[wasm_bindgen(method, catch)]
    pub fn configure(this: &AudioDecoder, config: &Object) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    pub fn decode(this: &AudioDecoder, chunk: &EncodedAudioChunk) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    pub fn close(this: &AudioDecoder) -> Result<(), JsValue>;
    #[wasm_bindgen(method, getter)]
    pub fn state(this: &AudioDecoder) -> String;

    /// WebCodecs `AudioData`: raw samples.
    #[wasm_bindgen(extends = Object)]
    #[derive(Clone, Debug)]
    pub type AudioData;
    #[wasm_bindgen(method, getter, js_name = numberOfChannels)]
    pub fn number_of_channels(this: &AudioData) -> u32;
    #[wasm_bindgen(method, getter, js_name = numberOfFrames)]
    pub fn number_of_frames(this: &AudioData) -> u32;
    #[wasm_bindgen(method, getter, js_name = sampleRate)]
    pub fn sample_rate(this: &AudioData) -> f32;
    #[wasm_bindgen(method, catch, js_name = copyTo)]
    pub fn copy_to(this: &AudioData, dest: &Object, options: &Object) -> Result<(), JsValue>;
    #[wasm_bindgen(method)]
    pub fn close(this: &AudioData);

    /// WebCodecs `EncodedAudioChunk`: one Opus frame.
    #[wasm_bindgen(extends = Object)]
    #[derive(Clone, Debug)]
    pub type EncodedAudioChunk;
    #[wasm_bindgen(constructor, catch)]
    pub fn new(init: &Object) -> Result<EncodedAudioChunk, JsValue>;
    #[wasm_bindgen(method, getter, js_name = byteLength)]
    pub fn byte_length(this: &EncodedAudioChunk) -> u32;
    /// Microseconds.
    #[wasm_bindgen(method, getter)]
    pub fn timestamp(this: &EncodedAudioChunk) -> f64;
    #[wasm_bindgen(method, catch, js_name = copyTo)]
    pub fn copy_to(this: &EncodedAudioChunk, dest: &mut [u8]) -> Result<(), JsValue>;

    /// `MediaStreamTrackProcessor`: a track's frames as a stream.
    #[wasm_bindgen(extends = Object)]
    #[derive(Clone, Debug)]
    pub type MediaStreamTrackProcessor;
    #[wasm_bindgen(constructor, catch)]
    pub fn new(init: &Object) -> Result<MediaStreamTrackProcessor, JsValue>;
    #[wasm_bindgen(method, getter)]
    pub fn readable(this: &MediaStreamTrackProcessor) -> web_sys::ReadableStream;
}

/// An options object from key/value pairs.
pub fn dict(pairs: &[(&str, &JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in pairs {
        let _ = Reflect::set(&o, &(*k).into(), v);
    }
    o
}
