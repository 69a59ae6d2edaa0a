//! Rate limits for frames the UI sends on its own: READ (at most every
//! 500 ms) and TYPING (at most once a second per conversation). Pure: the
//! caller passes the clock.

use crate::model::ConvKey;

/// Minimum gap between two READ frames.
pub const READ_INTERVAL_MS: i64 = 500;

/// Minimum gap between two TYPING frames for one conversation (the relay
/// drops extras within a second anyway).
pub const TYPING_INTERVAL_MS: i64 = 1_000;

/// One rate limit, per key.
#[derive(Clone, Debug, Default)]
pub struct Throttle {
    interval_ms: i64,
    last: Vec<(ConvKey, i64)>,
    /// Last send for any key (READ is limited globally).
    any: Option<i64>,
    global: bool,
}

impl Throttle {
    /// One limit shared by every conversation.
    pub fn global(interval_ms: i64) -> Self {
        Throttle {
            interval_ms,
            global: true,
            ..Throttle::default()
        }
    }

    /// One limit per conversation.
    pub fn per_key(interval_ms: i64) -> Self {
        Throttle {
            interval_ms,
            ..Throttle::default()
        }
    }

    /// `Ok(())` if a frame may go now (and records it), else how many
    /// milliseconds to wait.
    pub fn try_send(&mut self, key: ConvKey, now: i64) -> Result<(), i64> {
        let last = if self.global {
            self.any
        } else {
            self.last.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
        };
        if let Some(t) = last {
            let wait = t + self.interval_ms - now;
            if wait > 0 {
                return Err(wait);
            }
        }
        if self.global {
            self.any = Some(now);
        } else {
            self.reset(key);
            self.last.push((key, now));
        }
        Ok(())
    }

    /// Forgets a key (after a message is sent, the next keystroke
    /// announces typing again at once).
    pub fn reset(&mut self, key: ConvKey) {
        self.last.retain(|(k, _)| *k != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{GroupId, UserId};

    #[test]
    fn read_is_limited_across_conversations() {
        let (a, b) = (ConvKey::User(UserId(2)), ConvKey::Group(GroupId(3)));
        let mut t = Throttle::global(READ_INTERVAL_MS);
        assert_eq!(t.try_send(a, 1_000), Ok(()));
        assert_eq!(t.try_send(b, 1_100), Err(400));
        assert_eq!(t.try_send(a, 1_499), Err(1));
        assert_eq!(t.try_send(a, 1_500), Ok(()));
    }

    #[test]
    fn typing_is_limited_per_conversation() {
        let (a, b) = (ConvKey::User(UserId(2)), ConvKey::Group(GroupId(3)));
        let mut t = Throttle::per_key(TYPING_INTERVAL_MS);
        assert_eq!(t.try_send(a, 0), Ok(()));
        assert_eq!(t.try_send(b, 10), Ok(()), "another conversation");
        assert_eq!(t.try_send(a, 999), Err(1));
        assert_eq!(t.try_send(a, 1_000), Ok(()));
        t.reset(a);
        assert_eq!(t.try_send(a, 1_001), Ok(()), "reset after sending");
    }
}
