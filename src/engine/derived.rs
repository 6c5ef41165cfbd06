//! Derived bitmaps: per-shard results that the query layer computes from a
//! shard's content and wants to reuse (materialized segments), cached by the
//! shard's content version.
//!
//! The engine knows nothing of what a key means: a key names a
//! deterministic function of a shard's rows (the query layer uses the bound
//! predicate), and an entry is valid exactly while the shard's
//! [`version`](super::shard::ShardState::version) is the one it was computed
//! at.
//!
//! Invariants: every change to a shard's rows gives it a new version (all
//! writes go through `TableState::shard_mut`; a new or loaded shard gets a
//! fresh one), versions are never reused within a process, so a stale entry
//! can never be returned; the cache holds at most [`MAX_KEYS`] keys and drops
//! everything when a new key would exceed it.

use parking_lot::Mutex;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Keys (segment definitions) kept before the cache starts over.
pub const MAX_KEYS: usize = 1024;

static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

/// A content version never handed out before in this process.
pub(crate) fn next_version() -> u64 {
    NEXT_VERSION.fetch_add(1, Ordering::Relaxed)
}

type ShardEntries = HashMap<u32, (u64, Arc<RoaringBitmap>)>;

/// Cached per-shard bitmaps, shared by every snapshot of one database.
#[derive(Debug, Default)]
pub struct DerivedBitmaps {
    entries: Mutex<HashMap<Arc<str>, ShardEntries>>,
}

impl DerivedBitmaps {
    /// The bitmap for `key` on shard `shard` at content `version`, if cached.
    pub fn get(&self, key: &str, shard: u32, version: u64) -> Option<Arc<RoaringBitmap>> {
        let entries = self.entries.lock();
        match entries.get(key)?.get(&shard) {
            Some((v, bits)) if *v == version => Some(bits.clone()),
            _ => None,
        }
    }

    /// Stores the bitmap for `key` on `shard` at `version`, replacing an
    /// older one.
    pub fn put(&self, key: &Arc<str>, shard: u32, version: u64, bits: Arc<RoaringBitmap>) {
        let mut entries = self.entries.lock();
        if !entries.contains_key(key) && entries.len() >= MAX_KEYS {
            entries.clear();
        }
        entries
            .entry(key.clone())
            .or_default()
            .insert(shard, (version, bits));
    }

    /// Number of keys cached (for tests and stats).
    pub fn keys(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_valid_only_at_their_version() {
        let cache = DerivedBitmaps::default();
        let key: Arc<str> = Arc::from("k");
        let v1 = next_version();
        let v2 = next_version();
        assert_ne!(v1, v2);
        cache.put(&key, 0, v1, Arc::new(RoaringBitmap::from_iter([1, 2])));
        assert_eq!(cache.get("k", 0, v1).map(|b| b.len()), Some(2));
        assert!(cache.get("k", 0, v2).is_none(), "another version");
        assert!(cache.get("k", 1, v1).is_none(), "another shard");
        assert!(cache.get("other", 0, v1).is_none(), "another key");
        cache.put(&key, 0, v2, Arc::new(RoaringBitmap::new()));
        assert!(cache.get("k", 0, v1).is_none(), "replaced");
    }

    #[test]
    fn too_many_keys_start_the_cache_over() {
        let cache = DerivedBitmaps::default();
        for i in 0..=MAX_KEYS {
            cache.put(&Arc::from(format!("k{i}")), 0, 1, Arc::default());
        }
        assert_eq!(cache.keys(), 1);
    }
}
