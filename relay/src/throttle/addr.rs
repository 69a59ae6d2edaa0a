//! The client address of a request: the TCP peer, or what a trusted proxy
//! says it is; and the keys addresses are counted under.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use warp::http::{HeaderMap, HeaderName};

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
