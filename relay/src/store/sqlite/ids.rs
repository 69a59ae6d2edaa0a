//! Where the message id generator (`store::ids`) resumes: after the
//! largest id SQLite holds.

use crate::error::Result;
use crate::store::ids::IdGen;
use rusqlite::{Connection, OptionalExtension};
use shared::MsgId;

/// A generator whose ids come after every stored one.
pub(super) fn resume(conn: &Connection) -> Result<IdGen> {
    let last: Option<Vec<u8>> = conn
        .query_row(
            "SELECT msg_id FROM messages ORDER BY msg_id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(IdGen::after(last.and_then(|b| MsgId::from_slice(&b).ok())))
}
