//! The `voice` scenario's options and the limits they must respect.

use crate::chat::{ChatArgs, Placement};
use crate::report::ser_secs;
use crate::{parse_duration, Error};
use clap::Args;
use serde::Serialize;
use shared::audio::{CLIENT_HEADER, MAX_AUDIO_FRAME};
use std::time::Duration;

/// Bytes of every payload the generator reads back: the intended send
/// time, µs on the run's clock (u64 big-endian).
pub const PAYLOAD_STAMP: usize = 8;

/// The relay's audio caps per socket (`docs/protocol.md`, "Limits").
const AUDIO_FRAMES_PER_SEC: f64 = 100.0;
const AUDIO_BYTES_PER_SEC: f64 = 64_000.0;

/// File descriptors needed besides one per socket.
const FD_MARGIN: u64 = 64;

/// Options of the `voice` scenario.
#[derive(Args, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceArgs {
    /// Voice rooms, one group each; 0 runs the chat side load alone (the
    /// baseline to compare a run with voice against).
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Participants per room, each a distinct user with one socket (at
    /// most the relay's `--voice-capacity`, default 50).
    #[arg(long, default_value_t = 50)]
    pub participants: usize,
    /// Speakers per room (the first S participants); every participant,
    /// speakers included, listens to the others.
    #[arg(long, default_value_t = 2)]
    pub speakers: usize,
    /// Payload bytes per audio frame after the 18-byte header (an Opus
    /// packet is ~80–120 B at 32 kbit/s and 20 ms); at least 8 (the send
    /// time the listeners read).
    #[arg(long, default_value_t = 100)]
    pub frame_bytes: usize,
    /// Time between two frames of one speaker (Opus: 20 ms).
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub interval: Duration,
    /// Measured period (audio and chat).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
    /// Period before the measurement: sent and accounted for (loss), not in
    /// the latency statistics.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub warmup: Duration,
    /// Longest wait after the last frame for frames still on their way
    /// (ends early once every expected frame has arrived). A frame that has
    /// not arrived by then is lost.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_secs")]
    pub drain: Duration,
    /// Chat pairs running in the same run as a side load (0: none); their
    /// latency, compared with a run of the same chat load without voice
    /// (`--rooms 0`), shows whether audio slows chat down.
    #[arg(long, default_value_t = 0)]
    pub chat_pairs: usize,
    /// The chat side load's total rate, msg/s, open loop (latency from the
    /// intended send time).
    #[arg(long, default_value_t = 500.0)]
    pub chat_rate: f64,
    /// Chat body size in bytes.
    #[arg(long, default_value_t = 32)]
    pub chat_body_bytes: usize,
    /// The run fails when more than this share of the expected audio
    /// frames was lost, percent (audio is lossy by design: some loss is
    /// not a fault).
    #[arg(long, default_value_t = 1.0)]
    pub max_loss: f64,
    /// The run fails when the audio latency's p99 exceeds this (not
    /// checked unless given).
    #[arg(long, value_parser = parse_duration)]
    #[serde(serialize_with = "ser_opt_secs")]
    pub max_p99: Option<Duration>,
    /// Sessions opened (and voice rooms joined) concurrently before the run.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// `POST /api/groups/{id}/join` requests in flight.
    #[arg(long, default_value_t = 16)]
    pub join_concurrency: usize,
    /// WebSocket read buffer per connection, bytes.
    #[arg(long, default_value_t = 8192)]
    pub read_buffer: usize,
}

