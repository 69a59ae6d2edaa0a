//! A chat sender: one socket feeding CHATs to its recipient on the
//! [`Schedule`], at most `--window` awaiting their 81, and accounting for
//! what it hears back with [`Answers`].
//!
//! With `--reconnect` it survives the loss of its socket: it dials again
//! ([`Redial`]), resends every message that has no answer yet under its
//! original `clientMsgId` (the relay answers one it had already stored
//! with the original msgId and seq, and stores the others now), and
//! carries on with its schedule.

use super::schedule::Schedule;
use super::Run;
use crate::answers::{Answers, Heard};
use crate::client::Ws;
use crate::latency::{new_histogram, record_us};
use crate::redial::{Outage, Redial, Redialed, SILENCE};
use crate::report;
use crate::socket::{self, Read, BATCH, PING_EVERY};
use crate::wire::{self, MsgTag};
use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use shared::Target as To;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// A sender's fixed configuration.
pub(super) struct SenderCfg {
    pub pair: u32,
    pub to: To,
    pub window: usize,
    pub schedule: Schedule,
    pub body: Arc<str>,
    pub expected: usize,
    pub run_id: Arc<str>,
}

/// What a sender task hands back.
pub(super) struct SenderOut {
    /// The answers to its messages, receipts, errors, problems.
    pub heard: Answers,
    /// CHAT → 81, µs, for messages due in the measured period.
    pub resp_hist: Histogram<u64>,
    /// Actual minus intended send time (open loop), µs.
    pub lag_hist: Histogram<u64>,
    /// Messages sent during the measured period.
    pub sent_in_window: u64,
    /// Times a message was due but the window was full.
    pub window_stalls: u64,
    /// Messages sent more than 1 ms late because the window was full.
    pub window_delayed: u64,
    /// Messages sent again on a new socket (same `clientMsgId`).
    pub resent: u64,
    /// Times the socket closed or failed before the end of the run.
    pub sockets_lost: u64,
    /// Each loss and how it was redialed (`--reconnect`).
    pub outages: Vec<Outage>,
}

impl SenderOut {
    /// Nothing counted yet; answers are recorded in `heard`.
    pub fn new(heard: Answers) -> SenderOut {
        SenderOut {
            heard,
            resp_hist: new_histogram(),
            lag_hist: new_histogram(),
            sent_in_window: 0,
            window_stalls: 0,
            window_delayed: 0,
            resent: 0,
            sockets_lost: 0,
            outages: Vec::new(),
        }
    }
}

/// How a sender's socket ended.
enum End {
    /// The run told it to stop; the socket is still open.
    Stop,
    /// The socket closed or failed (why is in the problems).
    Lost,
}

/// A sender's mutable state while running.
struct Sender {
    cfg: SenderCfg,
    run: Arc<Run>,
    out: SenderOut,
    inflight: usize,
    next_seq: u64,
    /// False once the next message would be due after the measured period.
    sending: bool,
    /// A message is due but the window is full.
    blocked: bool,
    settled: bool,
    /// The current socket works.
    alive: bool,
    /// There will be no socket any more (lost without `--reconnect`, or
    /// the sender gave up).
    dead: bool,
    /// Receipts already added to the shared progress counter.
    receipts_reported: u64,
    /// With `--reconnect`: the tags of the messages awaiting their answer,
    /// by sequence number, to resend them on a new socket.
    unanswered: Option<BTreeMap<u64, MsgTag>>,
}

impl Sender {
    /// Marks this sender as settled (nothing more to send or to await) once.
    fn settle_if_done(&mut self) {
        if !self.settled && ((!self.sending && self.inflight == 0) || self.dead) {
            self.settled = true;
            self.run.progress.senders_settled.fetch_add(1, Relaxed);
        }
    }

