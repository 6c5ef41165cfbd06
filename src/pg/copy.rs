//! `COPY`: bulk export and import through standard PostgreSQL tools.
//!
//! - `COPY (SELECT ...) TO STDOUT` and `COPY table [(columns)] TO STDOUT`
//!   stream the rows of a CohortQL query as CopyData lines.
//! - `COPY table [(columns)] FROM STDIN` reads CopyData lines and loads
//!   them through the same path as the native protocol's InsertRows
//!   (`cohortdb import`): each field is checked and written as a typed cell
//!   by the importer's parser (src/cli/import/cells.rs), cells become the
//!   columnar payload, and each batch of up to [`BATCH_ROWS`] rows is one
//!   atomic, durable upsert by the session's principal (same role checks).
//!
//! Formats: `text` (the default: tab-separated, `\N` for NULL, backslash
//! escapes) and `csv` (`FORMAT csv`, `HEADER`, `DELIMITER`, `NULL`), in
//! both the `WITH (FORMAT csv, HEADER)` and the older `CSV HEADER` syntax.
//! SET<TEXT> values are written as PostgreSQL arrays (`{a,b}`) and read as
//! arrays or `a|b`; timestamps as PostgreSQL prints them or ISO-8601.
//!
//! Invariants: a bad row stops the COPY with an error naming its line;
//! batches before it stay loaded (like `cohortdb import --max-errors 0`);
//! memory is bounded by one batch, whatever the input size.

use super::errors::{PgErrorResponse, BAD_VALUE, SYNTAX};
use super::types;
use crate::cli::import::cells::{csv_field, transpose};
use crate::cli::import::table::{Kind, Target};
use crate::engine::{Database, Value};
use crate::protocol::message::ColumnInfo;
use crate::query::{Principal, QueryError};
use crate::storage::columnar::RowsEncoder;
use crate::storage::schema::{ColumnType, TableSchema};

/// Rows per atomic batch of COPY FROM.
pub const BATCH_ROWS: usize = 10_000;

/// The data format of a COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub csv: bool,
    pub header: bool,
    pub delimiter: u8,
    /// The text of a NULL (`\N` for text, empty for csv).
    pub null: String,
}

impl Default for Format {
    fn default() -> Format {
        Format {
            csv: false,
            header: false,
            delimiter: b'\t',
            null: "\\N".into(),
        }
    }
}

/// A parsed COPY statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy {
    /// `COPY (query) TO STDOUT` or `COPY table TO STDOUT`: the CohortQL query to run.
    Out { query: String, format: Format },
    /// `COPY table [(columns)] FROM STDIN`.
    In {
        table: String,
        columns: Option<Vec<String>>,
        format: Format,
    },
}

fn syntax(message: impl Into<String>) -> PgErrorResponse {
    PgErrorResponse::new(SYNTAX, message)
}

