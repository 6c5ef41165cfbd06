//! The `cohortdb` binary: argument parsing (clap) and one module per
//! subcommand. Each subcommand returns a process exit code; errors are
//! printed as one clear line on stderr, never as a panic.

mod check;
mod serve;

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
    /// Open a data directory and serve it (the network server arrives with the server issue).
    Serve {
        /// The data directory (created if missing).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// always | interval | interval:<ms> | off
        #[arg(long, default_value = "always")]
        durability: String,
    },
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
        Command::Serve {
            data_dir,
            durability,
        } => serve::run(&data_dir, &durability),
        Command::Check { data_dir } => check::run(&data_dir),
    }
}
