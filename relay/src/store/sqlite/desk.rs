//! The support desk on SQLite: each change is one indexer task (one
//! transaction on the single writer, so nothing races), deciding with
//! `rules::routing` and ending by assigning what can be assigned. The
//! snapshot for the notices is a read on the reader pool.

use super::indexer::Indexer;
use super::tasks::{job, Task};
use crate::error::{Error, Result};
use crate::rules::group::{desk_change, desk_event, GroupStore};
use crate::rules::routing::{
    may_close, may_transfer, pick, AgentLoad, DeskDone, DeskOp, DeskRow, DeskSnapshot,
};
use crate::store::Reply;
use rusqlite::{params, Connection, OptionalExtension, Row};
use shared::desk::{
    DeskAgentInfo, DeskEntry, DeskState, DESK_DEFAULT_CAPACITY, VISITOR_DEFAULT_NAME,
};
use shared::{GroupEventKind, GroupId, UserId};

/// Runs a desk change on the writer.
pub(super) fn op(op: DeskOp, reply: Reply<DeskDone>) -> Box<dyn Task> {
    job(reply, move |ix, now| {
        let mut done = DeskDone::default();
        if let Err(e) = apply(ix, &op, now, &mut done)? {
            return Ok(Err(e));
        }
        assign_all(ix, now, &mut done)?;
        // An opened conversation may have been assigned at once: answer
        // with where it stands now.
        if let Some(g) = done.row.as_ref().map(|r| r.group) {
            done.row = row(&ix.conn, g)?;
        }
        Ok(Ok(done))
    })
}

type Step = rusqlite::Result<Result<()>>;

fn apply(ix: &mut Indexer, op: &DeskOp, now: i64, done: &mut DeskDone) -> Step {
    match op {
        DeskOp::Open { visitor } => {
            if let Some(row) = current(&ix.conn, *visitor)? {
                done.row = Some(row);
                return Ok(Ok(()));
            }
            let name: Option<String> = ix
                .conn
                .prepare_cached("SELECT name FROM visitors WHERE user_id = ?1")?
                .query_row([visitor.0], |r| r.get(0))
                .optional()?
                .flatten();
            let name = name.unwrap_or_else(|| VISITOR_DEFAULT_NAME.to_string());
            let g = ix.create(&format!("Support: {name}"), false)?;
            ix.add(g, *visitor)?;
            ix.conn
                .prepare_cached(
                    "INSERT INTO desk_conversations (group_id, visitor_id, state, queued_at)
                     VALUES (?1, ?2, 0, ?3)",
                )?
                .execute(params![g.0, visitor.0, now])?;
            if let Some(s) = ix.groups.get_mut(&g.0) {
                s.desk = true;
            }
            done.row = row(&ix.conn, g)?;
            done.changed = true;
        }
        DeskOp::Agent { agent, set } => {
            ensure_agent(&ix.conn, *agent)?;
            ix.conn
                .prepare_cached(
                    "UPDATE desk_agents SET available = coalesce(?2, available),
                                            capacity = coalesce(?3, capacity)
                     WHERE user_id = ?1",
                )?
                .execute(params![agent.0, set.available, set.capacity])?;
            done.changed = true;
        }
        DeskOp::Seen { agents, until } => {
            for a in agents {
                ensure_agent(&ix.conn, *a)?;
                let was: i64 = ix
                    .conn
                    .prepare_cached("SELECT seen_until FROM desk_agents WHERE user_id = ?1")?
                    .query_row([a.0], |r| r.get(0))?;
                if was < now {
                    done.changed = true;
                }
                ix.conn
                    .prepare_cached(
                        "UPDATE desk_agents SET seen_until = max(seen_until, ?2) WHERE user_id = ?1",
                    )?
                    .execute(params![a.0, until])?;
            }
        }
        DeskOp::Sweep => {
            let lapsed: Vec<DeskRow> = ix
                .conn
                .prepare_cached(&format!("{ROW} WHERE {LAPSED}"))?
                .query_map([now], desk_row)?
                .collect::<rusqlite::Result<_>>()?;
            for r in lapsed {
                requeue(ix, &r, done)?;
            }
        }
        DeskOp::Transfer { group, by, to } => {
            let Some(r) = row(&ix.conn, *group)? else {
                return Ok(Err(Error::NoSuchGroup));
            };
            let target = match to {
                Some(t) => load(&ix.conn, *t, now)?,
                None => None,
            };
            if let Err(e) = may_transfer(&r, *by, *to, target) {
                return Ok(Err(e));
            }
            requeue(ix, &r, done)?;
            let next = match to {
                Some(t) => Some(*t),
                // Back to the queue: someone else, if anyone has room now.
                None => {
                    let others: Vec<AgentLoad> = loads(&ix.conn, now)?
                        .into_iter()
                        .filter(|l| l.agent != *by)
                        .collect();
                    pick(&others)
                }
            };
            if let Some(agent) = next {
                assign(ix, *group, agent, now, done)?;
            }
        }
        DeskOp::Close { group, by } => {
            let Some(r) = row(&ix.conn, *group)? else {
                return Ok(Err(Error::NoSuchGroup));
            };
            if let Err(e) = may_close(&r, *by) {
                return Ok(Err(e));
            }
            if r.state != DeskState::Closed {
                // The agent stays a member: the conversation stays readable.
                ix.conn
                    .prepare_cached(
                        "UPDATE desk_conversations SET state = 2, closed_at = ?2 WHERE group_id = ?1",
                    )?
                    .execute(params![group.0, now])?;
                done.changed = true;
            }
        }
    }
    Ok(Ok(()))
}

