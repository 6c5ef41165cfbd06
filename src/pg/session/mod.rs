//! One PostgreSQL connection after authentication: the simple query
//! protocol (Query), the extended protocol (Parse, Bind, Describe,
//! Execute, Close, Sync, Flush) with `$n` parameters, COPY in both
//! directions, until Terminate, the client leaving, the idle timeout or
//! shutdown.
//!
//! A reader task turns the socket into a channel of messages (and marks
//! when the client has gone), so the session can wait on a running
//! statement, the statement timeout and shutdown at once. Statements run
//! on the blocking pool ([`super::exec`]) and stream their bytes back.
//!
//! The extended protocol is in [`extended`], COPY in [`copy_io`].
//!
//! Invariants: after an error in the extended protocol, messages are
//! skipped until Sync (as PostgreSQL does); every request ends with
//! ReadyForQuery; nothing the client sends panics the session.

use super::catalog::Context;
use super::codec::{Backend, Frontend, Target};
use super::errors::{self, PgErrorResponse};
use super::exec::{self, Cursor, Job, Sent};
use super::plan::{self, Plan, PlanError};
use super::settings::{Outcome, Settings};
use super::sql::{self, Substituted};
use super::startup::Started;
use super::{types, PgError};
use crate::query::ast::Spanned;
use crate::query::Principal;
use crate::server::Shared;

mod copy_io;
mod extended;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{broadcast, mpsc, watch};

type Incoming = Result<Frontend, PgError>;

/// Reads messages until the connection ends or one is bad (sent last);
/// `gone` becomes true when nothing more can come.
fn spawn_reader(
    read: OwnedReadHalf,
    max: usize,
) -> (mpsc::Receiver<Incoming>, watch::Receiver<bool>) {
    let (tx, rx) = mpsc::channel(64);
    let (gone_tx, gone_rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut r = BufReader::with_capacity(64 << 10, read);
        loop {
            let message = async {
                let tag = r.read_u8().await?;
                let length = r.read_i32().await?;
                let n = super::codec::body_len(length, max)?;
                let mut body = vec![0u8; n];
                r.read_exact(&mut body).await?;
                super::codec::decode_frontend(tag, &body)
            }
            .await;
            let eof = matches!(&message, Err(PgError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof);
            let last = message.is_err();
            if eof {
                break;
            }
            if tx.send(message).await.is_err() || last {
                break;
            }
        }
        let _ = gone_tx.send(true);
    });
    (rx, gone_rx)
}

/// A statement prepared with Parse.
struct Prepared {
    text: String,
    param_types: Vec<u32>,
}

/// A portal made by Bind.
struct Portal {
    /// The text the client sent, and with parameters replaced.
    original: String,
    substituted: Substituted,
    plan: Result<Plan, PgErrorResponse>,
    formats: Vec<i16>,
    cursor: Option<Cursor>,
    done: bool,
}

/// The cancel flag of the running statement, reachable by CancelRequest.
pub type CancelSlot = Arc<parking_lot::Mutex<Option<Arc<AtomicU8>>>>;

struct Session {
    shared: Arc<Shared>,
    principal: Principal,
    settings: Settings,
    database: String,
    process_id: i32,
    out: BufWriter<OwnedWriteHalf>,
    buf: Vec<u8>,
    messages: mpsc::Receiver<Incoming>,
    gone: watch::Receiver<bool>,
    stop: broadcast::Receiver<()>,
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, Portal>,
    skip_until_sync: bool,
    cancel: CancelSlot,
    /// Set when the connection must close after what is buffered.
    closing: bool,
}

