//! The server the bench starts in its own process when no `--addr` is given:
//! the real `serve` loop (crate::server) on 127.0.0.1, port 0, over a data
//! directory opened with durability `always`, so the bench measures the same
//! path end to end as against a separate `cohortdb serve`, only without a
//! second process.
//!
//! Invariants: [`Embedded::start`] returns only once the listener is bound
//! and its address known; [`Embedded::stop`] stops accepting, lets the
//! sessions end, then closes the database (a final checkpoint) and reports
//! the directory's size; a temporary directory ([`DataDir::temporary`]) is
//! removed when its [`DataDir`] is dropped, also after an error.

use crate::engine::{Database, Durability, Options};
use crate::server::{serve, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Why the embedded server failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot create the data directory {0}: {1}")]
    CreateDir(PathBuf, std::io::Error),
    #[error("cannot open the database in {0}: {1}")]
    Open(PathBuf, crate::engine::Error),
    #[error("cannot start the server: {0}")]
    Start(String),
    #[error("the server failed: {0}")]
    Serve(String),
    #[error("checkpoint failed: {0}")]
    Checkpoint(crate::engine::Error),
    #[error("cannot measure the data directory {0}: {1}")]
    Measure(PathBuf, std::io::Error),
}

/// A data directory, removed on drop when it is a temporary one.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    temporary: bool,
}

impl DataDir {
    /// A directory the user named (kept).
    pub fn kept(path: &Path) -> DataDir {
        DataDir {
            path: path.to_path_buf(),
            temporary: false,
        }
    }

    /// A new, empty directory under the system's temp dir (removed on drop).
    pub fn temporary() -> Result<DataDir, EmbeddedError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("cohortdb-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| EmbeddedError::CreateDir(path.clone(), e))?;
        Ok(DataDir {
            path,
            temporary: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_temporary(&self) -> bool {
        self.temporary
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A running embedded server.
pub struct Embedded {
    /// `None` once closed.
    db: Option<Arc<Database>>,
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
    dir: PathBuf,
}

impl Embedded {
    /// Opens `dir` (durability `always`) and serves it on 127.0.0.1, port 0,
    /// accepting statements of up to `max_statement_bytes` (at least the
    /// server's default).
    pub fn start(dir: &Path, max_statement_bytes: usize) -> Result<Embedded, EmbeddedError> {
        std::fs::create_dir_all(dir).map_err(|e| EmbeddedError::CreateDir(dir.into(), e))?;
        let db = Database::open(dir, Options::default().durability(Durability::Always))
            .map_err(|e| EmbeddedError::Open(dir.into(), e))?;
        let db = Arc::new(db);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("bench-server")
            .build()
            .map_err(|e| EmbeddedError::Start(format!("cannot start the async runtime: {e}")))?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, String>>();
        let served = db.clone();
        let mut config = ServerConfig::default();
        config.max_statement_bytes = config.max_statement_bytes.max(max_statement_bytes);
        let thread = std::thread::Builder::new()
            .name("bench-server-main".into())
            .spawn(move || {
                let result = runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("cannot listen on 127.0.0.1: {e}")));
                            return Ok(());
                        }
                    };
                    let local = listener.local_addr().map_err(|e| e.to_string());
                    let _ = ready_tx.send(local.map(|a| a.to_string()));
                    let shutdown = async {
                        let _ = stop_rx.await;
                    };
                    serve(served, listener, config, shutdown)
                        .await
                        .map_err(|e| e.to_string())
                });
                runtime.shutdown_timeout(std::time::Duration::from_secs(5));
                result
            })
            .map_err(|e| EmbeddedError::Start(format!("cannot start the server thread: {e}")))?;
        let addr = match ready_rx.recv() {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => return Err(EmbeddedError::Start(e)),
            Err(_) => {
                return Err(EmbeddedError::Start(
                    "the server thread ended before listening".into(),
                ))
            }
        };
        Ok(Embedded {
            db: Some(db),
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            dir: dir.to_path_buf(),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Checkpoints the database now.
    pub fn checkpoint(&self) -> Result<(), EmbeddedError> {
        match &self.db {
            Some(db) => db
                .checkpoint()
                .map(|_| ())
                .map_err(EmbeddedError::Checkpoint),
            None => Ok(()),
        }
    }

    /// The bytes of every file under the data directory now.
    pub fn disk_bytes(&self) -> Result<u64, EmbeddedError> {
        dir_bytes(&self.dir).map_err(|e| EmbeddedError::Measure(self.dir.clone(), e))
    }

    /// Stops the server, closes the database (checkpointing) and returns the
    /// bytes of every file under the data directory.
    pub fn stop(mut self) -> Result<u64, EmbeddedError> {
        self.shut_down()?;
        dir_bytes(&self.dir).map_err(|e| EmbeddedError::Measure(self.dir.clone(), e))
    }

    fn shut_down(&mut self) -> Result<(), EmbeddedError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(EmbeddedError::Serve(e)),
                Err(_) => return Err(EmbeddedError::Serve("the server thread panicked".into())),
            }
        }
        // The sessions are gone, so this is normally the last reference.
        match self.db.take().map(Arc::try_unwrap) {
            None => Ok(()),
            Some(Ok(db)) => db.close().map_err(EmbeddedError::Checkpoint),
            Some(Err(db)) => db
                .checkpoint()
                .map(|_| ())
                .map_err(EmbeddedError::Checkpoint),
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        // After an error: stop serving and close; the error was reported already.
        let _ = self.shut_down();
    }
}

/// Sum of the sizes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}
