//! `cohortdb serve`: opens the data directory and serves it over the native
//! protocol until SIGINT or SIGTERM, then stops accepting, lets running
//! requests finish or cancels them, checkpoints and exits 0.
//!
//! With `--pg-listen ADDR` it also speaks the PostgreSQL wire protocol
//! (src/pg/, docs/postgres.md) on the same database, users and limits.
//!
//! Settings come from flags, or from `--config FILE` (TOML with the same
//! names, e.g. `listen = "127.0.0.1:7433"`); a flag overrides the file.

use crate::engine::{Database, Durability, Options};
use crate::server::{load_auth_file, serve_with_pg, ServerConfig};
use clap::Args;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// The data directory (created if missing) [default: ./cohort-data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:7433]
    #[arg(long)]
    pub listen: Option<String>,
    /// Also speak the PostgreSQL wire protocol on this address (e.g. 127.0.0.1:5433); off unless given
    #[arg(long, value_name = "ADDR")]
    pub pg_listen: Option<String>,
    /// always | interval | interval:<ms> | off [default: always]
    #[arg(long)]
    pub durability: Option<String>,
    /// A TOML file with any of these settings (flags override it)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Users file: one `name:role:password` per line (password plain or an argon2 PHC hash)
    #[arg(long)]
    pub auth: Option<PathBuf>,
    /// Accept connections from other hosts even when no users are defined
    #[arg(long)]
    pub insecure_allow_remote: bool,
    /// Maximum concurrent connections [default: 256]
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Requests executed at once; the others wait their turn (bounds threads and query memory) [default: 8 per core]
    #[arg(long)]
    pub max_running_queries: Option<usize>,
    /// Largest protocol frame accepted, in bytes [default: 16777216]
    #[arg(long)]
    pub max_frame_bytes: Option<u32>,
    /// Largest query text accepted, in bytes [default: 1048576]
    #[arg(long)]
    pub max_statement_bytes: Option<usize>,
    /// Close connections idle this long, in seconds [default: 300]
    #[arg(long)]
    pub idle_timeout_secs: Option<u64>,
    /// Default per-query timeout in milliseconds, 0 = none [default: 0]
    #[arg(long)]
    pub query_timeout_ms: Option<u64>,
    /// Memory one query may use for intermediate results (GROUP BY groups), in MiB, 0 = no limit [default: 1024]
    #[arg(long, value_name = "MIB")]
    pub query_memory_limit: Option<u64>,
    /// Start a background checkpoint when the WAL grows past this many bytes (smaller: faster restarts, more checkpoint work) [default: 134217728]
    #[arg(long, value_name = "BYTES")]
    pub checkpoint_wal_bytes: Option<u64>,
}

/// The server's default limit on one query's intermediate results.
const DEFAULT_QUERY_MEMORY_MIB: u64 = 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    pg_listen: Option<String>,
    durability: Option<String>,
    auth: Option<PathBuf>,
    insecure_allow_remote: Option<bool>,
    max_connections: Option<usize>,
    max_running_queries: Option<usize>,
    max_frame_bytes: Option<u32>,
    max_statement_bytes: Option<usize>,
    idle_timeout_secs: Option<u64>,
    query_timeout_ms: Option<u64>,
    query_memory_limit: Option<u64>,
    checkpoint_wal_bytes: Option<u64>,
}

