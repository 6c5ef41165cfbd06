//! The columnar row encoding shared by the wire (a RowBatch and an
//! InsertRows payload, docs/protocol.md) and the WAL (a rows record,
//! docs/storage.md): a `u32` row count, then per column a NULL bitmap of
//! `ceil(n / 8)` bytes (bit `i % 8` of byte `i / 8` set = row `i` is NULL)
//! followed by the non-NULL values in row order (TEXT: `u32` length + UTF-8;
//! SET<TEXT>: `u32` count then that many texts; INT/TIMESTAMP: `i64`;
//! FLOAT: `f64`; BOOL: one byte 0/1; all little-endian).
//!
//! A TEXT or SET<TEXT> column may instead be *dictionary-coded* (InsertRows
//! of protocol version 3, WAL record type 5): after its NULL bitmap come a
//! `u32` entry count *d* and *d* texts, then per non-NULL row a `u32` code
//! below *d* (TEXT) or a `u32` count and that many codes (SET<TEXT>). Which
//! columns are coded is said outside the payload (the message's or record's
//! column list), so plain payloads read exactly as before.
//!
//! [`parse_rows`] and [`parse_coded_rows`] read it into borrowed column views
//! without allocating per value, for the bulk write path and for the protocol
//! decoder.
//!
//! Invariants: parsing checks every count against the bytes present before
//! allocating for it (a forged count cannot exhaust memory), checks UTF-8 (of
//! each dictionary entry once, for coded columns) and every code against its
//! dictionary, and refuses trailing bytes; a view's columns all have exactly
//! `rows` rows.

use super::codec::{ByteReader, ByteWriter};
use super::error::DecodeError;
use super::schema::ColumnType;

/// A SET cell's elements: `start..end` in its column's element list; `None`
/// for NULL.
pub type SetRange = Option<(u32, u32)>;

/// One column of parsed rows, borrowing from the payload.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnView<'a> {
    Text(Vec<Option<&'a str>>),
    /// Row `i`'s set is `tags[a..b]` for `sets[i] = Some((a, b))`.
    TextSet {
        sets: Vec<SetRange>,
        tags: Vec<&'a str>,
    },
    /// A dictionary-coded TEXT column: row `i` is `dict[codes[i]]`, NULL
    /// where `codes[i]` is [`NO_CODE`]. Every other code is below `dict.len()`.
    CodedText {
        dict: Vec<&'a str>,
        codes: Vec<u32>,
    },
    /// A dictionary-coded SET<TEXT> column: row `i`'s set is
    /// `codes[a..b]` (each below `dict.len()`) for `sets[i] = Some((a, b))`.
    CodedSet {
        dict: Vec<&'a str>,
        sets: Vec<SetRange>,
        codes: Vec<u32>,
    },
    /// INT and TIMESTAMP.
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
}

/// The code of a NULL row in [`ColumnView::CodedText`].
pub const NO_CODE: u32 = u32::MAX;

/// The tags of one row of a SET<TEXT> column, plain or coded.
#[derive(Debug, Clone)]
pub enum Tags<'v, 'a> {
    Plain(std::slice::Iter<'v, &'a str>),
    Coded {
        dict: &'v [&'a str],
        codes: std::slice::Iter<'v, u32>,
    },
}

impl<'a> Iterator for Tags<'_, 'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        match self {
            Tags::Plain(it) => it.next().copied(),
            // Codes were checked against the dictionary when parsed.
            Tags::Coded { dict, codes } => codes.next().map(|&c| dict[c as usize]),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Tags::Plain(it) => it.size_hint(),
            Tags::Coded { codes, .. } => codes.size_hint(),
        }
    }
}

impl ExactSizeIterator for Tags<'_, '_> {}

