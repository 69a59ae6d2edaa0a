//! The support desk on PostgreSQL: each change is one transaction on a
//! pooled connection (applying the change, then assigning what can be
//! assigned), deciding with `rules::routing` exactly as the SQLite backend
//! does (`store/sqlite/desk.rs`). Several relays run these at once, so the
//! rows they decide over are locked:
//!
//! - **Agents first.** Every change locks *every* `desk_agents` row, in
//!   `user_id` order (`FOR UPDATE`), before it counts open conversations
//!   (in a later statement, so the count sees everything committed by the
//!   transactions that held those locks before). Whoever assigns holds the
//!   agent's row until it commits, so no agent goes over capacity. Locking
//!   all of them, not only the ones taking conversations now, makes a lease
//!   renewed or an availability switched on (an update of that row) and a
//!   conversation queued at the same moment meet: one of the two waits for
//!   the other and then sees it, so neither leaves a conversation waiting
//!   beside an agent with room. The rows an agent change needs are created
//!   beforehand, committed on their own (`ensure_agents`), so the rows a
//!   change locks are the ones the others lock too.
//! - **The oldest queued conversation** is taken `FOR UPDATE SKIP LOCKED`:
//!   one that another transaction is closing, handing on or assigning is
//!   passed over (never waited for, so no deadlock with a transaction that
//!   holds it and waits for the agents), and a conversation is assigned
//!   once.
//! - **Transfer and Close** lock their conversation's row (`FOR UPDATE`)
//!   and decide on what that lock returns; Sweep locks the rows it puts
//!   back the same way. A visitor's `Open`s queue on their `users` row
//!   (`FOR NO KEY UPDATE`, which foreign key checks do not wait for), so a
//!   visitor has one conversation not closed.
//! - **Membership** changes as in `groups.rs`: under the group's
//!   conversation row lock (`FOR NO KEY UPDATE`, the writer's lock), with
//!   `members_version` bumped, so chats and member changes stay ordered by
//!   `seq` and the writers' cached member lists are refreshed.
//!
//! Lock order: a conversation's `desk_conversations` row, then the agents,
//! then its `conversations` row (only ever after its desk row). A deadlock
//! or serialization failure all the same is tried again, like a group
//! change.

use super::conn::{self, with_conn, Failure, Pg};
use super::desk_sql::*;
use super::facts::seq;
use super::schema::KIND_GROUP;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::rules::group::{desk_change, desk_event, GroupState};
use crate::rules::routing::{
    may_close, may_transfer, pick, AgentLoad, DeskDone, DeskOp, DeskRow, DeskSnapshot,
};
use deadpool_postgres::Pool;
use shared::desk::{
    DeskAgentInfo, DeskEntry, DeskState, DESK_DEFAULT_CAPACITY, VISITOR_DEFAULT_NAME,
};
use shared::{GroupEventKind, GroupId, UserId};
use std::collections::HashMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error as PgError, Row};

/// Attempts at a change that conflicts with another transaction.
const MAX_TRIES: usize = 5;

/// The advisory lock key every desk transaction takes first ("desk" in
/// ASCII; other advisory locks of the relay use other keys).
const DESK_LOCK: i64 = 0x6465_736b;

type R<T> = std::result::Result<T, PgError>;
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];
/// A storage failure, or else the change done or refused.
type Step = R<Result<()>>;

async fn rows(c: &Pg, sql: &str, params: Params<'_>) -> R<Vec<Row>> {
    let s = c.prepare_cached(sql).await?;
    c.query(&s, params).await
}

async fn row_opt(c: &Pg, sql: &str, params: Params<'_>) -> R<Option<Row>> {
    let s = c.prepare_cached(sql).await?;
    c.query_opt(&s, params).await
}

async fn exec(c: &Pg, sql: &str, params: Params<'_>) -> R<u64> {
    let s = c.prepare_cached(sql).await?;
    c.execute(&s, params).await
}

