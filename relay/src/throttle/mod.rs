//! Throttling of password guessing and of mass registration, decided before
//! any argon2 work: a refused attempt costs a map lookup, not ~25 ms of CPU.
//!
//! **Logins.** Failed logins are counted under three keys:
//!
//! - the username at one client address (`--login-limit`, default 5): stops
//!   one client guessing one user's password;
//! - the username, from any address (`--login-limit-user`, 20): stops
//!   guessing spread over many addresses;
//! - the client address, any username (`--login-limit-ip`, 50): stops one
//!   client trying passwords against many usernames. It is the loosest
//!   because many users may share one address (NAT).
//!
//! A key that reaches its limit is locked for `--login-backoff` (1 s), and
//! each further failure doubles the lock, up to `--login-backoff-max`
//! (15 min). Attempts during a lock are refused with 429 and `Retry-After`
//! and are not counted (they learn nothing). Attempts in flight count
//! against the limit too, so a burst of concurrent requests cannot slip
//! more guesses past it. A key's failures are forgotten after
//! `--login-window` (1 h) without one, counted from the end of its lock. A
//! successful login clears the two username keys, not the address key (an
//! attacker could clear it by logging in to an account of their own).
//!
//! The username-wide key would let anyone lock a user out by failing logins
//! for them from anywhere. So neither it nor the address key applies at an
//! address where that user is *known*: one from which the username logged
//! in or registered within the last [`KNOWN_FOR`]. There only the first key
//! applies, and only guesses from that same address lock it. The trade-off:
//! at a new address the user can be kept out for as long as an attack on
//! the username goes on (which, at the capped lock, yields the attacker
//! four guesses an hour).
//!
//! **Registrations.** `--register-limit N/WINDOW` (default `10/1h`) per
//! client address: a burst of N, then one every WINDOW/N. Every
//! registration that passes validation counts, taken usernames included
//! (each one costs a hash).
//!
//! **Bots' sends.** `POST /api/messages` takes from a token bucket per
//! user, at the WebSocket's per-connection `--rate-limit`/`--rate-burst`;
//! over it, 429 with `Retry-After`. A bucket that refilled is forgotten.
//!
//! **Client address.** The TCP peer. With `--trusted-proxy`, when the peer
//! is one of those proxies: the address in `--client-ip-header`, the
//! right-most one that is not itself a trusted proxy (each proxy appends to
//! `X-Forwarded-For`; what lies further left is whatever the client sent).
//! IPv6 clients are keyed by their /64, since one host usually has a whole
//! /64 to pick addresses from.
//!
//! **Memory.** Every table holds at most `--throttle-entries` keys. Expired
//! entries go lazily; a full table first drops the expired ones, then those
//! that would expire soonest (the least locked), an eighth of it at a time so
//! the sweep is paid once per many inserts. One `parking_lot` mutex per
//! kind of table, held for map operations only.

mod addr;
mod table;
#[cfg(test)]
mod tests;

pub use addr::{addr_key, ClientAddr, IpNet};

use crate::config::{Config, Quota};
use crate::ratelimit::TokenBucket;
use parking_lot::Mutex;
use shared::api::ApiError;
use shared::ErrorCode;
use shared::UserId;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Reply;

use table::{Expiring, Table};

/// How long an address stays known for a user after a login or
/// registration from it.
pub const KNOWN_FOR: Duration = Duration::from_secs(30 * 86400);

/// `Retry-After` when a key is at its limit only because of attempts still
/// in flight (they finish within tens of milliseconds).
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);

/// Usernames are keyed by at most this many bytes (valid ones have at most
/// 32 characters, all ASCII).
const MAX_NAME_KEY: usize = 64;

/// Longest span a lock or window is taken to be, so `Instant` arithmetic
/// cannot overflow whatever the flags say.
const MAX_SPAN: Duration = Duration::from_secs(366 * 86400);

