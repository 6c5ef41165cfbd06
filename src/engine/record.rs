//! WAL records: what the engine logs before it acknowledges a change, and
//! how a batch is checked against its table's schema into that form
//! (payload layout in docs/storage.md, "WAL record payloads").
//!
//! Invariants: a [`Record`] that [`resolve_batch`] produced (or that decodes
//! and passes [`check_resolved`] during replay) applies without a type
//! error; applying the same records in LSN order to the same checkpoint
//! always gives the same profiles and values (internal row ids may differ
//! from the run that first applied them, which never shows in an answer).

use super::error::{Error, Result};
use super::rows::RowsBatch;
use super::value::{Batch, Change, Value, WriteOp};
use crate::storage::codec::{ByteReader, ByteWriter};
use crate::storage::error::DecodeError;
use crate::storage::schema::{ColumnType, TableSchema};

/// The longest external id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 1024;
/// The longest TEXT value or tag accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

const REC_CREATE_TABLE: u8 = 1;
const REC_DROP_TABLE: u8 = 2;
const REC_WRITE: u8 = 3;
const REC_ROWS: u8 = 4;
const REC_CODED_ROWS: u8 = 5;

/// One logged change.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    CreateTable {
        id: u32,
        schema: TableSchema,
    },
    DropTable {
        id: u32,
    },
    Write {
        table_id: u32,
        ops: Vec<ResolvedOp>,
    },
    /// Column-wise upserts ([`super::rows::RowsBatch`]): the payload's first
    /// column is the profile id, then the table columns at `positions`;
    /// payload column `c` is dictionary-coded when `coded[c]` (empty: none).
    Rows {
        table_id: u32,
        positions: Vec<u16>,
        coded: Vec<bool>,
        payload: Vec<u8>,
    },
}

/// A batch operation with columns resolved to positions and values checked.
#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedOp {
    Upsert {
        id: String,
        changes: Vec<(u16, Change)>,
        /// Only if the profile exists (UPDATE).
        only_existing: bool,
    },
    Delete {
        id: String,
    },
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidWrite("a profile id may not be empty".into()));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::InvalidWrite(format!(
            "profile id of {} bytes is longer than the {MAX_ID_BYTES} allowed",
            id.len()
        )));
    }
    Ok(())
}

fn check_text(column: &str, s: &str) -> Result<()> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(Error::InvalidWrite(format!(
            "value of {} bytes for column {column} is longer than the {MAX_TEXT_BYTES} allowed",
            s.len()
        )));
    }
    Ok(())
}

/// Normalises a value for a column of type `ty`, or says why it does not fit.
fn coerce(column: &str, ty: ColumnType, value: Value) -> Result<Value> {
    let mismatch = |v: &Value| Error::TypeMismatch {
        column: column.to_string(),
        expected: ty,
        found: v.describe(),
    };
    Ok(match (ty, value) {
        (_, Value::Null) => Value::Null,
        (ColumnType::Text, Value::Text(s)) => {
            check_text(column, &s)?;
            Value::Text(s)
        }
        (ColumnType::TextSet, Value::Set(mut tags)) => {
            for t in &tags {
                check_text(column, t)?;
            }
            tags.sort();
            tags.dedup();
            Value::Set(tags)
        }
        (ColumnType::Int, Value::Int(v)) => Value::Int(v),
        (ColumnType::Timestamp, Value::Timestamp(v) | Value::Int(v)) => Value::Timestamp(v),
        (ColumnType::Float, Value::Float(v)) => Value::Float(v),
        (ColumnType::Float, Value::Int(v)) => Value::Float(v as f64),
        (ColumnType::Bool, Value::Bool(v)) => Value::Bool(v),
        (_, other) => return Err(mismatch(&other)),
    })
}

/// The position of the column a write names; the key column cannot be set.
fn settable_column(schema: &TableSchema, name: &str) -> Result<usize> {
    schema.column_index(name).ok_or_else(|| {
        if name.eq_ignore_ascii_case(&schema.key_column) {
            Error::InvalidWrite(format!(
                "the primary key {name} is the profile id and cannot be set as a column"
            ))
        } else {
            Error::ColumnNotFound {
                table: schema.name.clone(),
                column: name.to_string(),
            }
        }
    })
}

