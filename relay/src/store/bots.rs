//! What the stores keep for bots: their webhooks and the webhook outbox.
//!
//! An outbox row is written in the same transaction as the message it
//! delivers (both backends, for every bot with a webhook that is a member
//! of the message's conversation and did not send it), so a crash after
//! the sender's answer loses no delivery. The dispatcher (`crate::webhook`)
//! claims due rows with a lease, delivers, and finishes each one.

use super::UserRef;
use shared::desk::Role;
use shared::ChatMessage;

/// Bot tokens never expire by age; `revoke-bot` deletes them.
pub const BOT_TOKEN_EXPIRES_AT: i64 = i64::MAX;

/// `webhook_outbox.state` of a row still to deliver.
pub const OUTBOX_PENDING: i16 = 0;
/// `webhook_outbox.state` of a row given up (`--webhook-max-age`), kept
/// with its last error. Delivered rows are deleted.
pub const OUTBOX_FAILED: i16 = 2;

/// A bot's webhook: where deliveries go and the secret that signs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// `http://…` URL (checked by `webhook::target`).
    pub url: String,
    /// The HMAC-SHA256 key.
    pub secret: String,
}

/// A bot, as `list-bots` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BotInfo {
    /// The bot's account.
    pub bot: UserRef,
    /// Its webhook URL, if any.
    pub webhook: Option<String>,
    /// Live API tokens.
    pub tokens: u64,
    /// Deliveries still to make.
    pub pending: u64,
    /// Deliveries given up.
    pub failed: u64,
    /// The last error of a delivery given up or waiting for a retry.
    pub last_error: Option<String>,
}

/// Which due rows to claim.
#[derive(Clone, Copy, Debug)]
pub struct Claim {
    /// Now, ms since the epoch.
    pub now: i64,
    /// Until when the claimed rows are this relay's: another relay (or
    /// this one after a restart) takes a row whose lease ran out.
    pub lease_until: i64,
    /// Most rows in flight per bot, counting those claimed elsewhere.
    pub per_bot: u32,
    /// Most rows this claim takes.
    pub limit: u32,
}

/// A claimed delivery.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The outbox row.
    pub id: i64,
    /// The bot it is for.
    pub bot: UserRef,
    /// Its webhook now (`None`: removed since; the row is given up).
    pub webhook: Option<Webhook>,
    /// The message, as the bot would be pushed it.
    pub message: ChatMessage,
    /// The sender's role: a bot's message gets no reply posted back (two
    /// bots in a group would otherwise answer each other forever).
    pub from_role: Role,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When the row was written, ms since the epoch.
    pub created_at: i64,
}

/// How a delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryEnd {
    /// Answered 2xx: the row is deleted.
    Delivered,
    /// Failed; try again at `at` (ms since the epoch).
    Retry {
        /// When.
        at: i64,
        /// Why it failed.
        error: String,
    },
    /// Failed for good (too old, or no webhook any more): recorded.
    Failed {
        /// Why.
        error: String,
    },
}
