//! The PostgreSQL frontend/backend protocol v3 messages CohortDB speaks, as
//! bytes: decoding what clients send and encoding what the server sends
//! (and the reverse of both, for tests and the fuzz target).
//!
//! Framing: the first packet of a connection has no type byte (an `i32`
//! length that counts itself, then an `i32` code: StartupMessage 3.0,
//! SSLRequest, GSSENCRequest or CancelRequest); every later message is a
//! type byte, an `i32` length that counts itself but not the type, and a
//! body. All integers are big-endian; strings are NUL-terminated UTF-8.
//!
//! Invariants: decoding never panics and never allocates more than the
//! bytes it was given justify; a length below 4 or above the caller's
//! maximum is an error before anything is read; a body must decode exactly
//! (no bytes left over).

use super::PgError;

/// Protocol version 3.0 in a StartupMessage.
pub const PROTOCOL_3_0: i32 = 196_608;
/// The code of an SSLRequest.
pub const SSL_REQUEST: i32 = 80_877_103;
/// The code of a GSSENCRequest.
pub const GSSENC_REQUEST: i32 = 80_877_104;
/// The code of a CancelRequest.
pub const CANCEL_REQUEST: i32 = 80_877_102;
/// Largest startup packet accepted (PostgreSQL's own limit is 10000).
pub const MAX_STARTUP_BYTES: usize = 10_000;

/// The first packet of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// Asks for TLS; answered with the single byte `N` (not supported).
    SslRequest,
    /// Asks for GSSAPI encryption; answered with `N`.
    GssEncRequest,
    /// Cancels the running query of another connection.
    Cancel { process_id: i32, secret_key: i32 },
    /// Protocol 3.0 start with its parameters (`user`, `database`, ...).
    Start { params: Vec<(String, String)> },
    /// A protocol version CohortDB does not speak (the rest of the packet
    /// is not read: it is refused whatever it holds).
    Unsupported { version: i32 },
}

/// `Describe` and `Close` name a prepared statement or a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Statement,
    Portal,
}

impl Target {
    fn byte(self) -> u8 {
        match self {
            Target::Statement => b'S',
            Target::Portal => b'P',
        }
    }
    fn from_byte(b: u8) -> Result<Target, PgError> {
        match b {
            b'S' => Ok(Target::Statement),
            b'P' => Ok(Target::Portal),
            other => Err(PgError::Malformed(format!(
                "expected S or P as the Describe/Close target, got byte {other}"
            ))),
        }
    }
}

/// A message from the client after startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frontend {
    Query(String),
    Parse {
        name: String,
        query: String,
        param_types: Vec<u32>,
    },
    Bind {
        portal: String,
        statement: String,
        param_formats: Vec<i16>,
        params: Vec<Option<Vec<u8>>>,
        result_formats: Vec<i16>,
    },
    Describe {
        target: Target,
        name: String,
    },
    Execute {
        portal: String,
        max_rows: i32,
    },
    Close {
        target: Target,
        name: String,
    },
    Sync,
    Flush,
    Terminate,
    /// PasswordMessage, SASLInitialResponse or SASLResponse: which one
    /// depends on what the server asked for ([`password_text`],
    /// [`SaslInitial::decode`]).
    Password(Vec<u8>),
    CopyData(Vec<u8>),
    CopyDone,
    CopyFail(String),
}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub table_oid: u32,
    pub column: i16,
    pub type_oid: u32,
    pub type_size: i16,
    pub type_modifier: i32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    AuthenticationOk,
    AuthenticationCleartextPassword,
    AuthenticationSasl(Vec<String>),
    AuthenticationSaslContinue(Vec<u8>),
    AuthenticationSaslFinal(Vec<u8>),
    ParameterStatus {
        name: String,
        value: String,
    },
    BackendKeyData {
        process_id: i32,
        secret_key: i32,
    },
    /// `I` idle, `T` in a transaction block, `E` in a failed one.
    ReadyForQuery(u8),
    RowDescription(Vec<Field>),
    DataRow(Vec<Option<Vec<u8>>>),
    CommandComplete(String),
    EmptyQueryResponse,
    /// Fields as (code byte, text): `S` severity, `C` SQLSTATE, `M` message, `P` position...
    ErrorResponse(Vec<(u8, String)>),
    NoticeResponse(Vec<(u8, String)>),
    ParseComplete,
    BindComplete,
    CloseComplete,
    NoData,
    ParameterDescription(Vec<u32>),
    PortalSuspended,
    CopyInResponse {
        format: u8,
        columns: Vec<i16>,
    },
    CopyOutResponse {
        format: u8,
        columns: Vec<i16>,
    },
    CopyData(Vec<u8>),
    CopyDone,
}

