//! The throttle's rules, without a network.

use super::*;
use std::net::Ipv4Addr;
use warp::http::HeaderName;

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
