//! A bit-exact reimplementation of the parts of numpy's random module that
//! `../shared/bench/gen_profiles.py` uses: `SeedSequence`, the PCG64 bit
//! generator behind `np.random.default_rng`, and the `Generator`
//! distributions (uniform doubles, normal, gamma, beta, Poisson, lognormal,
//! bounded integers). Written from numpy 2.4.6's algorithms, checked value by
//! value against numpy in the unit tests; the ziggurat tables are numpy's
//! data ([`ziggurat_tables`]).
//!
//! Invariant: for the same seed, every function here consumes the same bits
//! and returns the same value as numpy's counterpart.

pub mod distributions;
pub mod pcg64;
pub mod seed_sequence;
pub mod ziggurat_tables;

pub use pcg64::Pcg64;
pub use seed_sequence::SeedSequence;
