//! Reads: a small pool of read-only connections on tokio's blocking
//! threads (WAL mode lets them run while the indexer writes), and the
//! queries behind the `Store` trait's reads.

use super::facts::{direct_lookup, user_ref, uuid_from_blob};
use super::schema::{open_conn, KIND_DIRECT, KIND_GROUP};
use crate::error::{Error, Result};
use crate::store::{
    addressed, like_prefix, member_page, ConvId, MemberRows, MessageRef, Position, StoredMessage,
    UserRecord, UserRef,
};
use rusqlite::{params, Connection, OptionalExtension};
use shared::api::{GroupSummary, MemberInfo};
use shared::desk::Role;
use shared::{ChatMessage, Content, GroupId, MsgId, Target, UserId};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Read connections open at once.
const READERS: usize = 4;

/// The pool.
pub(super) struct Readers {
    path: PathBuf,
    pool: parking_lot::Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    pub fn new(path: PathBuf) -> Readers {
        Readers {
            path,
            pool: parking_lot::Mutex::new(Vec::new()),
            permits: Semaphore::new(READERS),
        }
    }

    /// Runs `f` on a pooled read-only connection on a blocking thread.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::StoreClosed)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = this.pool.lock().pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_conn(&this.path, true)?,
            };
            let result = f(&conn);
            this.pool.lock().push(conn);
            Ok(result?)
        })
        .await
        .map_err(|e| Error::Storage(e.to_string()))?
    }
}

pub(super) fn user_by_name(c: &Connection, name: &str) -> rusqlite::Result<Option<UserRecord>> {
    c.prepare_cached("SELECT id, username, password_hash FROM users WHERE username = ?1")?
        .query_row([name], |r| {
            Ok(UserRecord {
                id: UserId(r.get(0)?),
                username: r.get(1)?,
                password_hash: r.get(2)?,
            })
        })
        .optional()
}

pub(super) fn token_user(
    c: &Connection,
    hash: &[u8],
    now: i64,
) -> rusqlite::Result<Option<(UserRef, Role)>> {
    c.prepare_cached(
        "SELECT u.id, u.username, u.role FROM tokens t JOIN users u ON u.id = t.user_id
         WHERE t.hash = ?1 AND t.expires_at > ?2",
    )?
    .query_row(params![hash, now], |r| {
        Ok((user_ref(r)?, Role::from_code(r.get(2)?)))
    })
    .optional()
}

pub(super) fn search_users(
    c: &Connection,
    prefix: &str,
    limit: u32,
) -> rusqlite::Result<Vec<UserRef>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, username FROM users WHERE username LIKE ?1 ESCAPE '\\' AND role <> 3
         ORDER BY username COLLATE NOCASE LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![like_prefix(prefix), limit], user_ref)?;
    rows.collect()
}

pub(super) fn contacts(
    c: &Connection,
    user: UserId,
    group_limit: u32,
) -> rusqlite::Result<Vec<UserRef>> {
    let mut stmt = c.prepare_cached(
        "SELECT DISTINCT u.id, u.username
         FROM members me
         JOIN conversations c ON c.id = me.conv_id
         JOIN members other ON other.conv_id = me.conv_id AND other.user_id != me.user_id
         JOIN users u ON u.id = other.user_id
         WHERE me.user_id = ?1
           AND (c.kind = ?2 OR (SELECT COUNT(*) FROM members x WHERE x.conv_id = c.id) <= ?3)",
    )?;
    let rows = stmt.query_map(params![user.0, KIND_DIRECT, group_limit], user_ref)?;
    rows.collect()
}

pub(super) fn positions(c: &Connection, user: UserId) -> rusqlite::Result<Vec<Position>> {
    let mut stmt = c.prepare_cached(
        "SELECT mb.conv_id, mb.delivered_seq,
                COALESCE((SELECT MAX(m.seq) FROM messages m WHERE m.conv_id = mb.conv_id), 0)
         FROM members mb WHERE mb.user_id = ?1",
    )?;
    let rows = stmt.query_map([user.0], |r| {
        Ok(Position {
            conv: r.get(0)?,
            delivered: r.get::<_, i64>(1)? as u64,
            last: r.get::<_, i64>(2)? as u64,
        })
    })?;
    rows.collect()
}

/// The columns [`stored`] reads, from `messages m`, `users u` and
/// `conversations c`.
const STORED_COLUMNS: &str = "m.conv_id, m.seq, m.msg_id, m.from_id,
     CASE WHEN u.role = 3 THEN coalesce((SELECT v.name FROM visitors v WHERE v.user_id = u.id), 'Visitor') ELSE u.username END,
     m.client_msg_id, m.content_type, m.body, m.ts, c.kind";

