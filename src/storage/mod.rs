//! The storage layer: files and bytes. Everything CohortDB keeps on disk is
//! written and read here — the WAL, part files and their sections (keys,
//! bitmaps, bit-sliced indexes, dictionaries, column blocks), and the
//! manifest. Formats are specified in docs/storage.md.
//!
//! This layer knows nothing of tables in motion (that is `engine`); it
//! offers codecs that round-trip exactly and readers that turn any damage
//! into a [`StorageError::Corrupted`] naming the file and offset.

pub mod block;
pub mod bsi;
pub mod codec;
pub mod columnar;
pub mod dictionary;
pub mod error;
pub mod faults;
pub mod fs;
pub mod hash;
pub mod keys;
pub mod manifest;
pub mod part;
pub mod schema;
pub mod wal;

pub use error::{Result, StorageError};
