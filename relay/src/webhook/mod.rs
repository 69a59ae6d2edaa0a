//! Bots' outgoing webhooks. Every message to a bot, or in a group with a
//! bot, that has a webhook gets an outbox row in the transaction that
//! stores it (`store::bots`). This relay's dispatcher claims due rows with
//! a lease (several relays of a cluster never hold the same row; at most
//! `--webhook-concurrency` are in flight per webhook across all of them),
//! POSTs each as a [`WebhookEvent`], signed (`sign.rs`), to an address
//! that passed the private-range check (`target.rs`), and then:
//! - a 2xx deletes the row; if its body is `{"reply": {...}}`, the reply
//!   is posted back from the bot into the same conversation, with a
//!   `clientMsgId` derived from the delivered message (a redelivery never
//!   posts twice; a bot's message gets no reply, so bots cannot loop);
//! - anything else (a status, a timeout, a refused connection) schedules
//!   a retry with exponential backoff and jitter, until
//!   `--webhook-max-age` after the message, when the row is marked failed
//!   with its last error (`admin list-bots` shows it). A refused address
//!   fails at once.
//!
//! Rows survive a restart: a lease left by a relay that died runs out (on
//! SQLite, where one relay owns the file, the next start releases it).
//!
//! An idle dispatcher writes nothing: before a claim (a write: on SQLite a
//! transaction through the indexer) it reads when the earliest unleased
//! pending row is due (`Store::next_delivery_at`, one index probe on the
//! readers), and claims only if one is due now. It looks when the store
//! says this relay queued deliveries (after the commit that wrote them),
//! when one of its deliveries ends (a slot and the bot's share are free),
//! when the earliest row it saw falls due, and every [`POLL`] otherwise
//! (rows queued by the other relays of a cluster, leases that lapsed).

mod post;
mod sign;
mod target;

pub use sign::{hmac_sha256, new_secret, signature};
pub use target::{is_private, Target};

use crate::clock::now_ms;
use crate::error::Error;
use crate::store::{Claim, Delivery, DeliveryEnd, NewChat};
use crate::App;
use bytes::Bytes;
use shared::bots::{reply_key, BotRef, WebhookAnswer, WebhookEvent};
use shared::desk::Role;
use shared::{validate, Target as To};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often the outbox is read when nothing woke the dispatcher sooner.
const POLL: Duration = Duration::from_secs(1);
/// Most deliveries in flight on this relay, all webhooks together.
const IN_FLIGHT: usize = 64;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Starts this relay's dispatcher.
pub fn start(app: Arc<App>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let wake = app.store.deliveries_queued();
        let mut next = Instant::now();
        loop {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep_until(next) => {}
            }
            next = Instant::now() + POLL;
            let free = slots.available_permits();
            if free == 0 || app.is_shutting_down() {
                continue;
            }
            let now = now_ms();
            match app.store.next_delivery_at(now).await {
                Ok(Some(at)) if at <= now => {}
                Ok(Some(at)) => {
                    let wait = Duration::from_millis((at - now) as u64);
                    next = next.min(Instant::now() + wait);
                    continue;
                }
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the webhook outbox");
                    continue;
                }
            }
            // A lease outlives the delivery's own deadline.
            let lease = app.config.webhook_timeout + Duration::from_secs(10);
            let claim = Claim {
                now,
                lease_until: now + lease.as_millis() as i64,
                per_bot: app.config.webhook_concurrency,
                limit: free as u32,
            };
            let claimed = match app.store.claim_deliveries(claim).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim webhook deliveries");
                    continue;
                }
            };
            for d in claimed {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    break; // cannot happen: at most `free` were claimed
                };
                let (app, wake) = (app.clone(), wake.clone());
                tokio::spawn(async move {
                    let id = d.id;
                    let end = deliver(&app, d).await;
                    let m = &app.metrics;
                    match end {
                        DeliveryEnd::Delivered => &m.webhook_delivered_total,
                        DeliveryEnd::Retry { .. } => &m.webhook_retries_total,
                        DeliveryEnd::Failed { .. } => &m.webhook_given_up_total,
                    }
                    .fetch_add(1, Relaxed);
                    if let Err(e) = app.store.finish_delivery(id, end).await {
                        tracing::warn!(error = %e, id, "could not record a webhook delivery (its lease will run out)");
                    }
                    drop(slot);
                    // A slot and the bot's share are free: rows held back
                    // by them may go now.
                    wake.notify_one();
                });
            }
        }
    })
}

/// Why an attempt failed: `final` ones are not retried.
struct Failed {
    error: String,
    fatal: bool,
}

