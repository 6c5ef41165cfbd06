//! `cohortdb bench`: placeholder.
pub mod rng;