/// The key of a username: case-insensitive like the accounts, bounded in
/// size whatever the client sends.
fn name_key(username: &str) -> Box<str> {
    let mut end = username.len().min(MAX_NAME_KEY);
    while !username.is_char_boundary(end) {
        end -= 1;
    }
    username[..end].to_ascii_lowercase().into()
}

fn later(now: Instant, d: Duration) -> Instant {
    now + d.min(MAX_SPAN)
}

/// Failed logins of one key.
#[derive(Debug)]
struct Strikes {
    fails: u32,
    in_flight: u32,
    locked_until: Option<Instant>,
    /// When the failures are forgotten (if nothing is in flight).
    forget_at: Instant,
}

impl Expiring for Strikes {
    fn expiry(&self) -> Option<Instant> {
        (self.in_flight == 0).then_some(self.forget_at)
    }
}

/// The login limits, from the configuration.
#[derive(Clone, Copy, Debug)]
struct LoginPolicy {
    per_pair: u32,
    per_user: u32,
    per_addr: u32,
    backoff: Duration,
    backoff_max: Duration,
    window: Duration,
}

impl Strikes {
    fn new(now: Instant) -> Strikes {
        Strikes {
            fails: 0,
            in_flight: 0,
            locked_until: None,
            forget_at: now,
        }
    }

    /// How long an attempt must wait, if it must.
    fn wait(&self, limit: u32, now: Instant) -> Option<Duration> {
        if let Some(t) = self.locked_until.filter(|t| *t > now) {
            return Some(t - now);
        }
        (self.in_flight > 0 && self.fails.saturating_add(self.in_flight) >= limit)
            .then_some(IN_FLIGHT_WAIT)
    }

    fn fail(&mut self, limit: u32, p: &LoginPolicy, now: Instant) {
        self.fails = self.fails.saturating_add(1);
        if self.fails >= limit {
            let doublings = (self.fails - limit).min(31);
            let lock = p.backoff.saturating_mul(1 << doublings).min(p.backoff_max);
            self.locked_until = Some(later(now, lock));
        }
        let quiet_from = self.locked_until.map_or(now, |t| t.max(now));
        self.forget_at = later(quiet_from, p.window);
    }
}

/// How an attempt ended, for one key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Failed,
    /// Succeeded; `reset` clears the key's failures.
    Succeeded {
        reset: bool,
    },
}

fn settle<K: Eq + Hash + Clone>(
    table: &mut Table<K, Strikes>,
    key: K,
    limit: u32,
    outcome: Outcome,
    p: &LoginPolicy,
    now: Instant,
) {
    if limit == 0 {
        return;
    }
    match outcome {
        Outcome::Failed => {
            // Re-created if it was evicted meanwhile.
            let s = table.get_or_insert(key, now, || Strikes::new(now));
            s.in_flight = s.in_flight.saturating_sub(1);
            s.fail(limit, p, now);
        }
        Outcome::Succeeded { reset } => {
            let Some(s) = table.get_mut(&key, now) else {
                return;
            };
            s.in_flight = s.in_flight.saturating_sub(1);
            if reset {
                s.fails = 0;
                s.locked_until = None;
                s.forget_at = now;
            }
            if s.fails == 0 && s.in_flight == 0 {
                table.remove(&key);
            }
        }
    }
}

type Pair = (Box<str>, IpAddr);

struct Logins {
    pairs: Table<Pair, Strikes>,
    users: Table<Box<str>, Strikes>,
    addrs: Table<IpAddr, Strikes>,
    /// (username, address) → until when the address is known for the user.
    known: Table<Pair, Instant>,
}

/// A registration token bucket of one address.
struct Bucket {
    tokens: f64,
    last: Instant,
    /// When it is full again (and as good as absent).
    full_at: Instant,
}

impl Expiring for Bucket {
    fn expiry(&self) -> Option<Instant> {
        Some(self.full_at)
    }
}

impl Expiring for TokenBucket {
    fn expiry(&self) -> Option<Instant> {
        Some(self.full_at())
    }
}

