//! The listening side of a participant: accounting for every relayed audio
//! frame per speaker of its room (received, duplicate, out of order) and
//! its latency from the frame's intended send time, which the speaker
//! wrote into the payload on the run's clock (one process, one monotonic
//! clock: no skew).
//!
//! Latencies go to a few shared histograms ([`Shards`]) in batches rather
//! than one histogram per socket: thousands of 3-digit histograms would
//! cost the generator hundreds of MB.

use super::args::PAYLOAD_STAMP;
use crate::latency::{new_histogram, record_us};
use crate::track::Clock;
use hdrhistogram::Histogram;
use shared::audio;
use shared::{GroupId, UserId};
use std::sync::{Arc, Mutex};

/// Latencies a listener keeps before adding them to the shared histogram.
const LOCAL_BATCH: usize = 256;

/// Histograms shared by every listener, each behind its own lock; a
/// listener always records into the same one.
pub struct Shards(Vec<Mutex<Histogram<u64>>>);

impl Shards {
    /// `n` empty histograms.
    pub fn new(n: usize) -> Shards {
        Shards((0..n.max(1)).map(|_| Mutex::new(new_histogram())).collect())
    }

    /// Records `values` (µs) into shard `i` (modulo the count).
    pub fn record(&self, i: usize, values: &[u64]) {
        let mut h = self.0[i % self.0.len()].lock().unwrap();
        for &v in values {
            record_us(&mut h, v);
        }
    }

    /// All shards added up.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for h in &self.0 {
            all.add(&*h.lock().unwrap()).expect("same bounds");
        }
        all
    }
}

/// What one listener heard from one speaker of its room.
#[derive(Clone, Debug, Default)]
pub struct Heard {
    /// Distinct frames (by sequence number).
    pub received: u64,
    /// A sequence number seen again.
    pub duplicates: u64,
    /// A first arrival below the highest sequence number seen before it.
    pub out_of_order: u64,
    highest: u32,
    /// Bit `seq - 1`: frame `seq` arrived.
    seen: Vec<u64>,
}

impl Heard {
    /// Accounts for frame `seq` (1, 2, …); true for a first arrival.
    pub fn on_seq(&mut self, seq: u32) -> bool {
        let Some(i) = (seq as usize).checked_sub(1) else {
            return false;
        };
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        self.seen[word] |= bit;
        self.received += 1;
        if seq < self.highest {
            self.out_of_order += 1;
        } else {
            self.highest = seq;
        }
        true
    }
}

/// Where a latency goes: the pair's speaker and listener on one relay, or
/// on two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Same relay.
    Same = 0,
    /// Across relays.
    Cross = 1,
}

/// A participant's listening state.
pub struct Listener {
    group: GroupId,
    /// The room's speakers, by their index in the room.
    speakers: Arc<[UserId]>,
    /// Each speaker's route to this listener.
    routes: Vec<Route>,
    /// Per speaker of the room (this participant's own entry stays empty).
    pub heard: Vec<Heard>,
    /// Frames for another group, from a user who is not a speaker of the
    /// room, unparsable, or before the run's clock started.
    pub stray: u64,
    /// Frames counted in the latency statistics.
    pub measured: u64,
    shard: usize,
    pending: [Vec<u64>; 2],
}

impl Listener {
    /// Listener number `shard` in `group`, hearing `speakers` over
    /// `routes`.
    pub fn new(group: GroupId, speakers: Arc<[UserId]>, routes: Vec<Route>, shard: usize) -> Self {
        Listener {
            group,
            heard: vec![Heard::default(); speakers.len()],
            speakers,
            routes,
            stray: 0,
            measured: 0,
            shard,
            pending: [Vec::new(), Vec::new()],
        }
    }

