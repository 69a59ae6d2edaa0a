//! Relay configuration: clap flags, each with a matching `FERROCHAT_*`
//! environment variable.

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use warp::http::HeaderName;

pub use crate::throttle::IpNet;
pub use shared::parse_duration;

/// How hard SQLite syncs to disk on each group commit. See
/// `docs/protocol.md`, "Durability and power loss".
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SyncMode {
    /// `synchronous=FULL`: survives `kill -9` and power loss.
    Full,
    /// `synchronous=NORMAL`: survives `kill -9`; power loss may drop the
    /// last batches.
    Normal,
    /// `synchronous=OFF`: for benchmarks only.
    Off,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// A per-address allowance: `count` events per `window`, or no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// No limit.
    Off,
    /// A burst of `count`, then one more every `window / count`.
    Limit {
        /// Events per window.
        count: u32,
        /// The window.
        window: Duration,
    },
}

/// Parses `10/1h`, `10/h` (a window of one unit), `100/30m`, or `off`.
pub fn parse_quota(s: &str) -> Result<Quota, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Ok(Quota::Off);
    }
    let invalid = || format!("invalid limit {s:?} (examples: 10/1h, 10/h, 100/30m, off)");
    let (count, window) = s.split_once('/').ok_or_else(invalid)?;
    let count: u32 = count.trim().parse().map_err(|_| invalid())?;
    let window = window.trim();
    let window = if window.starts_with(|c: char| c.is_ascii_alphabetic()) {
        parse_duration(&format!("1{window}"))?
    } else {
        parse_duration(window)?
    };
    if count == 0 || window.is_zero() {
        return Err(format!(
            "{s:?} allows nothing; use `off` for no limit, or a count and window above 0"
        ));
    }
    Ok(Quota::Limit { count, window })
}

fn parse_header_name(s: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(s.trim().as_bytes())
        .map_err(|_| format!("invalid header name {s:?} (examples: X-Forwarded-For, X-Real-IP)"))
}

