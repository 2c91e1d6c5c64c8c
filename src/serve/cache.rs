//! The mirror's short-lived caches: one key shape (a repo and one item of it) and one
//! time-limited, size-bounded map.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::registry::RepoKind;

/// One item of one repo: a commit, a branch, or the digest of a caller's token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoItemKey {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub repo: String,
    /// The commit, branch or token digest.
    pub item: String,
}

impl RepoItemKey {
    /// The key of `item` of `repo`.
    pub fn new(kind: RepoKind, repo: impl Into<String>, item: impl Into<String>) -> Self {
        RepoItemKey {
            kind,
            repo: repo.into(),
            item: item.into(),
        }
    }
}

/// A map whose entries expire `ttl` after they were inserted, holding at most `max` entries
/// (when full, expired entries go first, then everything: a cache refills).
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// An empty cache.
    pub fn new(ttl: Duration, max: usize) -> Self {
        TtlCache {
            ttl,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value under `key`, if it has not expired.
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (at, value) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Remember `value` under `key` from now on.
    pub fn insert(&self, key: K, value: V) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.max {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// Forget every entry whose key `forget` selects.
    pub fn forget(&self, mut forget: impl FnMut(&K) -> bool) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|key, _| !forget(key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_size_stays_bounded() {
        let cache = TtlCache::new(Duration::from_millis(50), 2);
        cache.insert(1, "a");
        assert_eq!(cache.get(&1), Some("a"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&1), None);
        cache.insert(2, "b");
        cache.insert(3, "c");
        // Full of fresh entries: the next insert starts over.
        cache.insert(4, "d");
        assert_eq!(cache.get(&4), Some("d"));
        assert!(cache.entries.lock().unwrap().len() <= 2);
        cache.forget(|key| *key == 4);
        assert_eq!(cache.get(&4), None);
    }
}
