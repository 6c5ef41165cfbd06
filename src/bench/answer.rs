//! What a query answers, and the expected answers computed straight from
//! the profiles (no database involved): the yardstick every bench answer is
//! checked against.
//!
//! Invariants: an [`Answer`] is normalised so that equal answers compare
//! equal (keyed counts sorted by key, Q7 as count + SHA-1 of the sorted ids);
//! [`Expected`] sees every profile of the loaded audience exactly once, in
//! any block order.

use super::audience::{tag_name, Block, COUNTRIES, N_TAGS};
use super::queries::{Query, A, B, C, Q3_AGES, Q3_COUNTRY, Q4_TAGS, Q5_TAGS, Q7_COUNTRY};
use serde_json::{json, Value as Json};
use sha1::{Digest, Sha1};

/// One query's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Q1, Q2, Q3.
    Count(u64),
    /// Q4, Q5, Q6: counts by key, sorted by key (zero counts left out for Q6).
    Keyed(Vec<(String, u64)>),
    /// Q7: how many ids and the SHA-1 of the ids sorted and joined by `\n`.
    Ids { count: u64, sha1: String },
    /// Q8: (tag, count), count descending then tag ascending.
    Ranked(Vec<(String, u64)>),
}

impl Answer {
    /// Number of values in the answer (ids for Q7).
    pub fn size(&self) -> u64 {
        match self {
            Answer::Count(_) => 1,
            Answer::Keyed(v) | Answer::Ranked(v) => v.len() as u64,
            Answer::Ids { count, .. } => *count,
        }
    }

    /// Q7's answer from its ids, in any order.
    pub fn from_ids(mut ids: Vec<String>) -> Answer {
        ids.sort_unstable();
        let mut sha = Sha1::new();
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                sha.update(b"\n");
            }
            sha.update(id.as_bytes());
        }
        let digest = sha.finalize();
        Answer::Ids {
            count: ids.len() as u64,
            sha1: digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// Counts by key, normalised (sorted by key).
    pub fn keyed(mut v: Vec<(String, u64)>) -> Answer {
        v.sort();
        Answer::Keyed(v)
    }

    /// The JSON form, as ../shared/bench/queries.md shows answers.
    pub fn to_json(&self) -> Json {
        match self {
            Answer::Count(n) => json!(n),
            Answer::Keyed(v) => {
                Json::Object(v.iter().map(|(k, n)| (k.clone(), json!(n))).collect())
            }
            Answer::Ids { count, sha1 } => json!({ "count": count, "sha1": sha1 }),
            Answer::Ranked(v) => Json::Array(v.iter().map(|(k, n)| json!([k, n])).collect()),
        }
    }

    /// A short human description of how `got` differs from `self` (expected).
    pub fn difference(&self, got: &Answer) -> String {
        match (self, got) {
            (Answer::Keyed(e), Answer::Keyed(g)) => {
                let mut diffs = Vec::new();
                let mut keys: Vec<&String> = e.iter().chain(g.iter()).map(|(k, _)| k).collect();
                keys.sort();
                keys.dedup();
                let find =
                    |v: &[(String, u64)], k: &str| v.iter().find(|(x, _)| x == k).map(|(_, n)| *n);
                for k in keys {
                    let (x, y) = (find(e, k), find(g, k));
                    if x != y {
                        let show = |n: Option<u64>| n.map_or("none".to_string(), |n| n.to_string());
                        diffs.push(format!("{k}: expected {}, got {}", show(x), show(y)));
                    }
                }
                let shown = diffs.len().min(5);
                let more = diffs.len() - shown;
                let mut s = diffs[..shown].join("; ");
                if more > 0 {
                    s += &format!("; and {more} more");
                }
                s
            }
            _ => format!("expected {}, got {}", self.to_json(), got.to_json()),
        }
    }
}

/// Bits of [`Expected::bits_of`]: the 10 Q4 tags, then the 3 Q5 tags, then
/// A, B and C (a tag may have several).
const Q5_BIT: u32 = 10;
const A_BIT: u32 = 1 << 13;
const B_BIT: u32 = 1 << 14;
const C_BIT: u32 = 1 << 15;

/// The expected answers of Q1–Q8, accumulated block by block.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Per tag, the query tags it is, as bits: a profile's bits are the OR
    /// over its tags, so each query tag is one bit test, not a search.
    bits_of: Vec<u32>,
    /// Tag A (Q8 leaves it out of its own co-interests).
    a: u16,
    /// Index into `q4_counts` of the pair (i, j), i < j.
    q4_pair: [[u8; 10]; 10],
    q3_country: u8,
    q7_country: u8,
    q1: u64,
    q2: u64,
    q3: u64,
    /// 10 singles then the 45 pairs (i < j), in `Q4_TAGS` order.
    q4_counts: [u64; 55],
    /// By region bits `abc` (index 0, in none, is not reported).
    q5_counts: [u64; 8],
    q6_counts: [u64; COUNTRIES.len()],
    q7_ids: Vec<u64>,
    /// Per tag: profiles having A and that tag.
    co: Vec<u64>,
}

/// The positions of the set bits of `bits`, lowest first.
fn ones(mut bits: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (bits != 0).then(|| {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            i
        })
    })
}

fn tag(name: &str) -> u16 {
    // The query parameters are constants of valid tag names.
    super::audience::tag_index(name).map_or(u16::MAX, |t| t as u16)
}

