//! The native wire protocol (docs/protocol.md): frames and messages as bytes,
//! shared by the server and the client. This module only turns messages into
//! bytes and back; it does no I/O policy (timeouts, auth) of its own.
//!
//! Invariants: decoding never panics and never allocates more than the frame
//! it was given holds; a message decodes only if it consumes its payload
//! exactly.

pub mod codes;
pub mod frame;
pub mod message;
pub mod rows;

pub use frame::{read_frame, write_frame, Frame, FrameError, DEFAULT_MAX_FRAME_BYTES};
pub use message::{ColumnInfo, Message, MAGIC, PROTOCOL_VERSION};
pub use rows::{decode_rows, encode_rows};
