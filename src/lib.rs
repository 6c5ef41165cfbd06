//! CohortDB: an audience database — exact segment counts, overlaps and
//! activation over bitmap indexes of pseudonymous profiles.
//!
//! The crate is layered (docs/ARCHITECTURE.md); each layer knows only the
//! ones below it:
//!
//! - [`storage`]: files and bytes — WAL, part files, bitmaps, bit-sliced
//!   indexes, dictionaries, column blocks, the manifest.
//! - [`engine`]: tables and shards in motion — the write path, snapshots,
//!   checkpoints, recovery. [`Database`] is the embedded API.
//! - `cli`: the `cohortdb` binary's subcommands.
//!
//! ```no_run
//! use cohortdb::{Batch, ColumnType, Database, Options, TableSchema};
//! let db = Database::open("./cohort-data", Options::default())?;
//! db.create_table(
//!     TableSchema::new("profiles", "id")
//!         .column("country", ColumnType::Text)
//!         .column("interests", ColumnType::TextSet),
//! )?;
//! let mut batch = Batch::new();
//! batch.upsert("u1").set("country", "NL").add("interests", ["baking", "tea"]);
//! db.write("profiles", batch)?;
//! let snapshot = db.snapshot();
//! let profiles = snapshot.table("profiles")?;
//! assert_eq!(profiles.row_count(), 1);
//! # Ok::<(), cohortdb::Error>(())
//! ```

pub mod bench;
pub mod cli;
pub mod client;
pub mod engine;
pub mod parallel;
pub mod pg;
pub mod protocol;
pub mod query;
pub mod server;
pub mod storage;

pub use engine::{
    Batch, Change, CheckpointStats, Database, Durability, Error, Options, Result, Row, RowsBatch,
    Snapshot, Value, WriteSummary,
};
pub use storage::schema::{ColumnDef, ColumnType, TableSchema};