/// Reads `COPY ...` (the text starts with COPY).
pub fn parse(text: &str) -> Result<Copy, PgErrorResponse> {
    let t = super::sql::strip_leading(text)
        .trim()
        .trim_end_matches(';')
        .trim();
    let rest = t
        .get(4..)
        .filter(|_| t[..4].eq_ignore_ascii_case("copy"))
        .ok_or_else(|| syntax("expected COPY"))?
        .trim_start();
    // The source: a parenthesised query or a table with optional columns.
    let (source, rest) = if rest.starts_with('(') {
        let end = matching_paren(rest).ok_or_else(|| syntax("unbalanced parentheses in COPY"))?;
        (
            Source::Query(rest[1..end].trim().to_string()),
            &rest[end + 1..],
        )
    } else {
        let name_len = rest
            .find(|c: char| c.is_whitespace() || c == '(')
            .unwrap_or(rest.len());
        let table = unquote_ident(&rest[..name_len]);
        let mut after = rest[name_len..].trim_start();
        let mut columns = None;
        if after.starts_with('(') {
            let end =
                matching_paren(after).ok_or_else(|| syntax("unbalanced parentheses in COPY"))?;
            columns = Some(
                after[1..end]
                    .split(',')
                    .map(|c| unquote_ident(c.trim()))
                    .collect(),
            );
            after = &after[end + 1..];
        }
        (Source::Table { table, columns }, after)
    };
    let rest = rest.trim_start();
    let lower = rest.to_ascii_lowercase();
    let (direction, options) = if let Some(o) = lower.strip_prefix("to stdout") {
        (false, &rest[rest.len() - o.len()..])
    } else if let Some(o) = lower.strip_prefix("from stdin") {
        (true, &rest[rest.len() - o.len()..])
    } else {
        return Err(PgErrorResponse::new(
            super::errors::NOT_SUPPORTED,
            "CohortDB supports COPY ... TO STDOUT and COPY table FROM STDIN (files on the server are not)",
        ));
    };
    let format = parse_options(options)?;
    match (source, direction) {
        (Source::Query(query), false) => Ok(Copy::Out { query, format }),
        (Source::Table { table, columns }, false) => {
            let list = columns.map_or("*".to_string(), |c| {
                c.iter()
                    .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            Ok(Copy::Out {
                query: format!("SELECT {list} FROM \"{}\"", table.replace('"', "\"\"")),
                format,
            })
        }
        (Source::Table { table, columns }, true) => Ok(Copy::In {
            table,
            columns,
            format,
        }),
        (Source::Query(_), true) => Err(syntax("COPY FROM needs a table, not a query")),
    }
}

enum Source {
    Query(String),
    Table {
        table: String,
        columns: Option<Vec<String>>,
    },
}

fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote_ident(s: &str) -> String {
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.strip_prefix("public.").unwrap_or(s).to_string(),
    }
}

/// `[WITH] (FORMAT csv, HEADER, DELIMITER ',', NULL '')` or `[WITH] CSV HEADER`.
fn parse_options(options: &str) -> Result<Format, PgErrorResponse> {
    let mut o = options.trim();
    if o.as_bytes()
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"with"))
    {
        o = o[4..].trim_start();
    }
    let o = o.trim_start_matches('(').trim_end_matches(')');
    let mut format = Format::default();
    let mut null = None;
    let mut delimiter = None;
    let words: Vec<String> = o
        .split([',', ' ', '\n', '\t'])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].to_ascii_lowercase();
        let arg = words.get(i + 1).map(|a| a.trim_matches('\'').to_string());
        match w.as_str() {
            "format" => {
                match arg.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("csv") => format.csv = true,
                    Some("text") => format.csv = false,
                    other => {
                        return Err(PgErrorResponse::new(
                            super::errors::NOT_SUPPORTED,
                            format!("COPY format {other:?} is not supported (csv and text are)"),
                        ))
                    }
                }
                i += 2;
            }
            "csv" => {
                format.csv = true;
                i += 1;
            }
            "header" => {
                format.header = !matches!(arg.as_deref(), Some("false" | "off" | "0"));
                i += if matches!(
                    arg.as_deref(),
                    Some("true" | "on" | "1" | "false" | "off" | "0")
                ) {
                    2
                } else {
                    1
                };
            }
            "delimiter" => {
                let d = arg.unwrap_or_default();
                let d = if d == "\\t" { "\t".to_string() } else { d };
                if d.len() != 1 {
                    return Err(syntax("COPY delimiter must be a single one-byte character"));
                }
                delimiter = Some(d.as_bytes()[0]);
                i += 2;
            }
            "null" => {
                null = Some(arg.unwrap_or_default());
                i += 2;
            }
            "encoding" => {
                i += 2;
            }
            other => return Err(syntax(format!("COPY option {other:?} is not supported"))),
        }
    }
    if format.csv {
        format.delimiter = b',';
        format.null = String::new();
    }
    if let Some(d) = delimiter {
        format.delimiter = d;
    }
    if let Some(n) = null {
        format.null = n;
    }
    Ok(format)
}

