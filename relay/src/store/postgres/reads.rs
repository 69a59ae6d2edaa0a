//! The queries behind the `Store` trait's reads, on pooled connections
//! with cached prepared statements. Pages go by `(conversation, seq)` and
//! by username, never by message id: with several relays writing, id
//! order is not commit order.

use super::conn::Pg;
use super::facts::{pair, seq, user_ref, DIRECTS};
use super::schema::{KIND_DIRECT, KIND_GROUP};
use crate::auth::TokenHash;
use crate::store::{
    addressed, like_prefix, member_page, ConvId, MemberRows, Membership, MessageRef, Position,
    StoredMessage, UserRecord, UserRef,
};
use shared::api::{GroupSummary, MemberInfo};
use shared::desk::Role;
use shared::{ChatMessage, Content, GroupId, MsgId, Target, UserId};
use tokio_postgres::{Error as PgError, Row};

type R<T> = Result<T, PgError>;

pub(super) async fn user_by_name(c: &Pg, name: &str) -> R<Option<UserRecord>> {
    let s = c
        .prepare_cached(
            r#"SELECT id, username, password_hash FROM users
               WHERE lower(username) COLLATE "C" = lower($1)"#,
        )
        .await?;
    Ok(c.query_opt(&s, &[&name]).await?.map(|r| UserRecord {
        id: UserId(r.get(0)),
        username: r.get(1),
        password_hash: r.get(2),
    }))
}

pub(super) async fn user_exists(c: &Pg, user: UserId) -> R<bool> {
    let s = c
        .prepare_cached("SELECT 1 FROM users WHERE id = $1 AND role <> 3")
        .await?;
    Ok(c.query_opt(&s, &[&user.0]).await?.is_some())
}

pub(super) async fn revoked_tokens(c: &Pg, hashes: &[TokenHash]) -> R<Vec<TokenHash>> {
    let wanted: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
    let s = c
        .prepare_cached("SELECT hash FROM tokens WHERE hash = ANY($1)")
        .await?;
    let live: std::collections::HashSet<Vec<u8>> = c
        .query(&s, &[&wanted])
        .await?
        .iter()
        .map(|r| r.get::<_, Vec<u8>>(0))
        .collect();
    Ok(hashes
        .iter()
        .filter(|h| !live.contains(&h[..]))
        .copied()
        .collect())
}

pub(super) async fn token_user(c: &Pg, hash: &[u8], now: i64) -> R<Option<(UserRef, Role)>> {
    let s = c
        .prepare_cached(
            "SELECT u.id, u.username, u.role FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.hash = $1 AND t.expires_at > $2",
        )
        .await?;
    Ok(c.query_opt(&s, &[&hash, &now])
        .await?
        .as_ref()
        .map(|r| (user_ref(r), Role::from_code(r.get::<_, i16>(2).into()))))
}

pub(super) async fn search_users(c: &Pg, prefix: &str, limit: u32) -> R<Vec<UserRef>> {
    let s = c
        .prepare_cached(
            r#"SELECT id, username FROM users WHERE lower(username) COLLATE "C" LIKE $1
                 AND role <> 3
               ORDER BY lower(username) COLLATE "C" LIMIT $2"#,
        )
        .await?;
    let pattern = like_prefix(&prefix.to_ascii_lowercase());
    let rows = c.query(&s, &[&pattern, &i64::from(limit)]).await?;
    Ok(rows.iter().map(user_ref).collect())
}

pub(super) async fn contacts(c: &Pg, user: UserId, group_limit: u32) -> R<Vec<UserRef>> {
    let s = c
        .prepare_cached(
            "SELECT DISTINCT u.id, u.username
             FROM members me
             JOIN conversations c ON c.id = me.conv_id
             JOIN members other ON other.conv_id = me.conv_id AND other.user_id <> me.user_id
             JOIN users u ON u.id = other.user_id
             WHERE me.user_id = $1
               AND (c.kind = $2 OR (SELECT count(*) FROM members x WHERE x.conv_id = c.id) <= $3)",
        )
        .await?;
    let rows = c
        .query(&s, &[&user.0, &KIND_DIRECT, &i64::from(group_limit)])
        .await?;
    Ok(rows.iter().map(user_ref).collect())
}