/// Applies `op` and assigns what can be, in one transaction.
pub(super) async fn op(pool: &Pool, op: &DeskOp) -> Result<DeskDone> {
    let mut agents = match op {
        DeskOp::Agent { agent, .. } => vec![agent.0],
        DeskOp::Seen { agents, .. } => agents.iter().map(|a| a.0).collect(),
        _ => Vec::new(),
    };
    if !agents.is_empty() {
        agents.sort_unstable();
        agents.dedup();
        // Safe to run twice; committed before the change (see above).
        with_conn!(pool, |c| ensure_agents(c, &agents))?;
    }
    let mut tries = 0;
    loop {
        tries += 1;
        let c = conn::get(pool).await.map_err(Failure::into_error)?;
        let failure = match attempt(&c, op).await {
            Ok(result) => return result,
            Err((f, committing)) => {
                if matches!(f, Failure::Unavailable(_))
                    || c.batch_execute("ROLLBACK").await.is_err()
                {
                    conn::discard(c);
                }
                match f {
                    Failure::Conflict(_) if tries < MAX_TRIES => continue,
                    Failure::Unavailable(_) if tries == 1 && !committing => continue,
                    f => f,
                }
            }
        };
        return Err(failure.into_error());
    }
}

/// One try; on failure also whether `COMMIT` had been sent.
async fn attempt(c: &Pg, op: &DeskOp) -> Result<Result<DeskDone>, (Failure, bool)> {
    let early = |e: PgError| (Failure::from(e), false);
    let now = now_ms();
    let mut done = DeskDone::default();
    c.batch_execute("BEGIN").await.map_err(early)?;
    let decided = async {
        exec(c, "SELECT pg_advisory_xact_lock($1)", &[&DESK_LOCK]).await?;
        if let Err(refused) = apply(c, op, now, &mut done).await? {
            return Ok(Err(refused));
        }
        assign_all(c, now, &mut done).await?;
        // An opened conversation may have been assigned at once: answer
        // with where it stands now.
        if let Some(g) = done.row.as_ref().map(|r| r.group) {
            done.row = row(c, g.0).await?;
        }
        Ok(Ok(()))
    }
    .await
    .map_err(early)?;
    if let Err(refused) = decided {
        c.batch_execute("ROLLBACK").await.map_err(early)?;
        return Ok(Err(refused));
    }
    c.batch_execute("COMMIT")
        .await
        .map_err(|e| (Failure::from(e), true))?;
    Ok(Ok(done))
}

async fn apply(c: &Pg, op: &DeskOp, now: i64, done: &mut DeskDone) -> Step {
    match op {
        DeskOp::Open { visitor } => {
            exec(c, LOCK_VISITOR, &[&visitor.0]).await?;
            if let Some(r) = current(c, *visitor).await? {
                done.row = Some(r);
                return Ok(Ok(()));
            }
            let name: Option<String> = row_opt(c, VISITOR_NAME, &[&visitor.0])
                .await?
                .and_then(|r| r.get(0));
            let name = format!(
                "Support: {}",
                name.as_deref().unwrap_or(VISITOR_DEFAULT_NAME)
            );
            let g: i64 = rows(c, CREATE, &[&KIND_GROUP, &name, &now]).await?[0].get(0);
            exec(c, ADD_VISITOR, &[&g, &visitor.0]).await?;
            exec(c, QUEUE, &[&g, &visitor.0, &now]).await?;
            exec(c, BUMP, &[&g]).await?;
            done.row = row(c, g).await?;
            done.changed = true;
        }
        DeskOp::Agent { agent, set } => {
            lock_agents(c).await?;
            let capacity = set.capacity.map(|n| n as i32);
            exec(c, SET_AGENT, &[&agent.0, &set.available, &capacity]).await?;
            done.changed = true;
        }
        DeskOp::Seen { agents, until } => {
            let was: HashMap<i64, i64> = lock_agents(c)
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(3)))
                .collect();
            let ids: Vec<i64> = agents.iter().map(|a| a.0).collect();
            if ids.iter().any(|a| was.get(a).is_none_or(|s| *s < now)) {
                done.changed = true;
            }
            exec(c, RENEW, &[&ids, until]).await?;
        }
        DeskOp::Sweep => {
            let lapsed: Vec<DeskRow> = rows(c, LAPSED, &[&now])
                .await?
                .iter()
                .map(desk_row)
                .collect();
            for r in lapsed {
                requeue(c, &r, done).await?;
            }
        }
        DeskOp::Transfer { group, by, to } => {
            let Some(r) = locked(c, group.0).await? else {
                return Ok(Err(Error::NoSuchGroup));
            };
            let loads = loads(c, now).await?;
            let target = to.and_then(|t| loads.iter().find(|l| l.agent == t).copied());
            if let Err(e) = may_transfer(&r, *by, *to, target) {
                return Ok(Err(e));
            }
            requeue(c, &r, done).await?;
            let next = match to {
                Some(t) => Some(*t),
                // Back to the queue: someone else, if anyone has room now
                // (the counts of others did not change with the requeue).
                None => {
                    let others: Vec<AgentLoad> =
                        loads.into_iter().filter(|l| l.agent != *by).collect();
                    pick(&others)
                }
            };
            if let Some(agent) = next {
                assign(c, group.0, agent, now, done).await?;
            }
        }
        DeskOp::Close { group, by } => {
            let Some(r) = locked(c, group.0).await? else {
                return Ok(Err(Error::NoSuchGroup));
            };
            if let Err(e) = may_close(&r, *by) {
                return Ok(Err(e));
            }
            if r.state != DeskState::Closed {
                // The agent stays a member: the conversation stays readable.
                exec(c, CLOSE, &[&group.0, &now]).await?;
                done.changed = true;
            }
        }
    }
    Ok(Ok(()))
}