/// Appends one row as a COPY line.
pub fn write_row(format: &Format, values: &[Value], out: &mut Vec<u8>) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(format.delimiter);
        }
        match types::text(v) {
            None => out.extend_from_slice(format.null.as_bytes()),
            Some(s) if format.csv => csv_quote(&s, format, out),
            Some(s) => text_escape(&s, format.delimiter, out),
        }
    }
    out.push(b'\n');
}

/// The header line of a CSV COPY.
pub fn write_header(format: &Format, names: &[String], out: &mut Vec<u8>) {
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push(format.delimiter);
        }
        csv_quote(n, format, out);
    }
    out.push(b'\n');
}

fn csv_quote(s: &str, format: &Format, out: &mut Vec<u8>) {
    let needs = s.is_empty()
        || s == format.null
        || s.bytes()
            .any(|b| b == format.delimiter || b == b'"' || b == b'\n' || b == b'\r');
    if !needs {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn text_escape(s: &str, delimiter: u8, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b == delimiter => {
                out.push(b'\\');
                out.push(b);
            }
            b => out.push(b),
        }
    }
}

/// Splits one text-format line into fields (`None` for NULL).
fn text_fields(line: &[u8], format: &Format) -> Vec<Option<Vec<u8>>> {
    let mut fields = Vec::new();
    for raw in line.split(|&b| b == format.delimiter) {
        if raw == format.null.as_bytes() {
            fields.push(None);
            continue;
        }
        let mut v = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'\\' && i + 1 < raw.len() {
                i += 1;
                v.push(match raw[i] {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 8,
                    b'f' => 12,
                    b'v' => 11,
                    other => other,
                });
            } else {
                v.push(raw[i]);
            }
            i += 1;
        }
        fields.push(Some(v));
    }
    fields
}

/// The COPY columns as the importer's targets, the InsertRows columns
/// (key first), and for each target its payload column.
type Layout = (Vec<Target>, Vec<ColumnInfo>, Vec<usize>);

/// The importer's target for each COPY column, and the InsertRows columns
/// (key first) with `order[i]` the payload column of target `i`.
fn layout(schema: &TableSchema, columns: Option<&[String]>) -> Result<Layout, PgErrorResponse> {
    let all: Vec<String> = std::iter::once(schema.key_column.clone())
        .chain(schema.columns.iter().map(|c| c.name.clone()))
        .collect();
    let names: Vec<String> = columns.map_or(all, <[String]>::to_vec);
    let mut targets = Vec::new();
    for name in &names {
        let kind = if name.eq_ignore_ascii_case(&schema.key_column) {
            Kind::Key
        } else {
            let c = schema
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    PgErrorResponse::new(
                        "42703",
                        format!(
                            "column \"{name}\" of relation \"{}\" does not exist",
                            schema.name
                        ),
                    )
                })?;
            match c.ty {
                ColumnType::Text => Kind::Text,
                ColumnType::TextSet if c.events => Kind::Events,
                ColumnType::TextSet => Kind::Set,
                ColumnType::Int => Kind::Int,
                ColumnType::Timestamp => Kind::Timestamp,
                ColumnType::Float => Kind::Float,
                ColumnType::Bool => Kind::Bool,
            }
        };
        let declared = if kind == Kind::Key {
            schema.key_column.clone()
        } else {
            schema
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
                .map_or(name.clone(), |c| c.name.clone())
        };
        if targets.iter().any(|t: &Target| t.name == declared) {
            return Err(syntax(format!(
                "column \"{name}\" specified more than once"
            )));
        }
        targets.push(Target {
            name: declared,
            kind,
        });
    }
    if !targets.iter().any(|t| t.kind == Kind::Key) {
        return Err(PgErrorResponse::new(
            "23502",
            format!(
                "COPY into {} must include the primary key column {}",
                schema.name, schema.key_column
            ),
        ));
    }
    let info = |t: &Target| ColumnInfo {
        name: t.name.clone(),
        ty: t.kind.column_type(),
    };
    let mut infos: Vec<ColumnInfo> = targets
        .iter()
        .filter(|t| t.kind == Kind::Key)
        .map(info)
        .collect();
    let mut order = Vec::new();
    for t in &targets {
        if t.kind == Kind::Key {
            order.push(0);
        } else {
            order.push(infos.len());
            infos.push(info(t));
        }
    }
    Ok((targets, infos, order))
}

