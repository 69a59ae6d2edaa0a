//! Delivery: which pushes each online user owes an ack for, and where their
//! delivery cursor may move.
//!
//! Per online user and conversation ([`ConvState`]):
//! - `through`: every `seq` up to it was pushed to the user, sent by them,
//!   or was at or below where they stood when they logged in or joined.
//!   `None` while unknown;
//! - `ahead`: the `seq`s seen above it, past a gap;
//! - `outstanding`: pushed (or held back), not acked yet.
//!
//! **The rule:** the delivery cursor never passes a `seq` that was not
//! pushed. After an ack it becomes `min(through, min(outstanding) - 1)`,
//! and it does not move while `through` is unknown. A push that arrives
//! above a gap (its predecessor not seen yet: with several sessions, or
//! several relays, committing into one conversation, pushes can arrive out
//! of order) is held back, so a client always gets a conversation in
//! order; once the gap is older than `gap_wait` it is reported
//! ([`Hub::due_gaps`]), fetched from the store and filled
//! ([`Hub::fill_gap`]), which releases what was held.

use super::conv::Pending;
use super::{Hub, UserEntry};
use crate::socket::{encode, SocketHandle};
use crate::store::{ConvId, Position, StoredMessage};
use shared::{MsgId, Target, UserId};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Acks remembered per user to answer repeats without the database.
const RECENT_ACKS: usize = 256;
/// Live pushes buffered for a socket that is still receiving its backlog;
/// past this the socket reloads from the database instead.
const SYNC_BUFFER: usize = 4096;

impl UserEntry {
    /// Starts tracking a push; adds the frames now due to the user's
    /// sockets (this one, unless held back, and any it released) to `out`.
    fn track(
        &mut self,
        msg: &StoredMessage,
        frame: &Utf8Bytes,
        due: Instant,
        now: Instant,
        out: &mut Vec<(u64, Utf8Bytes)>,
    ) {
        if self.by_msg.contains_key(&msg.msg_id) || self.recent_acks.contains(&msg.msg_id) {
            return;
        }
        let cs = self.convs.entry(msg.conv).or_default();
        if cs.seen(msg.seq) {
            return;
        }
        let gapped = cs.gap_since.is_some();
        cs.held += 1;
        cs.outstanding.insert(
            msg.seq,
            Pending {
                msg_id: msg.msg_id,
                from: msg.from,
                receipt: matches!(msg.to, Target::User(_)),
                frame: frame.clone(),
                attempts: 0,
                due,
                sent: false,
            },
        );
        cs.mark(msg.seq, now);
        cs.release(out);
        if gapped != cs.gap_since.is_some() {
            self.note_gap(msg.conv);
        }
        self.by_msg.insert(msg.msg_id, (msg.conv, msg.seq));
        self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
    }

    /// Records the user's own message; adds pushes it released to `out`.
    fn own(&mut self, conv: ConvId, seq: u64, now: Instant, out: &mut Vec<(u64, Utf8Bytes)>) {
        let cs = self.convs.entry(conv).or_default();
        let gapped = cs.gap_since.is_some();
        cs.mark(seq, now);
        cs.release(out);
        if gapped != cs.gap_since.is_some() {
            self.note_gap(conv);
        }
    }

    fn note_gap(&mut self, conv: ConvId) {
        if self.convs.get(&conv).is_some_and(|c| c.gap_since.is_some()) {
            self.gapped.insert(conv);
        } else {
            self.gapped.remove(&conv);
        }
    }

    /// Queues `frames` (drained) to live sockets, or to the buffers of
    /// syncing ones.
    fn deliver_frames(
        &mut self,
        conv: ConvId,
        frames: &mut Vec<(u64, Utf8Bytes)>,
        out: &mut Vec<(SocketHandle, Utf8Bytes)>,
    ) {
        if frames.is_empty() {
            return;
        }
        for s in self.sockets.iter_mut() {
            match s.sync.as_mut() {
                None => out.extend(frames.iter().map(|(_, f)| (s.handle.clone(), f.clone()))),
                Some(buf) => {
                    for (seq, f) in frames.iter() {
                        if buf.frames.len() >= SYNC_BUFFER {
                            buf.overflow = true;
                            buf.frames.clear();
                        }
                        if !buf.overflow {
                            buf.frames.push((conv, *seq, f.clone()));
                        }
                    }
                }
            }
        }
        frames.clear();
    }
}

