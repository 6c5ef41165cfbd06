//! Injected disk faults (src/storage/faults.rs): a write that fails, a
//! short write, a full disk and a failed fsync on the WAL, and failed part
//! and manifest writes during a checkpoint. In every case the failing write
//! is reported as an error and never acknowledged, every acknowledged write
//! survives a reopen, and after a failed WAL write or fsync the database
//! refuses writes (reads go on) until it is reopened — a failed fsync is
//! never retried and believed.

use cohortdb::storage::faults::{arm, clear, Fault};
use cohortdb::{Batch, ColumnType, Database, Durability, Options, TableSchema, Value};
use std::path::Path;

fn options() -> Options {
    Options {
        durability: Durability::Always,
        background: false,
        ..Options::default()
    }
}

fn open(dir: &Path) -> Database {
    Database::open(dir, options()).expect("open")
}

fn setup(dir: &Path) -> Database {
    let db = open(dir);
    db.create_table(TableSchema::new("t", "id").column("v", ColumnType::Int))
        .expect("create");
    write(&db, "acked", 1).expect("first write");
    db
}

fn write(db: &Database, id: &str, v: i64) -> Result<(), String> {
    let mut b = Batch::new();
    b.upsert(id).set("v", v);
    db.write("t", b).map(|_| ()).map_err(|e| e.to_string())
}

fn value(db: &Database, id: &str) -> Option<Value> {
    db.get("t", id)
        .expect("read")
        .map(|row| row.values[0].clone())
}

/// A WAL fault: the write fails, nothing more is written until a reopen,
/// and the reopened database has every acknowledged write.
fn wal_fault(fault: Fault, message: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let db = setup(dir);
    arm(dir, fault);
    let e = write(&db, "failed", 2).expect_err("the write must fail");
    assert!(e.contains(message), "{fault:?}: {e}");
    // Not acknowledged, not visible.
    assert_eq!(value(&db, "failed"), None, "{fault:?}");
    // Read-only from now on: no write is attempted again on a WAL in an
    // unknown state.
    let e = write(&db, "later", 3).expect_err("read-only");
    assert!(e.contains("read-only"), "{fault:?}: {e}");
    assert!(db.failure().is_some());
    assert_eq!(value(&db, "acked"), Some(Value::Int(1)), "reads go on");
    drop(db);
    clear(dir);
    // Reopened: every acknowledged write is there; writes work again.
    let db = open(dir);
    assert_eq!(value(&db, "acked"), Some(Value::Int(1)), "{fault:?}");
    assert_eq!(value(&db, "later"), None);
    if fault != Fault::SyncError {
        // Nothing (or only a torn, cut-off record) reached the file.
        assert_eq!(value(&db, "failed"), None, "{fault:?}");
    }
    write(&db, "after", 4).expect("writable after reopen");
    db.checkpoint().expect("checkpoint");
    drop(db);
    let report = cohortdb::engine::check::check(dir).expect("check");
    assert!(report.torn_tail.is_none(), "{fault:?}: {report:?}");
}

#[test]
fn a_failed_wal_write_is_reported_and_nothing_after_it_is_written() {
    wal_fault(Fault::WriteError, "write failed (injected)");
}

#[test]
fn a_short_wal_write_is_cut_off_at_reopen() {
    wal_fault(Fault::ShortWrite, "write failed (injected)");
}

#[test]
fn a_full_disk_refuses_the_write() {
    wal_fault(Fault::DiskFull, "no space left on device");
}

#[test]
fn a_failed_fsync_is_never_retried_and_believed() {
    wal_fault(Fault::SyncError, "fsync failed (injected)");
}

