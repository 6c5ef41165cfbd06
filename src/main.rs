//! The `cohortdb` binary; see `cohortdb --help` and src/cli/.

/// mimalloc instead of glibc malloc: ingest allocates many small objects per
/// profile, and perf showed glibc's allocator as the largest single cost of a
/// bulk load (docs/benchmarks.md, "Allocator"). The library itself leaves the
/// choice to the embedding program.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Has mimalloc return the memory it holds free to the OS at once; the
/// engine calls it after a checkpoint has freed the in-memory tails its
/// parts replace (`Options::release_memory`: at once for an explicit
/// checkpoint, once writes pause for a background one).
fn release_free_memory() {
    // SAFETY: `mi_collect` has no preconditions; any thread may call it at
    // any time, and it only frees memory no allocation holds.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn main() -> std::process::ExitCode {
    cohortdb::engine::set_default_release_memory(release_free_memory);
    cohortdb::cli::main()
}
