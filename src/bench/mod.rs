//! `cohortdb bench`: builds the standard synthetic audience, loads it
//! through a server, times the audience queries Q1–Q8 end to end as a
//! client, and checks every answer against a direct computation from the
//! data. The user's guide is docs/bench.md.
//!
//! Modules, bottom up:
//!
//! - [`rng`]: numpy's SeedSequence, PCG64 and distributions, bit for bit;
//! - [`audience`]: gen_profiles.py's profiles as [`audience::Block`]s of
//!   2^20 rows (byte-identical CSV); [`stream`] generates blocks in parallel,
//!   in order; [`csv_input`] reads them from a gen_profiles.py CSV instead;
//! - [`answer`]: answers and their direct computation ([`answer::Expected`]);
//!   [`queries`]: the CohortQL text of Q1–Q8 and reading their results;
//! - [`load`]: getting profiles into the server (the one module to change
//!   for a faster ingest path); [`embedded`]: the in-process server;
//! - [`run`]: one bench run; [`report`]: its table and JSON forms;
//!   [`plot`]: the SVG chart of a `--scale` run; [`emit`]: the generated
//!   audience written as CSV; [`workload`]: `bench load`, sustained mixed
//!   load from many connections.
//!
//! Invariant: a run whose answers are not all right reports failure (the
//! CLI exits 1), whatever its timings.

pub mod answer;
pub mod audience;
pub mod csv_input;
pub mod embedded;
pub mod emit;
pub mod load;
pub mod memory;
pub mod plot;
pub mod queries;
pub mod report;
pub mod rng;
pub mod run;
pub mod stream;
pub mod workload;

pub use run::{run, BenchOptions, BenchReport, Source, Target};

/// Why a bench run could not finish (wrong answers are not errors: they are
/// in the report).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Generate(#[from] audience::GenerateError),
    #[error("{0}")]
    Csv(#[from] csv_input::CsvError),
    #[error("{0}")]
    Embedded(#[from] embedded::EmbeddedError),
    #[error("{0}")]
    Client(#[from] crate::client::ClientError),
    #[error("loading failed: {0}")]
    Load(#[from] load::LoadError),
    #[error("the table {table} {place} already holds {rows} profiles; use an empty data directory or drop the table, or pass --reuse to query it as is (only when it holds exactly the {profiles} profiles of this run)")]
    TableNotEmpty {
        table: String,
        rows: u64,
        profiles: u64,
        place: String,
    },
    #[error("cannot write {0}: {1}")]
    Write(std::path::PathBuf, std::io::Error),
    #[error("{0}")]
    Usage(String),
    #[error("internal error: {0}")]
    Internal(String),
}
