//! The standard synthetic audience of `../shared/bench/gen_profiles.py`,
//! generated in Rust: the same profiles, bit for bit, for every `(N, seed)`.
//!
//! Rows come in blocks of [`BLOCK`] = 2^20; block `b` is drawn whole from
//! `default_rng(SeedSequence([seed, b]))` and then cut, so the first M rows
//! of an N-row audience are the M-row audience. Within a block the columns
//! are drawn one after another, each for all rows, in gen_profiles.py's
//! order (country, gender, age, interest count, last_seen, ltv, consent,
//! then the interests), because they share one random stream.
//!
//! Invariants of a [`Block`]: every column has `len` entries; `tag_off` has
//! `len + 1` non-decreasing offsets into `tags`; a row's tags are distinct
//! and ascending, at most [`MAX_INTERESTS`]; indices are 0-based into
//! [`COUNTRIES`], [`GENDERS`] and the tag names (`i0001` is tag 0).

use super::rng::distributions::{beta, bounded_u32, lognormal, poisson};
use super::rng::Pcg64;
use std::io::Write;

/// The 50 country codes, in gen_profiles.py's (Zipf rank) order.
pub const COUNTRIES: [&str; 50] = [
    "US", "GB", "DE", "FR", "IN", "BR", "JP", "IT", "ES", "NL", "CA", "AU", "MX", "KR", "PL", "SE",
    "BE", "CH", "TR", "ID", "AR", "AT", "NO", "DK", "FI", "IE", "PT", "CZ", "RO", "HU", "GR", "IL",
    "ZA", "NG", "EG", "SA", "AE", "SG", "MY", "TH", "VN", "PH", "NZ", "CL", "CO", "PE", "UA", "KE",
    "MA", "PK",
];
/// Gender codes and their probabilities.
pub const GENDERS: [&str; 3] = ["f", "m", "u"];
const GENDER_P: [f64; 3] = [0.48, 0.48, 0.04];
/// Number of distinct interest tags (`i0001`..`i1000`).
pub const N_TAGS: usize = 1000;
/// Mean and cap of the number of interests per profile.
pub const MEAN_INTERESTS: f64 = 6.0;
pub const MAX_INTERESTS: usize = 20;
/// 2026-11-01T00:00:00Z: `last_seen` is uniform in `[NOW - WINDOW, NOW)`.
pub const NOW: i64 = 1_793_491_200;
pub const WINDOW: i64 = 90 * 86_400;
/// Rows per independently seeded block (fixed: changing it changes the data).
pub const BLOCK: usize = 1 << 20;
/// The CSV header line of gen_profiles.py (without the newline).
pub const CSV_HEADER: &str = "id,country,gender,age,interests,last_seen,ltv,consent";
/// Redraw rounds of the interest sampling before giving up (as gen_profiles.py).
const MAX_ROUNDS: usize = 1000;

/// Why a block could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("interest sampling did not converge in block {0} (seed {1})")]
    NotConverged(u64, u64),
    #[error("a generator thread failed: {0}")]
    Worker(String),
}

/// The tag name of a 0-based tag index: `i0001` is index 0.
pub fn tag_name(tag: usize) -> String {
    format!("i{:04}", tag + 1)
}

/// Every tag's name, by 0-based index (made once; writing a profile then
/// formats nothing).
pub fn tag_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| (0..N_TAGS).map(tag_name).collect())
}

/// The 0-based index of a tag name `i0001`..`i1000`.
pub fn tag_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix('i')?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = digits.parse().ok()?;
    (1..=N_TAGS).contains(&n).then(|| n - 1)
}

/// numpy's pairwise summation of doubles (`pairwise_sum_DOUBLE`): plain
/// below 8 values, eight interleaved partial sums up to 128, and halves cut
/// at a multiple of 8 above. `np.sum` of a contiguous float64 array adds
/// exactly like this, and the CDFs below depend on its last bit.
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0, |acc, &x| acc + x);
    }
    if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (acc, x) in r.iter_mut().zip(chunk) {
                *acc += x;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &a[whole..] {
            res += x;
        }
        return res;
    }
    let mut half = n / 2;
    half -= half % 8;
    pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
}

