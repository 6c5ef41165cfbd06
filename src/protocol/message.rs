//! Messages of the native protocol and their payload encodings
//! (docs/protocol.md). Row batches are carried as raw payloads here and
//! encoded/decoded column by column in [`super::rows`], which needs the schema.

use crate::storage::codec::{ByteReader, ByteWriter};
use crate::storage::schema::ColumnType;

/// The magic bytes that open a Hello.
pub const MAGIC: &[u8; 6] = b"COHORT";
/// The newest protocol version this build speaks (it speaks 1 too).
/// Version 2 added InsertRows; version 3 its dictionary-coded columns.
pub const PROTOCOL_VERSION: u16 = 3;

/// Set in an InsertRows column's type byte: the column is dictionary-coded.
pub const CODED_COLUMN: u8 = 0x80;

pub const HELLO: u8 = 0x01;
pub const QUERY: u8 = 0x02;
pub const CANCEL: u8 = 0x03;
pub const PING: u8 = 0x04;
pub const SET_OPTION: u8 = 0x05;
pub const GOODBYE: u8 = 0x06;
pub const INSERT_ROWS: u8 = 0x07;
pub const WELCOME: u8 = 0x81;
pub const SCHEMA: u8 = 0x82;
pub const ROW_BATCH: u8 = 0x83;
pub const PONG: u8 = 0x84;
pub const COMPLETE: u8 = 0x85;
pub const ERROR: u8 = 0x86;
pub const READY: u8 = 0x87;

/// A result column: name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub ty: ColumnType,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Hello {
        version: u16,
        client: String,
        user: String,
        password: String,
    },
    Query {
        text: String,
    },
    Cancel,
    Ping,
    SetOption {
        name: String,
        value: String,
    },
    Goodbye,
    /// Column-wise upserts into `table`: `columns` are the profile id column
    /// then table columns; `rows` is a RowBatch-encoded payload of them, in
    /// which column `c` is dictionary-coded when `coded[c]` (version 3;
    /// empty or all false: none).
    InsertRows {
        table: String,
        columns: Vec<ColumnInfo>,
        coded: Vec<bool>,
        rows: Vec<u8>,
    },
    Welcome {
        version: u16,
        server: String,
        session: u64,
        role: String,
    },
    Schema {
        statement: u32,
        columns: Vec<ColumnInfo>,
    },
    /// A row batch's payload, encoded by [`super::rows::encode_rows`].
    RowBatch(Vec<u8>),
    Pong,
    Complete {
        statement: u32,
        tag: String,
        affected: u64,
        micros: u64,
    },
    Error {
        code: u16,
        message: String,
        line: u32,
        column: u32,
    },
    Ready,
}

