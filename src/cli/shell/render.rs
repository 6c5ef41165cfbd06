//! Writing a statement's rows as an aligned table, CSV or JSON lines.
//!
//! Rows arrive batch by batch ([`Renderer::rows`]); CSV and JSON write each
//! batch at once, so a result of any size streams through. The table keeps
//! the first [`TABLE_BUFFER_ROWS`] rows to size its columns, then streams
//! the rest with those widths (a longer value then sticks out of its column).

use crate::engine::Value;
use crate::protocol::ColumnInfo;
use crate::storage::schema::ColumnType;
use clap::ValueEnum;
use std::io::{self, Write};

/// Rows a table holds back to size its columns before it starts writing.
pub const TABLE_BUFFER_ROWS: usize = 10_000;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns with a header, then `(N rows)`.
    Table,
    /// A header row, then one CSV record per row.
    Csv,
    /// One JSON object per row, one per line.
    Json,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// Writes one statement's rows in one format.
pub enum Renderer {
    Table(TableRenderer),
    Csv(CsvRenderer),
    Json(JsonRenderer),
}

impl Renderer {
    /// Starts a result with these columns (writing the CSV header at once).
    pub fn start(format: Format, columns: &[ColumnInfo], out: &mut dyn Write) -> io::Result<Self> {
        Ok(match format {
            Format::Table => Renderer::Table(TableRenderer::new(columns, TABLE_BUFFER_ROWS)),
            Format::Csv => Renderer::Csv(CsvRenderer::start(columns, out)?),
            Format::Json => Renderer::Json(JsonRenderer::new(columns)),
        })
    }

    pub fn rows(&mut self, rows: &[Vec<Value>], out: &mut dyn Write) -> io::Result<()> {
        match self {
            Renderer::Table(t) => t.rows(rows, out),
            Renderer::Csv(c) => c.rows(rows, out),
            Renderer::Json(j) => j.rows(rows, out),
        }
    }

    /// Ends the result (the table's remaining rows and `(N rows)`).
    pub fn finish(self, out: &mut dyn Write) -> io::Result<()> {
        match self {
            Renderer::Table(t) => t.finish(out),
            Renderer::Csv(_) | Renderer::Json(_) => Ok(()),
        }
    }
}

fn is_numeric(ty: ColumnType) -> bool {
    matches!(ty, ColumnType::Int | ColumnType::Float)
}

