//! The native protocol's client side (docs/protocol.md), blocking, over
//! `std::net::TcpStream`: connect and authenticate, send a query, and read
//! its results as a stream of events (schema, row batches, completions,
//! errors) so that millions of rows never have to sit in memory at once.
//! The shell, `import` and `bench` use it; it is also the crate's Rust client.

use crate::engine::Value;
use crate::protocol::message::{ColumnInfo, Message, PROTOCOL_VERSION};
use crate::protocol::{decode_rows, read_frame, write_frame, FrameError, DEFAULT_MAX_FRAME_BYTES};
use std::io::{BufReader, BufWriter, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The default server address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7433";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server answered with an Error message.
    #[error("{message}")]
    Server {
        code: u16,
        message: String,
        /// 1-based line and column in the query text, when the error has them.
        line: u32,
        column: u32,
    },
}

impl ClientError {
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Closed => ClientError::Closed,
            FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                ClientError::Closed
            }
            FrameError::Io(e) => ClientError::Io(e),
            other => ClientError::Protocol(other.to_string()),
        }
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub client_name: String,
    pub user: String,
    pub password: String,
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            client_name: format!("cohortdb-client {}", env!("CARGO_PKG_VERSION")),
            user: String::new(),
            password: String::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// One event of a query's results.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Statement `statement` returns rows with these columns.
    Schema {
        statement: u32,
        columns: Vec<ColumnInfo>,
    },
    /// The next rows of the current statement.
    Rows(Vec<Vec<Value>>),
    /// Statement `statement` finished.
    Complete {
        statement: u32,
        tag: String,
        affected: u64,
        micros: u64,
    },
}

/// The collected result of one statement.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatementResult {
    /// Index of the statement in the request (OVERLAP without MATRIX gives
    /// two results with the same index).
    pub statement: u32,
    pub columns: Vec<ColumnInfo>,
    pub rows: Vec<Vec<Value>>,
    pub tag: String,
    pub affected: u64,
    /// Server time from the statement's start to this result's Complete.
    pub micros: u64,
}

/// A connection to a CohortDB server.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    max_frame: u32,
    pub server: String,
    pub session: u64,
    pub role: String,
    /// The protocol version the server's Welcome agreed to.
    pub version: u16,
}

/// Sends Cancel for a running query from another thread.
pub struct Canceller {
    stream: TcpStream,
}

impl Canceller {
    pub fn cancel(&self) -> Result<(), ClientError> {
        let (kind, payload) = Message::Cancel.encode();
        let mut s = &self.stream;
        write_frame(&mut s, kind, &payload)?;
        s.flush()?;
        Ok(())
    }
}

impl Client {
    /// Connects to `addr` and authenticates.
    pub fn connect(addr: &str, options: &ConnectOptions) -> Result<Client, ClientError> {
        let connect_err = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let sockets: Vec<_> = addr.to_socket_addrs().map_err(connect_err)?.collect();
        let mut last = None;
        let mut stream = None;
        for s in sockets {
            match TcpStream::connect_timeout(&s, options.connect_timeout) {
                Ok(t) => {
                    stream = Some(t);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            connect_err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
        })?;
        stream.set_nodelay(true)?;
        let mut client = Client {
            reader: BufReader::with_capacity(1 << 16, stream.try_clone()?),
            writer: BufWriter::with_capacity(1 << 16, stream),
            max_frame: DEFAULT_MAX_FRAME_BYTES.max(256 << 20),
            server: String::new(),
            session: 0,
            role: String::new(),
            version: 0,
        };
        client.send(&Message::Hello {
            version: PROTOCOL_VERSION,
            client: options.client_name.clone(),
            user: options.user.clone(),
            password: options.password.clone(),
        })?;
        match client.receive()? {
            Message::Welcome {
                version,
                server,
                session,
                role,
            } => {
                client.version = version;
                client.server = server;
                client.session = session;
                client.role = role;
                Ok(client)
            }
            other => Err(ClientError::Protocol(format!(
                "expected Welcome, got {other:?}"
            ))),
        }
    }

    /// A handle that can cancel this connection's running query from another thread.
    pub fn canceller(&self) -> Result<Canceller, ClientError> {
        Ok(Canceller {
            stream: self.writer.get_ref().try_clone()?,
        })
    }

    fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        let (kind, payload) = message.encode();
        write_frame(&mut self.writer, kind, &payload)?;
        self.writer.flush()?;
        Ok(())
    }

