//! Fuzzes WAL replay input: arbitrary bytes as a WAL segment must scan to
//! records or a Corrupted error / torn-tail report, never a panic or a
//! runaway allocation, and every record that scans must decode or be refused.
#![no_main]

use cohortdb::storage::wal::{scan_segment, segment_name};
use cohortdb::storage::StorageError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join(segment_name(1));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    for is_last in [true, false] {
        let _ = scan_segment(&path, is_last, |_lsn, _offset, payload| {
            let _ = cohortdb::engine::decode_record_for_fuzzing(payload);
            Ok::<(), StorageError>(())
        });
    }
});