/// Assigns the oldest queued conversations while an agent has room.
async fn assign_all(c: &Pg, now: i64, done: &mut DeskDone) -> R<()> {
    // The agents are locked from here to the commit: the loads stay true
    // but for what this loop assigns.
    let mut loads = loads(c, now).await?;
    loop {
        let Some(agent) = pick(&loads) else {
            return Ok(());
        };
        let Some(next) = row_opt(c, NEXT_QUEUED, &[]).await? else {
            return Ok(());
        };
        assign(c, next.get(0), agent, now, done).await?;
        if let Some(l) = loads.iter_mut().find(|l| l.agent == agent) {
            l.open += 1;
        }
    }
}

/// Locks every agent's row, in id order; rows of (user_id, available,
/// capacity, seen_until, role).
async fn lock_agents(c: &Pg) -> R<Vec<Row>> {
    rows(c, LOCK_AGENTS, &[]).await
}

/// The agents who take conversations now (available, leased, still
/// agents), with their open conversations, counted after their rows are
/// locked.
async fn loads(c: &Pg, now: i64) -> R<Vec<AgentLoad>> {
    let takers: Vec<(i64, i32)> = lock_agents(c)
        .await?
        .iter()
        .filter(|r| r.get::<_, bool>(1) && r.get::<_, i64>(3) >= now)
        .filter(|r| matches!(r.get::<_, i16>(4), 1 | 2))
        .map(|r| (r.get(0), r.get(2)))
        .collect();
    if takers.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = takers.iter().map(|t| t.0).collect();
    let open: HashMap<i64, i64> = rows(c, OPEN_COUNTS, &[&ids])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(takers
        .into_iter()
        .map(|(agent, capacity)| AgentLoad {
            agent: UserId(agent),
            capacity: capacity.max(0) as u32,
            open: open.get(&agent).copied().unwrap_or(0) as u32,
        })
        .collect())
}

/// Gives the queued conversation `g` to `agent`: a member from the start
/// of the conversation (they read what the visitor wrote while waiting),
/// delivered what comes next.
async fn assign(c: &Pg, g: i64, agent: UserId, now: i64, done: &mut DeskDone) -> R<()> {
    let conv = rows(c, LOCK_GROUP, &[&g]).await?;
    let Some(conv) = conv.first() else {
        return Ok(());
    };
    let (name, last) = (conv.get::<_, Option<String>>(0), seq(conv.get(1)));
    exec(c, ASSIGN, &[&g, &agent.0, &now]).await?;
    exec(c, ADD_AGENT, &[&g, &agent.0, &(last as i64)]).await?;
    exec(c, BUMP, &[&g]).await?;
    let state = group_state(c, g, name).await?;
    let username = username(c, agent).await?;
    let e = desk_event(
        GroupId(g),
        GroupEventKind::MemberAdded,
        agent,
        username,
        &state.name,
    );
    done.groups.push(desk_change(
        GroupId(g),
        state,
        vec![e],
        vec![],
        Some((agent, last)),
    ));
    done.changed = true;
    Ok(())
}

/// Puts an open conversation back at the front of the queue (its first
/// `queued_at` kept), taking its agent out of it. `r` was read under its
/// row lock.
async fn requeue(c: &Pg, r: &DeskRow, done: &mut DeskDone) -> R<()> {
    let g = r.group.0;
    let conv = rows(c, LOCK_GROUP, &[&g]).await?;
    exec(c, REQUEUE, &[&g]).await?;
    if let (Some(agent), Some(conv)) = (r.agent, conv.first()) {
        let name = conv.get::<_, Option<String>>(0);
        let username = username(c, agent).await?;
        exec(c, REMOVE, &[&g, &agent.0]).await?;
        exec(c, BUMP, &[&g]).await?;
        let state = group_state(c, g, name).await?;
        let e = desk_event(
            r.group,
            GroupEventKind::MemberRemoved,
            agent,
            username,
            &state.name,
        );
        done.groups
            .push(desk_change(r.group, state, vec![e], vec![agent], None));
    }
    done.changed = true;
    Ok(())
}

