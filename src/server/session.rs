//! One client connection: handshake and authentication, then requests until
//! Goodbye, an error that closes, idle timeout or shutdown.
//!
//! A reader task turns the socket into a channel of frames, so the session
//! can wait on results, on the client (Cancel) and on timers at once without
//! losing half-read frames. Each Query runs on the blocking pool
//! ([`execute_request`]) and streams its messages back through a bounded
//! channel, gathered in chunks ([`Outbox`]: one wake-up and one write for a
//! small result, row batches in pieces of about 64 KiB); Cancel, the session's timeout and shutdown raise a flag the
//! executor checks between statements and row batches.

use super::auth::{any_users, authenticate};
use super::{is_loopback, Shared};
use crate::engine::Error as EngineError;
use crate::protocol::codes;
use crate::protocol::frame::{encode_frame, parse_header, Frame, FrameError};
use crate::protocol::message::{ColumnInfo, Message, PROTOCOL_VERSION};
use crate::query::{parse, Output, Principal, QueryError, Role};
use crate::storage::columnar::RowsEncoder;
use crate::storage::schema::ColumnType;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};

/// Why a running request must stop.
const RUNNING: u8 = 0;
const CANCELLED: u8 = 1;
const TIMED_OUT: u8 = 2;
const SHUTTING_DOWN: u8 = 3;

type FrameResult = Result<Frame, FrameError>;

async fn read_frame(r: &mut BufReader<OwnedReadHalf>, max: u32) -> FrameResult {
    let mut header = [0u8; 5];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let payload_len = parse_header(length, max)?;
    let mut payload = vec![0u8; payload_len];
    r.read_exact(&mut payload).await?;
    Ok(Frame {
        kind: header[4],
        payload,
    })
}

/// Reads frames until the connection ends or a frame is bad (sent last).
fn spawn_reader(read: OwnedReadHalf, max: u32) -> mpsc::Receiver<FrameResult> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut reader = BufReader::new(read);
        loop {
            let frame = read_frame(&mut reader, max).await;
            let bad = matches!(frame, Err(FrameError::TooLarge { .. } | FrameError::Empty));
            let last = frame.is_err();
            if tx.send(frame).await.is_err() || last {
                if bad {
                    drain(&mut reader).await;
                }
                break;
            }
        }
    });
    rx
}

