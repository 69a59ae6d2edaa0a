//! Where a webhook points: `http://host[:port][/path]`, and whether the
//! addresses it resolves to may be reached. Loopback, private (RFC 1918),
//! link-local, unique-local, CGNAT, unspecified, multicast and broadcast
//! addresses are refused unless `--webhook-allow-private`: a bot's URL
//! must not make the relay a proxy into its own network. The check runs
//! on the addresses the name resolves to at each delivery, and the
//! connection goes to the address checked (no second lookup to rebind).

use std::net::{IpAddr, SocketAddr};

/// A parsed webhook URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host name or address literal (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// The `Host` header.
    pub authority: String,
}

impl Target {
    /// Parses `url`; only `http://` for now (no TLS client is built in:
    /// put a TLS-terminating proxy you trust in front of an https
    /// receiver).
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") {
            return Err(format!(
                "{url:?}: https webhooks are not supported yet; use http:// (see docs/bots.md)"
            ));
        } else {
            return Err(format!("{url:?} is not an http:// URL"));
        };
        if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{url:?} is not a valid URL"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url:?}: no host, or credentials in the URL"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: bad IPv6 literal"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("{url:?}: bad port"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        Ok(Target {
            host,
            port,
            path,
            authority: authority.to_string(),
        })
    }

    /// The address to connect to: the first the host resolves to, if
    /// every one of them may be reached (`Err` says why not; a refusal is
    /// final, a failed lookup is not: the bool).
    pub async fn resolve(&self, allow_private: bool) -> Result<SocketAddr, (String, bool)> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| (format!("cannot resolve {}: {e}", self.host), false))?
            .collect();
        let first = *addrs
            .first()
            .ok_or_else(|| (format!("{} resolves to nothing", self.host), false))?;
        if !allow_private {
            if let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
                return Err((
                    format!(
                        "refused: {} resolves to {}, a loopback or private address (see --webhook-allow-private)",
                        self.host,
                        bad.ip()
                    ),
                    true,
                ));
            }
        }
        Ok(first)
    }
}

/// Whether `ip` is one a webhook may not reach by default.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link local fe80::/10
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://example.com:8081/hook?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("example.com", 8081, "/hook?x=1")
        );
        let t = Target::parse("http://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        assert_eq!(Target::parse("http://h?q").unwrap().path, "/?q");
        for bad in [
            "https://x/",
            "ftp://x",
            "http://",
            "http://u:p@x/",
            "http://x:99999/",
            "http://a b/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1", "100.128.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_is_refused_without_the_flag() {
        let t = Target::parse("http://127.0.0.1:9/").unwrap();
        let (e, fatal) = t.resolve(false).await.unwrap_err();
        assert!(fatal && e.contains("refused"), "{e}");
        assert!(t.resolve(true).await.is_ok());
    }
}
