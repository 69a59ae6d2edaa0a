//! The SQLite schema and how a connection is opened: migrations, pragmas,
//! and the exclusive lock that keeps a second relay off the same database.

use crate::config::SyncMode;
use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::fs::File;
use std::path::Path;
use std::time::Duration;

/// Conversation kinds in `conversations.kind`.
pub(super) const KIND_DIRECT: i64 = 1;
pub(super) const KIND_GROUP: i64 = 2;
/// `members.role` of a group's owner.
pub(super) const ROLE_OWNER: i64 = 1;
/// `users.role` of a visitor (`shared::desk::Role::Visitor`).
pub(super) const ROLE_VISITOR: i64 = 3;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run. Never edit a released migration: append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE tokens (
    hash       BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX tokens_expiry ON tokens(expires_at);
-- One row per pair of users and per group. Messages, cursors and history
-- all hang off the conversation.
CREATE TABLE conversations (
    id         INTEGER PRIMARY KEY,
    kind       INTEGER NOT NULL,
    name       TEXT,
    owner_id   INTEGER REFERENCES users(id),
    is_public  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE direct_conversations (
    user_lo INTEGER NOT NULL REFERENCES users(id),
    user_hi INTEGER NOT NULL REFERENCES users(id),
    conv_id INTEGER NOT NULL REFERENCES conversations(id),
    PRIMARY KEY (user_lo, user_hi)
) WITHOUT ROWID;
-- Read fan-out: a message is stored once; each member has cursors.
-- delivered_seq: every message up to it (not sent by the member) was acked.
CREATE TABLE members (
    conv_id       INTEGER NOT NULL REFERENCES conversations(id),
    user_id       INTEGER NOT NULL REFERENCES users(id),
    joined_seq    INTEGER NOT NULL DEFAULT 0,
    delivered_seq INTEGER NOT NULL DEFAULT 0,
    read_seq      INTEGER NOT NULL DEFAULT 0,
    role          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conv_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members(user_id, conv_id);
CREATE TABLE messages (
    conv_id       INTEGER NOT NULL REFERENCES conversations(id),
    seq           INTEGER NOT NULL,
    msg_id        BLOB NOT NULL,
    from_id       INTEGER NOT NULL REFERENCES users(id),
    client_msg_id TEXT,
    content_type  INTEGER NOT NULL,
    body          TEXT NOT NULL,
    ts            INTEGER NOT NULL,
    PRIMARY KEY (conv_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_by_id ON messages(msg_id);
CREATE UNIQUE INDEX messages_idempotency ON messages(from_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
"#,
    r#"
-- Groups: searching public groups by name.
CREATE INDEX groups_by_name ON conversations(kind, is_public, name COLLATE NOCASE);
"#,
    r#"
-- The commit log (store/sqlite/log.rs): the last record applied here,
-- written in the same transaction as the record's message.
CREATE TABLE log_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    applied_lsn INTEGER NOT NULL
);
INSERT INTO log_state (id, applied_lsn) VALUES (1, 0);
"#,
    r#"
-- The support desk: every account has a role (shared::desk::Role: 0 user,
-- 1 agent, 2 admin, 3 visitor); existing accounts are users. Visitors have
-- an internal username starting with '~' and no password; what they told
-- the desk about themselves is in `visitors`.
ALTER TABLE users ADD COLUMN role INTEGER NOT NULL DEFAULT 0;
CREATE INDEX users_by_role ON users(role) WHERE role <> 0;
CREATE TABLE visitors (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT,
    email      TEXT,
    page       TEXT,
    created_at INTEGER NOT NULL
);
"#,
    r#"
-- The support desk's routing (rules/routing.rs). A desk conversation is a
-- group whose members are the visitor and, once assigned, the agent.
-- state: 0 queued, 1 open, 2 closed. queued_at is kept when a
-- conversation goes back to the queue, so it goes to the front.
CREATE TABLE desk_conversations (
    group_id    INTEGER PRIMARY KEY REFERENCES conversations(id),
    visitor_id  INTEGER NOT NULL REFERENCES users(id),
    agent_id    INTEGER REFERENCES users(id),
    state       INTEGER NOT NULL,
    queued_at   INTEGER NOT NULL,
    assigned_at INTEGER,
    closed_at   INTEGER
);
CREATE INDEX desk_queue ON desk_conversations(state, queued_at, group_id);
CREATE INDEX desk_by_visitor ON desk_conversations(visitor_id, state);
CREATE INDEX desk_by_agent ON desk_conversations(agent_id, state);
-- An agent's choice (available, capacity) and their lease: a relay with a
-- tab of theirs connected keeps seen_until ahead of the clock.
CREATE TABLE desk_agents (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id),
    available  INTEGER NOT NULL DEFAULT 1,
    capacity   INTEGER NOT NULL DEFAULT 5,
    seen_until INTEGER NOT NULL DEFAULT 0
);
"#,
    r#"
-- Bots (shared::desk::Role::Bot, role 4): users without a password, with
-- long-lived tokens, and maybe a webhook (its URL and signing secret).
-- The outbox holds one row per webhook delivery, written with its message
-- (store/bots.rs): state 0 pending, 2 given up; delivered rows are deleted.
CREATE TABLE bots (
    user_id     INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    webhook_url TEXT,
    secret      TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX tokens_by_user ON tokens(user_id);
CREATE TABLE webhook_outbox (
    id            INTEGER PRIMARY KEY,
    bot_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conv_id       INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    state         INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    claimed_until INTEGER,
    created_at    INTEGER NOT NULL,
    last_error    TEXT,
    UNIQUE (bot_id, conv_id, seq)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(next_at) WHERE state = 0;
"#,
];

/// Connection settings shared by the writer, the readers and the front.
pub(super) fn open_conn(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -32768)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

pub(super) fn sync_pragma(sync: SyncMode) -> &'static str {
    match sync {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
        SyncMode::Off => "OFF",
    }
}

/// Applies the missing migrations; true if the database was new.
pub(super) fn migrate(conn: &mut Connection) -> Result<bool> {
    let version: usize =
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        return Err(Error::Config(format!(
            "the database has schema version {version}, newer than this relay knows ({}); upgrade the relay",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(version == 0)
}

/// Takes the database's exclusive lock for this process, for as long as
/// the returned file stays open.
///
/// Two relays on one database would each assign `seq`s from their own
/// caches and log to the same commit log: the second's messages were
/// answered and then lost ("a logged message conflicts with a stored one").
/// So the second refuses to start. The lock is an advisory `flock` on the
/// database file itself: it is released by the kernel when the process
/// dies (even by `kill -9`), and it does not interfere with SQLite's own
/// `fcntl` locks, so `sqlite3 .backup` still works alongside.
pub(super) fn lock(path: &Path) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: `file` is open for the whole call, so its descriptor is
        // valid; flock has no other preconditions.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Error::Config(format!(
                    "the database {} is in use by another process (it holds the lock on that file); \
                     a second relay on the same database would lose messages: stop the other one, \
                     or give this one its own --db",
                    path.display()
                ))
            } else {
                Error::Io(e)
            });
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let first = lock(&path).unwrap();
        let e = lock(&path).unwrap_err().to_string();
        assert!(e.contains("in use by another process"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        drop(first);
        lock(&path).unwrap();
    }
}