/// Checks a batch against `schema` and resolves it into the logged form.
pub fn resolve_batch(schema: &TableSchema, batch: Batch) -> Result<Vec<ResolvedOp>> {
    let mut ops = Vec::with_capacity(batch.ops.len());
    for op in batch.ops {
        let only_existing = matches!(op, WriteOp::Update { .. });
        match op {
            WriteOp::Delete { id } => {
                check_id(&id)?;
                ops.push(ResolvedOp::Delete { id });
            }
            WriteOp::Upsert { id, changes } | WriteOp::Update { id, changes } => {
                check_id(&id)?;
                let mut resolved = Vec::with_capacity(changes.len());
                for (name, change) in changes {
                    let index = settable_column(schema, &name)?;
                    let column = &schema.columns[index];
                    if column.events {
                        if let Change::Set(Value::Set(tags)) | Change::Add(tags) = &change {
                            tags.iter()
                                .try_for_each(|t| super::events::check_tag(&column.name, t))?;
                        }
                    }
                    let change = match change {
                        Change::Set(v) => Change::Set(coerce(&column.name, column.ty, v)?),
                        Change::Add(tags) | Change::Remove(tags)
                            if column.ty != ColumnType::TextSet =>
                        {
                            let _ = tags;
                            return Err(Error::InvalidWrite(format!(
                                "column {} is {}; tags can only be added to or removed from a SET<TEXT> column",
                                column.name, column.ty
                            )));
                        }
                        Change::Add(tags) => {
                            tags.iter().try_for_each(|t| check_text(&column.name, t))?;
                            Change::Add(tags)
                        }
                        Change::Remove(tags) => Change::Remove(tags),
                    };
                    resolved.push((index as u16, change));
                }
                ops.push(ResolvedOp::Upsert {
                    id,
                    changes: resolved,
                    only_existing,
                });
            }
        }
    }
    Ok(ops)
}

/// The encoding of `Record::Rows { table_id, positions, coded, payload }`,
/// from borrowed parts (the commit path logs a batch without moving its
/// payload): type 4 when no column is coded (the layout older builds
/// wrote), else type 5 with a flag byte per payload column.
pub fn encode_rows(table_id: u32, positions: &[u16], coded: &[bool], payload: &[u8]) -> Vec<u8> {
    let any_coded = coded.iter().any(|c| *c);
    let mut w = ByteWriter::with_capacity(payload.len() + 8 + 3 * positions.len());
    w.u8(if any_coded { REC_CODED_ROWS } else { REC_ROWS });
    w.u32(table_id);
    w.u16(positions.len() as u16);
    positions.iter().for_each(|p| w.u16(*p));
    if any_coded {
        (0..=positions.len()).for_each(|c| w.u8(u8::from(coded.get(c) == Some(&true))));
    }
    w.bytes(payload);
    w.into_inner()
}

/// Checks a rows batch against `schema`: the column positions it writes.
pub fn resolve_rows(schema: &TableSchema, batch: &RowsBatch) -> Result<Vec<u16>> {
    let mut positions = Vec::with_capacity(batch.columns().len());
    for (name, ty) in batch.columns() {
        let index = settable_column(schema, name)?;
        let column = &schema.columns[index];
        if !same_encoding(column.ty, *ty) {
            return Err(Error::InvalidWrite(format!(
                "column {} is {}; the rows batch sends it as {ty}",
                column.name, column.ty
            )));
        }
        if positions.contains(&(index as u16)) {
            return Err(Error::InvalidWrite(format!(
                "column {} is named twice in the rows batch",
                column.name
            )));
        }
        positions.push(index as u16);
    }
    Ok(positions)
}

/// True when values of type `sent` are encoded as a column of type `column` expects.
fn same_encoding(column: ColumnType, sent: ColumnType) -> bool {
    column == sent
        || matches!(
            (column, sent),
            (ColumnType::Int, ColumnType::Timestamp) | (ColumnType::Timestamp, ColumnType::Int)
        )
}

