//! Shared by the benchmarks: the synthetic audience of
//! `../shared/bench/gen_profiles.py`, from the crate's exact generator
//! (`cohortdb::bench::audience`: the same profiles as the Python CSV for a
//! seed), cut into chunks of [`CHUNK_ROWS`] for writer threads, the
//! `profiles` schema, and helpers to turn profiles into write batches.
//!
//! Determinism: chunk `c` holds rows `c * CHUNK_ROWS ..`; each is cut from
//! the generator's 2^20-row block that holds it (kept per thread, so a
//! thread walking chunks in order generates each block once).
//!
//! Shape (per profile): see gen_profiles.py; `id` is `u<row>`.

#![allow(dead_code)] // each bench uses a different part of this module

use cohortdb::bench::audience::{Block, BLOCK};
pub use cohortdb::bench::audience::{COUNTRIES, GENDERS, N_TAGS};
use cohortdb::{Batch, ColumnType, TableSchema, Value};
use std::sync::OnceLock;

/// Rows per chunk (also the benchmarks' write batch size).
pub const CHUNK_ROWS: u64 = 10_000;
/// The seed the benchmarks use.
pub const SEED: u64 = 42;

/// Column positions in [`schema`].
pub const COL_COUNTRY: usize = 0;
pub const COL_GENDER: usize = 1;
pub const COL_AGE: usize = 2;
pub const COL_INTERESTS: usize = 3;
pub const COL_LAST_SEEN: usize = 4;
pub const COL_LTV: usize = 5;
pub const COL_CONSENT: usize = 6;

/// The `profiles` table.
pub fn schema() -> TableSchema {
    TableSchema::new("profiles", "id")
        .column("country", ColumnType::Text)
        .column("gender", ColumnType::Text)
        .column("age", ColumnType::Int)
        .column("interests", ColumnType::TextSet)
        .column("last_seen", ColumnType::Timestamp)
        .column("ltv", ColumnType::Float)
        .column("consent", ColumnType::Bool)
}

/// `i0001` .. `i1000` (index 0 is `i0001`).
pub fn tag_names() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| (1..=N_TAGS).map(|t| format!("i{t:04}")).collect())
}

/// The 0-based index of a tag name such as `i0003`.
pub fn tag_index(name: &str) -> usize {
    name[1..].parse::<usize>().expect("tag name") - 1
}

/// One generated profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub row: u64,
    pub country: usize,
    pub gender: usize,
    pub age: i64,
    /// 0-based tag indexes, ascending, distinct.
    pub interests: Vec<u16>,
    pub last_seen: i64,
    pub ltv_cents: i64,
    pub consent: bool,
}

impl Profile {
    pub fn id(&self) -> String {
        format!("u{}", self.row)
    }
    pub fn has_tag(&self, tag: usize) -> bool {
        self.interests.binary_search(&(tag as u16)).is_ok()
    }
}

thread_local! {
    /// The last generator block this thread made: (seed, block number, block).
    static LAST_BLOCK: std::cell::RefCell<Option<(u64, u64, std::rc::Rc<Block>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Generator block `b` for `seed`, reusing this thread's last one.
fn block(seed: u64, b: u64) -> std::rc::Rc<Block> {
    LAST_BLOCK.with(|cell| {
        if let Some((s, n, block)) = cell.borrow().as_ref() {
            if *s == seed && *n == b {
                return block.clone();
            }
        }
        let made = std::rc::Rc::new(Block::generate(seed, b).expect("generate a block"));
        *cell.borrow_mut() = Some((seed, b, made.clone()));
        made
    })
}

/// The profiles of chunk `chunk` (rows `chunk * CHUNK_ROWS ..`), cut to `rows`.
pub fn chunk(seed: u64, chunk: u64, rows: usize) -> Vec<Profile> {
    let first = chunk * CHUNK_ROWS;
    let b = first / BLOCK as u64;
    let block = block(seed, b);
    let lo = (first - b * BLOCK as u64) as usize;
    (lo..(lo + rows).min(block.len()))
        .map(|i| {
            let p = block.profile(i);
            Profile {
                row: p.row,
                country: usize::from(p.country),
                gender: usize::from(p.gender),
                age: i64::from(p.age),
                interests: p.tags.to_vec(),
                last_seen: p.last_seen,
                ltv_cents: p.ltv_cents,
                consent: p.consent,
            }
        })
        .collect()
}

/// Number of chunks covering `n` profiles.
pub fn chunks_for(n: u64) -> u64 {
    n.div_ceil(CHUNK_ROWS)
}

/// Rows of chunk `c` within the first `n` profiles.
pub fn rows_in_chunk(n: u64, c: u64) -> usize {
    (n - c * CHUNK_ROWS).min(CHUNK_ROWS) as usize
}

/// Every profile of the first `n` (for small `n`; large sets should go chunk by chunk).
pub fn profiles(seed: u64, n: u64) -> Vec<Profile> {
    (0..chunks_for(n))
        .flat_map(|c| chunk(seed, c, rows_in_chunk(n, c)))
        .collect()
}

/// The write batch upserting `profiles`, every column set.
pub fn batch(profiles: &[Profile]) -> Batch {
    let tags = tag_names();
    let mut b = Batch::new();
    for p in profiles {
        b.upsert(p.id())
            .set("country", COUNTRIES[p.country])
            .set("gender", GENDERS[p.gender])
            .set("age", p.age)
            .set(
                "interests",
                Value::Set(
                    p.interests
                        .iter()
                        .map(|&t| tags[t as usize].clone())
                        .collect(),
                ),
            )
            .set("last_seen", Value::Timestamp(p.last_seen))
            .set("ltv", p.ltv_cents as f64 / 100.0)
            .set("consent", p.consent);
    }
    b
}

/// Resident set size of this process in bytes (VmRSS of /proc/self/status), if known.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Sum of the sizes of every file under `dir`.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// User + system CPU seconds this process has used so far (from /proc/self/stat), if known.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// The 1-minute load average (/proc/loadavg), to show whether the machine was busy.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Profiles holding both `a` and `b` in the interests column, shard by shard
/// with `intersection_len` (no bitmap is built).
pub fn count_both_tags(table: &cohortdb::engine::TableSnapshot, a: &str, b: &str) -> u64 {
    table
        .shards()
        .map(|s| {
            match (
                s.value_bitmap(COL_INTERESTS, a),
                s.value_bitmap(COL_INTERESTS, b),
            ) {
                (Some(x), Some(y)) => x.intersection_len(y),
                _ => 0,
            }
        })
        .sum()
}
