//! The WebSocket session's state as the UI shows it.

/// The WebSocket session, as the banner shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConnStatus {
    /// Not signed in: no socket.
    #[default]
    Idle,
    /// First connection attempt since sign-in.
    Connecting,
    /// Logged in on the socket.
    Online,
    /// Lost the connection; the next attempt starts in `retry_in_ms`.
    Reconnecting {
        /// Attempts since the last successful login.
        attempt: u32,
        /// Delay before the next attempt.
        retry_in_ms: u32,
    },
}

impl ConnStatus {
    /// The banner text, or `None` when no banner should show.
    pub fn banner(self) -> Option<String> {
        match self {
            ConnStatus::Idle | ConnStatus::Online => None,
            ConnStatus::Connecting => Some("Connecting…".into()),
            ConnStatus::Reconnecting { .. } => Some("Connection lost — reconnecting…".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_text() {
        assert_eq!(ConnStatus::Online.banner(), None);
        assert_eq!(ConnStatus::Idle.banner(), None);
        let r = ConnStatus::Reconnecting {
            attempt: 3,
            retry_in_ms: 4_200,
        }
        .banner()
        .unwrap();
        assert!(r.contains("reconnecting…"), "{r}");
        assert!(ConnStatus::Connecting.banner().is_some());
    }
}