/// A message pushed to `user`: a one-to-one message is "to" them.
fn stored(r: &rusqlite::Row<'_>, user: UserId) -> rusqlite::Result<StoredMessage> {
    let conv: i64 = r.get(0)?;
    let kind: i64 = r.get(9)?;
    Ok(StoredMessage {
        conv,
        seq: r.get::<_, i64>(1)? as u64,
        msg_id: uuid_from_blob(r.get(2)?)?,
        from: UserId(r.get(3)?),
        from_name: r.get::<_, String>(4)?.into(),
        client_msg_id: r.get(5)?,
        content: Content {
            content_type: r.get(6)?,
            body: r.get(7)?,
        },
        ts: r.get(8)?,
        to: if kind == KIND_GROUP {
            Target::Group(GroupId(conv))
        } else {
            Target::User(user)
        },
    })
}

pub(super) fn pending(
    c: &Connection,
    user: UserId,
    after: Option<(ConvId, u64)>,
    limit: u32,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let (conv, seq) = after.unwrap_or((i64::MIN, 0));
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {STORED_COLUMNS}
         FROM members mb
         JOIN messages m ON m.conv_id = mb.conv_id AND m.seq > mb.delivered_seq
         JOIN users u ON u.id = m.from_id
         JOIN conversations c ON c.id = mb.conv_id
         WHERE mb.user_id = ?1 AND m.from_id != ?1 AND (m.conv_id, m.seq) > (?2, ?3)
         ORDER BY m.conv_id, m.seq LIMIT ?4"
    ))?;
    let rows = stmt.query_map(params![user.0, conv, seq as i64, limit], |r| {
        stored(r, user)
    })?;
    rows.collect()
}

pub(super) fn range(
    c: &Connection,
    user: UserId,
    conv: ConvId,
    after: u64,
    before: u64,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {STORED_COLUMNS}
         FROM members mb
         JOIN messages m ON m.conv_id = mb.conv_id AND m.seq > mb.joined_seq
         JOIN users u ON u.id = m.from_id
         JOIN conversations c ON c.id = mb.conv_id
         WHERE mb.user_id = ?1 AND mb.conv_id = ?2 AND m.from_id != ?1
           AND m.seq > ?3 AND m.seq < ?4
         ORDER BY m.seq"
    ))?;
    let before = before.min(i64::MAX as u64) as i64;
    let rows = stmt.query_map(params![user.0, conv, after as i64, before], |r| {
        stored(r, user)
    })?;
    rows.collect()
}

pub(super) fn message_for(
    c: &Connection,
    user: UserId,
    msg_id: MsgId,
) -> rusqlite::Result<Option<MessageRef>> {
    c.prepare_cached(
        "SELECT m.conv_id, m.seq, m.from_id FROM messages m
         JOIN members mb ON mb.conv_id = m.conv_id AND mb.user_id = ?2
         WHERE m.msg_id = ?1",
    )?
    .query_row(params![&msg_id.as_bytes()[..], user.0], |r| {
        Ok(MessageRef {
            conv: r.get(0)?,
            seq: r.get::<_, i64>(1)? as u64,
            from: UserId(r.get(2)?),
        })
    })
    .optional()
}

/// The columns [`message_view`] reads.
/// A message's columns; the sender's name is a visitor's given name (their
/// username is internal), a user's username otherwise.
pub(super) const MESSAGE_COLUMNS: &str =
    "m.seq, m.msg_id, m.from_id,
     CASE WHEN u.role = 3 THEN coalesce((SELECT v.name FROM visitors v WHERE v.user_id = u.id), 'Visitor') ELSE u.username END,
     m.client_msg_id, m.content_type, m.body, m.ts";

/// Reads a message row: seq, msg_id, from_id, username, client_msg_id,
/// content_type, body, ts (in that order, from column `at`), named as the
/// viewer sees it: `to` is the group, or in a pair whoever did not send it.
pub(super) fn message_view(
    r: &rusqlite::Row<'_>,
    at: usize,
    viewer: UserId,
    peer: Option<UserId>,
    group: Option<GroupId>,
) -> rusqlite::Result<ChatMessage> {
    let from = UserId(r.get(at + 2)?);
    Ok(ChatMessage {
        seq: r.get::<_, i64>(at)? as u64,
        msg_id: uuid_from_blob(r.get(at + 1)?)?,
        from_id: from,
        from_name: r.get(at + 3)?,
        client_msg_id: r.get(at + 4)?,
        content: Content {
            content_type: r.get(at + 5)?,
            body: r.get(at + 6)?,
        },
        ts: r.get(at + 7)?,
        to: addressed(viewer, from, peer, group),
    })
}

/// How `viewer` names conversation `conv`: its group, or the other user.
pub(super) fn naming(
    c: &Connection,
    viewer: UserId,
    conv: ConvId,
) -> rusqlite::Result<(Option<UserId>, Option<GroupId>)> {
    let kind: i64 = c
        .prepare_cached("SELECT kind FROM conversations WHERE id = ?1")?
        .query_row([conv], |r| r.get(0))?;
    if kind == KIND_GROUP {
        return Ok((None, Some(GroupId(conv))));
    }
    let peer = c
        .prepare_cached("SELECT user_id FROM members WHERE conv_id = ?1 AND user_id != ?2")?
        .query_row(params![conv, viewer.0], |r| Ok(UserId(r.get(0)?)))
        .optional()?;
    Ok((peer, None))
}