/// Serves one authenticated connection.
pub(crate) async fn run(
    shared: Arc<Shared>,
    socket: tokio::net::TcpStream,
    started: Started,
    process_id: i32,
    stop: broadcast::Receiver<()>,
) {
    let secret_key = {
        let mut b = [0u8; 4];
        super::scram::fill_random(&mut b);
        i32::from_be_bytes(b)
    };
    let cancel: CancelSlot = Arc::default();
    shared
        .pg_cancels
        .register(process_id, secret_key, cancel.clone());
    let (read, write) = socket.into_split();
    let (messages, gone) = spawn_reader(read, shared.config.max_frame_bytes as usize);
    let principal = started.principal;
    let mut settings = Settings::new(
        &principal.user,
        principal.role == crate::query::Role::Admin,
        shared.config.query_timeout,
    );
    let mut database = principal.user.clone();
    let mut refused = None;
    for (k, v) in &started.params {
        if k == "database" {
            database = v.clone();
        }
        if let Err(e) = settings.startup(k, v) {
            refused = Some(e);
        }
    }
    let mut s = Session {
        shared: shared.clone(),
        principal,
        settings,
        database,
        process_id,
        out: BufWriter::with_capacity(64 << 10, write),
        buf: Vec::with_capacity(64 << 10),
        messages,
        gone,
        stop,
        statements: HashMap::new(),
        portals: HashMap::new(),
        skip_until_sync: false,
        cancel,
        closing: false,
    };
    if let Some(e) = refused {
        s.push(
            &PgErrorResponse {
                severity: "FATAL",
                ..e
            }
            .to_message(),
        );
        let _ = s.flush().await;
        shared.pg_cancels.unregister(process_id);
        return;
    }
    for (name, value) in s.settings.reported() {
        s.push(&Backend::ParameterStatus { name, value });
    }
    s.push(&Backend::BackendKeyData {
        process_id,
        secret_key,
    });
    s.ready();
    if s.flush().await.is_ok() {
        s.serve().await;
    }
    shared.pg_cancels.unregister(process_id);
}

impl Session {
    fn push(&mut self, m: &Backend) {
        m.encode(&mut self.buf);
    }

    fn error(&mut self, e: &PgErrorResponse) {
        if e.severity == "FATAL" {
            self.closing = true;
        }
        self.push(&e.to_message());
    }