/// SASLInitialResponse: the mechanism the client chose and its first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslInitial {
    pub mechanism: String,
    pub data: Vec<u8>,
}

// ---- reading --------------------------------------------------------------

/// Reads big-endian integers and NUL-terminated strings from a body.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PgError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(PgError::Truncated)?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, PgError> {
        Ok(self.take(1)?[0])
    }

    pub fn i16(&mut self) -> Result<i16, PgError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Result<i32, PgError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u32(&mut self) -> Result<u32, PgError> {
        Ok(self.i32()? as u32)
    }

    /// A NUL-terminated UTF-8 string.
    pub fn cstr(&mut self) -> Result<String, PgError> {
        let rest = &self.bytes[self.at..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(PgError::Truncated)?;
        let s = std::str::from_utf8(&rest[..nul]).map_err(|_| PgError::InvalidUtf8)?;
        self.at += nul + 1;
        Ok(s.to_string())
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<Vec<u8>, PgError> {
        Ok(self.take(n)?.to_vec())
    }

    /// Everything left.
    pub fn rest(&mut self) -> Vec<u8> {
        let s = self.bytes[self.at..].to_vec();
        self.at = self.bytes.len();
        s
    }

    /// A count of items that follow, each at least `min_item_bytes` long: a
    /// negative count or one the remaining bytes cannot hold is an error (so
    /// no count makes us allocate more than we were sent).
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, PgError> {
        let n = self.i16()?;
        let n =
            usize::try_from(n).map_err(|_| PgError::Malformed(format!("negative count {n}")))?;
        if n.saturating_mul(min_item_bytes) > self.bytes.len() - self.at {
            return Err(PgError::Truncated);
        }
        Ok(n)
    }

    /// A length-prefixed value that may be NULL: length -1 is NULL, any
    /// other negative length is an error naming `what`.
    fn nullable(&mut self, what: &str) -> Result<Option<Vec<u8>>, PgError> {
        match self.i32()? {
            -1 => Ok(None),
            len if len >= 0 => Ok(Some(self.bytes(len as usize)?)),
            len => Err(PgError::Malformed(format!(
                "{what} length {len} is negative and not -1 (NULL)"
            ))),
        }
    }

    /// A counted list (see [`Reader::count`]) of items read by `item`.
    fn list<T>(
        &mut self,
        min_item_bytes: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, PgError>,
    ) -> Result<Vec<T>, PgError> {
        let n = self.count(min_item_bytes)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(item(self)?);
        }
        Ok(items)
    }

    pub fn finish(&self) -> Result<(), PgError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(PgError::Malformed(format!(
                "{} bytes left over at the end of the message",
                self.bytes.len() - self.at
            )))
        }
    }
}

/// The body length of a message whose length field is `length` (which
/// counts itself): refused below 4 or above `max`.
pub fn body_len(length: i32, max: usize) -> Result<usize, PgError> {
    let total = usize::try_from(length)
        .ok()
        .filter(|&l| l >= 4)
        .ok_or(PgError::BadLength(length))?;
    if total - 4 > max {
        return Err(PgError::TooLarge {
            length: total - 4,
            max,
        });
    }
    Ok(total - 4)
}

/// Decodes a startup packet body (after its length).
pub fn decode_startup(body: &[u8]) -> Result<Startup, PgError> {
    let mut r = Reader::new(body);
    let code = r.i32()?;
    let startup = match code {
        SSL_REQUEST => Startup::SslRequest,
        GSSENC_REQUEST => Startup::GssEncRequest,
        CANCEL_REQUEST => Startup::Cancel {
            process_id: r.i32()?,
            secret_key: r.i32()?,
        },
        PROTOCOL_3_0 => {
            let mut params = Vec::new();
            loop {
                let name = r.cstr()?;
                if name.is_empty() {
                    break;
                }
                let value = r.cstr()?;
                params.push((name, value));
            }
            Startup::Start { params }
        }
        version => return Ok(Startup::Unsupported { version }),
    };
    r.finish()?;
    Ok(startup)
}

