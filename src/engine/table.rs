//! A table in memory: its schema, its shards, the next free row id, and the
//! key index from external id to row id.
//!
//! Key index: ids of rows checkpointed are found in place in the shards'
//! part files (a hash probe per part, skipped when the [`KeyFilter`] of the
//! parts' fingerprints says no part holds the id); ids added since sit in
//! `recent`. The
//! index is shared by all snapshots of one checkpoint generation and replaced
//! (not mutated) when a checkpoint installs new parts, so an older snapshot
//! keeps the index it was taken with.
//!
//! Invariants: an external id maps to at most one row id, and a row id is only
//! ever given to one external id; a looked-up row exists only if it is in its
//! shard's `live` bitmap (the index may still name rows deleted since the
//! last checkpoint, so that re-inserting an id reuses its row).

use super::base::BasePart;
use super::keyfilter::KeyFilter;
use super::shard::{shard_of, ShardState, SHARD_BITS};
use crate::storage::hash::FastHash;
use crate::storage::keys::{key_hash, key_hash_bytes};
use crate::storage::schema::{ColumnType, TableSchema};
use hashbrown::hash_table::{Entry, HashTable};
use parking_lot::RwLock;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

#[derive(Debug, Default)]
pub struct KeyIndex {
    /// Base part of each shard at this generation, by shard number.
    parts: Vec<Option<Arc<BasePart>>>,
    /// Holds the fingerprint of every key in `parts`, once built. An index
    /// made from parts alone (start-up) starts without it; the database's
    /// background thread fills it first thing ([`KeyIndex::fill_filter`]),
    /// so queries are answered before it is ready, and lookups probe every
    /// part until it is.
    filter: Arc<OnceLock<KeyFilter>>,
    /// Ids given a row since those parts were written.
    recent: RwLock<Recent>,
    hasher: FastHash,
}

/// The ids given a row since the parts were written: a hash table of
/// fixed-size entries whose key bytes live in one arena, so adding an id
/// allocates nothing per id and a generation is freed in two frees.
///
/// Invariant: every entry's `start..start + len` lies in `bytes` and holds
/// the UTF-8 of its id; `hash` is its [`KeyIndex::hash`].
#[derive(Debug, Default)]
struct Recent {
    table: HashTable<RecentKey>,
    bytes: Vec<u8>,
}

/// A next generation's key index half made by [`KeyIndex::prepare_next`].
pub struct NextKeys {
    parts: Vec<Option<Arc<BasePart>>>,
    filter: Arc<OnceLock<KeyFilter>>,
    recent: Recent,
    /// Ids whose rows were neither in a new part nor live at the copy.
    recheck: Recent,
    /// Length of the old generation's arena when it was copied.
    copied: usize,
}

/// One id of [`Recent`]: where its bytes are, its hash and its row.
#[derive(Debug, Clone, Copy)]
struct RecentKey {
    hash: u64,
    start: usize,
    len: u32,
    row: u32,
}

impl Recent {
    /// Room for `keys` ids of `bytes` bytes in all before anything regrows.
    fn with_capacity(keys: usize, bytes: usize) -> Self {
        Recent {
            table: HashTable::with_capacity(keys),
            bytes: Vec::with_capacity(bytes),
        }
    }

    fn key(&self, entry: &RecentKey) -> &[u8] {
        key_in(&self.bytes, entry)
    }

    fn find(&self, key: &str, hash: u64) -> Option<u32> {
        let bytes = &self.bytes;
        self.table
            .find(hash, |e| key_in(bytes, e) == key.as_bytes())
            .map(|e| e.row)
    }

    /// `Ok(row)` after giving `key` (absent) `row`; `Err(existing)` if present.
    fn find_or_insert(&mut self, key: &str, hash: u64, row: u32) -> Result<u32, u32> {
        let Recent { table, bytes } = self;
        match table.entry(hash, |e| key_in(bytes, e) == key.as_bytes(), |e| e.hash) {
            Entry::Occupied(e) => Err(e.get().row),
            Entry::Vacant(slot) => {
                let start = bytes.len();
                bytes.extend_from_slice(key.as_bytes());
                slot.insert(RecentKey {
                    hash,
                    start,
                    len: key.len() as u32,
                    row,
                });
                Ok(row)
            }
        }
    }

    /// Adds an id known to be absent (copied from another generation).
    fn insert_unique(&mut self, key: &[u8], hash: u64, row: u32) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        let entry = RecentKey {
            hash,
            start,
            len: key.len() as u32,
            row,
        };
        self.table.insert_unique(hash, entry, |e| e.hash);
    }
}

/// The bytes of `entry`'s id in its generation's arena.
fn key_in<'a>(arena: &'a [u8], entry: &RecentKey) -> &'a [u8] {
    &arena[entry.start..entry.start + entry.len as usize]
}

/// A hash of an id for [`KeyIndex`] lookups, computed once per id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdHash(u64);

impl KeyIndex {
    /// The index of a table whose shards' parts are `parts`.
    pub fn new(parts: Vec<Option<Arc<BasePart>>>) -> Self {
        KeyIndex {
            filter: Arc::new(OnceLock::new()),
            parts,
            recent: RwLock::default(),
            hasher: FastHash::default(),
        }
    }