pub(super) async fn positions(c: &Pg, user: UserId) -> R<Vec<Position>> {
    let s = c
        .prepare_cached(
            "SELECT mb.conv_id, mb.delivered_seq, c.last_seq
             FROM members mb JOIN conversations c ON c.id = mb.conv_id WHERE mb.user_id = $1",
        )
        .await?;
    let rows = c.query(&s, &[&user.0]).await?;
    Ok(rows
        .iter()
        .map(|r| Position {
            conv: r.get(0),
            delivered: seq(r.get(1)),
            last: seq(r.get(2)),
        })
        .collect())
}

/// The columns [`stored`] reads, from `messages m`, `users u` and
/// `conversations c`.
const STORED_COLUMNS: &str = "m.conv_id, m.seq, m.msg_id, m.from_id,
     CASE WHEN u.role = 3 THEN coalesce((SELECT v.name FROM visitors v WHERE v.user_id = u.id), 'Visitor') ELSE u.username END,
     m.client_msg_id, m.content_type, m.body, m.ts, c.kind";

/// A message pushed to `user`: a one-to-one message is "to" them.
fn stored(r: &Row, user: UserId) -> StoredMessage {
    let conv: ConvId = r.get(0);
    let kind: i16 = r.get(9);
    StoredMessage {
        conv,
        seq: seq(r.get(1)),
        msg_id: r.get(2),
        from: UserId(r.get(3)),
        from_name: r.get::<_, String>(4).into(),
        client_msg_id: r.get(5),
        content: content(r, 6),
        ts: r.get(8),
        to: if kind == KIND_GROUP {
            Target::Group(GroupId(conv))
        } else {
            Target::User(user)
        },
    }
}

/// Content from its type and body, at columns `at` and `at + 1`.
fn content(r: &Row, at: usize) -> Content {
    Content {
        content_type: u16::try_from(r.get::<_, i32>(at)).unwrap_or_default(),
        body: r.get(at + 1),
    }
}

pub(super) async fn pending(
    c: &Pg,
    user: UserId,
    after: Option<(ConvId, u64)>,
    limit: u32,
) -> R<Vec<StoredMessage>> {
    let (conv, after_seq) = after.unwrap_or((i64::MIN, 0));
    let s = c
        .prepare_cached(&format!(
            "SELECT {STORED_COLUMNS}
             FROM members mb
             JOIN messages m ON m.conv_id = mb.conv_id AND m.seq > mb.delivered_seq
             JOIN users u ON u.id = m.from_id
             JOIN conversations c ON c.id = mb.conv_id
             WHERE mb.user_id = $1 AND m.from_id <> $1 AND (m.conv_id, m.seq) > ($2, $3)
             ORDER BY m.conv_id, m.seq LIMIT $4"
        ))
        .await?;
    let rows = c
        .query(
            &s,
            &[&user.0, &conv, &(after_seq as i64), &i64::from(limit)],
        )
        .await?;
    Ok(rows.iter().map(|r| stored(r, user)).collect())
}

pub(super) async fn range(
    c: &Pg,
    user: UserId,
    conv: ConvId,
    after: u64,
    before: u64,
) -> R<Vec<StoredMessage>> {
    let s = c
        .prepare_cached(&format!(
            "SELECT {STORED_COLUMNS}
             FROM members mb
             JOIN messages m ON m.conv_id = mb.conv_id AND m.seq > mb.joined_seq
             JOIN users u ON u.id = m.from_id
             JOIN conversations c ON c.id = mb.conv_id
             WHERE mb.user_id = $1 AND mb.conv_id = $2 AND m.from_id <> $1
               AND m.seq > $3 AND m.seq < $4
             ORDER BY m.seq"
        ))
        .await?;
    let before = before.min(i64::MAX as u64) as i64;
    let rows = c
        .query(&s, &[&user.0, &conv, &(after as i64), &before])
        .await?;
    Ok(rows.iter().map(|r| stored(r, user)).collect())
}

pub(super) async fn message_for(c: &Pg, user: UserId, msg_id: MsgId) -> R<Option<MessageRef>> {
    let s = c
        .prepare_cached(
            "SELECT m.conv_id, m.seq, m.from_id FROM messages m
             JOIN members mb ON mb.conv_id = m.conv_id AND mb.user_id = $2
             WHERE m.msg_id = $1",
        )
        .await?;
    Ok(c.query_opt(&s, &[&msg_id, &user.0])
        .await?
        .map(|r| MessageRef {
            conv: r.get(0),
            seq: seq(r.get(1)),
            from: UserId(r.get(2)),
        }))
}

