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

use crate::config::{Config, Quota};
use parking_lot::Mutex;
use shared::api::ApiError;
use shared::ErrorCode;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};
use warp::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use warp::reply::Reply;

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

/// An address block from `--trusted-proxy`: `10.0.0.0/8`, `::1/128`, or a
/// bare address (a block of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this block (an IPv4-mapped IPv6 address counts
    /// as the IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<IpNet, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| {
            format!("invalid address {s:?} (examples: 127.0.0.1, 10.0.0.0/8, ::1, fd00::/8)")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("invalid prefix length in {s:?} (0 to {max})"))?,
        };
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
        if let (IpAddr::V6(v6), true) = (addr, prefix >= 96) {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return Ok(IpNet {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                });
            }
        }
        Ok(IpNet { addr, prefix })
    }
}

/// Finds a request's client address: the TCP peer, or what a trusted proxy
/// says it is.
#[derive(Clone, Debug)]
pub struct ClientAddr {
    trusted: Vec<IpNet>,
    header: HeaderName,
}

impl ClientAddr {
    /// Believes `header` from peers in `trusted` only.
    pub fn new(trusted: Vec<IpNet>, header: HeaderName) -> ClientAddr {
        ClientAddr { trusted, header }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request from `peer` with `headers`. Without
    /// a peer (not served by `server::serve`) it is `0.0.0.0`.
    pub fn resolve(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip().to_canonical());
        if !self.is_trusted(peer) {
            return peer;
        }
        // Walk from the nearest hop outwards; stop at the first address a
        // trusted proxy vouches for that is not itself a trusted proxy. What
        // cannot be read ends the walk at the last trusted hop, so a client
        // sending garbage only lands on the proxy's own key.
        let mut client = peer;
        for line in headers.get_all(&self.header).iter().rev() {
            let Ok(line) = line.to_str() else {
                return client;
            };
            for entry in line.rsplit(',') {
                match parse_hop(entry) {
                    Some(ip) if self.is_trusted(ip) => client = ip,
                    Some(ip) => return ip,
                    None => return client,
                }
            }
        }
        client
    }
}

/// One entry of a forwarding header: `1.2.3.4`, `1.2.3.4:5678`, `::1`,
/// `[::1]`, `[::1]:5678`, maybe quoted.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let e = entry.trim().trim_matches('"');
    let ip = e
        .parse::<IpAddr>()
        .ok()
        .or_else(|| e.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            e.strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// The key of a client address: IPv4 as is, IPv6 by its /64.
pub fn addr_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64))),
        v4 => v4,
    }
}

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

/// A table entry that can be forgotten.
trait Expiring {
    /// When it may be dropped; `None` while it must stay (an attempt is in
    /// flight).
    fn expiry(&self) -> Option<Instant>;

    fn expired(&self, now: Instant) -> bool {
        self.expiry().is_some_and(|e| e <= now)
    }
}

impl Expiring for Instant {
    fn expiry(&self) -> Option<Instant> {
        Some(*self)
    }
}

/// A map of at most `cap` entries (see the module doc, "Memory").
struct Table<K, V> {
    map: HashMap<K, V>,
    cap: usize,
}