fn country(code: &str) -> u8 {
    COUNTRIES
        .iter()
        .position(|c| *c == code)
        .map_or(u8::MAX, |i| i as u8)
}

impl Default for Expected {
    fn default() -> Self {
        Expected::new()
    }
}

impl Expected {
    pub fn new() -> Expected {
        let mut bits_of = vec![0u32; N_TAGS];
        let mut mark = |t: u16, bit: u32| {
            if let Some(b) = bits_of.get_mut(usize::from(t)) {
                *b |= bit;
            }
        };
        for (i, t) in Q4_TAGS.iter().enumerate() {
            mark(tag(t), 1 << i);
        }
        for (i, t) in Q5_TAGS.iter().enumerate() {
            mark(tag(t), 1 << (Q5_BIT + i as u32));
        }
        mark(tag(A), A_BIT);
        mark(tag(B), B_BIT);
        mark(tag(C), C_BIT);
        let mut q4_pair = [[0u8; 10]; 10];
        let mut k = 10;
        for (i, row) in q4_pair.iter_mut().enumerate() {
            for cell in &mut row[i + 1..] {
                *cell = k;
                k += 1;
            }
        }
        Expected {
            bits_of,
            a: tag(A),
            q4_pair,
            q3_country: country(Q3_COUNTRY),
            q7_country: country(Q7_COUNTRY),
            q1: 0,
            q2: 0,
            q3: 0,
            q4_counts: [0; 55],
            q5_counts: [0; 8],
            q6_counts: [0; COUNTRIES.len()],
            q7_ids: Vec::new(),
            co: vec![0; N_TAGS],
        }
    }

    /// Counts every profile of `block`.
    pub fn add_block(&mut self, block: &Block) {
        for p in block.profiles() {
            let bits = p
                .tags
                .iter()
                .fold(0u32, |acc, t| acc | self.bits_of[usize::from(*t)]);
            let (ha, hb, hc) = (bits & A_BIT != 0, bits & B_BIT != 0, bits & C_BIT != 0);
            self.q1 += u64::from(ha);
            self.q2 += u64::from(ha && hb);
            self.q3 += u64::from(
                (ha || hb)
                    && p.country == self.q3_country
                    && Q3_AGES.contains(&i64::from(p.age))
                    && !hc,
            );
            let q4 = bits & 0x3ff;
            for i in ones(q4) {
                self.q4_counts[i] += 1;
                for j in ones(q4 & !((2 << i) - 1)) {
                    self.q4_counts[usize::from(self.q4_pair[i][j])] += 1;
                }
            }
            // Q5_TAGS[0] is the region's high bit.
            let q5 = (bits >> Q5_BIT) & 7;
            let region = ((q5 & 1) << 2) | (q5 & 2) | ((q5 >> 2) & 1);
            self.q5_counts[region as usize] += 1;
            if ha {
                self.q6_counts[usize::from(p.country)] += 1;
                if p.country == self.q7_country {
                    self.q7_ids.push(p.row);
                }
                for t in p.tags {
                    self.co[usize::from(*t)] += 1;
                }
            }
        }
    }

    /// The expected answer of `q`.
    pub fn answer(&self, q: Query) -> Answer {
        match q {
            Query::Q1 => Answer::Count(self.q1),
            Query::Q2 => Answer::Count(self.q2),
            Query::Q3 => Answer::Count(self.q3),
            Query::Q4 => {
                let mut v = Vec::with_capacity(55);
                for (i, t) in Q4_TAGS.iter().enumerate() {
                    v.push((t.to_string(), self.q4_counts[i]));
                }
                let mut k = 10;
                for (i, x) in Q4_TAGS.iter().enumerate() {
                    for y in &Q4_TAGS[i + 1..] {
                        v.push((format!("{x}&{y}"), self.q4_counts[k]));
                        k += 1;
                    }
                }
                Answer::keyed(v)
            }
            Query::Q5 => Answer::keyed(
                (1..8)
                    .map(|r| (format!("{r:03b}"), self.q5_counts[r]))
                    .collect(),
            ),
            Query::Q6 => Answer::keyed(
                self.q6_counts
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(c, n)| (COUNTRIES[c].to_string(), *n))
                    .collect(),
            ),
            Query::Q7 => Answer::from_ids(self.q7_ids.iter().map(|r| format!("u{r}")).collect()),
            Query::Q8 => {
                let mut top: Vec<(String, u64)> = self
                    .co
                    .iter()
                    .enumerate()
                    .filter(|(t, n)| *t != usize::from(self.a) && **n > 0)
                    .map(|(t, n)| (tag_name(t), *n))
                    .collect();
                top.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
                top.truncate(10);
                Answer::Ranked(top)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q7_answers_are_count_and_sha1_of_the_sorted_newline_joined_ids() {
        // SHA-1("abc") and SHA-1("a\nb") (standard test vector; `printf 'a\nb' | sha1sum`).
        assert_eq!(
            Answer::from_ids(vec!["abc".into()]),
            Answer::Ids {
                count: 1,
                sha1: "a9993e364706816aba3e25717850c26c9cd0d89d".into()
            }
        );
        assert_eq!(
            Answer::from_ids(vec!["b".into(), "a".into()]),
            Answer::Ids {
                count: 2,
                sha1: "fcd127ffa1016069006ad91f3f361248f9bdf272".into()
            }
        );
    }
}