fn ser_opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl VoiceArgs {
    /// Refuses options a run cannot be carried out with, among them audio
    /// the relay would refuse (over its per-socket caps).
    pub fn check(&self) -> Result<(), Error> {
        if self.rooms == 0 && self.chat_pairs == 0 {
            return Err("nothing to run: --rooms 0 needs --chat-pairs".into());
        }
        if self.rooms > 0 {
            if self.participants < 2 {
                return Err("--participants must be at least 2".into());
            }
            if self.speakers == 0 || self.speakers > self.participants {
                return Err("--speakers must be 1..=--participants".into());
            }
        }
        if self.duration.is_zero() || self.drain.is_zero() {
            return Err("--duration and --drain must be positive".into());
        }
        let frame = CLIENT_HEADER + self.frame_bytes;
        if self.frame_bytes < PAYLOAD_STAMP || frame > MAX_AUDIO_FRAME {
            return Err(format!(
                "--frame-bytes must be {PAYLOAD_STAMP}..={} (a frame is at most {MAX_AUDIO_FRAME} B with its {CLIENT_HEADER}-byte header)",
                MAX_AUDIO_FRAME - CLIENT_HEADER
            )
            .into());
        }
        let per_sec = 1.0 / self.interval.as_secs_f64();
        if self.interval.is_zero()
            || per_sec > AUDIO_FRAMES_PER_SEC
            || per_sec * frame as f64 > AUDIO_BYTES_PER_SEC
        {
            return Err(format!(
                "--interval {:?} with {frame}-byte frames is over the relay's audio caps per socket ({AUDIO_FRAMES_PER_SEC} frames/s, {AUDIO_BYTES_PER_SEC} B/s)",
                self.interval
            )
            .into());
        }
        if !(0.0..=100.0).contains(&self.max_loss) {
            return Err("--max-loss is a percentage, 0..=100".into());
        }
        if self.chat_pairs > 0 {
            self.chat_args().check()?;
            if !(self.chat_rate > 0.0 && self.chat_rate.is_finite()) {
                return Err("--chat-rate must be positive (the side load is open loop)".into());
            }
        }
        Ok(())
    }

    /// Sockets the run opens: every participant, two per chat pair.
    pub fn sockets(&self) -> usize {
        self.rooms * self.participants + 2 * self.chat_pairs
    }

    /// Refuses a run whose sockets this process, allowed `fds` file
    /// descriptors, cannot hold.
    pub fn check_fd_limit(&self, fds: u64) -> Result<(), Error> {
        let needed = self.sockets() as u64 + FD_MARGIN;
        if needed > fds {
            return Err(format!(
                "{} sockets need about {needed} file descriptors but this process may hold {fds} (ulimit -n)",
                self.sockets()
            )
            .into());
        }
        Ok(())
    }

    /// Frames one speaker sends: one per interval over warm-up and
    /// measured period.
    pub fn frames_per_speaker(&self) -> u64 {
        let span = (self.warmup + self.duration).as_micros();
        span.div_ceil(self.interval.as_micros().max(1)) as u64
    }

    /// Audio frames per second into the relay (every speaker).
    pub fn frames_in_per_sec(&self) -> f64 {
        (self.rooms * self.speakers) as f64 / self.interval.as_secs_f64()
    }

    /// Audio frames per second out of the relay (every other participant
    /// of a speaker's room hears it).
    pub fn frames_out_per_sec(&self) -> f64 {
        self.frames_in_per_sec() * self.participants.saturating_sub(1) as f64
    }

    /// The chat side load as `chat` options: open loop at `--chat-rate`,
    /// on the same warm-up and measured period, pairs spread over the
    /// relays.
    pub fn chat_args(&self) -> ChatArgs {
        ChatArgs {
            pairs: self.chat_pairs,
            window: 64,
            rate: self.chat_rate,
            duration: self.duration,
            warmup: self.warmup,
            drain: Duration::from_secs(10),
            body_bytes: self.chat_body_bytes,
            connect_concurrency: self.connect_concurrency,
            read_buffer: 16 * 1024,
            placement: Placement::Spread,
            reconnect: false,
            reconnect_deadline: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Small options for unit tests.
    pub fn args(rooms: usize, participants: usize, speakers: usize) -> VoiceArgs {
        VoiceArgs {
            rooms,
            participants,
            speakers,
            frame_bytes: 100,
            interval: Duration::from_millis(20),
            duration: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            drain: Duration::from_secs(1),
            chat_pairs: 0,
            chat_rate: 500.0,
            chat_body_bytes: 32,
            max_loss: 1.0,
            max_p99: None,
            connect_concurrency: 4,
            join_concurrency: 4,
            read_buffer: 4096,
        }
    }

    #[test]
    fn options_are_checked() {
        assert!(args(10, 50, 2).check().is_ok());
        assert!(args(1, 2, 2).check().is_ok());
        for bad in [
            args(0, 50, 2),
            args(1, 1, 1),
            args(1, 5, 0),
            args(1, 5, 6),
            VoiceArgs {
                frame_bytes: 7,
                ..args(1, 5, 1)
            },
            VoiceArgs {
                frame_bytes: 983,
                ..args(1, 5, 1)
            },
            // 200 frames/s: over 100 frames/s.
            VoiceArgs {
                interval: Duration::from_millis(5),
                ..args(1, 5, 1)
            },
            // 10 ms × 900 B: 90,000 B/s, over 64,000.
            VoiceArgs {
                interval: Duration::from_millis(10),
                frame_bytes: 882,
                ..args(1, 5, 1)
            },
            VoiceArgs {
                max_loss: 101.0,
                ..args(1, 5, 1)
            },
            VoiceArgs {
                chat_pairs: 2,
                chat_rate: 0.0,
                ..args(1, 5, 1)
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        // The chat side load alone is a run.
        let baseline = VoiceArgs {
            chat_pairs: 2,
            ..args(0, 50, 2)
        };
        assert!(baseline.check().is_ok());
        assert_eq!(baseline.sockets(), 4);
    }

    #[test]
    fn load_figures_and_file_descriptors() {
        let a = args(10, 50, 2);
        assert_eq!(a.frames_in_per_sec(), 1000.0);
        assert_eq!(a.frames_out_per_sec(), 49_000.0);
        // 3 s at 20 ms: 150 frames.
        assert_eq!(a.frames_per_speaker(), 150);
        assert!(args(80, 50, 2).check_fd_limit(20_000).is_ok());
        assert!(args(400, 50, 2).check_fd_limit(20_000).is_err());
        let c = VoiceArgs {
            chat_pairs: 50,
            ..args(1, 2, 1)
        }
        .chat_args();
        assert_eq!(
            (c.pairs, c.rate, c.warmup),
            (50, 500.0, Duration::from_secs(1))
        );
    }
}
