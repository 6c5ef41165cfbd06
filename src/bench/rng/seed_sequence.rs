//! numpy's `SeedSequence` (numpy/random/bit_generator.pyx), reduced to what
//! `np.random.SeedSequence([seed, block])` does: turn non-negative integers
//! into 32-bit words, mix them into a pool of four words, and expand the pool
//! into the words that seed a bit generator.
//!
//! Invariants: every integer becomes its little-endian 32-bit words (0 is one
//! word `[0]`), the words of all integers are concatenated in order; all
//! arithmetic is on `u32`, wrapping, as numpy's `uint32` arrays are. There is
//! no spawn key (the generator never spawns), so no padding of the entropy.

const POOL_SIZE: usize = 4;
const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;

/// A seeded sequence: its mixed entropy pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSequence {
    pool: [u32; POOL_SIZE],
}

/// numpy's `hashmix`: hashes `value` and advances the running constant.
fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut v = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    v = v.wrapping_mul(*hash_const);
    v ^ (v >> XSHIFT)
}

/// numpy's `mix`: combines two hashed words.
fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

impl SeedSequence {
    /// `SeedSequence(entropy)` for a list of non-negative integers.
    pub fn new(entropy: &[u64]) -> SeedSequence {
        let mut words: Vec<u32> = Vec::with_capacity(entropy.len() * 2);
        for &n in entropy {
            if n == 0 {
                words.push(0);
            }
            let mut rest = n;
            while rest > 0 {
                words.push(rest as u32);
                rest >>= 32;
            }
        }
        let mut pool = [0u32; POOL_SIZE];
        let mut hash_const = INIT_A;
        for (i, slot) in pool.iter_mut().enumerate() {
            let word = words.get(i).copied().unwrap_or(0);
            *slot = hashmix(word, &mut hash_const);
        }
        for src in 0..POOL_SIZE {
            for dst in 0..POOL_SIZE {
                if src != dst {
                    let hashed = hashmix(pool[src], &mut hash_const);
                    pool[dst] = mix(pool[dst], hashed);
                }
            }
        }
        for &word in words.iter().skip(POOL_SIZE) {
            for slot in pool.iter_mut() {
                let hashed = hashmix(word, &mut hash_const);
                *slot = mix(*slot, hashed);
            }
        }
        SeedSequence { pool }
    }

    /// The mixed pool (numpy's `SeedSequence.pool`).
    pub fn pool(&self) -> [u32; POOL_SIZE] {
        self.pool
    }

    /// `generate_state(n, np.uint64)`: `2n` 32-bit words, paired little-endian.
    pub fn generate_state_u64(&self, n: usize) -> Vec<u64> {
        let mut hash_const = INIT_B;
        let mut words = (0..2 * n).map(|i| {
            let mut v = self.pool[i % POOL_SIZE] ^ hash_const;
            hash_const = hash_const.wrapping_mul(MULT_B);
            v = v.wrapping_mul(hash_const);
            v ^ (v >> XSHIFT)
        });
        let mut out = Vec::with_capacity(n);
        while let (Some(lo), Some(hi)) = (words.next(), words.next()) {
            out.push(u64::from(lo) | (u64::from(hi) << 32));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by numpy 2.4.6:
    // `np.random.SeedSequence([42, 0]).pool` and `.generate_state(4, np.uint64)`.
    #[test]
    fn matches_numpy() {
        let s = SeedSequence::new(&[42, 0]);
        assert_eq!(s.pool(), [0x631d3606, 0x07ae90ae, 0x6fc4be28, 0x2ced5c75]);
        assert_eq!(
            s.generate_state_u64(4),
            [
                0x9f1e2e6dcd540ab7,
                0xd57873dc79fb94b6,
                0x7d282a1b64d420b7,
                0x336579714692d5ff
            ]
        );
        assert_eq!(
            SeedSequence::new(&[7, 3]).pool(),
            [0xdc22d6b9, 0x876503c3, 0x2415e7f5, 0x95ab9a05]
        );
        // A seed of two words.
        assert_eq!(
            SeedSequence::new(&[(1 << 40) + 5, 1]).pool(),
            [0xf4510124, 0x90a3d708, 0x79d96e40, 0x9db0f51e]
        );
        // More words than the pool: 2 + 2 + 1.
        assert_eq!(
            SeedSequence::new(&[u64::MAX, (1 << 33) + 7, 5]).pool(),
            [0x96a0ef5e, 0x06c315e1, 0x22b5f216, 0xfab1adf6]
        );
    }
}
