//! Damaged files on disk: what recovery tolerates and what it refuses.
//!
//! - A WAL whose newest segment is cut in the middle of its last record (a
//!   torn write from a crash) opens, recovers exactly the records before the
//!   cut, reports the torn tail once, cuts it off, and reopens cleanly.
//! - A flipped byte inside an earlier WAL record, a part file or the
//!   manifest refuses to open (no panic) with a corruption error naming the
//!   damaged file and the byte offset; `cohortdb::engine::check::check` and
//!   the real `cohortdb check` binary report the same damage (the binary
//!   exits non-zero and names the file) and change nothing on disk.
//! - Sweeps: every single flipped byte and every truncation of a part file is
//!   refused by both `Database::open` and `check`; every flipped byte of a WAL
//!   segment is refused by `check` unless it lies in the newest record, where
//!   it is a torn tail that loses exactly that record.

use cohortdb::engine::check::check;
use cohortdb::{Batch, ColumnType, Database, Options, TableSchema, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const TABLE: &str = "profiles";
/// Profiles per batch.
const K: usize = 3;

fn schema() -> TableSchema {
    TableSchema::new(TABLE, "id")
        .column("country", ColumnType::Text)
        .column("tags", ColumnType::TextSet)
        .column("n", ColumnType::Int)
}

/// No checkpoint ever: every write stays in the WAL.
fn wal_only() -> Options {
    Options {
        background: false,
        checkpoint_on_close: false,
        checkpoint_wal_bytes: u64::MAX,
        ..Options::default()
    }
}

/// Batch `n`: K profiles `b{n}-{k}`, all marked with `n`.
fn batch(n: u64) -> Batch {
    let mut b = Batch::new();
    for k in 0..K {
        b.upsert(format!("b{n}-{k}"))
            .set("country", format!("c{}", n % 4))
            .set("n", n as i64)
            .add("tags", [format!("batch-{n}"), format!("k{k}")]);
    }
    b
}

fn expected_row(n: u64, k: usize) -> Vec<Value> {
    let mut tags = vec![format!("batch-{n}"), format!("k{k}")];
    tags.sort();
    vec![
        Value::Text(format!("c{}", n % 4)),
        Value::Set(tags),
        Value::Int(n as i64),
    ]
}

/// Asserts the database holds exactly batches `1..=last`.
fn assert_exactly_batches(db: &Database, last: u64, written: u64) {
    for n in 1..=written {
        for k in 0..K {
            let id = format!("b{n}-{k}");
            let row = db.get(TABLE, &id).unwrap();
            if n <= last {
                let row = row.unwrap_or_else(|| panic!("{id} of batch {n} is missing"));
                assert_eq!(row.values, expected_row(n, k), "{id}");
            } else {
                assert!(row.is_none(), "{id} of batch {n} (after the cut) exists");
            }
        }
    }
    let count = db.snapshot().table(TABLE).unwrap().row_count();
    assert_eq!(count, last * K as u64);
}

/// Creates a database in `dir` holding batches `1..=batches`, WAL only.
fn wal_database(dir: &Path, batches: u64) {
    let db = Database::open(dir, wal_only()).unwrap();
    db.create_table(schema()).unwrap();
    for n in 1..=batches {
        db.write(TABLE, batch(n)).unwrap();
    }
    drop(db);
}

/// The WAL segments of `dir`, oldest first.
fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

/// Every part file under `dir/tables`.
fn part_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for table in std::fs::read_dir(dir.join("tables")).unwrap() {
        for f in std::fs::read_dir(table.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "part") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// One WAL record as laid out in a segment (docs/storage.md, "WAL"):
/// `[len u32][crc u32][lsn u64][payload]` after a 28-byte segment header.
#[derive(Debug, Clone, Copy)]
struct WalRecord {
    start: usize,
    payload: usize,
    end: usize,
    lsn: u64,
}

const WAL_HEADER: usize = 28;
const RECORD_HEADER: usize = 16;

fn wal_records(bytes: &[u8]) -> Vec<WalRecord> {
    let mut out = Vec::new();
    let mut pos = WAL_HEADER;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let lsn = u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
        let end = pos + RECORD_HEADER + len;
        assert!(end <= bytes.len(), "test WAL parser ran off the end");
        out.push(WalRecord {
            start: pos,
            payload: pos + RECORD_HEADER,
            end,
            lsn,
        });
        pos = end;
    }
    out
}

fn flip(path: &Path, offset: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x5a;
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn open_err(dir: &Path) -> cohortdb::Error {
    match Database::open(dir, wal_only()) {
        Ok(_) => panic!("a damaged database opened"),
        Err(e) => e,
    }
}

/// Runs the real `cohortdb check --data-dir dir`: (success, stdout, stderr).
fn run_check_binary(dir: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cohortdb"))
        .args(["check", "--data-dir"])
        .arg(dir)
        .output()
        .expect("run cohortdb check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn snapshot_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

#[test]
fn a_wal_cut_mid_record_recovers_exactly_the_batches_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let batches = 6;
    wal_database(dir.path(), batches);
    let wal = wal_files(dir.path());
    assert_eq!(wal.len(), 1, "{wal:?}");
    let newest = wal.last().unwrap().clone();
    let bytes = std::fs::read(&newest).unwrap();
    let records = wal_records(&bytes);
    // LSN 1 creates the table; LSN n + 1 writes batch n.
    assert_eq!(records.len() as u64, batches + 1);
    let last = *records.last().unwrap();
    assert_eq!(last.end, bytes.len());
    let cut = last.payload + (last.end - last.payload) / 2;
    std::fs::write(&newest, &bytes[..cut]).unwrap();

    // `check` sees the torn tail without touching it.
    let report = check(dir.path()).unwrap();
    let (file, offset, _) = report
        .torn_tail
        .clone()
        .expect("check reports the torn tail");
    assert_eq!((file, offset), (newest.clone(), last.start as u64));
    assert_eq!(report.last_lsn, batches);
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), cut as u64);

    // The first reopen cuts the tail off and reports it.
    let db = Database::open(dir.path(), wal_only()).unwrap();
    let r = db.recovery_report().clone();
    let (file, offset, reason) = r.torn_tail.clone().expect("the torn tail is reported");
    assert_eq!(file, newest);
    assert_eq!(offset, last.start as u64, "{reason}");
    assert_eq!(
        r.last_lsn,
        batches,
        "the last whole record is batch {}",
        batches - 1
    );
    assert_eq!(r.replayed, batches);
    assert_exactly_batches(&db, batches - 1, batches);
    drop(db);
    assert_eq!(
        std::fs::metadata(&newest).unwrap().len(),
        last.start as u64,
        "the torn tail is cut off on disk"
    );

    // The second reopen replays the same records and finds nothing torn.
    let db = Database::open(dir.path(), wal_only()).unwrap();
    let r2 = db.recovery_report().clone();
    assert_eq!(r2.torn_tail, None);
    assert_eq!(r2.last_lsn, r.last_lsn);
    assert_eq!(r2.replayed, r.replayed);
    assert_exactly_batches(&db, batches - 1, batches);
    // And the database keeps working after the cut: the lost batch can be rewritten.
    db.write(TABLE, batch(batches)).unwrap();
    drop(db);
    let db = Database::open(dir.path(), wal_only()).unwrap();
    assert_eq!(db.recovery_report().torn_tail, None);
    assert_exactly_batches(&db, batches, batches);
    drop(db);
    assert!(check(dir.path()).unwrap().torn_tail.is_none());
}

#[test]
fn a_flipped_byte_in_an_earlier_wal_record_refuses_to_open_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    wal_database(dir.path(), 5);
    let wal = wal_files(dir.path());
    let segment = wal.last().unwrap().clone();
    let bytes = std::fs::read(&segment).unwrap();
    let records = wal_records(&bytes);
    // Damage the record of batch 2 (LSN 3), neither the first nor the last.
    let victim = records[2];
    assert_eq!(victim.lsn, 3);
    let damaged = flip(&segment, victim.payload + (victim.end - victim.payload) / 2);
    let before = snapshot_files(dir.path());

    let err = open_err(dir.path());
    let msg = err.to_string();
    assert!(err.is_corruption(), "{msg}");
    assert!(msg.contains(&segment.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("offset {}", victim.start)),
        "the error names the damaged record's offset {}: {msg}",
        victim.start
    );
    // A refused open must not "repair" anything.
    assert_eq!(std::fs::read(&segment).unwrap(), damaged);

    let check_err = check(dir.path()).expect_err("check must fail too");
    assert!(check_err.is_corruption());
    assert_eq!(check_err.to_string(), msg, "check reports the same damage");

    let (ok, _, stderr) = run_check_binary(dir.path());
    assert!(!ok, "cohortdb check exits non-zero on a damaged WAL");
    assert!(stderr.contains(&file_name(&segment)), "{stderr}");
    assert!(
        stderr.contains(&format!("offset {}", victim.start)),
        "{stderr}"
    );
    assert_eq!(
        snapshot_files(dir.path()),
        before,
        "nothing on disk changed"
    );
}

