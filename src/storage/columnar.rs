//! The columnar row encoding shared by the wire (a RowBatch and an
//! InsertRows payload, docs/protocol.md) and the WAL (a rows record,
//! docs/storage.md): a `u32` row count, then per column a NULL bitmap of
//! `ceil(n / 8)` bytes (bit `i % 8` of byte `i / 8` set = row `i` is NULL)
//! followed by the non-NULL values in row order (TEXT: `u32` length + UTF-8;
//! SET<TEXT>: `u32` count then that many texts; INT/TIMESTAMP: `i64`;
//! FLOAT: `f64`; BOOL: one byte 0/1; all little-endian).
//!
//! [`parse_rows`] reads it into borrowed column views without allocating per
//! value, for the bulk write path and for the protocol decoder.
//!
//! Invariants: parsing checks every count against the bytes present before
//! allocating for it (a forged count cannot exhaust memory), checks UTF-8,
//! and refuses trailing bytes; a view's columns all have exactly `rows` rows.

use super::codec::{ByteReader, ByteWriter};
use super::error::DecodeError;
use super::schema::ColumnType;

/// One column of parsed rows, borrowing from the payload.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnView<'a> {
    Text(Vec<Option<&'a str>>),
    /// Row `i`'s set is `tags[a..b]` for `sets[i] = Some((a, b))`.
    TextSet {
        sets: Vec<Option<(u32, u32)>>,
        tags: Vec<&'a str>,
    },
    /// INT and TIMESTAMP.
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
}

impl ColumnView<'_> {
    /// True when row `i` is NULL.
    pub fn is_null(&self, i: usize) -> bool {
        match self {
            ColumnView::Text(v) => v[i].is_none(),
            ColumnView::TextSet { sets, .. } => sets[i].is_none(),
            ColumnView::Int(v) => v[i].is_none(),
            ColumnView::Float(v) => v[i].is_none(),
            ColumnView::Bool(v) => v[i].is_none(),
        }
    }

    /// The tags of row `i` of a SET<TEXT> column (empty for other columns and NULL).
    pub fn tags(&self, i: usize) -> &[&str] {
        match self {
            ColumnView::TextSet { sets, tags } => match sets[i] {
                Some((a, b)) => &tags[a as usize..b as usize],
                None => &[],
            },
            _ => &[],
        }
    }
}

/// Parsed rows: `rows` rows of one view per column.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsView<'a> {
    pub rows: usize,
    pub columns: Vec<ColumnView<'a>>,
}

/// Parses a payload of columns of `types` that starts at offset `base` of its
/// file or frame (for error offsets).
pub fn parse_rows<'a>(
    types: &[ColumnType],
    payload: &'a [u8],
    base: u64,
) -> Result<RowsView<'a>, DecodeError> {
    let mut r = ByteReader::new(payload, base);
    let at = r.offset();
    let n = r.u32("row count")? as usize;
    // Each row costs at least one NULL bit per column; refuse counts the payload cannot hold.
    if types.is_empty() && n > 0 {
        return Err(DecodeError::new(at, "rows without columns"));
    }
    if n.div_ceil(8).saturating_mul(types.len()) > r.remaining() {
        return Err(DecodeError::new(
            at,
            format!(
                "row count {n} does not fit a payload of {} bytes",
                payload.len()
            ),
        ));
    }
    let mut columns = Vec::with_capacity(types.len());
    for ty in types {
        let nulls = r.take(n.div_ceil(8), "null bitmap")?;
        let null = |i: usize| nulls[i / 8] >> (i % 8) & 1 == 1;
        let view = match ty {
            ColumnType::Text => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(if null(i) {
                        None
                    } else {
                        Some(r.str("text value")?)
                    });
                }
                ColumnView::Text(v)
            }
            ColumnType::TextSet => {
                let mut sets = Vec::with_capacity(n);
                let mut tags = Vec::new();
                for i in 0..n {
                    if null(i) {
                        sets.push(None);
                        continue;
                    }
                    let count = r.count(4, "set size")?;
                    let start = tags.len() as u32;
                    tags.reserve(count);
                    for _ in 0..count {
                        tags.push(r.str("tag")?);
                    }
                    sets.push(Some((start, tags.len() as u32)));
                }
                ColumnView::TextSet { sets, tags }
            }
            ColumnType::Int | ColumnType::Timestamp => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(if null(i) {
                        None
                    } else {
                        Some(r.i64("integer value")?)
                    });
                }
                ColumnView::Int(v)
            }
            ColumnType::Float => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(if null(i) {
                        None
                    } else {
                        Some(r.f64("float value")?)
                    });
                }
                ColumnView::Float(v)
            }
            ColumnType::Bool => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    if null(i) {
                        v.push(None);
                        continue;
                    }
                    let at = r.offset();
                    v.push(Some(match r.u8("bool value")? {
                        0 => false,
                        1 => true,
                        b => return Err(DecodeError::new(at, format!("bool value {b}"))),
                    }));
                }
                ColumnView::Bool(v)
            }
        };
        columns.push(view);
    }
    if !r.is_at_end() {
        return Err(r.error(format!("{} bytes left over after the rows", r.remaining())));
    }
    Ok(RowsView { rows: n, columns })
}

/// Builds a payload cell by cell: for each row, one call per column in
/// column order (`null`, `text`, `set`, `int`, `float` or `bool`).
#[derive(Debug)]
pub struct RowsEncoder {
    rows: usize,
    nulls: Vec<Vec<u8>>,
    values: Vec<ByteWriter>,
    /// Cells written so far, per column.
    cells: Vec<usize>,
}