/// Reads and discards what the client still sends (at most 16 MiB or 1 s), so
/// closing after an Error does not reset the connection before the client
/// has read that Error.
async fn drain(reader: &mut BufReader<OwnedReadHalf>) {
    let mut buf = vec![0u8; 64 << 10];
    let mut left: usize = 16 << 20;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while left > 0 {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

struct Writer {
    out: BufWriter<OwnedWriteHalf>,
    /// How long a write may wait for the client to read (the idle timeout):
    /// past it the client is taken as gone, so it cannot pin a running
    /// request (and its slot) by not reading.
    stall_limit: Duration,
}

fn stalled(limit: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the client read nothing for {} s; closing", limit.as_secs()),
    )
}

impl Writer {
    async fn send(&mut self, m: &Message) -> std::io::Result<()> {
        let (kind, payload) = m.encode();
        let frame = encode_frame(kind, &payload);
        tokio::time::timeout(self.stall_limit, self.out.write_all(&frame))
            .await
            .map_err(|_| stalled(self.stall_limit))?
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        tokio::time::timeout(self.stall_limit, self.out.flush())
            .await
            .map_err(|_| stalled(self.stall_limit))?
    }
    async fn error(&mut self, code: u16, message: impl Into<String>) -> std::io::Result<()> {
        self.send(&Message::Error {
            code,
            message: message.into(),
            line: 0,
            column: 0,
        })
        .await?;
        self.flush().await
    }
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    socket: TcpStream,
    peer: SocketAddr,
    id: u64,
    mut stop: broadcast::Receiver<()>,
) {
    let config = &shared.config;
    let (read, write) = socket.into_split();
    let mut frames = spawn_reader(read, config.max_frame_bytes);
    let mut w = Writer {
        out: BufWriter::with_capacity(1 << 16, write),
        stall_limit: config.idle_timeout,
    };
    // Handshake.
    let first = tokio::select! {
        _ = stop.recv() => {
            let _ = w.error(codes::SHUTTING_DOWN, "the server is shutting down").await;
            return;
        }
        first = tokio::time::timeout(config.idle_timeout, frames.recv()) => first,
    };
    let hello = match first {
        Ok(Some(Ok(frame))) => Message::decode(frame.kind, &frame.payload),
        Ok(Some(Err(FrameError::TooLarge { length, max }))) => {
            let _ = w
                .error(
                    codes::FRAME_TOO_LARGE,
                    format!("frame of {length} bytes exceeds the maximum of {max}"),
                )
                .await;
            return;
        }
        Ok(Some(Err(FrameError::Empty))) => {
            let _ = w.error(codes::PROTOCOL, "bad frame: length 0").await;
            return;
        }
        Ok(_) => return,
        Err(_) => {
            let _ = w
                .error(codes::IDLE_TIMEOUT, "no Hello within the idle timeout")
                .await;
            return;
        }
    };
    let (version, user, password) = match hello {
        Ok(Message::Hello {
            version,
            user,
            password,
            ..
        }) => {
            if version == 0 || version > PROTOCOL_VERSION {
                let _ = w
                    .error(codes::PROTOCOL, format!("protocol version {version} is not supported (this server speaks 1..={PROTOCOL_VERSION})"))
                    .await;
                return;
            }
            (version, user, password)
        }
        Ok(_) => {
            let _ = w
                .error(
                    codes::AUTH_REQUIRED,
                    "the first message must be Hello (authenticate before anything else)",
                )
                .await;
            return;
        }
        Err(e) => {
            let _ = w.error(codes::PROTOCOL, format!("bad Hello: {e}")).await;
            return;
        }
    };
    let user_name = user.clone();
    let role = {
        let shared = shared.clone();
        let task = tokio::task::spawn_blocking(move || {
            if any_users(&shared.config.users, &shared.db) {
                authenticate(&shared.config.users, &shared.db, &user, &password)
                    .ok_or("authentication failed: unknown user or wrong password")
            } else if is_loopback(&peer) || shared.config.allow_remote_without_auth {
                Ok("admin".to_string())
            } else {
                Err("no users are defined, so only connections from this machine are accepted (define users, or start the server with --insecure-allow-remote)")
            }
        });
        match task.await {
            Ok(Ok(role)) => role,
            Ok(Err(reason)) => {
                let _ = w.error(codes::AUTH_FAILED, reason).await;
                return;
            }
            Err(_) => {
                let _ = w
                    .error(
                        codes::INTERNAL,
                        "authentication failed with an internal error",
                    )
                    .await;
                return;
            }
        }
    };
    // A role that is not one of the three (a damaged user row) gets the
    // least: analyst.
    let principal = Principal {
        user: user_name,
        role: Role::parse(&role).unwrap_or(Role::Analyst),
    };
    if w.send(&Message::Welcome {
        version,
        server: format!("cohortdb {}", env!("CARGO_PKG_VERSION")),
        session: id,
        role,
    })
    .await
    .is_err()
        || w.flush().await.is_err()
    {
        return;
    }
    let mut timeout = config.query_timeout;
    loop {
        let next = tokio::select! {
            _ = stop.recv() => {
                let _ = w.error(codes::SHUTTING_DOWN, "the server is shutting down").await;
                return;
            }
            next = tokio::time::timeout(config.idle_timeout, frames.recv()) => next,
        };
        let frame = match next {
            Err(_) => {
                let _ = w
                    .error(
                        codes::IDLE_TIMEOUT,
                        format!(
                            "idle for more than {} s; closing",
                            config.idle_timeout.as_secs()
                        ),
                    )
                    .await;
                return;
            }
            Ok(None) | Ok(Some(Err(FrameError::Closed))) => return,
            Ok(Some(Err(FrameError::TooLarge { length, max }))) => {
                let _ = w
                    .error(
                        codes::FRAME_TOO_LARGE,
                        format!("frame of {length} bytes exceeds the maximum of {max}"),
                    )
                    .await;
                return;
            }
            Ok(Some(Err(e))) => {
                let _ = w.error(codes::PROTOCOL, format!("bad frame: {e}")).await;
                return;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let message = match Message::decode(frame.kind, &frame.payload) {
            Ok(m) => m,
            Err(e) => {
                let _ = w.error(codes::PROTOCOL, format!("bad message: {e}")).await;
                return;
            }
        };
        let ok = match message {
            Message::Query { text } => {
                if text.len() > config.max_statement_bytes {
                    let _ = w
                        .send(&Message::Error {
                            code: codes::STATEMENT_TOO_LARGE,
                            message: format!(
                                "the query text is {} bytes; the maximum is {} (split it, or raise --max-statement-bytes)",
                                text.len(),
                                config.max_statement_bytes
                            ),
                            line: 0,
                            column: 0,
                        })
                        .await;
                    w.send(&Message::Ready).await.is_ok()
                } else {
                    run_request(
                        &shared,
                        &principal,
                        Job::Query(text),
                        timeout,
                        &mut w,
                        &mut frames,
                        &mut stop,
                    )
                    .await
                    .unwrap_or_default()
                }
            }
            Message::InsertRows { .. } if version < 2 => {
                let _ = w
                    .error(
                        codes::PROTOCOL,
                        "InsertRows needs protocol version 2; this session said version 1 in its Hello",
                    )
                    .await;
                return;
            }
            Message::InsertRows { ref coded, .. } if version < 3 && !coded.is_empty() => {
                let _ = w
                    .error(
                        codes::PROTOCOL,
                        &format!("dictionary-coded InsertRows columns need protocol version 3; this session said version {version} in its Hello"),
                    )
                    .await;
                return;
            }
            Message::InsertRows {
                table,
                columns,
                coded,
                rows,
            } => {
                let job = Job::InsertRows {
                    table,
                    columns,
                    coded,
                    rows,
                };
                run_request(
                    &shared,
                    &principal,
                    job,
                    timeout,
                    &mut w,
                    &mut frames,
                    &mut stop,
                )
                .await
                .unwrap_or_default()
            }
            Message::Ping => w.send(&Message::Pong).await.is_ok(),
            Message::Cancel => true,
            Message::SetOption { name, value } => {
                let result = match name.as_str() {
                    "timeout_ms" => match value.parse::<u64>() {
                        Ok(0) => {
                            timeout = None;
                            Ok(())
                        }
                        Ok(ms) => {
                            timeout = Some(Duration::from_millis(ms));
                            Ok(())
                        }
                        Err(_) => Err(format!(
                            "timeout_ms takes a whole number of milliseconds, not {value:?}"
                        )),
                    },
                    other => Err(format!("unknown option {other:?} (known: timeout_ms)")),
                };
                if let Err(message) = result {
                    let _ = w
                        .send(&Message::Error {
                            code: codes::BIND,
                            message,
                            line: 0,
                            column: 0,
                        })
                        .await;
                }
                w.send(&Message::Ready).await.is_ok()
            }
            Message::Goodbye => return,
            other => {
                let _ = w
                    .error(codes::PROTOCOL, format!("a client may not send {other:?}"))
                    .await;
                return;
            }
        };
        if !ok || w.flush().await.is_err() {
            return;
        }
    }
}

/// What a request asks for.
enum Job {
    Query(String),
    InsertRows {
        table: String,
        columns: Vec<ColumnInfo>,
        coded: Vec<bool>,
        rows: Vec<u8>,
    },
}

/// Runs one request; returns whether the connection stays open.
async fn run_request(
    shared: &Arc<Shared>,
    principal: &Principal,
    job: Job,
    timeout: Option<Duration>,
    w: &mut Writer,
    frames: &mut mpsc::Receiver<FrameResult>,
    stop: &mut broadcast::Receiver<()>,
) -> std::io::Result<bool> {
    let flag = Arc::new(AtomicU8::new(RUNNING));
    let (tx, mut rx) = mpsc::channel::<Vec<Message>>(8);
    let db = shared.db.clone();
    let batch_rows = shared.config.batch_rows;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    // Wait for a running slot; the wait counts toward the timeout.
    let slot = tokio::select! {
        slot = shared.running.clone().acquire_owned() => slot.ok(),
        _ = until(deadline) => {
            flag.store(TIMED_OUT, Ordering::SeqCst);
            None
        }
        _ = stop.recv() => {
            flag.store(SHUTTING_DOWN, Ordering::SeqCst);
            None
        }
    };
    let Some(slot) = slot else {
        let keep_open = flag.load(Ordering::SeqCst) == TIMED_OUT;
        if let Some(m) = stopped(&flag) {
            w.send(&m).await?;
        }
        if keep_open {
            w.send(&Message::Ready).await?;
        }
        w.flush().await?;
        return Ok(keep_open);
    };
    let worker = {
        let flag = flag.clone();
        let principal = principal.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            match job {
                Job::Query(text) => execute_request(&db, &principal, &text, &tx, &flag, batch_rows),
                Job::InsertRows {
                    table,
                    columns,
                    coded,
                    rows,
                } => execute_insert(&db, &principal, &table, (columns, coded), rows, &tx),
            }
        })
    };
    let mut keep_open = true;
    let mut client_gone = false;
    let mut timed_out = false;
    'request: loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(messages) => {
                    for m in messages {
                        // Ready ends the request: the client may send its next
                        // message at once, and it must not be mistaken for one
                        // sent mid-request.
                        if matches!(m, Message::Ready) {
                            // After a closing error (shutdown) the Error is the last frame.
                            if keep_open {
                                w.send(&Message::Ready).await?;
                            }
                            break 'request;
                        }
                        w.send(&m).await?;
                    }
                    if rx.is_empty() {
                        w.flush().await?;
                    }
                }
                None => break,
            },
            frame = frames.recv(), if !client_gone => match frame {
                Some(Ok(f)) => match Message::decode(f.kind, &f.payload) {
                    Ok(Message::Cancel) => { let _ = flag.compare_exchange(RUNNING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst); }
                    _ => {
                        // Only Cancel may arrive while a request runs.
                        let _ = flag.compare_exchange(RUNNING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst);
                        w.error(codes::PROTOCOL, "only Cancel may be sent while a request runs (wait for Ready)").await?;
                        return Ok(false);
                    }
                },
                _ => {
                    let _ = flag.compare_exchange(RUNNING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst);
                    client_gone = true;
                    keep_open = false;
                }
            },
            _ = until(deadline), if !timed_out => {
                timed_out = true;
                let _ = flag.compare_exchange(RUNNING, TIMED_OUT, Ordering::SeqCst, Ordering::SeqCst);
            }
            _ = stop.recv() => {
                let _ = flag.compare_exchange(RUNNING, SHUTTING_DOWN, Ordering::SeqCst, Ordering::SeqCst);
                keep_open = false;
            }
        }
    }
    let _ = worker.await;
    w.flush().await?;
    Ok(keep_open)
}

