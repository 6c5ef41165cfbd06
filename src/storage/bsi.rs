//! Bit-sliced index (BSI) over 64-bit integers: ranges, SUM, MIN and MAX over
//! any set of rows as bitmap algebra, never touching row values.
//!
//! Representation: a row holding value `v` stores `u = v - base` (an unsigned
//! offset, `base` the smallest value ever seen by this index) in `depth`
//! bitmaps: row `r` is in `slices[i]` iff bit `i` of its `u` is 1. `exists`
//! holds every row that has a value.
//!
//! Invariants: every slice is a subset of `exists`; `depth <= 64`; every stored
//! `u < 2^depth`. A value below `base` rebases the index by adding
//! `base - v` to every stored offset with a ripple-carry over the slices
//! (O(depth) bitmap operations, no row is read).
//!
//! Slices are `Arc`s so that snapshots share them and a writer copies only the
//! slices it changes (`Arc::make_mut`).

use roaring::RoaringBitmap;
use std::sync::Arc;

/// A comparison a range predicate asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
}

/// A bit-sliced index; see the module doc.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bsi {
    exists: Arc<RoaringBitmap>,
    base: i64,
    slices: Vec<Arc<RoaringBitmap>>,
}

/// The widest mean distance between appended rows for which
/// [`Bsi::append`] builds bit planes (64 bits a row at most) rather than
/// setting row by row.
const MAX_APPEND_GAP: usize = 64;

fn offset_of(v: i64, base: i64) -> u64 {
    (v as i128 - base as i128) as u64
}

fn bits_needed(u: u64) -> usize {
    (64 - u.leading_zeros()) as usize
}

impl Bsi {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds an index from its parts (as read from a part file).
    /// Returns an error message when the parts break the invariants.
    pub fn from_parts(
        exists: RoaringBitmap,
        base: i64,
        slices: Vec<RoaringBitmap>,
    ) -> Result<Self, String> {
        if slices.len() > 64 {
            return Err(format!("BSI depth {} exceeds 64", slices.len()));
        }
        for (i, slice) in slices.iter().enumerate() {
            if !slice.is_subset(&exists) {
                return Err(format!("BSI slice {i} holds rows without a value"));
            }
        }
        Ok(Bsi {
            exists: Arc::new(exists),
            base,
            slices: slices.into_iter().map(Arc::new).collect(),
        })
    }

    /// Rows that hold a value.
    pub fn exists(&self) -> &RoaringBitmap {
        &self.exists
    }

    /// Every bitmap of the index (existence first, then the slices).
    pub fn bitmaps(&self) -> impl Iterator<Item = &Arc<RoaringBitmap>> {
        std::iter::once(&self.exists).chain(self.slices.iter())
    }

    /// [`Bsi::bitmaps`], to replace one by an equal bitmap.
    pub fn bitmaps_mut(&mut self) -> impl Iterator<Item = &mut Arc<RoaringBitmap>> {
        std::iter::once(&mut self.exists).chain(self.slices.iter_mut())
    }
    pub fn base(&self) -> i64 {
        self.base
    }
    pub fn depth(&self) -> usize {
        self.slices.len()
    }
    pub fn slices(&self) -> impl Iterator<Item = &RoaringBitmap> {
        self.slices.iter().map(|s| s.as_ref())
    }

    /// The value of `row`, if it has one (reads `depth` bitmaps).
    pub fn get(&self, row: u32) -> Option<i64> {
        if !self.exists.contains(row) {
            return None;
        }
        let mut u = 0u64;
        for (i, slice) in self.slices.iter().enumerate() {
            if slice.contains(row) {
                u |= 1 << i;
            }
        }
        Some((self.base as i128 + u as i128) as i64)
    }

    /// Sets `row` to `v` (replacing any previous value).
    pub fn set(&mut self, row: u32, v: i64) {
        self.clear(row);
        if self.exists.is_empty() {
            self.base = v;
            self.slices.clear();
        } else if v < self.base {
            self.rebase(v);
        }
        let u = offset_of(v, self.base);
        let need = bits_needed(u);
        while self.slices.len() < need {
            self.slices.push(Arc::new(RoaringBitmap::new()));
        }
        for (i, slice) in self.slices.iter_mut().enumerate() {
            if u >> i & 1 == 1 {
                Arc::make_mut(slice).insert(row);
            }
        }
        Arc::make_mut(&mut self.exists).insert(row);
    }

