//! Fuzzes part-file reading: arbitrary bytes as a part file must open and
//! load as a shard, or fail with a Corrupted error — never a panic. Because
//! checksums stop random bytes early, the same input is also fed straight to
//! the section decoders (column blocks, key tables, dictionaries, bitmaps),
//! which must refuse bad bytes without panicking or over-allocating.
#![no_main]

use cohortdb::storage::block::decode_block;
use cohortdb::storage::codec::ByteReader;
use cohortdb::storage::dictionary::Dictionary;
use cohortdb::storage::keys::{key_hash, KeyTableView};
use cohortdb::storage::schema::ColumnType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(dir) = tempfile::tempdir() {
        let path = dir.path().join("s000000-g000000000001.part");
        if std::fs::write(&path, data).is_ok() {
            let _ = cohortdb::engine::load_part_for_fuzzing(&path);
        }
    }
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let types = [
        ColumnType::Text,
        ColumnType::TextSet,
        ColumnType::Int,
        ColumnType::Timestamp,
        ColumnType::Float,
        ColumnType::Bool,
    ];
    let ty = types[selector as usize % types.len()];
    let rows = (selector as usize / types.len()) % 40;
    let _ = decode_block(rest, 0, ty, rows);
    if let Ok(view) = KeyTableView::parse(rest, 0) {
        let _ = view.find(rest, "u1", key_hash("u1"));
        let _ = view.key_of(rest, 0);
    }
    let _ = Dictionary::decode(&mut ByteReader::new(rest, 0));
    let _ = ByteReader::new(rest, 0).bitmap("fuzz");
});
