//! CohortDB: an audience database. See README.md and docs/ARCHITECTURE.md.
pub mod storage;