pub(super) fn messages(
    c: &Connection,
    viewer: UserId,
    conv: ConvId,
    after: u64,
    before: u64,
    limit: u32,
) -> rusqlite::Result<(Vec<ChatMessage>, bool)> {
    let (peer, group) = naming(c, viewer, conv)?;
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.from_id
         WHERE m.conv_id = ?1 AND m.seq > ?2 AND m.seq < ?3 ORDER BY m.seq DESC LIMIT ?4"
    ))?;
    let before = before.min(i64::MAX as u64) as i64;
    let mut out: Vec<ChatMessage> = stmt
        .query_map(params![conv, after as i64, before, limit as i64 + 1], |r| {
            message_view(r, 0, viewer, peer, group)
        })?
        .collect::<rusqlite::Result<_>>()?;
    let more = out.len() > limit as usize;
    out.truncate(limit as usize);
    Ok((out, more))
}

pub(super) fn read_cursors(
    c: &Connection,
    conv: ConvId,
    except: UserId,
) -> rusqlite::Result<Vec<(u64, u64)>> {
    c.prepare_cached(
        "SELECT joined_seq, read_seq FROM members WHERE conv_id = ?1 AND user_id != ?2",
    )?
    .query_map(params![conv, except.0], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
    })?
    .collect()
}

/// A group's summary, if it exists.
pub(super) fn group_summary(c: &Connection, id: i64) -> rusqlite::Result<Option<GroupSummary>> {
    c.prepare_cached(
        "SELECT name, owner_id, is_public, (SELECT COUNT(*) FROM members WHERE conv_id = ?1)
         FROM conversations WHERE id = ?1 AND kind = ?2",
    )?
    .query_row(params![id, KIND_GROUP], |r| {
        Ok(GroupSummary {
            group_id: GroupId(id),
            name: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
            owner_id: UserId(r.get::<_, Option<i64>>(1)?.unwrap_or(0)),
            public: r.get::<_, i64>(2)? != 0,
            member_count: r.get::<_, i64>(3)? as u32,
        })
    })
    .optional()
}

pub(super) fn group_members_page(
    c: &Connection,
    group: GroupId,
    after: Option<&str>,
    limit: u32,
) -> rusqlite::Result<MemberRows> {
    let owner: Option<i64> = c
        .prepare_cached("SELECT owner_id FROM conversations WHERE id = ?1")?
        .query_row([group.0], |r| r.get(0))
        .optional()?
        .flatten();
    let mut stmt = c.prepare_cached(
        "SELECT mb.user_id, u.username, mb.read_seq, mb.delivered_seq FROM members mb
         JOIN users u ON u.id = mb.user_id
         WHERE mb.conv_id = ?1 AND u.username > ?2 COLLATE NOCASE
         ORDER BY u.username COLLATE NOCASE LIMIT ?3",
    )?;
    let members: Vec<MemberInfo> = stmt
        .query_map(
            params![group.0, after.unwrap_or(""), limit as i64 + 1],
            |r| {
                let id: i64 = r.get(0)?;
                Ok(MemberInfo {
                    user_id: UserId(id),
                    username: r.get(1)?,
                    owner: Some(id) == owner,
                    read_seq: r.get::<_, i64>(2)? as u64,
                    delivered_seq: r.get::<_, i64>(3)? as u64,
                    online: false,
                })
            },
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(member_page(members, limit))
}

pub(super) fn search_groups(
    c: &Connection,
    prefix: &str,
    limit: u32,
) -> rusqlite::Result<Vec<GroupSummary>> {
    let mut stmt = c.prepare_cached(
        "SELECT id FROM conversations
         WHERE kind = ?1 AND is_public = 1 AND name LIKE ?2 ESCAPE '\\'
         ORDER BY name COLLATE NOCASE LIMIT ?3",
    )?;
    let ids: Vec<i64> = stmt
        .query_map(params![KIND_GROUP, like_prefix(prefix), limit], |r| {
            r.get(0)
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids
        .into_iter()
        .map(|id| group_summary(c, id))
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect())
}

pub(super) fn small_group_members(
    c: &Connection,
    group: GroupId,
    cap: u32,
) -> rusqlite::Result<Option<Vec<UserId>>> {
    let ids: Vec<UserId> = c
        .prepare_cached(
            "SELECT mb.user_id FROM members mb JOIN conversations c ON c.id = mb.conv_id
             WHERE mb.conv_id = ?1 AND c.kind = ?2 LIMIT ?3",
        )?
        .query_map(params![group.0, KIND_GROUP, cap as i64 + 1], |r| {
            Ok(UserId(r.get(0)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok((!ids.is_empty() && ids.len() <= cap as usize).then_some(ids))
}

/// `user`'s membership of a pair's conversation or a group.
pub(super) fn membership(
    c: &Connection,
    user: UserId,
    to: Target,
) -> rusqlite::Result<Option<crate::store::Membership>> {
    let direct = match to {
        Target::User(peer) => match direct_lookup(c, user, peer)? {
            Some(conv) => Some(conv),
            None => return Ok(None),
        },
        Target::Group(_) => None,
    };
    super::facts::membership(c, user, to, direct)
}