/// Decodes the body of a message of type `tag`.
pub fn decode_frontend(tag: u8, body: &[u8]) -> Result<Frontend, PgError> {
    let mut r = Reader::new(body);
    let m = match tag {
        b'Q' => Frontend::Query(r.cstr()?),
        b'P' => {
            let name = r.cstr()?;
            let query = r.cstr()?;
            let param_types = r.list(4, |r| r.u32())?;
            Frontend::Parse {
                name,
                query,
                param_types,
            }
        }
        b'B' => {
            let portal = r.cstr()?;
            let statement = r.cstr()?;
            let param_formats = r.list(2, |r| r.i16())?;
            let params = r.list(4, |r| r.nullable("parameter"))?;
            let result_formats = r.list(2, |r| r.i16())?;
            Frontend::Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            }
        }
        b'D' => Frontend::Describe {
            target: Target::from_byte(r.u8()?)?,
            name: r.cstr()?,
        },
        b'E' => Frontend::Execute {
            portal: r.cstr()?,
            max_rows: r.i32()?,
        },
        b'C' => Frontend::Close {
            target: Target::from_byte(r.u8()?)?,
            name: r.cstr()?,
        },
        b'S' => Frontend::Sync,
        b'H' => Frontend::Flush,
        b'X' => Frontend::Terminate,
        b'p' => Frontend::Password(r.rest()),
        b'd' => Frontend::CopyData(r.rest()),
        b'c' => Frontend::CopyDone,
        b'f' => Frontend::CopyFail(r.cstr()?),
        other => return Err(PgError::UnknownMessage(other)),
    };
    r.finish()?;
    Ok(m)
}

/// The password of a PasswordMessage.
pub fn password_text(body: &[u8]) -> Result<String, PgError> {
    let mut r = Reader::new(body);
    let s = r.cstr()?;
    r.finish()?;
    Ok(s)
}

impl SaslInitial {
    pub fn decode(body: &[u8]) -> Result<SaslInitial, PgError> {
        let mut r = Reader::new(body);
        let mechanism = r.cstr()?;
        // -1: no initial response.
        let data = r.nullable("initial response")?.unwrap_or_default();
        r.finish()?;
        Ok(SaslInitial { mechanism, data })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put_cstr(&mut b, &self.mechanism);
        b.extend_from_slice(&(self.data.len() as i32).to_be_bytes());
        b.extend_from_slice(&self.data);
        b
    }
}

// ---- writing --------------------------------------------------------------

/// A list as the protocol counts it: an Int16 count, then each item by `put`.
fn put_list<T>(b: &mut Vec<u8>, items: &[T], mut put: impl FnMut(&mut Vec<u8>, &T)) {
    b.extend_from_slice(&(items.len() as i16).to_be_bytes());
    for item in items {
        put(b, item);
    }
}

fn put_cstr(b: &mut Vec<u8>, s: &str) {
    // A NUL inside would end the string early for the peer: drop it.
    b.extend(s.bytes().filter(|&c| c != 0));
    b.push(0);
}

