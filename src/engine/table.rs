//! A table in memory: its schema, its shards, the next free row id, and the
//! key index from external id to row id.
//!
//! Key index: ids of rows checkpointed are found in place in the shards'
//! part files (a hash probe per part, skipped when the [`KeyFilter`] of the
//! parts' fingerprints says no part holds the id); ids given a row since
//! sit in in-memory layers. Writers add to one layer, `recent`. When a
//! checkpoint takes its snapshot, that layer is frozen (no writer adds to
//! it again) and a new one starts ([`KeyIndex::rotated`]); when the
//! checkpoint installs its parts, which hold every row given at or before
//! the snapshot, the frozen layers are dropped whole and their ids'
//! fingerprints join the filter ([`KeyIndex::installed`]). No id is copied
//! from layer to layer.
//!
//! An index is replaced (not mutated) at a rotation and at an install, so an
//! older snapshot keeps the parts, filter and frozen layers it was taken
//! with; it shares the layer writers add to with the newer indexes, so it
//! may find ids given rows after it: a lookup for a snapshot takes the first
//! row that is live in it ([`KeyIndex::lookup_live`]).
//!
//! Invariants: an external id maps to at most one row id, and a row id is only
//! ever given to one external id; a looked-up row exists only if it is in its
//! shard's `live` bitmap (the index may still name rows deleted since the
//! last checkpoint, so that re-inserting an id reuses its row); for the
//! newest index, every id a part holds passes the filter, and every id with
//! a live row is in a layer or a part.

use super::base::BasePart;
use super::keyfilter::KeyFilter;
use super::shard::{shard_of, ShardState, SHARD_BITS};
use crate::storage::hash::{prefetch, FastHash};
use crate::storage::keys::{key_hash, key_hash_bytes};
use crate::storage::schema::{ColumnType, TableSchema};
use parking_lot::RwLock;
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
    /// Ids given a row since the newest checkpoint snapshot: the layer
    /// writers add to, shared with older indexes.
    recent: Arc<RwLock<Recent>>,
    /// Ids given a row before the snapshot of a checkpoint that has not
    /// installed its parts yet, newest first; no writer adds to them.
    frozen: Vec<Arc<RwLock<Recent>>>,
    hasher: FastHash,
}

/// One layer of ids given a row since the parts were written: an
/// open-addressing table (linear probing, at most half full) of 8-byte
/// slots over a list of fixed-size entries whose key bytes live in one
/// arena. A miss reads one slot (a batch prefetches it, [`Recent::prefetch`]);
/// adding an id allocates nothing of its own, and a layer is freed in three
/// frees.
///
/// Invariants: a slot is 0 (empty) or `(tag << 32) | (index + 1)` for the
/// entry at `index`, whose hash's high half is `tag`; every entry has one
/// slot, reached from `hash & mask` without crossing an empty slot; every
/// entry's `start..start + len` lies in `bytes` and holds the UTF-8 of its
/// id; `hash` is its [`KeyIndex`] hasher's hash.
#[derive(Debug, Default)]
struct Recent {
    slots: Vec<u64>,
    entries: Vec<RecentKey>,
    bytes: Vec<u8>,
    /// Ids and key bytes the layer is expected to take: its first growth
    /// makes room for them at once.
    expect: (usize, usize),
}

/// One id of [`Recent`]: its hash, where its bytes are, and its row.
#[derive(Debug, Clone, Copy)]
struct RecentKey {
    hash: u64,
    start: usize,
    len: u32,
    row: u32,
}

/// Fewest slots a non-empty layer has.
const MIN_SLOTS: usize = 16;

impl Recent {
    /// An empty layer that makes room for `keys` ids of `bytes` bytes in
    /// all when its first id arrives (not before: a layer that stays empty,
    /// as after a load, costs no memory).
    fn expecting(keys: usize, bytes: usize) -> Self {
        Recent {
            expect: (keys, bytes),
            ..Recent::default()
        }
    }