/// Live pushes that arrived while a socket was receiving its backlog.
#[derive(Default)]
pub(super) struct SyncBuffer {
    frames: Vec<(ConvId, u64, Utf8Bytes)>,
    /// The highest `seq` per conversation the backlog sent this socket.
    sent: HashMap<ConvId, u64>,
    overflow: bool,
}

/// What an ack did.
#[derive(Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// First ack of a tracked push.
    Acked {
        /// The original sender.
        sender: UserId,
        /// Whether the sender gets a delivery receipt (one-to-one only).
        receipt: bool,
        /// The conversation.
        conv: ConvId,
        /// The new delivery cursor, when it moved.
        cursor: Option<u64>,
    },
    /// A repeat of a recent ack.
    Repeat,
    /// Not tracked here.
    Unknown,
}

/// How a backlog sync ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SyncEnd {
    /// The socket is live.
    Done,
    /// Too many live pushes piled up meanwhile: load again from the store.
    Reload,
}

/// Pushes held back behind missing `seq`s, to fetch from the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Whose.
    pub user: UserId,
    /// Where.
    pub conv: ConvId,
    /// Seen up to here…
    pub after: u64,
    /// …and again from here.
    pub before: u64,
}

impl Hub {
    /// Pushes `frame` (of `msg`) to each online user in `users` (the sender
    /// excluded), tracking it, and marks it seen for the sender. Locks each
    /// shard once and queues after the locks are released.
    pub(super) fn deliver(&self, users: &[UserId], msg: &StoredMessage, frame: &Utf8Bytes) {
        let now = Instant::now();
        let due = now + self.config.ack_timeout;
        let mut out = Vec::new();
        let mut frames = Vec::new();
        let mut delivered = 0u64;
        let users = users.iter().copied().filter(|u| *u != msg.from);
        self.each_shard(users, |shard, users| {
            for u in users {
                let Some(e) = shard.get_mut(u) else {
                    continue; // offline: the message waits in the store
                };
                e.track(msg, frame, due, now, &mut frames);
                delivered += u64::from(e.by_msg.contains_key(&msg.msg_id));
                e.deliver_frames(msg.conv, &mut frames, &mut out);
            }
        });
        self.metrics
            .messages_out_total
            .fetch_add(delivered, Relaxed);
        for (h, f) in out {
            h.push(f, &self.metrics);
        }
    }

    /// The sender's side of a stored message: seen in their state, echoed
    /// to their other sockets (not `origin`). A socket still receiving its
    /// backlog gets the echo after it (the backlog holds no own messages).
    pub(super) fn echo(&self, msg: &StoredMessage, origin: Option<u64>, frame: &Utf8Bytes) {
        let mut out = Vec::new();
        {
            let mut shard = self.shard(msg.from).lock();
            let Some(e) = shard.get_mut(&msg.from) else {
                return;
            };
            let mut released = Vec::new();
            e.own(msg.conv, msg.seq, Instant::now(), &mut released);
            e.deliver_frames(msg.conv, &mut released, &mut out);
            for s in e.sockets.iter_mut() {
                if Some(s.handle.id()) == origin {
                    continue;
                }
                match s.sync.as_mut() {
                    None => out.push((s.handle.clone(), frame.clone())),
                    Some(buf) if buf.frames.len() < SYNC_BUFFER => {
                        buf.frames.push((msg.conv, msg.seq, frame.clone()))
                    }
                    Some(buf) => {
                        buf.overflow = true;
                        buf.frames.clear();
                    }
                }
            }
        }
        for (h, f) in out {
            h.push(f, &self.metrics);
        }
    }

    /// Tracks a page of backlog for a syncing socket and returns the frames
    /// to send it (every message, even ones another tab already has).
    pub fn backlog(&self, user: UserId, socket: u64, msgs: &[StoredMessage]) -> Vec<Utf8Bytes> {
        let now = Instant::now();
        let due = now + self.config.ack_timeout;
        let frames: Vec<Utf8Bytes> = msgs.iter().map(|m| encode(&m.push_frame())).collect();
        let mut out = Vec::new();
        {
            let mut shard = self.shard(user).lock();
            let Some(e) = shard.get_mut(&user) else {
                return frames;
            };
            if let Some(buf) = syncing(e, socket) {
                for m in msgs {
                    let s = buf.sent.entry(m.conv).or_default();
                    *s = (*s).max(m.seq);
                }
            }
            let mut released = Vec::new();
            for (m, f) in msgs.iter().zip(&frames) {
                // Sent to this socket by the caller: not held back.
                e.track(m, f, due, now, &mut released);
                if let Some(cs) = e.convs.get_mut(&m.conv) {
                    if let Some(p) = cs.outstanding.get_mut(&m.seq).filter(|p| !p.sent) {
                        p.sent = true;
                        cs.held -= 1;
                    }
                }
                released.retain(|(seq, _)| *seq != m.seq);
                // What it released goes to the user's other sockets.
                e.deliver_frames(m.conv, &mut released, &mut out);
            }
        }
        for (h, f) in out {
            h.push(f, &self.metrics);
        }
        frames
    }

