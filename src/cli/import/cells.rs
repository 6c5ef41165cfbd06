//! The importer's row buffer: each accepted row is a run of cells, one per
//! column of the import's layout, in layout order; and turning CSV text into
//! cells by column type. [`transpose`] turns a run of rows into the columnar
//! payload of an InsertRows message (docs/protocol.md).
//!
//! Every value is checked here, on the client, so the server almost never
//! refuses a batch: a bad value becomes a rejected row with a reason such as
//! `column age is INT, 'abc' is not an integer`.
//!
//! Cell encoding (private to the importer): a tag byte, then NULL nothing;
//! TEXT `u32` length + UTF-8; SET `u32` count, then per tag `u32` length +
//! UTF-8; INT (also TIMESTAMP, as seconds) `i64`; FLOAT `f64` (finite); BOOL
//! one byte. Little-endian. Only this module writes and reads it.

use super::table::{Kind, Target};
use crate::engine::{MAX_ID_BYTES, MAX_TEXT_BYTES};
use crate::storage::columnar::RowsEncoder;

const NULL: u8 = 0;
const TEXT: u8 = 1;
const SET: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const BOOL: u8 = 5;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends a TEXT cell (also the profile id).
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(TEXT);
    put_str(out, s);
}

/// Appends an INT (or TIMESTAMP seconds) cell.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    out.push(INT);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a FLOAT cell.
pub fn write_float(out: &mut Vec<u8>, v: f64) {
    out.push(FLOAT);
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(BOOL);
    out.push(u8::from(v));
}

pub fn write_null(out: &mut Vec<u8>) {
    out.push(NULL);
}

/// Starts a SET cell with no tags; returns where its count sits, for [`write_tag`].
pub fn begin_set(out: &mut Vec<u8>) -> usize {
    out.push(SET);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.len() - 4
}

/// Appends a tag to the SET cell begun at `at`.
pub fn write_tag(out: &mut Vec<u8>, at: usize, tag: &str) {
    let mut count = [0u8; 4];
    count.copy_from_slice(&out[at..at + 4]);
    let count = u32::from_le_bytes(count) + 1;
    out[at..at + 4].copy_from_slice(&count.to_le_bytes());
    put_str(out, tag);
}

/// A value as shown in a message: quoted, escaped, and cut when long.
pub fn show(value: &str) -> String {
    const MAX: usize = 60;
    let mut s = String::with_capacity(value.len().min(MAX) + 8);
    s.push('\'');
    for (n, c) in value.chars().enumerate() {
        if n == MAX {
            s.push_str("...");
            break;
        }
        s.extend(c.escape_debug());
    }
    s.push('\'');
    s
}

/// Checks a profile id.
pub fn check_key(column: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("the primary key {column} is empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "the primary key {column} is {} bytes, more than the {MAX_ID_BYTES} allowed",
            id.len()
        ));
    }
    Ok(())
}

/// Checks the length of a TEXT value or a tag.
pub fn check_text(column: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "column {column} has a value of {} bytes, more than the {MAX_TEXT_BYTES} allowed",
            s.len()
        ));
    }
    Ok(())
}

/// Writes an integer given as text; `Err` says why it is not one.
fn int_text(out: &mut Vec<u8>, t: &str) -> Result<(), String> {
    match t.parse::<i64>() {
        Ok(v) => {
            write_int(out, v);
            Ok(())
        }
        Err(e) => Err(match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                format!("{} does not fit a 64-bit integer", show(t))
            }
            _ => format!("{} is not an integer", show(t)),
        }),
    }
}

/// Writes a TIMESTAMP given as whole seconds or ISO-8601 text.
pub fn timestamp_text(out: &mut Vec<u8>, column: &str, t: &str) -> Result<(), String> {
    let seconds = match t.parse::<i64>() {
        Ok(v) => Some(v),
        Err(_) => crate::query::bind::parse_timestamp(t),
    };
    match seconds {
        Some(seconds) => {
            write_int(out, seconds);
            Ok(())
        }
        None => Err(format!(
            "column {column} is TIMESTAMP, {} is neither whole seconds nor an ISO-8601 timestamp (e.g. 2026-11-01T10:00:00Z or 2026-11-01)",
            show(t)
        )),
    }
}

