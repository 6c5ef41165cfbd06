//! A blocked Bloom filter over the 32-bit key fingerprints of a table's part
//! files, so that looking up an id the parts do not hold (every new profile
//! of a load) costs one cache line instead of one hash-table probe per part.
//!
//! Built from the fingerprints the parts' key tables already store (no key
//! is re-hashed); each generation's filter is the previous one plus the
//! fingerprints of the parts a checkpoint wrote, and is rebuilt from all
//! parts when it fills up.
//!
//! Invariant: every key held by a part of the generation the filter belongs
//! to `may_contain` its fingerprint (no false negatives). False positives
//! (about 1% at capacity, plus keys since deleted) only cost the probes.

/// Bits set per fingerprint.
const PROBES: u32 = 6;
/// Filter bits per key of capacity.
const BITS_PER_KEY: usize = 10;
/// 512-bit blocks (one cache line).
type Block = [u64; 8];

#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    blocks: Vec<Block>,
    /// Fingerprints inserted (with repeats), to know when to grow.
    inserted: usize,
}

fn mix(fingerprint: u32) -> u64 {
    // splitmix64 finaliser: spreads the fingerprint over 64 bits.
    let mut z = u64::from(fingerprint).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl KeyFilter {
    /// An empty filter sized for `keys` keys.
    pub fn with_capacity(keys: usize) -> Self {
        let blocks = (keys * BITS_PER_KEY)
            .div_ceil(512)
            .next_power_of_two()
            .max(1);
        KeyFilter {
            blocks: vec![[0; 8]; blocks],
            inserted: 0,
        }
    }

    /// Keys it holds well (beyond this the false positive rate climbs).
    pub fn capacity(&self) -> usize {
        self.blocks.len() * 512 / BITS_PER_KEY
    }

    /// Fingerprints inserted so far (counting repeats).
    pub fn inserted(&self) -> usize {
        self.inserted
    }

    fn positions(&self, fingerprint: u32) -> (usize, u64) {
        let h = mix(fingerprint);
        let block = (h >> 40) as usize & (self.blocks.len() - 1);
        (block, h)
    }

    /// Inserts one fingerprint (the engine inserts in bulk, [`KeyFilter::insert_all`]).
    #[cfg(test)]
    pub fn insert(&mut self, fingerprint: u32) {
        if self.blocks.is_empty() {
            *self = KeyFilter::with_capacity(1);
        }
        let (b, h) = self.positions(fingerprint);
        self.set_bits(b, h);
    }

    /// Inserts every fingerprint of `fingerprints`, prefetching each one's
    /// block some inserts ahead (a filter of millions of keys is far larger
    /// than the caches: one insert at a time waits for memory every time).
    pub fn insert_all(&mut self, fingerprints: impl Iterator<Item = u32>) {
        /// How many inserts ahead the prefetches run (a power of two).
        const AHEAD: usize = 16;
        if self.blocks.is_empty() {
            *self = KeyFilter::with_capacity(1);
        }
        let mut pending = [(0usize, 0u64); AHEAD];
        let mut n = 0usize;
        for fingerprint in fingerprints {
            let slot = &mut pending[n % AHEAD];
            if n >= AHEAD {
                self.set_bits(slot.0, slot.1);
            }
            let (b, h) = self.positions(fingerprint);
            crate::storage::hash::prefetch(&self.blocks[b]);
            *slot = (b, h);
            n += 1;
        }
        for i in n.saturating_sub(AHEAD)..n {
            let (b, h) = pending[i % AHEAD];
            self.set_bits(b, h);
        }
    }

    fn set_bits(&mut self, b: usize, h: u64) {
        let block = &mut self.blocks[b];
        for i in 0..PROBES {
            let bit = (h >> (i * 9)) & 511;
            block[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.inserted += 1;
    }

    /// Starts fetching the block [`KeyFilter::may_contain`] reads for
    /// `fingerprint` (see [`crate::storage::hash::prefetch`]).
    pub fn prefetch(&self, fingerprint: u32) {
        if !self.blocks.is_empty() {
            let (b, _) = self.positions(fingerprint);
            crate::storage::hash::prefetch(&self.blocks[b]);
        }
    }

    /// False only when no key with this fingerprint was inserted.
    pub fn may_contain(&self, fingerprint: u32) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let (b, h) = self.positions(fingerprint);
        let block = &self.blocks[b];
        (0..PROBES).all(|i| {
            let bit = (h >> (i * 9)) & 511;
            block[(bit / 64) as usize] >> (bit % 64) & 1 == 1
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut f = KeyFilter::with_capacity(100_000);
        for i in 0..100_000u32 {
            f.insert(i.wrapping_mul(2_654_435_761));
        }
        assert!((0..100_000u32).all(|i| f.may_contain(i.wrapping_mul(2_654_435_761))));
        let false_positives = (100_000..200_000u32)
            .filter(|i| f.may_contain(i.wrapping_mul(2_654_435_761)))
            .count();
        assert!(
            false_positives < 3_000,
            "{false_positives} false positives in 100,000"
        );
        assert!(!KeyFilter::default().may_contain(7));
    }

    #[test]
    fn inserting_all_at_once_sets_the_same_bits_as_one_by_one() {
        let fingerprints = |n: u32| (0..n).map(|i| i.wrapping_mul(2_654_435_761));
        for n in [0, 1, 15, 16, 17, 1000] {
            let mut one_by_one = KeyFilter::with_capacity(4096);
            fingerprints(n).for_each(|f| one_by_one.insert(f));
            let mut all = KeyFilter::with_capacity(4096);
            all.insert_all(fingerprints(n));
            assert_eq!(all.blocks, one_by_one.blocks, "{n} fingerprints");
            assert_eq!(all.inserted(), n as usize);
        }
    }
}
