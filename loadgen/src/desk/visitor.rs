//! One visitor: created over HTTP at its arrival time, LOGIN, 130, then
//! waiting for the 131 that says `open` (the time to assignment, from the
//! 130). Then K messages one after another, each waiting for its 81 and
//! the agent's answer before the next. It stays connected until the run
//! stops, acking pushes, so a late or repeated push is still counted.

use super::ledger::Dir;
use super::Shared;
use crate::client::{Api, Target, Ws};
use crate::report::{tally, Tally};
use crate::socket::{self, Gone};
use crate::wire::{self, MsgTag};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use shared::desk::{DeskState, NewVisitor, VisitorSession};
use shared::{ClientFrame, GroupId, ServerFrame, UserId};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// What one visitor saw.
#[derive(Debug, Default)]
pub struct VisitorOut {
    /// Created and logged in.
    pub started: bool,
    /// A 131 `open` came.
    pub assigned: bool,
    /// Every message answered.
    pub served: bool,
    /// A 131 `closed` came.
    pub closed: bool,
    /// A 131 `queued` came after `open` (the conversation went back).
    pub requeued: u32,
    /// The largest `position` of its 131s.
    pub max_position: Option<u32>,
    /// Type 0 errors by code.
    pub errors: Tally,
    /// Failures before the conversation and lost sockets.
    pub problems: Tally,
}

/// Where the visitor stands.
enum Phase {
    /// 130 sent at this instant; no agent yet.
    Waiting(Instant),
    /// Message `k` sent at `at`; whether its 81 and its answer came.
    Talking {
        group: GroupId,
        k: u64,
        at: Instant,
        acked: bool,
        answered: bool,
    },
    /// Every message answered.
    Done,
}

