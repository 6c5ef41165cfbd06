//! Load and footprint at scale: N generated profiles (default 10,000,000)
//! written in batches of 10,000 by several writer threads into a fresh
//! database with durability `always`; then a checkpoint, bytes on disk per
//! profile, and a reopen in a fresh child process (time to first query and
//! resident memory per profile).
//!
//! ```sh
//! COHORT_FOOTPRINT_PROFILES=10000000 cargo bench --bench footprint
//! ```
//!
//! Environment:
//! - `COHORT_FOOTPRINT_PROFILES`: profiles to load (default 10,000,000; 0 skips).
//! - `COHORT_FOOTPRINT_WRITERS`: writer threads (default 3).
//! - `COHORT_FOOTPRINT_DIR`: parent directory of the temporary database (default: the
//!   system temp dir; it must be on a real disk for `always` to mean an fsync).
//!
//! The reopen is measured in a child process (this executable, re-run with
//! `COHORT_FOOTPRINT_REOPEN=<dir>`) so that the heap the load leaves behind
//! in this process does not count as the reopened database's memory.

#[path = "support/mod.rs"]
mod support;

/// The same allocator as the `cohortdb` binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cohortdb::{Database, Durability, Options};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::{CHUNK_ROWS, COL_AGE, COL_INTERESTS, SEED};