/// Everything an operator can set.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "ferrochat-relay",
    version,
    about = "ferrochat relay: self-hosted instant messaging"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "FERROCHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://PATH` (created on first start),
    /// `sqlite::memory:` (nothing survives a restart; tests only), or
    /// `postgres://USER@HOST:PORT/DB` (`postgresql://` too): the shared
    /// database of a cluster of relays.
    #[arg(
        long,
        env = "FERROCHAT_DB",
        default_value = "sqlite://./data/ferrochat.db",
        global = true
    )]
    pub db: String,

    /// SQLite durability level (see docs/protocol.md).
    #[arg(
        long,
        env = "FERROCHAT_SQLITE_SYNC",
        value_enum,
        default_value = "full"
    )]
    pub sqlite_sync: SyncMode,

    /// Size of the commit log (`<db>-log`) in MiB. Chats are durable once
    /// appended to it; it is reused from its start once SQLite has them,
    /// and a chat waits while it is full of unapplied ones.
    #[arg(
        long,
        env = "FERROCHAT_COMMIT_LOG_MIB",
        default_value_t = 64,
        value_parser = clap::value_parser!(u64).range(1..=4096)
    )]
    pub commit_log_mib: u64,

    /// Most connections this relay opens to PostgreSQL (the writer holds
    /// one; reads, group changes and cursor flushes share the rest).
    #[arg(
        long,
        env = "FERROCHAT_PG_POOL",
        default_value_t = 16,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=1000)
    )]
    pub pg_pool: usize,

    /// Directory with the built SPA (`cargo xtask dist` writes `dist/`).
    #[arg(long, env = "FERROCHAT_STATIC_DIR", default_value = "dist")]
    pub static_dir: PathBuf,

    /// Close a socket when nothing was read from it for this long.
    #[arg(long, env = "FERROCHAT_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Close a socket that has not sent LOGIN within this time.
    #[arg(long, env = "FERROCHAT_LOGIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub login_timeout: Duration,

    /// Push a message again when it is not acked within this time (doubling
    /// up to `--max-retry-interval`).
    #[arg(long, env = "FERROCHAT_ACK_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub ack_timeout: Duration,

    /// The longest wait between two pushes of an unacked message.
    #[arg(long, env = "FERROCHAT_MAX_RETRY_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub max_retry_interval: Duration,

    /// A user whose last socket closed is shown offline to their contacts
    /// after this long, unless they reconnect (a page reload is not a
    /// departure).
    #[arg(long, env = "FERROCHAT_PRESENCE_GRACE", default_value = "3s", value_parser = parse_duration)]
    pub presence_grace: Duration,

    /// Session tokens expire this long after login.
    #[arg(long, env = "FERROCHAT_TOKEN_TTL", default_value = "30d", value_parser = parse_duration)]
    pub token_ttl: Duration,

    /// Cap on concurrent TCP connections (HTTP and WebSocket).
    #[arg(long, env = "FERROCHAT_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,

    /// Frames each socket may queue for sending. A full queue whose writes
    /// have been stuck for a second (the client is not reading) closes the
    /// socket as a slow consumer (4008). The queue takes memory only as it
    /// fills.
    #[arg(long, env = "FERROCHAT_OUTBOUND_QUEUE", default_value_t = 4096)]
    pub outbound_queue: usize,

    /// Most participants in one group's voice room; VOICE_JOIN beyond it
    /// is refused with `room_full`.
    #[arg(long, env = "FERROCHAT_VOICE_CAPACITY", default_value_t = 50)]
    pub voice_capacity: u32,

    /// Sustained rate of rate-limited frames (everything but PING and ACK)
    /// per connection, per second; also of `POST /api/messages` per user.
    #[arg(long, env = "FERROCHAT_RATE_LIMIT", default_value_t = 50.0)]
    pub rate_limit: f64,

    /// Burst size of the per-connection (and per-user HTTP send) rate
    /// limit.
    #[arg(long, env = "FERROCHAT_RATE_BURST", default_value_t = 100.0)]
    pub rate_burst: f64,

    /// Most argon2 hashes computed at once (each takes ~19 MiB and tens of
    /// milliseconds of CPU); further register/login requests wait.
    #[arg(long, env = "FERROCHAT_MAX_HASHING", default_value_t = 4)]
    pub max_hashing: usize,

    /// Failed logins for one username from one client address before
    /// attempts for it from there are refused (429) for `--login-backoff`,
    /// doubling with each further failure. 0 turns this limit off.
    #[arg(long, env = "FERROCHAT_LOGIN_LIMIT", default_value_t = 5)]
    pub login_limit: u32,

    /// Failed logins for one username from all addresses before it is
    /// locked the same way, except at addresses where it logged in or
    /// registered in the last 30 days. 0 turns this limit off.
    #[arg(long, env = "FERROCHAT_LOGIN_LIMIT_USER", default_value_t = 20)]
    pub login_limit_user: u32,

    /// Failed logins from one client address (an IPv6 /64), whatever the
    /// username, before it is locked the same way, except for users who
    /// logged in or registered from it in the last 30 days. Higher than the
    /// others: many users may share an address. 0 turns this limit off.
    #[arg(long, env = "FERROCHAT_LOGIN_LIMIT_IP", default_value_t = 50)]
    pub login_limit_ip: u32,

    /// The first lockout once a login limit is reached; each further
    /// failure doubles it.
    #[arg(long, env = "FERROCHAT_LOGIN_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub login_backoff: Duration,

    /// The longest lockout.
    #[arg(long, env = "FERROCHAT_LOGIN_BACKOFF_MAX", default_value = "15m", value_parser = parse_duration)]
    pub login_backoff_max: Duration,

    /// Failed logins are forgotten after this long without one, counted
    /// from the end of the lockout.
    #[arg(long, env = "FERROCHAT_LOGIN_WINDOW", default_value = "1h", value_parser = parse_duration)]
    pub login_window: Duration,

    /// Registrations per client address: `N/WINDOW` (a burst of N, then one
    /// every WINDOW/N), or `off`.
    #[arg(
        long,
        env = "FERROCHAT_REGISTER_LIMIT",
        value_name = "N/WINDOW",
        default_value = "10/1h",
        value_parser = parse_quota
    )]
    pub register_limit: Quota,

    /// New visitors of the support desk (`POST /api/visitors`) per client
    /// address: `N/WINDOW` (a burst of N, then one every WINDOW/N), or
    /// `off`.
    #[arg(
        long,
        env = "FERROCHAT_VISITOR_LIMIT",
        value_name = "N/WINDOW",
        default_value = "20/1h",
        value_parser = parse_quota
    )]
    pub visitor_limit: Quota,

    /// Chats from visitors of the support desk per client address, all of
    /// that address's visitors together: `N/WINDOW` (a burst of N, then
    /// one every WINDOW/N), or `off`. Over it a chat is refused with
    /// `rate_limited` (nothing stored).
    #[arg(
        long,
        env = "FERROCHAT_VISITOR_MESSAGE_LIMIT",
        value_name = "N/WINDOW",
        default_value = "60/1m",
        value_parser = parse_quota
    )]
    pub visitor_message_limit: Quota,

    /// Visitor tokens expire this long after the visitor was created: a
    /// reload or a visit within it is the same visitor.
    #[arg(long, env = "FERROCHAT_VISITOR_TOKEN_TTL", default_value = "30d", value_parser = parse_duration)]
    pub visitor_token_ttl: Duration,

    /// The local admin channel of a relay on an SQLite file: a Unix socket
    /// (mode 0600) that `ferrochat-relay admin` talks to while the relay
    /// holds the database. Default: `<database file>.admin.sock`.
    #[arg(long, env = "FERROCHAT_ADMIN_SOCKET", global = true)]
    pub admin_socket: Option<PathBuf>,

    /// A reverse proxy whose `--client-ip-header` is believed: an address
    /// or a CIDR block; repeat the flag or separate with commas. Without
    /// one, a request's client address is always its TCP peer.
    #[arg(
        long = "trusted-proxy",
        env = "FERROCHAT_TRUSTED_PROXY",
        value_name = "ADDR[/BITS]",
        value_delimiter = ',',
        value_parser = clap::value_parser!(IpNet)
    )]
    pub trusted_proxies: Vec<IpNet>,

    /// The header in which a trusted proxy passes the client address:
    /// `X-Forwarded-For` (the right-most address in it that is not a
    /// trusted proxy counts) or a one-address header such as `X-Real-IP`.
    #[arg(long, env = "FERROCHAT_CLIENT_IP_HEADER", default_value = "X-Forwarded-For", value_parser = parse_header_name)]
    pub client_ip_header: HeaderName,

    /// Keys kept per login and registration throttling table; when one is
    /// full, expired keys go first, then those that would expire soonest.
    #[arg(
        long,
        env = "FERROCHAT_THROTTLE_ENTRIES",
        default_value_t = 50_000,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub throttle_entries: usize,

    /// Redis URL (`redis://HOST:PORT`): run as one relay of a cluster.
    /// Redis carries what crosses relays (chats, receipts, typing,
    /// presence, group events, logouts) and the relay registry; the
    /// database (PostgreSQL) is shared and is the source of truth.
    #[arg(long, env = "FERROCHAT_REDIS")]
    pub redis: Option<String>,

    /// This relay's name in a cluster (generated when not given).
    #[arg(long, env = "FERROCHAT_NODE_ID")]
    pub node_id: Option<String>,

    /// In a cluster, how often each online user's conversations are
    /// compared with the database, to catch a message whose event was
    /// lost. (Lost connections and dead relays trigger a catch-up at once.)
    #[arg(long, env = "FERROCHAT_CLUSTER_CHECK", default_value = "20s", value_parser = parse_duration)]
    pub cluster_check: Duration,

    /// Log format.
    #[arg(long, env = "FERROCHAT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax), e.g. `info,relay=debug`.
    #[arg(long, env = "FERROCHAT_LOG", default_value = "info")]
    pub log: String,

    /// Bots' webhooks may be on loopback, private, link-local and
    /// unique-local addresses (refused by default: a webhook must not
    /// reach into the relay's own network). For tests and trusted setups.
    #[arg(long, env = "FERROCHAT_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// Most deliveries in flight per webhook (across a cluster).
    #[arg(long, env = "FERROCHAT_WEBHOOK_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub webhook_concurrency: u32,

    /// How long one webhook delivery may take, connecting to answering.
    #[arg(long, env = "FERROCHAT_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,

    /// The first wait before a failed delivery is tried again; it doubles
    /// with each failure (with jitter), up to an hour.
    #[arg(long, env = "FERROCHAT_WEBHOOK_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub webhook_backoff: Duration,

    /// A delivery still failing this long after its message was sent is
    /// given up, and recorded as failed (see `admin list-bots`).
    #[arg(long, env = "FERROCHAT_WEBHOOK_MAX_AGE", default_value = "24h", value_parser = parse_duration)]
    pub webhook_max_age: Duration,

    /// How long shutdown waits for sockets and requests to finish.
    #[arg(long, env = "FERROCHAT_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// A command to run instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `ferrochat-relay <command>`.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Grants or revokes roles, with or without a running relay (see
    /// `relay/src/admin/`).
    Admin {
        /// What to do.
        #[command(subcommand)]
        op: AdminOp,
    },
}

