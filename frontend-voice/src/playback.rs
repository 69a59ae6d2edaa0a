//! Listening: one WebCodecs `AudioDecoder` per speaker, each decoded chunk
//! copied into an `AudioBuffer` and started on the `AudioContext` clock
//! behind that speaker's jitter buffer (`jitter.rs`), through an analyser
//! that drives the speaking indicator.

use crate::codecs::{dict, AudioData, AudioDecoder, EncodedAudioChunk};
use crate::jitter::Jitter;
use crate::level;
use js_sys::{Float32Array, Uint8Array};
use shared::{GroupId, UserId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::{AnalyserNode, AudioContext};

/// Opus decodes to any rate; 48 kHz is its native one.
const RATE: u32 = 48_000;
/// Voice: one channel (a stereo speaker is mixed down by the decoder).
const CHANNELS: u32 = 1;
/// Frames whose sequence jumps back more than this are from a speaker who
/// restarted (new encoder), not late duplicates.
const RESTART_GAP: u32 = 50;

/// What the listener did, for the panel (and the browser test).
#[derive(Debug, Default)]
pub struct Stats {
    /// Audio frames received.
    pub received: Cell<u32>,
    /// Chunks decoded.
    pub decoded: Cell<u32>,
    /// Chunks scheduled for playback.
    pub played: Cell<u32>,
    /// Frames skipped: late or duplicate.
    pub late: Cell<u32>,
}

struct Speaker {
    decoder: AudioDecoder,
    analyser: AnalyserNode,
    last_seq: Option<u32>,
    level: f32,
    _output: Closure<dyn FnMut(AudioData)>,
    _error: Closure<dyn FnMut(JsValue)>,
}

/// Playback of one room.
pub struct Playback {
    ctx: AudioContext,
    group: GroupId,
    speakers: HashMap<UserId, Speaker>,
    /// Shared with the decoders' callbacks.
    pub stats: Rc<Stats>,
    samples: Vec<f32>,
}

impl Playback {
    /// Plays `group`'s audio on `ctx`.
    pub fn new(ctx: AudioContext, group: GroupId) -> Self {
        Playback {
            ctx,
            group,
            speakers: HashMap::new(),
            stats: Rc::new(Stats::default()),
            samples: vec![0.0; 512],
        }
    }

    /// One relayed frame: decoded, then scheduled by the output callback.
    pub fn frame(&mut self, group: GroupId, speaker: UserId, seq: u32, ts: u32, payload: &[u8]) {
        if group != self.group {
            return;
        }
        self.stats.received.set(self.stats.received.get() + 1);
        if !self.speakers.contains_key(&speaker) {
            match self.speaker() {
                Ok(s) => {
                    self.speakers.insert(speaker, s);
                }
                Err(e) => {
                    web_sys::console::error_2(&"voice: no decoder".into(), &e);
                    return;
                }
            }
        }
        let Some(s) = self.speakers.get_mut(&speaker) else {
            return;
        };
        if let Some(last) = s.last_seq {
            let behind = last.wrapping_sub(seq);
            if behind < RESTART_GAP {
                // A duplicate or a frame overtaken by later ones.
                self.stats.late.set(self.stats.late.get() + 1);
                return;
            }
        }
        s.last_seq = Some(seq);
        if s.decoder.state() != "configured" {
            return;
        }
        // Every Opus frame decodes on its own: all are "key" chunks.
        let init = dict(&[
            ("type", &"key".into()),
            ("timestamp", &(f64::from(ts) * 1000.0).into()),
            ("data", &Uint8Array::from(payload)),
        ]);
        if let Ok(chunk) = EncodedAudioChunk::new(&init) {
            let _ = s.decoder.decode(&chunk);
        }
    }

    /// A decoder and its output chain for a new speaker.
    fn speaker(&self) -> Result<Speaker, JsValue> {
        let analyser = self.ctx.create_analyser()?;
        analyser.set_fft_size(512);
        analyser.connect_with_audio_node(&self.ctx.destination())?;
        let jitter = RefCell::new(Jitter::default());
        let output = {
            let (ctx, analyser, stats) = (self.ctx.clone(), analyser.clone(), self.stats.clone());
            Closure::<dyn FnMut(AudioData)>::new(move |data: AudioData| {
                let played = play(&ctx, &analyser, &jitter, &data);
                data.close();
                stats.decoded.set(stats.decoded.get() + 1);
                if played.unwrap_or(false) {
                    stats.played.set(stats.played.get() + 1);
                }
            })
        };
        let error = Closure::<dyn FnMut(JsValue)>::new(|e: JsValue| {
            web_sys::console::error_2(&"voice: decoder error".into(), &e);
        });
        let decoder = AudioDecoder::new(&dict(&[
            ("output", output.as_ref()),
            ("error", error.as_ref()),
        ]))?;
        decoder.configure(&dict(&[
            ("codec", &"opus".into()),
            ("sampleRate", &RATE.into()),
            ("numberOfChannels", &CHANNELS.into()),
        ]))?;
        Ok(Speaker {
            decoder,
            analyser,
            last_seq: None,
            level: 0.0,
            _output: output,
            _error: error,
        })
    }

    /// Each speaker's level now (smoothed), for the indicators.
    pub fn levels(&mut self) -> Vec<(UserId, f32)> {
        let mut out = Vec::with_capacity(self.speakers.len());
        for (&user, s) in &mut self.speakers {
            s.analyser.get_float_time_domain_data(&mut self.samples);
            s.level = level::smooth(s.level, level::rms(&self.samples));
            out.push((user, s.level));
        }
        out
    }

    /// Stops every decoder (queued chunks still play out).
    pub fn stop(&mut self) {
        for (_, s) in self.speakers.drain() {
            if s.decoder.state() != "closed" {
                let _ = s.decoder.close();
            }
            s.analyser.disconnect().ok();
        }
    }
}

/// Copies a decoded chunk into an `AudioBuffer` and starts it at the
/// speaker's next slot; Ok(false) when the jitter buffer drops it.
fn play(
    ctx: &AudioContext,
    out: &AnalyserNode,
    jitter: &RefCell<Jitter>,
    data: &AudioData,
) -> Result<bool, JsValue> {
    let (frames, channels) = (data.number_of_frames(), data.number_of_channels());
    let buffer = ctx.create_buffer(channels, frames, data.sample_rate())?;
    for c in 0..channels {
        let plane = Float32Array::new_with_length(frames);
        let opts = dict(&[("planeIndex", &c.into()), ("format", &"f32-planar".into())]);
        data.copy_to(&plane, &opts)?;
        buffer.copy_to_channel_with_f32_array(&plane, c as i32)?;
    }
    let Some(at) = jitter
        .borrow_mut()
        .schedule(ctx.current_time(), buffer.duration())
    else {
        return Ok(false);
    };
    let source = ctx.create_buffer_source()?;
    source.set_buffer(Some(&buffer));
    source.connect_with_audio_node(out)?;
    source.start_with_when(at)?;
    Ok(true)
}