/// A desk group as the group rules see it (read under its row lock).
async fn group_state(c: &Pg, g: i64, name: Option<String>) -> R<GroupState> {
    let members = rows(c, MEMBERS, &[&g])
        .await?
        .iter()
        .map(|r| (UserId(r.get(0)), seq(r.get(1))))
        .collect();
    Ok(GroupState {
        name: name.unwrap_or_default(),
        owner: None,
        public: false,
        members,
        desk: true,
    })
}

async fn username(c: &Pg, user: UserId) -> R<Option<String>> {
    Ok(row_opt(c, USERNAME, &[&user.0]).await?.map(|r| r.get(0)))
}

/// Creates the agents' rows that are missing (defaults: available, no
/// lease).
async fn ensure_agents(c: &Pg, agents: &[i64]) -> R<u64> {
    let capacity = DESK_DEFAULT_CAPACITY as i32;
    exec(c, ENSURE_AGENTS, &[&agents, &capacity]).await
}

fn desk_row(r: &Row) -> DeskRow {
    DeskRow {
        group: GroupId(r.get(0)),
        visitor: UserId(r.get(1)),
        agent: r.get::<_, Option<i64>>(2).map(UserId),
        state: DeskState::from_code(r.get::<_, i16>(3).into()),
        queued_at: r.get(4),
        assigned_at: r.get(5),
    }
}

/// The desk conversation of `g`.
pub(super) async fn row(c: &Pg, g: i64) -> R<Option<DeskRow>> {
    let sql = format!("{ROW} WHERE d.group_id = $1");
    Ok(row_opt(c, &sql, &[&g]).await?.as_ref().map(desk_row))
}

/// The desk conversation of `g`, locked.
async fn locked(c: &Pg, g: i64) -> R<Option<DeskRow>> {
    let sql = format!("{ROW} WHERE d.group_id = $1 FOR UPDATE");
    Ok(row_opt(c, &sql, &[&g]).await?.as_ref().map(desk_row))
}

/// A visitor's conversation that is not closed.
async fn current(c: &Pg, visitor: UserId) -> R<Option<DeskRow>> {
    let sql =
        format!("{ROW} WHERE d.visitor_id = $1 AND d.state < 2 ORDER BY d.group_id DESC LIMIT 1");
    Ok(row_opt(c, &sql, &[&visitor.0])
        .await?
        .as_ref()
        .map(desk_row))
}

/// What the notices need.
pub(super) async fn snapshot(c: &Pg, now: i64) -> R<DeskSnapshot> {
    let capacity = DESK_DEFAULT_CAPACITY as i32;
    let by_agent: [&(dyn ToSql + Sync); 1] = [&capacity];
    let (entries, agents) =
        futures_util::try_join!(rows(c, ENTRIES, &[]), rows(c, AGENTS, &by_agent))?;
    let mut snap = DeskSnapshot::default();
    for r in &entries {
        let e = DeskEntry {
            group_id: GroupId(r.get(0)),
            visitor_id: UserId(r.get(1)),
            name: r
                .get::<_, Option<String>>(2)
                .unwrap_or_else(|| VISITOR_DEFAULT_NAME.to_string()),
            email: r.get(3),
            page: r.get(4),
            state: DeskState::from_code(r.get::<_, i16>(5).into()),
            agent_id: r.get::<_, Option<i64>>(6).map(UserId),
            queued_at: r.get(7),
            assigned_at: r.get(8),
        };
        match e.state {
            DeskState::Queued => snap.queue.push(e),
            _ => snap.open.push(e),
        }
    }
    snap.agents = agents
        .iter()
        .map(|r| DeskAgentInfo {
            user_id: UserId(r.get(0)),
            username: r.get(1),
            available: r.get(2),
            capacity: r.get::<_, i32>(3).max(0) as u32,
            online: r.get::<_, i64>(4) >= now,
            open: r.get::<_, i64>(5) as u32,
        })
        .collect();
    Ok(snap)
}