/// Assigns the oldest queued conversations while an agent has room.
fn assign_all(ix: &mut Indexer, now: i64, done: &mut DeskDone) -> rusqlite::Result<()> {
    loop {
        let next: Option<i64> = ix
            .conn
            .prepare_cached(
                "SELECT group_id FROM desk_conversations WHERE state = 0
                 ORDER BY queued_at, group_id LIMIT 1",
            )?
            .query_row([], |r| r.get(0))
            .optional()?;
        let Some(g) = next else { return Ok(()) };
        let Some(agent) = pick(&loads(&ix.conn, now)?) else {
            return Ok(());
        };
        assign(ix, GroupId(g), agent, now, done)?;
    }
}

/// Gives the queued conversation `g` to `agent`: a member from the start
/// of the conversation (they read what the visitor wrote while waiting),
/// delivered what comes next.
fn assign(
    ix: &mut Indexer,
    g: GroupId,
    agent: UserId,
    now: i64,
    done: &mut DeskDone,
) -> rusqlite::Result<()> {
    ix.conn
        .prepare_cached(
            "UPDATE desk_conversations SET state = 1, agent_id = ?2, assigned_at = ?3
             WHERE group_id = ?1",
        )?
        .execute(params![g.0, agent.0, now])?;
    let last = ix.add(g, agent)?;
    ix.conn
        .prepare_cached("UPDATE members SET joined_seq = 0 WHERE conv_id = ?1 AND user_id = ?2")?
        .execute(params![g.0, agent.0])?;
    let username = ix.username(agent)?;
    if let Some(state) = ix.group_state(g)? {
        if let Some(m) = state.members.iter_mut().find(|m| m.0 == agent) {
            m.1 = 0;
        }
        let state = state.clone();
        let e = desk_event(g, GroupEventKind::MemberAdded, agent, username, &state.name);
        done.groups
            .push(desk_change(g, state, vec![e], vec![], Some((agent, last))));
    }
    done.changed = true;
    Ok(())
}

