//! Fuzzes the CohortQL parser and binder: any bytes, as text, must parse to
//! statements or a positioned error, never a panic, a hang or a stack
//! overflow; parsed statements bind against a fixed catalog (a column of
//! every type, an EVENTS and a PII column, consent and min_audience options,
//! a segment) the same way, as each role, and pass or fail the role check.
#![no_main]

use cohortdb::query::{access, bind, parse, Role};
use cohortdb::{ColumnDef, ColumnType, Database, Durability, Options, TableSchema};
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
            Options {
                durability: Durability::Off,
                background: false,
                ..Options::default()
            },
        )
        .expect("open");
        let mut schema = TableSchema::new("profiles", "id")
            .column("country", ColumnType::Text)
            .column("age", ColumnType::Int)
            .column("interests", ColumnType::TextSet)
            .column("last_seen", ColumnType::Timestamp)
            .column("ltv", ColumnType::Float)
            .column("opted_in", ColumnType::Bool)
            .column("purposes", ColumnType::TextSet);
        schema.columns.push(ColumnDef::events("visits"));
        let mut email = ColumnDef::new("email", ColumnType::Text);
        email.pii = true;
        schema.columns.push(email);
        schema
            .options
            .insert("consent_column".into(), "purposes".into());
        schema.options.insert("min_audience".into(), "5".into());
        schema.options.insert("retention_days".into(), "30".into());
        db.create_table(schema).expect("create");
        db.execute("CREATE SEGMENT tea ON profiles AS interests HAS 'tea'")
            .expect("segment");
        Fixture { _dir: dir, db }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(statements) = parse::parse(text) {
        let snapshot = fixture().db.snapshot();
        for s in &statements {
            for role in [Role::Admin, Role::Writer, Role::Analyst] {
                if let Ok(bound) = bind::bind(text, &snapshot, &s.statement, role) {
                    let _ = access::check(role, &bound);
                }
            }
        }
    }
});