impl Failed {
    fn retry(error: String) -> Failed {
        Failed {
            error,
            fatal: false,
        }
    }
}

/// Makes one attempt; how the row ends.
async fn deliver(app: &App, d: Delivery) -> DeliveryEnd {
    let outcome = tokio::time::timeout(app.config.webhook_timeout, attempt(app, &d))
        .await
        .unwrap_or_else(|_| {
            Err(Failed::retry(format!(
                "no answer within {:?}",
                app.config.webhook_timeout
            )))
        });
    match outcome {
        Ok(()) => DeliveryEnd::Delivered,
        Err(f) => {
            tracing::info!(id = d.id, bot = %d.bot.username, attempts = d.attempts, error = %f.error, "webhook delivery failed");
            let now = now_ms();
            let at = now + backoff(app.config.webhook_backoff, d.attempts).as_millis() as i64;
            let deadline = d.created_at + app.config.webhook_max_age.as_millis() as i64;
            if f.fatal || at > deadline {
                DeliveryEnd::Failed { error: f.error }
            } else {
                DeliveryEnd::Retry { at, error: f.error }
            }
        }
    }
}

/// The wait after the `attempts`-th failure: `base` doubled each time,
/// at most [`MAX_BACKOFF`], times a random factor in [0.75, 1.25).
fn backoff(base: Duration, attempts: u32) -> Duration {
    let doubled = base.saturating_mul(1 << attempts.saturating_sub(1).min(20));
    let mut r = [0u8; 2];
    getrandom::fill(&mut r).expect("OS random source");
    let jitter = 0.75 + f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX) / 2.0;
    doubled.min(MAX_BACKOFF).mul_f64(jitter)
}

async fn attempt(app: &App, d: &Delivery) -> Result<(), Failed> {
    let Some(hook) = &d.webhook else {
        return Err(Failed {
            error: "webhook removed".into(),
            fatal: true,
        });
    };
    let target = Target::parse(&hook.url).map_err(|error| Failed { error, fatal: true })?;
    let addr = target
        .resolve(app.config.webhook_allow_private)
        .await
        .map_err(|(error, fatal)| Failed { error, fatal })?;
    let event = WebhookEvent {
        event: "message".into(),
        delivery_id: d.id,
        bot: BotRef {
            user_id: d.bot.id,
            username: d.bot.username.clone(),
        },
        message: d.message.clone(),
    };
    let body = Bytes::from(serde_json::to_vec(&event).expect("serialisable"));
    let sig = signature(&hook.secret, now_ms() / 1000, &body);
    let (status, answer) = post::post(addr, &target, &sig, body)
        .await
        .map_err(Failed::retry)?;
    if !(200..300).contains(&status) {
        return Err(Failed::retry(format!("answered {status}")));
    }
    post_reply(app, d, &answer).await
}

/// Posts the reply a webhook answered with, if any. A reply that breaks
/// the chat's rules is dropped (the delivery succeeded); one the store
/// could not take yet makes the delivery fail, to be made again.
async fn post_reply(app: &App, d: &Delivery, answer: &[u8]) -> Result<(), Failed> {
    let Some(reply) = serde_json::from_slice::<WebhookAnswer>(answer)
        .ok()
        .and_then(|a| a.reply)
    else {
        return Ok(());
    };
    if d.from_role == Role::Bot {
        return Ok(());
    }
    let content = reply.content();
    if let Err(e) = validate::content(content.content_type, &content.body) {
        tracing::info!(id = d.id, error = %e.message, "a webhook's reply was invalid; dropped");
        return Ok(());
    }
    let m = &d.message;
    let to = match m.to {
        To::Group(g) => To::Group(g),
        To::User(_) => To::User(m.from_id),
    };
    let chat = NewChat {
        received: std::time::Instant::now(),
        from: d.bot.id,
        from_name: d.bot.username.as_str().into(),
        to,
        client_msg_id: Some(reply_key(m.msg_id)),
        content,
    };
    match crate::sending::send(app, chat).await {
        Ok(_) => Ok(()),
        Err(e @ (Error::StoreClosed | Error::Unavailable(_) | Error::Storage(_))) => {
            Err(Failed::retry(format!("the reply could not be stored: {e}")))
        }
        Err(e) => {
            tracing::info!(id = d.id, error = %e, "a webhook's reply was refused; dropped");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let base = Duration::from_secs(1);
        for (n, lo, hi) in [(1, 750, 1250), (2, 1500, 2500), (4, 6000, 10000)] {
            let b = backoff(base, n).as_millis();
            assert!((lo..hi).contains(&b), "{n}: {b}");
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF.mul_f64(1.25));
    }
}