#[test]
fn a_flipped_byte_in_a_part_file_refuses_to_open_naming_the_part() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    db.create_table(schema()).unwrap();
    for n in 1..=20 {
        db.write(TABLE, batch(n)).unwrap();
    }
    db.checkpoint().unwrap();
    db.close().unwrap();

    // Healthy: exit 0 and a summary of the table.
    let (ok, stdout, stderr) = run_check_binary(dir.path());
    assert!(ok, "healthy check failed: {stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(TABLE))
        .unwrap_or_else(|| panic!("no summary line for {TABLE}: {stdout}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[1], "3", "columns: {line}");
    assert_eq!(fields[2], (20 * K).to_string(), "profiles: {line}");
    let healthy = check(dir.path()).unwrap();
    assert_eq!(healthy.part_files, 1);
    assert_eq!(healthy.tables[0].profiles, 20 * K as u64);

    let parts = part_files(dir.path());
    assert_eq!(parts.len(), 1, "{parts:?}");
    let part = &parts[0];
    let len = std::fs::metadata(part).unwrap().len() as usize;
    flip(part, len / 2);
    let before = snapshot_files(dir.path());

    let err = open_err(dir.path());
    let msg = err.to_string();
    assert!(err.is_corruption(), "{msg}");
    assert!(msg.contains(&part.display().to_string()), "{msg}");
    assert!(msg.contains("offset"), "{msg}");

    let check_err = check(dir.path()).expect_err("check must fail too");
    assert!(check_err.is_corruption());
    assert_eq!(check_err.to_string(), msg, "check reports the same damage");

    let (ok, _, stderr) = run_check_binary(dir.path());
    assert!(!ok, "cohortdb check exits non-zero on a damaged part");
    assert!(stderr.contains(&file_name(part)), "{stderr}");
    assert_eq!(
        snapshot_files(dir.path()),
        before,
        "nothing on disk changed"
    );
}

#[test]
fn a_flipped_byte_in_the_manifest_refuses_to_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    db.create_table(schema()).unwrap();
    db.write(TABLE, batch(1)).unwrap();
    db.close().unwrap();
    let manifest = dir.path().join("MANIFEST");
    let len = std::fs::metadata(&manifest).unwrap().len() as usize;
    flip(&manifest, len / 2);

    let err = open_err(dir.path());
    let msg = err.to_string();
    assert!(err.is_corruption(), "{msg}");
    assert!(msg.contains(&manifest.display().to_string()), "{msg}");
    assert_eq!(check(dir.path()).unwrap_err().to_string(), msg);
    let (ok, _, stderr) = run_check_binary(dir.path());
    assert!(!ok);
    assert!(stderr.contains("MANIFEST"), "{stderr}");
}

/// Outcome of opening a damaged directory, with panics caught so that the
/// sweep can report every bad offset at once.
fn try_open(dir: &Path) -> Result<cohortdb::Error, String> {
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Database::open(dir, wal_only())
    }));
    match opened {
        Err(_) => Err("open panicked".into()),
        Ok(Ok(db)) => {
            drop(db);
            Err("opened".into())
        }
        Ok(Err(e)) => Ok(e),
    }
}