/// The login and registration throttles (see the module doc).
pub struct Throttle {
    login: LoginPolicy,
    register: Quota,
    visitor: Quota,
    visitor_message: Quota,
    clients: ClientAddr,
    logins: Mutex<Logins>,
    registrations: Mutex<Table<IpAddr, Bucket>>,
    visitors: Mutex<Table<IpAddr, Bucket>>,
    visitor_messages: Mutex<Table<IpAddr, Bucket>>,
    /// `--rate-limit` and `--rate-burst`.
    send_rate: (f64, f64),
    /// `POST /api/messages` per user; a bucket that refilled is forgotten.
    api_sends: Mutex<Table<UserId, TokenBucket>>,
}

impl Throttle {
    /// The throttles `config` asks for.
    pub fn new(config: &Config) -> Throttle {
        let cap = config.throttle_entries;
        Throttle {
            login: LoginPolicy {
                per_pair: config.login_limit,
                per_user: config.login_limit_user,
                per_addr: config.login_limit_ip,
                backoff: config.login_backoff,
                backoff_max: config.login_backoff_max,
                window: config.login_window,
            },
            register: config.register_limit,
            visitor: config.visitor_limit,
            visitor_message: config.visitor_message_limit,
            clients: ClientAddr::new(
                config.trusted_proxies.clone(),
                config.client_ip_header.clone(),
            ),
            logins: Mutex::new(Logins {
                pairs: Table::new(cap),
                users: Table::new(cap),
                addrs: Table::new(cap),
                known: Table::new(cap),
            }),
            registrations: Mutex::new(Table::new(cap)),
            visitors: Mutex::new(Table::new(cap)),
            visitor_messages: Mutex::new(Table::new(cap)),
            send_rate: (config.rate_limit, config.rate_burst),
            api_sends: Mutex::new(Table::new(cap)),
        }
    }

    /// The client address of a request (see the module doc).
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        self.clients.resolve(peer, headers)
    }

    /// Lets a login attempt for `username` from `client` through, or says
    /// how long it must wait.
    pub fn login(
        &self,
        username: &str,
        client: IpAddr,
        now: Instant,
    ) -> Result<LoginAttempt<'_>, Duration> {
        let p = &self.login;
        let user = name_key(username);
        let addr = addr_key(client);
        let pair: Pair = (user.clone(), addr);
        let mut guard = self.logins.lock();
        let t = &mut *guard;
        let known = t.known.get_mut(&pair, now).is_some();
        let mut wait = None;
        if p.per_pair > 0 {
            let w = t
                .pairs
                .get_mut(&pair, now)
                .and_then(|s| s.wait(p.per_pair, now));
            wait = wait.max(w);
        }
        if !known && p.per_user > 0 {
            let w = t
                .users
                .get_mut(&user, now)
                .and_then(|s| s.wait(p.per_user, now));
            wait = wait.max(w);
        }
        if !known && p.per_addr > 0 {
            let w = t
                .addrs
                .get_mut(&addr, now)
                .and_then(|s| s.wait(p.per_addr, now));
            wait = wait.max(w);
        }
        if let Some(w) = wait {
            return Err(w);
        }
        if p.per_pair > 0 {
            t.pairs
                .get_or_insert(pair, now, || Strikes::new(now))
                .in_flight += 1;
        }
        if p.per_user > 0 {
            t.users
                .get_or_insert(user.clone(), now, || Strikes::new(now))
                .in_flight += 1;
        }
        if p.per_addr > 0 {
            t.addrs
                .get_or_insert(addr, now, || Strikes::new(now))
                .in_flight += 1;
        }
        Ok(LoginAttempt {
            throttle: self,
            user,
            addr,
            settled: false,
        })
    }

    fn finish(&self, user: &str, addr: IpAddr, ok: bool, now: Instant) {
        let p = &self.login;
        let pair: Pair = (user.into(), addr);
        let (named, anon) = if ok {
            (
                Outcome::Succeeded { reset: true },
                Outcome::Succeeded { reset: false },
            )
        } else {
            (Outcome::Failed, Outcome::Failed)
        };
        let mut guard = self.logins.lock();
        let t = &mut *guard;
        settle(&mut t.pairs, pair.clone(), p.per_pair, named, p, now);
        settle(&mut t.users, pair.0.clone(), p.per_user, named, p, now);
        settle(&mut t.addrs, addr, p.per_addr, anon, p, now);
        if ok {
            *t.known.get_or_insert(pair, now, || now) = later(now, KNOWN_FOR);
        }
    }

    /// Takes one registration from `client`'s allowance, or says how long
    /// until there is one.
    pub fn register(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        take(self.register, &self.registrations, client, now)
    }

    /// Takes one visitor chat from `client`'s `--visitor-message-limit`
    /// allowance, or says how long until there is one.
    pub fn visitor_message(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        take(self.visitor_message, &self.visitor_messages, client, now)
    }

    /// Takes one new visitor (`POST /api/visitors`) from `client`'s
    /// `--visitor-limit` allowance, or says how long until there is one.
    pub fn visitor(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        take(self.visitor, &self.visitors, client, now)
    }

    /// Takes one `POST /api/messages` from `user`'s allowance (the
    /// per-connection `--rate-limit`/`--rate-burst`, per user: every token
    /// of a bot shares it), or says how long until there is one.
    pub fn api_send(&self, user: UserId, now: Instant) -> Result<(), Duration> {
        let (rate, burst) = self.send_rate;
        self.api_sends
            .lock()
            .get_or_insert(user, now, || TokenBucket::new(rate, burst, now))
            .take_or_wait(now)
    }

    /// Remembers that `username` registered from `client`: the address is
    /// known for that user (see the module doc).
    pub fn registered(&self, username: &str, client: IpAddr, now: Instant) {
        let pair: Pair = (name_key(username), addr_key(client));
        *self.logins.lock().known.get_or_insert(pair, now, || now) = later(now, KNOWN_FOR);
    }
}

