//! The agents: accounts granted the agent role with the relay's admin
//! command, logged in with their capacity set (132), then answering every
//! visitor message pushed to them (after `--reply-delay`) and closing a
//! conversation (135) once the answer to its last message is stored. Every
//! 133 board they get feeds the queue series.

use super::ledger::Dir;
use super::{DeskArgs, Shared};
use crate::client::{Account, Target, Ws, LOGIN_TIMEOUT};
use crate::report::{tally, Tally};
use crate::socket::{self, Gone};
use crate::wire::{self, frame_type, MsgTag};
use crate::{Error, Log};
use futures_util::{SinkExt, StreamExt};
use serde::de::IgnoredAny;
use serde::Deserialize;
use shared::desk::DeskAgentSet;
use shared::{ClientFrame, GroupId, ServerFrame, UserId};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// What one agent did.
#[derive(Debug, Default)]
pub struct AgentOut {
    /// Conversations it answered in.
    pub conversations: u64,
    /// 135s it sent.
    pub closes: u64,
    /// 133s it got.
    pub boards: u64,
    /// The most conversations its boards showed open at once.
    pub max_open: u64,
    /// Type 0 errors by code.
    pub errors: Tally,
    /// Lost sockets, stray messages.
    pub problems: Tally,
}

/// Grants every account the agent role: `<relay-bin> admin grant-agent
/// NAME --db DB`, one after another.
pub async fn grant(args: &DeskArgs, accounts: &[Account], log: &Log) -> Result<(), Error> {
    log.say(format_args!(
        "granting {} agents with {} admin grant-agent",
        accounts.len(),
        args.relay_bin
    ));
    for a in accounts {
        let mut c = std::process::Command::new(&args.relay_bin);
        c.args(["admin", "grant-agent", &a.username, "--db", &args.db]);
        let out = tokio::task::spawn_blocking(move || c.output())
            .await?
            .map_err(|e| format!("cannot run {}: {e}", args.relay_bin))?;
        if !out.status.success() {
            return Err(format!(
                "grant-agent {} failed ({}): {}",
                a.username,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
    }
    Ok(())
}

/// A board's figures the generator reads (the rest is skipped unparsed).
#[derive(Deserialize)]
struct BoardFrame {
    board: Board,
}

#[derive(Deserialize)]
struct Board {
    available: bool,
    capacity: u32,
    queued: u32,
    mine: Vec<IgnoredAny>,
}

fn board(text: &str) -> Option<Board> {
    (wire::fast_type(text) == Some(frame_type::DESK_BOARD))
        .then(|| serde_json::from_str::<BoardFrame>(text).ok())
        .flatten()
        .map(|f| f.board)
}

/// Logs agent `i` in on `target`, sets its capacity and waits for the 133
/// that shows it available with that capacity.
pub async fn ready(
    i: usize,
    target: &Target,
    account: &Account,
    capacity: u32,
) -> Result<(Ws, UserId), String> {
    let (mut ws, me) = (target.open_session(i, &account.token).await).map_err(|e| e.to_string())?;
    let set = ClientFrame::DeskAgent(DeskAgentSet {
        available: Some(true),
        capacity: Some(capacity),
    });
    ws.send(Message::text(set.encode()))
        .await
        .map_err(|e| format!("send 132: {e}"))?;
    let deadline = Instant::now() + LOGIN_TIMEOUT;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| "no 133 with the capacity in time".to_string())?;
        let text = socket::text(m, "agent", &mut Tally::new())
            .map_err(|_| "agent socket ended before its 133".to_string())?;
        if let Some(b) = text.as_deref().and_then(board) {
            if b.available && b.capacity == capacity {
                return Ok((ws, me));
            }
        } else if let Some(ServerFrame::Error(e)) =
            text.as_deref().and_then(|t| ServerFrame::decode(t).ok())
        {
            return Err(format!("132 refused: {}", e.code));
        }
    }
}

/// An answer due at `at`.
struct Due {
    at: Instant,
    group: GroupId,
    visitor: u32,
    seq: u64,
}

/// Answers visitors on a ready socket until `stop`.
pub async fn run(
    ws: Ws,
    me: UserId,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> AgentOut {
    let mut a = Agent {
        ws,
        me,
        shared,
        out: AgentOut::default(),
        groups: HashMap::new(),
        due: VecDeque::new(),
    };
    let ping = tokio::time::sleep(socket::PING_EVERY);
    tokio::pin!(ping);
    let far = Instant::now() + std::time::Duration::from_secs(86_400 * 365);
    let _: Result<(), Gone> = async {
        loop {
            let next_due = a.due.front().map_or(far, |d| d.at);
            tokio::select! {
                m = a.ws.next() => {
                    if let Some(text) = socket::text(m, "agent", &mut a.out.problems)? {
                        a.frame(text.as_str()).await?;
                    }
                }
                _ = tokio::time::sleep_until(next_due) => {
                    let d = a.due.pop_front().expect("a due answer");
                    a.answer(d).await?;
                }
                _ = &mut ping => socket::ping(&mut a.ws, ping.as_mut()).await?,
                _ = stop.changed() => {
                    socket::close_cleanly(&mut a.ws).await;
                    return Ok(());
                }
            }
        }
    }
    .await;
    a.out
}

struct Agent {
    ws: Ws,
    me: UserId,
    shared: Arc<Shared>,
    out: AgentOut,
    /// Each visitor's conversation, from their first message.
    groups: HashMap<u32, GroupId>,
    /// Answers waiting for `--reply-delay`, oldest first.
    due: VecDeque<Due>,
}

impl Agent {
    async fn send(&mut self, text: String) -> Result<(), Gone> {
        self.ws.send(Message::text(text)).await.map_err(|_| {
            tally(&mut self.out.problems, "agent write failed", 1);
            Gone
        })
    }

    async fn frame(&mut self, text: &str) -> Result<(), Gone> {
        if let Some(b) = board(text) {
            self.out.boards += 1;
            self.out.max_open = self.out.max_open.max(b.mine.len() as u64);
            self.shared.queue.board(b.queued);
            return Ok(());
        }
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
            ServerFrame::Chat(m) => {
                self.send(wire::ack(&m.msg_id.to_string())).await?;
                let shared::Target::Group(group) = m.to else {
                    tally(&mut self.out.problems, "agent: one-to-one message", 1);
                    return Ok(());
                };
                if m.from_id == self.me {
                    return Ok(());
                }
                let Some(tag) = self.tag(m.client_msg_id.as_deref()) else {
                    return Ok(());
                };
                match self.shared.ledger.pushed(Dir::ToAgent, tag.pair, tag.seq) {
                    Some(1) => {}
                    Some(_) => return Ok(()),
                    None => {
                        tally(&mut self.out.problems, "agent: message outside the run", 1);
                        return Ok(());
                    }
                }
                let late = self.shared.clock.now_us().saturating_sub(tag.t_us);
                self.shared.push_us.lock().unwrap().push(late);
                if self.groups.insert(tag.pair, group).is_none() {
                    self.out.conversations += 1;
                }
                self.due.push_back(Due {
                    at: Instant::now() + self.shared.args.reply_delay,
                    group,
                    visitor: tag.pair,
                    seq: tag.seq,
                });
            }
            ServerFrame::ChatResp { client_msg_id, .. } => {
                let Some(tag) = self.tag(client_msg_id.as_deref()) else {
                    return Ok(());
                };
                self.shared.ledger.acked(Dir::ToVisitor, tag.pair, tag.seq);
                if tag.seq == u64::from(self.shared.args.messages) {
                    if let Some(group) = self.groups.get(&tag.pair).copied() {
                        self.send(ClientFrame::DeskClose { group_id: group }.encode())
                            .await?;
                        self.out.closes += 1;
                    }
                }
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
            tally(&mut self.out.problems, "agent: stray message", 1);
        }
        tag.ok()
    }

    /// Answers message `seq` of a visitor.
    async fn answer(&mut self, d: Due) -> Result<(), Gone> {
        let tag = MsgTag {
            pair: d.visitor,
            seq: d.seq,
            t_us: self.shared.clock.now_us(),
            lag_us: 0,
        };
        let mut buf = String::with_capacity(160);
        wire::write_chat(
            &mut buf,
            shared::Target::Group(d.group),
            &tag.encode(&self.shared.run_id),
            &self.shared.body,
        );
        self.shared.ledger.sent(Dir::ToVisitor, d.visitor, d.seq);
        self.send(buf).await
    }
}