    /// Adds values for rows that hold none, in increasing row order: one
    /// pass over the rows and one union of whole containers per slice when
    /// the rows lie above every row with a value and close together (the
    /// bulk-load case), else one [`Bsi::set`] per row.
    pub fn append(&mut self, rows: &[(u32, i64)]) {
        let Some(min) = rows.iter().map(|r| r.1).min() else {
            return;
        };
        let increasing = rows.windows(2).all(|w| w[0].0 < w[1].0);
        // The bit planes below span the rows: for rows far apart (not the
        // bulk-load case of consecutive new rows) they would be mostly zeros.
        let dense = increasing
            && (rows[rows.len() - 1].0 - rows[0].0) as usize / rows.len() < MAX_APPEND_GAP;
        if !dense || self.exists.max().is_some_and(|m| m >= rows[0].0) {
            rows.iter().for_each(|&(row, v)| self.set(row, v));
            return;
        }
        if self.exists.is_empty() {
            self.base = min;
            self.slices.clear();
        } else if min < self.base {
            self.rebase(min);
        }
        let max = rows
            .iter()
            .map(|r| offset_of(r.1, self.base))
            .max()
            .unwrap_or(0);
        while self.slices.len() < bits_needed(max) {
            self.slices.push(Arc::new(RoaringBitmap::new()));
        }
        // One pass over the rows, visiting only the set bits of each offset,
        // sets bits in one bit plane per slice (and one for `exists`) over
        // the rows' span; each plane then joins its bitmap as whole
        // containers, not row by row.
        let start = rows[0].0 & !7;
        let span = (rows[rows.len() - 1].0 - start) as usize + 1;
        let plane_len = span.div_ceil(8);
        let mut planes = vec![0u8; plane_len * (self.slices.len() + 1)];
        let (exists_plane, slice_planes) = planes.split_at_mut(plane_len);
        for &(row, v) in rows {
            let i = (row - start) as usize;
            let (byte, bit) = (i / 8, 1u8 << (i % 8));
            exists_plane[byte] |= bit;
            let mut u = offset_of(v, self.base);
            while u != 0 {
                slice_planes[u.trailing_zeros() as usize * plane_len + byte] |= bit;
                u &= u - 1;
            }
        }
        let planes = planes.chunks_exact(plane_len);
        for (bitmap, plane) in std::iter::once(&mut self.exists)
            .chain(self.slices.iter_mut())
            .zip(planes)
        {
            if plane.iter().any(|b| *b != 0) {
                *Arc::make_mut(bitmap) |= RoaringBitmap::from_lsb0_bytes(start, plane);
            }
        }
    }

    /// Removes any value of `row`.
    pub fn clear(&mut self, row: u32) {
        if !self.exists.contains(row) {
            return;
        }
        for slice in self.slices.iter_mut() {
            if slice.contains(row) {
                Arc::make_mut(slice).remove(row);
            }
        }
        Arc::make_mut(&mut self.exists).remove(row);
    }

    /// Lowers `base` to `new_base`, adding the difference to every stored offset.
    fn rebase(&mut self, new_base: i64) {
        let delta = offset_of(self.base, new_base);
        // Largest stored offset is < 2^depth; after adding delta it must still fit.
        let max_after = if self.slices.len() >= 64 {
            u64::MAX
        } else {
            ((1u64 << self.slices.len()) - 1).saturating_add(delta)
        };
        let need = bits_needed(max_after).max(bits_needed(delta));
        while self.slices.len() < need {
            self.slices.push(Arc::new(RoaringBitmap::new()));
        }
        let mut carry = RoaringBitmap::new();
        for (i, slice) in self.slices.iter_mut().enumerate() {
            let s: &RoaringBitmap = slice;
            let (sum, next_carry) = if delta >> i & 1 == 1 {
                // s + 1 + carry: sum = NOT(s XOR carry) within exists; carry = s OR carry.
                (self.exists.as_ref() - &(s ^ &carry), s | &carry)
            } else {
                (s ^ &carry, s & &carry)
            };
            *slice = Arc::new(sum);
            carry = next_carry;
        }
        debug_assert!(carry.is_empty(), "rebase overflowed the BSI depth");
        self.base = new_base;
        self.trim();
    }

