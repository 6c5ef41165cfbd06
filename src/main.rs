//! The `cohortdb` binary; see `cohortdb --help` and src/cli/.

/// mimalloc instead of glibc malloc: ingest allocates many small objects per
/// profile, and perf showed glibc's allocator as the largest single cost of a
/// bulk load (docs/benchmarks.md, "Allocator"). The library itself leaves the
/// choice to the embedding program.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cohortdb::cli::main()
}