    /// Feeds every message that is due and fits in the window (at most
    /// [`BATCH`]), then flushes once.
    async fn send_due(&mut self, ws: &mut Ws) {
        let clock = self.run.clock;
        let mut fed = 0u64;
        let mut tag = String::with_capacity(40);
        while self.sending && fed < BATCH as u64 {
            let now_us = clock.now_us();
            let due = self.cfg.schedule.due_us(self.next_seq, now_us);
            if due >= clock.end_us {
                self.sending = false;
                break;
            }
            if due > now_us {
                self.blocked = false;
                break;
            }
            if self.inflight >= self.cfg.window {
                if !self.blocked {
                    self.blocked = true;
                    self.out.window_stalls += 1;
                }
                break;
            }
            let lag = now_us - due;
            match self.cfg.schedule {
                Schedule::Open { .. } => {
                    record_us(&mut self.out.lag_hist, lag);
                    // `blocked` stays set until the sender has caught up with
                    // its schedule, so every message the full window held
                    // back is counted.
                    if self.blocked && lag > 1_000 {
                        self.out.window_delayed += 1;
                    }
                }
                Schedule::Closed => self.blocked = false,
            }
            let msg = MsgTag {
                pair: self.cfg.pair,
                seq: self.next_seq,
                t_us: due,
                lag_us: lag,
            };
            msg.write(&self.cfg.run_id, &mut tag);
            let mut frame = String::with_capacity(96 + tag.len() + self.cfg.body.len());
            wire::write_chat(&mut frame, self.cfg.to, &tag, &self.cfg.body);
            if let Err(e) = ws.feed(Message::text(frame)).await {
                report::tally(&mut self.out.heard.problems, &format!("send: {e}"), 1);
                self.alive = false;
                return;
            }
            self.out.heard.log.on_sent(self.next_seq);
            if let Some(u) = &mut self.unanswered {
                u.insert(msg.seq, msg);
            }
            if clock.measured(now_us) {
                self.out.sent_in_window += 1;
            }
            self.next_seq += 1;
            self.inflight += 1;
            fed += 1;
        }
        if fed > 0 {
            self.run.progress.sent.fetch_add(fed, Relaxed);
            if let Err(e) = ws.flush().await {
                report::tally(&mut self.out.heard.problems, &format!("send: {e}"), 1);
                self.alive = false;
            }
        }
    }

    /// Sends again, in order and under their original tags, the messages
    /// that have no answer yet (on a new socket, after a reconnection).
    async fn resend(&mut self, ws: &mut Ws) {
        let Some(unanswered) = &self.unanswered else {
            return;
        };
        let mut tag = String::with_capacity(40);
        let mut n = 0;
        for msg in unanswered.values() {
            msg.write(&self.cfg.run_id, &mut tag);
            let mut frame = String::with_capacity(96 + tag.len() + self.cfg.body.len());
            wire::write_chat(&mut frame, self.cfg.to, &tag, &self.cfg.body);
            if let Err(e) = ws.feed(Message::text(frame)).await {
                report::tally(&mut self.out.heard.problems, &format!("resend: {e}"), 1);
                self.alive = false;
                return;
            }
            n += 1;
        }
        if let Err(e) = ws.flush().await {
            report::tally(&mut self.out.heard.problems, &format!("resend: {e}"), 1);
            self.alive = false;
            return;
        }
        self.out.resent += n;
    }

    /// True when another message could be sent right now.
    fn can_send_now(&self) -> bool {
        self.sending
            && self.inflight < self.cfg.window
            && matches!(self.cfg.schedule, Schedule::Closed)
    }

    /// When the next message falls due (open loop, window not full).
    fn next_due(&self) -> Option<tokio::time::Instant> {
        match self.cfg.schedule {
            Schedule::Open { .. } if self.sending && self.inflight < self.cfg.window => {
                let due = self.cfg.schedule.due_us(self.next_seq, 0);
                Some(tokio::time::Instant::from_std(
                    self.run.clock.t0 + Duration::from_micros(due),
                ))
            }
            _ => None,
        }
    }

    /// Handles one read from the relay.
    fn on_message(&mut self, m: Read) {
        let clock = self.run.clock;
        match self.out.heard.on_read(m, &self.cfg.run_id, self.cfg.pair) {
            Heard::Stored(tag) => {
                self.inflight -= 1;
                if let Some(u) = &mut self.unanswered {
                    u.remove(&tag.seq);
                }
                self.run.progress.stored.fetch_add(1, Relaxed);
                if clock.measured(tag.t_us) {
                    let us = clock.now_us().saturating_sub(tag.t_us);
                    record_us(&mut self.out.resp_hist, us);
                }
            }
            Heard::Refused(tag) => {
                self.inflight -= 1;
                if let Some(u) = &mut self.unanswered {
                    u.remove(&tag.seq);
                }
            }
            // A chat sender is nobody's recipient.
            Heard::Push(_) => report::tally(&mut self.out.heard.problems, "sender got type 80", 1),
            Heard::Nothing => {}
            Heard::Gone => self.alive = false,
        }
    }