/// gen_profiles.py's `_zipf_cdf(k, 1.0)`: `w = 1 / r` for ranks 1..=k,
/// `cumsum(w / w.sum())` (sequential), last entry forced to 1.0. (`r ** 1.0`
/// is `r` exactly, so the exponent is left out.)
fn zipf_cdf(k: usize) -> Vec<f64> {
    let w: Vec<f64> = (1..=k).map(|r| 1.0 / r as f64).collect();
    let total = 0.0 + pairwise_sum(&w);
    let mut acc = 0.0;
    let mut c: Vec<f64> = w
        .iter()
        .map(|x| {
            acc += x / total;
            acc
        })
        .collect();
    if let Some(last) = c.last_mut() {
        *last = 1.0;
    }
    c
}

/// A CDF and a guide table for `searchsorted(cdf, u, side='right')`.
struct Cdf {
    c: Vec<f64>,
    /// `start[j]` = how many entries are `<= j / GUIDE` (a lower bound of the
    /// answer for any `u >= j / GUIDE`).
    start: Vec<u32>,
}

const GUIDE: usize = 4096;

impl Cdf {
    fn new(c: Vec<f64>) -> Cdf {
        let start = (0..GUIDE)
            .map(|j| {
                let edge = j as f64 / GUIDE as f64;
                c.partition_point(|&x| x <= edge) as u32
            })
            .collect();
        Cdf { c, start }
    }

    /// The number of entries `<= u`, i.e. numpy's `searchsorted(.., 'right')`,
    /// for `0 <= u < 1`.
    #[inline]
    fn draw(&self, u: f64) -> usize {
        let mut i = self.start[(u * GUIDE as f64) as usize] as usize;
        while i < self.c.len() && self.c[i] <= u {
            i += 1;
        }
        i
    }
}

/// The three CDFs gen_profiles.py draws categories from.
struct Cdfs {
    country: Cdf,
    gender: Cdf,
    tag: Cdf,
}

fn cdfs() -> &'static Cdfs {
    static CDFS: std::sync::OnceLock<Cdfs> = std::sync::OnceLock::new();
    CDFS.get_or_init(|| {
        let mut acc = 0.0;
        let gender = GENDER_P
            .iter()
            .map(|p| {
                acc += p;
                acc
            })
            .collect();
        Cdfs {
            country: Cdf::new(zipf_cdf(COUNTRIES.len())),
            gender: Cdf::new(gender),
            tag: Cdf::new(zipf_cdf(N_TAGS)),
        }
    })
}

/// Rows `[row0, row0 + len)` of an audience, column by column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Block {
    pub row0: u64,
    pub country: Vec<u8>,
    pub gender: Vec<u8>,
    pub age: Vec<u8>,
    pub tag_off: Vec<u32>,
    pub tags: Vec<u16>,
    pub last_seen: Vec<i64>,
    pub ltv_cents: Vec<i64>,
    pub consent: Vec<bool>,
}

/// One profile of a block, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile<'a> {
    pub row: u64,
    pub country: u8,
    pub gender: u8,
    pub age: u8,
    /// Ascending 0-based tag indices.
    pub tags: &'a [u16],
    pub last_seen: i64,
    pub ltv_cents: i64,
    pub consent: bool,
}

impl Profile<'_> {
    /// Whether the profile has the 0-based tag `tag`.
    #[inline]
    pub fn has(&self, tag: u16) -> bool {
        self.tags.binary_search(&tag).is_ok()
    }

    /// The CSV line gen_profiles.py writes for this profile (with `\n`).
    pub fn write_csv(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "u{},{},{},{},",
            self.row,
            COUNTRIES[usize::from(self.country)],
            GENDERS[usize::from(self.gender)],
            self.age
        );
        for (i, t) in self.tags.iter().enumerate() {
            if i > 0 {
                out.push(b'|');
            }
            let _ = write!(out, "i{:04}", t + 1);
        }
        let _ = writeln!(
            out,
            ",{},{}.{:02},{}",
            self.last_seen,
            self.ltv_cents.div_euclid(100),
            self.ltv_cents.rem_euclid(100),
            self.consent
        );
    }
}