/// Re-checks replayed operations against the schema they apply to, so that a
/// record that decodes but does not fit its table is an error, not a panic.
pub fn check_resolved(schema: &TableSchema, ops: &[ResolvedOp]) -> std::result::Result<(), String> {
    for op in ops {
        if let ResolvedOp::Upsert { changes, .. } = op {
            for (index, change) in changes {
                let column = schema
                    .columns
                    .get(*index as usize)
                    .ok_or_else(|| format!("column position {index} is out of range"))?;
                let fits = match change {
                    Change::Set(v) => matches!(
                        (column.ty, v),
                        (_, Value::Null)
                            | (ColumnType::Text, Value::Text(_))
                            | (ColumnType::TextSet, Value::Set(_))
                            | (ColumnType::Int, Value::Int(_))
                            | (ColumnType::Timestamp, Value::Timestamp(_))
                            | (ColumnType::Float, Value::Float(_))
                            | (ColumnType::Bool, Value::Bool(_))
                    ),
                    Change::Add(_) | Change::Remove(_) => column.ty == ColumnType::TextSet,
                };
                if !fits {
                    return Err(format!(
                        "change to column {} does not fit its type",
                        column.name
                    ));
                }
            }
        }
    }
    Ok(())
}

fn encode_value(w: &mut ByteWriter, v: &Value) {
    match v {
        Value::Null => w.u8(0),
        Value::Text(s) => {
            w.u8(1);
            w.str(s);
        }
        Value::Set(tags) => {
            w.u8(2);
            encode_tags(w, tags);
        }
        Value::Int(v) => {
            w.u8(3);
            w.i64(*v);
        }
        Value::Timestamp(v) => {
            w.u8(4);
            w.i64(*v);
        }
        Value::Float(v) => {
            w.u8(5);
            w.f64(*v);
        }
        Value::Bool(v) => {
            w.u8(6);
            w.u8(u8::from(*v));
        }
    }
}

fn encode_tags(w: &mut ByteWriter, tags: &[String]) {
    w.u32(tags.len() as u32);
    for t in tags {
        w.str(t);
    }
}

fn decode_tags(r: &mut ByteReader<'_>) -> std::result::Result<Vec<String>, DecodeError> {
    let n = r.count(4, "tag count")?;
    (0..n).map(|_| r.str("tag").map(str::to_string)).collect()
}