const DEFAULT_PROFILES: u64 = 10_000_000;
const DEFAULT_WRITERS: usize = 3;
/// The tag counted after the reopen (Q1 of the peer benchmark).
const COUNT_TAG: &str = "i0003";

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.replace(['_', ','], "");
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => {
            eprintln!("footprint: ignoring {name}={v:?} (not a number)");
            None
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench` (and maybe a filter); nothing to parse.
    if let Ok(dir) = std::env::var("COHORT_FOOTPRINT_REOPEN") {
        reopen_child(Path::new(&dir));
        return;
    }
    let n = env_u64("COHORT_FOOTPRINT_PROFILES").unwrap_or(DEFAULT_PROFILES);
    if n == 0 {
        println!("footprint: skipped (COHORT_FOOTPRINT_PROFILES=0)");
        return;
    }
    let writers = env_u64("COHORT_FOOTPRINT_WRITERS")
        .map(|w| w.max(1) as usize)
        .unwrap_or(DEFAULT_WRITERS);
    if let Err(e) = run(n, writers) {
        eprintln!("footprint: {e}");
        std::process::exit(1);
    }
}

/// What the generator itself says about the loaded profiles.
#[derive(Default)]
struct Truth {
    count_tag: AtomicU64,
    count_and: AtomicU64,
    count_range: AtomicU64,
    pairs: AtomicU64,
}

fn run(n: u64, writers: usize) -> Result<(), Box<dyn std::error::Error>> {
    let tag = support::tag_index(COUNT_TAG);
    let tag_b = support::tag_index("i0007");
    let parent = std::env::var_os("COHORT_FOOTPRINT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("cohort-footprint-")
        .tempdir_in(&parent)?;
    let dir = tmp.path().join("db");
    println!(
        "footprint: {n} profiles, {writers} writer threads, batches of {CHUNK_ROWS}, durability always, dir {}",
        dir.display()
    );

    // Generation alone (one thread), so it can be told apart from the engine's time.
    let sample = n.min(1_000_000);
    let t = Instant::now();
    let mut ops = 0usize;
    for c in 0..support::chunks_for(sample) {
        let p = support::chunk(SEED, c, support::rows_in_chunk(sample, c));
        ops += support::batch(&p).len();
    }
    let gen_rate = ops as f64 / t.elapsed().as_secs_f64();
    println!(
        "generation alone (profiles + batches, 1 thread, first {sample}): {gen_rate:.0} profiles/s"
    );

    // Load.
    let db = Database::open(&dir, Options::default().durability(Durability::Always))?;
    db.create_table(support::schema())?;
    let chunks = support::chunks_for(n);
    let next = AtomicU64::new(0);
    let truth = Truth::default();
    let latencies: Mutex<Vec<Duration>> = Mutex::new(Vec::with_capacity(chunks as usize));
    let progress = AtomicU64::new(0);
    let load_before = support::load_average();
    let cpu_before = support::cpu_seconds().unwrap_or(0.0);
    let t = Instant::now();
    std::thread::scope(|s| -> Result<(), String> {
        let handles: Vec<_> = (0..writers)
            .map(|i| {
                let body = || -> Result<(), String> {
                    let mut mine = Vec::new();
                    loop {
                        let c = next.fetch_add(1, Ordering::Relaxed);
                        if c >= chunks {
                            break;
                        }
                        let p = support::chunk(SEED, c, support::rows_in_chunk(n, c));
                        let hits = p.iter().filter(|p| p.has_tag(tag)).count() as u64;
                        let pairs: u64 = p.iter().map(|p| p.interests.len() as u64).sum();
                        truth.count_tag.fetch_add(hits, Ordering::Relaxed);
                        let both = p.iter().filter(|p| p.has_tag(tag) && p.has_tag(tag_b));
                        truth
                            .count_and
                            .fetch_add(both.count() as u64, Ordering::Relaxed);
                        let aged = p.iter().filter(|p| (30..=45).contains(&p.age));
                        truth
                            .count_range
                            .fetch_add(aged.count() as u64, Ordering::Relaxed);
                        truth.pairs.fetch_add(pairs, Ordering::Relaxed);
                        let batch = support::batch(&p);
                        let w = Instant::now();
                        db.write("profiles", batch).map_err(|e| e.to_string())?;
                        mine.push(w.elapsed());
                        let done =
                            progress.fetch_add(p.len() as u64, Ordering::Relaxed) + p.len() as u64;
                        if done % 1_000_000 < CHUNK_ROWS {
                            eprintln!(
                                "  loaded {done:>11} profiles  {:>7.1} s",
                                t.elapsed().as_secs_f64()
                            );
                        }
                    }
                    latencies.lock().unwrap().extend(mine);
                    Ok(())
                };
                std::thread::Builder::new()
                    .name(format!("writer-{i}"))
                    .spawn_scoped(s, body)
                    .expect("spawn a writer thread")
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| "a writer thread panicked".to_string())??;
        }
        Ok(())
    })?;
    let load = t.elapsed();
    let load_cpu = support::cpu_seconds().unwrap_or(0.0) - cpu_before;
    let load_after = support::load_average();
    let rss_after_load = support::rss_bytes().unwrap_or(0);
    let mut lat = latencies.into_inner().unwrap();
    lat.sort();
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    if let Some(e) = db.background_error() {
        return Err(format!("background checkpoint failed: {e}").into());
    }

    let wal_after_load = support::dir_bytes(&dir.join("wal"));
    let t = Instant::now();
    let stats = db.checkpoint()?;
    let checkpoint = t.elapsed();
    let disk_after_checkpoint = support::dir_bytes(&dir);
    let t = Instant::now();
    db.close()?;
    let close = t.elapsed();
    let disk = support::dir_bytes(&dir);

    // Reopen in a fresh process.
    let expected = truth.count_tag.load(Ordering::Relaxed);
    let out = std::process::Command::new(std::env::current_exe()?)
        .env("COHORT_FOOTPRINT_REOPEN", &dir)
        .env("COHORT_FOOTPRINT_EXPECT", expected.to_string())
        .output()?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("the reopen child failed ({})", out.status).into());
    }
    let child = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Result<f64, String> {
        child
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("the reopen child did not report {name}: {child}"))
    };
    let open_ms = field("open_ms")?;
    let query_ms = field("first_query_ms")?;
    let counted = field("count")? as u64;
    let rss_before = field("rss_before")? as u64;
    let rss_after = field("rss_after")? as u64;
    let resident = rss_after.saturating_sub(rss_before);
    let (count_ms, and_ms, range_ms) = (field("count_ms")?, field("and_ms")?, field("range_ms")?);
    let (and_count, range_count) = (field("and_count")? as u64, field("range_count")? as u64);
    if counted != expected {
        return Err(format!(
            "count of {COUNT_TAG} after reopen is {counted}, the generator made {expected}"
        )
        .into());
    }

    for (what, got, want) in [
        (
            "i0003 AND i0007",
            and_count,
            truth.count_and.load(Ordering::Relaxed),
        ),
        (
            "age 30..=45",
            range_count,
            truth.count_range.load(Ordering::Relaxed),
        ),
    ] {
        if got != want {
            return Err(format!(
                "count of {what} after reopen is {got}, the generator made {want}"
            )
            .into());
        }
    }
    let nf = n as f64;
    println!();
    println!(
        "| {n} profiles, durability always, {writers} writers, batches of {CHUNK_ROWS} | value |"
    );
    println!("|---|---:|");
    println!(
        "| load (generate + write, wall) | {:.1} s |",
        load.as_secs_f64()
    );
    println!("| load rate | {:.0} profiles/s |", nf / load.as_secs_f64());
    println!(
        "| CPU time of the process during the load (user + sys) | {load_cpu:.1} s ({:.1} µs/profile) |",
        load_cpu * 1e6 / nf
    );
    println!(
        "| machine 1-min load average before / after the load | {load_before} / {load_after} |"
    );
    println!("| generation alone, 1 thread | {gen_rate:.0} profiles/s |");
    println!(
        "| write latency per 10k batch p50 / p99 / max | {:.0} / {:.0} / {:.0} ms |",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "| (profile, tag) pairs | {} ({:.2} per profile) |",
        truth.pairs.load(Ordering::Relaxed),
        truth.pairs.load(Ordering::Relaxed) as f64 / nf
    );
    println!(
        "| RSS of the loading process after load | {:.0} MiB ({:.0} B/profile) |",
        mib(rss_after_load),
        rss_after_load as f64 / nf
    );
    println!(
        "| WAL on disk at the end of the load (written since the last background checkpoint) | {:.0} MiB |",
        mib(wal_after_load)
    );
    println!(
        "| final checkpoint | {:.1} s ({} parts, {:.0} MiB written) |",
        checkpoint.as_secs_f64(),
        stats.parts_written,
        mib(stats.bytes_written)
    );
    println!(
        "| disk after checkpoint | {:.0} MiB ({:.1} B/profile) |",
        mib(disk_after_checkpoint),
        disk_after_checkpoint as f64 / nf
    );
    println!("| close | {:.2} s |", close.as_secs_f64());
    println!(
        "| disk after close | {:.0} MiB ({:.1} B/profile) |",
        mib(disk),
        disk as f64 / nf
    );
    println!("| reopen (Database::open) | {open_ms:.0} ms |");
    println!("| first query (count {COUNT_TAG} over all shards) | {query_ms:.3} ms |");
    println!(
        "| time to first query (open + query) | {:.0} ms |",
        open_ms + query_ms
    );
    println!("| count {COUNT_TAG} (= generator's count) | {counted} |");
    println!(
        "| warm: count {COUNT_TAG}, all shards (median of 21) | {:.2} µs |",
        count_ms * 1e3
    );
    println!(
        "| warm: count i0003 AND i0007, per-shard intersection_len (median of 21) | {and_ms:.3} ms ({and_count}) |"
    );
    println!(
        "| warm: count age BETWEEN 30 AND 45, per-shard BSI (median of 21) | {range_ms:.2} ms ({range_count}) |"
    );
    println!(
        "| resident after reopen + first query | {:.0} MiB ({:.1} B/profile) |",
        mib(resident),
        resident as f64 / nf
    );
    Ok(())
}

/// The child: open, count, report RSS. Prints `key=value` lines.
fn reopen_child(dir: &Path) {
    let rss_before = support::rss_bytes().unwrap_or(0);
    let t = Instant::now();
    let db = match Database::open(dir, Options::default()) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("footprint child: cannot reopen {}: {e}", dir.display());
            std::process::exit(1);
        }
    };
    let open = t.elapsed();
    let t = Instant::now();
    let snapshot = db.snapshot();
    let count: u64 = match snapshot.table("profiles") {
        Ok(table) => table
            .shards()
            .map(|s| {
                s.value_bitmap(COL_INTERESTS, COUNT_TAG)
                    .map_or(0, |b| b.len())
            })
            .sum(),
        Err(e) => {
            eprintln!("footprint child: {e}");
            std::process::exit(1);
        }
    };
    let query = t.elapsed();
    let rss_after = support::rss_bytes().unwrap_or(0);
    // Warm timings of three counts over every shard (median of 21 runs).
    let table = snapshot.table("profiles").expect("table");
    let median_ms = |f: &dyn Fn() -> u64| -> (f64, u64) {
        let mut times = Vec::with_capacity(21);
        let mut answer = 0;
        for _ in 0..21 {
            let t = Instant::now();
            answer = std::hint::black_box(f());
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        (times[times.len() / 2], answer)
    };
    let (count_ms, _) = median_ms(&|| {
        table
            .shards()
            .map(|s| {
                s.value_bitmap(COL_INTERESTS, COUNT_TAG)
                    .map_or(0, |b| b.len())
            })
            .sum()
    });
    let (and_ms, and_count) = median_ms(&|| support::count_both_tags(&table, "i0003", "i0007"));
    let (range_ms, range_count) = median_ms(&|| {
        table
            .shards()
            .map(|s| s.bsi(COL_AGE).map_or(0, |b| b.between(30, 45, None).len()))
            .sum()
    });
    if let Some(expect) = env_u64("COHORT_FOOTPRINT_EXPECT") {
        if expect != count {
            eprintln!("footprint child: counted {count}, expected {expect}");
        }
    }
    println!("open_ms={}", open.as_secs_f64() * 1e3);
    println!("first_query_ms={}", query.as_secs_f64() * 1e3);
    println!("count={count}");
    println!("rss_before={rss_before}");
    println!("rss_after={rss_after}");
    println!("count_ms={count_ms}");
    println!("and_ms={and_ms}");
    println!("and_count={and_count}");
    println!("range_ms={range_ms}");
    println!("range_count={range_count}");
    drop(snapshot);
    // Nothing changed since the checkpoint: closing writes nothing.
    let _ = db.close();
}
