//! The file layer: the few filesystem operations the engine relies on, each
//! with the fsync discipline that makes it crash-safe, and errors that name
//! the path.
//!
//! Assumptions about the medium (docs/storage.md, "Assumptions"): `rename`
//! within a directory is atomic; data is durable only after `fsync` of the
//! file, and a new or renamed entry only after `fsync` of its directory.

use super::error::{Result, StorageError};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Makes the directory entries of `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    if let Some(fault) = super::faults::check(dir, super::faults::Op::DirSync) {
        return Err(StorageError::io(dir, super::faults::error(fault)));
    }
    let handle = File::open(dir).map_err(|e| StorageError::io(dir, e))?;
    handle.sync_all().map_err(|e| StorageError::io(dir, e))
}

/// Creates `dir` (and parents) if missing.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))
}

/// Writes `bytes` to `path` durably and atomically: a temporary file is
/// written and fsynced, renamed over `path`, and the directory fsynced.
/// A reader sees the old content or the new, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    {
        let mut file = File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
        match super::faults::check(path, super::faults::Op::Write) {
            None => file.write_all(bytes),
            Some(fault) => Err(super::faults::error(fault)),
        }
        .map_err(|e| StorageError::io(&tmp, e))?;
        if let Some(fault) = super::faults::check(path, super::faults::Op::Sync) {
            return Err(StorageError::io(&tmp, super::faults::error(fault)));
        }
        file.sync_all().map_err(|e| StorageError::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| StorageError::io(path, e))?;
    sync_dir(parent(path))
}

/// Creates a new file for writing; fails if it already exists. (An
/// injected write fault under the file's directory fails the creation, as
/// a full disk would: see [`super::faults`].)
pub fn create_new(path: &Path) -> Result<File> {
    if let Some(fault) = super::faults::check(path, super::faults::Op::Write) {
        return Err(StorageError::io(path, super::faults::error(fault)));
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))
}

/// Reads a whole file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    if let Some(fault) = super::faults::check(path, super::faults::Op::Read) {
        return Err(StorageError::io(path, super::faults::error(fault)));
    }
    fs::read(path).map_err(|e| StorageError::io(path, e))
}

/// Opens a file for reading (to map it).
pub fn open_read(path: &Path) -> Result<File> {
    if let Some(fault) = super::faults::check(path, super::faults::Op::Read) {
        return Err(StorageError::io(path, super::faults::error(fault)));
    }
    File::open(path).map_err(|e| StorageError::io(path, e))
}

/// Removes a file; a file already gone is not an error.
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// Removes a directory tree; one already gone is not an error.
pub fn remove_dir_all(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// The entries of `dir` (file names), sorted; a missing directory is empty.
pub fn list(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The temporary sibling used by [`write_atomic`].
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_content_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("MANIFEST");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(read(&path).unwrap(), b"two");
        assert_eq!(list(dir.path()).unwrap(), vec!["MANIFEST".to_string()]);
    }

    #[test]
    fn errors_name_the_path() {
        let err = read(Path::new("/nonexistent/cohort/file")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cohort/file"));
    }
}
