//! The `cohortdb` binary; see `cohortdb --help` and src/cli/.
fn main() -> std::process::ExitCode {
    cohortdb::cli::main()
}