/// Appends a message of type `tag` whose body `body` writes.
pub fn put_message(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = (out.len() - at) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Writes a DataRow straight into a buffer, field by field, without
/// building a row of values first (the hot path of streaming results).
pub struct DataRowWriter<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> DataRowWriter<'a> {
    pub fn begin(out: &'a mut Vec<u8>, fields: usize) -> DataRowWriter<'a> {
        out.push(b'D');
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(fields as i16).to_be_bytes());
        DataRowWriter { out, start }
    }

    pub fn null(&mut self) {
        self.out.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// A field whose bytes `write` appends.
    pub fn field(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        write(self.out);
        let len = (self.out.len() - at - 4) as i32;
        self.out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    pub fn finish(self) {
        let len = (self.out.len() - self.start) as i32;
        self.out[self.start..self.start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

impl Backend {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let auth = |out: &mut Vec<u8>, code: i32, extra: &[u8]| {
            put_message(out, b'R', |b| {
                b.extend_from_slice(&code.to_be_bytes());
                b.extend_from_slice(extra);
            })
        };
        let fields = |out: &mut Vec<u8>, tag: u8, fields: &[(u8, String)]| {
            put_message(out, tag, |b| {
                for (code, text) in fields {
                    b.push(*code);
                    put_cstr(b, text);
                }
                b.push(0);
            })
        };
        let copy_response = |out: &mut Vec<u8>, tag: u8, format: u8, columns: &[i16]| {
            put_message(out, tag, |b| {
                b.push(format);
                put_list(b, columns, |b, v| b.extend_from_slice(&v.to_be_bytes()));
            })
        };
        match self {
            Backend::AuthenticationOk => auth(out, 0, &[]),
            Backend::AuthenticationCleartextPassword => auth(out, 3, &[]),
            Backend::AuthenticationSasl(mechanisms) => {
                let mut extra = Vec::new();
                for m in mechanisms {
                    put_cstr(&mut extra, m);
                }
                extra.push(0);
                auth(out, 10, &extra)
            }
            Backend::AuthenticationSaslContinue(data) => auth(out, 11, data),
            Backend::AuthenticationSaslFinal(data) => auth(out, 12, data),
            Backend::ParameterStatus { name, value } => put_message(out, b'S', |b| {
                put_cstr(b, name);
                put_cstr(b, value);
            }),
            Backend::BackendKeyData {
                process_id,
                secret_key,
            } => put_message(out, b'K', |b| {
                b.extend_from_slice(&process_id.to_be_bytes());
                b.extend_from_slice(&secret_key.to_be_bytes());
            }),
            Backend::ReadyForQuery(status) => put_message(out, b'Z', |b| b.push(*status)),
            Backend::RowDescription(columns) => put_message(out, b'T', |b| {
                b.extend_from_slice(&(columns.len() as i16).to_be_bytes());
                for f in columns {
                    put_cstr(b, &f.name);
                    b.extend_from_slice(&f.table_oid.to_be_bytes());
                    b.extend_from_slice(&f.column.to_be_bytes());
                    b.extend_from_slice(&f.type_oid.to_be_bytes());
                    b.extend_from_slice(&f.type_size.to_be_bytes());
                    b.extend_from_slice(&f.type_modifier.to_be_bytes());
                    b.extend_from_slice(&f.format.to_be_bytes());
                }
            }),
            Backend::DataRow(values) => {
                let mut w = DataRowWriter::begin(out, values.len());
                for v in values {
                    match v {
                        None => w.null(),
                        Some(bytes) => w.field(|b| b.extend_from_slice(bytes)),
                    }
                }
                w.finish();
            }
            Backend::CommandComplete(tag) => put_message(out, b'C', |b| put_cstr(b, tag)),
            Backend::EmptyQueryResponse => put_message(out, b'I', |_| {}),
            Backend::ErrorResponse(f) => fields(out, b'E', f),
            Backend::NoticeResponse(f) => fields(out, b'N', f),
            Backend::ParseComplete => put_message(out, b'1', |_| {}),
            Backend::BindComplete => put_message(out, b'2', |_| {}),
            Backend::CloseComplete => put_message(out, b'3', |_| {}),
            Backend::NoData => put_message(out, b'n', |_| {}),
            Backend::ParameterDescription(types) => put_message(out, b't', |b| {
                put_list(b, types, |b, v| b.extend_from_slice(&v.to_be_bytes()));
            }),
            Backend::PortalSuspended => put_message(out, b's', |_| {}),
            Backend::CopyInResponse { format, columns } => {
                copy_response(out, b'G', *format, columns)
            }
            Backend::CopyOutResponse { format, columns } => {
                copy_response(out, b'H', *format, columns)
            }
            Backend::CopyData(data) => put_message(out, b'd', |b| b.extend_from_slice(data)),
            Backend::CopyDone => put_message(out, b'c', |_| {}),
        }
    }

    /// Decodes a server message (what a client does; used by tests).
    pub fn decode(tag: u8, body: &[u8]) -> Result<Backend, PgError> {
        let mut r = Reader::new(body);
        let fields = |r: &mut Reader| -> Result<Vec<(u8, String)>, PgError> {
            let mut out = Vec::new();
            loop {
                let code = r.u8()?;
                if code == 0 {
                    return Ok(out);
                }
                out.push((code, r.cstr()?));
            }
        };
        let copy_columns = |r: &mut Reader| -> Result<(u8, Vec<i16>), PgError> {
            let format = r.u8()?;
            let columns = r.list(2, |r| r.i16())?;
            Ok((format, columns))
        };
        let m = match tag {
            b'R' => match r.i32()? {
                0 => Backend::AuthenticationOk,
                3 => Backend::AuthenticationCleartextPassword,
                10 => {
                    let mut mechanisms = Vec::new();
                    loop {
                        let m = r.cstr()?;
                        if m.is_empty() {
                            break;
                        }
                        mechanisms.push(m);
                    }
                    Backend::AuthenticationSasl(mechanisms)
                }
                11 => Backend::AuthenticationSaslContinue(r.rest()),
                12 => Backend::AuthenticationSaslFinal(r.rest()),
                other => {
                    return Err(PgError::Malformed(format!(
                        "unknown authentication request {other}"
                    )))
                }
            },
            b'S' => Backend::ParameterStatus {
                name: r.cstr()?,
                value: r.cstr()?,
            },
            b'K' => Backend::BackendKeyData {
                process_id: r.i32()?,
                secret_key: r.i32()?,
            },
            b'Z' => Backend::ReadyForQuery(r.u8()?),
            b'T' => {
                let n = r.count(19)?;
                let mut columns = Vec::with_capacity(n);
                for _ in 0..n {
                    columns.push(Field {
                        name: r.cstr()?,
                        table_oid: r.u32()?,
                        column: r.i16()?,
                        type_oid: r.u32()?,
                        type_size: r.i16()?,
                        type_modifier: r.i32()?,
                        format: r.i16()?,
                    });
                }
                Backend::RowDescription(columns)
            }
            b'D' => Backend::DataRow(r.list(4, |r| r.nullable("column value"))?),
            b'C' => Backend::CommandComplete(r.cstr()?),
            b'I' => Backend::EmptyQueryResponse,
            b'E' => Backend::ErrorResponse(fields(&mut r)?),
            b'N' => Backend::NoticeResponse(fields(&mut r)?),
            b'1' => Backend::ParseComplete,
            b'2' => Backend::BindComplete,
            b'3' => Backend::CloseComplete,
            b'n' => Backend::NoData,
            b't' => {
                let types = r.list(4, |r| r.u32())?;
                Backend::ParameterDescription(types)
            }
            b's' => Backend::PortalSuspended,
            b'G' => {
                let (format, columns) = copy_columns(&mut r)?;
                Backend::CopyInResponse { format, columns }
            }
            b'H' => {
                let (format, columns) = copy_columns(&mut r)?;
                Backend::CopyOutResponse { format, columns }
            }
            b'd' => Backend::CopyData(r.rest()),
            b'c' => Backend::CopyDone,
            other => return Err(PgError::UnknownMessage(other)),
        };
        r.finish()?;
        Ok(m)
    }
}

impl Frontend {
    /// Appends the message (type, length, body) to `out` (what a client does).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frontend::Query(q) => put_message(out, b'Q', |b| put_cstr(b, q)),
            Frontend::Parse {
                name,
                query,
                param_types,
            } => put_message(out, b'P', |b| {
                put_cstr(b, name);
                put_cstr(b, query);
                put_list(b, param_types, |b, v| b.extend_from_slice(&v.to_be_bytes()));
            }),
            Frontend::Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            } => put_message(out, b'B', |b| {
                put_cstr(b, portal);
                put_cstr(b, statement);
                put_list(b, param_formats, |b, v| {
                    b.extend_from_slice(&v.to_be_bytes())
                });
                b.extend_from_slice(&(params.len() as i16).to_be_bytes());
                for p in params {
                    match p {
                        None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                        Some(v) => {
                            b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                            b.extend_from_slice(v);
                        }
                    }
                }
                put_list(b, result_formats, |b, v| {
                    b.extend_from_slice(&v.to_be_bytes())
                });
            }),
            Frontend::Describe { target, name } => put_message(out, b'D', |b| {
                b.push(target.byte());
                put_cstr(b, name);
            }),
            Frontend::Execute { portal, max_rows } => put_message(out, b'E', |b| {
                put_cstr(b, portal);
                b.extend_from_slice(&max_rows.to_be_bytes());
            }),
            Frontend::Close { target, name } => put_message(out, b'C', |b| {
                b.push(target.byte());
                put_cstr(b, name);
            }),
            Frontend::Sync => put_message(out, b'S', |_| {}),
            Frontend::Flush => put_message(out, b'H', |_| {}),
            Frontend::Terminate => put_message(out, b'X', |_| {}),
            Frontend::Password(data) => put_message(out, b'p', |b| b.extend_from_slice(data)),
            Frontend::CopyData(data) => put_message(out, b'd', |b| b.extend_from_slice(data)),
            Frontend::CopyDone => put_message(out, b'c', |_| {}),
            Frontend::CopyFail(why) => put_message(out, b'f', |b| put_cstr(b, why)),
        }
    }
}

impl Startup {
    /// The whole packet, length included (what a client sends first).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        match self {
            Startup::SslRequest => body.extend_from_slice(&SSL_REQUEST.to_be_bytes()),
            Startup::GssEncRequest => body.extend_from_slice(&GSSENC_REQUEST.to_be_bytes()),
            Startup::Cancel {
                process_id,
                secret_key,
            } => {
                body.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
                body.extend_from_slice(&process_id.to_be_bytes());
                body.extend_from_slice(&secret_key.to_be_bytes());
            }
            Startup::Start { params } => {
                body.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
                for (k, v) in params {
                    put_cstr(&mut body, k);
                    put_cstr(&mut body, v);
                }
                body.push(0);
            }
            Startup::Unsupported { version } => body.extend_from_slice(&version.to_be_bytes()),
        }
        let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }
}

