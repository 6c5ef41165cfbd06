//! numpy's PCG64 bit generator: a 128-bit linear congruential state with the
//! XSL-RR 64-bit output (pcg64.h of numpy), seeded like `PCG64(seed_seq)`,
//! plus numpy's buffered 32-bit draws.
//!
//! Invariants: `next_u64` advances the state, then outputs from the new
//! state. `next_u32` hands out the low half of a 64-bit draw and keeps the
//! high half for the next `next_u32` (numpy's `has_uint32`/`uinteger`); the
//! kept half survives other kinds of draws in between, as in numpy, where it
//! lives in the bit generator's state.

use super::seed_sequence::SeedSequence;

/// PCG's default 128-bit multiplier.
const MULTIPLIER: u128 = (2_549_297_995_355_413_924u128 << 64) | 4_865_540_595_714_422_341;

/// The bit generator.
#[derive(Debug, Clone)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
    /// The high half of the last 64-bit draw split by `next_u32`, if unused.
    spare_u32: Option<u32>,
}

impl Pcg64 {
    /// `PCG64(seed_seq)`: four 64-bit words from the seed sequence are the
    /// initial state (high, low) and the stream (high, low).
    pub fn from_seed_sequence(seq: &SeedSequence) -> Pcg64 {
        let w = seq.generate_state_u64(4);
        let init_state = (u128::from(w[0]) << 64) | u128::from(w[1]);
        let init_seq = (u128::from(w[2]) << 64) | u128::from(w[3]);
        let mut rng = Pcg64 {
            state: 0,
            inc: (init_seq << 1) | 1,
            spare_u32: None,
        };
        rng.step();
        rng.state = rng.state.wrapping_add(init_state);
        rng.step();
        rng
    }

    /// `default_rng(SeedSequence(entropy))`'s bit generator.
    pub fn seeded(entropy: &[u64]) -> Pcg64 {
        Pcg64::from_seed_sequence(&SeedSequence::new(entropy))
    }

    #[inline]
    fn step(&mut self) {
        self.state = self.state.wrapping_mul(MULTIPLIER).wrapping_add(self.inc);
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let folded = ((s >> 64) as u64) ^ (s as u64);
        folded.rotate_right((s >> 122) as u32)
    }

    /// The next 32 random bits (half of a buffered 64-bit draw).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if let Some(spare) = self.spare_u32.take() {
            return spare;
        }
        let v = self.next_u64();
        self.spare_u32 = Some((v >> 32) as u32);
        v as u32
    }

    /// A double in [0, 1) from the top 53 bits of a draw (numpy's `next_double`).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `np.random.default_rng(np.random.SeedSequence([42, 0]))` in numpy 2.4.6:
    // `bit_generator.random_raw(3)`, `random(3)` and 32-bit integers.
    #[test]
    fn matches_numpy() {
        let mut r = Pcg64::seeded(&[42, 0]);
        assert_eq!(
            [r.next_u64(), r.next_u64(), r.next_u64()],
            [0xc621fbcd16d92688, 0x705a5661a791ffc1, 0xdbcd12c26eda1624]
        );
        let mut r = Pcg64::seeded(&[42, 0]);
        assert_eq!(
            [r.next_f64(), r.next_f64(), r.next_f64()],
            [0.7739560485559633, 0.4388784397520523, 0.8585979199113825]
        );
        let mut r = Pcg64::seeded(&[42, 0]);
        assert_eq!(
            [r.next_u32(), r.next_u32(), r.next_u32()],
            [0x16d92688, 0xc621fbcd, 0xa791ffc1]
        );
        assert_eq!(r.spare_u32, Some(1_884_968_545));
    }
}