    /// Slots for `keys` ids: at least twice as many, a power of two.
    fn slots_for(keys: usize) -> usize {
        (keys * 2).next_power_of_two().max(MIN_SLOTS)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry holding `key`, or the empty slot where it would go.
    fn probe(&self, key: &[u8], hash: u64) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let tag = hash >> 32;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return Err(i);
            }
            if slot >> 32 == tag {
                let index = (slot as u32 - 1) as usize;
                if key_in(&self.bytes, &self.entries[index]) == key {
                    return Ok(index);
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn find(&self, key: &str, hash: u64) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        self.probe(key.as_bytes(), hash)
            .ok()
            .map(|index| self.entries[index].row)
    }

    /// Starts fetching the slot a probe for `hash` reads first.
    fn prefetch(&self, hash: u64) {
        if !self.entries.is_empty() {
            prefetch(&self.slots[hash as usize & (self.slots.len() - 1)]);
        }
    }

    /// `Ok(row)` after giving `key` (absent) `row`; `Err(existing)` if present.
    fn find_or_insert(&mut self, key: &str, hash: u64, row: u32) -> Result<u32, u32> {
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        match self.probe(key.as_bytes(), hash) {
            Ok(index) => Err(self.entries[index].row),
            Err(slot) => {
                let index = self.entries.len() as u64;
                self.slots[slot] = (hash >> 32) << 32 | (index + 1);
                let start = self.bytes.len();
                self.bytes.extend_from_slice(key.as_bytes());
                self.entries.push(RecentKey {
                    hash,
                    start,
                    len: key.len() as u32,
                    row,
                });
                Ok(row)
            }
        }
    }

    /// Doubles the slots and places every entry again (no key is re-hashed).
    fn grow(&mut self) {
        let (keys, bytes) = std::mem::take(&mut self.expect);
        self.entries
            .reserve(keys.saturating_sub(self.entries.len()));
        self.bytes.reserve(bytes.saturating_sub(self.bytes.len()));
        let slots = (self.slots.len() * 2).max(Self::slots_for(keys));
        let mask = slots - 1;
        let mut table = vec![0u64; slots];
        for (index, entry) in self.entries.iter().enumerate() {
            let mut i = entry.hash as usize & mask;
            while table[i] != 0 {
                i = (i + 1) & mask;
            }
            table[i] = (entry.hash >> 32) << 32 | (index as u64 + 1);
        }
        self.slots = table;
    }

    /// The part-filter fingerprint of every id ([`key_hash`]'s high half).
    fn fingerprints(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .map(|e| (key_hash_bytes(key_in(&self.bytes, e)) >> 32) as u32)
    }
}

/// The bytes of `entry`'s id in its layer's arena.
fn key_in<'a>(arena: &'a [u8], entry: &RecentKey) -> &'a [u8] {
    &arena[entry.start..entry.start + entry.len as usize]
}

/// The hashes of an id for [`KeyIndex`] lookups, computed once per id: the
/// layers' (seeded per process, so ids cannot be chosen to collide) and
/// [`key_hash`], the parts'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdHash {
    layers: u64,
    parts: u64,
}

impl KeyIndex {
    /// The index of a table whose shards' parts are `parts`.
    pub fn new(parts: Vec<Option<Arc<BasePart>>>) -> Self {
        KeyIndex {
            filter: Arc::new(OnceLock::new()),
            parts,
            recent: Arc::default(),
            frozen: Vec::new(),
            hasher: FastHash::default(),
        }
    }

    /// The hashes of `key` the `*_hashed` methods take.
    pub fn hash(&self, key: &str) -> IdHash {
        IdHash {
            layers: self.hasher.hash_bytes(key.as_bytes()),
            parts: key_hash(key),
        }
    }

    /// Builds the key filter if it is not built yet.
    pub fn fill_filter(&self) {
        if self.filter.get().is_none() {
            let _ = self.filter.set(filter_of(self.parts.iter().flatten()));
        }
    }

    /// This index with its writers' layer frozen and a new, empty one for
    /// the writes after a checkpoint's snapshot; `None` when the layer is
    /// empty (nothing to freeze). Called with writers paused at the
    /// snapshot, so every frozen id's row is at or before it.
    pub fn rotated(&self) -> Option<KeyIndex> {
        let (keys, bytes) = {
            let recent = self.recent.read();
            (recent.len(), recent.bytes.len())
        };
        if keys == 0 {
            return None;
        }
        // Sized like the layer before with a quarter to spare (once its
        // first id arrives), so that a bulk load, which gives about as many
        // rows between checkpoints each time, does not regrow (and rehash)
        // it while writers wait.
        let fresh = Recent::expecting(keys + keys / 4, bytes + bytes / 4);
        let mut frozen = Vec::with_capacity(self.frozen.len() + 1);
        frozen.push(Arc::clone(&self.recent));
        frozen.extend(self.frozen.iter().cloned());
        Some(KeyIndex {
            parts: self.parts.clone(),
            filter: Arc::clone(&self.filter),
            recent: Arc::new(RwLock::new(fresh)),
            frozen,
            hasher: self.hasher,
        })
    }

