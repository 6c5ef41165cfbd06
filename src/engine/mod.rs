//! The engine layer: a database directory in motion — tables and shards in
//! memory, the write path (WAL, group commit, durability), read snapshots,
//! checkpoints and recovery. [`Database`] is the embedded API.
//!
//! Layout of a data directory (docs/storage.md): `LOCK` (held while open),
//! `MANIFEST`, `wal/<lsn>.wal`, `tables/<table id>/s<shard>-g<generation>.part`.
//!
//! Concurrency: one published state (`RwLock<Arc<DbState>>`) that readers
//! clone in O(1) as a snapshot; one committer at a time (group commit) that
//! logs, syncs and applies under the WAL lock and publishes with
//! copy-on-write; one checkpoint at a time, on a background thread or on
//! demand.

mod base;
mod cell;
pub mod check;
mod checkpoint;
mod column;
mod commit;
pub mod derived;
mod error;
pub mod events;
mod keyfilter;
mod options;
mod record;
mod recovery;
mod rows;
mod shard;
mod snapshot;
mod state;
mod table;
mod tail;
mod value;

pub use checkpoint::CheckpointStats;
pub use error::{Error, Result};
pub use options::{set_default_release_memory, Durability, Options};
pub use record::{MAX_ID_BYTES, MAX_TEXT_BYTES};
pub use recovery::RecoveryReport;
pub use rows::RowsBatch;
pub use shard::{SHARD_BITS, SHARD_ROWS};
pub use snapshot::{ShardSnapshot, Snapshot, TableSnapshot};
pub use state::WriteSummary;
pub use value::{write_cell, Batch, Change, Row, Upsert, Value, WriteOp};

use crate::storage::fs;
use crate::storage::schema::TableSchema;
use crate::storage::wal::WalWriter;
use commit::{Queue, Request};
use crossbeam::channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex, RwLock};
use state::DbState;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub(crate) const WAL_DIR: &str = "wal";
pub(crate) const TABLES_DIR: &str = "tables";
const LOCK_FILE: &str = "LOCK";

pub(crate) struct WalState {
    writer: WalWriter,
    last_lsn: u64,
    since_checkpoint: u64,
    unsynced: bool,
    /// The tables as of `last_lsn`: what new requests are checked against.
    /// Kept here, not read from the state, so that checking a group never
    /// waits for the group before it to finish applying.
    catalog: commit::Catalog,
}

/// How far the WAL's records have been applied to the published state.
/// Groups apply in LSN order: a group waits until `lsn` is the last LSN
/// before its own.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    lsn: u64,
}

#[derive(Debug, Default)]
pub(crate) struct CheckpointInfo {
    generation: u64,
    lsn: u64,
}

enum Background {
    Checkpoint,
    Stop,
}

pub(crate) struct Inner {
    dir: PathBuf,
    options: Options,
    state: RwLock<Arc<DbState>>,
    queue: Mutex<Queue>,
    queue_ready: Condvar,
    wal: Mutex<WalState>,
    applied: Mutex<Applied>,
    applied_changed: Condvar,
    checkpoint_info: Mutex<CheckpointInfo>,
    /// Set when a WAL write or fsync failed: the database is read-only from then on.
    failure: Mutex<Option<String>>,
    /// The last error of a background checkpoint, for operators.
    background_error: Mutex<Option<String>>,
    signal: Sender<Background>,
    /// Per-shard bitmaps the query layer derives and reuses.
    derived: Arc<derived::DerivedBitmaps>,
    _lock: File,
}

impl Inner {
    fn check_writable(&self) -> Result<()> {
        match self.failure.lock().clone() {
            Some(reason) => Err(Error::ReadOnly(reason)),
            None => Ok(()),
        }
    }