    /// Ends a socket's backlog sync: installs where the user stood in each
    /// conversation when the backlog was read (`positions`), queues the
    /// live pushes that arrived meanwhile and were not in the backlog (by
    /// `(conversation, seq)`), and makes the socket live. Done under the
    /// lock, so no later push can overtake the buffered ones.
    pub fn finish_sync(&self, user: UserId, socket: u64, positions: &[Position]) -> SyncEnd {
        let now = Instant::now();
        let mut shard = self.shard(user).lock();
        let Some(e) = shard.get_mut(&user) else {
            return SyncEnd::Done;
        };
        let Some(buf) = syncing(e, socket) else {
            return SyncEnd::Done;
        };
        if buf.overflow {
            *buf = SyncBuffer::default();
            return SyncEnd::Reload;
        }
        let buf = std::mem::take(buf);
        let mut released = Vec::new();
        for p in positions {
            let cs = e.convs.entry(p.conv).or_default();
            cs.install(p.last, now);
            cs.cursor = cs.cursor.max(p.delivered);
            cs.release(&mut released);
            e.note_gap(p.conv);
        }
        let Some(s) = e.sockets.iter_mut().find(|s| s.handle.id() == socket) else {
            return SyncEnd::Done;
        };
        s.sync = None;
        for (conv, seq, frame) in buf.frames {
            if buf.sent.get(&conv).is_none_or(|sent| seq > *sent) {
                s.handle.push(frame, &self.metrics);
            }
        }
        let live = e.live_handles();
        drop(shard);
        for (_, f) in released {
            for h in &live {
                h.push(f.clone(), &self.metrics);
            }
        }
        SyncEnd::Done
    }

    /// A newcomer to a conversation (a group join): everything up to
    /// `seq` is not theirs to receive.
    pub(super) fn set_base(&self, user: UserId, conv: ConvId, seq: u64) {
        let mut out = Vec::new();
        {
            let mut shard = self.shard(user).lock();
            let Some(e) = shard.get_mut(&user) else {
                return;
            };
            let cs = e.convs.entry(conv).or_default();
            cs.install(seq, Instant::now());
            cs.cursor = cs.cursor.max(seq);
            let mut released = Vec::new();
            cs.release(&mut released);
            e.note_gap(conv);
            e.deliver_frames(conv, &mut released, &mut out);
        }
        for (h, f) in out {
            h.push(f, &self.metrics);
        }
    }

    /// Forgets a conversation the user left.
    pub(super) fn forget(&self, user: UserId, conv: ConvId) {
        let mut shard = self.shard(user).lock();
        if let Some(e) = shard.get_mut(&user) {
            if let Some(cs) = e.convs.remove(&conv) {
                for p in cs.outstanding.values() {
                    e.by_msg.remove(&p.msg_id);
                }
            }
            e.gapped.remove(&conv);
        }
    }

    /// Records an ack from `user`.
    pub fn ack(&self, user: UserId, msg_id: MsgId) -> AckOutcome {
        let mut shard = self.shard(user).lock();
        let Some(e) = shard.get_mut(&user) else {
            return AckOutcome::Unknown;
        };
        let Some((conv, seq)) = e.by_msg.remove(&msg_id) else {
            return if e.recent_acks.contains(&msg_id) {
                AckOutcome::Repeat
            } else {
                AckOutcome::Unknown
            };
        };
        if e.recent_acks.len() >= RECENT_ACKS {
            e.recent_acks.pop_front();
        }
        e.recent_acks.push_back(msg_id);
        let cs = e
            .convs
            .get_mut(&conv)
            .expect("tracked pushes have a conversation");
        let pending = cs
            .outstanding
            .remove(&seq)
            .expect("by_msg and outstanding agree");
        AckOutcome::Acked {
            sender: pending.from,
            receipt: pending.receipt,
            conv,
            cursor: cs.cursor_moves(),
        }
    }