    /// The filter for [`KeyIndex::installed`] with `parts`: this one's
    /// plus the fingerprints of the frozen layers' ids (the ids the new
    /// parts hold that older parts did not), or, when that would overfill
    /// it, one built anew from `parts`. Made while writers run: the frozen
    /// layers no longer change.
    pub fn next_filter(&self, parts: &[Option<Arc<BasePart>>]) -> Arc<OnceLock<KeyFilter>> {
        let frozen: Vec<_> = self.frozen.iter().map(|layer| layer.read()).collect();
        let added: usize = frozen.iter().map(|layer| layer.len()).sum();
        let filter = match self.filter.get() {
            Some(old) if old.inserted() + added <= old.capacity() => {
                let mut filter = old.clone();
                for layer in &frozen {
                    filter.insert_all(layer.fingerprints());
                }
                filter
            }
            _ => filter_of(parts.iter().flatten()),
        };
        Arc::new(OnceLock::from(filter))
    }

    /// The index once a checkpoint's new parts are installed: `parts` for
    /// every shard, `filter` from [`KeyIndex::next_filter`], and no frozen
    /// layer (the parts hold every row given at or before the snapshot).
    /// Called with writers paused; the writers' layer carries on.
    pub fn installed(
        &self,
        parts: Vec<Option<Arc<BasePart>>>,
        filter: Arc<OnceLock<KeyFilter>>,
    ) -> KeyIndex {
        KeyIndex {
            parts,
            filter,
            recent: Arc::clone(&self.recent),
            frozen: Vec::new(),
            hasher: self.hasher,
        }
    }

    /// The row id each of a batch of ids was given, if any (the row may
    /// have been deleted since); `hashes[i]` is `keys[i]`'s. Each layer is
    /// locked once, and the slots and filter blocks of the ids a few places
    /// ahead are prefetched, so their cache misses overlap.
    pub fn lookup_batch(&self, keys: &[&str], hashes: &[IdHash]) -> Vec<Option<u32>> {
        /// How many ids ahead the prefetches run.
        const AHEAD: usize = 8;
        let layers: Vec<_> = std::iter::once(&self.recent)
            .chain(self.frozen.iter())
            .map(|layer| layer.read())
            .collect();
        let filter = self.filter.get();
        let fetch = |hash: &IdHash| {
            layers.iter().for_each(|layer| layer.prefetch(hash.layers));
            if let Some(filter) = filter {
                filter.prefetch((hash.parts >> 32) as u32);
            }
        };
        hashes.iter().take(AHEAD).for_each(fetch);
        keys.iter()
            .zip(hashes)
            .enumerate()
            .map(|(i, (key, hash))| {
                if let Some(ahead) = hashes.get(i + AHEAD) {
                    fetch(ahead);
                }
                layers
                    .iter()
                    .find_map(|layer| layer.find(key, hash.layers))
                    .or_else(|| self.part_row(key, *hash))
            })
            .collect()
    }

    /// The first row `key` was given that `live` says exists: the lookup of
    /// a snapshot, whose index may name rows given after it.
    pub fn lookup_live(&self, key: &str, live: impl Fn(u32) -> bool) -> Option<u32> {
        let hash = self.hash(key);
        let in_layers = std::iter::once(&self.recent)
            .chain(self.frozen.iter())
            .filter_map(|layer| layer.read().find(key, hash.layers));
        in_layers
            .chain(std::iter::once_with(|| self.part_row(key, hash)).flatten())
            .find(|row| live(*row))
    }

    /// The row a part holds `key` at (a part of one generation holds an id
    /// at most once).
    fn part_row(&self, key: &str, hash: IdHash) -> Option<u32> {
        if let Some(filter) = self.filter.get() {
            if !filter.may_contain((hash.parts >> 32) as u32) {
                return None;
            }
        }
        self.parts.iter().enumerate().find_map(|(shard, part)| {
            let local = part.as_ref()?.find(key, hash.parts)?;
            Some(((shard as u32) << SHARD_BITS) | local)
        })
    }

    /// The row `key` was given in the writers' layer, if any.
    pub fn lookup_recent(&self, key: &str) -> Option<u32> {
        self.recent.read().find(key, self.hash(key).layers)
    }

    /// Gives `key`, which holds no row since the parts were written, `row`.
    pub fn insert(&self, key: &str, row: u32) {
        let given = self.find_or_insert(key, self.hash(key), row);
        debug_assert!(given.is_ok(), "{key} already had a row");
    }

    /// The row `key` was given in the writers' layer, or, if none, gives it
    /// `row`: `Ok(row)` when it was given now, `Err(existing)` else.
    pub fn find_or_insert(&self, key: &str, hash: IdHash, row: u32) -> Result<u32, u32> {
        self.recent.write().find_or_insert(key, hash.layers, row)
    }
}

