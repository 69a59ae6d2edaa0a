//! The microphone: `getUserMedia`, raw `AudioData` from a
//! `MediaStreamTrackProcessor`, Opus in 20 ms frames from WebCodecs'
//! `AudioEncoder`, each sent as a binary frame (`shared::audio` header).
//!
//! The encoder is configured from the first frame's sample rate and
//! channel count: a microphone's format is only known once it runs (a fake
//! device in headless Chromium is 44.1 kHz stereo, a headset often 48 kHz
//! mono), and a mismatch makes `encode` fail.

use crate::codecs::{dict, AudioData, AudioEncoder, EncodedAudioChunk, MediaStreamTrackProcessor};
use crate::level;
use js_sys::{Reflect, Uint8Array};
use shared::audio::{encode_client, AudioHeader, KIND_OPUS};
use shared::GroupId;
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AnalyserNode, AudioContext, MediaStream, MediaStreamConstraints, MediaStreamTrack,
    MediaTrackConstraints, ReadableStreamDefaultReader,
};

/// Opus bitrate: clear speech at about 80 bytes per 20 ms frame.
const BITRATE: u32 = 32_000;
/// Opus frame length, microseconds.
const FRAME_US: u32 = 20_000;

/// Where encoded frames go (the app's socket, as binary).
pub type Sink = Rc<dyn Fn(&[u8])>;

/// A running microphone.
pub struct Capture {
    track: MediaStreamTrack,
    encoder: AudioEncoder,
    reader: ReadableStreamDefaultReader,
    analyser: AnalyserNode,
    muted: Rc<Cell<bool>>,
    stopped: Rc<Cell<bool>>,
    /// Frames sent so far.
    pub sent: Rc<Cell<u32>>,
    _output: Closure<dyn FnMut(EncodedAudioChunk)>,
    _error: Closure<dyn FnMut(JsValue)>,
    samples: Vec<f32>,
}

impl Capture {
    /// Asks for the microphone and starts sending to `group`'s room.
    pub async fn start(ctx: &AudioContext, group: GroupId, sink: Sink) -> Result<Capture, JsValue> {
        let window = web_sys::window().ok_or("no window")?;
        let constraints = MediaStreamConstraints::new();
        // Echo cancellation matters in a call (others would hear
        // themselves through our speakers); the encoder adapts to whatever
        // format that gives.
        let audio = MediaTrackConstraints::new();
        audio.set_echo_cancellation_bool(true);
        audio.set_noise_suppression_bool(true);
        constraints.set_audio(&audio);
        let stream: MediaStream = JsFuture::from(
            window
                .navigator()
                .media_devices()?
                .get_user_media_with_constraints(&constraints)?,
        )
        .await?
        .dyn_into()?;
        let track: MediaStreamTrack = stream
            .get_audio_tracks()
            .get(0)
            .dyn_into()
            .map_err(|_| "no microphone track")?;

        // The level meter: source → analyser → silent gain → destination
        // (an analyser outside the rendered graph is not always pulled).
        let source = ctx.create_media_stream_source(&stream)?;
        let analyser = ctx.create_analyser()?;
        analyser.set_fft_size(512);
        let silent = ctx.create_gain()?;
        silent.gain().set_value(0.0);
        source.connect_with_audio_node(&analyser)?;
        analyser.connect_with_audio_node(&silent)?;
        silent.connect_with_audio_node(&ctx.destination())?;

        let sent = Rc::new(Cell::new(0u32));
        let output = {
            let (sent, seq) = (sent.clone(), Cell::new(0u32));
            Closure::<dyn FnMut(EncodedAudioChunk)>::new(move |chunk: EncodedAudioChunk| {
                let mut payload = vec![0u8; chunk.byte_length() as usize];
                if chunk.copy_to(&mut payload).is_err() {
                    return;
                }
                let header = AudioHeader {
                    kind: KIND_OPUS,
                    group_id: group,
                    seq: seq.get(),
                    // Capture time in ms (wrapping), for the listeners.
                    ts: (chunk.timestamp() / 1000.0) as u64 as u32,
                };
                seq.set(seq.get().wrapping_add(1));
                sink(&encode_client(&header, &payload));
                sent.set(sent.get() + 1);
            })
        };
        let error = Closure::<dyn FnMut(JsValue)>::new(|e: JsValue| {
            web_sys::console::error_2(&"voice: encoder error".into(), &e);
        });
        let encoder = AudioEncoder::new(&dict(&[
            ("output", output.as_ref()),
            ("error", error.as_ref()),
        ]))?;

        let processor = MediaStreamTrackProcessor::new(&dict(&[("track", &track)]))?;
        let reader: ReadableStreamDefaultReader = processor.readable().get_reader().dyn_into()?;
        let muted = Rc::new(Cell::new(false));
        let stopped = Rc::new(Cell::new(false));
        wasm_bindgen_futures::spawn_local(pump(
            reader.clone(),
            encoder.clone(),
            muted.clone(),
            stopped.clone(),
        ));
        Ok(Capture {
            track,
            encoder,
            reader,
            analyser,
            muted,
            stopped,
            sent,
            _output: output,
            _error: error,
            samples: vec![0.0; 512],
        })
    }

    /// Pauses (true) or resumes sending; the microphone stays open.
    pub fn set_muted(&self, muted: bool) {
        self.muted.set(muted);
        self.track.set_enabled(!muted);
    }

    /// The microphone's level now (0 when muted).
    pub fn level(&mut self) -> f32 {
        if self.muted.get() {
            return 0.0;
        }
        self.analyser.get_float_time_domain_data(&mut self.samples);
        level::rms(&self.samples)
    }

    /// Stops the microphone (the browser's recording indicator goes off).
    pub fn stop(&self) {
        self.stopped.set(true);
        let _ = self.reader.cancel();
        self.track.stop();
        if self.encoder.state() != "closed" {
            let _ = self.encoder.close();
        }
        self.analyser.disconnect().ok();
    }
}

/// Reads the microphone's `AudioData` and feeds the encoder until stopped.
async fn pump(
    reader: ReadableStreamDefaultReader,
    encoder: AudioEncoder,
    muted: Rc<Cell<bool>>,
    stopped: Rc<Cell<bool>>,
) {
    let mut configured = false;
    while !stopped.get() {
        let Ok(result) = JsFuture::from(reader.read()).await else {
            return;
        };
        if Reflect::get(&result, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true)
        {
            return;
        }
        let Ok(data) =
            Reflect::get(&result, &"value".into()).and_then(|v| v.dyn_into::<AudioData>())
        else {
            return;
        };
        if stopped.get() || encoder.state() == "closed" {
            data.close();
            return;
        }
        if !configured {
            if let Err(e) = configure(&encoder, &data) {
                web_sys::console::error_2(&"voice: cannot configure Opus".into(), &e);
                data.close();
                return;
            }
            configured = true;
        }
        if !muted.get() {
            let _ = encoder.encode(&data);
        }
        data.close();
    }
}

/// Opus at the microphone's own rate and channels, 20 ms frames.
fn configure(encoder: &AudioEncoder, first: &AudioData) -> Result<(), JsValue> {
    let opus = dict(&[("frameDuration", &FRAME_US.into())]);
    encoder.configure(&dict(&[
        ("codec", &"opus".into()),
        ("sampleRate", &first.sample_rate().into()),
        ("numberOfChannels", &first.number_of_channels().into()),
        ("bitrate", &BITRATE.into()),
        ("opus", &opus),
    ]))
}

/// Wraps bytes for the app's `send` function.
pub fn to_js(bytes: &[u8]) -> JsValue {
    Uint8Array::from(bytes).into()
}
