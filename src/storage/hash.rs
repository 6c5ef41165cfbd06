//! The hasher of the engine's in-memory maps keyed by user strings (the
//! dictionaries, the recent-key index) and by row ids: xxh3, seeded once
//! per process from the OS's randomness, so it is several times faster than
//! SipHash on short keys while an attacker still cannot predict collisions.
//!
//! Also [`prefetch`], for tables probed in batches.
//!
//! Invariant: nothing hashed with it is ever written to disk (the seed
//! changes at every start; on-disk hashes use [`super::keys::key_hash`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// A `HashMap` with [`FastHash`].
pub type FastMap<K, V> = HashMap<K, V, FastHash>;

/// Builds [`FastHasher`]s with this process's seed.
#[derive(Debug, Clone, Copy)]
pub struct FastHash {
    seed: u64,
}

impl Default for FastHash {
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        let seed =
            *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u64));
        FastHash { seed }
    }
}

impl FastHash {
    /// The hash of `bytes` alone (what hashing a `&[u8]` as one write gives
    /// before the finish), for tables that hash keys themselves.
    pub fn hash_bytes(&self, bytes: &[u8]) -> u64 {
        xxh3_64_with_seed(bytes, self.seed)
    }
}

/// Asks the CPU to bring the cache line holding `item` in, without waiting
/// for it: a batch of hash-table probes prefetched a few keys ahead overlaps
/// their cache misses instead of taking them one after another.
#[inline]
pub fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, reads nothing into
    // the program, and `item` is a valid reference anyway; SSE, which it
    // needs, is part of every x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (item as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

impl BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher { state: self.seed }
    }
}

/// Chains xxh3 over the bytes written, each write seeded by the state so far.
#[derive(Debug, Clone)]
pub struct FastHasher {
    state: u64,
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.state = xxh3_64_with_seed(bytes, self.state);
    }
    fn write_u8(&mut self, v: u8) {
        // `str` hashes end with a 0xff marker byte: fold it in cheaply.
        self.state = (self.state ^ u64::from(v)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        let x = (self.state ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.state = x ^ (x >> 29);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn finish(&self) -> u64 {
        let x = self.state.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^ (x >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_maps_work() {
        let b = FastHash::default();
        assert_eq!(b.hash_one("abc"), FastHash::default().hash_one("abc"));
        assert_ne!(b.hash_one("abc"), b.hash_one("abd"));
        assert_ne!(b.hash_one(1u32), b.hash_one(2u32));
        let mut m: FastMap<Box<str>, u32> = FastMap::default();
        for i in 0..10_000u32 {
            m.insert(format!("u{i}").into(), i);
        }
        assert!((0..10_000u32).all(|i| m.get(format!("u{i}").as_str()) == Some(&i)));
        assert_eq!(m.get("nope"), None);
    }
}
