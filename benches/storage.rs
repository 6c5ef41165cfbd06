//! Storage-engine micro benchmarks (criterion):
//!
//! - `ingest/*`: bulk ingest throughput (profiles/s) of batches of 10,000
//!   generated profiles into a fresh database, durability `always` and `off`,
//!   one writer and three (group commit).
//! - `bitmap_10m/*`: the bitmap work of a count at 10M rows: AND + count of
//!   the bitmaps of tags i0003 (~25 %) and i0007 (~12 %) over 10,000,000
//!   generated profiles, as one `RoaringBitmap` each, and a BSI range
//!   (`age BETWEEN 30 AND 45`) over 10M ages.
//! - `snapshot/*`: the same counts read from a real database (per-shard
//!   `value_bitmap`s of a snapshot), `COHORT_BENCH_DB_PROFILES` profiles
//!   (default 2,097,152 = two full shards).
//!
//! ```sh
//! cargo bench --bench storage                 # everything (~3-4 min on 2 cores)
//! cargo bench --bench storage -- bitmap_10m   # one group
//! ```

#[path = "support/mod.rs"]
mod support;

/// The same allocator as the `cohortdb` binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cohortdb::storage::bsi::Bsi;
use cohortdb::{Batch, Database, Durability, Options};
use criterion::{black_box, criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use roaring::RoaringBitmap;
use std::time::{Duration, Instant};
use support::{Profile, CHUNK_ROWS, COL_AGE, COL_INTERESTS, SEED};

/// Profiles per ingest iteration (one criterion iteration is about a second or more).
const INGEST_ROWS: u64 = 100_000;
/// Rows of the in-memory bitmap benchmarks.
const BITMAP_ROWS: u64 = 10_000_000;
/// Default size of the database the snapshot benchmarks read.
const DEFAULT_DB_PROFILES: u64 = 2 << 20;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").trim().parse().ok())
}

fn options(durability: Durability) -> Options {
    let mut o = Options::default().durability(durability);
    // Closing a benchmark database need not write a checkpoint nobody reads.
    o.checkpoint_on_close = false;
    o
}

/// A fresh database with the `profiles` table, in its own temp dir.
fn fresh(durability: Durability) -> (tempfile::TempDir, Database) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let db = Database::open(tmp.path().join("db"), options(durability)).expect("open");
    db.create_table(support::schema()).expect("create table");
    (tmp, db)
}

fn batches(profiles: &[Profile]) -> Vec<Batch> {
    profiles
        .chunks(CHUNK_ROWS as usize)
        .map(support::batch)
        .collect()
}

/// Writes `batches` with `writers` threads; returns the wall time of the writes alone.
fn ingest(db: &Database, batches: Vec<Batch>, writers: usize) -> Duration {
    let mut per_writer: Vec<Vec<Batch>> = (0..writers).map(|_| Vec::new()).collect();
    for (i, b) in batches.into_iter().enumerate() {
        per_writer[i % writers].push(b);
    }
    let t = Instant::now();
    std::thread::scope(|s| {
        for mine in per_writer {
            s.spawn(move || {
                for b in mine {
                    db.write("profiles", b).expect("write");
                }
            });
        }
    });
    t.elapsed()
}

fn bench_ingest(c: &mut Criterion) {
    let profiles = support::profiles(SEED, INGEST_ROWS);
    let mut g = c.benchmark_group("ingest");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(INGEST_ROWS));
    for (name, durability, writers) in [
        ("always_1_writer", Durability::Always, 1),
        ("off_1_writer", Durability::Off, 1),
        ("always_3_writers", Durability::Always, 3),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (_tmp, db) = fresh(durability);
                    total += ingest(&db, batches(&profiles), writers);
                }
                total
            })
        });
    }
    g.finish();
}

/// The bitmaps of tags i0003 and i0007 and the BSI of ages over `n` generated profiles.
struct TenMillion {
    a: RoaringBitmap,
    b: RoaringBitmap,
    ages: Bsi,
    /// The same, split like the engine's shards (2^20 rows each).
    shards: Vec<(RoaringBitmap, RoaringBitmap, Bsi)>,
}

