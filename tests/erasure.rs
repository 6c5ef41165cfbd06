//! Erasure: once a deleted profile has been checkpointed, no file of the data
//! directory (WAL segments, part files, MANIFEST, anything else, found by a
//! recursive walk) holds a byte of it — not its id, not its TEXT value, not
//! its tag, and (with uncompressed blocks) not its INT value. Each scan is
//! first shown to find the profile while it exists, so a scan that finds
//! nothing after the delete proves erasure rather than a blind scanner.

use cohortdb::{Batch, ColumnType, Database, Options, TableSchema, Value};
use std::path::{Path, PathBuf};

const TABLE: &str = "profiles";
const SECRET_ID: &str = "ERASE-ME-7f3a9c";
const SECRET_COUNTRY: &str = "erase-country-91d2";
const SECRET_TAG: &str = "erase-tag-55b0";
const SECRET_INT: i64 = 987654321987;
const ORDINARY: usize = 300;

fn schema() -> TableSchema {
    TableSchema::new(TABLE, "id")
        .column("country", ColumnType::Text)
        .column("tags", ColumnType::TextSet)
        .column("n", ColumnType::Int)
}

fn options(compress_blocks: bool) -> Options {
    Options {
        compress_blocks,
        background: false,
        ..Options::default()
    }
}

/// What to look for, as byte strings.
fn needles(secret_int: i64, with_int: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("id".to_string(), SECRET_ID.as_bytes().to_vec()),
        ("country".to_string(), SECRET_COUNTRY.as_bytes().to_vec()),
        ("tag".to_string(), SECRET_TAG.as_bytes().to_vec()),
    ];
    if with_int {
        out.push((
            format!("INT {secret_int} (8 bytes LE)"),
            secret_int.to_le_bytes().to_vec(),
        ));
    }
    out
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every (needle, file) pair where the file's raw bytes contain the needle.
fn scan(dir: &Path, needles: &[(String, Vec<u8>)]) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("MANIFEST")),
        "the walk must cover the whole directory: {files:?}"
    );
    let mut hits = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for (name, needle) in needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                hits.push((name.clone(), file.clone()));
            }
        }
    }
    hits
}

fn assert_all_found(dir: &Path, needles: &[(String, Vec<u8>)], when: &str) {
    let hits = scan(dir, needles);
    for (name, _) in needles {
        assert!(
            hits.iter().any(|(n, _)| n == name),
            "{when}: the scan should find the secret {name} but does not (hits: {hits:?})"
        );
    }
}

fn assert_none_found(dir: &Path, needles: &[(String, Vec<u8>)], when: &str) {
    let hits = scan(dir, needles);
    assert!(
        hits.is_empty(),
        "{when}: bytes of the erased profile remain on disk: {hits:?}"
    );
}

/// Ordinary profile `i`: values that never collide with the secrets.
fn ordinary(b: &mut Batch, i: usize, int_base: i64) {
    b.upsert(format!("user-{i:04}"))
        .set("country", ["NL", "BE", "US", "DE"][i % 4])
        .set("n", int_base + i as i64)
        .add("tags", [format!("t{}", i % 7), "common".to_string()]);
}

fn assert_ordinary_intact(db: &Database, int_base: i64) {
    let snap = db.snapshot();
    assert_eq!(snap.table(TABLE).unwrap().row_count(), ORDINARY as u64);
    for i in (0..ORDINARY).step_by(37) {
        let row = db.get(TABLE, &format!("user-{i:04}")).unwrap().unwrap();
        assert_eq!(row.values[2], Value::Int(int_base + i as i64));
    }
}

/// The scenario: the secret profile among ordinary ones, checkpointed,
/// deleted, checkpointed again; the scans before and after.
fn erase(compress_blocks: bool, secret_int: i64, int_base: i64) {
    erase_with(compress_blocks, secret_int, int_base, true);
}