impl Message {
    /// The message type and payload.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let mut w = ByteWriter::new();
        let kind = match self {
            Message::Hello {
                version,
                client,
                user,
                password,
            } => {
                w.bytes(MAGIC);
                w.u16(*version);
                w.str(client);
                w.str(user);
                w.str(password);
                HELLO
            }
            Message::Query { text } => {
                w.str(text);
                QUERY
            }
            Message::Cancel => CANCEL,
            Message::Ping => PING,
            Message::SetOption { name, value } => {
                w.str(name);
                w.str(value);
                SET_OPTION
            }
            Message::Goodbye => GOODBYE,
            Message::InsertRows {
                table,
                columns,
                coded,
                rows,
            } => {
                w.str(table);
                w.u16(columns.len() as u16);
                for (i, c) in columns.iter().enumerate() {
                    w.str(&c.name);
                    let flag = if coded.get(i) == Some(&true) {
                        CODED_COLUMN
                    } else {
                        0
                    };
                    w.u8(c.ty.code() | flag);
                }
                w.bytes(rows);
                INSERT_ROWS
            }
            Message::Welcome {
                version,
                server,
                session,
                role,
            } => {
                w.u16(*version);
                w.str(server);
                w.u64(*session);
                w.str(role);
                WELCOME
            }
            Message::Schema { statement, columns } => {
                w.u32(*statement);
                encode_columns(&mut w, columns);
                SCHEMA
            }
            Message::RowBatch(payload) => return (ROW_BATCH, payload.clone()),
            Message::Pong => PONG,
            Message::Complete {
                statement,
                tag,
                affected,
                micros,
            } => {
                w.u32(*statement);
                w.str(tag);
                w.u64(*affected);
                w.u64(*micros);
                COMPLETE
            }
            Message::Error {
                code,
                message,
                line,
                column,
            } => {
                w.u16(*code);
                w.str(message);
                w.u32(*line);
                w.u32(*column);
                ERROR
            }
            Message::Ready => READY,
        };
        (kind, w.into_inner())
    }

    /// Decodes a frame's payload; the error says what is wrong with it.
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Message, String> {
        if kind == ROW_BATCH {
            return Ok(Message::RowBatch(payload.to_vec()));
        }
        let mut r = ByteReader::new(payload, 0);
        let e =
            |e: crate::storage::error::DecodeError| format!("{} (at byte {})", e.reason, e.offset);
        let message = match kind {
            HELLO => {
                let magic = r.take(MAGIC.len(), "magic").map_err(e)?;
                if magic != MAGIC {
                    return Err("not a CohortDB client (bad magic in Hello)".into());
                }
                Message::Hello {
                    version: r.u16("version").map_err(e)?,
                    client: r.str("client name").map_err(e)?.to_string(),
                    user: r.str("user").map_err(e)?.to_string(),
                    password: r.str("password").map_err(e)?.to_string(),
                }
            }
            QUERY => Message::Query {
                text: r.str("query text").map_err(e)?.to_string(),
            },
            CANCEL => Message::Cancel,
            PING => Message::Ping,
            SET_OPTION => Message::SetOption {
                name: r.str("option name").map_err(e)?.to_string(),
                value: r.str("option value").map_err(e)?.to_string(),
            },
            GOODBYE => Message::Goodbye,
            WELCOME => Message::Welcome {
                version: r.u16("version").map_err(e)?,
                server: r.str("server name").map_err(e)?.to_string(),
                session: r.u64("session").map_err(e)?,
                role: r.str("role").map_err(e)?.to_string(),
            },
            SCHEMA => Message::Schema {
                statement: r.u32("statement").map_err(e)?,
                columns: decode_columns(&mut r)?,
            },
            INSERT_ROWS => {
                let table = r.str("table name").map_err(e)?.to_string();
                let (columns, coded) = decode_insert_columns(&mut r)?;
                Message::InsertRows {
                    table,
                    columns,
                    coded,
                    rows: r.take(r.remaining(), "rows").map_err(e)?.to_vec(),
                }
            }
            PONG => Message::Pong,
            COMPLETE => Message::Complete {
                statement: r.u32("statement").map_err(e)?,
                tag: r.str("tag").map_err(e)?.to_string(),
                affected: r.u64("affected").map_err(e)?,
                micros: r.u64("micros").map_err(e)?,
            },
            ERROR => Message::Error {
                code: r.u16("code").map_err(e)?,
                message: r.str("message").map_err(e)?.to_string(),
                line: r.u32("line").map_err(e)?,
                column: r.u32("column").map_err(e)?,
            },
            READY => Message::Ready,
            other => return Err(format!("unknown message type 0x{other:02x}")),
        };
        if !r.is_at_end() {
            return Err(format!(
                "{} bytes left over after message type 0x{kind:02x}",
                r.remaining()
            ));
        }
        Ok(message)
    }
}

/// `u16` count, then per column its name and type code.
fn encode_columns(w: &mut ByteWriter, columns: &[ColumnInfo]) {
    w.u16(columns.len() as u16);
    for c in columns {
        w.str(&c.name);
        w.u8(c.ty.code());
    }
}

fn decode_columns(r: &mut ByteReader<'_>) -> Result<Vec<ColumnInfo>, String> {
    let (columns, coded) = decode_insert_columns(r)?;
    match coded.is_empty() {
        true => Ok(columns),
        false => Err(format!("unknown column type {}", CODED_COLUMN | 1)),
    }
}

