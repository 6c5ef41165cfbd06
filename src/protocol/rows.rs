//! The columnar payload of a RowBatch (docs/protocol.md, "RowBatch"): a row
//! count, then per column a NULL bitmap and the non-NULL values in row order.
//!
//! Invariant: decoding checks every count against the bytes present before
//! allocating for it, so a forged count cannot exhaust memory.

use crate::engine::Value;
use crate::storage::codec::{ByteReader, ByteWriter};
use crate::storage::schema::ColumnType;

/// Encodes rows whose values fit `types` (a value of another type is sent as NULL).
pub fn encode_rows(types: &[ColumnType], rows: &[Vec<Value>]) -> Vec<u8> {
    let mut w = ByteWriter::with_capacity(rows.len() * types.len() * 8 + 8);
    w.u32(rows.len() as u32);
    for (c, ty) in types.iter().enumerate() {
        let cell = |row: &Vec<Value>| row.get(c).cloned().unwrap_or(Value::Null);
        let fits = |v: &Value| {
            matches!(
                (ty, v),
                (ColumnType::Text, Value::Text(_))
                    | (ColumnType::TextSet, Value::Set(_))
                    | (ColumnType::Int, Value::Int(_))
                    | (ColumnType::Timestamp, Value::Timestamp(_) | Value::Int(_))
                    | (ColumnType::Float, Value::Float(_))
                    | (ColumnType::Bool, Value::Bool(_))
            )
        };
        let mut nulls = vec![0u8; rows.len().div_ceil(8)];
        for (i, row) in rows.iter().enumerate() {
            if !fits(&cell(row)) {
                nulls[i / 8] |= 1 << (i % 8);
            }
        }
        w.bytes(&nulls);
        for row in rows {
            match row.get(c) {
                Some(Value::Text(s)) if *ty == ColumnType::Text => w.str(s),
                Some(Value::Set(tags)) if *ty == ColumnType::TextSet => {
                    w.u32(tags.len() as u32);
                    tags.iter().for_each(|t| w.str(t));
                }
                Some(Value::Int(v)) if *ty == ColumnType::Int => w.i64(*v),
                Some(Value::Timestamp(v) | Value::Int(v)) if *ty == ColumnType::Timestamp => {
                    w.i64(*v)
                }
                Some(Value::Float(v)) if *ty == ColumnType::Float => w.f64(*v),
                Some(Value::Bool(v)) if *ty == ColumnType::Bool => w.u8(u8::from(*v)),
                _ => {}
            }
        }
    }
    w.into_inner()
}

/// Decodes a RowBatch payload for columns of `types`.
pub fn decode_rows(types: &[ColumnType], payload: &[u8]) -> Result<Vec<Vec<Value>>, String> {
    let mut r = ByteReader::new(payload, 0);
    let e = |e: crate::storage::error::DecodeError| format!("{} (at byte {})", e.reason, e.offset);
    let n = r.u32("row count").map_err(e)? as usize;
    // Each row costs at least one NULL bit per column; refuse counts the payload cannot hold.
    if !types.is_empty() && n.div_ceil(8).saturating_mul(types.len()) > r.remaining() {
        return Err(format!(
            "row count {n} does not fit a payload of {} bytes",
            payload.len()
        ));
    }
    if types.is_empty() && n > 0 {
        return Err("rows without columns".into());
    }
    let mut rows: Vec<Vec<Value>> = (0..n).map(|_| Vec::with_capacity(types.len())).collect();
    for ty in types {
        let nulls = r.take(n.div_ceil(8), "null bitmap").map_err(e)?;
        for (i, row) in rows.iter_mut().enumerate() {
            if nulls[i / 8] >> (i % 8) & 1 == 1 {
                row.push(Value::Null);
                continue;
            }
            let v = match ty {
                ColumnType::Text => Value::Text(r.str("text value").map_err(e)?.to_string()),
                ColumnType::TextSet => {
                    let count = r.count(4, "set size").map_err(e)?;
                    let mut tags = Vec::with_capacity(count);
                    for _ in 0..count {
                        tags.push(r.str("tag").map_err(e)?.to_string());
                    }
                    Value::Set(tags)
                }
                ColumnType::Int => Value::Int(r.i64("int value").map_err(e)?),
                ColumnType::Timestamp => Value::Timestamp(r.i64("timestamp value").map_err(e)?),
                ColumnType::Float => Value::Float(r.f64("float value").map_err(e)?),
                ColumnType::Bool => match r.u8("bool value").map_err(e)? {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => return Err(format!("bool value {b}")),
                },
            };
            row.push(v);
        }
    }
    if !r.is_at_end() {
        return Err(format!("{} bytes left over in a row batch", r.remaining()));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_with_nulls_of_every_type() {
        let types = [
            ColumnType::Text,
            ColumnType::TextSet,
            ColumnType::Int,
            ColumnType::Timestamp,
            ColumnType::Float,
            ColumnType::Bool,
        ];
        let rows: Vec<Vec<Value>> = (0..19)
            .map(|i| {
                if i % 3 == 0 {
                    vec![Value::Null; 6]
                } else {
                    vec![
                        Value::Text(format!("u{i}")),
                        Value::Set(vec!["a".into(), format!("t{i}")]),
                        Value::Int(-i),
                        Value::Timestamp(1_793_491_200 + i),
                        Value::Float(i as f64 / 4.0),
                        Value::Bool(i % 2 == 0),
                    ]
                }
            })
            .collect();
        let bytes = encode_rows(&types, &rows);
        assert_eq!(decode_rows(&types, &bytes).unwrap(), rows);
        for cut in 0..bytes.len() {
            assert!(decode_rows(&types, &bytes[..cut]).is_err());
        }
        assert!(
            decode_rows(&types, &[0xff, 0xff, 0xff, 0x7f]).is_err(),
            "forged count"
        );
        assert_eq!(
            decode_rows(&types, &encode_rows(&types, &[])).unwrap(),
            Vec::<Vec<Value>>::new()
        );
    }
}
