//! How a database is opened: durability of acknowledged writes, when to
//! checkpoint, whether column blocks are compressed, and how to hand freed
//! memory back to the allocator's owner.

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

/// The [`Options::release_memory`] that [`Options::default`] gives, set
/// once per process by [`set_default_release_memory`].
static DEFAULT_RELEASE_MEMORY: OnceLock<fn()> = OnceLock::new();

/// Sets the [`Options::release_memory`] of every `Options::default()` made
/// after this call in this process (the first call wins). The `cohortdb`
/// binary, which chooses the allocator, sets mimalloc's collection here.
pub fn set_default_release_memory(release: fn()) {
    let _ = DEFAULT_RELEASE_MEMORY.set(release);
}

/// When an acknowledged write is on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync before every acknowledgement; concurrent writers share fsyncs (group commit).
    #[default]
    Always,
    /// fsync in the background at this interval: a crash loses at most that much.
    Interval(Duration),
    /// Never fsync the WAL (the OS writes it when it likes); checkpoints still fsync.
    Off,
}

/// The interval used by `interval` without a number.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(100);

impl FromStr for Durability {
    type Err = String;
    /// `always`, `off`, `interval` (100 ms) or `interval:<ms>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "always" => Ok(Durability::Always),
            "off" => Ok(Durability::Off),
            "interval" => Ok(Durability::Interval(DEFAULT_SYNC_INTERVAL)),
            other => {
                let ms = other
                    .strip_prefix("interval:")
                    .and_then(|ms| ms.trim_end_matches("ms").parse::<u64>().ok())
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| {
                        format!(
                            "durability {s:?} is not one of always, interval, interval:<ms>, off"
                        )
                    })?;
                Ok(Durability::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

/// Options of [`crate::Database::open`].
#[derive(Debug, Clone)]
pub struct Options {
    pub durability: Durability,
    /// A background checkpoint starts when the WAL grows past this many bytes.
    pub checkpoint_wal_bytes: u64,
    /// Compress column blocks with zstd (turned off only by tests that scan raw bytes).
    pub compress_blocks: bool,
    /// Run checkpoints (and interval fsyncs) on a background thread. Without it,
    /// `interval` durability syncs only at checkpoints and close, and WAL growth
    /// triggers no checkpoint: the embedder calls `checkpoint()`.
    pub background: bool,
    /// Checkpoint when the database is closed or dropped.
    pub checkpoint_on_close: bool,
    /// The most memory one query may build up in intermediate results
    /// (GROUP BY groups), in bytes; `None`: no limit. A query that needs
    /// more fails with an error saying so.
    pub query_memory_limit: Option<u64>,
    /// Lets the program that chose the allocator have it return free memory
    /// to the OS now rather than after its own delay. Called after a
    /// checkpoint has installed its parts (when the in-memory tails and
    /// overlays they replace are freed; after a bulk load about a fifth of
    /// the process's memory): at once after [`crate::Database::checkpoint`],
    /// and after a background checkpoint only once writes have paused for a
    /// tick (1 s, or the `interval` durability's period), so that a bulk
    /// load does not hand back memory it faults in again at once. `None`:
    /// nothing is called.
    pub release_memory: Option<fn()>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Always,
            checkpoint_wal_bytes: 128 << 20,
            compress_blocks: true,
            background: true,
            checkpoint_on_close: true,
            query_memory_limit: None,
            release_memory: DEFAULT_RELEASE_MEMORY.get().copied(),
        }
    }
}

impl Options {
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses() {
        assert_eq!("always".parse(), Ok(Durability::Always));
        assert_eq!("OFF".parse(), Ok(Durability::Off));
        assert_eq!(
            "interval:25".parse(),
            Ok(Durability::Interval(Duration::from_millis(25)))
        );
        assert!("sometimes".parse::<Durability>().is_err());
        assert!("interval:0".parse::<Durability>().is_err());
    }
}
