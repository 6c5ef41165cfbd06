//! The numpy `Generator` distributions gen_profiles.py draws from, as numpy
//! 2.4.6 computes them (numpy/random/src/distributions/distributions.c):
//! one draw of each kind consumes the bit generator exactly as numpy's does,
//! and returns the same bits.
//!
//! Invariants: the order of operations of every floating-point expression is
//! numpy's (IEEE doubles are deterministic only for the same operations in
//! the same order); `exp`, `ln` and `ln_1p` are the C library's `exp`, `log`
//! and `log1p`, as in numpy. Only the parameter ranges the generator uses
//! are implemented (gamma shape > 1, Poisson mean < 10, bounded integers
//! whose range fits 32 bits); others are refused by `debug_assert!`.

use super::pcg64::Pcg64;
use super::ziggurat_tables::{FI, KI, NOR_INV_R, NOR_R, WI};

/// `random_standard_normal`: the 256-layer ziggurat.
pub fn standard_normal(rng: &mut Pcg64) -> f64 {
    loop {
        let mut r = rng.next_u64();
        let idx = (r & 0xff) as usize;
        r >>= 8;
        let negative = r & 1 == 1;
        let rabs = (r >> 1) & 0x000f_ffff_ffff_ffff;
        let mut x = rabs as f64 * WI[idx];
        if negative {
            x = -x;
        }
        if rabs < KI[idx] {
            return x;
        }
        if idx == 0 {
            // The tail beyond NOR_R (Marsaglia's method), on 1 - U.
            loop {
                let xx = -NOR_INV_R * (-rng.next_f64()).ln_1p();
                let yy = -(-rng.next_f64()).ln_1p();
                if yy + yy > xx * xx {
                    return if (rabs >> 8) & 1 == 1 {
                        -(NOR_R + xx)
                    } else {
                        NOR_R + xx
                    };
                }
            }
        }
        if (FI[idx - 1] - FI[idx]) * rng.next_f64() + FI[idx] < (-0.5 * x * x).exp() {
            return x;
        }
    }
}

/// `random_standard_gamma` for `shape > 1`: Marsaglia and Tsang.
pub fn standard_gamma(rng: &mut Pcg64, shape: f64) -> f64 {
    debug_assert!(shape > 1.0, "only shape > 1 is implemented");
    let b = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * b).sqrt();
    loop {
        let (x, mut v) = loop {
            let x = standard_normal(rng);
            let v = 1.0 + c * x;
            if v > 0.0 {
                break (x, v);
            }
        };
        v = v * v * v;
        let u = rng.next_f64();
        if u < 1.0 - 0.0331 * (x * x) * (x * x) {
            return b * v;
        }
        if u.ln() < 0.5 * x * x + b * (1.0 - v + v.ln()) {
            return b * v;
        }
    }
}

/// `random_beta` for `a > 1` or `b > 1`: the ratio of two gammas.
pub fn beta(rng: &mut Pcg64, a: f64, b: f64) -> f64 {
    debug_assert!(a > 1.0 && b > 1.0, "only a, b > 1 is implemented");
    let ga = standard_gamma(rng, a);
    let gb = standard_gamma(rng, b);
    ga / (ga + gb)
}

/// `random_poisson` for `0 < lam < 10`: multiply uniforms until the product
/// falls to `exp(-lam)`.
pub fn poisson(rng: &mut Pcg64, lam: f64) -> i64 {
    debug_assert!(lam > 0.0 && lam < 10.0, "only 0 < lam < 10 is implemented");
    let enlam = (-lam).exp();
    let mut x = 0;
    let mut prod = 1.0;
    loop {
        prod *= rng.next_f64();
        if prod > enlam {
            x += 1;
        } else {
            return x;
        }
    }
}

/// `random_lognormal`: `exp(mean + sigma * N(0, 1))`.
pub fn lognormal(rng: &mut Pcg64, mean: f64, sigma: f64) -> f64 {
    (mean + sigma * standard_normal(rng)).exp()
}

/// One value of `integers(low, high)` for int64 when `high - low - 1` fits
/// 32 bits: Lemire's multiply-and-reject on buffered 32-bit draws
/// (`buffered_bounded_lemire_uint32`). `rng_incl` is `high - low - 1`.
pub fn bounded_u32(rng: &mut Pcg64, rng_incl: u32) -> u32 {
    debug_assert!(rng_incl != u32::MAX && rng_incl != 0);
    let excl = rng_incl + 1;
    let mut m = u64::from(rng.next_u32()) * u64::from(excl);
    let mut leftover = m as u32;
    if leftover < excl {
        let threshold = (u32::MAX - rng_incl) % excl;
        while leftover < threshold {
            m = u64::from(rng.next_u32()) * u64::from(excl);
            leftover = m as u32;
        }
    }
    (m >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws `n` values of one kind from `default_rng(SeedSequence([42, 0]))`.
    fn draws<T>(n: usize, mut f: impl FnMut(&mut Pcg64) -> T) -> Vec<T> {
        let mut r = Pcg64::seeded(&[42, 0]);
        (0..n).map(|_| f(&mut r)).collect()
    }

    // Expected values printed by numpy 2.4.6 for the same seed, e.g.
    // `np.random.default_rng(np.random.SeedSequence([42, 0])).standard_normal(5)`.
    #[test]
    fn matches_numpy() {
        assert_eq!(
            draws(5, standard_normal),
            [
                0.30471707975443135,
                -1.0399841062404955,
                0.7504511958064572,
                0.9405647163912139,
                -1.9510351886538364
            ]
        );
        assert_eq!(
            draws(5, |r| beta(r, 2.0, 4.0)),
            [
                0.2830073358102074,
                0.33576045831108314,
                0.4479685670878979,
                0.3467820187043257,
                0.4807433436251047
            ]
        );
        assert_eq!(
            draws(10, |r| poisson(r, 6.0)),
            [8, 8, 9, 7, 6, 6, 1, 7, 8, 5]
        );
        assert_eq!(
            draws(5, |r| bounded_u32(r, 90 * 86_400 - 1)),
            [694015, 6018282, 5089948, 3412718, 3367126]
        );
        assert_eq!(
            draws(5, |r| lognormal(r, 3.0, 1.0)),
            [
                27.240833515159856,
                7.09943990105034,
                42.54027166276936,
                51.44764642785248,
                2.854694440672601
            ]
        );
    }

    // A million normals cover the ziggurat's rare paths (the wedges and the
    // tail beyond NOR_R: 279 of them are beyond it). numpy 2.4.6:
    // `x = default_rng(SeedSequence([42, 0])).standard_normal(1_000_000)`,
    // `b = x.view(np.uint64)`, `np.bitwise_xor.reduce(b)` and
    // `(b * np.uint64(0x9E3779B97F4A7C15)).sum(dtype=np.uint64)`.
    #[test]
    fn a_million_normals_match_numpy() {
        let bits: Vec<u64> = draws(1_000_000, standard_normal)
            .into_iter()
            .map(f64::to_bits)
            .collect();
        let xor = bits.iter().fold(0, |a, b| a ^ b);
        let sum = bits.iter().fold(0u64, |a, b| {
            a.wrapping_add(b.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        });
        assert_eq!((xor, sum), (0x0017_088c_fd6f_bc21, 0xddf1_6183_e26c_0171));
        let mut r = Pcg64::seeded(&[42, 0]);
        let x: Vec<f64> = (0..5628).map(|_| standard_normal(&mut r)).collect();
        assert_eq!(x[5627], -4.389114584864837);
    }
}
