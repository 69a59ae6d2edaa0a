//! The handle through which the rest of the relay talks to one WebSocket.
//!
//! Every socket has a **bounded** outbound queue drained by its own writer
//! task. Producers (the hub, the storage threads, the retry timer) only
//! ever `try_send`: a full queue means the client is not reading, and that
//! client is closed with 4008 instead of being allowed to stall anyone else.

use crate::clock::now_ms;
use crate::metrics::Metrics;
use bytes::Bytes;
use shared::{close, ServerFrame};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// An encoded frame, ready to queue.
pub fn encode(frame: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(frame.encode())
}

/// The reason text sent with each close code.
pub fn close_reason(code: u16) -> &'static str {
    match code {
        close::NORMAL => "bye",
        close::GOING_AWAY => "relay shutting down",
        close::UNSUPPORTED_DATA => "binary frames are not supported",
        close::TOO_BIG => "frame too large",
        close::INTERNAL_ERROR => "internal error",
        close::IDLE_TIMEOUT => "idle timeout",
        close::AUTH_FAILED => "login failed",
        close::PROTOCOL_VIOLATION => "protocol violation",
        close::LOGGED_OUT => "logged out",
        close::SLOW_CONSUMER => "slow consumer",
        _ => "",
    }
}

struct Shared {
    id: u64,
    /// 0 while alive; otherwise the close code someone asked for.
    kill: AtomicU32,
    notify: Notify,
    /// When the writer started the write it is still waiting on (ms since
    /// the epoch), or 0 while it is not writing. A write that stays pending
    /// means the peer's TCP window is closed: the client is not reading.
    writing_since: AtomicU64,
    /// The audio lane (voice rooms): relayed audio frames waiting for the
    /// writer, at most [`AUDIO_LANE`], the oldest dropped first. Separate
    /// from the text queue so audio never delays nor closes a chat socket;
    /// an empty `VecDeque` holds no allocation, so idle sockets pay nothing.
    audio: parking_lot::Mutex<VecDeque<Bytes>>,
    /// Wakes the writer when audio is queued (`notify_one`: a permit is
    /// kept if the writer is busy, so no wakeup is lost).
    audio_ready: Notify,
}

/// Audio frames a socket's lane holds; with 20 ms frames, 320 ms of one
/// speaker. Audio older than that is worthless to a live call.
pub const AUDIO_LANE: usize = 16;

/// How long a write may stay pending before a full queue counts as a slow
/// consumer rather than a momentarily busy relay.
const STALL_MS: u64 = 1000;

/// A cloneable reference to one socket.
#[derive(Clone)]
pub struct SocketHandle {
    shared: Arc<Shared>,
    /// Encoded JSON text frames. `Utf8Bytes` is reference-counted: a push
    /// is encoded once and shared by every socket it goes to.
    tx: mpsc::Sender<Utf8Bytes>,
}

impl fmt::Debug for SocketHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Socket#{}", self.shared.id)
    }
}

impl SocketHandle {
    /// A handle and the receiving end of its queue (for the writer task).
    pub fn new(id: u64, queue: usize) -> (SocketHandle, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let shared = Arc::new(Shared {
            id,
            kill: AtomicU32::new(0),
            notify: Notify::new(),
            writing_since: AtomicU64::new(0),
            audio: parking_lot::Mutex::new(VecDeque::new()),
            audio_ready: Notify::new(),
        });
        (SocketHandle { shared, tx }, rx)
    }

