//! The `cohortdb` binary: argument parsing (clap) and one module per
//! subcommand. Each subcommand returns a process exit code; errors are
//! printed as one clear line on stderr, never as a panic.

mod bench;
mod check;
pub(crate) mod import;
mod serve;
mod shell;

#[doc(hidden)]
pub use import::fuzz_rows as fuzz_import_rows;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// The default data directory of `serve` and `check`.
pub const DEFAULT_DATA_DIR: &str = "./cohort-data";

#[derive(Debug, Parser)]
#[command(name = "cohortdb", version, about = "CohortDB: an audience database")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a data directory over the native protocol (until SIGINT/SIGTERM).
    Serve(serve::ServeArgs),
    /// Interactive CohortQL client (or run -c / -f / stdin non-interactively).
    Shell(shell::ShellArgs),
    /// Load a CSV or NDJSON file into a table through the server.
    Import(import::ImportArgs),
    /// Generate the standard audience, load it through a server, time Q1-Q8 and check the answers.
    ///
    /// Builds the audience of ../shared/bench/gen_profiles.py (the same profiles, byte for byte,
    /// for a seed) or reads one with --csv, loads it into the table `profiles` through the native
    /// protocol as `cohortdb import` does, runs the audience queries Q1-Q8 end to end as a client
    /// (one warm-up, then --runs timed runs each) and checks every answer against a direct
    /// computation from the data. Without --addr it starts a server in this process on
    /// 127.0.0.1 over --data-dir (or a temporary directory), durability always.
    ///
    /// Exit codes: 0 all answers right, 1 an answer was wrong (named on stderr with expected
    /// and got), 2 usage errors and failures. See docs/bench.md.
    Bench(bench::BenchArgs),
    /// Verify every file of a data directory without changing it.
    Check {
        /// The data directory to verify.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

/// Runs the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Shell(args) => shell::run(args),
        Command::Import(args) => import::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Check { data_dir } => check::run(&data_dir),
    }
}