/// `ferrochat-relay admin <op>`.
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum AdminOp {
    /// Makes a user an administrator (the first one is made this way).
    GrantAdmin {
        /// The user.
        username: String,
    },
    /// Makes a user an agent of the support desk.
    GrantAgent {
        /// The user.
        username: String,
    },
    /// Makes an agent or administrator a plain user again.
    RevokeAgent {
        /// The user.
        username: String,
    },
    /// Lists agents and administrators.
    ListAgents,
    /// Creates a bot and prints its API token (and webhook secret) once.
    CreateBot {
        /// The bot's username.
        username: String,
        /// Where to deliver its messages (`http://…`).
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Revokes every API token of a bot.
    RevokeBot {
        /// The bot.
        username: String,
    },
    /// Issues a new API token for a bot and prints it once.
    BotToken {
        /// The bot.
        username: String,
    },
    /// Sets a bot's webhook (a new secret is printed once), or removes it
    /// with `none`.
    SetWebhook {
        /// The bot.
        username: String,
        /// `http://…`, or `none`.
        url: String,
    },
    /// Lists bots, their webhooks and their deliveries.
    ListBots,
}

impl Config {
    /// A configuration from command-line style arguments (without the
    /// program name), e.g. `Config::from_args(["--db", "sqlite::memory:"])`.
    pub fn from_args<I, S>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let argv = std::iter::once(std::ffi::OsString::from("ferrochat-relay"))
            .chain(args.into_iter().map(Into::into));
        Config::try_parse_from(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn defaults_match_the_docs() {
        let c = Config::from_args(Vec::<String>::new()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.db, "sqlite://./data/ferrochat.db");
        assert_eq!(c.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.ack_timeout, Duration::from_secs(5));
        assert_eq!(c.sqlite_sync, SyncMode::Full);
        assert_eq!(c.commit_log_mib, 64);
        assert_eq!(
            (c.login_limit, c.login_limit_user, c.login_limit_ip),
            (5, 20, 50)
        );
        assert_eq!(c.login_backoff, Duration::from_secs(1));
        assert_eq!(c.login_backoff_max, Duration::from_secs(900));
        assert_eq!(c.login_window, Duration::from_secs(3600));
        assert_eq!(
            c.register_limit,
            Quota::Limit {
                count: 10,
                window: Duration::from_secs(3600)
            }
        );
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(c.client_ip_header, "x-forwarded-for");
        assert_eq!(c.throttle_entries, 50_000);
    }

    #[test]
    fn throttle_flags() {
        let c = Config::from_args([
            "--register-limit",
            "100/h",
            "--trusted-proxy",
            "127.0.0.1,10.0.0.0/8",
            "--trusted-proxy",
            "::1",
            "--client-ip-header",
            "X-Real-IP",
        ])
        .unwrap();
        assert_eq!(
            c.register_limit,
            Quota::Limit {
                count: 100,
                window: Duration::from_secs(3600)
            }
        );
        let nets: Vec<IpNet> = ["127.0.0.1", "10.0.0.0/8", "::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(c.trusted_proxies, nets);
        assert_eq!(c.client_ip_header, "x-real-ip");
        assert_eq!(parse_quota("off"), Ok(Quota::Off));
        assert_eq!(
            parse_quota("3/90s"),
            Ok(Quota::Limit {
                count: 3,
                window: Duration::from_secs(90)
            })
        );
        for bad in ["10", "0/1h", "10/0s", "x/1h", "10/1 parsec", "-1/h"] {
            assert!(parse_quota(bad).is_err(), "{bad:?} was accepted");
        }
        for bad in [
            &["--trusted-proxy", "10.0.0.0/99"][..],
            &["--client-ip-header", "X Forwarded"],
            &["--throttle-entries", "0"],
        ] {
            assert!(Config::from_args(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
