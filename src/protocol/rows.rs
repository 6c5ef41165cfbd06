//! The columnar payload of a RowBatch (docs/protocol.md, "RowBatch"): a row
//! count, then per column a NULL bitmap and the non-NULL values in row order.
//!
//! Invariant: decoding checks every count against the bytes present before
//! allocating for it, so a forged count cannot exhaust memory.

use crate::engine::{write_cell, Value};
use crate::storage::columnar::{parse_rows, ColumnView, RowsEncoder};
use crate::storage::schema::ColumnType;

/// Encodes rows whose values fit `types` (a value of another type is sent as NULL).
pub fn encode_rows(types: &[ColumnType], rows: &[Vec<Value>]) -> Vec<u8> {
    let mut e = RowsEncoder::new(types.len());
    for row in rows {
        for (c, ty) in types.iter().enumerate() {
            write_cell(&mut e, c, *ty, row.get(c));
        }
    }
    e.finish()
}

/// Decodes a RowBatch payload for columns of `types`.
pub fn decode_rows(types: &[ColumnType], payload: &[u8]) -> Result<Vec<Vec<Value>>, String> {
    let view = parse_rows(types, payload, 0)
        .map_err(|e| format!("{} (at byte {})", e.reason, e.offset))?;
    let mut rows: Vec<Vec<Value>> = (0..view.rows)
        .map(|_| Vec::with_capacity(types.len()))
        .collect();
    for (column, ty) in view.columns.iter().zip(types) {
        for (i, row) in rows.iter_mut().enumerate() {
            row.push(match column {
                ColumnView::Text(_) | ColumnView::CodedText { .. } => column
                    .text(i)
                    .map_or(Value::Null, |s| Value::Text(s.to_string())),
                ColumnView::TextSet { .. } | ColumnView::CodedSet { .. } => {
                    if column.is_null(i) {
                        Value::Null
                    } else {
                        Value::Set(column.tags(i).map(str::to_string).collect())
                    }
                }
                ColumnView::Int(v) => match (v[i], ty) {
                    (None, _) => Value::Null,
                    (Some(x), ColumnType::Timestamp) => Value::Timestamp(x),
                    (Some(x), _) => Value::Int(x),
                },
                ColumnView::Float(v) => v[i].map_or(Value::Null, Value::Float),
                ColumnView::Bool(v) => v[i].map_or(Value::Null, Value::Bool),
            });
        }
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