/// An InsertRows column list: the columns and, if any type byte carries
/// [`CODED_COLUMN`], which are dictionary-coded (else empty).
fn decode_insert_columns(r: &mut ByteReader<'_>) -> Result<(Vec<ColumnInfo>, Vec<bool>), String> {
    let e = |e: crate::storage::error::DecodeError| format!("{} (at byte {})", e.reason, e.offset);
    let n = r.u16("column count").map_err(e)? as usize;
    let mut columns = Vec::with_capacity(n.min(r.remaining() / 5));
    let mut coded = Vec::with_capacity(n.min(r.remaining() / 5));
    for _ in 0..n {
        let name = r.str("column name").map_err(e)?.to_string();
        let byte = r.u8("column type").map_err(e)?;
        let code = byte & !CODED_COLUMN;
        let ty =
            ColumnType::from_code(code).ok_or_else(|| format!("unknown column type {byte}"))?;
        columns.push(ColumnInfo { name, ty });
        coded.push(byte & CODED_COLUMN != 0);
    }
    if !coded.iter().any(|c| *c) {
        coded.clear();
    }
    Ok((columns, coded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(named: &[(&str, ColumnType)]) -> Vec<ColumnInfo> {
        named
            .iter()
            .map(|(name, ty)| ColumnInfo {
                name: name.to_string(),
                ty: *ty,
            })
            .collect()
    }

    fn all() -> Vec<Message> {
        vec![
            Message::Hello {
                version: 1,
                client: "t".into(),
                user: "ann".into(),
                password: "pw".into(),
            },
            Message::Query {
                text: "SELECT COUNT(*) FROM t;".into(),
            },
            Message::Cancel,
            Message::Ping,
            Message::SetOption {
                name: "timeout_ms".into(),
                value: "50".into(),
            },
            Message::Goodbye,
            Message::Welcome {
                version: 1,
                server: "cohortdb".into(),
                session: 9,
                role: "admin".into(),
            },
            Message::Schema {
                statement: 2,
                columns: columns(&[("id", ColumnType::Text), ("tags", ColumnType::TextSet)]),
            },
            Message::RowBatch(vec![1, 2, 3]),
            Message::InsertRows {
                table: "profiles".into(),
                columns: columns(&[("id", ColumnType::Text), ("age", ColumnType::Int)]),
                coded: vec![],
                rows: vec![0, 0, 0, 0],
            },
            Message::InsertRows {
                table: "profiles".into(),
                columns: columns(&[("id", ColumnType::Text), ("tags", ColumnType::TextSet)]),
                coded: vec![false, true],
                rows: vec![0, 0, 0, 0],
            },
            Message::Pong,
            Message::Complete {
                statement: 0,
                tag: "SELECT".into(),
                affected: 7,
                micros: 12,
            },
            Message::Error {
                code: 1001,
                message: "bad".into(),
                line: 1,
                column: 5,
            },
            Message::Ready,
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in all() {
            let (kind, payload) = m.encode();
            assert_eq!(Message::decode(kind, &payload).unwrap(), m);
        }
    }

    #[test]
    fn truncated_extended_and_unknown_payloads_are_refused() {
        for m in all() {
            let (kind, payload) = m.encode();
            // Their last field runs to the end of the payload.
            if kind == ROW_BATCH || kind == INSERT_ROWS {
                continue;
            }
            for cut in 0..payload.len() {
                assert!(
                    Message::decode(kind, &payload[..cut]).is_err(),
                    "{m:?} cut at {cut}"
                );
            }
            let mut longer = payload.clone();
            longer.push(0);
            assert!(
                Message::decode(kind, &longer).is_err(),
                "{m:?} with a trailing byte"
            );
        }
        assert!(Message::decode(0x7f, &[]).is_err());
        assert!(Message::decode(HELLO, b"NOTCOH\x01\x00").is_err());
    }

    #[test]
    fn only_insert_rows_columns_may_carry_the_coded_bit() {
        let coded = all()
            .into_iter()
            .find(|m| matches!(m, Message::InsertRows { coded, .. } if !coded.is_empty()))
            .unwrap();
        let (_, payload) = coded.encode();
        // table "profiles", column count, "id" TEXT, "tags" SET<TEXT> | coded
        let tags_type = 4 + 8 + 2 + 4 + 2 + 1 + 4 + 4;
        assert_eq!(
            payload[tags_type],
            ColumnType::TextSet.code() | CODED_COLUMN
        );
        let schema = Message::Schema {
            statement: 0,
            columns: vec![ColumnInfo {
                name: "tags".into(),
                ty: ColumnType::TextSet,
            }],
        };
        let (kind, mut payload) = schema.encode();
        let last = payload.len() - 1;
        payload[last] |= CODED_COLUMN;
        assert!(Message::decode(kind, &payload).is_err());
    }
}