    /// The hash of `key` the `*_hashed` methods take.
    pub fn hash(&self, key: &str) -> IdHash {
        IdHash(self.hasher.hash_one(key))
    }

    /// Builds the key filter if it is not built yet.
    pub fn fill_filter(&self) {
        if self.filter.get().is_none() {
            let _ = self.filter.set(filter_of(self.parts.iter().flatten()));
        }
    }

    /// The first half of the next generation's index, after a checkpoint
    /// wrote new parts for some shards (in `parts`); made while writers run.
    ///
    /// Every recent id is copied (briefly holding the read lock) and sorted:
    /// an id whose row the new parts hold (`in_new_part`) leaves `recent`
    /// and joins the filter; an id whose row is `live` stays; the others
    /// (rows deleted when this runs) are looked at again by
    /// [`KeyIndex::finish_next`], since a writer may upsert them meanwhile.
    pub fn prepare_next(
        &self,
        parts: Vec<Option<Arc<BasePart>>>,
        in_new_part: impl Fn(u32) -> bool,
        live: impl Fn(u32) -> bool,
    ) -> NextKeys {
        let (entries, bytes): (Vec<RecentKey>, Vec<u8>) = {
            let old = self.recent.read();
            (old.table.iter().copied().collect(), old.bytes.clone())
        };
        // The table is sized like the generation before, so that a bulk
        // load, which adds about as many ids between checkpoints each time,
        // does not regrow (and rehash) it while the writer waits; the arena
        // regrows by plain copies, so it starts at what stays.
        let mut recent = Recent::with_capacity(entries.len(), 0);
        let mut recheck = Recent::default();
        let mut moved = Vec::new();
        for entry in &entries {
            let key = key_in(&bytes, entry);
            if in_new_part(entry.row) {
                moved.push((key_hash_bytes(key) >> 32) as u32);
            } else if live(entry.row) {
                recent.insert_unique(key, entry.hash, entry.row);
            } else {
                recheck.insert_unique(key, entry.hash, entry.row);
            }
        }
        let filter = match self.filter.get() {
            Some(old) if old.inserted() + moved.len() <= old.capacity() => {
                let mut filter = old.clone();
                moved.iter().for_each(|f| filter.insert(*f));
                Arc::new(OnceLock::from(filter))
            }
            _ => Arc::new(OnceLock::from(filter_of(parts.iter().flatten()))),
        };
        NextKeys {
            parts,
            filter,
            recent,
            recheck,
            copied: bytes.len(),
        }
    }

    /// The second half of the next generation's index, called with writers
    /// paused (so `recent` no longer changes): the ids set aside by
    /// [`KeyIndex::prepare_next`] stay if their row is `live` now, and every
    /// id given a row since the copy stays.
    pub fn finish_next(&self, next: NextKeys, live: impl Fn(u32) -> bool) -> KeyIndex {
        let NextKeys {
            parts,
            filter,
            mut recent,
            recheck,
            copied,
        } = next;
        for entry in recheck.table.iter() {
            if live(entry.row) {
                recent.insert_unique(recheck.key(entry), entry.hash, entry.row);
            }
        }
        // The arena only grows within a generation: entries that start at
        // or past the copied length were added after the copy.
        let current = self.recent.read();
        for entry in current.table.iter().filter(|e| e.start >= copied) {
            recent.insert_unique(current.key(entry), entry.hash, entry.row);
        }
        drop(current);
        KeyIndex {
            parts,
            filter,
            recent: RwLock::new(recent),
            hasher: self.hasher,
        }
    }

    /// The row id `key` was given, if any (the row may have been deleted since).
    pub fn lookup(&self, key: &str) -> Option<u32> {
        self.lookup_hashed(key, self.hash(key))
    }

    /// [`KeyIndex::lookup`] with the id's hash already computed.
    pub fn lookup_hashed(&self, key: &str, hash: IdHash) -> Option<u32> {
        if let Some(row) = self.recent_row(key, hash) {
            return Some(row);
        }
        let hash = key_hash(key);
        if let Some(filter) = self.filter.get() {
            if !filter.may_contain((hash >> 32) as u32) {
                return None;
            }
        }
        self.parts.iter().enumerate().find_map(|(shard, part)| {
            let local = part.as_ref()?.find(key, hash)?;
            Some(((shard as u32) << SHARD_BITS) | local)
        })
    }

    fn recent_row(&self, key: &str, hash: IdHash) -> Option<u32> {
        self.recent.read().find(key, hash.0)
    }

    /// The row `key` was given since the parts were written, if any.
    pub fn lookup_recent(&self, key: &str) -> Option<u32> {
        self.recent_row(key, self.hash(key))
    }

    /// Gives `key`, which holds no row since the parts were written, `row`.
    pub fn insert(&self, key: &str, row: u32) {
        let given = self.find_or_insert(key, self.hash(key), row);
        debug_assert!(given.is_ok(), "{key} already had a row");
    }

