//! The conversation list: each of a user's conversations with its last
//! message (after they joined: see `rules::history`), unread count and the
//! peer's cursors, newest activity first (`store::conversation_list`).

use super::reads::{group_summary, message_view, MESSAGE_COLUMNS};
use super::schema::KIND_GROUP;
use crate::store::{conversation_list, Listed};
use rusqlite::{params, Connection, OptionalExtension};
use shared::api::Conversations;
use shared::UserId;

pub(super) fn list_conversations(c: &Connection, user: UserId) -> rusqlite::Result<Conversations> {
    struct Row {
        conv: i64,
        kind: i64,
        read_seq: i64,
        joined_seq: i64,
        created_at: i64,
    }
    let rows: Vec<Row> = c
        .prepare_cached(
            "SELECT mb.conv_id, c.kind, mb.read_seq, mb.joined_seq, c.created_at FROM members mb
             JOIN conversations c ON c.id = mb.conv_id WHERE mb.user_id = ?1",
        )?
        .query_map([user.0], |r| {
            Ok(Row {
                conv: r.get(0)?,
                kind: r.get(1)?,
                read_seq: r.get(2)?,
                joined_seq: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (peer, group) = if row.kind == KIND_GROUP {
            let Some(g) = group_summary(c, row.conv)? else {
                continue;
            };
            (None, Some(g))
        } else {
            let p = c
                .prepare_cached(
                    "SELECT u.id, u.username, mb.read_seq, mb.delivered_seq FROM members mb
                     JOIN users u ON u.id = mb.user_id WHERE mb.conv_id = ?1 AND mb.user_id != ?2",
                )?
                .query_row(params![row.conv, user.0], |r| {
                    Ok((
                        UserId(r.get(0)?),
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)? as u64,
                        r.get::<_, i64>(3)? as u64,
                    ))
                })
                .optional()?;
            let Some(p) = p else { continue };
            (Some(p), None)
        };
        // Only what the viewer may read: a group's history starts at their join.
        let last = c
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.from_id
                 WHERE m.conv_id = ?1 AND m.seq > ?2 ORDER BY m.seq DESC LIMIT 1"
            ))?
            .query_row([row.conv, row.joined_seq], |r| {
                let peer_id = peer.as_ref().map(|p| p.0);
                let group_id = group.as_ref().map(|g| g.group_id);
                message_view(r, 0, user, peer_id, group_id)
            })
            .optional()?;
        let unread: i64 = c
            .prepare_cached(
                "SELECT COUNT(*) FROM messages WHERE conv_id = ?1 AND seq > ?2 AND from_id != ?3",
            )?
            .query_row(params![row.conv, row.read_seq, user.0], |r| r.get(0))?;
        out.push(Listed {
            created_at: row.created_at,
            read_seq: row.read_seq as u64,
            peer,
            group,
            last,
            unread: unread as u64,
        });
    }
    Ok(conversation_list(out))
}