/// Loads COPY FROM data read from `input` (the bytes of the CopyData
/// messages, in order) into `table`; returns the rows loaded.
pub fn copy_in(
    db: &Database,
    principal: &Principal,
    table: &str,
    columns: Option<&[String]>,
    format: &Format,
    input: impl std::io::Read,
) -> Result<u64, PgErrorResponse> {
    let query_error =
        |e: QueryError| PgErrorResponse::new(super::errors::sqlstate(&e), e.to_string());
    let hidden = table.starts_with('_') && !principal.role.sees_system_tables();
    let schema = if hidden {
        Err(crate::engine::Error::TableNotFound(table.to_string()))
    } else {
        db.schema(table)
    }
    .map_err(|e| query_error(e.into()))?;
    let (targets, infos, order) = layout(&schema, columns)?;
    let mut loaded = 0u64;
    let mut cells = Vec::new();
    let mut rows = 0usize;
    let mut flush = |cells: &mut Vec<u8>, rows: &mut usize| -> Result<(), PgErrorResponse> {
        if *rows == 0 {
            return Ok(());
        }
        let mut enc = RowsEncoder::new(infos.len());
        transpose(cells, &order, &mut enc)
            .map_err(|e| PgErrorResponse::new(super::errors::INTERNAL, e))?;
        let n = crate::server::insert_rows(
            db,
            principal,
            &schema.name,
            infos.clone(),
            &[],
            enc.finish(),
        )
        .map_err(query_error)?;
        loaded += n;
        cells.clear();
        *rows = 0;
        Ok(())
    };
    let add_row = |fields: Vec<Option<Vec<u8>>>,
                   line: u64,
                   cells: &mut Vec<u8>|
     -> Result<(), PgErrorResponse> {
        if fields.len() != targets.len() {
            return Err(PgErrorResponse::new(
                BAD_VALUE,
                format!(
                    "line {line}: expected {} fields, found {}",
                    targets.len(),
                    fields.len()
                ),
            ));
        }
        let start = cells.len();
        for (field, target) in fields.iter().zip(&targets) {
            let raw: std::borrow::Cow<[u8]> = match field {
                None => std::borrow::Cow::Borrowed(b""),
                Some(v) => normalise_field(v, target.kind),
            };
            if let Err(why) = csv_field(cells, target, &raw) {
                cells.truncate(start);
                return Err(PgErrorResponse::new(
                    BAD_VALUE,
                    format!("line {line}: {why}"),
                ));
            }
        }
        Ok(())
    };
    if format.csv {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(format.delimiter)
            .from_reader(input);
        let mut record = csv::ByteRecord::new();
        let mut first = true;
        loop {
            let found = reader.read_byte_record(&mut record).map_err(|e| {
                PgErrorResponse::new(BAD_VALUE, format!("cannot read the CSV: {e}"))
            })?;
            if !found {
                break;
            }
            if std::mem::take(&mut first) && format.header {
                continue;
            }
            let line = record.position().map_or(0, |p| p.line());
            if record.len() == 1 && record.get(0) == Some(b"\\.") {
                break;
            }
            let fields = record
                .iter()
                .map(|f| (f != format.null.as_bytes()).then(|| f.to_vec()))
                .collect();
            add_row(fields, line, &mut cells)?;
            rows += 1;
            if rows >= BATCH_ROWS {
                flush(&mut cells, &mut rows)?;
            }
        }
    } else {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(input);
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(|e| {
                PgErrorResponse::new(BAD_VALUE, format!("cannot read the data: {e}"))
            })?;
            if n == 0 {
                break;
            }
            number += 1;
            while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                line.pop();
            }
            if line == b"\\." {
                break;
            }
            if number == 1 && format.header {
                continue;
            }
            add_row(text_fields(&line, format), number, &mut cells)?;
            rows += 1;
            if rows >= BATCH_ROWS {
                flush(&mut cells, &mut rows)?;
            }
        }
    }
    flush(&mut cells, &mut rows)?;
    Ok(loaded)
}

