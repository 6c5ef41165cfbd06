//! `cohortdb bench`: placeholder.
pub mod audience;
pub mod rng;
pub mod stream;