    /// Raises `base` to the smallest stored value and drops empty top slices,
    /// so the index holds no trace of values that were deleted (used before a
    /// checkpoint writes the index to disk). O(depth) bitmap operations.
    pub fn normalize(&mut self) {
        let Some(min) = self.min(&self.exists.clone()) else {
            self.base = 0;
            self.slices.clear();
            return;
        };
        let delta = offset_of(min, self.base);
        if delta > 0 {
            // u - delta == u + (2^depth - delta) mod 2^depth; every u >= delta, so
            // the carry out of the top slice is dropped and nothing wraps.
            let depth = self.slices.len();
            let addend = if depth >= 64 {
                delta.wrapping_neg()
            } else {
                (1u64 << depth) - delta
            };
            let mut carry = RoaringBitmap::new();
            for (i, slice) in self.slices.iter_mut().enumerate() {
                let s: &RoaringBitmap = slice;
                let (sum, next_carry) = if addend >> i & 1 == 1 {
                    (self.exists.as_ref() - &(s ^ &carry), s | &carry)
                } else {
                    (s ^ &carry, s & &carry)
                };
                *slice = Arc::new(sum);
                carry = next_carry;
            }
            self.base = min;
        }
        self.trim();
    }

    /// Drops empty top slices (after a rebase that over-allocated, or in `normalize`).
    pub fn trim(&mut self) {
        while self.slices.last().is_some_and(|s| s.is_empty()) {
            self.slices.pop();
        }
    }

    /// Rows (within `filter`, if given) whose value compares to `v` as asked.
    pub fn compare(&self, op: Comparison, v: i64, filter: Option<&RoaringBitmap>) -> RoaringBitmap {
        let universe = match filter {
            Some(f) => self.exists.as_ref() & f,
            None => self.exists.as_ref().clone(),
        };
        if universe.is_empty() {
            return universe;
        }
        // Values outside [base, base + 2^depth) compare the same way to every row.
        if v < self.base {
            return match op {
                Comparison::Gt | Comparison::Ge | Comparison::Ne => universe,
                _ => RoaringBitmap::new(),
            };
        }
        let c = offset_of(v, self.base);
        if self.slices.len() < 64 && c >> self.slices.len() != 0 {
            return match op {
                Comparison::Lt | Comparison::Le | Comparison::Ne => universe,
                _ => RoaringBitmap::new(),
            };
        }
        let mut eq = universe.clone();
        let mut lt = RoaringBitmap::new();
        let mut gt = RoaringBitmap::new();
        for i in (0..self.slices.len()).rev() {
            let slice = self.slices[i].as_ref();
            if c >> i & 1 == 1 {
                lt |= &eq - slice;
                eq &= slice;
            } else {
                gt |= &eq & slice;
                eq -= slice;
            }
            if eq.is_empty() && matches!(op, Comparison::Eq) {
                break;
            }
        }
        match op {
            Comparison::Lt => lt,
            Comparison::Le => lt | eq,
            Comparison::Eq => eq,
            Comparison::Ne => universe - eq,
            Comparison::Ge => gt | eq,
            Comparison::Gt => gt,
        }
    }

    /// Rows (within `filter`) with `lo <= value <= hi`.
    pub fn between(&self, lo: i64, hi: i64, filter: Option<&RoaringBitmap>) -> RoaringBitmap {
        if lo > hi {
            return RoaringBitmap::new();
        }
        let ge = self.compare(Comparison::Ge, lo, filter);
        self.compare(Comparison::Le, hi, Some(&ge))
    }

    /// Number of rows in `filter` that have a value.
    pub fn count(&self, filter: &RoaringBitmap) -> u64 {
        self.exists.intersection_len(filter)
    }

    /// Sum of the values of the rows in `filter` (exact, as i128).
    pub fn sum(&self, filter: &RoaringBitmap) -> i128 {
        let count = self.count(filter) as i128;
        let mut total = count * self.base as i128;
        for (i, slice) in self.slices.iter().enumerate() {
            total += (slice.intersection_len(filter) as i128) << i;
        }
        total
    }

    /// Smallest value among the rows in `filter`.
    pub fn min(&self, filter: &RoaringBitmap) -> Option<i64> {
        self.extreme(filter, false)
    }

    /// Largest value among the rows in `filter`.
    pub fn max(&self, filter: &RoaringBitmap) -> Option<i64> {
        self.extreme(filter, true)
    }

    fn extreme(&self, filter: &RoaringBitmap, want_max: bool) -> Option<i64> {
        let mut candidates = self.exists.as_ref() & filter;
        if candidates.is_empty() {
            return None;
        }
        let mut u = 0u64;
        for i in (0..self.slices.len()).rev() {
            let slice = self.slices[i].as_ref();
            let preferred = if want_max {
                &candidates & slice
            } else {
                &candidates - slice
            };
            let bit_is_one = if preferred.is_empty() {
                !want_max
            } else {
                candidates = preferred;
                want_max
            };
            if bit_is_one {
                u |= 1 << i;
            }
        }
        Some((self.base as i128 + u as i128) as i64)
    }
}

