//! The little HTTP/1.1 a health check needs, over a std `TcpStream`: one
//! GET, `Connection: close`, read the status line. No client library for
//! a request a second.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Connects to `addr` and sends `GET path` (`Connection: close`), with
/// `timeout` on the connect, every read and every write.
fn request(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    Ok(s)
}

/// `GET path` on `addr`; the response's status code. Fails if nothing
/// listens, or no status line comes within `timeout`.
pub(crate) fn get_status(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<u16> {
    let mut s = request(addr, path, timeout)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status(&head).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "no HTTP status line from {addr}: {:?}",
                String::from_utf8_lossy(&head)
            ),
        )
    })
}

/// `GET path` on `addr`: the status code and the body (everything after
/// the headers; the relay's small answers are not chunked).
pub(crate) fn get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<(u16, String)> {
    let mut s = request(addr, path, timeout)?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let status = parse_status(&all).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no HTTP status line from {addr}"),
        )
    })?;
    let body = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| String::from_utf8_lossy(&all[i + 4..]).into_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The value of an unlabelled sample `name` in Prometheus text.
pub(crate) fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The code in `HTTP/1.x NNN reason`.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"SSH-2.0-x\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn samples() {
        let text = "# TYPE a counter\na 3\nab 4\nc{x=\"1\"} 5\n";
        assert_eq!(sample(text, "a"), Some(3.0));
        assert_eq!(sample(text, "ab"), Some(4.0));
        assert_eq!(sample(text, "c"), None);
        assert_eq!(sample(text, "d"), None);
    }
}
