//! Bots on SQLite: accounts, webhooks and the webhook outbox. Writes
//! (claims included: they move leases) are indexer tasks; the list is a
//! read. Outbox rows are written with their message (`outbox_for`, called
//! by `recovery::insert_message`, in the indexer's transaction and in the
//! commit log's replay alike).

use super::facts::{user_ref, uuid_from_blob};
use super::indexer::is_unique_violation;
use super::schema::KIND_GROUP;
use super::tasks::{job, Task};
use crate::auth::TokenHash;
use crate::error::Error;
use crate::store::bots::{BOT_TOKEN_EXPIRES_AT, OUTBOX_FAILED, OUTBOX_PENDING};
use crate::store::{BotInfo, Claim, Delivery, DeliveryEnd, Reply, UserRef, Webhook};
use rusqlite::{params, Connection, OptionalExtension};
use shared::desk::Role;
use shared::{ChatMessage, Content, GroupId, Target, UserId};

/// Queues a delivery of message `(conv, seq)` from `from` for every bot
/// with a webhook in the conversation but the sender; how many rows that
/// made. Replays repeat it harmlessly (one row per bot and message).
pub(super) fn outbox_for(
    c: &Connection,
    conv: i64,
    seq: u64,
    from: UserId,
    ts: i64,
) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "INSERT OR IGNORE INTO webhook_outbox (bot_id, conv_id, seq, next_at, created_at)
         SELECT b.user_id, ?1, ?2, ?3, ?3 FROM bots b
         JOIN members mb ON mb.conv_id = ?1 AND mb.user_id = b.user_id
         WHERE b.webhook_url IS NOT NULL AND b.user_id <> ?4",
    )?
    .execute(params![conv, seq as i64, ts, from.0])
}

