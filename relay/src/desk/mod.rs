//! The support desk on this relay: who of its sockets are visitors and
//! agents, the changes they ask for, the agents' leases, and the notices
//! (131 to visitors, 133 to agents).
//!
//! Decisions are not made here: every change is one store transaction
//! (`Store::desk`, rules in `rules::routing`), so relays of a cluster never
//! disagree. This relay announces what a change did to group members (the
//! hub's group path: an assigned agent's deliveries start, a former one's
//! stop) and wakes the notices here and on every other relay
//! ([`Hub::desk_touched`]). The notices are computed from a database
//! snapshot, at most every [`NOTICE_INTERVAL`], and a socket is sent only
//! what changed for it, so a burst of arrivals costs one read per interval.

mod notices;

use crate::error::Result;
use crate::hub::Hub;
use crate::store::{DeskDone, DeskOp, Store};
use parking_lot::Mutex;
use shared::desk::{DeskBoard, DeskStatus};
use shared::UserId;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The notices are recomputed at most this often.
pub const NOTICE_INTERVAL: Duration = Duration::from_millis(100);
/// How often this relay renews its agents' leases and sweeps lapsed ones.
pub const LEASE_TICK: Duration = Duration::from_secs(2);
/// How far ahead a lease reaches: three renewals, so one slow one does not
/// take an agent's conversations away.
pub const LEASE: Duration = Duration::from_secs(6);

/// One of this relay's users the desk tracks.
#[derive(Default)]
struct Here {
    sockets: u32,
    /// When the last socket closed (agents keep their lease through the
    /// presence grace, like their presence).
    left: Option<Instant>,
}

#[derive(Default)]
struct Local {
    visitors: HashMap<UserId, Here>,
    agents: HashMap<UserId, Here>,
    /// What each was last sent, to send only changes.
    statuses: HashMap<UserId, DeskStatus>,
    boards: HashMap<UserId, DeskBoard>,
    /// Sent their notice at the next round even if unchanged (a new
    /// socket, an answer to a request).
    force: HashSet<UserId>,
}

/// The desk service of one relay.
pub struct Desk {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    grace: Duration,
    local: Mutex<Local>,
}

/// Who a socket is to the desk; dropping it forgets the socket.
pub struct DeskGuard {
    desk: Arc<Desk>,
    user: UserId,
    agent: bool,
}

impl Drop for DeskGuard {
    fn drop(&mut self) {
        let mut l = self.desk.local.lock();
        let map = if self.agent {
            &mut l.agents
        } else {
            &mut l.visitors
        };
        if let Some(h) = map.get_mut(&self.user) {
            h.sockets = h.sockets.saturating_sub(1);
            if h.sockets == 0 {
                h.left = Some(Instant::now());
            }
        }
    }
}

impl Desk {
    /// The service; [`Desk::run`] drives its timers.
    pub fn new(store: Arc<dyn Store>, hub: Arc<Hub>, presence_grace: Duration) -> Arc<Desk> {
        Arc::new(Desk {
            store,
            hub,
            grace: presence_grace,
            local: Mutex::new(Local::default()),
        })
    }

    /// A visitor's socket opened its conversation (131s follow it).
    pub fn visitor_here(self: &Arc<Desk>, user: UserId) -> DeskGuard {
        self.arrive(user, false)
    }

    /// An agent's socket logged in: their lease starts now, so queued
    /// conversations reach them at once.
    pub async fn agent_here(self: &Arc<Desk>, user: UserId) -> Result<DeskGuard> {
        let guard = self.arrive(user, true);
        self.apply(DeskOp::Seen {
            agents: vec![user],
            until: lease_end(),
        })
        .await?;
        // Their board, even if nothing changed for anyone else.
        self.resend(user);
        Ok(guard)
    }

    fn arrive(self: &Arc<Desk>, user: UserId, agent: bool) -> DeskGuard {
        let mut l = self.local.lock();
        let map = if agent {
            &mut l.agents
        } else {
            &mut l.visitors
        };
        let h = map.entry(user).or_default();
        h.sockets += 1;
        h.left = None;
        // A new socket gets the current notice, not only later changes.
        l.force.insert(user);
        drop(l);
        self.hub.desk_changed.notify_one();
        DeskGuard {
            desk: self.clone(),
            user,
            agent,
        }
    }

    /// Sends `user` their notice again at the next round, changed or not
    /// (the answer to a request).
    pub fn resend(&self, user: UserId) {
        self.local.lock().force.insert(user);
        self.hub.desk_changed.notify_one();
    }

    /// Applies a change, announces what it did to group members, and wakes
    /// the notices everywhere if anything shown may have changed.
    pub async fn apply(&self, op: DeskOp) -> Result<DeskDone> {
        let done = self.store.desk(op).await?;
        for change in &done.groups {
            self.hub.group_changed(change);
        }
        if done.changed {
            self.hub.desk_touched();
        }
        Ok(done)
    }

    /// Renews the leases of this relay's agents (connected, or gone less
    /// than the presence grace ago), then puts the conversations of agents
    /// whose lease lapsed anywhere back in the queue.
    async fn lease_tick(&self) -> Result<()> {
        let agents: Vec<UserId> = {
            let mut l = self.local.lock();
            let grace = self.grace;
            l.agents
                .retain(|_, h| h.sockets > 0 || h.left.is_some_and(|t| t.elapsed() < grace));
            l.agents.keys().copied().collect()
        };
        if !agents.is_empty() {
            self.apply(DeskOp::Seen {
                agents,
                until: lease_end(),
            })
            .await?;
        }
        self.apply(DeskOp::Sweep).await?;
        Ok(())
    }

    /// The desk's timers: leases every [`LEASE_TICK`], notices when woken.
    /// Runs until the relay stops (the caller aborts it).
    pub async fn run(self: Arc<Desk>) {
        let leases = {
            let desk = self.clone();
            async move {
                let mut tick = tokio::time::interval(LEASE_TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = desk.lease_tick().await {
                        tracing::warn!(error = %e, "desk: renewing agent leases failed; trying again");
                    }
                }
            }
        };
        tokio::join!(leases, notices::run(self));
    }
}

fn lease_end() -> i64 {
    crate::clock::now_ms() + LEASE.as_millis() as i64
}
