//! The localStorage cache (`ferrochat.cache.<userId>`): offline-first
//! display only, the server stays the source of truth.

use super::{Chat, ConvKey, Conversation, GroupMeta};
use serde::{Deserialize, Serialize};
use shared::UserId;
use std::rc::Rc;

/// Messages per conversation kept in the localStorage cache.
pub const CACHED_MESSAGES_PER_CONVERSATION: usize = 100;

impl Chat {
    /// The cacheable part, for localStorage.
    pub fn to_cache(&self) -> ChatCache {
        ChatCache {
            version: ChatCache::VERSION,
            user_id: self.me,
            active: self.active,
            conversations: self
                .conversations
                .values()
                .map(|c| {
                    let mut c = (**c).clone();
                    let n = c.messages.len();
                    c.messages
                        .drain(..n.saturating_sub(CACHED_MESSAGES_PER_CONVERSATION));
                    c
                })
                .collect(),
        }
    }

    /// Restores from the cache (ignored when it belongs to someone else).
    pub fn restore(&mut self, cache: ChatCache) {
        if cache.version != ChatCache::VERSION || cache.user_id != self.me {
            return;
        }
        for mut c in cache.conversations {
            if c.key.is_group() {
                c.group = Some(GroupMeta::default());
            }
            self.conversations.insert(Rc::new(c));
        }
        self.active = cache.active.filter(|a| self.conversations.contains_key(a));
    }
}

/// What `ferrochat.cache.<userId>` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatCache {
    /// Format version; a mismatch drops the cache.
    pub version: u32,
    /// Whose cache this is.
    pub user_id: Option<UserId>,
    /// The conversation that was open.
    #[serde(default)]
    pub active: Option<ConvKey>,
    /// The conversations.
    pub conversations: Vec<Conversation>,
}

impl ChatCache {
    /// The current format.
    pub const VERSION: u32 = 2;

    /// The localStorage key for a user's cache.
    pub fn key(user: UserId) -> String {
        format!("ferrochat.cache.{user}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::model::{MsgState, PushOutcome};

    #[test]
    fn cache_round_trips_and_belongs_to_one_user() {
        let mut c = chat();
        c.on_push(&push(90, BOB, ME, 1, 1, None));
        c.queue_outgoing(KB, "bob", "w-9".into(), "unsent <b>html</b>".into(), 2)
            .unwrap();
        c.on_push(&gpush(91, CAROL, 1));
        c.open(KB, "bob", 3);
        let json = serde_json::to_string(&c.to_cache()).unwrap();
        assert!(json.contains("\"msgId\""));

        let mut restored = chat();
        restored.restore(serde_json::from_str(&json).unwrap());
        assert_eq!(restored.active, Some(KB));
        let m = msgs(&restored, KB);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].body, "unsent <b>html</b>");
        assert_eq!(m[1].state, MsgState::Sending);
        assert_eq!(msgs(&restored, KG).len(), 1);
        let cids: Vec<_> = restored
            .pending_frames()
            .iter()
            .filter_map(cid_of)
            .collect();
        assert_eq!(cids, ["w-9"]);
        assert_eq!(
            restored.on_push(&push(90, BOB, ME, 1, 1, None)),
            PushOutcome::Duplicate
        );

        let mut other = Chat::new(CAROL, "carol");
        other.restore(serde_json::from_str(&json).unwrap());
        assert!(other.conversations.is_empty());
        // The old format (version 1) is dropped, not misread.
        let mut old = chat();
        old.restore(ChatCache {
            version: 1,
            ..c.to_cache()
        });
        assert!(old.conversations.is_empty());
    }

    #[test]
    fn the_cache_keeps_only_the_newest_messages() {
        let mut c = chat();
        let n = CACHED_MESSAGES_PER_CONVERSATION as u64 + 5;
        for i in 1..=n {
            c.on_push(&push(2_000 + u128::from(i), BOB, ME, i as i64, i, None));
        }
        assert_eq!(msgs(&c, KB).len() as u64, n, "memory keeps them all");
        let cache = c.to_cache();
        let kept = &cache.conversations[0].messages;
        assert_eq!(kept.len(), CACHED_MESSAGES_PER_CONVERSATION);
        assert_eq!(kept.last().unwrap().seq, n);
    }
}