/// The stored tag of an event written `value@time` (time as ISO-8601 or
/// whole seconds; the last `@` separates them, so a value may hold `@`).
pub fn event_tag_text(column: &str, text: &str) -> Result<String, String> {
    let Some((value, time)) = text.rsplit_once('@') else {
        return Err(format!(
            "column {column} is EVENTS<TEXT>, {} is not value@time (e.g. baking@2026-11-20T10:00:00Z)",
            show(text)
        ));
    };
    let t = time.trim();
    let seconds = t
        .parse::<i64>()
        .ok()
        .or_else(|| crate::query::bind::parse_timestamp(t))
        .ok_or_else(|| {
            format!(
                "column {column} is EVENTS<TEXT>, the time {} of {} is neither whole seconds nor an ISO-8601 timestamp",
                show(time),
                show(text)
            )
        })?;
    let tag = crate::engine::events::event_tag(value, seconds).ok_or_else(|| {
        format!(
            "column {column} is EVENTS<TEXT>, the time of {} is not within the years 1 to 9999",
            show(text)
        )
    })?;
    check_text(column, &tag)?;
    Ok(tag)
}

/// Writes a FLOAT given as text.
fn float_text(out: &mut Vec<u8>, column: &str, t: &str) -> Result<(), String> {
    let v: f64 = t
        .parse()
        .map_err(|_| format!("column {column} is FLOAT, {} is not a number", show(t)))?;
    if !v.is_finite() {
        return Err(format!(
            "column {column} is FLOAT, {} is not a finite number",
            show(t)
        ));
    }
    write_float(out, v);
    Ok(())
}

/// Parses a BOOL given as text: `true`/`false`/`1`/`0`, any case.
fn bool_text(column: &str, t: &str) -> Result<bool, String> {
    if t.eq_ignore_ascii_case("true") || t == "1" {
        Ok(true)
    } else if t.eq_ignore_ascii_case("false") || t == "0" {
        Ok(false)
    } else {
        Err(format!(
            "column {column} is BOOL, {} is not true, false, 1 or 0",
            show(t)
        ))
    }
}

/// Writes one CSV field as the cell for `target`; `Err` is the reason the
/// row is rejected. Empty means NULL, except for SET<TEXT> (the empty set)
/// and the primary key (an error).
pub fn csv_field(out: &mut Vec<u8>, target: &Target, raw: &[u8]) -> Result<(), String> {
    let column = target.name.as_str();
    let field = std::str::from_utf8(raw).map_err(|e| {
        format!(
            "column {column} is not valid UTF-8 (bad byte at offset {} of the field)",
            e.valid_up_to()
        )
    })?;
    match target.kind {
        Kind::Key => {
            check_key(column, field)?;
            write_string(out, field);
        }
        Kind::Text => {
            if field.is_empty() {
                write_null(out);
            } else {
                check_text(column, field)?;
                write_string(out, field);
            }
        }
        Kind::Set => {
            let at = begin_set(out);
            for tag in field.split('|').filter(|t| !t.is_empty()) {
                check_text(column, tag)?;
                write_tag(out, at, tag);
            }
        }
        Kind::Events => {
            let at = begin_set(out);
            for event in field.split('|').filter(|t| !t.is_empty()) {
                write_tag(out, at, &event_tag_text(column, event)?);
            }
        }
        Kind::Int | Kind::Timestamp | Kind::Float | Kind::Bool => {
            let t = field.trim();
            if t.is_empty() {
                write_null(out);
                return Ok(());
            }
            match target.kind {
                Kind::Int => {
                    int_text(out, t).map_err(|why| format!("column {column} is INT, {why}"))?
                }
                Kind::Timestamp => timestamp_text(out, column, t)?,
                Kind::Float => float_text(out, column, t)?,
                _ => write_bool(out, bool_text(column, t)?),
            }
        }
    }
    Ok(())
}