/// Runs visitor `i` on `target` until `stop`.
pub async fn visitor(
    i: u32,
    target: Target,
    api: Api,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> VisitorOut {
    let mut out = VisitorOut::default();
    let ws = match open(i, &target, &api, &shared.run_id).await {
        Ok(ws) => ws,
        Err(why) => {
            tally(&mut out.problems, &why, 1);
            shared.visitor_finished();
            return out;
        }
    };
    out.started = true;
    let mut v = Visitor {
        i,
        me: ws.1,
        ws: ws.0,
        shared,
        out,
        phase: Phase::Waiting(Instant::now()),
    };
    if v.talk(stop).await.is_err() && !matches!(v.phase, Phase::Done) {
        v.shared.visitor_finished();
    }
    v.out
}

/// `POST /api/visitors`, then LOGIN with the token.
async fn open(i: u32, target: &Target, api: &Api, run: &str) -> Result<(Ws, UserId), String> {
    let body = NewVisitor {
        name: Some(format!("lg{run} visitor {i}")),
        email: None,
        page: Some("https://loadgen.example/desk".into()),
    };
    let body = Bytes::from(serde_json::to_vec(&body).expect("serialisable"));
    let r = api
        .request(hyper::Method::POST, "/api/visitors", None, Some(body))
        .await
        .map_err(|e| format!("visitor: {e}"))?;
    if r.status != 201 {
        return Err(format!("visitor: HTTP {}", r.status));
    }
    let s: VisitorSession =
        serde_json::from_slice(&r.body).map_err(|e| format!("visitor: bad body: {e}"))?;
    target
        .open_session(i as usize, &s.token)
        .await
        .map_err(|e| format!("visitor {e}"))
}

struct Visitor {
    i: u32,
    me: UserId,
    ws: Ws,
    shared: Arc<Shared>,
    out: VisitorOut,
    phase: Phase,
}

impl Visitor {
    /// 130, then frames until `stop`.
    async fn talk(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), Gone> {
        self.send(ClientFrame::DeskOpen.encode()).await?;
        self.phase = Phase::Waiting(Instant::now());
        self.shared.queue.enter();
        let ping = tokio::time::sleep(socket::PING_EVERY);
        tokio::pin!(ping);
        loop {
            tokio::select! {
                m = self.ws.next() => {
                    if let Some(text) = socket::text(m, "visitor", &mut self.out.problems)? {
                        self.frame(text.as_str()).await?;
                    }
                }
                _ = &mut ping => socket::ping(&mut self.ws, ping.as_mut()).await?,
                _ = stop.changed() => {
                    if matches!(self.phase, Phase::Waiting(_)) {
                        self.shared.queue.leave();
                    }
                    socket::close_cleanly(&mut self.ws).await;
                    return Ok(());
                }
            }
        }
    }

    async fn send(&mut self, text: String) -> Result<(), Gone> {
        self.ws.send(Message::text(text)).await.map_err(|_| {
            tally(&mut self.out.problems, "visitor write failed", 1);
            Gone
        })
    }

    async fn frame(&mut self, text: &str) -> Result<(), Gone> {
        let frame = match ServerFrame::decode(text) {
            Ok(f) => f,
            Err(e) => {
                tally(
                    &mut self.out.problems,
                    &format!("undecodable: {}", e.code),
                    1,
                );
                return Ok(());
            }
        };
        match frame {
            ServerFrame::DeskStatus(s) => {
                if let Some(p) = s.position {
                    self.out.max_position = self.out.max_position.max(Some(p));
                }
                match (s.state, &self.phase) {
                    (DeskState::Open, Phase::Waiting(at)) => {
                        let waited = at.elapsed().as_micros() as u64;
                        self.shared.assign_us.lock().unwrap().push(waited);
                        self.shared.queue.leave();
                        self.out.assigned = true;
                        self.say(s.group_id, 1).await?;
                    }
                    (DeskState::Queued, Phase::Talking { .. } | Phase::Done) => {
                        self.out.requeued += 1;
                    }
                    (DeskState::Closed, _) if !self.out.closed => {
                        self.out.closed = true;
                        self.shared.closed.fetch_add(1, Relaxed);
                    }
                    _ => {}
                }
            }
            ServerFrame::ChatResp { client_msg_id, .. } => {
                let Some(tag) = self.tag(client_msg_id.as_deref()) else {
                    return Ok(());
                };
                self.shared.ledger.acked(Dir::ToAgent, self.i, tag.seq);
                if let Phase::Talking { k, acked, .. } = &mut self.phase {
                    *acked |= tag.seq == *k;
                }
                self.next().await?;
            }
            ServerFrame::Chat(m) => {
                self.send(wire::ack(&m.msg_id.to_string())).await?;
                if m.from_id == self.me {
                    return Ok(());
                }
                let Some(tag) = self.tag(m.client_msg_id.as_deref()) else {
                    return Ok(());
                };
                if tag.pair != self.i {
                    tally(
                        &mut self.out.problems,
                        "answer meant for another visitor",
                        1,
                    );
                    return Ok(());
                }
                if self.shared.ledger.pushed(Dir::ToVisitor, self.i, tag.seq) != Some(1) {
                    return Ok(());
                }
                if let Phase::Talking {
                    k, at, answered, ..
                } = &mut self.phase
                {
                    if tag.seq == *k {
                        *answered = true;
                        let rtt = at.elapsed().as_micros() as u64;
                        self.shared.answer_us.lock().unwrap().push(rtt);
                    }
                }
                self.next().await?;
            }
            ServerFrame::Error(e) => tally(&mut self.out.errors, e.code.as_str(), 1),
            _ => {}
        }
        Ok(())
    }

    /// The tag of one of this run's messages.
    fn tag(&mut self, client_msg_id: Option<&str>) -> Option<MsgTag> {
        let tag = MsgTag::decode(client_msg_id?, &self.shared.run_id);
        if tag.is_err() {
            tally(&mut self.out.problems, "visitor: stray message", 1);
        }
        tag.ok()
    }

    /// Once message k is stored and answered: the next one, or done.
    async fn next(&mut self) -> Result<(), Gone> {
        let Phase::Talking {
            group,
            k,
            acked: true,
            answered: true,
            ..
        } = self.phase
        else {
            return Ok(());
        };
        if k < u64::from(self.shared.args.messages) {
            return self.say(group, k + 1).await;
        }
        self.phase = Phase::Done;
        self.out.served = true;
        self.shared.served.fetch_add(1, Relaxed);
        self.shared.visitor_finished();
        Ok(())
    }

    /// Sends message `k` to the conversation.
    async fn say(&mut self, group: GroupId, k: u64) -> Result<(), Gone> {
        let tag = MsgTag {
            pair: self.i,
            seq: k,
            t_us: self.shared.clock.now_us(),
            lag_us: 0,
        };
        let id = tag.encode(&self.shared.run_id);
        let mut buf = String::with_capacity(160);
        wire::write_chat(
            &mut buf,
            shared::Target::Group(group),
            &id,
            &self.shared.body,
        );
        self.phase = Phase::Talking {
            group,
            k,
            at: Instant::now(),
            acked: false,
            answered: false,
        };
        self.shared.ledger.sent(Dir::ToAgent, self.i, k);
        self.send(buf).await
    }
}