impl<'a> ColumnView<'a> {
    /// True when row `i` is NULL.
    pub fn is_null(&self, i: usize) -> bool {
        match self {
            ColumnView::Text(v) => v[i].is_none(),
            ColumnView::TextSet { sets, .. } => sets[i].is_none(),
            ColumnView::CodedText { codes, .. } => codes[i] == NO_CODE,
            ColumnView::CodedSet { sets, .. } => sets[i].is_none(),
            ColumnView::Int(v) => v[i].is_none(),
            ColumnView::Float(v) => v[i].is_none(),
            ColumnView::Bool(v) => v[i].is_none(),
        }
    }

    /// Row `i`'s value in a TEXT column (None for NULL and other columns).
    pub fn text(&self, i: usize) -> Option<&'a str> {
        match self {
            ColumnView::Text(v) => v[i],
            ColumnView::CodedText { dict, codes } => dict.get(codes[i] as usize).copied(),
            _ => None,
        }
    }

    /// The tags of row `i` of a SET<TEXT> column (empty for other columns and NULL).
    pub fn tags(&self, i: usize) -> Tags<'_, 'a> {
        match self {
            ColumnView::TextSet { sets, tags } => match sets[i] {
                Some((a, b)) => Tags::Plain(tags[a as usize..b as usize].iter()),
                None => Tags::Plain([].iter()),
            },
            ColumnView::CodedSet { dict, sets, codes } => Tags::Coded {
                dict,
                codes: match sets[i] {
                    Some((a, b)) => codes[a as usize..b as usize].iter(),
                    None => [].iter(),
                },
            },
            _ => Tags::Plain([].iter()),
        }
    }

    /// Every text the column holds: its values (TEXT), tags (SET<TEXT>) or
    /// dictionary entries (coded); nothing for other columns.
    pub fn texts(&self) -> Box<dyn Iterator<Item = &'a str> + '_> {
        match self {
            ColumnView::Text(v) => Box::new(v.iter().flatten().copied()),
            ColumnView::TextSet { tags, .. } => Box::new(tags.iter().copied()),
            ColumnView::CodedText { dict, .. } | ColumnView::CodedSet { dict, .. } => {
                Box::new(dict.iter().copied())
            }
            _ => Box::new(std::iter::empty()),
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
    parse_coded_rows(types, &[], payload, base)
}

/// Like [`parse_rows`], where column `c` is dictionary-coded when
/// `coded[c]` is true (missing entries: plain). Only TEXT and SET<TEXT>
/// columns can be coded.
pub fn parse_coded_rows<'a>(
    types: &[ColumnType],
    coded: &[bool],
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
    for (c, ty) in types.iter().enumerate() {
        let nulls = r.take(n.div_ceil(8), "null bitmap")?;
        let null = |i: usize| nulls[i / 8] >> (i % 8) & 1 == 1;
        if coded.get(c).copied().unwrap_or(false) {
            columns.push(parse_coded_column(&mut r, *ty, n, null)?);
            continue;
        }
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
                let (sets, tags) = parse_sets(&mut r, n, null, |r| r.str("tag"))?;
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

/// One dictionary-coded column after its NULL bitmap (`null(i)`: row `i` is NULL).
fn parse_coded_column<'a>(
    r: &mut ByteReader<'a>,
    ty: ColumnType,
    n: usize,
    null: impl Fn(usize) -> bool,
) -> Result<ColumnView<'a>, DecodeError> {
    let at = r.offset();
    if !matches!(ty, ColumnType::Text | ColumnType::TextSet) {
        return Err(DecodeError::new(
            at,
            format!("a {ty:?} column cannot be dictionary-coded"),
        ));
    }
    let d = r.count(4, "dictionary size")?;
    let mut dict = Vec::with_capacity(d);
    for _ in 0..d {
        dict.push(r.str("dictionary entry")?);
    }
    let code = |r: &mut ByteReader<'a>| -> Result<u32, DecodeError> {
        let at = r.offset();
        let code = r.u32("code")?;
        if code as usize >= d {
            return Err(DecodeError::new(
                at,
                format!("code {code} is not below the dictionary's {d} entries"),
            ));
        }
        Ok(code)
    };
    if ty == ColumnType::Text {
        let mut codes = Vec::with_capacity(n);
        for i in 0..n {
            codes.push(if null(i) { NO_CODE } else { code(r)? });
        }
        return Ok(ColumnView::CodedText { dict, codes });
    }
    let (sets, codes) = parse_sets(r, n, null, code)?;
    Ok(ColumnView::CodedSet { dict, sets, codes })
}

