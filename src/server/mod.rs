//! The network server: a tokio listener speaking the native protocol
//! (docs/protocol.md) on top of one shared [`Database`].
//!
//! Model (after mini-redis): one task per connection, capped by a semaphore
//! (a connection over the cap gets Error 3005 and is closed); a shutdown
//! signal is broadcast to every connection, which finishes or cancels its
//! running request and closes; the server waits for all of them, then the
//! caller closes (checkpoints) the database. Statements run on tokio's
//! blocking pool and stream row batches back through a bounded channel, so a
//! slow client slows its own query, not the server.
//!
//! At most `max_running_queries` requests execute at once (a semaphore in
//! front of the blocking pool): the rest wait in line, so the threads and the
//! working memory of queries stay bounded however many clients connect. A
//! client that stops reading its results for longer than the idle timeout is
//! dropped, so it cannot hold a running slot forever.
//!
//! Invariants: no input from a client panics the server or reaches another
//! client; every limit (frame size, statement size, connections, idle time,
//! query time) ends in a protocol Error with its code.

mod auth;
mod session;

pub(crate) use auth::{any_users, lookup as lookup_user};
pub use auth::{load_auth_file, Users};
pub(crate) use session::insert_rows;

use crate::engine::Database;
use crate::protocol::codes;
use crate::protocol::message::Message;
use crate::protocol::DEFAULT_MAX_FRAME_BYTES;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Semaphore};

/// How long shutdown waits for sessions before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Limits and settings of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub max_frame_bytes: u32,
    pub max_statement_bytes: usize,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// Per-query timeout for new sessions (`None`: no limit); sessions may change it.
    pub query_timeout: Option<Duration>,
    /// Rows per RowBatch message.
    pub batch_rows: usize,
    /// Accept connections from other hosts when no users are defined.
    pub allow_remote_without_auth: bool,
    /// Users from `--auth FILE` (users created with CREATE USER are read from the database).
    pub users: Users,
    /// Requests executed at once; the others wait their turn (the wait counts
    /// toward their query timeout). Each running request holds a thread and
    /// its working memory, so this bounds both however many clients connect.
    pub max_running_queries: usize,
}

/// The default for [`ServerConfig::max_running_queries`]: eight per core, so
/// writers waiting on a shared fsync still fill a commit group while the
/// cores stay busy with queries.
pub fn default_running_queries() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 8
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_statement_bytes: 1 << 20,
            max_connections: 256,
            idle_timeout: Duration::from_secs(300),
            query_timeout: None,
            batch_rows: 4096,
            allow_remote_without_auth: false,
            users: Users::default(),
            max_running_queries: default_running_queries(),
        }
    }
}

pub(crate) struct Shared {
    pub db: Arc<Database>,
    pub config: ServerConfig,
    pub sessions: AtomicU64,
    /// One permit per running request ([`ServerConfig::max_running_queries`]).
    pub running: Arc<Semaphore>,
    /// Backend keys of PostgreSQL sessions (CancelRequest).
    pub pg_cancels: crate::pg::Cancels,
}

/// Serves `db` on `listener` until `shutdown` completes; then stops accepting,
/// tells every connection to finish, and waits for them.
pub async fn serve(
    db: Arc<Database>,
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with_pg(db, listener, None, config, shutdown).await
}

/// [`serve`], and the PostgreSQL wire protocol (src/pg/) on `pg` when
/// given: one connection cap, one shutdown, the same sessions' limits.
pub async fn serve_with_pg(
    db: Arc<Database>,
    listener: TcpListener,
    pg: Option<TcpListener>,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        db,
        sessions: AtomicU64::new(1),
        running: Arc::new(Semaphore::new(config.max_running_queries.max(1))),
        config,
        pg_cancels: crate::pg::Cancels::default(),
    });
    let permits = Arc::new(Semaphore::new(shared.config.max_connections));
    let (stop_tx, _) = broadcast::channel::<()>(1);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (accepted, is_pg) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => (accepted, false),
            accepted = async {
                match &pg {
                    Some(pg) => pg.accept().await,
                    None => std::future::pending().await,
                }
            } => (accepted, true),
        };
        let (mut socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(_) => {
                // Out of file descriptors and the like: back off and go on.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if is_pg {
                tasks.spawn(crate::pg::too_many(socket));
                continue;
            }
            let _ = send_and_close(
                &mut socket,
                codes::TOO_MANY_CONNECTIONS,
                "too many connections; try again later",
            )
            .await;
            continue;
        };
        let shared = shared.clone();
        let stop = stop_tx.subscribe();
        tasks.spawn(async move {
            let id = shared.sessions.fetch_add(1, Ordering::Relaxed);
            if is_pg {
                crate::pg::connection(shared, socket, peer, id, stop).await;
            } else {
                session::run(shared, socket, peer, id, stop).await;
            }
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(());
    // Sessions finish or cancel their request and close; one stuck writing to a
    // client that stopped reading is aborted after a grace period (dropping its
    // channel also stops its worker).
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// Whether `peer` may connect without authentication.
pub(crate) fn is_loopback(peer: &SocketAddr) -> bool {
    peer.ip().is_loopback()
}

pub(crate) async fn send_and_close(
    socket: &mut tokio::net::TcpStream,
    code: u16,
    message: &str,
) -> std::io::Result<()> {
    let (kind, payload) = Message::Error {
        code,
        message: message.to_string(),
        line: 0,
        column: 0,
    }
    .encode();
    socket
        .write_all(&crate::protocol::frame::encode_frame(kind, &payload))
        .await?;
    socket.shutdown().await
}