    /// The row `key` was given since the parts were written, or, if none,
    /// gives it `row`: `Ok(row)` when it was given now, `Err(existing)` else.
    pub fn find_or_insert(&self, key: &str, hash: IdHash, row: u32) -> Result<u32, u32> {
        self.recent.write().find_or_insert(key, hash.0, row)
    }
}

/// A filter of the keys of `parts`, with room for twice as many (and at
/// least 2^20: 1.25 MiB).
fn filter_of<'a>(parts: impl Iterator<Item = &'a Arc<BasePart>> + Clone) -> KeyFilter {
    let keys: usize = parts.clone().map(|p| p.key_count()).sum();
    let mut filter = KeyFilter::with_capacity((keys * 2).max(1 << 20));
    for part in parts {
        part.fingerprints().for_each(|f| filter.insert(f));
    }
    filter
}

#[derive(Debug, Clone)]
pub struct TableState {
    pub id: u32,
    pub schema: Arc<TableSchema>,
    pub types: Arc<[ColumnType]>,
    pub next_row: u32,
    pub shards: Vec<Arc<ShardState>>,
    pub keys: Arc<KeyIndex>,
}

impl TableState {
    pub fn new(id: u32, schema: TableSchema) -> Self {
        let types: Arc<[ColumnType]> = schema.columns.iter().map(|c| c.ty).collect();
        TableState {
            id,
            schema: Arc::new(schema),
            types,
            next_row: 0,
            shards: Vec::new(),
            keys: Arc::default(),
        }
    }

    /// The row of `key` if it exists now.
    pub fn live_row(&self, key: &str) -> Option<u32> {
        let row = self.keys.lookup(key)?;
        let shard = self.shards.get(shard_of(row) as usize)?;
        shard.live.contains(row).then_some(row)
    }

    /// Number of live rows.
    pub fn row_count(&self) -> u64 {
        self.shards.iter().map(|s| s.live.len()).sum()
    }

    /// The shard holding `row`, created empty if needed, ready to change (with
    /// a new content version).
    pub fn shard_mut(&mut self, row: u32) -> &mut ShardState {
        let s = shard_of(row) as usize;
        while self.shards.len() <= s {
            let number = self.shards.len() as u32;
            self.shards
                .push(Arc::new(ShardState::empty(number, &self.types)));
        }
        let shard = Arc::make_mut(&mut self.shards[s]);
        shard.version = super::derived::next_version();
        shard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows 0..=2 given to ids a, b, c; `live` says which rows are live.
    fn index_with_three_ids() -> KeyIndex {
        let index = KeyIndex::new(Vec::new());
        for (row, key) in ["a", "b", "c"].into_iter().enumerate() {
            index.insert(key, row as u32);
        }
        index
    }

    #[test]
    fn next_generation_keeps_live_ids_and_drops_ids_a_part_now_holds() {
        let index = index_with_three_ids();
        // Row 1 went to a new part; rows 0 and 2 are live and not in it.
        let half = index.prepare_next(Vec::new(), |row| row == 1, |_| true);
        let next = index.finish_next(half, |_| true);
        assert_eq!(next.lookup_recent("a"), Some(0));
        assert_eq!(next.lookup_recent("b"), None);
        assert_eq!(next.lookup_recent("c"), Some(2));
    }

    #[test]
    fn an_id_upserted_again_between_the_halves_keeps_its_row() {
        let index = index_with_three_ids();
        // Row 2 was deleted when the first half ran...
        let half = index.prepare_next(Vec::new(), |_| false, |row| row != 2);
        // ... and a writer upserted "c" again before the second half: it
        // found its row in the old index and made it live.
        assert_eq!(index.find_or_insert("c", index.hash("c"), 9), Err(2));
        let next = index.finish_next(half, |_| true);
        assert_eq!(next.lookup_recent("c"), Some(2));
    }

    #[test]
    fn a_row_still_deleted_at_the_second_half_leaves_the_index() {
        let index = index_with_three_ids();
        let half = index.prepare_next(Vec::new(), |_| false, |row| row != 2);
        let next = index.finish_next(half, |row| row != 2);
        assert_eq!(next.lookup_recent("c"), None);
        assert_eq!(next.lookup_recent("a"), Some(0));
    }

    #[test]
    fn ids_given_rows_between_the_halves_are_kept() {
        let index = index_with_three_ids();
        let half = index.prepare_next(Vec::new(), |_| false, |_| true);
        assert_eq!(index.find_or_insert("d", index.hash("d"), 3), Ok(3));
        assert_eq!(index.find_or_insert("e", index.hash("e"), 4), Ok(4));
        let next = index.finish_next(half, |_| true);
        for (key, row) in [("a", 0), ("b", 1), ("c", 2), ("d", 3), ("e", 4)] {
            assert_eq!(next.lookup_recent(key), Some(row), "{key}");
        }
        // The new generation goes on giving rows and refusing repeats.
        assert_eq!(next.find_or_insert("f", next.hash("f"), 5), Ok(5));
        assert_eq!(next.find_or_insert("a", next.hash("a"), 6), Err(0));
    }
}