/// The columns [`message_view`] reads.
/// A message's columns; the sender's name is a visitor's given name (their
/// username is internal), a user's username otherwise.
pub(super) const MESSAGE_COLUMNS: &str =
    "m.seq, m.msg_id, m.from_id,
     CASE WHEN u.role = 3 THEN coalesce((SELECT v.name FROM visitors v WHERE v.user_id = u.id), 'Visitor') ELSE u.username END,
     m.client_msg_id, m.content_type, m.body, m.ts";

/// A message row of [`MESSAGE_COLUMNS`] (from column `at`), named as the
/// viewer sees it.
pub(super) fn message_view(
    r: &Row,
    at: usize,
    viewer: UserId,
    peer: Option<UserId>,
    group: Option<GroupId>,
) -> ChatMessage {
    let from = UserId(r.get(at + 2));
    ChatMessage {
        seq: seq(r.get(at)),
        msg_id: r.get(at + 1),
        from_id: from,
        from_name: r.get(at + 3),
        client_msg_id: r.get(at + 4),
        content: content(r, at + 5),
        ts: r.get(at + 7),
        to: addressed(viewer, from, peer, group),
    }
}

/// How `viewer` names conversation `conv`: its group, or the other user.
async fn naming(c: &Pg, viewer: UserId, conv: ConvId) -> R<(Option<UserId>, Option<GroupId>)> {
    let s = c
        .prepare_cached(
            "SELECT c.kind, (SELECT mb.user_id FROM members mb
                             WHERE mb.conv_id = c.id AND mb.user_id <> $2 LIMIT 1)
             FROM conversations c WHERE c.id = $1",
        )
        .await?;
    let row = c.query_opt(&s, &[&conv, &viewer.0]).await?;
    Ok(match row {
        Some(r) if r.get::<_, i16>(0) == KIND_GROUP => (None, Some(GroupId(conv))),
        Some(r) => (r.get::<_, Option<i64>>(1).map(UserId), None),
        None => (None, None),
    })
}

pub(super) async fn messages(
    c: &Pg,
    viewer: UserId,
    conv: ConvId,
    after: u64,
    before: u64,
    limit: u32,
) -> R<(Vec<ChatMessage>, bool)> {
    let s = c
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.from_id
             WHERE m.conv_id = $1 AND m.seq > $2 AND m.seq < $3 ORDER BY m.seq DESC LIMIT $4"
        ))
        .await?;
    let before = before.min(i64::MAX as u64) as i64;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&conv, &(after as i64), &before, &(i64::from(limit) + 1)];
    let ((peer, group), rows) =
        futures_util::try_join!(naming(c, viewer, conv), c.query(&s, &params))?;
    let mut out: Vec<ChatMessage> = rows
        .iter()
        .map(|r| message_view(r, 0, viewer, peer, group))
        .collect();
    let more = out.len() > limit as usize;
    out.truncate(limit as usize);
    Ok((out, more))
}

pub(super) async fn read_cursors(c: &Pg, conv: ConvId, except: UserId) -> R<Vec<(u64, u64)>> {
    let s = c
        .prepare_cached(
            "SELECT joined_seq, read_seq FROM members WHERE conv_id = $1 AND user_id <> $2",
        )
        .await?;
    let rows = c.query(&s, &[&conv, &except.0]).await?;
    Ok(rows
        .iter()
        .map(|r| (seq(r.get(0)), seq(r.get(1))))
        .collect())
}

/// The columns [`summary`] reads, from `conversations c`.
pub(super) const SUMMARY_COLUMNS: &str = "c.id, c.name, c.owner_id, c.is_public,
     (SELECT count(*) FROM members x WHERE x.conv_id = c.id)";

/// A group's summary from [`SUMMARY_COLUMNS`] (from column `at`).
pub(super) fn summary(r: &Row, at: usize) -> GroupSummary {
    GroupSummary {
        group_id: GroupId(r.get(at)),
        name: r.get::<_, Option<String>>(at + 1).unwrap_or_default(),
        owner_id: UserId(r.get::<_, Option<i64>>(at + 2).unwrap_or(0)),
        public: r.get(at + 3),
        member_count: r.get::<_, i64>(at + 4) as u32,
    }
}