/// Completes at `deadline`, never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Maps a query error to a protocol code, message and position.
fn error_message(e: &QueryError) -> Message {
    let (line, column) = e
        .position()
        .map_or((0, 0), |p| (p.line as u32, p.column as u32));
    let code = match e {
        QueryError::Syntax { .. } => codes::SYNTAX,
        QueryError::Bind { .. } | QueryError::Limit(_) => codes::BIND,
        QueryError::Denied(_) => codes::PERMISSION_DENIED,
        QueryError::Engine(engine) => match engine {
            EngineError::TableNotFound(_)
            | EngineError::TableExists(_)
            | EngineError::ColumnNotFound { .. }
            | EngineError::TypeMismatch { .. }
            | EngineError::InvalidSchema(_) => codes::BIND,
            EngineError::InvalidWrite(_) | EngineError::TableFull(_) => codes::WRITE_REFUSED,
            EngineError::ReadOnly(_) => codes::READ_ONLY,
            EngineError::Storage(s) if s.is_corruption() => codes::DATA_DAMAGED,
            _ => codes::INTERNAL,
        },
    };
    Message::Error {
        code,
        message: e.to_string(),
        line,
        column,
    }
}

fn stopped(flag: &AtomicU8) -> Option<Message> {
    let (code, message) = match flag.load(Ordering::SeqCst) {
        RUNNING => return None,
        CANCELLED => (codes::CANCELLED, "the query was cancelled"),
        TIMED_OUT => (codes::TIMEOUT, "the query ran longer than the session's timeout (SetOption timeout_ms) and was stopped"),
        _ => (codes::SHUTTING_DOWN, "the server is shutting down"),
    };
    Some(Message::Error {
        code,
        message: message.to_string(),
        line: 0,
        column: 0,
    })
}