/// `erase`, optionally deleting the profile before any checkpoint has written
/// it to a part (then only the WAL ever held it).
fn erase_with(compress_blocks: bool, secret_int: i64, int_base: i64, checkpoint_first: bool) {
    let scan_int = !compress_blocks;
    let needles = needles(secret_int, scan_int);
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), options(compress_blocks)).unwrap();
    db.create_table(schema()).unwrap();
    for chunk in 0..3 {
        let mut b = Batch::new();
        for i in chunk * ORDINARY / 3..(chunk + 1) * ORDINARY / 3 {
            ordinary(&mut b, i, int_base);
            if i == ORDINARY / 2 {
                // In the middle of the table, not at either end.
                b.upsert(SECRET_ID)
                    .set("country", SECRET_COUNTRY)
                    .set("n", secret_int)
                    .add("tags", [SECRET_TAG, "common"]);
            }
        }
        db.write(TABLE, b).unwrap();
    }
    let row = db.get(TABLE, SECRET_ID).unwrap().expect("secret profile");
    assert_eq!(row.values[0], Value::Text(SECRET_COUNTRY.into()));
    assert_eq!(row.values[2], Value::Int(secret_int));
    // In the WAL before any checkpoint (the scan covers wal/).
    let in_wal = scan(dir.path(), &needles);
    assert!(
        in_wal
            .iter()
            .any(|(n, f)| n == "id" && f.starts_with(dir.path().join("wal"))),
        "{in_wal:?}"
    );

    if checkpoint_first {
        // In the part file after the first checkpoint.
        let stats = db.checkpoint().unwrap();
        assert!(stats.parts_written > 0);
        if compress_blocks {
            // Keys are stored uncompressed: only the id is certain to be readable.
            assert_all_found(dir.path(), &needles[..1], "after the first checkpoint");
        } else {
            assert_all_found(dir.path(), &needles, "after the first checkpoint");
        }
        let hits = scan(dir.path(), &needles);
        assert!(
            hits.iter()
                .any(|(_, f)| f.extension().is_some_and(|e| e == "part")),
            "{hits:?}"
        );
    } else {
        assert_all_found(dir.path(), &needles, "in the WAL");
    }

    // Delete it (alongside an ordinary change) and checkpoint again.
    let mut b = Batch::new();
    b.delete(SECRET_ID);
    b.upsert("user-0000").set("n", int_base);
    db.write(TABLE, b).unwrap();
    assert_eq!(db.get(TABLE, SECRET_ID).unwrap(), None);
    let stats = db.checkpoint().unwrap();
    assert!(stats.parts_written > 0, "{stats:?}");
    assert!(stats.wal_segments_removed > 0, "{stats:?}");
    if checkpoint_first {
        assert!(stats.parts_removed > 0, "{stats:?}");
    }
    assert_none_found(dir.path(), &needles, "after the second checkpoint");
    assert_ordinary_intact(&db, int_base);

    // Still gone after close (a checkpoint on close) and after a reopen.
    db.close().unwrap();
    assert_none_found(dir.path(), &needles, "after close");
    let db = Database::open(dir.path(), options(compress_blocks)).unwrap();
    assert_eq!(db.get(TABLE, SECRET_ID).unwrap(), None);
    assert_ordinary_intact(&db, int_base);
    let snap = db.snapshot();
    let table = snap.table(TABLE).unwrap();
    for shard in table.shards() {
        assert!(shard
            .value_bitmap(0, SECRET_COUNTRY)
            .is_none_or(|b| b.is_empty()));
        assert!(shard
            .value_bitmap(1, SECRET_TAG)
            .is_none_or(|b| b.is_empty()));
    }
    drop(db);
    assert_none_found(dir.path(), &needles, "after reopen");
}

#[test]
fn a_deleted_profile_leaves_no_byte_on_disk_uncompressed() {
    erase(false, SECRET_INT, 1000);
}

#[test]
fn a_profile_deleted_before_any_checkpoint_leaves_no_byte_on_disk() {
    erase_with(false, SECRET_INT, 1000, false);
}

#[test]
fn a_deleted_profile_leaves_no_id_or_text_on_disk_compressed() {
    erase(true, SECRET_INT, 1000);
}

/// The secret INT is the smallest value of its shard: the bit-sliced index
/// takes it as its base, which must not outlive the profile (regression test:
/// before 732f796 the base kept the smallest value ever seen and was written
/// to every later part).
#[test]
fn a_deleted_profile_that_held_the_smallest_int_leaves_no_byte_on_disk() {
    erase(false, -SECRET_INT, 1000);
}