pub(super) async fn group_summary(c: &Pg, id: ConvId) -> R<Option<GroupSummary>> {
    let s = c
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM conversations c WHERE c.id = $1 AND c.kind = $2"
        ))
        .await?;
    Ok(c.query_opt(&s, &[&id, &KIND_GROUP])
        .await?
        .map(|r| summary(&r, 0)))
}

pub(super) async fn group_members_page(
    c: &Pg,
    group: GroupId,
    after: Option<&str>,
    limit: u32,
) -> R<MemberRows> {
    let s = c
        .prepare_cached(
            r#"SELECT mb.user_id, u.username, mb.read_seq, mb.delivered_seq,
                      mb.user_id = c.owner_id
               FROM members mb
               JOIN users u ON u.id = mb.user_id
               JOIN conversations c ON c.id = mb.conv_id
               WHERE mb.conv_id = $1 AND lower(u.username) COLLATE "C" > lower($2)
               ORDER BY lower(u.username) COLLATE "C" LIMIT $3"#,
        )
        .await?;
    let rows = c
        .query(
            &s,
            &[&group.0, &after.unwrap_or(""), &(i64::from(limit) + 1)],
        )
        .await?;
    let members = rows
        .iter()
        .map(|r| MemberInfo {
            user_id: UserId(r.get(0)),
            username: r.get(1),
            owner: r.get::<_, Option<bool>>(4).unwrap_or(false),
            read_seq: seq(r.get(2)),
            delivered_seq: seq(r.get(3)),
            online: false,
        })
        .collect();
    Ok(member_page(members, limit))
}

pub(super) async fn search_groups(c: &Pg, prefix: &str, limit: u32) -> R<Vec<GroupSummary>> {
    let s = c
        .prepare_cached(&format!(
            r#"SELECT {SUMMARY_COLUMNS} FROM conversations c
               WHERE c.kind = $1 AND c.is_public AND lower(c.name) COLLATE "C" LIKE $2
               ORDER BY lower(c.name) COLLATE "C" LIMIT $3"#
        ))
        .await?;
    let pattern = like_prefix(&prefix.to_lowercase());
    let rows = c
        .query(&s, &[&KIND_GROUP, &pattern, &i64::from(limit)])
        .await?;
    Ok(rows.iter().map(|r| summary(r, 0)).collect())
}

pub(super) async fn small_group_members(
    c: &Pg,
    group: GroupId,
    cap: u32,
) -> R<Option<Vec<UserId>>> {
    let s = c
        .prepare_cached(
            "SELECT mb.user_id FROM members mb JOIN conversations c ON c.id = mb.conv_id
             WHERE mb.conv_id = $1 AND c.kind = $2 LIMIT $3",
        )
        .await?;
    let rows = c
        .query(&s, &[&group.0, &KIND_GROUP, &(i64::from(cap) + 1)])
        .await?;
    let ids: Vec<UserId> = rows.iter().map(|r| UserId(r.get(0))).collect();
    Ok((!ids.is_empty() && ids.len() <= cap as usize).then_some(ids))
}

/// `user`'s membership of a pair's conversation or a group.
pub(super) async fn membership(c: &Pg, user: UserId, to: Target) -> R<Option<Membership>> {
    let conv = match to {
        Target::User(peer) => {
            let (lo, hi) = pair(user, peer);
            let s = c.prepare_cached(DIRECTS).await?;
            match c.query_opt(&s, &[&vec![lo], &vec![hi]]).await? {
                Some(r) => r.get::<_, ConvId>(2),
                None => return Ok(None),
            }
        }
        Target::Group(g) => g.0,
    };
    let s = c
        .prepare_cached(
            "SELECT mb.joined_seq, mb.read_seq FROM members mb
             JOIN conversations c ON c.id = mb.conv_id
             WHERE mb.conv_id = $1 AND mb.user_id = $2 AND ($3 OR c.kind = $4)",
        )
        .await?;
    let any_kind = matches!(to, Target::User(_));
    Ok(c.query_opt(&s, &[&conv, &user.0, &any_kind, &KIND_GROUP])
        .await?
        .map(|r| Membership {
            conv,
            joined: seq(r.get(0)),
            read: seq(r.get(1)),
        }))
}