impl Block {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.age.len()
    }

    pub fn is_empty(&self) -> bool {
        self.age.is_empty()
    }

    /// Profile `i` of the block (0-based within the block).
    #[inline]
    pub fn profile(&self, i: usize) -> Profile<'_> {
        let (lo, hi) = (self.tag_off[i] as usize, self.tag_off[i + 1] as usize);
        Profile {
            row: self.row0 + i as u64,
            country: self.country[i],
            gender: self.gender[i],
            age: self.age[i],
            tags: &self.tags[lo..hi],
            last_seen: self.last_seen[i],
            ltv_cents: self.ltv_cents[i],
            consent: self.consent[i],
        }
    }

    /// The profiles in row order.
    pub fn profiles(&self) -> impl Iterator<Item = Profile<'_>> + '_ {
        (0..self.len()).map(|i| self.profile(i))
    }

    /// Keeps the first `m` rows (and frees the rest).
    pub fn truncate(&mut self, m: usize) {
        if m >= self.len() {
            return;
        }
        self.country.truncate(m);
        self.gender.truncate(m);
        self.age.truncate(m);
        self.tag_off.truncate(m + 1);
        self.tags.truncate(self.tag_off[m] as usize);
        self.last_seen.truncate(m);
        self.ltv_cents.truncate(m);
        self.consent.truncate(m);
        for v in [&mut self.country, &mut self.gender, &mut self.age] {
            v.shrink_to_fit();
        }
        self.tag_off.shrink_to_fit();
        self.tags.shrink_to_fit();
        self.last_seen.shrink_to_fit();
        self.ltv_cents.shrink_to_fit();
        self.consent.shrink_to_fit();
    }

    /// A copy of rows `lo..hi` (0-based within the block) as a block of its own.
    pub fn slice(&self, lo: usize, hi: usize) -> Block {
        let hi = hi.min(self.len());
        let lo = lo.min(hi);
        let (t0, t1) = (self.tag_off[lo], self.tag_off[hi]);
        Block {
            row0: self.row0 + lo as u64,
            country: self.country[lo..hi].to_vec(),
            gender: self.gender[lo..hi].to_vec(),
            age: self.age[lo..hi].to_vec(),
            tag_off: self.tag_off[lo..=hi].iter().map(|o| o - t0).collect(),
            tags: self.tags[t0 as usize..t1 as usize].to_vec(),
            last_seen: self.last_seen[lo..hi].to_vec(),
            ltv_cents: self.ltv_cents[lo..hi].to_vec(),
            consent: self.consent[lo..hi].to_vec(),
        }
    }

    /// Block `b` of the audience of `seed`, all [`BLOCK`] rows.
    pub fn generate(seed: u64, b: u64) -> Result<Block, GenerateError> {
        let m = BLOCK;
        let cdfs = cdfs();
        let mut rng = Pcg64::seeded(&[seed, b]);
        let r = &mut rng;
        let country = (0..m)
            .map(|_| cdfs.country.draw(r.next_f64()) as u8)
            .collect();
        let gender = (0..m)
            .map(|_| cdfs.gender.draw(r.next_f64()).min(GENDERS.len() - 1) as u8)
            .collect();
        let age = (0..m)
            .map(|_| (13.0 + (77.0 * beta(r, 2.0, 4.0)).round_ties_even()) as u8)
            .collect();
        let k: Vec<u8> = (0..m)
            .map(|_| poisson(r, MEAN_INTERESTS).min(MAX_INTERESTS as i64) as u8)
            .collect();
        let span = u32::try_from(WINDOW - 1).unwrap_or(u32::MAX);
        let last_seen = (0..m)
            .map(|_| NOW - WINDOW + i64::from(bounded_u32(r, span)))
            .collect();
        let ltv_cents = (0..m)
            .map(|_| (lognormal(r, 3.0, 1.0) * 100.0).round_ties_even() as i64)
            .collect();
        let consent = (0..m).map(|_| r.next_f64() < 0.8).collect();
        let (tag_off, tags) =
            draw_interests(r, &cdfs.tag, &k).ok_or(GenerateError::NotConverged(b, seed))?;
        Ok(Block {
            row0: b * BLOCK as u64,
            country,
            gender,
            age,
            tag_off,
            tags,
            last_seen,
            ltv_cents,
            consent,
        })
    }
}