/// Takes one event from `client`'s allowance under `quota` in `table`.
fn take(
    quota: Quota,
    table: &Mutex<Table<IpAddr, Bucket>>,
    client: IpAddr,
    now: Instant,
) -> Result<(), Duration> {
    {
        let Quota::Limit { count, window } = quota else {
            return Ok(());
        };
        let burst = f64::from(count);
        let rate = burst / window.min(MAX_SPAN).as_secs_f64();
        let mut table = table.lock();
        let b = table.get_or_insert(addr_key(client), now, || Bucket {
            tokens: burst,
            last: now,
            full_at: now,
        });
        let rested = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + rested * rate).min(burst);
        b.last = now;
        let taken = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        };
        b.full_at = later(now, Duration::from_secs_f64((burst - b.tokens) / rate));
        taken
    }
}

/// A login attempt let through by [`Throttle::login`]. Report a correct
/// password with [`LoginAttempt::succeeded`]; anything else (a wrong
/// password, an error, a request abandoned midway) counts as a failure when
/// it is dropped.
#[must_use = "dropping the attempt counts it as a failed login"]
pub struct LoginAttempt<'a> {
    throttle: &'a Throttle,
    user: Box<str>,
    addr: IpAddr,
    settled: bool,
}

impl LoginAttempt<'_> {
    /// The password was right: clears the username's failures and makes
    /// the address known for it.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.throttle
            .finish(&self.user, self.addr, true, Instant::now());
    }

    /// The login failed (the same as dropping the attempt).
    pub fn failed(self) {}
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle
                .finish(&self.user, self.addr, false, Instant::now());
        }
    }
}

/// Whole seconds for `Retry-After`: rounded up, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// The 429 answer: the usual JSON error body (`rate_limited`) and
/// `Retry-After` in seconds.
pub fn too_many(retry_after: Duration, message: &str) -> warp::reply::Response {
    let body = ApiError {
        code: ErrorCode::RateLimited,
        message: message.to_string(),
    };
    let mut res = warp::reply::with_status(warp::reply::json(&body), StatusCode::TOO_MANY_REQUESTS)
        .into_response();
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs(retry_after)),
    );
    res
}