impl RowsEncoder {
    pub fn new(columns: usize) -> Self {
        RowsEncoder {
            rows: 0,
            nulls: vec![Vec::new(); columns],
            values: (0..columns).map(|_| ByteWriter::new()).collect(),
            cells: vec![0; columns],
        }
    }

    /// Rows whose every cell has been written.
    pub fn rows(&self) -> usize {
        self.cells.iter().copied().min().unwrap_or(self.rows)
    }

    /// Bytes the payload will take (about).
    pub fn len(&self) -> usize {
        4 + self.values.iter().map(ByteWriter::len).sum::<usize>()
            + self.nulls.iter().map(Vec::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    fn cell(&mut self, c: usize, null: bool) -> &mut ByteWriter {
        let i = self.cells[c];
        if i.is_multiple_of(8) {
            self.nulls[c].push(0);
        }
        if null {
            self.nulls[c][i / 8] |= 1 << (i % 8);
        }
        self.cells[c] = i + 1;
        &mut self.values[c]
    }

    pub fn null(&mut self, c: usize) {
        self.cell(c, true);
    }
    pub fn text(&mut self, c: usize, v: &str) {
        self.cell(c, false).str(v);
    }
    /// A TEXT cell from bytes the caller knows to be UTF-8 (an id read
    /// from a part, validated when the part was opened): no re-check.
    pub fn text_bytes(&mut self, c: usize, v: &[u8]) {
        let w = self.cell(c, false);
        w.u32(v.len() as u32);
        w.bytes(v);
    }
    pub fn set<'t>(&mut self, c: usize, tags: impl ExactSizeIterator<Item = &'t str>) {
        let w = self.cell(c, false);
        w.u32(tags.len() as u32);
        for t in tags {
            w.str(t);
        }
    }
    pub fn int(&mut self, c: usize, v: i64) {
        self.cell(c, false).i64(v);
    }
    pub fn float(&mut self, c: usize, v: f64) {
        self.cell(c, false).f64(v);
    }
    pub fn bool(&mut self, c: usize, v: bool) {
        self.cell(c, false).u8(u8::from(v));
    }

    /// The payload. Every column must have the same number of cells.
    pub fn finish(self) -> Vec<u8> {
        let rows = self.rows();
        debug_assert!(self.cells.iter().all(|&c| c == rows));
        let mut w = ByteWriter::with_capacity(self.len());
        w.u32(rows as u32);
        for (nulls, values) in self.nulls.iter().zip(&self.values) {
            w.bytes(nulls);
            w.bytes(values.as_slice());
        }
        w.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPES: [ColumnType; 6] = [
        ColumnType::Text,
        ColumnType::TextSet,
        ColumnType::Int,
        ColumnType::Timestamp,
        ColumnType::Float,
        ColumnType::Bool,
    ];

    fn sample(rows: usize) -> Vec<u8> {
        let mut e = RowsEncoder::new(TYPES.len());
        for i in 0..rows {
            if i % 3 == 0 {
                (0..TYPES.len()).for_each(|c| e.null(c));
                continue;
            }
            e.text(0, &format!("u{i}"));
            let tag = format!("t{i}");
            e.set(1, ["a", tag.as_str()].into_iter());
            e.int(2, -(i as i64));
            e.int(3, 1_793_491_200 + i as i64);
            e.float(4, i as f64 / 4.0);
            e.bool(5, i % 2 == 0);
        }
        assert_eq!(e.rows(), rows);
        e.finish()
    }

    #[test]
    fn encoded_rows_parse_back_with_nulls_of_every_type() {
        let bytes = sample(19);
        let view = parse_rows(&TYPES, &bytes, 0).unwrap();
        assert_eq!(view.rows, 19);
        assert!(view.columns.iter().all(|c| c.is_null(0) && c.is_null(18)));
        match &view.columns[0] {
            ColumnView::Text(v) => assert_eq!(v[7], Some("u7")),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(view.columns[1].tags(7), ["a", "t7"]);
        assert!(view.columns[1].tags(6).is_empty());
        assert_eq!(view.columns[2], {
            ColumnView::Int((0..19i64).map(|i| (i % 3 != 0).then_some(-i)).collect())
        });
        assert_eq!(
            view.columns[5],
            ColumnView::Bool(
                (0..19)
                    .map(|i| (i % 3 != 0).then_some(i % 2 == 0))
                    .collect()
            )
        );
    }

    #[test]
    fn every_truncation_and_forged_count_is_an_error() {
        let bytes = sample(11);
        for cut in 0..bytes.len() {
            assert!(parse_rows(&TYPES, &bytes[..cut], 0).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(parse_rows(&TYPES, &longer, 0).is_err());
        assert!(parse_rows(&TYPES, &[0xff, 0xff, 0xff, 0x7f], 0).is_err());
        assert!(parse_rows(&[], &[1, 0, 0, 0], 0).is_err());
        let empty = RowsEncoder::new(TYPES.len()).finish();
        assert_eq!(parse_rows(&TYPES, &empty, 0).unwrap().rows, 0);
    }

    #[test]
    fn a_bad_bool_or_utf8_names_its_offset() {
        let mut e = RowsEncoder::new(1);
        e.bool(0, true);
        let mut bytes = e.finish();
        *bytes.last_mut().unwrap() = 7;
        let err = parse_rows(&[ColumnType::Bool], &bytes, 100).unwrap_err();
        assert_eq!(err.offset, 105);
        let mut e = RowsEncoder::new(1);
        e.text(0, "ab");
        let mut bytes = e.finish();
        *bytes.last_mut().unwrap() = 0xff;
        assert!(parse_rows(&[ColumnType::Text], &bytes, 0).is_err());
    }
}
