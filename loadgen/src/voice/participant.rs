//! One participant's socket: it reads without pause from the moment it
//! joined its room (so the generator is never the slow listener), PINGs so
//! the relay's idle timeout does not close it, and, when it is a speaker,
//! sends its frames when they are due. The run's clock reaches it once
//! every participant has joined ([`Start`]); it stops when told to.

use super::listener::{Listener, Shards};
use super::speaker::Speaker;
use crate::client::Ws;
use crate::report::{self, Tally};
use crate::socket::{self, BATCH, PING_EVERY};
use crate::track::Clock;
use crate::wire::{self, frame_type as ft};
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// What every participant shares.
pub struct Shared {
    /// Latency of the measured frames: same relay, across relays.
    pub latency: [Shards; 2],
    /// Frames sent so far, per room.
    pub sent: Vec<AtomicU64>,
    /// First arrivals so far, all listeners.
    pub received: AtomicU64,
    /// Speakers that will send nothing more.
    pub speakers_done: AtomicU64,
}

/// The go signal: the run's clock.
pub type Start = watch::Receiver<Option<Clock>>;

/// One participant.
pub struct Seat {
    /// Its room (index in the run).
    pub room: usize,
    /// Its index in the room (speakers first).
    pub index: usize,
    /// Its listening state.
    pub listener: Listener,
    /// Its schedule when it is a speaker.
    pub speaker: Option<Speaker>,
}

/// What a participant hands back.
pub struct SeatOut {
    /// Room and index, as in [`Seat`].
    pub room: usize,
    /// See [`Seat::index`].
    pub index: usize,
    /// What it heard.
    pub listener: Listener,
    /// What it said.
    pub speaker: Option<Speaker>,
    /// Type 0 errors by code.
    pub errors: Tally,
    /// Unexpected events (closed sockets, unparsable frames).
    pub problems: Tally,
    /// 125s received (room changes).
    pub room_updates: u64,
    /// The socket closed or failed before the end.
    pub lost: bool,
}

/// Runs a participant until `stop` (or its socket ends).
pub async fn run_seat(
    mut ws: Ws,
    seat: Seat,
    shared: Arc<Shared>,
    mut start: Start,
    mut stop: watch::Receiver<bool>,
) -> SeatOut {
    let Seat {
        room,
        index,
        mut listener,
        mut speaker,
    } = seat;
    let mut out_errors = Tally::new();
    let mut problems = Tally::new();
    let mut room_updates = 0u64;
    let mut lost = false;
    let mut clock: Option<Clock> = *start.borrow();
    let ping = tokio::time::sleep(PING_EVERY);
    tokio::pin!(ping);
    let send_at = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(send_at);
    let mut speaking = false;
    let arm = |c: &Clock, s: &Speaker| {
        tokio::time::Instant::from_std(c.t0 + Duration::from_micros(s.due_us()))
    };
    if let (Some(c), Some(s)) = (&clock, &speaker) {
        send_at.as_mut().reset(arm(c, s));
        speaking = true;
    }
    'run: loop {
        tokio::select! {
            biased;
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break;
                }
            }
            r = start.changed(), if clock.is_none() => {
                if r.is_err() {
                    break;
                }
                clock = *start.borrow();
                if let (Some(c), Some(s)) = (&clock, &speaker) {
                    send_at.as_mut().reset(arm(c, s));
                    speaking = true;
                }
            }
            _ = &mut send_at, if speaking => {
                let (Some(c), Some(s)) = (&clock, speaker.as_mut()) else { break };
                let mut fed = 0;
                while let Some(f) = s.next_frame(c, c.now_us()) {
                    if ws.feed(Message::Binary(f)).await.is_err() {
                        lost = true;
                        report::tally(&mut problems, "speaker write failed", 1);
                        break 'run;
                    }
                    fed += 1;
                    if fed >= BATCH {
                        break;
                    }
                }
                if ws.flush().await.is_err() {
                    lost = true;
                    report::tally(&mut problems, "speaker write failed", 1);
                    break;
                }
                shared.sent[room].fetch_add(fed as u64, Relaxed);
                if s.done {
                    speaking = false;
                    shared.speakers_done.fetch_add(1, Relaxed);
                } else {
                    send_at.as_mut().reset(arm(c, s));
                }
            }
            _ = &mut ping => {
                if socket::ping(&mut ws, ping.as_mut()).await.is_err() {
                    lost = true;
                    report::tally(&mut problems, "listener write failed", 1);
                    break;
                }
            }
            m = ws.next() => {
                let mut next = Some(m);
                let mut first = 0u64;
                let mut n = 0;
                while let Some(m) = next.take() {
                    let msg = match m {
                        Some(Ok(Message::Binary(b))) => {
                            match &clock {
                                Some(c) => {
                                    let lat = &shared.latency;
                                    first += listener.on_frame(&b, c, c.now_us(), lat) as u64;
                                }
                                None => listener.stray += 1,
                            }
                            None
                        }
                        other => Some(other),
                    };
                    if let Some(m) = msg {
                        match socket::text(m, "participant", &mut problems) {
                            Err(socket::Gone) => {
                                lost = true;
                                break;
                            }
                            Ok(Some(t)) => on_text(&t, &mut out_errors, &mut room_updates, &mut problems),
                            Ok(None) => {}
                        }
                    }
                    n += 1;
                    if n < BATCH {
                        next = ws.next().now_or_never();
                    }
                }
                if first > 0 {
                    shared.received.fetch_add(first, Relaxed);
                }
                if lost {
                    break;
                }
            }
        }
    }
    if speaking {
        // Stopped (or lost) before its last frame: it will send no more.
        shared.speakers_done.fetch_add(1, Relaxed);
    }
    listener.flush(&shared.latency);
    if !lost {
        socket::close_cleanly(&mut ws).await;
    }
    SeatOut {
        room,
        index,
        listener,
        speaker,
        errors: out_errors,
        problems,
        room_updates,
        lost,
    }
}

/// A text frame: errors are tallied by code, room changes counted, the
/// rest (PONG, presence, group events, 121) ignored.
fn on_text(t: &str, errors: &mut Tally, room_updates: &mut u64, problems: &mut Tally) {
    let ty = match wire::fast_type(t) {
        Some(ty) => ty,
        None => match wire::Lite::parse(t) {
            Ok(l) => l.ty,
            Err(_) => {
                report::tally(problems, "unparsable frame", 1);
                return;
            }
        },
    };
    match ty {
        ft::ERROR => {
            let code = wire::Lite::parse(t)
                .ok()
                .and_then(|l| l.code.map(|c| c.into_owned()))
                .unwrap_or_else(|| "unknown".into());
            report::tally(errors, &code, 1);
        }
        ft::VOICE_ROOM => *room_updates += 1,
        _ => {}
    }
}
