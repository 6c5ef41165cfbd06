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

/// mimalloc's `mi_option_purge_delay` (position 15 of its option enum,
/// the same in mimalloc v2 and v3; libmimalloc-sys does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long memory freed inside mimalloc stays committed before it goes back
/// to the OS on its own. mimalloc's default (1 s) purged the memory a
/// checkpoint frees during a bulk load just before the next batches needed
/// it again, and the kernel zeroed it a second time: half the load's huge
/// page faults (docs/benchmarks.md, "Purge delay"). [`release_free_memory`]
/// still returns it at once when writes pause.
const PURGE_DELAY_MS: std::os::raw::c_long = 10_000;

fn main() -> std::process::ExitCode {
    // SAFETY: called first thing in `main`, before any other thread exists
    // (`mi_option_set` is not thread safe); it only changes a tuning value.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    cohortdb::engine::set_default_release_memory(release_free_memory);
    cohortdb::cli::main()
}