/// The cells of a SET column after its NULL bitmap, plain or coded: per
/// row its range in the returned elements (`None` when NULL), each element
/// read by `element` after the set's `u32` count.
fn parse_sets<'a, T>(
    r: &mut ByteReader<'a>,
    n: usize,
    null: impl Fn(usize) -> bool,
    mut element: impl FnMut(&mut ByteReader<'a>) -> Result<T, DecodeError>,
) -> Result<(Vec<SetRange>, Vec<T>), DecodeError> {
    let mut sets = Vec::with_capacity(n);
    let mut elements = Vec::new();
    for i in 0..n {
        if null(i) {
            sets.push(None);
            continue;
        }
        let count = r.count(4, "set size")?;
        let start = elements.len() as u32;
        elements.reserve(count);
        for _ in 0..count {
            elements.push(element(r)?);
        }
        sets.push(Some((start, elements.len() as u32)));
    }
    Ok((sets, elements))
}

/// Builds a payload cell by cell: for each row, one call per column in
/// column order (`null`, `text`, `set`, `int`, `float` or `bool`; `code`
/// and `codes` in a column given a [`RowsEncoder::dictionary`]).
#[derive(Debug)]
pub struct RowsEncoder {
    rows: usize,
    nulls: Vec<Vec<u8>>,
    values: Vec<ByteWriter>,
    /// Cells written so far, per column.
    cells: Vec<usize>,
    /// Per column: its dictionary (entry count, encoded entries) if coded.
    dicts: Vec<Option<(u32, ByteWriter)>>,
}

impl RowsEncoder {
    pub fn new(columns: usize) -> Self {
        RowsEncoder {
            rows: 0,
            nulls: vec![Vec::new(); columns],
            values: (0..columns).map(|_| ByteWriter::new()).collect(),
            cells: vec![0; columns],
            dicts: (0..columns).map(|_| None).collect(),
        }
    }

