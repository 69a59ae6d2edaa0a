//! Accounts of the support desk on SQLite: roles and visitors. Writes are
//! indexer tasks (queued through the front like every write); reads run
//! on the reader pool.

use super::facts::user_ref;
use super::indexer::is_unique_violation;
use super::schema::ROLE_VISITOR;
use super::tasks::{job, Task};
use crate::error::Error;
use crate::store::{Reply, UserRef};
use rusqlite::{params, Connection, OptionalExtension};
use shared::desk::{NewVisitor, Role};
use shared::UserId;

/// Creates a visitor: a user of role visitor without a password, and what
/// they told the desk.
pub(super) fn create_visitor(
    username: String,
    about: NewVisitor,
    reply: Reply<UserId>,
) -> Box<dyn Task> {
    job(reply, move |ix, now| {
        let r = ix
            .conn
            .prepare_cached(
                "INSERT INTO users (username, password_hash, created_at, role)
                 VALUES (?1, '', ?2, ?3)",
            )?
            .execute(params![username, now, ROLE_VISITOR]);
        match r {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(Err(Error::UsernameTaken)),
            Err(e) => return Err(e),
        }
        let id = ix.conn.last_insert_rowid();
        ix.conn
            .prepare_cached(
                "INSERT INTO visitors (user_id, name, email, page, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, about.name, about.email, about.page, now])?;
        Ok(Ok(UserId(id)))
    })
}

/// Sets a user's role.
pub(super) fn set_role(user: UserId, role: Role, reply: Reply<()>) -> Box<dyn Task> {
    job(reply, move |ix, _| {
        ix.conn
            .prepare_cached("UPDATE users SET role = ?2 WHERE id = ?1")?
            .execute(params![user.0, i64::from(role.code())])?;
        Ok(Ok(()))
    })
}

/// The name a visitor gave.
pub(super) fn visitor_name(c: &Connection, user: UserId) -> rusqlite::Result<Option<String>> {
    Ok(
        c.prepare_cached("SELECT name FROM visitors WHERE user_id = ?1")?
            .query_row([user.0], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten(),
    )
}

/// A user and their role, by username (case-insensitive).
pub(super) fn user_role(
    c: &Connection,
    username: &str,
) -> rusqlite::Result<Option<(UserRef, Role)>> {
    c.prepare_cached("SELECT id, username, role FROM users WHERE username = ?1")?
        .query_row([username], |r| {
            Ok((user_ref(r)?, Role::from_code(r.get(2)?)))
        })
        .optional()
}

/// Agents and administrators, by username.
pub(super) fn staff(c: &Connection) -> rusqlite::Result<Vec<(UserRef, Role)>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, username, role FROM users WHERE role IN (1, 2)
         ORDER BY username COLLATE NOCASE",
    )?;
    let rows = stmt.query_map([], |r| Ok((user_ref(r)?, Role::from_code(r.get(2)?))))?;
    rows.collect()
}