    /// The next message; an Error message becomes `ClientError::Server`.
    fn receive(&mut self) -> Result<Message, ClientError> {
        let frame = read_frame(&mut self.reader, self.max_frame)?;
        match Message::decode(frame.kind, &frame.payload).map_err(ClientError::Protocol)? {
            Message::Error {
                code,
                message,
                line,
                column,
            } => Err(ClientError::Server {
                code,
                message,
                line,
                column,
            }),
            m => Ok(m),
        }
    }

    /// Sends a query and returns its results as a stream of events. Read it to
    /// the end (or drop it, which reads the rest) before the next query.
    pub fn query(&mut self, text: &str) -> Result<QueryStream<'_>, ClientError> {
        self.send(&Message::Query {
            text: text.to_string(),
        })?;
        Ok(QueryStream {
            client: self,
            columns: Vec::new(),
            done: false,
            error: None,
        })
    }

    /// Runs a query and collects every statement's result. The first failing
    /// statement's error is returned (statements before it took effect).
    pub fn execute(&mut self, text: &str) -> Result<Vec<StatementResult>, ClientError> {
        let mut results: Vec<StatementResult> = Vec::new();
        let mut current = StatementResult::default();
        let mut stream = self.query(text)?;
        for event in stream.by_ref() {
            match event? {
                Event::Schema { columns, .. } => current.columns = columns,
                Event::Rows(rows) => current.rows.extend(rows),
                Event::Complete {
                    statement,
                    tag,
                    affected,
                    micros,
                } => {
                    current.statement = statement;
                    current.tag = tag;
                    current.affected = affected;
                    current.micros = micros;
                    results.push(std::mem::take(&mut current));
                }
            }
        }
        match stream.take_error() {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }

    pub fn ping(&mut self) -> Result<(), ClientError> {
        self.send(&Message::Ping)?;
        match self.receive()? {
            Message::Pong => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "expected Pong, got {other:?}"
            ))),
        }
    }

    /// Sets a session option (e.g. `timeout_ms`).
    pub fn set_option(&mut self, name: &str, value: &str) -> Result<(), ClientError> {
        self.send(&Message::SetOption {
            name: name.into(),
            value: value.into(),
        })?;
        match self.receive() {
            Ok(Message::Ready) => Ok(()),
            Ok(other) => Err(unexpected("Ready", &other)),
            Err(e) => Err(self.after_error(e)),
        }
    }

    /// Upserts rows into `table` column-wise (the bulk-load message
    /// InsertRows): `columns` are the table's key column (TEXT) first, then
    /// the columns to set; `rows` is their RowBatch encoding (see
    /// [`crate::storage::columnar::RowsEncoder`]). Returns the rows upserted.
    /// The batch is atomic: on error none of it was applied.
    pub fn insert_rows(
        &mut self,
        table: &str,
        columns: &[ColumnInfo],
        rows: Vec<u8>,
    ) -> Result<u64, ClientError> {
        self.send_insert_rows(table, columns, rows)?;
        self.insert_rows_result()
    }

    /// The first half of [`Client::insert_rows`]: sends the batch and
    /// returns without waiting, so the caller can prepare its next batch
    /// while the server applies this one. The next call on this client
    /// must be [`Client::insert_rows_result`] (one request at a time).
    pub fn send_insert_rows(
        &mut self,
        table: &str,
        columns: &[ColumnInfo],
        rows: Vec<u8>,
    ) -> Result<(), ClientError> {
        self.send_coded_insert_rows(table, columns, &[], rows)
    }

    /// [`Client::send_insert_rows`] where payload column `c` is
    /// dictionary-coded when `coded[c]` (built with
    /// [`crate::storage::columnar::RowsEncoder::dictionary`]); needs a
    /// server that speaks protocol version 3.
    pub fn send_coded_insert_rows(
        &mut self,
        table: &str,
        columns: &[ColumnInfo],
        coded: &[bool],
        rows: Vec<u8>,
    ) -> Result<(), ClientError> {
        if coded.iter().any(|c| *c) && self.version < 3 {
            return Err(ClientError::Protocol(format!(
                "dictionary-coded columns need protocol version 3; the server speaks {}",
                self.version
            )));
        }
        self.send(&Message::InsertRows {
            table: table.to_string(),
            columns: columns.to_vec(),
            coded: coded.to_vec(),
            rows,
        })
    }

    /// The second half of [`Client::insert_rows`]: waits for the answer to
    /// the batch [`Client::send_insert_rows`] sent; returns the rows upserted.
    pub fn insert_rows_result(&mut self) -> Result<u64, ClientError> {
        let affected = match self.receive() {
            Ok(Message::Complete { affected, .. }) => affected,
            Ok(other) => return Err(unexpected("Complete", &other)),
            Err(e) => return Err(self.after_error(e)),
        };
        match self.receive()? {
            Message::Ready => Ok(affected),
            other => Err(unexpected("Ready", &other)),
        }
    }

    /// After an Error the server sends Ready unless the error closes the
    /// connection; reads it so the next request starts clean.
    fn after_error(&mut self, e: ClientError) -> ClientError {
        let closes = e
            .code()
            .is_none_or(crate::protocol::codes::closes_connection);
        if !closes {
            match self.receive() {
                Ok(Message::Ready) => {}
                Ok(other) => return unexpected("Ready", &other),
                Err(read) => return read,
            }
        }
        e
    }

    /// Says goodbye and closes the connection.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.send(&Message::Goodbye)
    }
}

