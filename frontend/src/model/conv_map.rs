//! The conversations, by key.
//!
//! A `Vec` kept sorted by [`ConvKey`] with binary search, not a `BTreeMap`:
//! a user has tens to a few hundred conversations, and a `BTreeMap` of
//! these types is another full copy of the standard library's B-tree code
//! in the wasm (about 14 kB, measured), against a download budget.

use super::{ConvKey, Conversation};
use std::rc::Rc;

/// Conversations by key, each held once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvMap {
    /// Sorted by `key`, no two with the same key.
    sorted: Vec<Rc<Conversation>>,
}

impl ConvMap {
    fn find(&self, key: ConvKey) -> Result<usize, usize> {
        self.sorted.binary_search_by(|c| c.key.cmp(&key))
    }

    /// The conversation with this key.
    pub fn get(&self, key: &ConvKey) -> Option<&Rc<Conversation>> {
        self.find(*key).ok().map(|i| &self.sorted[i])
    }

    /// The conversation with this key, to change.
    pub fn get_mut(&mut self, key: &ConvKey) -> Option<&mut Rc<Conversation>> {
        self.find(*key).ok().map(|i| &mut self.sorted[i])
    }

    /// Whether a conversation has this key.
    pub fn contains_key(&self, key: &ConvKey) -> bool {
        self.find(*key).is_ok()
    }

    /// The conversation with this key, made by `new` when missing.
    pub fn get_or_insert_with(
        &mut self,
        key: ConvKey,
        new: impl FnOnce() -> Conversation,
    ) -> &mut Rc<Conversation> {
        let i = match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                self.sorted.insert(i, Rc::new(new()));
                i
            }
        };
        &mut self.sorted[i]
    }

    /// Adds a conversation, replacing the one with the same key.
    pub fn insert(&mut self, c: Rc<Conversation>) {
        match self.find(c.key) {
            Ok(i) => self.sorted[i] = c,
            Err(i) => self.sorted.insert(i, c),
        }
    }

    /// Removes the conversation with this key.
    pub fn remove(&mut self, key: &ConvKey) -> Option<Rc<Conversation>> {
        self.find(*key).ok().map(|i| self.sorted.remove(i))
    }

    /// Keeps the conversations `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&Conversation) -> bool) {
        self.sorted.retain(|c| keep(c));
    }

    /// Every conversation, by key.
    pub fn values(&self) -> std::slice::Iter<'_, Rc<Conversation>> {
        self.sorted.iter()
    }

    /// Every conversation, by key, to change.
    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, Rc<Conversation>> {
        self.sorted.iter_mut()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{GroupId, UserId};

    fn conv(key: ConvKey, name: &str) -> Rc<Conversation> {
        Rc::new(Conversation::new(key, name, 0))
    }

    #[test]
    fn a_sorted_map_by_key() {
        let (a, b, g) = (
            ConvKey::User(UserId(2)),
            ConvKey::User(UserId(1)),
            ConvKey::Group(GroupId(1)),
        );
        let mut m = ConvMap::default();
        m.insert(conv(g, "team"));
        m.insert(conv(a, "bob"));
        m.get_or_insert_with(b, || Conversation::new(b, "ann", 0));
        m.get_or_insert_with(b, || unreachable!("present"));
        let keys: Vec<_> = m.values().map(|c| c.key).collect();
        assert_eq!(keys, [b, a, g], "by key, each once");
        m.insert(conv(a, "bobby"));
        assert_eq!((m.len(), m.get(&a).unwrap().name.as_str()), (3, "bobby"));
        Rc::make_mut(m.get_mut(&g).unwrap()).unread = 4;
        assert_eq!(m.get(&g).unwrap().unread, 4);
        assert_eq!(m.remove(&a).map(|c| c.key), Some(a));
        assert!(m.remove(&a).is_none() && !m.contains_key(&a));
        m.retain(|c| c.key.is_group());
        assert_eq!(m.values().map(|c| c.key).collect::<Vec<_>>(), [g]);
        assert!(!m.is_empty());
    }
}