/// gen_profiles.py's interest sampling: `k[r]` distinct tags per row. Every
/// row draws `k[r]` tags (rows in order); duplicates are dropped; then the
/// rows still short draw their shortfall (rows in order), keeping only tags
/// they do not hold yet; repeat. Adding each draw to the row's sorted set
/// when absent keeps exactly what numpy's sorted-unique-and-filter keeps.
/// `None` when 1000 rounds were not enough.
fn draw_interests(rng: &mut Pcg64, tag: &Cdf, k: &[u8]) -> Option<(Vec<u32>, Vec<u16>)> {
    let mut off = Vec::with_capacity(k.len() + 1);
    let mut total = 0u32;
    off.push(0);
    for &n in k {
        total += u32::from(n);
        off.push(total);
    }
    let mut tags = vec![0u16; total as usize];
    let mut have = vec![0u8; k.len()];
    // Adds one drawn tag to row `row`'s sorted slot unless it holds it. The
    // slots are a handful of tags: a scan and an insertion step beat a
    // binary search and a `memmove` call (a third of the generator's time).
    let add = |row: usize, t: u16, tags: &mut [u16], have: &mut [u8]| {
        let slot = &mut tags[off[row] as usize..off[row + 1] as usize];
        let held = usize::from(have[row]);
        if slot[..held].contains(&t) {
            return;
        }
        let mut pos = held;
        while pos > 0 && slot[pos - 1] > t {
            slot[pos] = slot[pos - 1];
            pos -= 1;
        }
        slot[pos] = t;
        have[row] += 1;
    };
    let mut short: Vec<u32> = Vec::new();
    for (row, &n) in k.iter().enumerate() {
        for _ in 0..n {
            let t = tag.draw(rng.next_f64()) as u16;
            add(row, t, &mut tags, &mut have);
        }
        if have[row] < n {
            short.push(row as u32);
        }
    }
    let mut rounds = 0;
    while !short.is_empty() {
        if rounds == MAX_ROUNDS {
            return None;
        }
        rounds += 1;
        for &row in &short {
            let row = row as usize;
            for _ in 0..k[row] - have[row] {
                let t = tag.draw(rng.next_f64()) as u16;
                add(row, t, &mut tags, &mut have);
            }
        }
        short.retain(|&row| have[row as usize] < k[row as usize]);
    }
    Some((off, tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(c: &[f64]) -> (u64, u64) {
        let bits = c.iter().map(|x| x.to_bits());
        let xor = bits.clone().fold(0, |a, b| a ^ b);
        let sum = bits.fold(0u64, |a, b| {
            a.wrapping_add(b.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        });
        (xor, sum)
    }

    // numpy 2.4.6: `w = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** 1.0`,
    // `w.sum()`, and the same xor / multiply-sum of gen_profiles.py's CDF bits.
    #[test]
    fn cdfs_match_numpy() {
        let w: Vec<f64> = (1..=1000).map(|r| 1.0 / r as f64).collect();
        assert_eq!(pairwise_sum(&w), 7.485470860550345);
        assert_eq!(
            fingerprint(&zipf_cdf(1000)),
            (0x0039_4443_a2af_4705, 0x45e4_c490_9cd6_0d25)
        );
        assert_eq!(
            fingerprint(&zipf_cdf(50)),
            (0x000d_8bd0_245e_0d0b, 0xbd7b_d41d_3ceb_c53d)
        );
        assert_eq!(cdfs().gender.c.last(), Some(&1.0));
    }

    #[test]
    fn guide_table_is_searchsorted_right() {
        let tag = &cdfs().tag;
        let mut r = Pcg64::seeded(&[1, 2]);
        for _ in 0..100_000 {
            let u = r.next_f64();
            assert_eq!(tag.draw(u), tag.c.partition_point(|&x| x <= u));
        }
        for &x in &tag.c[..999] {
            assert_eq!(tag.draw(x), tag.c.partition_point(|&c| c <= x));
        }
        assert_eq!(tag.draw(0.0), 0);
    }

    #[test]
    fn tag_names() {
        assert_eq!(tag_name(0), "i0001");
        assert_eq!(tag_name(999), "i1000");
        assert_eq!(tag_index("i0003"), Some(2));
        assert_eq!(tag_index("i1000"), Some(999));
        assert_eq!(tag_index("i0000"), None);
        assert_eq!(tag_index("i1001"), None);
        assert_eq!(tag_index("x0001"), None);
        assert_eq!(tag_index("i01"), None);
    }
}