    fn ready(&mut self) {
        let status = if self.settings.in_transaction {
            b'T'
        } else {
            b'I'
        };
        self.push(&Backend::ReadyForQuery(status));
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf).await?;
            self.buf.clear();
        }
        self.out.flush().await
    }

    fn context(&self) -> Context<'_> {
        Context {
            db: &self.shared.db,
            principal: &self.principal,
            settings: &self.settings,
            database: &self.database,
            process_id: self.process_id,
        }
    }

    async fn serve(&mut self) {
        let idle = self.shared.config.idle_timeout;
        loop {
            if self.flush().await.is_err() || self.closing {
                return;
            }
            let next = tokio::select! {
                _ = self.stop.recv() => {
                    self.error(&PgErrorResponse::fatal(errors::SHUTDOWN, "terminating connection because the server is shutting down"));
                    let _ = self.flush().await;
                    return;
                }
                next = tokio::time::timeout(idle, self.messages.recv()) => next,
            };
            let message = match next {
                Err(_) => {
                    self.error(&PgErrorResponse::fatal(
                        "57P05",
                        format!(
                            "terminating connection due to idle timeout ({} s)",
                            idle.as_secs()
                        ),
                    ));
                    let _ = self.flush().await;
                    return;
                }
                Ok(None) => return,
                Ok(Some(Err(e))) => {
                    let code = if matches!(e, PgError::TooLarge { .. }) {
                        "54000"
                    } else {
                        errors::PROTOCOL
                    };
                    self.error(&PgErrorResponse::fatal(
                        code,
                        format!("invalid message: {e}"),
                    ));
                    let _ = self.flush().await;
                    return;
                }
                Ok(Some(Ok(m))) => m,
            };
            if self.skip_until_sync && !matches!(message, Frontend::Sync | Frontend::Terminate) {
                continue;
            }
            match message {
                Frontend::Query(text) => {
                    self.simple_query(&text).await;
                    self.ready();
                }
                Frontend::Parse {
                    name,
                    query,
                    param_types,
                } => self.parse(name, query, param_types),
                Frontend::Bind {
                    portal,
                    statement,
                    param_formats,
                    params,
                    result_formats,
                } => self.bind(portal, &statement, &param_formats, params, result_formats),
                Frontend::Describe { target, name } => self.describe(target, &name).await,
                Frontend::Execute { portal, max_rows } => self.execute(&portal, max_rows).await,
                Frontend::Close { target, name } => {
                    match target {
                        Target::Statement => self.statements.remove(&name).map(|_| ()),
                        Target::Portal => self.portals.remove(&name).map(|_| ()),
                    };
                    self.push(&Backend::CloseComplete);
                }
                Frontend::Sync => {
                    self.skip_until_sync = false;
                    self.portals.remove("");
                    self.ready();
                }
                Frontend::Flush => {}
                Frontend::Terminate => return,
                // Copy messages outside a COPY are ignored, as PostgreSQL does.
                Frontend::CopyData(_) | Frontend::CopyDone | Frontend::CopyFail(_) => {}
                Frontend::Password(_) => {
                    self.error(&PgErrorResponse::fatal(
                        errors::PROTOCOL,
                        "unexpected password message",
                    ));
                }
            }
        }
    }

    /// An error in the extended protocol: skip to Sync.
    fn extended_error(&mut self, e: &PgErrorResponse) {
        self.error(e);
        self.skip_until_sync = true;
    }

    fn plan_error(
        &self,
        e: PlanError,
        whole: &str,
        offset: usize,
        text: &str,
        subst: Option<&Substituted>,
        original: &str,
    ) -> PgErrorResponse {
        match e {
            PlanError::Pg(e) => e,
            PlanError::Query(q) => errors::from_query(
                &q,
                whole,
                offset,
                text,
                |o| subst.map_or(o, |s| s.original_offset(o)),
                original,
            ),
        }
    }

    // ---- simple query --------------------------------------------------

    async fn simple_query(&mut self, text: &str) {
        if text.len() > self.shared.config.max_statement_bytes {
            self.error(&PgErrorResponse::new(
                "54000",
                format!(
                    "the query text is {} bytes; the maximum is {} (split it, or raise --max-statement-bytes)",
                    text.len(),
                    self.shared.config.max_statement_bytes
                ),
            ));
            return;
        }
        let pieces = sql::split(text);
        if pieces.is_empty() {
            self.push(&Backend::EmptyQueryResponse);
            return;
        }
        // Plan every statement first: a syntax error anywhere runs nothing.
        let mut plans = Vec::with_capacity(pieces.len());
        for p in &pieces {
            match plan::plan(p.text, &self.context()) {
                Ok(plan) => plans.push((plan, p.text, p.offset)),
                Err(e) => {
                    let e = self.plan_error(e, text, p.offset, p.text, None, text);
                    self.error(&e);
                    return;
                }
            }
        }
        for (plan, piece, offset) in plans {
            let ok = self
                .run_plan(plan, &[], true, 0, |q, s: &Self| {
                    s.plan_error(PlanError::Query(q), text, offset, piece, None, text)
                })
                .await;
            if !ok || self.closing {
                return;
            }
        }
    }

    /// Runs a plan, sending its results; false if it failed (error sent).
    /// `describe`: send RowDescriptions (simple protocol).
    async fn run_plan(
        &mut self,
        plan: Plan,
        formats: &[i16],
        describe: bool,
        max_rows: u64,
        positioned: impl Fn(crate::query::QueryError, &Self) -> PgErrorResponse,
    ) -> bool {
        match plan {
            Plan::Settings(text) => self.run_settings(&text, describe),
            Plan::Answer(a) => {
                if describe {
                    self.push(&answer_description(&a, formats));
                }
                let n = a.rows.len();
                for row in a.rows {
                    self.push(&Backend::DataRow(
                        row.into_iter().map(|v| v.map(String::into_bytes)).collect(),
                    ));
                }
                self.push(&Backend::CommandComplete(format!("SELECT {n}")));
                true
            }
            Plan::Deallocate { name, tag } => {
                match name {
                    Some(n) => {
                        self.statements.remove(&n);
                    }
                    None => {
                        self.statements.clear();
                        if tag == "DISCARD ALL" {
                            self.portals.clear();
                        }
                    }
                }
                self.push(&Backend::CommandComplete(tag.into()));
                true
            }
            Plan::Copy { copy, query } => self.run_copy(copy, query, &positioned).await,
            Plan::CohortQl { text, statements } => {
                for statement in statements {
                    let mut cursor = match self.execute_statement(&text, statement).await {
                        Ok(c) => c,
                        Err(Failure::Query(q)) => {
                            let e = positioned(q, self);
                            self.error(&e);
                            return false;
                        }
                        Err(Failure::Pg(e)) => {
                            self.error(&e);
                            return false;
                        }
                    };
                    // Every output (OVERLAP has two) in the simple protocol;
                    // the first only in the extended one.
                    loop {
                        let formats = formats.to_vec();
                        let result = self
                            .blocking(move |job| {
                                let r = exec::send_front(
                                    job,
                                    &mut cursor,
                                    &formats,
                                    max_rows,
                                    describe,
                                );
                                (r, cursor)
                            })
                            .await;
                        match result {
                            Some((Ok(Sent::Complete), c)) => {
                                cursor = c;
                                if !describe || cursor.outputs.is_empty() {
                                    break;
                                }
                            }
                            Some((Ok(Sent::Suspended), _)) => break,
                            Some((Ok(Sent::Gone), _)) => {
                                self.closing = true;
                                return false;
                            }
                            Some((Err(e), _)) => {
                                self.error(&e);
                                return false;
                            }
                            None => return false,
                        }
                    }
                }
                true
            }
        }
    }

    fn run_settings(&mut self, text: &str, describe: bool) -> bool {
        let outcome = match self.settings.handle(text) {
            Some(Ok(o)) => o,
            Some(Err(e)) => {
                self.error(&e);
                return false;
            }
            None => {
                self.error(&PgErrorResponse::new(
                    errors::SYNTAX,
                    "unrecognised command",
                ));
                return false;
            }
        };
        match outcome {
            Outcome::Command {
                tag,
                reports,
                notice,
            } => {
                if let Some(n) = notice {
                    self.push(&Backend::NoticeResponse(vec![
                        (b'S', "WARNING".into()),
                        (b'V', "WARNING".into()),
                        (b'C', "25P01".into()),
                        (b'M', n),
                    ]));
                }
                self.push(&Backend::CommandComplete(tag));
                for (name, value) in reports {
                    self.push(&Backend::ParameterStatus { name, value });
                }
            }
            Outcome::Show { name, value } => {
                if describe {
                    self.push(&Backend::RowDescription(vec![types::field(
                        &name,
                        types::TEXT,
                        0,
                    )]));
                }
                self.push(&Backend::DataRow(vec![Some(value.into_bytes())]));
                self.push(&Backend::CommandComplete("SHOW".into()));
            }
            Outcome::ShowAll(all) => {
                if describe {
                    self.push(&Backend::RowDescription(vec![
                        types::field("name", types::TEXT, 0),
                        types::field("setting", types::TEXT, 0),
                        types::field("description", types::TEXT, 0),
                    ]));
                }
                for (k, v) in all {
                    self.push(&Backend::DataRow(vec![
                        Some(k.into_bytes()),
                        Some(v.into_bytes()),
                        Some(Vec::new()),
                    ]));
                }
                self.push(&Backend::CommandComplete("SHOW".into()));
            }
        }
        true
    }

    /// Runs one CohortQL statement on the blocking pool; its outputs.
    async fn execute_statement(
        &mut self,
        text: &str,
        statement: Spanned,
    ) -> Result<Cursor, Failure> {
        let db = self.shared.db.clone();
        let principal = self.principal.clone();
        let text = text.to_string();
        let result = self
            .blocking(move |job| {
                if let Some(e) = job.stopped() {
                    return Err(Failure::Pg(e));
                }
                db.execute_statement_as(&principal, &text, &statement.statement)
                    .map(Cursor::new)
                    .map_err(Failure::Query)
            })
            .await;
        result.unwrap_or_else(|| {
            Err(Failure::Pg(PgErrorResponse::new(
                errors::INTERNAL,
                "the statement failed with an internal error",
            )))
        })
    }

    /// Runs `f` on the blocking pool, writing the chunks it sends, while
    /// watching the statement timeout, the client and shutdown. `None` if
    /// it panicked or the connection must close (error sent).
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Job) -> T + Send + 'static,
    ) -> Option<T> {
        let flag = Arc::new(AtomicU8::new(exec::RUNNING));
        *self.cancel.lock() = Some(flag.clone());
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
        let deadline = self
            .settings
            .timeout
            .map(|t| tokio::time::Instant::now() + t);
        // A running slot, shared with the native protocol
        // (`--max-running-queries`); the wait counts toward the timeout. A
        // statement whose wait ends otherwise runs without one and stops at
        // once on its raised flag.
        let slot = tokio::select! {
            slot = self.shared.running.clone().acquire_owned() => slot.ok(),
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                flag.store(exec::TIMED_OUT, Ordering::SeqCst);
                None
            }
            _ = self.stop.recv() => {
                flag.store(exec::SHUTTING_DOWN, Ordering::SeqCst);
                None
            }
        };
        let shutting_down_early = flag.load(Ordering::SeqCst) == exec::SHUTTING_DOWN;
        let worker = {
            let flag = flag.clone();
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                let mut job = Job::new(flag, tx);
                let out = f(&mut job);
                let rest = std::mem::take(&mut job.buf);
                (out, rest)
            })
        };
        // Our own buffered messages go first.
        let mut ok = self.flush().await.is_ok();
        let mut timed_out = flag.load(Ordering::SeqCst) == exec::TIMED_OUT;
        let mut shutting_down = shutting_down_early;
        let stall_limit = self.shared.config.idle_timeout;
        let raise = |to: u8| {
            let _ = flag.compare_exchange(exec::RUNNING, to, Ordering::SeqCst, Ordering::SeqCst);
        };
        loop {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(bytes) => {
                        // A client that reads nothing for the idle timeout
                        // is gone: it must not hold a running slot.
                        if ok && !matches!(tokio::time::timeout(stall_limit, self.out.write_all(&bytes)).await, Ok(Ok(()))) {
                            ok = false;
                            raise(exec::CANCELLED);
                        }
                    }
                    None => break,
                },
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } }, if !timed_out => {
                    timed_out = true;
                    raise(exec::TIMED_OUT);
                }
                _ = self.stop.recv(), if !shutting_down => {
                    shutting_down = true;
                    raise(exec::SHUTTING_DOWN);
                }
                _ = self.gone.changed() => {
                    if *self.gone.borrow() {
                        raise(exec::CANCELLED);
                    }
                }
            }
        }
        *self.cancel.lock() = None;
        let result = worker.await;
        if !ok || shutting_down {
            self.closing = true;
        }
        match result {
            Ok((out, rest)) => {
                self.buf.extend_from_slice(&rest);
                if shutting_down {
                    self.error(&PgErrorResponse::fatal(
                        errors::SHUTDOWN,
                        "terminating connection because the server is shutting down",
                    ));
                    return None;
                }
                Some(out)
            }
            Err(_) => {
                self.error(&PgErrorResponse::new(errors::INTERNAL, "the statement failed with an internal error (a bug in CohortDB; please report it)"));
                None
            }
        }
    }
}

/// Why a statement failed.
enum Failure {
    Query(crate::query::QueryError),
    Pg(PgErrorResponse),
}

fn answer_description(a: &crate::pg::catalog::Answer, formats: &[i16]) -> Backend {
    let _ = formats; // in-memory answers are always sent as text
    Backend::RowDescription(
        a.fields
            .iter()
            .map(|(name, oid)| types::field(name, *oid, 0))
            .collect(),
    )
}