/// A filter of the keys of `parts`, with room for twice as many (and at
/// least 2^20: 1.25 MiB).
fn filter_of<'a>(parts: impl Iterator<Item = &'a Arc<BasePart>> + Clone) -> KeyFilter {
    let keys: usize = parts.clone().map(|p| p.key_count()).sum();
    let mut filter = KeyFilter::with_capacity((keys * 2).max(1 << 20));
    for part in parts {
        filter.insert_all(part.fingerprints());
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
        self.keys.lookup_live(key, |row| {
            self.shards
                .get(shard_of(row) as usize)
                .is_some_and(|shard| shard.live.contains(row))
        })
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

    /// Rows 0..=2 given to ids a, b, c.
    fn index_with_three_ids() -> KeyIndex {
        let index = KeyIndex::new(Vec::new());
        for (row, key) in ["a", "b", "c"].into_iter().enumerate() {
            index.insert(key, row as u32);
        }
        index
    }

    fn lookup(index: &KeyIndex, key: &str) -> Option<u32> {
        index.lookup_batch(&[key], &[index.hash(key)])[0]
    }

    #[test]
    fn a_rotation_freezes_the_ids_so_far_and_writers_add_to_a_new_layer() {
        let index = index_with_three_ids();
        let rotated = index.rotated().expect("a layer with ids rotates");
        for (key, row) in [("a", 0), ("b", 1), ("c", 2)] {
            assert_eq!(lookup(&rotated, key), Some(row), "{key}");
            assert_eq!(rotated.lookup_recent(key), None, "{key} is frozen");
        }
        // An id frozen is still found, so it keeps its row...
        assert_eq!(lookup(&rotated, "b"), Some(1));
        // ... and new ids go to the new layer, which takes no memory until
        // the first one comes and then makes room for as many as before.
        assert!(rotated.recent.read().slots.is_empty());
        assert_eq!(rotated.find_or_insert("d", rotated.hash("d"), 3), Ok(3));
        assert!(rotated.recent.read().entries.capacity() >= 3);
        assert_eq!(rotated.lookup_recent("d"), Some(3));
        assert_eq!(lookup(&index, "d"), None, "the old index keeps its layer");
        // Nothing to freeze: no rotation.
        assert!(KeyIndex::new(Vec::new()).rotated().is_none());
    }

    #[test]
    fn an_install_drops_the_frozen_layers_and_keeps_the_writers_layer() {
        let index = index_with_three_ids();
        index.fill_filter();
        let rotated = index.rotated().expect("rotates");
        rotated.insert("d", 3);
        let filter = rotated.next_filter(&[]);
        let next = rotated.installed(Vec::new(), filter);
        // The parts (none here) now answer for the frozen ids.
        assert_eq!(lookup(&next, "a"), None);
        assert_eq!(lookup(&next, "d"), Some(3));
        // The writers' layer is shared: what a writer adds through the new
        // index, a snapshot holding the old one finds too.
        next.insert("e", 4);
        assert_eq!(lookup(&rotated, "e"), Some(4));
        // Every frozen id's fingerprint joined the filter.
        let filter = next.filter.get().expect("filter built");
        for key in ["a", "b", "c"] {
            assert!(filter.may_contain((key_hash(key) >> 32) as u32), "{key}");
        }
    }

    #[test]
    fn a_layer_grows_and_finds_every_id_it_was_given() {
        let index = KeyIndex::new(Vec::new());
        let keys: Vec<String> = (0..20_000u32).map(|i| format!("user-{i}")).collect();
        for (row, key) in keys.iter().enumerate() {
            assert_eq!(
                index.find_or_insert(key, index.hash(key), row as u32),
                Ok(row as u32)
            );
        }
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let hashes: Vec<IdHash> = refs.iter().map(|k| index.hash(k)).collect();
        let rows = index.lookup_batch(&refs, &hashes);
        assert!(rows.iter().enumerate().all(|(i, r)| *r == Some(i as u32)));
        assert_eq!(
            index.find_or_insert("user-7", index.hash("user-7"), 99),
            Err(7)
        );
        assert_eq!(lookup(&index, "user-20000"), None);
        assert_eq!(lookup(&index, ""), None);
        let recent = index.recent.read();
        assert!(recent.slots.len() >= 2 * recent.len());
    }

    #[test]
    fn a_snapshot_lookup_skips_rows_given_after_it() {
        let index = KeyIndex::new(Vec::new());
        index.insert("a", 0);
        let old = index.rotated().expect("rotates");
        // "a" was deleted, left the index at an install, and was given row 5.
        let next = old.installed(Vec::new(), Arc::default());
        next.insert("a", 5);
        // The old index sees both rows; a snapshot where row 0 is the live
        // one finds row 0, the newest state finds row 5.
        assert_eq!(old.lookup_live("a", |row| row == 0), Some(0));
        assert_eq!(next.lookup_live("a", |row| row == 5), Some(5));
        assert_eq!(next.lookup_live("a", |row| row == 0), None);
    }
}