fn try_check(dir: &Path) -> Result<cohortdb::Error, String> {
    match std::panic::catch_unwind(|| check(dir)) {
        Err(_) => Err("check panicked".into()),
        Ok(Ok(_)) => Err("check passed".into()),
        Ok(Err(e)) => Ok(e),
    }
}

/// The complaint (if any) about an error that should report damage to `part`.
fn bad_report(e: &cohortdb::Error, part: &Path) -> Option<String> {
    let msg = e.to_string();
    if !e.is_corruption() || !msg.contains(&part.display().to_string()) {
        Some(msg)
    } else {
        None
    }
}

#[test]
fn every_flipped_byte_and_every_truncation_of_a_part_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    db.create_table(schema()).unwrap();
    for n in 1..=6 {
        db.write(TABLE, batch(n)).unwrap();
    }
    let mut b = Batch::new();
    b.delete("b2-1");
    db.write(TABLE, b).unwrap();
    db.checkpoint().unwrap();
    db.close().unwrap();
    let parts = part_files(dir.path());
    assert_eq!(parts.len(), 1);
    let part = parts[0].clone();
    let good = std::fs::read(&part).unwrap();
    // Every byte of a small part is swept; a large one every Nth byte.
    let step = good.len().div_ceil(4096).max(1);
    let mut failures = Vec::new();
    let mut tried = 0;
    for i in (0..good.len()).step_by(step) {
        for mask in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[i] ^= mask;
            std::fs::write(&part, &bad).unwrap();
            tried += 1;
            match try_open(dir.path()) {
                Ok(e) => {
                    if let Some(m) = bad_report(&e, &part) {
                        failures.push(format!("flip {mask:#x} at {i}: open: {m}"));
                    }
                }
                Err(what) => failures.push(format!("flip {mask:#x} at {i}: {what}")),
            }
            match try_check(dir.path()) {
                Ok(e) => {
                    if let Some(m) = bad_report(&e, &part) {
                        failures.push(format!("flip {mask:#x} at {i}: check: {m}"));
                    }
                }
                Err(what) => failures.push(format!("flip {mask:#x} at {i}: {what}")),
            }
        }
    }
    for cut in (0..good.len()).step_by(step) {
        std::fs::write(&part, &good[..cut]).unwrap();
        tried += 1;
        match try_open(dir.path()) {
            Ok(e) => {
                if let Some(m) = bad_report(&e, &part) {
                    failures.push(format!("cut at {cut}: open: {m}"));
                }
            }
            Err(what) => failures.push(format!("cut at {cut}: {what}")),
        }
        if let Err(what) = try_check(dir.path()) {
            failures.push(format!("cut at {cut}: {what}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {tried} damaged parts ({} bytes) were not refused cleanly:\n{}",
        failures.len(),
        good.len(),
        failures.join("\n")
    );
    // The sweep itself is sound: the undamaged part opens with every profile.
    std::fs::write(&part, &good).unwrap();
    let db = Database::open(dir.path(), wal_only()).unwrap();
    assert_eq!(
        db.snapshot().table(TABLE).unwrap().row_count(),
        6 * K as u64 - 1
    );
    assert_eq!(db.get(TABLE, "b2-1").unwrap(), None);
    assert_eq!(
        db.get(TABLE, "b5-2").unwrap().unwrap().values,
        expected_row(5, 2)
    );
}

#[test]
fn every_flipped_wal_byte_is_refused_unless_it_tears_the_newest_record() {
    let dir = tempfile::tempdir().unwrap();
    let batches = 4;
    wal_database(dir.path(), batches);
    let segment = wal_files(dir.path()).pop().unwrap();
    let good = std::fs::read(&segment).unwrap();
    let records = wal_records(&good);
    let last = *records.last().unwrap();
    let mut failures = Vec::new();
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        std::fs::write(&segment, &bad).unwrap();
        let outcome = std::panic::catch_unwind(|| check(dir.path()));
        match outcome {
            Err(_) => failures.push(format!("flip at {i}: check panicked")),
            Ok(Ok(report)) if i >= last.start => {
                let torn = report.torn_tail.as_ref().map(|(f, o, _)| (f.clone(), *o));
                if torn != Some((segment.clone(), last.start as u64))
                    || report.last_lsn != last.lsn - 1
                {
                    failures.push(format!(
                        "flip at {i} (newest record): torn tail {torn:?}, last LSN {}",
                        report.last_lsn
                    ));
                }
            }
            Ok(Ok(_)) => failures.push(format!("flip at {i}: check passed")),
            Ok(Err(e)) if i >= last.start => {
                failures.push(format!("flip at {i} (newest record): refused: {e}"))
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                if !e.is_corruption() || !msg.contains(&segment.display().to_string()) {
                    failures.push(format!("flip at {i}: {msg}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} flips misjudged:\n{}",
        failures.len(),
        good.len(),
        failures.join("\n")
    );
    // And `Database::open` agrees on one flip in the newest record: it loses
    // exactly that batch.
    let mut bad = good.clone();
    bad[last.start + 9] ^= 0x01; // inside the LSN, covered by the CRC
    std::fs::write(&segment, &bad).unwrap();
    let db = Database::open(dir.path(), wal_only()).unwrap();
    assert!(db.recovery_report().torn_tail.is_some());
    assert_exactly_batches(&db, batches - 1, batches);
}

#[test]
fn a_newest_segment_cut_inside_its_header_is_a_torn_tail() {
    // A crash while a new segment was being created leaves a file shorter than
    // its header: nothing was ever written to it, so it is dropped.
    let dir = tempfile::tempdir().unwrap();
    let batches = 3;
    wal_database(dir.path(), batches);
    let wal_dir = dir.path().join("wal");
    let next_lsn = batches + 2;
    let writer = cohortdb::storage::wal::WalWriter::create(&wal_dir, next_lsn).unwrap();
    let fresh = writer.path().to_path_buf();
    drop(writer);
    let header = std::fs::read(&fresh).unwrap();
    assert_eq!(header.len(), WAL_HEADER);
    for cut in [0usize, 1, 10, WAL_HEADER - 1] {
        std::fs::write(&fresh, &header[..cut]).unwrap();
        let report = check(dir.path()).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!(
            report.torn_tail.as_ref().map(|(f, o, _)| (f.clone(), *o)),
            Some((fresh.clone(), 0)),
            "cut {cut}"
        );
        let db =
            Database::open(dir.path(), wal_only()).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert!(db.recovery_report().torn_tail.is_some(), "cut {cut}");
        assert_eq!(db.recovery_report().last_lsn, batches + 1);
        assert_exactly_batches(&db, batches, batches);
        drop(db);
        let db = Database::open(dir.path(), wal_only()).unwrap();
        assert_eq!(db.recovery_report().torn_tail, None, "cut {cut}");
        assert_exactly_batches(&db, batches, batches);
        drop(db);
    }
}
