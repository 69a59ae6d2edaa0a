//! Small SQL lookups shared by the front (on its read-only connection), the
//! indexer (on the write connection) and the readers: the facts the rules
//! in `crate::rules` are decided on.

use super::schema::KIND_GROUP;
use crate::store::{ConvId, Membership, Original, UserRef};
use rusqlite::{params, Connection, OptionalExtension};
use shared::{MsgId, Target, UserId};

/// The conversation of two users, if they have one.
pub(super) fn direct_lookup(
    c: &Connection,
    a: UserId,
    b: UserId,
) -> rusqlite::Result<Option<ConvId>> {
    c.prepare_cached(
        "SELECT conv_id FROM direct_conversations WHERE user_lo = ?1 AND user_hi = ?2",
    )?
    .query_row(params![a.0.min(b.0), a.0.max(b.0)], |r| r.get(0))
    .optional()
}

/// Whether a user exists. Visitors are nobody to the chat's rules: never
/// a recipient, never a group member (see `rules::desk`).
pub(super) fn user_exists(c: &Connection, user: UserId) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM users WHERE id = ?1 AND role <> 3")?
        .exists([user.0])
}

/// The stored message with this sender's idempotency key.
pub(super) fn find_by_key(
    c: &Connection,
    from: UserId,
    key: &str,
) -> rusqlite::Result<Option<Original>> {
    let found = c
        .prepare_cached(
            "SELECT msg_id, ts, seq FROM messages WHERE from_id = ?1 AND client_msg_id = ?2",
        )?
        .query_row(params![from.0, key], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    found
        .map(|(id, ts, seq)| {
            Ok(Original {
                msg_id: uuid_from_blob(id)?,
                ts,
                seq: seq as u64,
            })
        })
        .transpose()
}

/// A conversation's last stored `seq` (0 if empty).
pub(super) fn last_stored_seq(c: &Connection, conv: ConvId) -> rusqlite::Result<u64> {
    c.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conv_id = ?1")?
        .query_row([conv], |r| r.get::<_, i64>(0))
        .map(|s| s as u64)
}

/// A group's members with the `seq` each joined at, sorted by user;
/// `None` if `conv` is not a group.
pub(super) fn load_members(
    c: &Connection,
    conv: ConvId,
) -> rusqlite::Result<Option<Vec<(UserId, u64)>>> {
    let is_group = c
        .prepare_cached("SELECT 1 FROM conversations WHERE id = ?1 AND kind = ?2")?
        .exists(params![conv, KIND_GROUP])?;
    if !is_group {
        return Ok(None);
    }
    c.prepare_cached("SELECT user_id, joined_seq FROM members WHERE conv_id = ?1 ORDER BY user_id")?
        .query_map([conv], |r| {
            Ok((UserId(r.get(0)?), r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<_>>()
        .map(Some)
}

/// `user`'s membership of the conversation `to` names.
pub(super) fn membership(
    c: &Connection,
    user: UserId,
    to: Target,
    direct: Option<ConvId>,
) -> rusqlite::Result<Option<Membership>> {
    let conv = match (to, direct) {
        (Target::User(_), Some(conv)) => conv,
        (Target::User(peer), None) => match direct_lookup(c, user, peer)? {
            Some(conv) => conv,
            None => return Ok(None),
        },
        (Target::Group(g), _) => {
            let is_group = c
                .prepare_cached("SELECT 1 FROM conversations WHERE id = ?1 AND kind = ?2")?
                .exists(params![g.0, KIND_GROUP])?;
            if !is_group {
                return Ok(None);
            }
            g.0
        }
    };
    c.prepare_cached(
        "SELECT joined_seq, read_seq FROM members WHERE conv_id = ?1 AND user_id = ?2",
    )?
    .query_row(params![conv, user.0], |r| {
        Ok(Membership {
            conv,
            joined: r.get::<_, i64>(0)? as u64,
            read: r.get::<_, i64>(1)? as u64,
        })
    })
    .optional()
}

/// A message id from its stored bytes.
pub(super) fn uuid_from_blob(b: Vec<u8>) -> rusqlite::Result<MsgId> {
    MsgId::from_slice(&b).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// A `UserRef` from a row of (id, username).
pub(super) fn user_ref(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRef> {
    Ok(UserRef {
        id: UserId(r.get(0)?),
        username: r.get(1)?,
    })
}

/// A user by username (case-insensitive); never a visitor.
pub(super) fn user_named(c: &Connection, username: &str) -> rusqlite::Result<Option<UserRef>> {
    c.prepare_cached("SELECT id, username FROM users WHERE username = ?1 AND role <> 3")?
        .query_row([username], user_ref)
        .optional()
}
