//! The delivery rule for one online user in one conversation.
//!
//! - `through`: every `seq` up to it was pushed to the user, sent by them,
//!   or was at or below where they stood when they logged in or joined;
//!   `None` while unknown;
//! - `ahead`: the `seq`s seen above it, past a gap;
//! - `outstanding`: pushed (or held back), not acked yet.
//!
//! The cursor never passes a `seq` that was not pushed: after an ack it
//! becomes `min(through, min(outstanding) - 1)`, and it does not move
//! while `through` is unknown. A push above a gap is held back until the
//! gap closes (see `delivery.rs` for how a gap is fetched).

use shared::{MsgId, UserId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A push the user owes an ack for.
pub(super) struct Pending {
    pub(super) msg_id: MsgId,
    pub(super) from: UserId,
    /// One-to-one messages get delivery receipts (92); group messages do
    /// not (thousands of receipts per message), they get read counts.
    pub(super) receipt: bool,
    pub(super) frame: Utf8Bytes,
    pub(super) attempts: u32,
    pub(super) due: Instant,
    /// False while held back behind a gap.
    pub(super) sent: bool,
}

/// One user's delivery state in one conversation (see the module docs).
#[derive(Default)]
pub(super) struct ConvState {
    pub(super) through: Option<u64>,
    pub(super) ahead: BTreeSet<u64>,
    pub(super) outstanding: BTreeMap<u64, Pending>,
    /// How many of `outstanding` are held back (not sent).
    pub(super) held: usize,
    /// Every outstanding push up to here was sent (where `release` starts).
    pub(super) released: u64,
    /// The delivery cursor as last reported to the store.
    pub(super) cursor: u64,
    /// Since when pushes have waited behind a gap.
    pub(super) gap_since: Option<Instant>,
    /// The gap was reported and is being fetched.
    pub(super) fetching: bool,
}

impl ConvState {
    pub(super) fn seen(&self, seq: u64) -> bool {
        self.through.is_some_and(|t| seq <= t)
            || self.ahead.contains(&seq)
            || self.outstanding.contains_key(&seq)
    }

    /// Records `seq` as seen and moves `through` over what is contiguous.
    /// Nothing comes before seq 1, so seeing it fixes an unknown base.
    pub(super) fn mark(&mut self, seq: u64, now: Instant) {
        match self.through {
            Some(t) if seq <= t => return,
            // In order, the common case: no set to touch.
            Some(t) if seq == t + 1 => {
                self.through = Some(seq);
                if !self.ahead.is_empty() {
                    self.advance(now);
                }
                return;
            }
            None if seq == 1 => self.through = Some(0),
            _ => {}
        }
        self.ahead.insert(seq);
        self.advance(now);
    }

    /// Everything up to `base` is accounted for (login snapshot, join).
    pub(super) fn install(&mut self, base: u64, now: Instant) {
        let t = self.through.map_or(base, |t| t.max(base));
        self.through = Some(t);
        self.ahead = self.ahead.split_off(&(t + 1));
        self.advance(now);
    }

    pub(super) fn advance(&mut self, now: Instant) {
        let Some(t) = self.through.as_mut() else {
            return;
        };
        while self.ahead.remove(&(*t + 1)) {
            *t += 1;
        }
        if self.ahead.is_empty() {
            self.gap_since = None;
        } else if self.gap_since.is_none() {
            self.gap_since = Some(now);
        }
    }

    /// Adds the pushes no longer held back (not sent yet and now
    /// contiguous, or anything while the base is unknown) to `out`, in
    /// order, and marks them sent.
    pub(super) fn release(&mut self, out: &mut Vec<(u64, Utf8Bytes)>) {
        let upto = self.through.unwrap_or(u64::MAX);
        if self.held == 0 || upto <= self.released {
            return;
        }
        for (seq, p) in self.outstanding.range_mut(self.released + 1..=upto) {
            if !p.sent {
                p.sent = true;
                self.held -= 1;
                out.push((*seq, p.frame.clone()));
            }
        }
        if let Some(t) = self.through {
            self.released = self.released.max(t);
        }
    }

    /// The cursor after an ack, if it moves.
    pub(super) fn cursor_moves(&mut self) -> Option<u64> {
        let through = self.through?;
        let floor = match self.outstanding.keys().next() {
            Some(&min) => (min - 1).min(through),
            None => through,
        };
        (floor > self.cursor).then(|| {
            self.cursor = floor;
            floor
        })
    }
}