impl<K: Eq + Hash + Clone, V: Expiring> Table<K, V> {
    fn new(cap: usize) -> Self {
        Table {
            map: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// The live entry for `k`; an expired one is dropped first.
    fn get_mut(&mut self, k: &K, now: Instant) -> Option<&mut V> {
        if self.map.get(k).is_some_and(|v| v.expired(now)) {
            self.map.remove(k);
        }
        self.map.get_mut(k)
    }

    /// The live entry for `k`, made by `make` if there is none.
    fn get_or_insert(&mut self, k: K, now: Instant, make: impl FnOnce() -> V) -> &mut V {
        if self.get_mut(&k, now).is_none() {
            self.make_room(now);
        }
        self.map.entry(k).or_insert_with(make)
    }

    fn remove(&mut self, k: &K) {
        self.map.remove(k);
    }

    /// Below `cap` entries, with some slack: expired entries go first, then
    /// those that would expire soonest, down to seven eighths of `cap`.
    fn make_room(&mut self, now: Instant) {
        if self.map.len() < self.cap {
            return;
        }
        self.map.retain(|_, v| !v.expired(now));
        let target = self.cap - self.cap / 8;
        if self.map.len() > target {
            let mut expiries: Vec<Instant> = self.map.values().filter_map(V::expiry).collect();
            let n = (self.map.len() - target).min(expiries.len());
            if n > 0 {
                let cutoff = *expiries.select_nth_unstable(n - 1).1;
                self.map
                    .retain(|_, v| v.expiry().is_none_or(|e| e > cutoff));
            }
        }
        // Everything left is in flight (a flood of concurrent requests):
        // drop any.
        while self.map.len() >= self.cap {
            let Some(k) = self.map.keys().next().cloned() else {
                break;
            };
            self.map.remove(&k);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
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

/// The login and registration throttles (see the module doc).
pub struct Throttle {
    login: LoginPolicy,
    register: Quota,
    clients: ClientAddr,
    logins: Mutex<Logins>,
    registrations: Mutex<Table<IpAddr, Bucket>>,
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
        let Quota::Limit { count, window } = self.register else {
            return Ok(());
        };
        let burst = f64::from(count);
        let rate = burst / window.min(MAX_SPAN).as_secs_f64();
        let mut table = self.registrations.lock();
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

    /// Remembers that `username` registered from `client`: the address is
    /// known for that user (see the module doc).
    pub fn registered(&self, username: &str, client: IpAddr, now: Instant) {
        let pair: Pair = (name_key(username), addr_key(client));
        *self.logins.lock().known.get_or_insert(pair, now, || now) = later(now, KNOWN_FOR);
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

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn throttle(args: &[&str]) -> Throttle {
        Throttle::new(&Config::from_args(args).unwrap())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// One failed login; panics if it was refused.
    fn fail(t: &Throttle, user: &str, from: &str, now: Instant) {
        t.login(user, ip(from), now)
            .unwrap_or_else(|w| panic!("{user} from {from} refused for {w:?}"))
            .failed_at(now);
    }

    impl LoginAttempt<'_> {
        fn failed_at(mut self, now: Instant) {
            self.settled = true;
            self.throttle.finish(&self.user, self.addr, false, now);
        }
        fn succeeded_at(mut self, now: Instant) {
            self.settled = true;
            self.throttle.finish(&self.user, self.addr, true, now);
        }
    }

    #[test]
    fn networks_parse_and_match() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.200.3.4")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        let one: IpNet = " 127.0.0.1 ".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let mapped: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped, "10.0.0.0/8".parse().unwrap());
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "localhost",
            "1.2.3.4/x",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?} was accepted");
        }
    }

    fn resolver(trusted: &[&str]) -> ClientAddr {
        ClientAddr::new(
            trusted.iter().map(|s| s.parse().unwrap()).collect(),
            HeaderName::from_static("x-forwarded-for"),
        )
    }

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn the_client_address_is_the_right_most_untrusted_hop() {
        let peer = Some("127.0.0.1:5000".parse().unwrap());
        let r = resolver(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(
            r.resolve(peer, &headers(&["203.0.113.5"])),
            ip("203.0.113.5")
        );
        // What the client sent (left) is not believed; the proxies' own
        // hops (right) are skipped.
        assert_eq!(
            r.resolve(peer, &headers(&["1.2.3.4, 203.0.113.5, 10.1.1.1"])),
            ip("203.0.113.5")
        );
        assert_eq!(
            r.resolve(peer, &headers(&["1.2.3.4", "203.0.113.5:4711"])),
            ip("203.0.113.5"),
            "several header lines, and a port"
        );
        assert_eq!(
            r.resolve(peer, &headers(&["[2001:db8::7]:443"])),
            ip("2001:db8::7")
        );
        // Only proxies, or nothing: the farthest proxy, or the peer.
        assert_eq!(r.resolve(peer, &headers(&["10.2.2.2"])), ip("10.2.2.2"));
        assert_eq!(r.resolve(peer, &HeaderMap::new()), ip("127.0.0.1"));
        // Garbage where a proxy should have written stops at the last
        // trusted hop.
        assert_eq!(
            r.resolve(peer, &headers(&["203.0.113.5, unknown"])),
            ip("127.0.0.1")
        );
        // An untrusted peer's header is ignored.
        let stranger = Some("192.0.2.9:5000".parse().unwrap());
        assert_eq!(
            r.resolve(stranger, &headers(&["203.0.113.5"])),
            ip("192.0.2.9")
        );
        // No trusted proxies at all: always the peer.
        assert_eq!(
            resolver(&[]).resolve(peer, &headers(&["203.0.113.5"])),
            ip("127.0.0.1")
        );
        // An IPv4-mapped peer is the IPv4 address.
        let mapped = Some("[::ffff:127.0.0.1]:5000".parse().unwrap());
        assert_eq!(
            r.resolve(mapped, &headers(&["198.51.100.1"])),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(addr_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(addr_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(addr_key(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(&*name_key("Alice"), "alice");
        assert_eq!(name_key(&"é".repeat(100)).len(), MAX_NAME_KEY);
    }

    #[test]
    fn lockouts_double_up_to_the_cap_and_are_forgotten_after_a_quiet_window() {
        let t = throttle(&[
            "--login-limit",
            "3",
            "--login-backoff",
            "1s",
            "--login-backoff-max",
            "10s",
            "--login-window",
            "60s",
        ]);
        let t0 = Instant::now();
        for _ in 0..3 {
            fail(&t, "alice", "192.0.2.1", t0);
        }
        assert_eq!(t.login("ALICE", ip("192.0.2.1"), t0).err(), Some(SEC));
        // Each further failure doubles the lock: 2 s, 4 s, 8 s, then 10 s.
        let mut now = t0 + SEC;
        for lock in [2, 4, 8, 10, 10] {
            fail(&t, "alice", "192.0.2.1", now);
            assert_eq!(
                t.login("alice", ip("192.0.2.1"), now).err(),
                Some(lock * SEC)
            );
            now += lock * SEC;
        }
        // Another address is not locked (its own pair key).
        t.login("alice", ip("192.0.2.2"), now)
            .unwrap()
            .failed_at(now);
        // A quiet window after the lock's end forgets the failures: the next
        // failure is the first again.
        now += 60 * SEC;
        fail(&t, "alice", "192.0.2.1", now);
        assert!(t.login("alice", ip("192.0.2.1"), now).is_ok());
    }

    #[test]
    fn a_success_clears_the_username_but_not_the_address() {
        let t = throttle(&[
            "--login-limit",
            "3",
            "--login-limit-ip",
            "4",
            "--login-backoff",
            "1m",
        ]);
        let now = Instant::now();
        fail(&t, "alice", "192.0.2.1", now);
        fail(&t, "alice", "192.0.2.1", now);
        t.login("alice", ip("192.0.2.1"), now)
            .unwrap()
            .succeeded_at(now);
        // alice's count starts again...
        fail(&t, "alice", "192.0.2.1", now);
        fail(&t, "alice", "192.0.2.1", now);
        // ...but the address has 4 failures: locked for strangers, though
        // not for alice, who logged in from it.
        assert!(t.login("bob", ip("192.0.2.1"), now).is_err());
        assert!(t.login("alice", ip("192.0.2.1"), now).is_ok());
    }

    #[test]
    fn attackers_elsewhere_do_not_lock_a_user_out_of_a_known_address() {
        let t = throttle(&["--login-limit-user", "5", "--login-backoff", "1m"]);
        let now = Instant::now();
        t.registered("Alice", ip("192.0.2.1"), now);
        for i in 0..5 {
            fail(&t, "alice", &format!("203.0.113.{i}"), now);
        }
        // From a sixth address: the username-wide lock.
        assert_eq!(
            t.login("alice", ip("203.0.113.99"), now).err(),
            Some(60 * SEC)
        );
        // From her own address: let through.
        t.login("alice", ip("192.0.2.1"), now)
            .unwrap()
            .succeeded_at(now);
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let t = throttle(&["--login-limit", "3"]);
        let now = Instant::now();
        let a: Vec<_> = (0..3)
            .map(|_| t.login("alice", ip("192.0.2.1"), now).unwrap())
            .collect();
        assert_eq!(
            t.login("alice", ip("192.0.2.1"), now).err(),
            Some(IN_FLIGHT_WAIT)
        );
        for attempt in a {
            attempt.failed_at(now);
        }
        assert_eq!(t.login("alice", ip("192.0.2.1"), now).err(), Some(SEC));
        // Dropping an attempt without a verdict counts as a failure.
        drop(t.login("alice", ip("192.0.2.1"), now + 2 * SEC).unwrap());
        let logins = t.logins.lock();
        let key: Pair = ("alice".into(), ip("192.0.2.1"));
        let s = logins.pairs.map.get(&key).unwrap();
        assert_eq!((s.fails, s.in_flight), (4, 0));
    }

    #[test]
    fn tables_stay_bounded_and_keep_the_longest_locks() {
        let t = throttle(&[
            "--throttle-entries",
            "64",
            "--login-limit",
            "1",
            "--login-limit-ip",
            "0",
            "--login-backoff",
            "1h",
        ]);
        let now = Instant::now();
        // The locks that expire last...
        for i in 0..8 {
            fail(&t, &format!("victim{i}"), "192.0.2.1", now + 60 * SEC);
        }
        // ...then a flood of distinct usernames and addresses.
        for i in 0..10_000u32 {
            let from = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let at = now + Duration::from_millis(u64::from(i));
            fail(&t, &format!("user{i}"), &from.to_string(), at);
        }
        let logins = t.logins.lock();
        assert!(logins.pairs.len() <= 64, "{}", logins.pairs.len());
        assert!(logins.users.len() <= 64, "{}", logins.users.len());
        drop(logins);
        for i in 0..8 {
            assert!(
                t.login(&format!("victim{i}"), ip("192.0.2.1"), now + 61 * SEC)
                    .is_err(),
                "the longest locks survive the flood"
            );
        }
    }

    #[test]
    fn registrations_refill_evenly() {
        let t = throttle(&["--register-limit", "3/1m"]);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.register(ip("192.0.2.1"), now), Ok(()));
        }
        // One more every 20 s.
        let wait = t.register(ip("192.0.2.1"), now).unwrap_err();
        assert!(
            wait.abs_diff(20 * SEC) < Duration::from_millis(1),
            "{wait:?}"
        );
        assert_eq!(t.register(ip("192.0.2.2"), now), Ok(()));
        assert_eq!(t.register(ip("192.0.2.1"), now + 21 * SEC), Ok(()));
        assert!(t.register(ip("192.0.2.1"), now + 21 * SEC).is_err());
        let off = throttle(&["--register-limit", "off"]);
        for _ in 0..100 {
            assert_eq!(off.register(ip("192.0.2.1"), now), Ok(()));
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_secs(Duration::from_secs(900)), 900);
    }
}
