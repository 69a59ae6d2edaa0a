//! Free loopback ports.
//!
//! The kernel picks a port that is free right now (bind to port 0), and we
//! hand it to a server that binds it a moment later. Another process could
//! take it in between; the servers that start on a fresh port retry with a
//! new one when that happens (see each service's `start`).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A TCP port on 127.0.0.1 that nothing listens on at the moment.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Whether something accepts TCP connections at `addr` (within 1 s).
pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        let l = TcpListener::bind(loopback(port)).unwrap();
        assert!(accepts(l.local_addr().unwrap()));
    }
}