fn decode_value(r: &mut ByteReader<'_>) -> std::result::Result<Value, DecodeError> {
    let at = r.offset();
    Ok(match r.u8("value tag")? {
        0 => Value::Null,
        1 => Value::Text(r.str("text value")?.to_string()),
        2 => Value::Set(decode_tags(r)?),
        3 => Value::Int(r.i64("int value")?),
        4 => Value::Timestamp(r.i64("timestamp value")?),
        5 => Value::Float(r.f64("float value")?),
        6 => match r.u8("bool value")? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            b => return Err(DecodeError::new(at + 1, format!("bool value {b}"))),
        },
        t => return Err(DecodeError::new(at, format!("unknown value tag {t}"))),
    })
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::new();
        match self {
            Record::CreateTable { id, schema } => {
                w.u8(REC_CREATE_TABLE);
                w.u32(*id);
                schema.encode(&mut w);
            }
            Record::DropTable { id } => {
                w.u8(REC_DROP_TABLE);
                w.u32(*id);
            }
            Record::Write { table_id, ops } => {
                w.u8(REC_WRITE);
                w.u32(*table_id);
                w.u32(ops.len() as u32);
                for op in ops {
                    match op {
                        ResolvedOp::Upsert {
                            id,
                            changes,
                            only_existing,
                        } => {
                            w.u8(if *only_existing { 3 } else { 1 });
                            w.str(id);
                            w.u32(changes.len() as u32);
                            for (col, change) in changes {
                                w.u16(*col);
                                match change {
                                    Change::Set(v) => {
                                        w.u8(1);
                                        encode_value(&mut w, v);
                                    }
                                    Change::Add(tags) => {
                                        w.u8(2);
                                        encode_tags(&mut w, tags);
                                    }
                                    Change::Remove(tags) => {
                                        w.u8(3);
                                        encode_tags(&mut w, tags);
                                    }
                                }
                            }
                        }
                        ResolvedOp::Delete { id } => {
                            w.u8(2);
                            w.str(id);
                        }
                    }
                }
            }
            Record::Rows {
                table_id,
                positions,
                coded,
                payload,
            } => return encode_rows(*table_id, positions, coded, payload),
        }
        w.into_inner()
    }

    /// Decodes a payload that sits at `base` in its WAL segment.
    pub fn decode(bytes: &[u8], base: u64) -> std::result::Result<Record, DecodeError> {
        let mut r = ByteReader::new(bytes, base);
        let at = r.offset();
        let record = match r.u8("record type")? {
            REC_CREATE_TABLE => Record::CreateTable {
                id: r.u32("table id")?,
                schema: TableSchema::decode(&mut r)?,
            },
            REC_DROP_TABLE => Record::DropTable {
                id: r.u32("table id")?,
            },
            REC_WRITE => {
                let table_id = r.u32("table id")?;
                let n = r.count(5, "operation count")?;
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    let at = r.offset();
                    match r.u8("operation kind")? {
                        kind @ (1 | 3) => {
                            let id = r.str("profile id")?.to_string();
                            let nc = r.count(3, "change count")?;
                            let mut changes = Vec::with_capacity(nc);
                            for _ in 0..nc {
                                let col = r.u16("column position")?;
                                let at = r.offset();
                                let change = match r.u8("change kind")? {
                                    1 => Change::Set(decode_value(&mut r)?),
                                    2 => Change::Add(decode_tags(&mut r)?),
                                    3 => Change::Remove(decode_tags(&mut r)?),
                                    k => {
                                        return Err(DecodeError::new(
                                            at,
                                            format!("unknown change kind {k}"),
                                        ))
                                    }
                                };
                                changes.push((col, change));
                            }
                            ops.push(ResolvedOp::Upsert {
                                id,
                                changes,
                                only_existing: kind == 3,
                            });
                        }
                        2 => ops.push(ResolvedOp::Delete {
                            id: r.str("profile id")?.to_string(),
                        }),
                        k => {
                            return Err(DecodeError::new(at, format!("unknown operation kind {k}")))
                        }
                    }
                }
                Record::Write { table_id, ops }
            }
            kind @ (REC_ROWS | REC_CODED_ROWS) => {
                let table_id = r.u32("table id")?;
                let n = r.u16("column count")? as usize;
                let positions = (0..n)
                    .map(|_| r.u16("column position"))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let mut coded = Vec::new();
                if kind == REC_CODED_ROWS {
                    for _ in 0..=n {
                        let at = r.offset();
                        coded.push(match r.u8("column coding")? {
                            0 => false,
                            1 => true,
                            b => return Err(DecodeError::new(at, format!("column coding {b}"))),
                        });
                    }
                }
                let payload = r.take(r.remaining(), "rows payload")?.to_vec();
                Record::Rows {
                    table_id,
                    positions,
                    coded,
                    payload,
                }
            }
            t => return Err(DecodeError::new(at, format!("unknown record type {t}"))),
        };
        if !r.is_at_end() {
            return Err(r.error("trailing bytes after the record"));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> TableSchema {
        TableSchema::new("p", "id")
            .column("country", ColumnType::Text)
            .column("tags", ColumnType::TextSet)
            .column("age", ColumnType::Int)
            .column("seen", ColumnType::Timestamp)
            .column("ltv", ColumnType::Float)
            .column("ok", ColumnType::Bool)
    }

    #[test]
    fn resolved_batches_round_trip_through_the_record_codec() {
        let mut b = Batch::new();
        b.upsert("u1")
            .set("country", "NL")
            .set("tags", vec!["b", "a", "b"])
            .set("age", 34i64)
            .set("seen", 1_700_000_000i64)
            .set("ltv", 3i64)
            .set("ok", true);
        b.upsert("u2")
            .add("tags", ["x"])
            .remove("tags", ["y"])
            .set("age", Value::Null);
        b.delete("u3");
        let ops = resolve_batch(&schema(), b).unwrap();
        // Normalisation: sets sorted and deduplicated, ints widened where the column asks.
        match &ops[0] {
            ResolvedOp::Upsert { changes, .. } => {
                assert_eq!(
                    changes[1].1,
                    Change::Set(Value::Set(vec!["a".into(), "b".into()]))
                );
                assert_eq!(changes[3].1, Change::Set(Value::Timestamp(1_700_000_000)));
                assert_eq!(changes[4].1, Change::Set(Value::Float(3.0)));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(check_resolved(&schema(), &ops).is_ok());
        let record = Record::Write { table_id: 9, ops };
        let bytes = record.encode();
        assert_eq!(Record::decode(&bytes, 0).unwrap(), record);
        for cut in 0..bytes.len() {
            assert!(Record::decode(&bytes[..cut], 0).is_err());
        }
    }

    #[test]
    fn type_errors_name_the_column_and_value() {
        let mut b = Batch::new();
        b.upsert("u1").set("age", "abc");
        let err = resolve_batch(&schema(), b).unwrap_err().to_string();
        assert_eq!(err, "column age is INT; TEXT \"abc\" does not fit it");
        let mut b = Batch::new();
        b.upsert("u1").add("country", ["x"]);
        assert!(resolve_batch(&schema(), b).is_err());
        let mut b = Batch::new();
        b.upsert("").set("age", 1i64);
        assert!(resolve_batch(&schema(), b).is_err());
        let mut b = Batch::new();
        b.upsert("u").set("nope", 1i64);
        assert!(matches!(
            resolve_batch(&schema(), b),
            Err(Error::ColumnNotFound { .. })
        ));
    }

    #[test]
    fn ddl_records_round_trip() {
        for record in [
            Record::CreateTable {
                id: 4,
                schema: schema(),
            },
            Record::DropTable { id: 4 },
        ] {
            assert_eq!(Record::decode(&record.encode(), 0).unwrap(), record);
        }
    }

    #[test]
    fn rows_records_round_trip_and_resolve_against_the_schema() {
        let columns = vec![
            ("age".to_string(), ColumnType::Int),
            ("country".to_string(), ColumnType::Text),
        ];
        let rows = vec![
            (
                "u1".to_string(),
                vec![Value::Int(3), Value::Text("NL".into())],
            ),
            ("u2".to_string(), vec![Value::Null, Value::Null]),
        ];
        let batch = RowsBatch::from_values(columns, &rows).unwrap();
        assert_eq!(batch.rows(), 2);
        let positions = resolve_rows(&schema(), &batch).unwrap();
        assert_eq!(positions, vec![2, 0]);
        let record = Record::Rows {
            table_id: 3,
            positions: positions.clone(),
            coded: vec![],
            payload: batch.payload().to_vec(),
        };
        let bytes = record.encode();
        assert_eq!(bytes[0], REC_ROWS);
        assert_eq!(Record::decode(&bytes, 0).unwrap(), record);
        for cut in 0..7 {
            assert!(Record::decode(&bytes[..cut], 0).is_err());
        }
        // A coded column makes it a type 5 record with a flag per payload column.
        let coded = Record::Rows {
            table_id: 3,
            positions,
            coded: vec![false, false, true],
            payload: batch.payload().to_vec(),
        };
        let bytes = coded.encode();
        assert_eq!(bytes[0], REC_CODED_ROWS);
        assert_eq!(Record::decode(&bytes, 0).unwrap(), coded);
        let flag_at = 1 + 4 + 2 + 2 * 2 + 2;
        assert_eq!(bytes[flag_at], 1);
        let mut bad = bytes.clone();
        bad[flag_at] = 2;
        assert!(Record::decode(&bad, 0).is_err());
        let refuse = |columns: Vec<(&str, ColumnType)>| {
            let columns: Vec<(String, ColumnType)> = columns
                .into_iter()
                .map(|(n, t)| (n.to_string(), t))
                .collect();
            let batch = RowsBatch::from_values(columns, &[]).unwrap();
            resolve_rows(&schema(), &batch).unwrap_err().to_string()
        };
        assert!(refuse(vec![("nope", ColumnType::Int)]).contains("nope"));
        assert!(refuse(vec![("age", ColumnType::Text)]).contains("column age is INT"));
        assert!(refuse(vec![("age", ColumnType::Int), ("AGE", ColumnType::Int)]).contains("twice"));
        assert!(refuse(vec![("id", ColumnType::Text)]).contains("primary key"));
        // INT and TIMESTAMP share an encoding.
        let batch =
            RowsBatch::from_values(vec![("seen".to_string(), ColumnType::Int)], &[]).unwrap();
        assert_eq!(resolve_rows(&schema(), &batch).unwrap(), vec![3]);
        // Bad ids are refused when the batch is made.
        for id in ["", &"x".repeat(MAX_ID_BYTES + 1)] {
            let rows = vec![(id.to_string(), vec![])];
            assert!(RowsBatch::from_values(vec![], &rows).is_err());
        }
    }

    #[test]
    fn replay_check_refuses_misfits() {
        let ops = vec![ResolvedOp::Upsert {
            id: "u".into(),
            changes: vec![(2, Change::Set(Value::Text("x".into())))],
            only_existing: false,
        }];
        assert!(check_resolved(&schema(), &ops).is_err());
        let ops = vec![ResolvedOp::Upsert {
            id: "u".into(),
            changes: vec![(99, Change::Set(Value::Null))],
            only_existing: false,
        }];
        assert!(check_resolved(&schema(), &ops).is_err());
    }
}