/// Applies an InsertRows request, sending Complete or Error, then Ready.
/// Runs on the blocking pool. A write is atomic, so Cancel does not stop it.
fn execute_insert(
    db: &crate::engine::Database,
    principal: &Principal,
    table: &str,
    (columns, coded): (Vec<ColumnInfo>, Vec<bool>),
    rows: Vec<u8>,
    tx: &mpsc::Sender<Vec<Message>>,
) {
    let started = Instant::now();
    let message = match insert_rows(db, principal, table, columns, &coded, rows) {
        Ok(affected) => Message::Complete {
            statement: 0,
            tag: "INSERT".into(),
            affected,
            micros: started.elapsed().as_micros() as u64,
        },
        Err(e) => error_message(&e),
    };
    let _ = tx.blocking_send(vec![message, Message::Ready]);
}

/// Bytes of messages a request's worker gathers before handing them to the
/// session in one piece (a RowBatch stream is sent on in pieces this size).
const CHUNK_BYTES: usize = 64 << 10;

/// A request's messages on their way to the session task, in chunks: a small
/// result (Schema, RowBatch, Complete, Ready) crosses the channel once, so the
/// session wakes, writes and flushes once instead of once per message.
///
/// Invariant: messages leave in the order they were pushed; Ready, and
/// [`Outbox::flush`], send everything pending.
struct Outbox<'a> {
    tx: &'a mpsc::Sender<Vec<Message>>,
    pending: Vec<Message>,
    bytes: usize,
}