/// Arms `fault` at each of the two `targets` in turn and checkpoints: the
/// checkpoint fails saying `message`, the database goes on (reads, writes),
/// and nothing acknowledged is lost, at once or after a reopen; a later
/// checkpoint works and `check` is clean.
fn a_failed_checkpoint_loses_nothing(
    dir: &std::path::Path,
    fault: Fault,
    targets: [(std::path::PathBuf, &str); 2],
    message: &str,
) {
    let db = setup(dir);
    for (target, what) in &targets {
        write(&db, what, 5).expect("write");
        arm(target, fault);
        let e = db.checkpoint().expect_err("checkpoint must fail");
        assert!(e.to_string().contains(message), "{what}: {e}");
        clear(target);
        assert_eq!(value(&db, what), Some(Value::Int(5)), "{what}");
        write(&db, &format!("{what}-after"), 6).expect("still writable");
    }
    db.checkpoint().expect("a later checkpoint works");
    drop(db);
    let db = open(dir);
    let mut ids = vec!["acked".to_string()];
    for (_, what) in &targets {
        ids.push(what.to_string());
        ids.push(format!("{what}-after"));
    }
    for id in &ids {
        assert!(value(&db, id).is_some(), "{id} lost");
    }
    db.checkpoint().expect("a checkpoint after reopen works");
    drop(db);
    let report = cohortdb::engine::check::check(dir).expect("check");
    assert!(report.torn_tail.is_none(), "{report:?}");
}

#[test]
fn a_checkpoint_that_cannot_write_a_part_or_the_manifest_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    a_failed_checkpoint_loses_nothing(
        dir,
        Fault::DiskFull,
        [
            (dir.join("tables"), "part"),
            (dir.join("MANIFEST"), "manifest"),
        ],
        "no space left",
    );
}

/// A directory fsync that fails in a checkpoint: after the part files are
/// written (their directory), or after the manifest is renamed (the data
/// directory). The checkpoint reports it and the database goes on; nothing
/// acknowledged is lost, at once or after a reopen, and `check` is clean.
#[test]
fn a_failed_directory_fsync_fails_the_checkpoint_and_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    a_failed_checkpoint_loses_nothing(
        dir,
        Fault::DirSyncError,
        [
            (dir.join("tables"), "parts"),
            (dir.to_path_buf(), "manifest"),
        ],
        "directory fsync failed",
    );
}

/// A directory fsync that fails when a checkpoint starts a new WAL segment:
/// writes made into that segment might not survive a power loss, so, as
/// after a failed WAL fsync, the database refuses writes until reopened.
#[test]
fn a_failed_wal_directory_fsync_makes_the_database_read_only_until_reopened() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let db = setup(dir);
    write(&db, "before", 9).expect("write");
    arm(&dir.join("wal"), Fault::DirSyncError);
    let e = db.checkpoint().expect_err("checkpoint must fail");
    assert!(e.to_string().contains("directory fsync failed"), "{e}");
    let e = write(&db, "refused", 10).expect_err("read-only");
    assert!(e.contains("read-only"), "{e}");
    assert_eq!(value(&db, "before"), Some(Value::Int(9)), "reads go on");
    drop(db);
    clear(dir);
    let db = open(dir);
    assert_eq!(value(&db, "before"), Some(Value::Int(9)));
    assert_eq!(value(&db, "refused"), None);
    write(&db, "after", 11).expect("writable after reopen");
}

/// A read that fails while opening — the manifest, a part file, a WAL
/// segment — fails the open with an error naming the file; nothing is
/// changed, and the next open, with the disk healthy, has every write.
#[test]
fn a_failed_read_at_open_names_the_file_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let db = setup(dir);
    write(&db, "in-part", 12).expect("write");
    db.checkpoint().expect("checkpoint");
    write(&db, "in-wal", 13).expect("write");
    drop(db);
    for (target, names) in [
        (dir.join("MANIFEST"), "MANIFEST"),
        (dir.join("tables"), ".part"),
        (dir.join("wal"), "wal"),
    ] {
        arm(&target, Fault::ReadError);
        let e = match Database::open(dir, options()) {
            Ok(_) => panic!("open must fail when {names} cannot be read"),
            Err(e) => e.to_string(),
        };
        clear(&target);
        assert!(e.contains("read failed (injected)"), "{names}: {e}");
        assert!(e.contains(names), "the error names the file ({names}): {e}");
    }
    let db = open(dir);
    assert_eq!(value(&db, "acked"), Some(Value::Int(1)));
    assert_eq!(value(&db, "in-part"), Some(Value::Int(12)));
    assert_eq!(value(&db, "in-wal"), Some(Value::Int(13)));
}