/// A value as a table cell: `Value`'s Display (NULL as `NULL`), with control
/// characters escaped so that a row stays on one line.
pub fn cell(value: &Value) -> String {
    let s = value.to_string();
    if !s.chars().any(char::is_control) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// An aligned table in the style of psql:
///
/// ```text
///  id | country | age
/// ----+---------+-----
///  u1 | NL      |  34
/// (1 row)
/// ```
pub struct TableRenderer {
    names: Vec<String>,
    numeric: Vec<bool>,
    buffered: Vec<Vec<String>>,
    buffer_limit: usize,
    /// Set once the header is written.
    widths: Option<Vec<usize>>,
    count: u64,
}

impl TableRenderer {
    pub fn new(columns: &[ColumnInfo], buffer_limit: usize) -> Self {
        TableRenderer {
            names: columns.iter().map(|c| c.name.clone()).collect(),
            numeric: columns.iter().map(|c| is_numeric(c.ty)).collect(),
            buffered: Vec::new(),
            buffer_limit,
            widths: None,
            count: 0,
        }
    }

    pub fn rows(&mut self, rows: &[Vec<Value>], out: &mut dyn Write) -> io::Result<()> {
        for row in rows {
            self.count += 1;
            let cells: Vec<String> = row.iter().map(cell).collect();
            match &self.widths {
                Some(w) => write_row(out, &cells, w, &self.numeric)?,
                None => {
                    self.buffered.push(cells);
                    if self.buffered.len() >= self.buffer_limit {
                        self.flush_buffer(out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sizes the columns from the header and the buffered rows, writes the
    /// header and those rows.
    fn flush_buffer(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.names.iter().map(|n| width(n)).collect();
        for row in &self.buffered {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(c));
            }
        }
        if !self.names.is_empty() {
            let mut line = String::new();
            for (i, (name, w)) in self.names.iter().zip(&widths).enumerate() {
                let last = i + 1 == self.names.len();
                let pad = w.saturating_sub(width(name));
                line.push_str(if i == 0 { " " } else { " | " });
                // Centred, as psql does.
                line.extend(std::iter::repeat_n(' ', pad / 2));
                line.push_str(name);
                if !last {
                    line.extend(std::iter::repeat_n(' ', pad - pad / 2));
                }
            }
            writeln!(out, "{line}")?;
            let separator: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
            writeln!(out, "{}", separator.join("+"))?;
        }
        for row in std::mem::take(&mut self.buffered) {
            write_row(out, &row, &widths, &self.numeric)?;
        }
        self.widths = Some(widths);
        Ok(())
    }

    pub fn finish(mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.widths.is_none() {
            self.flush_buffer(out)?;
        }
        let noun = if self.count == 1 { "row" } else { "rows" };
        writeln!(out, "({} {noun})", self.count)?;
        writeln!(out)
    }
}

fn write_row(
    out: &mut dyn Write,
    cells: &[String],
    widths: &[usize],
    numeric: &[bool],
) -> io::Result<()> {
    let mut line = String::new();
    for (i, ((c, w), num)) in cells.iter().zip(widths).zip(numeric).enumerate() {
        let last = i + 1 == cells.len();
        let pad = w.saturating_sub(width(c));
        line.push_str(if i == 0 { " " } else { " | " });
        if *num {
            line.extend(std::iter::repeat_n(' ', pad));
            line.push_str(c);
        } else {
            line.push_str(c);
            if !last {
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
    }
    writeln!(out, "{line}")
}

/// CSV through the csv crate: a header row, then the rows. NULL is an empty
/// field and a set is its tags joined with `|`.
pub struct CsvRenderer;

fn csv_writer(out: &mut dyn Write) -> csv::Writer<&mut dyn Write> {
    csv::WriterBuilder::new().flexible(true).from_writer(out)
}

fn csv_error(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

impl CsvRenderer {
    pub fn start(columns: &[ColumnInfo], out: &mut dyn Write) -> io::Result<Self> {
        let mut w = csv_writer(out);
        w.write_record(columns.iter().map(|c| c.name.as_str()))
            .map_err(csv_error)?;
        w.flush()?;
        Ok(CsvRenderer)
    }

    pub fn rows(&mut self, rows: &[Vec<Value>], out: &mut dyn Write) -> io::Result<()> {
        let mut w = csv_writer(out);
        for row in rows {
            w.write_record(row.iter().map(csv_field))
                .map_err(csv_error)?;
        }
        w.flush()
    }
}

/// A value as a CSV field.
pub fn csv_field(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Set(tags) => tags.join("|"),
        other => other.to_string(),
    }
}

/// One JSON object per row and line, keys in column order: numbers as
/// numbers, sets as arrays, TIMESTAMP as an ISO-8601 string, NULL as null.
pub struct JsonRenderer {
    /// Each column name, already JSON-encoded with its `:`.
    keys: Vec<String>,
}

impl JsonRenderer {
    pub fn new(columns: &[ColumnInfo]) -> Self {
        JsonRenderer {
            keys: columns
                .iter()
                .map(|c| format!("{}:", serde_json::Value::String(c.name.clone())))
                .collect(),
        }
    }

    pub fn rows(&mut self, rows: &[Vec<Value>], out: &mut dyn Write) -> io::Result<()> {
        let mut line = String::new();
        for row in rows {
            line.clear();
            line.push('{');
            for (i, (key, value)) in self.keys.iter().zip(row).enumerate() {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(key);
                line.push_str(&json_value(value).to_string());
            }
            line.push_str("}\n");
            out.write_all(line.as_bytes())?;
        }
        Ok(())
    }
}

/// A value as JSON (a non-finite FLOAT becomes null).
pub fn json_value(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Text(s) => J::String(s.clone()),
        Value::Set(tags) => J::Array(tags.iter().map(|t| J::String(t.clone())).collect()),
        Value::Int(v) => J::from(*v),
        Value::Float(v) => serde_json::Number::from_f64(*v).map_or(J::Null, J::Number),
        Value::Bool(v) => J::Bool(*v),
        Value::Timestamp(_) => J::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(spec: &[(&str, ColumnType)]) -> Vec<ColumnInfo> {
        spec.iter()
            .map(|(n, t)| ColumnInfo {
                name: n.to_string(),
                ty: *t,
            })
            .collect()
    }

    fn sample() -> (Vec<ColumnInfo>, Vec<Vec<Value>>) {
        (
            cols(&[
                ("id", ColumnType::Text),
                ("age", ColumnType::Int),
                ("interests", ColumnType::TextSet),
                ("seen", ColumnType::Timestamp),
                ("ltv", ColumnType::Float),
            ]),
            vec![
                vec![
                    Value::Text("u1".into()),
                    Value::Int(34),
                    Value::Set(vec!["baking".into(), "tea".into()]),
                    Value::Timestamp(1_793_491_200),
                    Value::Float(120.5),
                ],
                vec![
                    Value::Text("user,\"2\"".into()),
                    Value::Null,
                    Value::Set(vec![]),
                    Value::Null,
                    Value::Float(7.0),
                ],
            ],
        )
    }

    fn render(format: Format, columns: &[ColumnInfo], batches: &[Vec<Vec<Value>>]) -> String {
        let mut out = Vec::new();
        let mut r = Renderer::start(format, columns, &mut out).unwrap();
        for b in batches {
            r.rows(b, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_aligns_columns_and_right_aligns_numbers() {
        let (columns, rows) = sample();
        let text = render(
            Format::Table,
            &columns,
            &[rows[..1].to_vec(), rows[1..].to_vec()],
        );
        let expected = [
            "    id    | age  |  interests   |         seen         |  ltv",
            "----------+------+--------------+----------------------+-------",
            " u1       |   34 | [baking,tea] | 2026-11-01T00:00:00Z | 120.5",
            " user,\"2\" | NULL | []           | NULL                 |     7",
            "(2 rows)",
            "",
            "",
        ];
        assert_eq!(text, expected.join("\n"));
    }

    #[test]
    fn table_layout_exactly() {
        let columns = cols(&[("id", ColumnType::Text), ("n", ColumnType::Int)]);
        let rows = vec![
            vec![Value::Text("alpha".into()), Value::Int(5)],
            vec![Value::Text("b".into()), Value::Int(-1234)],
            vec![Value::Null, Value::Null],
        ];
        assert_eq!(
            render(Format::Table, &columns, &[rows]),
            "  id   |   n\n\
             -------+-------\n \
             alpha |     5\n \
             b     | -1234\n \
             NULL  |  NULL\n\
             (3 rows)\n\n"
        );
        let one = vec![vec![Value::Text("x".into()), Value::Int(1)]];
        assert!(render(Format::Table, &columns, &[one]).ends_with("(1 row)\n\n"));
        assert_eq!(
            render(Format::Table, &columns, &[]),
            " id | n\n----+---\n(0 rows)\n\n"
        );
    }

    #[test]
    fn a_long_table_streams_with_the_widths_of_its_first_rows() {
        let columns = cols(&[("v", ColumnType::Text)]);
        let mut out = Vec::new();
        let mut t = TableRenderer::new(&columns, 2);
        t.rows(&[vec![Value::from("a")]], &mut out).unwrap();
        assert!(out.is_empty(), "still sizing");
        t.rows(
            &[vec![Value::from("bb")], vec![Value::from("cccc")]],
            &mut out,
        )
        .unwrap();
        t.finish(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            " v\n----\n a\n bb\n cccc\n(3 rows)\n\n"
        );
    }

    #[test]
    fn control_characters_are_escaped_in_cells() {
        assert_eq!(cell(&Value::from("a\nb\tc")), "a\\nb\\tc");
        assert_eq!(cell(&Value::Null), "NULL");
    }

    #[test]
    fn csv_quotes_and_renders_sets_and_nulls() {
        let (columns, rows) = sample();
        assert_eq!(
            render(Format::Csv, &columns, &[rows]),
            "id,age,interests,seen,ltv\n\
             u1,34,baking|tea,2026-11-01T00:00:00Z,120.5\n\
             \"user,\"\"2\"\"\",,,,7\n"
        );
    }

    #[test]
    fn json_lines_keep_types_and_column_order() {
        let (columns, rows) = sample();
        assert_eq!(
            render(Format::Json, &columns, &[rows]),
            "{\"id\":\"u1\",\"age\":34,\"interests\":[\"baking\",\"tea\"],\"seen\":\"2026-11-01T00:00:00Z\",\"ltv\":120.5}\n\
             {\"id\":\"user,\\\"2\\\"\",\"age\":null,\"interests\":[],\"seen\":null,\"ltv\":7.0}\n"
        );
        assert_eq!(json_value(&Value::Float(f64::NAN)), serde_json::Value::Null);
        assert_eq!(
            json_value(&Value::Bool(true)),
            serde_json::Value::Bool(true)
        );
    }
}