    /// Adds the receipts counted since the last call to the shared progress.
    fn report_receipts(&mut self) {
        let receipts = self.out.heard.receipts;
        if receipts > self.receipts_reported {
            let new = receipts - self.receipts_reported;
            self.run.progress.receipts.fetch_add(new, Relaxed);
            self.receipts_reported = receipts;
        }
    }
}

impl Sender {
    /// Sends and reads on one socket until the run says stop or the socket
    /// is lost (or, with `silence`, nothing at all was read for that long).
    async fn drive(
        &mut self,
        ws: &mut Ws,
        stop: &mut watch::Receiver<bool>,
        silence: Option<Duration>,
    ) -> End {
        let now = tokio::time::Instant::now();
        // Both timers live across iterations and are re-armed only when
        // their deadline changes: creating a timer per loop turn would cost
        // a timer wheel insertion per message.
        let ping = tokio::time::sleep_until(now + PING_EVERY);
        tokio::pin!(ping);
        let due_timer = tokio::time::sleep_until(now);
        tokio::pin!(due_timer);
        let mut armed: Option<tokio::time::Instant> = None;
        let mut last_read = Instant::now();
        loop {
            if self.alive {
                self.send_due(ws).await;
            }
            if !self.alive {
                return End::Lost;
            }
            self.settle_if_done();
            let wake = self.next_due();
            if let Some(w) = wake.filter(|&w| armed != Some(w)) {
                due_timer.as_mut().reset(w);
                armed = Some(w);
            }
            let send_now = self.can_send_now();
            tokio::select! {
                biased;
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        return End::Stop;
                    }
                }
                m = ws.next() => {
                    last_read = Instant::now();
                    self.on_message(m);
                    // Take whatever else is already buffered before sending
                    // more.
                    for _ in 0..BATCH {
                        if !self.alive {
                            break;
                        }
                        match ws.next().now_or_never() {
                            Some(m) => self.on_message(m),
                            None => break,
                        }
                    }
                    self.report_receipts();
                }
                _ = std::future::ready(()), if send_now => {}
                _ = &mut due_timer, if wake.is_some() => armed = None,
                _ = &mut ping => {
                    if silence.is_some_and(|s| last_read.elapsed() >= s) {
                        let problems = &mut self.out.heard.problems;
                        report::tally(problems, "sender heard nothing (PONG) in time", 1);
                        self.alive = false;
                    } else if socket::ping(ws, ping.as_mut()).await.is_err() {
                        self.alive = false;
                    }
                }
            }
            self.settle_if_done();
        }
    }
}

/// Runs one sender from the run's start until it is told to stop. With
/// `redial` (`--reconnect`) a lost socket is replaced and the messages
/// awaiting their answer are resent on the new one; without, the sender
/// ends with its socket.
pub(super) async fn run_sender(
    mut ws: Ws,
    cfg: SenderCfg,
    run: Arc<Run>,
    mut stop: watch::Receiver<bool>,
    mut redial: Option<Redial>,
) -> SenderOut {
    let expected = cfg.expected;
    let mut s = Sender {
        cfg,
        run: run.clone(),
        out: SenderOut::new(Answers::with_capacity(expected)),
        inflight: 0,
        next_seq: 1,
        sending: true,
        blocked: false,
        settled: false,
        alive: true,
        dead: false,
        receipts_reported: 0,
        unanswered: redial.as_ref().map(|_| BTreeMap::new()),
    };
    let start = tokio::time::Instant::from_std(run.clock.t0);
    tokio::time::sleep_until(start).await;
    let silence = redial.as_ref().map(|_| SILENCE);
    loop {
        match s.drive(&mut ws, &mut stop, silence).await {
            End::Stop => {
                socket::close_cleanly(&mut ws).await;
                break;
            }
            End::Lost => {
                s.out.sockets_lost += 1;
                let Some(r) = redial.as_mut() else {
                    s.dead = true;
                    break;
                };
                match r.redial(&mut stop).await {
                    Redialed::Back(new) => {
                        ws = *new;
                        s.alive = true;
                        s.resend(&mut ws).await;
                    }
                    Redialed::GaveUp | Redialed::Stopped => {
                        s.dead = true;
                        break;
                    }
                }
            }
        }
    }
    s.settle_if_done();
    if let Some(r) = redial {
        s.out.outages = r.outages;
    }
    s.out
}
