//! Fuzzes the CohortQL parser and binder: any bytes, as text, must parse to
//! statements or a positioned error, never a panic, a hang or a stack
//! overflow; parsed statements bind against a fixed catalog the same way.
#![no_main]

use cohortdb::query::{bind, parse};
use cohortdb::{ColumnType, Database, Durability, Options, TableSchema};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Fixture {
    _dir: tempfile::TempDir,
    db: Database,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::open(
            dir.path(),
            Options { durability: Durability::Off, background: false, ..Options::default() },
        )
        .expect("open");
        db.create_table(
            TableSchema::new("profiles", "id")
                .column("country", ColumnType::Text)
                .column("age", ColumnType::Int)
                .column("interests", ColumnType::TextSet)
                .column("last_seen", ColumnType::Timestamp)
                .column("ltv", ColumnType::Float)
                .column("consent", ColumnType::Bool),
        )
        .expect("create");
        Fixture { _dir: dir, db }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(statements) = parse::parse(text) {
        let snapshot = fixture().db.snapshot();
        for s in &statements {
            let _ = bind::bind(text, &snapshot, &s.statement);
        }
    }
});