    /// Re-pushes every push whose ack is overdue, with exponential backoff.
    /// Runs from a timer; each socket gets at most `retry_budget` per round
    /// and only if its queue has room, so retries never close a socket.
    pub fn retry_due(&self, now: Instant) {
        let mut work: Vec<(Vec<SocketHandle>, Vec<Utf8Bytes>)> = Vec::new();
        for shard in self.shards.iter() {
            {
                let mut shard = shard.lock();
                for e in shard.values_mut() {
                    if e.next_due.is_none_or(|d| d > now) {
                        continue;
                    }
                    let targets = e.live_handles();
                    if targets.is_empty() {
                        continue;
                    }
                    let mut frames = Vec::new();
                    let mut next_due: Option<Instant> = None;
                    for cs in e.convs.values_mut() {
                        for p in cs.outstanding.values_mut().filter(|p| p.sent) {
                            if p.due <= now && frames.len() < self.config.retry_budget {
                                p.attempts += 1;
                                let backoff = self
                                    .config
                                    .ack_timeout
                                    .saturating_mul(1 << p.attempts.min(16))
                                    .min(self.config.max_retry_interval);
                                p.due = now + backoff;
                                frames.push(p.frame.clone());
                                tracing::debug!(msg = %p.msg_id, attempt = p.attempts, "retrying push");
                            }
                            next_due = Some(next_due.map_or(p.due, |d| d.min(p.due)));
                        }
                    }
                    e.next_due = next_due;
                    if !frames.is_empty() {
                        work.push((targets, frames));
                    }
                }
            }
            for (targets, frames) in work.drain(..) {
                self.metrics
                    .retries_total
                    .fetch_add(frames.len() as u64, Relaxed);
                for h in &targets {
                    for f in &frames {
                        h.offer(f.clone(), &self.metrics);
                    }
                }
            }
        }
    }

    /// Gaps that have held pushes back for longer than `gap_wait`; each is
    /// reported once until it is filled ([`Hub::fill_gap`]).
    pub fn due_gaps(&self, now: Instant) -> Vec<Gap> {
        let mut gaps = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            for (user, e) in shard.iter_mut().filter(|(_, e)| !e.gapped.is_empty()) {
                for conv in &e.gapped {
                    let Some(cs) = e.convs.get_mut(conv) else {
                        continue;
                    };
                    let (Some(since), Some(after), Some(&before)) =
                        (cs.gap_since, cs.through, cs.ahead.first())
                    else {
                        continue;
                    };
                    if cs.fetching || now.saturating_duration_since(since) < self.config.gap_wait {
                        continue;
                    }
                    cs.fetching = true;
                    gaps.push(Gap {
                        user: *user,
                        conv: *conv,
                        after,
                        before,
                    });
                }
            }
        }
        gaps
    }

    /// Fills a reported gap with what the store holds there for the user
    /// (`msgs`, oldest first; `None` if the fetch failed and must be tried
    /// again later): pushes them, counts the whole range as seen, and
    /// releases what was held behind it.
    pub fn fill_gap(&self, gap: Gap, msgs: Option<&[StoredMessage]>) {
        let now = Instant::now();
        let due = now + self.config.ack_timeout;
        let mut out = Vec::new();
        {
            let mut shard = self.shard(gap.user).lock();
            let Some(e) = shard.get_mut(&gap.user) else {
                return;
            };
            let Some(msgs) = msgs else {
                if let Some(cs) = e.convs.get_mut(&gap.conv) {
                    cs.fetching = false;
                    cs.gap_since = Some(now);
                }
                return;
            };
            let mut frames = Vec::new();
            for m in msgs.iter().filter(|m| m.conv == gap.conv) {
                let frame = encode(&m.push_frame());
                e.track(m, &frame, due, now, &mut frames);
                e.deliver_frames(gap.conv, &mut frames, &mut out);
            }
            let cs = e.convs.entry(gap.conv).or_default();
            // What the store did not return there is not the user's to get
            // (their own, or from before they joined).
            cs.install(gap.before - 1, now);
            cs.fetching = false;
            cs.release(&mut frames);
            e.note_gap(gap.conv);
            e.deliver_frames(gap.conv, &mut frames, &mut out);
        }
        for (h, f) in out {
            h.push(f, &self.metrics);
        }
    }
}

/// The sync buffer of `socket`, if it is still syncing.
fn syncing(e: &mut UserEntry, socket: u64) -> Option<&mut SyncBuffer> {
    e.sockets
        .iter_mut()
        .find(|s| s.handle.id() == socket)
        .and_then(|s| s.sync.as_mut())
}