fn load_config(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn run(args: ServeArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cohortdb serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: ServeArgs) -> Result<(), String> {
    let file = match &args.config {
        Some(path) => load_config(path)?,
        None => FileConfig::default(),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(super::DEFAULT_DATA_DIR));
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| crate::client::DEFAULT_ADDR.to_string());
    let pg_listen = args.pg_listen.or(file.pg_listen);
    let durability: Durability = args
        .durability
        .or(file.durability)
        .unwrap_or_else(|| "always".into())
        .parse()?;
    let mut config = ServerConfig {
        allow_remote_without_auth: args.insecure_allow_remote
            || file.insecure_allow_remote.unwrap_or(false),
        ..ServerConfig::default()
    };
    if let Some(n) = args.max_connections.or(file.max_connections) {
        if n == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        config.max_connections = n;
    }
    if let Some(n) = args.max_running_queries.or(file.max_running_queries) {
        if n == 0 {
            return Err("--max-running-queries must be at least 1".into());
        }
        config.max_running_queries = n;
    }
    if let Some(n) = args.max_frame_bytes.or(file.max_frame_bytes) {
        config.max_frame_bytes = n.max(64);
    }
    if let Some(n) = args.max_statement_bytes.or(file.max_statement_bytes) {
        config.max_statement_bytes = n;
    }
    if let Some(s) = args.idle_timeout_secs.or(file.idle_timeout_secs) {
        config.idle_timeout = Duration::from_secs(s.max(1));
    }
    if let Some(ms) = args.query_timeout_ms.or(file.query_timeout_ms) {
        config.query_timeout = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if let Some(path) = args.auth.or(file.auth) {
        config.users = load_auth_file(&path)?;
    }
    let query_memory_mib = args
        .query_memory_limit
        .or(file.query_memory_limit)
        .unwrap_or(DEFAULT_QUERY_MEMORY_MIB);
    let defaults = Options::default().durability(durability);
    let checkpoint_wal_bytes = args
        .checkpoint_wal_bytes
        .or(file.checkpoint_wal_bytes)
        .unwrap_or(defaults.checkpoint_wal_bytes);
    if checkpoint_wal_bytes == 0 {
        return Err("--checkpoint-wal-bytes must be at least 1".into());
    }
    let options = Options {
        query_memory_limit: (query_memory_mib > 0)
            .then(|| query_memory_mib.saturating_mul(1 << 20)),
        checkpoint_wal_bytes,
        ..defaults
    };
    let db = Database::open(&data_dir, options)
        .map_err(|e| format!("cannot open {}: {e}", data_dir.display()))?;
    if let Some((file, offset, reason)) = &db.recovery_report().torn_tail {
        eprintln!(
            "cohortdb: cut a torn WAL tail at {}:{offset} ({reason})",
            file.display()
        );
    }
    let db = Arc::new(db);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let pg = match &pg_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen on {addr} (--pg-listen): {e}"))?,
            ),
            None => None,
        };
        let pg_note = match &pg {
            Some(l) => format!(
                ", PostgreSQL wire on {}",
                l.local_addr().map_err(|e| e.to_string())?
            ),
            None => String::new(),
        };
        let snapshot = db.snapshot();
        let tables = snapshot.tables();
        let profiles: u64 = tables
            .iter()
            .filter_map(|t| snapshot.table(&t.name).ok())
            .map(|t| t.row_count())
            .sum();
        println!(
            "cohortdb: ready on {local} (data dir {}, {} tables, {} profiles, durability {}{pg_note})",
            data_dir.display(),
            tables.len(),
            profiles,
            match durability {
                Durability::Always => "always".to_string(),
                Durability::Interval(d) => format!("interval:{}ms", d.as_millis()),
                Durability::Off => "off".to_string(),
            }
        );
        drop(snapshot);
        serve_with_pg(db.clone(), listener, pg, config, shutdown_signal())
            .await
            .map_err(|e| format!("server error: {e}"))
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    served?;
    println!(
        "cohortdb: shutting down: checkpointing {}",
        data_dir.display()
    );
    match Arc::try_unwrap(db) {
        Ok(db) => db
            .close()
            .map_err(|e| format!("checkpoint at shutdown failed: {e}"))?,
        Err(db) => db
            .checkpoint()
            .map(|_| ())
            .map_err(|e| format!("checkpoint at shutdown failed: {e}"))?,
    }
    println!("cohortdb: stopped cleanly");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
