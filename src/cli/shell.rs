//! `cohortdb shell`: the interactive CohortQL client (being written).

use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Server address
    #[arg(long, default_value = crate::client::DEFAULT_ADDR)]
    pub addr: String,
}

pub fn run(_args: ShellArgs) -> ExitCode {
    eprintln!("cohortdb shell: not built yet");
    ExitCode::FAILURE
}