    /// Process-unique socket id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Queues a frame without waiting. Returns whether it was queued.
    ///
    /// A full queue while the socket's last write has been pending for a
    /// second means the client is not reading: the socket is closed as a
    /// slow consumer (4008). A full queue while writes are completing means
    /// the relay itself is momentarily behind (CPU saturated); the frame is
    /// dropped instead, and the client is not punished. Dropped pushes are
    /// still tracked and go out again with the next retry round.
    pub fn push(&self, frame: Utf8Bytes, metrics: &Metrics) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => {
                metrics.frames_out_total.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) => {
                let since = self.shared.writing_since.load(Ordering::Relaxed);
                let stalled =
                    since != 0 && now_ms().saturating_sub(since as i64) as u64 >= STALL_MS;
                if !stalled {
                    metrics.frames_dropped_total.fetch_add(1, Ordering::Relaxed);
                } else if self.kill(close::SLOW_CONSUMER) {
                    metrics.slow_consumers_total.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(socket = self.id(), "closing slow consumer");
                }
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Called by the writer around each write to the connection.
    pub fn writing(&self, busy: bool) {
        let v = if busy { now_ms().max(1) as u64 } else { 0 };
        self.shared.writing_since.store(v, Ordering::Relaxed);
    }

    /// Queues a frame if there is room now; never closes the socket. For
    /// retries, which can wait for the next round.
    pub fn offer(&self, frame: Utf8Bytes, metrics: &Metrics) -> bool {
        let ok = self.tx.try_send(frame).is_ok();
        if ok {
            metrics.frames_out_total.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Queues a frame, waiting for room: flow control for the session's own
    /// answers and for the offline backlog. Returns false once the socket
    /// is gone.
    pub async fn send(&self, frame: Utf8Bytes, metrics: &Metrics) -> bool {
        let ok = self.tx.send(frame).await.is_ok();
        if ok {
            metrics.frames_out_total.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Queues an audio frame on the audio lane, dropping the oldest frame
    /// if the lane is full (counted in `audio_frames_dropped_total`).
    /// Never blocks, never closes the socket.
    pub fn push_audio(&self, frame: Bytes, metrics: &Metrics) {
        if self.killed_with().is_some() {
            return;
        }
        let dropped = {
            let mut lane = self.shared.audio.lock();
            let dropped = if lane.len() >= AUDIO_LANE {
                lane.pop_front().is_some()
            } else {
                false
            };
            lane.push_back(frame);
            dropped
        };
        if dropped {
            metrics
                .audio_frames_dropped_total
                .fetch_add(1, Ordering::Relaxed);
        }
        metrics
            .audio_frames_out_total
            .fetch_add(1, Ordering::Relaxed);
        self.shared.audio_ready.notify_one();
    }

    /// Moves every queued audio frame into `out` (for the writer).
    pub fn take_audio(&self, out: &mut Vec<Bytes>) {
        let mut lane = self.shared.audio.lock();
        out.extend(lane.drain(..));
        if lane.capacity() > AUDIO_LANE {
            lane.shrink_to(AUDIO_LANE);
        }
    }

    /// Resolves when audio may have been queued since the last call.
    pub async fn audio_queued(&self) {
        self.shared.audio_ready.notified().await
    }

    /// Asks the socket's tasks to close it with `code`: the writer sends
    /// what is already queued (unless the socket is closed for being too
    /// slow), then the close frame. Returns true for the first request only.
    pub fn kill(&self, code: u16) -> bool {
        let first = self
            .shared
            .kill
            .compare_exchange(0, code as u32, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.shared.notify.notify_waiters();
        }
        first
    }

    /// The close code asked for by [`kill`](Self::kill), if any.
    pub fn killed_with(&self) -> Option<u16> {
        match self.shared.kill.load(Ordering::Acquire) {
            0 => None,
            c => Some(c as u16),
        }
    }

    /// Resolves once the socket is killed, with the close code.
    pub async fn killed(&self) -> u16 {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a kill between the check and the
            // await cannot be missed.
            notified.as_mut().enable();
            if let Some(code) = self.killed_with() {
                return code;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audio_lane_drops_the_oldest_frames_when_full() {
        let metrics = Metrics::default();
        let (h, _rx) = SocketHandle::new(1, 4);
        for i in 0..(AUDIO_LANE + 5) as u8 {
            h.push_audio(Bytes::from(vec![i]), &metrics);
        }
        assert_eq!(
            metrics.audio_frames_dropped_total.load(Ordering::Relaxed),
            5
        );
        let mut out = Vec::new();
        h.take_audio(&mut out);
        let firsts: Vec<u8> = out.iter().map(|b| b[0]).collect();
        let expected: Vec<u8> = (5..(AUDIO_LANE + 5) as u8).collect();
        assert_eq!(firsts, expected, "the newest frames are kept, in order");
        out.clear();
        h.take_audio(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn an_idle_lane_allocates_nothing_and_a_killed_socket_takes_no_audio() {
        let metrics = Metrics::default();
        let (h, _rx) = SocketHandle::new(1, 4);
        assert_eq!(h.shared.audio.lock().capacity(), 0);
        h.kill(close::NORMAL);
        h.push_audio(Bytes::from_static(b"x"), &metrics);
        let mut out = Vec::new();
        h.take_audio(&mut out);
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn a_push_before_the_writer_waits_is_not_lost() {
        let metrics = Metrics::default();
        let (h, _rx) = SocketHandle::new(1, 4);
        h.push_audio(Bytes::from_static(b"x"), &metrics);
        tokio::time::timeout(std::time::Duration::from_secs(5), h.audio_queued())
            .await
            .expect("the permit was kept");
    }
}