    /// Makes TEXT or SET<TEXT> column `c` dictionary-coded with these
    /// entries: its cells are then written with `code` / `codes` (indexes
    /// into `entries`), or `null`.
    pub fn dictionary<'t>(&mut self, c: usize, entries: impl Iterator<Item = &'t str>) {
        let mut w = ByteWriter::new();
        let mut count = 0u32;
        for e in entries {
            w.str(e);
            count += 1;
        }
        self.dicts[c] = Some((count, w));
    }

    /// Which columns are dictionary-coded.
    pub fn coded(&self) -> Vec<bool> {
        self.dicts.iter().map(Option::is_some).collect()
    }

    /// Rows whose every cell has been written.
    pub fn rows(&self) -> usize {
        self.cells.iter().copied().min().unwrap_or(self.rows)
    }

    /// Bytes the payload will take (about).
    pub fn len(&self) -> usize {
        4 + self.values.iter().map(ByteWriter::len).sum::<usize>()
            + self.nulls.iter().map(Vec::len).sum::<usize>()
            + self
                .dicts
                .iter()
                .flatten()
                .map(|(_, w)| 4 + w.len())
                .sum::<usize>()
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
    /// A coded TEXT cell: entry `code` of the column's dictionary.
    pub fn code(&mut self, c: usize, code: u32) {
        self.cell(c, false).u32(code);
    }
    /// A coded SET<TEXT> cell: entries `codes` of the column's dictionary.
    pub fn codes(&mut self, c: usize, codes: impl ExactSizeIterator<Item = u32>) {
        let w = self.cell(c, false);
        w.u32(codes.len() as u32);
        for code in codes {
            w.u32(code);
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
        for ((nulls, values), dict) in self.nulls.iter().zip(&self.values).zip(&self.dicts) {
            w.bytes(nulls);
            if let Some((count, entries)) = dict {
                w.u32(*count);
                w.bytes(entries.as_slice());
            }
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
        assert_eq!(view.columns[1].tags(7).collect::<Vec<_>>(), ["a", "t7"]);
        assert_eq!(view.columns[1].tags(6).len(), 0);
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

    /// Rows 0..n: a coded TEXT column (NULL every third row) and a coded
    /// SET<TEXT> column (row i holds entries i % 3 and 2, NULL every fifth).
    fn coded_sample(n: usize) -> Vec<u8> {
        let mut e = RowsEncoder::new(2);
        e.dictionary(0, ["NL", "DE", "ü"].into_iter());
        e.dictionary(1, ["a", "b", "c"].into_iter());
        for i in 0..n {
            match i % 3 {
                0 => e.null(0),
                _ => e.code(0, (i % 3) as u32),
            }
            match i % 5 {
                0 => e.null(1),
                _ => e.codes(1, [(i % 3) as u32, 2].into_iter()),
            }
        }
        e.finish()
    }

    const CODED: [ColumnType; 2] = [ColumnType::Text, ColumnType::TextSet];

    #[test]
    fn coded_columns_parse_to_their_dictionary_entries() {
        let bytes = coded_sample(16);
        let view = parse_coded_rows(&CODED, &[true, true], &bytes, 0).unwrap();
        assert_eq!(view.rows, 16);
        for i in 0..16 {
            let text = (i % 3 != 0).then(|| ["NL", "DE", "ü"][i % 3]);
            assert_eq!(view.columns[0].text(i), text);
            assert_eq!(view.columns[0].is_null(i), i % 3 == 0);
            let tags: Vec<&str> = view.columns[1].tags(i).collect();
            match i % 5 {
                0 => assert!(view.columns[1].is_null(i) && tags.is_empty()),
                _ => assert_eq!(tags, [["a", "b", "c"][i % 3], "c"]),
            }
        }
        assert_eq!(
            view.columns[0].texts().collect::<Vec<_>>(),
            ["NL", "DE", "ü"]
        );
    }

    #[test]
    fn a_coded_payload_refuses_truncation_bad_codes_and_coded_numbers() {
        let bytes = coded_sample(7);
        for cut in 0..bytes.len() {
            assert!(
                parse_coded_rows(&CODED, &[true, true], &bytes[..cut], 0).is_err(),
                "cut {cut}"
            );
        }
        // Read as plain, the same bytes do not parse.
        assert!(parse_rows(&CODED, &bytes, 0).is_err());
        // A code past the dictionary names its offset.
        let mut e = RowsEncoder::new(1);
        e.dictionary(0, ["x"].into_iter());
        e.code(0, 1);
        let bytes = e.finish();
        let err = parse_coded_rows(&[ColumnType::Text], &[true], &bytes, 10).unwrap_err();
        assert_eq!(err.offset, 10 + bytes.len() as u64 - 4);
        assert!(err.reason.contains("code 1"), "{}", err.reason);
        let mut e = RowsEncoder::new(1);
        e.int(0, 5);
        let bytes = e.finish();
        assert!(parse_coded_rows(&[ColumnType::Int], &[true], &bytes, 0).is_err());
        // A forged dictionary size is refused before anything is allocated.
        let mut forged = 1u32.to_le_bytes().to_vec();
        forged.push(0);
        forged.extend(u32::MAX.to_le_bytes());
        assert!(parse_coded_rows(&[ColumnType::Text], &[true], &forged, 0).is_err());
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