/// Reads `bytes` (whole rows of cells of `columns` cells each) into `out`:
/// the cell of layout column `i` goes to payload column `order[i]`.
/// `Err` means the buffer is not what this module wrote (an internal error).
pub fn transpose(bytes: &[u8], order: &[usize], out: &mut RowsEncoder) -> Result<(), String> {
    let mut r = CellReader { bytes, at: 0 };
    while r.at < bytes.len() {
        for &c in order {
            match r.u8()? {
                NULL => out.null(c),
                TEXT => out.text(c, r.str()?),
                SET => {
                    let n = r.u32()? as usize;
                    let mut tags = Vec::with_capacity(n.min(bytes.len()));
                    for _ in 0..n {
                        tags.push(r.str()?);
                    }
                    out.set(c, tags.into_iter());
                }
                INT => out.int(c, i64::from_le_bytes(r.array()?)),
                FLOAT => out.float(c, f64::from_le_bytes(r.array()?)),
                BOOL => out.bool(c, r.u8()? == 1),
                tag => return Err(format!("unknown cell tag {tag} at byte {}", r.at - 1)),
            }
        }
    }
    Ok(())
}

struct CellReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> CellReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end =
            end.ok_or_else(|| format!("row buffer ends inside a cell at byte {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn str(&mut self) -> Result<&'a str, String> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|e| format!("row buffer text is not UTF-8: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::columnar::{parse_rows, ColumnView};
    use crate::storage::schema::ColumnType;

    /// The cell a CSV field becomes, read back through an InsertRows payload.
    fn field(kind: Kind, raw: &str) -> Result<String, String> {
        let target = Target {
            name: "c".into(),
            kind,
        };
        let mut out = Vec::new();
        csv_field(&mut out, &target, raw.as_bytes())?;
        let mut e = RowsEncoder::new(1);
        transpose(&out, &[0], &mut e).unwrap();
        let payload = e.finish();
        let ty = match kind {
            Kind::Key | Kind::Text => ColumnType::Text,
            Kind::Set | Kind::Events => ColumnType::TextSet,
            Kind::Int | Kind::Timestamp => ColumnType::Int,
            Kind::Float => ColumnType::Float,
            Kind::Bool => ColumnType::Bool,
        };
        let view = parse_rows(&[ty], &payload, 0).unwrap();
        assert_eq!(view.rows, 1);
        Ok(match &view.columns[0] {
            c if c.is_null(0) => "NULL".to_string(),
            c @ (ColumnView::Text(_) | ColumnView::CodedText { .. }) => {
                format!("{:?}", c.text(0).unwrap())
            }
            c @ (ColumnView::TextSet { .. } | ColumnView::CodedSet { .. }) => {
                format!("{:?}", c.tags(0).collect::<Vec<_>>())
            }
            ColumnView::Int(v) => format!("{}", v[0].unwrap()),
            ColumnView::Float(v) => format!("{:?}", v[0].unwrap()),
            ColumnView::Bool(v) => format!("{}", v[0].unwrap()),
        })
    }

    #[test]
    fn texts_and_keys() {
        assert_eq!(field(Kind::Text, "it's a\\b").unwrap(), "\"it's a\\\\b\"");
        assert_eq!(field(Kind::Text, "").unwrap(), "NULL");
        assert_eq!(field(Kind::Text, "NL").unwrap(), "\"NL\"");
        assert!(field(Kind::Key, "").unwrap_err().contains("empty"));
        assert_eq!(field(Kind::Key, "u1").unwrap(), "\"u1\"");
    }

    #[test]
    fn sets_split_on_bars() {
        assert_eq!(field(Kind::Set, "").unwrap(), "[]");
        assert_eq!(field(Kind::Set, "a|b").unwrap(), "[\"a\", \"b\"]");
        assert_eq!(field(Kind::Set, "|a||b|").unwrap(), "[\"a\", \"b\"]");
        assert_eq!(field(Kind::Events, "").unwrap(), "[]");
        assert_eq!(
            field(Kind::Events, "baking@2026-11-20T23:00:00Z|a@b@1793491200").unwrap(),
            "[\"2026-11-20:baking\", \"2026-11-01:a@b\"]"
        );
        assert!(field(Kind::Events, "baking")
            .unwrap_err()
            .contains("'baking' is not value@time"));
        assert!(field(Kind::Events, "baking@soon")
            .unwrap_err()
            .contains("the time 'soon' of 'baking@soon' is neither"));
        assert!(field(Kind::Events, "baking@999999999999999")
            .unwrap_err()
            .contains("years 1 to 9999"));
    }

    #[test]
    fn numbers_are_checked() {
        assert_eq!(field(Kind::Int, " +42 ").unwrap(), "42");
        assert_eq!(field(Kind::Int, "").unwrap(), "NULL");
        assert_eq!(
            field(Kind::Int, "abc").unwrap_err(),
            "column c is INT, 'abc' is not an integer"
        );
        assert!(field(Kind::Int, "99999999999999999999")
            .unwrap_err()
            .contains("64-bit"));
        assert_eq!(field(Kind::Float, "20.09").unwrap(), "20.09");
        assert_eq!(field(Kind::Float, "7").unwrap(), "7.0");
        assert_eq!(field(Kind::Float, ".5").unwrap(), "0.5");
        assert_eq!(
            field(Kind::Float, "1e400").unwrap_err(),
            "column c is FLOAT, '1e400' is not a finite number"
        );
        assert!(field(Kind::Float, "NaN").is_err());
        assert_eq!(field(Kind::Bool, "TRUE").unwrap(), "true");
        assert_eq!(field(Kind::Bool, "0").unwrap(), "false");
        assert!(field(Kind::Bool, "yes").is_err());
    }

    #[test]
    fn timestamps_become_seconds() {
        assert_eq!(field(Kind::Timestamp, "1791234567").unwrap(), "1791234567");
        assert_eq!(
            field(Kind::Timestamp, "2026-11-01T00:00:00Z").unwrap(),
            "1793491200"
        );
        assert_eq!(field(Kind::Timestamp, "2026-11-01").unwrap(), "1793491200");
        assert!(field(Kind::Timestamp, "yesterday").is_err());
    }

    #[test]
    fn invalid_utf8_is_a_reason() {
        let target = Target {
            name: "country".into(),
            kind: Kind::Text,
        };
        let e = csv_field(&mut Vec::new(), &target, b"N\xffL").unwrap_err();
        assert!(e.contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn rows_transpose_into_payload_columns_in_any_order() {
        let mut rows = Vec::new();
        for i in 0..3 {
            write_int(&mut rows, i);
            write_string(&mut rows, &format!("u{i}"));
        }
        let mut e = RowsEncoder::new(2);
        transpose(&rows, &[1, 0], &mut e).unwrap();
        let payload = e.finish();
        let view = parse_rows(&[ColumnType::Text, ColumnType::Int], &payload, 0).unwrap();
        assert_eq!(
            view.columns[0],
            ColumnView::Text(vec![Some("u0"), Some("u1"), Some("u2")])
        );
        assert_eq!(
            view.columns[1],
            ColumnView::Int(vec![Some(0), Some(1), Some(2)])
        );
        // A damaged buffer is an error, not a panic.
        for cut in [1, 5, rows.len() - 1] {
            let mut e = RowsEncoder::new(2);
            assert!(
                transpose(&rows[..cut], &[1, 0], &mut e).is_err(),
                "cut {cut}"
            );
        }
        assert!(transpose(&[9], &[0], &mut RowsEncoder::new(1)).is_err());
    }
}