/// Puts an open conversation back at the front of the queue (its first
/// `queued_at` kept), taking its agent out of it.
fn requeue(ix: &mut Indexer, r: &DeskRow, done: &mut DeskDone) -> rusqlite::Result<()> {
    ix.conn
        .prepare_cached(
            "UPDATE desk_conversations SET state = 0, agent_id = NULL, assigned_at = NULL
             WHERE group_id = ?1",
        )?
        .execute([r.group.0])?;
    if let Some(agent) = r.agent {
        let username = ix.username(agent)?;
        ix.remove(r.group, agent)?;
        if let Some(state) = ix.group_state(r.group)? {
            let state = state.clone();
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
    }
    done.changed = true;
    Ok(())
}

fn ensure_agent(c: &Connection, agent: UserId) -> rusqlite::Result<()> {
    c.prepare_cached("INSERT OR IGNORE INTO desk_agents (user_id, capacity) VALUES (?1, ?2)")?
        .execute(params![agent.0, DESK_DEFAULT_CAPACITY])?;
    Ok(())
}

/// Agents who take conversations now: available, leased, still agents.
const LOADS: &str = "SELECT a.user_id, a.capacity,
        (SELECT count(*) FROM desk_conversations d WHERE d.agent_id = a.user_id AND d.state = 1)
     FROM desk_agents a JOIN users u ON u.id = a.user_id
     WHERE a.available AND a.seen_until >= ?1 AND u.role IN (1, 2)";

fn load_row(r: &Row) -> rusqlite::Result<AgentLoad> {
    Ok(AgentLoad {
        agent: UserId(r.get(0)?),
        capacity: r.get::<_, i64>(1)? as u32,
        open: r.get::<_, i64>(2)? as u32,
    })
}

fn loads(c: &Connection, now: i64) -> rusqlite::Result<Vec<AgentLoad>> {
    c.prepare_cached(LOADS)?
        .query_map([now], load_row)?
        .collect()
}

fn load(c: &Connection, agent: UserId, now: i64) -> rusqlite::Result<Option<AgentLoad>> {
    c.prepare_cached(&format!("{LOADS} AND a.user_id = ?2"))?
        .query_row(params![now, agent.0], load_row)
        .optional()
}

const ROW: &str = "SELECT d.group_id, d.visitor_id, d.agent_id, d.state, d.queued_at,
        d.assigned_at FROM desk_conversations d";

fn desk_row(r: &Row) -> rusqlite::Result<DeskRow> {
    Ok(DeskRow {
        group: GroupId(r.get(0)?),
        visitor: UserId(r.get(1)?),
        agent: r.get::<_, Option<i64>>(2)?.map(UserId),
        state: DeskState::from_code(r.get(3)?),
        queued_at: r.get(4)?,
        assigned_at: r.get(5)?,
    })
}

/// The desk conversation of `g`.
pub(super) fn row(c: &Connection, g: GroupId) -> rusqlite::Result<Option<DeskRow>> {
    c.prepare_cached(&format!("{ROW} WHERE d.group_id = ?1"))?
        .query_row([g.0], desk_row)
        .optional()
}

/// A visitor's conversation that is not closed.
fn current(c: &Connection, visitor: UserId) -> rusqlite::Result<Option<DeskRow>> {
    c.prepare_cached(&format!(
        "{ROW} WHERE d.visitor_id = ?1 AND d.state < 2 ORDER BY d.group_id DESC LIMIT 1"
    ))?
    .query_row([visitor.0], desk_row)
    .optional()
}

/// Open conversations whose agent's lease ended.
const LAPSED: &str = "d.state = 1 AND d.agent_id IN
         (SELECT user_id FROM desk_agents WHERE seen_until < ?1)";

/// Whether a sweep has anything to do.
pub(super) fn lapsed(c: &Connection, now: i64) -> rusqlite::Result<bool> {
    c.prepare_cached(&format!(
        "SELECT 1 FROM desk_conversations d WHERE {LAPSED} LIMIT 1"
    ))?
    .exists([now])
}

/// What the notices need.
pub(super) fn snapshot(c: &Connection, now: i64) -> rusqlite::Result<DeskSnapshot> {
    let mut entries = c.prepare_cached(
        "SELECT d.group_id, d.visitor_id, v.name, v.email, v.page, d.state, d.agent_id,
                d.queued_at, d.assigned_at
         FROM desk_conversations d LEFT JOIN visitors v ON v.user_id = d.visitor_id
         WHERE d.state < 2 ORDER BY d.queued_at, d.group_id",
    )?;
    let mut snap = DeskSnapshot::default();
    let rows = entries.query_map([], |r| {
        Ok(DeskEntry {
            group_id: GroupId(r.get(0)?),
            visitor_id: UserId(r.get(1)?),
            name: r
                .get::<_, Option<String>>(2)?
                .unwrap_or_else(|| VISITOR_DEFAULT_NAME.to_string()),
            email: r.get(3)?,
            page: r.get(4)?,
            state: DeskState::from_code(r.get(5)?),
            agent_id: r.get::<_, Option<i64>>(6)?.map(UserId),
            queued_at: r.get(7)?,
            assigned_at: r.get(8)?,
        })
    })?;
    for e in rows {
        let e = e?;
        match e.state {
            DeskState::Queued => snap.queue.push(e),
            _ => snap.open.push(e),
        }
    }
    let mut agents = c.prepare_cached(
        "SELECT u.id, u.username, coalesce(a.available, 1), coalesce(a.capacity, ?2),
                coalesce(a.seen_until, 0),
                (SELECT count(*) FROM desk_conversations d WHERE d.agent_id = u.id AND d.state = 1)
         FROM users u LEFT JOIN desk_agents a ON a.user_id = u.id
         WHERE u.role IN (1, 2) ORDER BY u.username COLLATE NOCASE",
    )?;
    let rows = agents.query_map(params![now, DESK_DEFAULT_CAPACITY], |r| {
        Ok(DeskAgentInfo {
            user_id: UserId(r.get(0)?),
            username: r.get(1)?,
            available: r.get::<_, i64>(2)? != 0,
            capacity: r.get::<_, i64>(3)? as u32,
            online: r.get::<_, i64>(4)? >= now,
            open: r.get::<_, i64>(5)? as u32,
        })
    })?;
    snap.agents = rows.collect::<rusqlite::Result<_>>()?;
    Ok(snap)
}
