//! The fan-out sender: account 0 on one socket, posting to the group one
//! message at a time and reading what it hears back with [`Answers`]
//! between sends.

use super::SENDER;
use crate::answers::{Answers, Heard};
use crate::client::Ws;
use crate::report;
use crate::socket::{self, Read, PING_EVERY};
use crate::track::{self, Clock};
use crate::wire::{self, MsgTag};
use futures_util::{SinkExt, StreamExt};
use shared::{GroupId, Target as To};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::Message;

/// How often the waiting sender looks at the members' progress. It only
/// decides when the next message leaves; latencies are measured by the
/// members themselves.
const POLL: Duration = Duration::from_millis(1);

/// What the sender hands back.
#[derive(Debug, Default)]
pub(super) struct SenderOut {
    /// The answers to its messages, receipts, notices, errors, problems.
    pub heard: Answers,
    /// Send → 81, µs, per message (index seq−1).
    pub resp_us: Vec<Option<u64>>,
    /// Pushes to the sender (backlog of other scenarios), acked.
    pub pushes: u64,
}

/// The sender and its socket.
pub(super) struct Sender {
    ws: Ws,
    run_id: Arc<str>,
    clock: Clock,
    group: GroupId,
    body: String,
    pub out: SenderOut,
    pub alive: bool,
    ping: Pin<Box<Sleep>>,
}

impl Sender {
    /// The sender on `ws`, posting bodies of `body_bytes` to `group`.
    pub fn new(
        ws: Ws,
        run_id: Arc<str>,
        clock: Clock,
        group: GroupId,
        body_bytes: usize,
    ) -> Sender {
        Sender {
            ws,
            run_id,
            clock,
            group,
            body: wire::filler_body(body_bytes),
            out: SenderOut::default(),
            alive: true,
            ping: Box::pin(tokio::time::sleep(PING_EVERY)),
        }
    }

    /// Sends message `seq`, stamped with the current time.
    pub async fn send(&mut self, seq: u64) {
        let tag = MsgTag {
            pair: SENDER,
            seq,
            t_us: self.clock.now_us(),
            lag_us: 0,
        }
        .encode(&self.run_id);
        let mut frame = String::with_capacity(128 + self.body.len());
        wire::write_chat(&mut frame, To::Group(self.group), &tag, &self.body);
        match self.ws.send(Message::text(frame)).await {
            Ok(()) => self.out.heard.log.on_sent(seq),
            Err(e) => {
                report::tally(
                    &mut self.out.heard.problems,
                    &format!("sender send: {e}"),
                    1,
                );
                self.alive = false;
            }
        }
    }

    /// Reads the socket (answers, notices; PINGs on time) until `done` holds
    /// or `until` passes.
    pub async fn pump(&mut self, until: tokio::time::Instant, done: impl Fn(&SenderOut) -> bool) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while self.alive && !done(&self.out) && tokio::time::Instant::now() < until {
            tokio::select! {
                biased;
                m = self.ws.next() => {
                    if let Some(ack) = self.on_message(m) {
                        if self.ws.send(Message::text(ack)).await.is_err() {
                            self.alive = false;
                        }
                    }
                }
                _ = &mut self.ping => {
                    if socket::ping(&mut self.ws, self.ping.as_mut()).await.is_err() {
                        self.alive = false;
                    }
                }
                _ = tick.tick() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Handles one read; returns an ACK to send for a push.
    fn on_message(&mut self, m: Read) -> Option<String> {
        match self.out.heard.on_read(m, &self.run_id, SENDER) {
            Heard::Stored(tag) => {
                let us = self.clock.now_us().saturating_sub(tag.t_us);
                track::put(&mut self.out.resp_us, tag.seq, us);
                None
            }
            Heard::Push(ack) => {
                self.out.pushes += 1;
                ack
            }
            Heard::Gone => {
                self.alive = false;
                None
            }
            Heard::Refused(_) | Heard::Nothing => None,
        }
    }

    /// Closes the socket, if it is still open.
    pub async fn close(&mut self) {
        if self.alive {
            socket::close_cleanly(&mut self.ws).await;
        }
    }
}