impl<'a> Outbox<'a> {
    fn new(tx: &'a mpsc::Sender<Vec<Message>>) -> Self {
        Outbox {
            tx,
            pending: Vec::new(),
            bytes: 0,
        }
    }

    /// Queues `m`; false when the session is gone (the request should stop).
    fn push(&mut self, m: Message) -> bool {
        let ready = matches!(m, Message::Ready);
        self.bytes += match &m {
            Message::RowBatch(rows) => rows.len(),
            _ => 64,
        };
        self.pending.push(m);
        if ready || self.bytes >= CHUNK_BYTES {
            return self.flush();
        }
        true
    }

    /// Sends what is pending; false when the session is gone.
    fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        self.bytes = 0;
        self.tx
            .blocking_send(std::mem::take(&mut self.pending))
            .is_ok()
    }
}

pub(crate) fn insert_rows(
    db: &crate::engine::Database,
    principal: &Principal,
    table: &str,
    mut columns: Vec<ColumnInfo>,
    coded: &[bool],
    rows: Vec<u8>,
) -> Result<u64, QueryError> {
    let role = principal.role;
    if !role.writes_pii() {
        return Err(QueryError::Denied(format!(
            "permission denied: role {} may not write (import); writers and admins may",
            role.name()
        )));
    }
    if table.starts_with('_') && !role.sees_system_tables() {
        return Err(EngineError::TableNotFound(table.to_string()).into());
    }
    let schema = db.schema(table)?;
    match columns.first() {
        Some(c) if c.name.eq_ignore_ascii_case(&schema.key_column) && c.ty == ColumnType::Text => {
            columns.remove(0);
        }
        first => {
            return Err(QueryError::Engine(EngineError::InvalidWrite(format!(
                "the first column of InsertRows must be {}'s key column {} (TEXT), not {}",
                schema.name,
                schema.key_column,
                first.map_or("nothing".to_string(), |c| format!("{} ({})", c.name, c.ty))
            ))))
        }
    }
    let named = columns.into_iter().map(|c| (c.name, c.ty)).collect();
    let batch = crate::engine::RowsBatch::from_payload(named, rows)?.with_coded(coded.to_vec())?;
    Ok(db.insert_rows(table, batch)?.upserted)
}