fn unexpected(wanted: &str, got: &Message) -> ClientError {
    ClientError::Protocol(format!("expected {wanted}, got {got:?}"))
}

/// The events of one query, ending at the server's Ready.
pub struct QueryStream<'c> {
    client: &'c mut Client,
    columns: Vec<ColumnInfo>,
    done: bool,
    /// A statement error seen before Ready (reported after the stream ends).
    error: Option<ClientError>,
}

impl QueryStream<'_> {
    /// The error that ended the query, if any (after the stream is exhausted).
    pub fn take_error(&mut self) -> Option<ClientError> {
        self.error.take()
    }

    fn next_event(&mut self) -> Option<Result<Event, ClientError>> {
        loop {
            if self.done {
                return None;
            }
            let message = match self.client.receive() {
                Ok(m) => m,
                Err(e @ ClientError::Server { .. }) => {
                    // A statement failed; Ready follows unless the connection closes.
                    let closes = e
                        .code()
                        .is_some_and(crate::protocol::codes::closes_connection);
                    if closes {
                        self.done = true;
                        return Some(Err(e));
                    }
                    self.error = Some(e);
                    continue;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            return Some(Ok(match message {
                Message::Schema { statement, columns } => {
                    self.columns = columns.clone();
                    Event::Schema { statement, columns }
                }
                Message::RowBatch(payload) => {
                    let types: Vec<_> = self.columns.iter().map(|c| c.ty).collect();
                    match decode_rows(&types, &payload) {
                        Ok(rows) => Event::Rows(rows),
                        Err(e) => {
                            self.done = true;
                            return Some(Err(ClientError::Protocol(e)));
                        }
                    }
                }
                Message::Complete {
                    statement,
                    tag,
                    affected,
                    micros,
                } => Event::Complete {
                    statement,
                    tag,
                    affected,
                    micros,
                },
                Message::Ready => {
                    self.done = true;
                    return None;
                }
                other => {
                    self.done = true;
                    return Some(Err(ClientError::Protocol(format!(
                        "unexpected {other:?} in a result"
                    ))));
                }
            }));
        }
    }
}

impl Iterator for QueryStream<'_> {
    type Item = Result<Event, ClientError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event()
    }
}

impl Drop for QueryStream<'_> {
    fn drop(&mut self) {
        // Drain to Ready so the connection is ready for the next query.
        while self.next_event().is_some() {}
    }
}
