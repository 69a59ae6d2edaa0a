//! Bots on PostgreSQL: accounts, webhooks and the webhook outbox, shared
//! by every relay of a cluster. Outbox rows are written by the chat
//! writer ([`OUTBOX`], in its transaction); claims take an advisory
//! transaction lock ([`CLAIM_LOCK`]) so the per-bot limit holds across
//! relays, and lock their rows `FOR UPDATE SKIP LOCKED` with a lease.

use super::conn::{pg_error, Pg};
use super::facts::user_ref;
use super::schema::KIND_GROUP;
use crate::auth::TokenHash;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::store::bots::{BOT_TOKEN_EXPIRES_AT, OUTBOX_FAILED, OUTBOX_PENDING};
use crate::store::{BotInfo, Claim, Delivery, DeliveryEnd, UserRef, Webhook};
use shared::desk::Role;
use shared::{ChatMessage, Content, GroupId, Target, UserId};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Error as PgError, Row};

type R<T> = std::result::Result<T, PgError>;

/// The advisory lock claims run under ("ferrobot" in ASCII).
const CLAIM_LOCK: i64 = 0x6665_7272_6f62_6f74;

/// One outbox row per bot with a webhook in each new message's
/// conversation, but its sender; `$1`/`$2` are the messages'
/// conversations and `seq`s.
pub(super) const OUTBOX: &str =
    "INSERT INTO webhook_outbox (bot_id, conv_id, seq, next_at, created_at)
     SELECT b.user_id, m.conv_id, m.seq, m.ts, m.ts
     FROM unnest($1::int8[], $2::int8[]) AS v(conv, seq)
     JOIN messages m ON m.conv_id = v.conv AND m.seq = v.seq
     JOIN members mb ON mb.conv_id = m.conv_id
     JOIN bots b ON b.user_id = mb.user_id
     WHERE b.webhook_url IS NOT NULL AND b.user_id <> m.from_id
     ON CONFLICT DO NOTHING";

fn split(w: Option<Webhook>) -> (Option<String>, Option<String>) {
    w.map_or((None, None), |w| (Some(w.url), Some(w.secret)))
}

/// Creates a bot, its first token and its webhook in one statement (not
/// tried twice: a first try that committed would make the second say
/// "taken").
pub(super) async fn create_bot(
    c: &Pg,
    username: &str,
    token: &TokenHash,
    webhook: Option<Webhook>,
) -> Result<UserId> {
    let s = c
        .prepare_cached(
            "WITH u AS (
                 INSERT INTO users (username, password_hash, created_at, role)
                 VALUES ($1, '', $2, $3) RETURNING id
             ), b AS (
                 INSERT INTO bots (user_id, webhook_url, secret, created_at)
                 SELECT id, $4, $5, $2 FROM u
             )
             INSERT INTO tokens (hash, user_id, created_at, expires_at)
             SELECT $6, id, $2, $7 FROM u RETURNING user_id",
        )
        .await
        .map_err(pg_error)?;
    let (url, secret) = split(webhook);
    let args: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &username,
        &now_ms(),
        &Role::Bot.code(),
        &url,
        &secret,
        &&token[..],
        &BOT_TOKEN_EXPIRES_AT,
    ];
    match c.query_one(&s, &args).await {
        Ok(row) => Ok(UserId(row.get(0))),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(Error::UsernameTaken),
        Err(e) => Err(pg_error(e)),
    }
}

/// Sets or removes a webhook; removing gives up what was pending. Safe to
/// run twice.
pub(super) async fn set_webhook(c: &Pg, bot: UserId, webhook: Option<Webhook>) -> R<()> {
    let removed = webhook.is_none();
    let (url, secret) = split(webhook);
    let s = c
        .prepare_cached("UPDATE bots SET webhook_url = $2, secret = $3 WHERE user_id = $1")
        .await?;
    c.execute(&s, &[&bot.0, &url, &secret]).await?;
    if removed {
        let s = c
            .prepare_cached(
                "UPDATE webhook_outbox SET state = $2, last_error = 'webhook removed'
                 WHERE bot_id = $1 AND state = $3",
            )
            .await?;
        c.execute(&s, &[&bot.0, &OUTBOX_FAILED, &OUTBOX_PENDING])
            .await?;
    }
    Ok(())
}

/// Deletes a user's tokens.
pub(super) async fn revoke_tokens(c: &Pg, user: UserId) -> R<u64> {
    let s = c
        .prepare_cached("DELETE FROM tokens WHERE user_id = $1")
        .await?;
    c.execute(&s, &[&user.0]).await
}

/// When the earliest pending row that no live lease holds is due: the
/// dispatcher's plain read before it claims (no transaction, no lock).
/// Walks `webhook_outbox_due` in order and stops at the first row not
/// leased: one index probe when nothing is pending.
pub(super) async fn next_due(c: &Pg, now: i64) -> R<Option<i64>> {
    let s = c
        .prepare_cached(
            "SELECT next_at FROM webhook_outbox
             WHERE state = 0 AND (claimed_until IS NULL OR claimed_until <= $1)
             ORDER BY next_at LIMIT 1",
        )
        .await?;
    Ok(c.query_opt(&s, &[&now]).await?.map(|r| r.get(0)))
}

