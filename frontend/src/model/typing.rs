//! "… is typing" notices: who, where, until when.

use super::{Chat, ConvKey};
use shared::{Target, UserId};

/// How long "… is typing" shows after the last notice.
pub const TYPING_SHOW_MS: i64 = 5_000;

/// Someone typing somewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Typing {
    /// Where.
    pub key: ConvKey,
    /// Who.
    pub user: UserId,
    /// Their username.
    pub name: String,
    /// Shown until this local time.
    pub until: i64,
}

impl Chat {
    /// TYPING (60) from someone.
    pub fn on_typing(&mut self, from: UserId, name: &str, to: Target, now: i64) -> bool {
        if Some(from) == self.me {
            return false;
        }
        let key = match to {
            Target::User(_) => ConvKey::User(from),
            Target::Group(g) => ConvKey::Group(g),
        };
        let until = now + TYPING_SHOW_MS;
        match self
            .typing
            .iter_mut()
            .find(|t| t.key == key && t.user == from)
        {
            Some(t) => t.until = until,
            None => self.typing.push(Typing {
                key,
                user: from,
                name: name.to_string(),
                until,
            }),
        }
        true
    }

    /// Forgets typing notices older than [`TYPING_SHOW_MS`].
    pub fn expire_typing(&mut self, now: i64) -> bool {
        let n = self.typing.len();
        self.typing.retain(|t| t.until > now);
        self.typing.len() != n
    }

    /// Who is typing in a conversation, in the order they started.
    pub fn typing_in(&self, key: ConvKey) -> Vec<String> {
        self.typing
            .iter()
            .filter(|t| t.key == key)
            .map(|t| t.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use shared::Target;

    #[test]
    fn typing_notices_show_for_a_while_and_end_with_the_message() {
        let mut c = chat();
        assert!(c.on_typing(BOB, "bob", Target::User(ME), 0));
        assert!(c.on_typing(CAROL, "carol", Target::Group(G), 0));
        assert!(c.on_typing(BOB, "bob", Target::Group(G), 100));
        assert!(!c.on_typing(ME, "me", Target::Group(G), 100), "not us");
        assert_eq!(c.typing_in(KB), ["bob"]);
        assert_eq!(c.typing_in(KG), ["carol", "bob"]);
        // bob keeps typing in the group: his notice is extended.
        c.on_typing(BOB, "bob", Target::Group(G), 3_000);
        assert!(c.expire_typing(TYPING_SHOW_MS));
        assert_eq!(c.typing_in(KB), Vec::<String>::new());
        assert_eq!(c.typing_in(KG), ["bob"]);
        assert!(!c.expire_typing(TYPING_SHOW_MS + 1));
        // His message ends it.
        c.on_push(&gpush(5, BOB, 1));
        assert!(c.typing_in(KG).is_empty());
    }
}