/// Adds `rows` (increasing) to `bitmap`: one append when they all lie above
/// its maximum (the bulk-load case: new rows get increasing ids), inserts
/// otherwise.
pub fn add_rows(bitmap: &mut RoaringBitmap, rows: &[u32]) {
    if bitmap.append(rows.iter().copied()).is_err() {
        for &row in rows {
            bitmap.insert(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    #[test]
    fn append_equals_setting_each_row() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut appended = Bsi::new();
        let mut set = Bsi::new();
        let mut next = 0u32;
        // Runs above every row (one pass), a run below the base (rebase) and
        // a run among existing rows (falls back to set).
        for (len, lo, hi) in [
            (3000, 0, 90),
            (2000, -1000, 5000),
            (500, i64::MIN / 4, i64::MAX / 4),
        ] {
            let rows: Vec<(u32, i64)> = (0..len)
                .map(|_| {
                    next += rng.random_range(1..4);
                    (next, rng.random_range(lo..hi))
                })
                .collect();
            appended.append(&rows);
            rows.iter().for_each(|&(r, v)| set.set(r, v));
        }
        // Rows far apart (one every million): set row by row.
        let sparse: Vec<(u32, i64)> = (1..5u32)
            .map(|k| (next + k * 1_000_000, i64::from(k) * 7))
            .collect();
        appended.append(&sparse);
        sparse.iter().for_each(|&(r, v)| set.set(r, v));
        let among: Vec<(u32, i64)> = (1..50)
            .map(|r| (r * 2 + 1, -(r as i64)))
            .filter(|(r, _)| set.get(*r).is_none())
            .collect();
        appended.append(&among);
        among.iter().for_each(|&(r, v)| set.set(r, v));
        // Equal `exists`, so the rows without a value agree too.
        assert_eq!(appended.exists(), set.exists());
        for row in set.exists().iter() {
            assert_eq!(appended.get(row), set.get(row), "row {row}");
        }
    }

    const COMPARISONS: [Comparison; 6] = [
        Comparison::Lt,
        Comparison::Le,
        Comparison::Eq,
        Comparison::Ne,
        Comparison::Ge,
        Comparison::Gt,
    ];

    fn model_cmp(op: Comparison, a: i64, b: i64) -> bool {
        match op {
            Comparison::Lt => a < b,
            Comparison::Le => a <= b,
            Comparison::Eq => a == b,
            Comparison::Ne => a != b,
            Comparison::Ge => a >= b,
            Comparison::Gt => a > b,
        }
    }

    fn check_against_model(bsi: &Bsi, model: &BTreeMap<u32, i64>, probes: &[i64]) {
        for (&row, &v) in model {
            assert_eq!(bsi.get(row), Some(v), "value of row {row}");
        }
        assert_eq!(bsi.exists().len(), model.len() as u64);
        let all: RoaringBitmap = model.keys().copied().collect();
        let half: RoaringBitmap = model.keys().copied().filter(|r| r % 2 == 0).collect();
        for filter in [&all, &half] {
            let rows: Vec<(u32, i64)> = model
                .iter()
                .filter(|(r, _)| filter.contains(**r))
                .map(|(r, v)| (*r, *v))
                .collect();
            let sum: i128 = rows.iter().map(|(_, v)| *v as i128).sum();
            assert_eq!(bsi.sum(filter), sum);
            assert_eq!(bsi.min(filter), rows.iter().map(|(_, v)| *v).min());
            assert_eq!(bsi.max(filter), rows.iter().map(|(_, v)| *v).max());
            for &p in probes {
                for op in COMPARISONS {
                    let want: RoaringBitmap = rows
                        .iter()
                        .filter(|(_, v)| model_cmp(op, *v, p))
                        .map(|(r, _)| *r)
                        .collect();
                    assert_eq!(bsi.compare(op, p, Some(filter)), want, "{op:?} {p}");
                }
            }
        }
    }

    #[test]
    fn random_values_agree_with_a_plain_map() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..40 {
            let spread: i64 = match round % 4 {
                0 => 10,
                1 => 1_000,
                2 => 1 << 40,
                _ => i64::MAX,
            };
            let mut bsi = Bsi::new();
            let mut model = BTreeMap::new();
            for _ in 0..300 {
                let row = rng.random_range(0..200u32);
                if rng.random_bool(0.2) {
                    bsi.clear(row);
                    model.remove(&row);
                } else {
                    let v = rng.random_range(-spread..=spread);
                    bsi.set(row, v);
                    model.insert(row, v);
                }
            }
            let mut probes: Vec<i64> = model.values().copied().take(5).collect();
            probes.extend([i64::MIN, i64::MAX, 0, -1, spread / 2]);
            check_against_model(&bsi, &model, &probes);
        }
    }

    #[test]
    fn normalize_forgets_deleted_extremes_and_keeps_values() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for round in 0..30 {
            let mut bsi = Bsi::new();
            let mut model = BTreeMap::new();
            let spread: i64 = if round % 2 == 0 { 1000 } else { i64::MAX };
            for row in 0..60u32 {
                let v = rng.random_range(-spread..=spread);
                bsi.set(row, v);
                model.insert(row, v);
            }
            for row in 0..40u32 {
                if rng.random_bool(0.6) {
                    bsi.clear(row);
                    model.remove(&row);
                }
            }
            bsi.normalize();
            match model.values().min() {
                Some(min) => assert_eq!(bsi.base(), *min),
                None => assert_eq!((bsi.base(), bsi.depth()), (0, 0)),
            }
            let span = model
                .values()
                .max()
                .map(|m| (*m as i128 - bsi.base() as i128) as u64);
            assert_eq!(bsi.depth(), span.map_or(0, bits_needed), "depth is minimal");
            check_against_model(&bsi, &model, &[0, 1, -1]);
        }
    }

    #[test]
    fn extremes_of_i64_fit() {
        let mut bsi = Bsi::new();
        bsi.set(1, 0);
        bsi.set(2, i64::MAX);
        bsi.set(3, i64::MIN);
        let model: BTreeMap<u32, i64> = [(1, 0), (2, i64::MAX), (3, i64::MIN)].into();
        check_against_model(&bsi, &model, &[i64::MIN, -5, 0, 5, i64::MAX]);
        assert_eq!(bsi.depth(), 64);
    }

    #[test]
    fn between_is_inclusive() {
        let mut bsi = Bsi::new();
        for (row, v) in [(0u32, 29i64), (1, 30), (2, 45), (3, 46), (4, 37)] {
            bsi.set(row, v);
        }
        let got: Vec<u32> = bsi.between(30, 45, None).iter().collect();
        assert_eq!(got, vec![1, 2, 4]);
        assert!(bsi.between(50, 40, None).is_empty());
    }

    #[test]
    fn from_parts_refuses_slices_outside_exists() {
        let exists: RoaringBitmap = [1u32].into_iter().collect();
        let slice: RoaringBitmap = [2u32].into_iter().collect();
        assert!(Bsi::from_parts(exists, 0, vec![slice]).is_err());
    }

    #[test]
    fn ranges_within_filters_of_every_density_agree_with_a_scan() {
        // 20,000 rows with values in [-50, 200), some without a value;
        // filters from every row to one row in 5,000.
        let mut bsi = Bsi::new();
        let value = |r: u32| (r.wrapping_mul(2_654_435_761) % 250) as i64 - 50;
        for r in 0..20_000u32 {
            if r % 7 != 3 {
                bsi.set(r, value(r));
            }
        }
        for step in [1u32, 3, 17, 40, 200, 5_000] {
            let filter: RoaringBitmap = (0..20_000u32).step_by(step as usize).collect();
            let has = |r: u32| r % 7 != 3;
            for (lo, hi) in [(-50, 199), (0, 0), (10, 60), (-100, -51), (150, 400)] {
                let want: RoaringBitmap = filter
                    .iter()
                    .filter(|r| has(*r) && (lo..=hi).contains(&value(*r)))
                    .collect();
                assert_eq!(
                    bsi.between(lo, hi, Some(&filter)),
                    want,
                    "step {step} {lo}..={hi}"
                );
            }
            for op in COMPARISONS {
                for v in [-60, -50, 0, 77, 199, 300] {
                    let want: RoaringBitmap = filter
                        .iter()
                        .filter(|r| has(*r))
                        .filter(|r| {
                            let x = value(*r);
                            match op {
                                Comparison::Lt => x < v,
                                Comparison::Le => x <= v,
                                Comparison::Eq => x == v,
                                Comparison::Ne => x != v,
                                Comparison::Ge => x >= v,
                                Comparison::Gt => x > v,
                            }
                        })
                        .collect();
                    assert_eq!(
                        bsi.compare(op, v, Some(&filter)),
                        want,
                        "step {step} {op:?} {v}"
                    );
                }
            }
        }
    }
}