    fn request_checkpoint(&self) {
        let _ = self.signal.try_send(Background::Checkpoint);
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// Lets the allocator return free memory to the OS
    /// ([`Options::release_memory`]): after a checkpoint has installed its
    /// parts and freed the in-memory tails they replace.
    fn release_memory(&self) {
        if let Some(release) = self.options.release_memory {
            release();
        }
    }

    fn sync_if_needed(&self) {
        let mut wal = self.wal.lock();
        if wal.unsynced {
            match wal.writer.sync() {
                Ok(()) => wal.unsynced = false,
                Err(e) => *self.failure.lock() = Some(e.to_string()),
            }
        }
    }
}

/// An open CohortDB database (a directory). Cheap to share across threads
/// (`&Database` is `Sync`); closed by [`Database::close`] or on drop.
pub struct Database {
    inner: Arc<Inner>,
    recovery: RecoveryReport,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Database {
    /// Opens (or creates) the database in `dir`, recovering from the WAL.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Database> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| crate::storage::StorageError::io(&lock_path, e))?;
        if !acquire_lock(&lock) {
            return Err(Error::Locked { dir });
        }
        let (manifest, created) = recovery::load_manifest(&dir, true)?;
        fs::create_dir_all(&dir.join(WAL_DIR))?;
        fs::create_dir_all(&dir.join(TABLES_DIR))?;
        // The new directories' entries must be durable before any WAL record is acknowledged.
        fs::sync_dir(&dir)?;
        let mut state = recovery::load_state(&dir, &manifest)?;
        let replayed = recovery::replay(&dir, &mut state, true)?;
        let mut report = replayed.report;
        report.created = created;
        if let Some(empty) = replayed.empty_last_segment {
            fs::remove_file(&empty)?;
        }
        let writer = WalWriter::create(&dir.join(WAL_DIR), state.last_lsn + 1)?;
        let (signal, receiver) = crossbeam::channel::bounded(1);
        let catalog = commit::Catalog::of(&state);
        let inner = Arc::new(Inner {
            options: options.clone(),
            state: RwLock::new(Arc::new(state)),
            queue: Mutex::new(Queue::default()),
            queue_ready: Condvar::new(),
            wal: Mutex::new(WalState {
                writer,
                last_lsn: report.last_lsn,
                since_checkpoint: 0,
                unsynced: false,
                catalog,
            }),
            applied: Mutex::new(Applied {
                lsn: report.last_lsn,
            }),
            applied_changed: Condvar::new(),
            checkpoint_info: Mutex::new(CheckpointInfo {
                generation: manifest.generation,
                lsn: manifest.checkpoint_lsn,
            }),
            failure: Mutex::new(None),
            background_error: Mutex::new(None),
            signal,
            derived: Arc::default(),
            _lock: lock,
            dir,
        });
        inner.remove_obsolete_files(&manifest)?;
        let worker = if options.background {
            let inner = inner.clone();
            Some(
                std::thread::Builder::new()
                    .name("cohortdb-background".into())
                    .spawn(move || background(inner, receiver))
                    .map_err(|e| {
                        Error::Internal(format!("cannot start the background thread: {e}"))
                    })?,
            )
        } else {
            fill_key_filters(&inner);
            None
        };
        Ok(Database {
            inner,
            recovery: report,
            worker,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// What recovery did when the database was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Creates a table.
    pub fn create_table(&self, schema: TableSchema) -> Result<()> {
        self.inner.submit(Request::CreateTable(schema)).map(|_| ())
    }

    /// Drops a table; its files leave the directory at the next checkpoint.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        self.inner
            .submit(Request::DropTable(name.to_string()))
            .map(|_| ())
    }

    /// Schemas of every table.
    pub fn tables(&self) -> Vec<TableSchema> {
        self.snapshot().tables().into_iter().cloned().collect()
    }

    /// The schema of `table`.
    pub fn schema(&self, table: &str) -> Result<TableSchema> {
        Ok(self.snapshot().table(table)?.schema().clone())
    }

    /// Applies `batch` to `table` atomically; returns once it is durable
    /// (per the durability setting) and visible to new snapshots.
    pub fn write(&self, table: &str, batch: Batch) -> Result<WriteSummary> {
        self.inner.submit(Request::Write {
            table: table.to_string(),
            batch,
        })
    }

    /// Upserts the profiles of a column-wise `batch` into `table` atomically
    /// (the bulk-load path; see [`RowsBatch`] for its semantics); returns
    /// once it is durable and visible, like [`Database::write`].
    pub fn insert_rows(&self, table: &str, batch: RowsBatch) -> Result<WriteSummary> {
        self.inner.submit(Request::Rows {
            table: table.to_string(),
            batch,
        })
    }

    /// Profile `id` of `table`, if it exists.
    pub fn get(&self, table: &str, id: &str) -> Result<Option<Row>> {
        self.snapshot().table(table)?.get(id)
    }

    /// A consistent read view including every acknowledged write.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.inner.state.read().clone(), self.inner.derived.clone())
    }

    /// Checkpoints now (waiting for one already running).
    pub fn checkpoint(&self) -> Result<CheckpointStats> {
        let stats = self.inner.checkpoint()?;
        if stats.lsn != 0 {
            self.inner.release_memory();
        }
        Ok(stats)
    }

    /// The memory one query may use for intermediate results, if limited.
    pub fn query_memory_limit(&self) -> Option<u64> {
        self.inner.options.query_memory_limit
    }

    /// The last error of a background checkpoint, if any.
    pub fn background_error(&self) -> Option<String> {
        self.inner.background_error.lock().clone()
    }

    /// Why the database refuses writes, if it does.
    pub fn failure(&self) -> Option<String> {
        self.inner.failure.lock().clone()
    }

    /// Stops background work, checkpoints (unless disabled or failed) and closes.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(worker) = self.worker.take() {
            let _ = self.inner.signal.send(Background::Stop);
            let _ = worker.join();
        }
        if self.inner.failure.lock().is_some() {
            return Ok(());
        }
        self.inner.sync_if_needed();
        if self.inner.options.checkpoint_on_close {
            self.inner.checkpoint()?;
        }
        Ok(())
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Decodes a WAL record payload; for the fuzz targets only. True if it decodes.
#[doc(hidden)]
pub fn decode_record_for_fuzzing(payload: &[u8]) -> bool {
    record::Record::decode(payload, 0).is_ok()
}

/// Opens and loads a part file as shard 0 of table 1 with one column of every
/// type; for the fuzz targets only.
#[doc(hidden)]
pub fn load_part_for_fuzzing(path: &Path) -> Result<()> {
    use crate::storage::schema::ColumnType::*;
    let types = [Text, TextSet, Int, Timestamp, Float, Bool];
    let base = Arc::new(base::BasePart::open(path, 1, 0, &types)?);
    let shard = shard::ShardState::load(base.clone(), &types)?;
    base.verify_blocks()?;
    for row in shard.live.iter() {
        shard.image(row)?;
    }
    Ok(())
}

/// Takes the data directory's LOCK. A lock can stay held for a moment
/// after its holder closed it: a child process another thread is starting
/// holds a copy of every descriptor between fork and exec. So a refused
/// lock is tried again for up to about 100 ms before the directory counts
/// as in use.
fn acquire_lock(lock: &File) -> bool {
    for attempt in 0..10 {
        if lock.try_lock().is_ok() {
            return true;
        }
        if attempt < 9 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    false
}

/// Builds every table's key filter (see `KeyIndex::fill_filter`).
fn fill_key_filters(inner: &Inner) {
    let state = inner.state.read().clone();
    for table in state.tables.values() {
        table.keys.fill_filter();
    }
}

fn background(inner: Arc<Inner>, receiver: Receiver<Background>) {
    // First the key filters, off the start-up path; `close` joins this thread,
    // so no part is read after the database is closed.
    fill_key_filters(&inner);
    let tick = match inner.options.durability {
        Durability::Interval(d) => d,
        _ => Duration::from_secs(1),
    };
    // Free memory goes back to the OS once writes have paused for a tick
    // after a checkpoint, not after every checkpoint: during a bulk load
    // the next batches would at once fault it back in, and the kernel's
    // zeroing of those pages was a fifth of the load's CPU
    // (docs/benchmarks.md).
    let mut release_pending = false;
    let mut lsn_at_last_tick = u64::MAX;
    loop {
        match receiver.recv_timeout(tick) {
            Ok(Background::Checkpoint) => match inner.checkpoint() {
                Ok(stats) => release_pending |= stats.lsn != 0,
                Err(e) => *inner.background_error.lock() = Some(e.to_string()),
            },
            Ok(Background::Stop) | Err(crossbeam::channel::RecvTimeoutError::Disconnected) => break,
            Err(crossbeam::channel::RecvTimeoutError::Timeout) => {
                let lsn = inner.wal.lock().last_lsn;
                if release_pending && lsn == lsn_at_last_tick {
                    inner.release_memory();
                    release_pending = false;
                }
                lsn_at_last_tick = lsn;
            }
        }
        if matches!(inner.options.durability, Durability::Interval(_)) {
            inner.sync_if_needed();
        }
    }
}
