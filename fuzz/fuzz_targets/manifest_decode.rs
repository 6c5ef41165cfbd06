//! Fuzzes the manifest reader (docs/storage.md §6): arbitrary bytes as a
//! MANIFEST file, and — so that the fuzzer gets past the checksum — the same
//! bytes as the body of a correctly framed manifest (magic, version, length
//! and CRC computed here). Besides never panicking or over-allocating: a
//! manifest that decodes encodes to a file that decodes to the same
//! manifest.
#![no_main]

use cohortdb::storage::manifest::Manifest;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn check(bytes: &[u8]) {
    let path = Path::new("MANIFEST");
    if let Ok(m) = Manifest::decode(path, bytes) {
        let again = Manifest::decode(path, &m.encode()).expect("a re-encoded manifest decodes");
        assert_eq!(again, m);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // magic (8) and version (4) of a valid file, then length, body, CRC.
    let template = Manifest::default().encode();
    let mut framed = template[..12].to_vec();
    framed.extend_from_slice(&(data.len() as u64).to_le_bytes());
    framed.extend_from_slice(data);
    let crc = crc32fast::hash(&framed);
    framed.extend_from_slice(&crc.to_le_bytes());
    check(&framed);
});
