//! Fuzzes `cohortdb import`'s row readers (docs/import.md): the first byte
//! picks CSV or NDJSON, the rest is the file, read into a table with a
//! column of every type. Besides never panicking: every batch of rows the
//! importer accepts transposes into an InsertRows payload that the server's
//! own checks accept (so a file can never make the importer send a batch
//! the server refuses as malformed).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((first, rest)) = data.split_first() {
        cohortdb::cli::fuzz_import_rows(first % 2 == 0, rest);
    }
});