    /// Accounts for one relayed frame arriving at `now_us` on `clock`;
    /// true when it is a first arrival.
    pub fn on_frame(&mut self, b: &[u8], clock: &Clock, now_us: u64, lat: &[Shards; 2]) -> bool {
        let Ok((h, speaker, payload)) = audio::parse_listener(b) else {
            self.stray += 1;
            return false;
        };
        let who = self.speakers.iter().position(|&s| s == speaker);
        let (Some(who), true, true) = (
            who,
            h.group_id == self.group,
            payload.len() >= PAYLOAD_STAMP,
        ) else {
            self.stray += 1;
            return false;
        };
        let mut stamp = [0u8; PAYLOAD_STAMP];
        stamp.copy_from_slice(&payload[..PAYLOAD_STAMP]);
        let sent_us = u64::from_be_bytes(stamp);
        if !self.heard[who].on_seq(h.seq) {
            return false;
        }
        if clock.measured(sent_us) {
            self.measured += 1;
            let route = self.routes[who] as usize;
            let p = &mut self.pending[route];
            p.push(now_us.saturating_sub(sent_us));
            if p.len() >= LOCAL_BATCH {
                lat[route].record(self.shard, p);
                p.clear();
            }
        }
        true
    }

    /// Hands the latencies still held to the shared histograms.
    pub fn flush(&mut self, lat: &[Shards; 2]) {
        for (route, p) in self.pending.iter_mut().enumerate() {
            if !p.is_empty() {
                lat[route].record(self.shard, p);
                p.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::audio::{AudioHeader, KIND_OPUS};
    use std::time::Instant;

    fn relayed(group: i64, speaker: i64, seq: u32, sent_us: u64) -> Vec<u8> {
        let mut payload = sent_us.to_be_bytes().to_vec();
        payload.extend_from_slice(&[0; 20]);
        let f = audio::encode_client(
            &AudioHeader {
                kind: KIND_OPUS,
                group_id: GroupId(group),
                seq,
                ts: 0,
            },
            &payload,
        );
        audio::to_listener(&f, UserId(speaker))
    }

    #[test]
    fn sequence_numbers_are_counted_once_in_order() {
        let mut h = Heard::default();
        assert!(h.on_seq(1));
        assert!(h.on_seq(3));
        assert!(h.on_seq(2), "late, but a first arrival");
        assert!(!h.on_seq(3));
        assert!(!h.on_seq(0));
        assert!(h.on_seq(200));
        assert_eq!((h.received, h.duplicates, h.out_of_order), (4, 1, 1));
    }

    #[test]
    fn frames_are_accounted_per_speaker_with_their_latency() {
        let clock = Clock {
            t0: Instant::now(),
            warmup_us: 1_000,
            end_us: 10_000,
        };
        let lat = [Shards::new(2), Shards::new(2)];
        let speakers: Arc<[UserId]> = vec![UserId(7), UserId(8)].into();
        let mut l = Listener::new(GroupId(3), speakers, vec![Route::Same, Route::Cross], 1);
        // In the warm-up: counted, not measured.
        assert!(l.on_frame(&relayed(3, 7, 1, 500), &clock, 900, &lat));
        assert!(l.on_frame(&relayed(3, 7, 2, 2_000), &clock, 2_500, &lat));
        assert!(l.on_frame(&relayed(3, 8, 1, 2_000), &clock, 3_000, &lat));
        assert!(!l.on_frame(&relayed(3, 8, 1, 2_000), &clock, 3_100, &lat));
        assert!(!l.on_frame(&relayed(4, 8, 2, 2_000), &clock, 3_100, &lat));
        assert!(!l.on_frame(&relayed(3, 9, 1, 2_000), &clock, 3_100, &lat));
        assert!(!l.on_frame(&[1, 1, 0], &clock, 3_100, &lat));
        assert_eq!(l.stray, 3);
        assert_eq!(l.measured, 2);
        assert_eq!((l.heard[0].received, l.heard[1].received), (2, 1));
        assert_eq!(l.heard[1].duplicates, 1);
        assert!(lat[0].merged().is_empty(), "batched until flushed");
        l.flush(&lat);
        let (same, cross) = (lat[0].merged(), lat[1].merged());
        assert_eq!((same.len(), same.max()), (1, 500));
        assert_eq!((cross.len(), cross.max()), (1, 1_000));
    }
}
