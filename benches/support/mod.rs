//! Shared by the benchmarks: a deterministic Rust generator of the synthetic
//! audience of `../shared/bench/gen_profiles.py` (same shape and
//! distributions, not byte-identical), the `profiles` schema, and helpers to
//! turn generated profiles into write batches.
//!
//! Determinism: rows are generated in chunks of [`CHUNK_ROWS`]; chunk `c` is
//! drawn from `StdRng::seed_from_u64(mix(seed, c))`, so any chunk can be made
//! on its own (writer threads generate chunks in parallel) and the first `M`
//! rows of an `N`-row set equal the `M`-row set.
//!
//! Shape (per profile):
//! - `id`: `u<row>`.
//! - `country`: one of the 50 codes of gen_profiles.py, Zipf(1.0) over that order.
//! - `gender`: f / m / u with probability 0.48 / 0.48 / 0.04.
//! - `age`: `13 + round(77 * Beta(2, 4))`; Beta(2, 4) is the 2nd smallest of 5 uniforms.
//! - `interests`: `min(Poisson(6), 20)` distinct tags, Zipf(1.0) over `i0001..i1000`,
//!   drawn without replacement, ascending.
//! - `last_seen`: uniform in `[NOW - 90 days, NOW)`, NOW = 1793491200.
//! - `ltv`: lognormal(3, 1) rounded to cents.
//! - `consent`: true with probability 0.8.

#![allow(dead_code)] // each bench uses a different part of this module

use cohortdb::{Batch, ColumnType, TableSchema, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

pub const COUNTRIES: [&str; 50] = [
    "US", "GB", "DE", "FR", "IN", "BR", "JP", "IT", "ES", "NL", "CA", "AU", "MX", "KR", "PL", "SE",
    "BE", "CH", "TR", "ID", "AR", "AT", "NO", "DK", "FI", "IE", "PT", "CZ", "RO", "HU", "GR", "IL",
    "ZA", "NG", "EG", "SA", "AE", "SG", "MY", "TH", "VN", "PH", "NZ", "CL", "CO", "PE", "UA", "KE",
    "MA", "PK",
];
pub const GENDERS: [&str; 3] = ["f", "m", "u"];
pub const N_TAGS: usize = 1000;
pub const MEAN_INTERESTS: f64 = 6.0;
pub const MAX_INTERESTS: usize = 20;
/// 2026-11-01T00:00:00Z.
pub const NOW: i64 = 1_793_491_200;
pub const WINDOW: i64 = 90 * 86_400;
/// Rows per independently seeded chunk (also the benchmarks' write batch size).
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

fn zipf_cdf(k: usize, s: f64) -> Vec<f64> {
    let w: Vec<f64> = (1..=k).map(|r| 1.0 / (r as f64).powf(s)).collect();
    let total: f64 = w.iter().sum();
    let mut acc = 0.0;
    let mut c: Vec<f64> = w
        .iter()
        .map(|x| {
            acc += x / total;
            acc
        })
        .collect();
    c[k - 1] = 1.0;
    c
}

struct Tables {
    tag_cdf: Vec<f64>,
    country_cdf: Vec<f64>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| Tables {
        tag_cdf: zipf_cdf(N_TAGS, 1.0),
        country_cdf: zipf_cdf(COUNTRIES.len(), 1.0),
    })
}

/// Index drawn from a CDF (numpy `searchsorted(side="right")` of a uniform).
fn draw(rng: &mut StdRng, cdf: &[f64]) -> usize {
    let u: f64 = rng.random();
    cdf.partition_point(|&c| c <= u).min(cdf.len() - 1)
}

fn poisson(rng: &mut StdRng, lambda: f64) -> usize {
    // Knuth: fine for a small mean.
    let limit = (-lambda).exp();
    let mut k = 0;
    let mut p: f64 = rng.random();
    while p > limit {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

fn standard_normal(rng: &mut StdRng) -> f64 {
    // Box-Muller; 1 - u keeps the log argument in (0, 1].
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Beta(2, 4): the 2nd smallest of 5 uniforms.
fn beta_2_4(rng: &mut StdRng) -> f64 {
    let mut u = [0f64; 5];
    for x in u.iter_mut() {
        *x = rng.random();
    }
    u.sort_unstable_by(f64::total_cmp);
    u[1]
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

fn chunk_seed(seed: u64, chunk: u64) -> u64 {
    // splitmix64 of (seed, chunk): unrelated streams for neighbouring chunks.
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(chunk.wrapping_add(1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The profiles of chunk `chunk` (rows `chunk * CHUNK_ROWS ..`), cut to `rows`
/// (a whole chunk is always drawn, so a short set is a prefix of a long one).
pub fn chunk(seed: u64, chunk: u64, rows: usize) -> Vec<Profile> {
    let t = tables();
    let mut rng = StdRng::seed_from_u64(chunk_seed(seed, chunk));
    let first = chunk * CHUNK_ROWS;
    let mut out = Vec::with_capacity(CHUNK_ROWS as usize);
    for i in 0..CHUNK_ROWS {
        let country = draw(&mut rng, &t.country_cdf);
        let g: f64 = rng.random();
        let gender = if g < 0.48 {
            0
        } else if g < 0.96 {
            1
        } else {
            2
        };
        let age = 13 + (77.0 * beta_2_4(&mut rng)).round() as i64;
        let k = poisson(&mut rng, MEAN_INTERESTS).min(MAX_INTERESTS);
        let mut interests: Vec<u16> = Vec::with_capacity(k);
        while interests.len() < k {
            let tag = draw(&mut rng, &t.tag_cdf) as u16;
            if !interests.contains(&tag) {
                interests.push(tag);
            }
        }
        interests.sort_unstable();
        let last_seen = NOW - WINDOW + rng.random_range(0..WINDOW);
        let ltv = (3.0 + standard_normal(&mut rng)).exp();
        let ltv_cents = (ltv * 100.0).round() as i64;
        let consent = rng.random::<f64>() < 0.8;
        out.push(Profile {
            row: first + i,
            country,
            gender,
            age,
            interests,
            last_seen,
            ltv_cents,
            consent,
        });
    }
    out.truncate(rows);
    out
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