const PICK: &str = "SELECT id FROM webhook_outbox WHERE id IN (
         SELECT d.id FROM (
             SELECT o.id, o.bot_id,
                    ROW_NUMBER() OVER (PARTITION BY o.bot_id ORDER BY o.id) AS rn
             FROM webhook_outbox o
             WHERE o.state = 0 AND o.next_at <= $1
               AND (o.claimed_until IS NULL OR o.claimed_until <= $1)
         ) d
         WHERE d.rn + (SELECT COUNT(*) FROM webhook_outbox b
                       WHERE b.bot_id = d.bot_id AND b.state = 0
                         AND b.claimed_until > $1) <= $2
         ORDER BY d.id LIMIT $3
     ) FOR UPDATE SKIP LOCKED";

const DETAILS: &str = "SELECT o.bot_id, bu.username, b.webhook_url, b.secret, o.attempts,
            o.created_at, m.conv_id, m.seq, m.msg_id, m.from_id, fu.username, fu.role,
            m.client_msg_id, m.content_type, m.body, m.ts, cv.kind, o.id
     FROM webhook_outbox o
     JOIN bots b ON b.user_id = o.bot_id
     JOIN users bu ON bu.id = o.bot_id
     JOIN messages m ON m.conv_id = o.conv_id AND m.seq = o.seq
     JOIN users fu ON fu.id = m.from_id
     JOIN conversations cv ON cv.id = m.conv_id
     WHERE o.id = ANY($1::int8[]) ORDER BY o.id";

/// Claims due rows in one transaction (see the module doc).
pub(super) async fn claim(c: &mut deadpool_postgres::Object, claim: Claim) -> R<Vec<Delivery>> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK])
        .await?;
    let pick = tx.prepare_cached(PICK).await?;
    let ids: Vec<i64> = tx
        .query(
            &pick,
            &[
                &claim.now,
                &i64::from(claim.per_bot),
                &i64::from(claim.limit),
            ],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let lease = tx
        .prepare_cached(
            "UPDATE webhook_outbox SET claimed_until = $2, attempts = attempts + 1
             WHERE id = ANY($1::int8[])",
        )
        .await?;
    tx.execute(&lease, &[&ids, &claim.lease_until]).await?;
    let details = tx.prepare_cached(DETAILS).await?;
    let rows = tx.query(&details, &[&ids]).await?;
    tx.commit().await?;
    Ok(rows.iter().map(delivery).collect())
}

fn delivery(r: &Row) -> Delivery {
    let bot = user_ref(r);
    let url: Option<String> = r.get(2);
    let secret: Option<String> = r.get(3);
    let conv: i64 = r.get(6);
    let kind: i16 = r.get(16);
    Delivery {
        id: r.get(17),
        webhook: url.zip(secret).map(|(url, secret)| Webhook { url, secret }),
        attempts: r.get::<_, i32>(4) as u32,
        created_at: r.get(5),
        message: ChatMessage {
            msg_id: r.get(8),
            from_id: UserId(r.get(9)),
            from_name: r.get(10),
            to: if kind == KIND_GROUP {
                Target::Group(GroupId(conv))
            } else {
                Target::User(bot.id)
            },
            content: Content {
                content_type: r.get::<_, i32>(13) as u16,
                body: r.get(14),
            },
            ts: r.get(15),
            seq: r.get::<_, i64>(7) as u64,
            client_msg_id: r.get(12),
        },
        from_role: Role::from_code(r.get::<_, i16>(11).into()),
        bot,
    }
}

/// Records how a delivery ended (safe to run twice).
pub(super) async fn finish(c: &Pg, id: i64, end: &DeliveryEnd) -> R<()> {
    match end {
        DeliveryEnd::Delivered => {
            let s = c
                .prepare_cached("DELETE FROM webhook_outbox WHERE id = $1")
                .await?;
            c.execute(&s, &[&id]).await?;
        }
        DeliveryEnd::Retry { at, error } => {
            let s = c
                .prepare_cached(
                    "UPDATE webhook_outbox SET next_at = $2, last_error = $3, claimed_until = NULL
                     WHERE id = $1",
                )
                .await?;
            c.execute(&s, &[&id, at, error]).await?;
        }
        DeliveryEnd::Failed { error } => {
            let s = c
                .prepare_cached(
                    "UPDATE webhook_outbox SET state = $2, last_error = $3, claimed_until = NULL
                     WHERE id = $1",
                )
                .await?;
            c.execute(&s, &[&id, &OUTBOX_FAILED, error]).await?;
        }
    }
    Ok(())
}

/// The bots, by username.
pub(super) async fn list(c: &Pg) -> R<Vec<BotInfo>> {
    let s = c
        .prepare_cached(
            r#"SELECT u.id, u.username, b.webhook_url,
                   (SELECT COUNT(*) FROM tokens t WHERE t.user_id = u.id),
                   (SELECT COUNT(*) FROM webhook_outbox o WHERE o.bot_id = u.id AND o.state = 0),
                   (SELECT COUNT(*) FROM webhook_outbox o WHERE o.bot_id = u.id AND o.state = 2),
                   (SELECT o.last_error FROM webhook_outbox o
                    WHERE o.bot_id = u.id AND o.last_error IS NOT NULL ORDER BY o.id DESC LIMIT 1)
               FROM users u JOIN bots b ON b.user_id = u.id
               ORDER BY lower(u.username) COLLATE "C""#,
        )
        .await?;
    Ok(c.query(&s, &[])
        .await?
        .iter()
        .map(|r| BotInfo {
            bot: UserRef {
                id: UserId(r.get(0)),
                username: r.get(1),
            },
            webhook: r.get(2),
            tokens: r.get::<_, i64>(3) as u64,
            pending: r.get::<_, i64>(4) as u64,
            failed: r.get::<_, i64>(5) as u64,
            last_error: r.get(6),
        })
        .collect())
}