/// Splits the front of `buf` into one typed message: `Ok(None)` when more
/// bytes are needed, else the message and how many bytes it took.
pub fn split_frontend(buf: &[u8], max: usize) -> Result<Option<(Frontend, usize)>, PgError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let length = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let body = body_len(length, max)?;
    let Some(end) = 5usize.checked_add(body).filter(|&e| e <= buf.len()) else {
        return Ok(None);
    };
    Ok(Some((decode_frontend(buf[0], &buf[5..end])?, end)))
}

/// Everything the fuzz target checks: the startup packet and then typed
/// messages of `data` decode or fail cleanly, and what decodes re-encodes
/// to the same bytes.
pub fn fuzz_decode(data: &[u8]) {
    const MAX: usize = 1 << 20;
    if data.len() >= 4 {
        let length = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        if let Ok(n) = body_len(length, MAX_STARTUP_BYTES) {
            if let Some(body) = data.get(4..4 + n) {
                if let Ok(s) = decode_startup(body) {
                    let again = s.encode();
                    // An unsupported version's body is not read past the version.
                    if !matches!(s, Startup::Unsupported { .. }) {
                        assert_eq!(&again[4..], body);
                    }
                }
            }
        }
    }
    let mut rest = data;
    while let Ok(Some((m, used))) = split_frontend(rest, MAX) {
        let mut again = Vec::new();
        m.encode(&mut again);
        assert_eq!(again, &rest[..used], "{m:?} re-encodes differently");
        if let Frontend::Password(body) = &m {
            let _ = password_text(body);
            let _ = SaslInitial::decode(body);
        }
        rest = &rest[used..];
    }
    let mut rest = data;
    while rest.len() >= 5 {
        let length = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let Ok(n) = body_len(length, MAX) else { break };
        let Some(body) = rest.get(5..5 + n) else {
            break;
        };
        if let Ok(m) = Backend::decode(rest[0], body) {
            let mut again = Vec::new();
            m.encode(&mut again);
            assert_eq!(again, &rest[..5 + n], "{m:?} re-encodes differently");
        }
        rest = &rest[5 + n..];
    }
}