/// Creates a bot, its first token and its webhook.
pub(super) fn create_bot(
    username: String,
    token: TokenHash,
    webhook: Option<Webhook>,
    reply: Reply<UserId>,
) -> Box<dyn Task> {
    job(reply, move |ix, now| {
        let r = ix
            .conn
            .prepare_cached(
                "INSERT INTO users (username, password_hash, created_at, role)
                 VALUES (?1, '', ?2, ?3)",
            )?
            .execute(params![username, now, Role::Bot.code()]);
        match r {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(Err(Error::UsernameTaken)),
            Err(e) => return Err(e),
        }
        let id = ix.conn.last_insert_rowid();
        let (url, secret) = split(webhook.clone());
        ix.conn
            .prepare_cached(
                "INSERT INTO bots (user_id, webhook_url, secret, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, url, secret, now])?;
        ix.conn
            .prepare_cached(
                "INSERT INTO tokens (hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![&token[..], id, now, BOT_TOKEN_EXPIRES_AT])?;
        Ok(Ok(UserId(id)))
    })
}

fn split(w: Option<Webhook>) -> (Option<String>, Option<String>) {
    w.map_or((None, None), |w| (Some(w.url), Some(w.secret)))
}

/// Sets or removes a webhook; removing gives up what was pending.
pub(super) fn set_webhook(
    bot: UserId,
    webhook: Option<Webhook>,
    reply: Reply<()>,
) -> Box<dyn Task> {
    job(reply, move |ix, _| {
        let removed = webhook.is_none();
        let (url, secret) = split(webhook.clone());
        ix.conn
            .prepare_cached("UPDATE bots SET webhook_url = ?2, secret = ?3 WHERE user_id = ?1")?
            .execute(params![bot.0, url, secret])?;
        if removed {
            ix.conn
                .prepare_cached(
                    "UPDATE webhook_outbox SET state = ?2, last_error = 'webhook removed'
                     WHERE bot_id = ?1 AND state = ?3",
                )?
                .execute(params![bot.0, OUTBOX_FAILED, OUTBOX_PENDING])?;
        }
        Ok(Ok(()))
    })
}

/// Deletes a user's tokens.
pub(super) fn revoke_tokens(user: UserId, reply: Reply<u64>) -> Box<dyn Task> {
    job(reply, move |ix, _| {
        let n = ix
            .conn
            .prepare_cached("DELETE FROM tokens WHERE user_id = ?1")?
            .execute([user.0])?;
        Ok(Ok(n as u64))
    })
}

/// Claims due rows: at most `per_bot` in flight per bot, counting live
/// leases.
pub(super) fn claim(claim: Claim, reply: Reply<Vec<Delivery>>) -> Box<dyn Task> {
    job(reply, move |ix, _| {
        let ids: Vec<i64> = {
            let mut stmt = ix.conn.prepare_cached(
                "UPDATE webhook_outbox SET claimed_until = ?2, attempts = attempts + 1
                 WHERE id IN (
                     SELECT d.id FROM (
                         SELECT o.id, o.bot_id,
                                ROW_NUMBER() OVER (PARTITION BY o.bot_id ORDER BY o.id) AS rn
                         FROM webhook_outbox o
                         WHERE o.state = 0 AND o.next_at <= ?1
                           AND (o.claimed_until IS NULL OR o.claimed_until <= ?1)
                     ) d
                     WHERE d.rn + (SELECT COUNT(*) FROM webhook_outbox b
                                   WHERE b.bot_id = d.bot_id AND b.state = 0
                                     AND b.claimed_until > ?1) <= ?3
                     ORDER BY d.id LIMIT ?4
                 )
                 RETURNING id",
            )?;
            let rows = stmt.query_map(
                params![claim.now, claim.lease_until, claim.per_bot, claim.limit],
                |r| r.get(0),
            )?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(d) = delivery(&ix.conn, id)? {
                out.push(d);
            }
        }
        Ok(Ok(out))
    })
}

fn delivery(c: &Connection, id: i64) -> rusqlite::Result<Option<Delivery>> {
    c.prepare_cached(
        "SELECT o.bot_id, bu.username, b.webhook_url, b.secret, o.attempts, o.created_at,
                m.conv_id, m.seq, m.msg_id, m.from_id, fu.username, fu.role,
                m.client_msg_id, m.content_type, m.body, m.ts, cv.kind
         FROM webhook_outbox o
         JOIN bots b ON b.user_id = o.bot_id
         JOIN users bu ON bu.id = o.bot_id
         JOIN messages m ON m.conv_id = o.conv_id AND m.seq = o.seq
         JOIN users fu ON fu.id = m.from_id
         JOIN conversations cv ON cv.id = m.conv_id
         WHERE o.id = ?1",
    )?
    .query_row([id], |r| {
        let bot = user_ref(r)?;
        let url: Option<String> = r.get(2)?;
        let secret: Option<String> = r.get(3)?;
        let conv: i64 = r.get(6)?;
        let kind: i64 = r.get(16)?;
        Ok(Delivery {
            id,
            webhook: url.zip(secret).map(|(url, secret)| Webhook { url, secret }),
            attempts: r.get::<_, i64>(4)? as u32,
            created_at: r.get(5)?,
            message: ChatMessage {
                msg_id: uuid_from_blob(r.get(8)?)?,
                from_id: UserId(r.get(9)?),
                from_name: r.get(10)?,
                to: if kind == KIND_GROUP {
                    Target::Group(GroupId(conv))
                } else {
                    Target::User(bot.id)
                },
                content: Content {
                    content_type: r.get(13)?,
                    body: r.get(14)?,
                },
                ts: r.get(15)?,
                seq: r.get::<_, i64>(7)? as u64,
                client_msg_id: r.get(12)?,
            },
            from_role: Role::from_code(r.get(11)?),
            bot,
        })
    })
    .optional()
}

/// When the earliest pending row that no live lease holds is due: the
/// dispatcher's read before it claims. Walks `webhook_outbox_due` (pending
/// rows by `next_at`) from its start and stops at the first row not
/// leased, so it costs one index probe when nothing is pending and at most
/// the rows in flight otherwise. `state = 0` is spelled out for the
/// partial index to apply.
pub(super) fn next_due(c: &Connection, now: i64) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached(
        "SELECT next_at FROM webhook_outbox INDEXED BY webhook_outbox_due
         WHERE state = 0 AND (claimed_until IS NULL OR claimed_until <= ?1)
         ORDER BY next_at LIMIT 1",
    )?
    .query_row([now], |r| r.get(0))
    .optional()
}

/// Records how a delivery ended.
pub(super) fn finish(id: i64, end: DeliveryEnd, reply: Reply<()>) -> Box<dyn Task> {
    job(reply, move |ix, _| {
        match &end {
            DeliveryEnd::Delivered => ix
                .conn
                .prepare_cached("DELETE FROM webhook_outbox WHERE id = ?1")?
                .execute([id])?,
            DeliveryEnd::Retry { at, error } => ix
                .conn
                .prepare_cached(
                    "UPDATE webhook_outbox SET next_at = ?2, last_error = ?3, claimed_until = NULL
                     WHERE id = ?1",
                )?
                .execute(params![id, at, error])?,
            DeliveryEnd::Failed { error } => ix
                .conn
                .prepare_cached(
                    "UPDATE webhook_outbox SET state = ?2, last_error = ?3, claimed_until = NULL
                     WHERE id = ?1",
                )?
                .execute(params![id, OUTBOX_FAILED, error])?,
        };
        Ok(Ok(()))
    })
}

/// Releases every lease: on SQLite only this process delivers, so a lease
/// left in the file was its previous run's, which died.
pub(super) fn release_leases(c: &Connection) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE webhook_outbox SET claimed_until = NULL WHERE claimed_until IS NOT NULL",
        [],
    )?;
    Ok(())
}

/// The bots, by username.
pub(super) fn list(c: &Connection) -> rusqlite::Result<Vec<BotInfo>> {
    let mut stmt = c.prepare_cached(
        "SELECT u.id, u.username, b.webhook_url,
                (SELECT COUNT(*) FROM tokens t WHERE t.user_id = u.id),
                (SELECT COUNT(*) FROM webhook_outbox o WHERE o.bot_id = u.id AND o.state = 0),
                (SELECT COUNT(*) FROM webhook_outbox o WHERE o.bot_id = u.id AND o.state = 2),
                (SELECT o.last_error FROM webhook_outbox o
                 WHERE o.bot_id = u.id AND o.last_error IS NOT NULL ORDER BY o.id DESC LIMIT 1)
         FROM users u JOIN bots b ON b.user_id = u.id
         ORDER BY u.username COLLATE NOCASE",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(BotInfo {
            bot: UserRef {
                id: UserId(r.get(0)?),
                username: r.get(1)?,
            },
            webhook: r.get(2)?,
            tokens: r.get::<_, i64>(3)? as u64,
            pending: r.get::<_, i64>(4)? as u64,
            failed: r.get::<_, i64>(5)? as u64,
            last_error: r.get(6)?,
        })
    })?;
    rows.collect()
}
