//! Recovery: what the commit log holds that SQLite does not.
//!
//! Before any thread starts, the records after the LSN SQLite last applied
//! are inserted in one transaction. Records carry their ids and `seq`, so
//! replaying is idempotent; the applied LSN is written in the same
//! transaction as the messages, by replay and by the indexer alike.

use super::log;
use crate::error::{Error, Result};
use rusqlite::{params, Connection};
use std::path::Path;

/// Inserts the log records SQLite does not have yet, in one transaction;
/// returns the last LSN in use.
pub(super) fn replay(conn: &mut Connection, path: &Path) -> Result<u64> {
    let applied = applied_lsn(conn)?;
    let records = log::read(path)?;
    let last = records.last().map_or(applied, |r| r.lsn.max(applied));
    let todo: Vec<&log::Record> = records.iter().filter(|r| r.lsn > applied).collect();
    if todo.is_empty() {
        return Ok(last);
    }
    let replayed = (|| {
        let tx = conn.transaction()?;
        for r in &todo {
            insert_message(&tx, r)?;
        }
        set_applied_lsn(&tx, last)?;
        tx.commit()
    })();
    replayed.map_err(|e| {
        Error::Storage(format!(
            "replaying the commit log {} failed ({e}); it may not belong to this database",
            path.display()
        ))
    })?;
    tracing::warn!(
        records = todo.len(),
        last_lsn = last,
        "replayed chats from the commit log that SQLite did not have (the relay stopped without closing)"
    );
    Ok(last)
}

pub(super) fn applied_lsn(c: &Connection) -> rusqlite::Result<u64> {
    c.query_row("SELECT applied_lsn FROM log_state WHERE id = 1", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|l| l as u64)
}

pub(super) fn set_applied_lsn(c: &Connection, lsn: u64) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE log_state SET applied_lsn = MAX(applied_lsn, ?1) WHERE id = 1")?
        .execute([lsn as i64])?;
    Ok(())
}

/// Inserts a resolved message and its webhook deliveries: how many
/// messages (0 if it was there already) and deliveries were inserted.
pub(super) fn insert_message(c: &Connection, r: &log::Record) -> rusqlite::Result<(usize, usize)> {
    let n = c.prepare_cached(
        "INSERT OR IGNORE INTO messages (conv_id, seq, msg_id, from_id, client_msg_id, content_type, body, ts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        r.conv,
        r.seq as i64,
        &r.msg_id.as_bytes()[..],
        r.from.0,
        r.client_msg_id,
        r.content.content_type,
        r.content.body,
        r.ts
    ])?;
    let queued = if n > 0 {
        super::bots::outbox_for(c, r.conv, r.seq, r.from, r.ts)?
    } else {
        0
    };
    Ok((n, queued))
}