/// A field as the importer reads it: PostgreSQL arrays `{a,b}` become
/// `a|b`, PostgreSQL timestamps `... +00` get a full offset.
fn normalise_field(v: &[u8], kind: Kind) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    match kind {
        Kind::Set | Kind::Events if v.first() == Some(&b'{') => {
            match std::str::from_utf8(v).ok().and_then(types::parse_array) {
                Some(tags) => Cow::Owned(tags.join("|").into_bytes()),
                None => Cow::Borrowed(v),
            }
        }
        Kind::Timestamp => match std::str::from_utf8(v) {
            Ok(s) => Cow::Owned(types::normalise_timestamp(s).into_bytes()),
            Err(_) => Cow::Borrowed(v),
        },
        _ => Cow::Borrowed(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_statements_parse() {
        assert_eq!(
            parse("COPY profiles FROM STDIN (FORMAT csv, HEADER)").unwrap(),
            Copy::In {
                table: "profiles".into(),
                columns: None,
                format: Format {
                    csv: true,
                    header: true,
                    delimiter: b',',
                    null: String::new()
                }
            }
        );
        assert_eq!(
            parse("copy profiles (id, country) from stdin with csv header").unwrap(),
            Copy::In {
                table: "profiles".into(),
                columns: Some(vec!["id".into(), "country".into()]),
                format: Format {
                    csv: true,
                    header: true,
                    delimiter: b',',
                    null: String::new()
                }
            }
        );
        assert_eq!(
            parse("COPY (SELECT id FROM profiles WHERE f(x)) TO STDOUT").unwrap(),
            Copy::Out {
                query: "SELECT id FROM profiles WHERE f(x)".into(),
                format: Format::default()
            }
        );
        match parse("COPY profiles (id) TO STDOUT WITH (FORMAT csv)").unwrap() {
            Copy::Out { query, format } => {
                assert_eq!(query, "SELECT \"id\" FROM \"profiles\"");
                assert!(format.csv);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("COPY profiles FROM '/etc/passwd'").is_err());
        assert!(parse("COPY profiles FROM STDIN (FORMAT binary)").is_err());
        assert!(parse("COPY (SELECT 1 FROM STDIN").is_err());
        for text in [
            "COPY t FROM STDIN wé",
            "COPY t FROM STDIN éééé",
            "COPYé",
            "COPY é",
        ] {
            let _ = parse(text);
        }
    }

    #[test]
    fn rows_are_written_and_read_in_both_formats() {
        let values = vec![
            Value::Text("a\tb,\"c\"".into()),
            Value::Null,
            Value::Set(vec!["x".into(), "y z".into()]),
            Value::Int(3),
        ];
        let mut out = Vec::new();
        write_row(&Format::default(), &values, &mut out);
        assert_eq!(out, b"a\\tb,\"c\"\t\\N\t{x,\"y z\"}\t3\n");
        let fields = text_fields(&out[..out.len() - 1], &Format::default());
        assert_eq!(fields[0].as_deref(), Some(&b"a\tb,\"c\""[..]));
        assert_eq!(fields[1], None);
        let csv = parse_options("(FORMAT csv)").unwrap();
        let mut out = Vec::new();
        write_row(&csv, &values, &mut out);
        assert_eq!(out, b"\"a\tb,\"\"c\"\"\",,\"{x,\"\"y z\"\"}\",3\n");
        assert_eq!(normalise_field(b"{a,b}", Kind::Set).as_ref(), b"a|b");
    }
}
