//! Fuzzes the native protocol's decoders (docs/protocol.md), the code every
//! byte a client or server receives goes through: arbitrary bytes are read as
//! a stream of frames (`read_frame` over a slice, with a small maximum), and
//! every frame's payload is decoded as its message type (`Message::decode`)
//! and as a RowBatch for a few fixed column-type lists and for the columns of
//! the last Schema in the stream (`decode_rows`). The input minus its first
//! byte is also decoded directly as a payload of the type that byte names,
//! so the decoders are reached without a valid frame header. InsertRows
//! payloads, and every payload read with all text columns dictionary-coded,
//! go through `parse_coded_rows`, and every value of what parses is read.
//!
//! Must hold, besides never panicking or over-allocating: a frame never has
//! more than the maximum; a message that decodes re-encodes to exactly the
//! payload it came from (decoding consumes the payload exactly); rows that
//! decode re-encode to a payload of the same length that decodes again to the
//! same encoding.
#![no_main]

use cohortdb::protocol::message::ROW_BATCH;
use cohortdb::protocol::{decode_rows, encode_rows, read_frame, Message};
use cohortdb::storage::columnar::parse_coded_rows;
use cohortdb::ColumnType;
use libfuzzer_sys::fuzz_target;

/// The frame maximum: small, so that the length check is reached often.
const MAX_FRAME: u32 = 4096;

const TYPE_LISTS: &[&[ColumnType]] = &[
    &[],
    &[ColumnType::Text],
    &[ColumnType::Int],
    &[ColumnType::TextSet],
    &[ColumnType::Bool, ColumnType::Float],
    &[ColumnType::Text, ColumnType::Int, ColumnType::Timestamp],
    &[
        ColumnType::Text,
        ColumnType::TextSet,
        ColumnType::Int,
        ColumnType::Timestamp,
        ColumnType::Float,
        ColumnType::Bool,
    ],
];

fn check_rows(types: &[ColumnType], payload: &[u8]) {
    if let Ok(rows) = decode_rows(types, payload) {
        let again = encode_rows(types, &rows);
        // Only padding bits of the NULL bitmaps may differ.
        assert_eq!(
            again.len(),
            payload.len(),
            "rows re-encode to another length"
        );
        let rows2 = decode_rows(types, &again).expect("re-encoded rows decode");
        assert_eq!(
            encode_rows(types, &rows2),
            again,
            "row encoding is not stable"
        );
    }
}

/// Parses `payload` with columns `coded` dictionary-coded and reads every
/// value of what parses (a code past its dictionary would panic here).
fn check_coded_rows(types: &[ColumnType], coded: &[bool], payload: &[u8]) {
    if let Ok(view) = parse_coded_rows(types, coded, payload, 0) {
        for column in &view.columns {
            for i in 0..view.rows {
                let _ = column.text(i);
                let _ = column.tags(i).count();
            }
        }
    }
}

/// Decodes `payload` as message `kind` and as row batches; returns the
/// column types if it is a Schema.
fn check_payload(kind: u8, payload: &[u8]) -> Option<Vec<ColumnType>> {
    let mut schema = None;
    if let Ok(message) = Message::decode(kind, payload) {
        let (again_kind, again) = message.encode();
        assert_eq!(again_kind, kind, "{message:?} re-encodes to another type");
        assert_eq!(again, payload, "{message:?} re-encodes to other bytes");
        if let Message::Schema { columns, .. } = &message {
            schema = Some(columns.iter().map(|c| c.ty).collect());
        }
        if let Message::InsertRows {
            columns,
            coded,
            rows,
            ..
        } = &message
        {
            let types: Vec<ColumnType> = columns.iter().map(|c| c.ty).collect();
            check_coded_rows(&types, coded, rows);
        }
    } else {
        assert_ne!(kind, ROW_BATCH, "a RowBatch payload is never refused");
    }
    for types in TYPE_LISTS {
        check_rows(types, payload);
        let texts: Vec<bool> = types
            .iter()
            .map(|t| matches!(t, ColumnType::Text | ColumnType::TextSet))
            .collect();
        check_coded_rows(types, &texts, payload);
    }
    schema
}

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let mut schema: Option<Vec<ColumnType>> = None;
    while let Ok(frame) = read_frame(&mut input, MAX_FRAME) {
        assert!(
            frame.payload.len() < MAX_FRAME as usize,
            "frame over the maximum"
        );
        if let Some(types) = &schema {
            check_rows(types, &frame.payload);
        }
        if let Some(types) = check_payload(frame.kind, &frame.payload) {
            schema = Some(types);
        }
    }
    if let Some((&kind, payload)) = data.split_first() {
        check_payload(kind, payload);
    }
});
