//! A bounded map whose entries expire: what every throttle table is.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// A table entry that can be forgotten.
pub(super) trait Expiring {
    /// When it may be dropped; `None` while it must stay (an attempt is in
    /// flight).
    fn expiry(&self) -> Option<Instant>;

    fn expired(&self, now: Instant) -> bool {
        self.expiry().is_some_and(|e| e <= now)
    }
}

impl Expiring for Instant {
    fn expiry(&self) -> Option<Instant> {
        Some(*self)
    }
}

/// A map of at most `cap` entries (see the module doc, "Memory").
pub(super) struct Table<K, V> {
    pub(super) map: HashMap<K, V>,
    cap: usize,
}

impl<K: Eq + Hash + Clone, V: Expiring> Table<K, V> {
    pub(super) fn new(cap: usize) -> Self {
        Table {
            map: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// The live entry for `k`; an expired one is dropped first.
    pub(super) fn get_mut(&mut self, k: &K, now: Instant) -> Option<&mut V> {
        if self.map.get(k).is_some_and(|v| v.expired(now)) {
            self.map.remove(k);
        }
        self.map.get_mut(k)
    }

    /// The live entry for `k`, made by `make` if there is none.
    pub(super) fn get_or_insert(&mut self, k: K, now: Instant, make: impl FnOnce() -> V) -> &mut V {
        if self.get_mut(&k, now).is_none() {
            self.make_room(now);
        }
        self.map.entry(k).or_insert_with(make)
    }

    pub(super) fn remove(&mut self, k: &K) {
        self.map.remove(k);
    }

    /// Below `cap` entries, with some slack: expired entries go first, then
    /// those that would expire soonest, down to seven eighths of `cap`.
    fn make_room(&mut self, now: Instant) {
        if self.map.len() < self.cap {
            return;
        }
        self.map.retain(|_, v| !v.expired(now));
        let target = self.cap - self.cap / 8;
        if self.map.len() > target {
            let mut expiries: Vec<Instant> = self.map.values().filter_map(V::expiry).collect();
            let n = (self.map.len() - target).min(expiries.len());
            if n > 0 {
                let cutoff = *expiries.select_nth_unstable(n - 1).1;
                self.map
                    .retain(|_, v| v.expiry().is_none_or(|e| e > cutoff));
            }
        }
        // Everything left is in flight (a flood of concurrent requests):
        // drop any.
        while self.map.len() >= self.cap {
            let Some(k) = self.map.keys().next().cloned() else {
                break;
            };
            self.map.remove(&k);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}
