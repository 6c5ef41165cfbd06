//! Injected I/O faults, for tests of what the engine does when the disk
//! fails (tests/faults.rs, docs/reliability.md). A fault is armed for the
//! files under one directory, so tests running in parallel on other
//! directories are not affected, and fires once, on the next matching
//! operation.
//!
//! Faults: a write that fails (`EIO`), a write that stops half-way and then
//! fails, a full disk (`ENOSPC`), an `fsync` of a file that fails, an
//! `fsync` of a directory that fails, and a read (or an open for reading)
//! that fails.
//!
//! Invariants: with nothing armed, [`check`] is one uncontended lock and a
//! lookup in an empty list; production code never arms a fault.

use parking_lot::Mutex;
use std::path::{Path, PathBuf};

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next write fails with an I/O error and writes nothing.
    WriteError,
    /// The next write writes half its bytes, then fails.
    ShortWrite,
    /// The next write fails with "no space left on device".
    DiskFull,
    /// The next fsync / fdatasync of a file fails.
    SyncError,
    /// The next fsync of the armed directory itself (making new or renamed
    /// entries durable) fails.
    DirSyncError,
    /// The next read of a file, or open of one for reading, fails.
    ReadError,
}

/// What an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Write,
    Sync,
    DirSync,
    Read,
}

static ARMED: Mutex<Vec<(PathBuf, Fault)>> = Mutex::new(Vec::new());

/// Arms `fault` for the next matching operation on a file under `dir`.
#[doc(hidden)]
pub fn arm(dir: &Path, fault: Fault) {
    ARMED.lock().push((dir.to_path_buf(), fault));
}

/// Disarms every fault under `dir`.
#[doc(hidden)]
pub fn clear(dir: &Path) {
    ARMED
        .lock()
        .retain(|(d, _)| !d.starts_with(dir) && !dir.starts_with(d));
}

/// The fault armed for `op` on `path`, taken (it fires once).
pub fn check(path: &Path, op: Op) -> Option<Fault> {
    let mut armed = ARMED.lock();
    if armed.is_empty() {
        return None;
    }
    let at = armed.iter().position(|(dir, f)| {
        // A directory fault is for that directory itself, not those under it.
        let under = match op {
            Op::DirSync => path == dir,
            _ => path.starts_with(dir),
        };
        under
            && match op {
                Op::Write => matches!(f, Fault::WriteError | Fault::ShortWrite | Fault::DiskFull),
                Op::Sync => *f == Fault::SyncError,
                Op::DirSync => *f == Fault::DirSyncError,
                Op::Read => *f == Fault::ReadError,
            }
    })?;
    Some(armed.remove(at).1)
}

/// The error a fault produces.
pub fn error(fault: Fault) -> std::io::Error {
    match fault {
        Fault::DiskFull => std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "no space left on device (injected)",
        ),
        Fault::SyncError => std::io::Error::other("fsync failed (injected)"),
        Fault::DirSyncError => std::io::Error::other("directory fsync failed (injected)"),
        Fault::ReadError => std::io::Error::other("read failed (injected)"),
        Fault::WriteError | Fault::ShortWrite => std::io::Error::other("write failed (injected)"),
    }
}