/// Runs every statement of `text`, sending Schema / RowBatch / Complete /
/// Error and finally Ready. Runs on the blocking pool.
fn execute_request(
    db: &crate::engine::Database,
    principal: &Principal,
    text: &str,
    tx: &mpsc::Sender<Vec<Message>>,
    flag: &AtomicU8,
    batch_rows: usize,
) {
    let mut outbox = Outbox::new(tx);
    let statements = match parse::parse(text) {
        Ok(s) => s,
        Err(e) => {
            let _ = outbox.push(error_message(&e)) && outbox.push(Message::Ready);
            return;
        }
    };
    let last = statements.len().saturating_sub(1);
    'statements: for (i, s) in statements.iter().enumerate() {
        if let Some(m) = stopped(flag) {
            outbox.push(m);
            break;
        }
        let started = Instant::now();
        let outputs = match db.execute_statement_as(principal, text, &s.statement) {
            Ok(o) => o,
            Err(e) => {
                outbox.push(error_message(&e));
                break;
            }
        };
        for output in outputs {
            match output {
                Output::Done { tag, affected } => {
                    if !outbox.push(Message::Complete {
                        statement: i as u32,
                        tag: tag.to_string(),
                        affected,
                        micros: started.elapsed().as_micros() as u64,
                    }) {
                        return;
                    }
                }
                Output::Rows(mut rows) => {
                    let columns = rows
                        .columns
                        .iter()
                        .map(|c| ColumnInfo {
                            name: c.name.clone(),
                            ty: c.ty,
                        })
                        .collect();
                    if !outbox.push(Message::Schema {
                        statement: i as u32,
                        columns,
                    }) {
                        return;
                    }
                    let mut total = 0u64;
                    loop {
                        if total > 0 {
                            if let Some(m) = stopped(flag) {
                                outbox.push(m);
                                break 'statements;
                            }
                        }
                        let mut batch = RowsEncoder::new(rows.columns.len());
                        match rows.encode_next(batch_rows, &mut batch) {
                            Ok(0) => break,
                            Ok(n) => {
                                total += n as u64;
                                if !outbox.push(Message::RowBatch(batch.finish())) {
                                    return;
                                }
                            }
                            Err(e) => {
                                outbox.push(error_message(&e));
                                break 'statements;
                            }
                        }
                    }
                    if !outbox.push(Message::Complete {
                        statement: i as u32,
                        tag: "SELECT".into(),
                        affected: total,
                        micros: started.elapsed().as_micros() as u64,
                    }) {
                        return;
                    }
                }
            }
        }
        // A statement's results go out as soon as it is done; the last
        // one's travel with Ready.
        if i < last && !outbox.flush() {
            return;
        }
    }
    outbox.push(Message::Ready);
}