/// A BSI of `ages` for rows `first..first + ages.len()`, as the engine keeps it
/// (base = the smallest value, slice i = rows with bit i of `age - base`).
fn bsi_of(first: u32, ages: &[u8]) -> Bsi {
    let base = *ages.iter().min().unwrap() as i64;
    let depth =
        (64 - ((*ages.iter().max().unwrap() as i64 - base) as u64).leading_zeros()) as usize;
    let slices: Vec<RoaringBitmap> = (0..depth)
        .map(|i| {
            let rows = ages
                .iter()
                .enumerate()
                .filter(|(_, &age)| (age as i64 - base) >> i & 1 == 1)
                .map(|(r, _)| first + r as u32);
            RoaringBitmap::from_sorted_iter(rows).unwrap()
        })
        .collect();
    let exists = RoaringBitmap::from_sorted_iter(first..first + ages.len() as u32).unwrap();
    Bsi::from_parts(exists, base, slices).expect("valid BSI")
}

fn build_bitmaps(n: u64) -> TenMillion {
    let t = Instant::now();
    let (tag_a, tag_b) = (support::tag_index("i0003"), support::tag_index("i0007"));
    let chunks = support::chunks_for(n);
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get()) as u64;
    // Each thread generates a contiguous range of chunks, so row lists stay sorted.
    let parts: Vec<(Vec<u32>, Vec<u32>, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (lo, hi) = (chunks * i / threads, chunks * (i + 1) / threads);
                s.spawn(move || {
                    let (mut a, mut b, mut ages) = (Vec::new(), Vec::new(), Vec::new());
                    for c in lo..hi {
                        for p in support::chunk(SEED, c, support::rows_in_chunk(n, c)) {
                            if p.has_tag(tag_a) {
                                a.push(p.row as u32);
                            }
                            if p.has_tag(tag_b) {
                                b.push(p.row as u32);
                            }
                            ages.push(p.age as u8);
                        }
                    }
                    (a, b, ages)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let a =
        RoaringBitmap::from_sorted_iter(parts.iter().flat_map(|p| p.0.iter().copied())).unwrap();
    let b =
        RoaringBitmap::from_sorted_iter(parts.iter().flat_map(|p| p.1.iter().copied())).unwrap();
    let ages: Vec<u8> = parts.into_iter().flat_map(|p| p.2).collect();
    let shard_rows = cohortdb::engine::SHARD_ROWS;
    let shards = ages
        .chunks(shard_rows as usize)
        .enumerate()
        .map(|(i, shard_ages)| {
            let first = i as u32 * shard_rows;
            let range = first..first.saturating_add(shard_rows);
            let part = |x: &RoaringBitmap| {
                RoaringBitmap::from_sorted_iter(x.iter().filter(|r| range.contains(r))).unwrap()
            };
            (part(&a), part(&b), bsi_of(first, shard_ages))
        })
        .collect();
    let ages = bsi_of(0, &ages);
    eprintln!(
        "bitmap_10m: {n} profiles generated in {:.1} s; i0003 {} rows ({} B serialized), i0007 {} rows ({} B), \
         age BSI base {} depth {}",
        t.elapsed().as_secs_f64(),
        a.len(),
        a.serialized_size(),
        b.len(),
        b.serialized_size(),
        ages.base(),
        ages.depth(),
    );
    TenMillion { a, b, ages, shards }
}

fn bench_bitmaps(c: &mut Criterion) {
    let TenMillion { a, b, ages, shards } = build_bitmaps(BITMAP_ROWS);
    eprintln!(
        "bitmap_10m: |i0003 AND i0007| = {}, |age 30..=45| = {}",
        a.intersection_len(&b),
        ages.between(30, 45, None).len()
    );
    let mut g = c.benchmark_group("bitmap_10m");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("and_intersection_len", |bench| {
        bench.iter(|| black_box(&a).intersection_len(black_box(&b)))
    });
    g.bench_function("and_materialize_len", |bench| {
        bench.iter(|| (black_box(&a) & black_box(&b)).len())
    });
    g.bench_function("count_i0003_len", |bench| {
        bench.iter(|| black_box(&a).len())
    });
    g.bench_function("bsi_between_30_45", |bench| {
        bench.iter(|| black_box(&ages).between(30, 45, None).len())
    });
    g.bench_function("bsi_between_30_45_and_i0003", |bench| {
        bench.iter(|| {
            black_box(&ages)
                .between(30, 45, None)
                .intersection_len(black_box(&a))
        })
    });
    g.bench_function("sharded_and_intersection_len", |bench| {
        bench.iter(|| {
            black_box(&shards)
                .iter()
                .map(|(a, b, _)| a.intersection_len(b))
                .sum::<u64>()
        })
    });
    g.bench_function("sharded_bsi_between_30_45", |bench| {
        bench.iter(|| {
            black_box(&shards)
                .iter()
                .map(|(_, _, ages)| ages.between(30, 45, None).len())
                .sum::<u64>()
        })
    });
    g.finish();
}

fn load_db(n: u64) -> (tempfile::TempDir, Database, u64, u64) {
    let t = Instant::now();
    let (tmp, db) = fresh(Durability::Off);
    let (tag_a, tag_b) = (support::tag_index("i0003"), support::tag_index("i0007"));
    let (mut count_a, mut count_ab) = (0, 0);
    for c in 0..support::chunks_for(n) {
        let p = support::chunk(SEED, c, support::rows_in_chunk(n, c));
        count_a += p.iter().filter(|p| p.has_tag(tag_a)).count() as u64;
        count_ab += p
            .iter()
            .filter(|p| p.has_tag(tag_a) && p.has_tag(tag_b))
            .count() as u64;
        db.write("profiles", support::batch(&p)).expect("write");
    }
    let loaded = t.elapsed();
    db.checkpoint().expect("checkpoint");
    eprintln!(
        "snapshot: loaded {n} profiles (durability off) in {:.1} s, checkpoint {:.1} s",
        loaded.as_secs_f64(),
        (t.elapsed() - loaded).as_secs_f64()
    );
    (tmp, db, count_a, count_ab)
}

fn bench_snapshot(c: &mut Criterion) {
    let n = env_u64("COHORT_BENCH_DB_PROFILES").unwrap_or(DEFAULT_DB_PROFILES);
    let (_tmp, db, count_a, count_ab) = load_db(n);
    let count_tag = |db: &Database| -> u64 {
        let snap = db.snapshot();
        let table = snap.table("profiles").expect("table");
        table
            .shards()
            .map(|s| {
                s.value_bitmap(COL_INTERESTS, "i0003")
                    .map_or(0, |b| b.len())
            })
            .sum()
    };
    let count_and = |db: &Database| -> u64 {
        let snap = db.snapshot();
        let table = snap.table("profiles").expect("table");
        support::count_both_tags(&table, "i0003", "i0007")
    };
    let count_range = |db: &Database| -> u64 {
        let snap = db.snapshot();
        let table = snap.table("profiles").expect("table");
        table
            .shards()
            .map(|s| s.bsi(COL_AGE).map_or(0, |b| b.between(30, 45, None).len()))
            .sum()
    };
    assert_eq!(
        count_tag(&db),
        count_a,
        "count of i0003 differs from the generator's"
    );
    assert_eq!(count_and(&db), count_ab, "count of i0003 AND i0007 differs");
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("count_i0003", |b| b.iter(|| count_tag(black_box(&db))));
    g.bench_function("and_count_i0003_i0007", |b| {
        b.iter(|| count_and(black_box(&db)))
    });
    g.bench_function("bsi_between_30_45", |b| {
        b.iter(|| count_range(black_box(&db)))
    });
    g.finish();
}

/// Bulk-load indexing of an INT column: 1M rows of 27-bit values (the
/// spread of `last_seen`) appended to a BSI in runs of 50,000, as
/// `Database::insert_rows` does for new profiles.
fn bench_bsi_append(c: &mut Criterion) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let rows: Vec<(u32, i64)> = (0..1_000_000u32)
        .map(|r| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (r, 1_700_000_000 + (state >> 37) as i64)
        })
        .collect();
    let mut g = c.benchmark_group("bsi");
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_function("append_1m_in_runs_of_50k", |b| {
        b.iter(|| {
            let mut bsi = Bsi::default();
            rows.chunks(50_000).for_each(|run| bsi.append(run));
            black_box(bsi.exists().len())
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_bitmaps,
    bench_snapshot,
    bench_ingest,
    bench_bsi_append
);
criterion_main!(benches);
