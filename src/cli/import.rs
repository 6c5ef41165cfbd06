//! `cohortdb import`: bulk load through the server (being written).

use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Server address
    #[arg(long, default_value = crate::client::DEFAULT_ADDR)]
    pub addr: String,
}

pub fn run(_args: ImportArgs) -> ExitCode {
    eprintln!("cohortdb import: not built yet");
    ExitCode::FAILURE
}
