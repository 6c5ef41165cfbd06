//! Error codes of the Error message, grouped by who is at fault
//! (docs/protocol.md, "Errors").

pub const SYNTAX: u16 = 1001;
pub const BIND: u16 = 1002;
pub const WRITE_REFUSED: u16 = 1003;
pub const PERMISSION_DENIED: u16 = 1004;
pub const DATA_DAMAGED: u16 = 2001;
pub const READ_ONLY: u16 = 2002;
pub const PROTOCOL: u16 = 3000;
pub const FRAME_TOO_LARGE: u16 = 3001;
pub const STATEMENT_TOO_LARGE: u16 = 3002;
pub const TIMEOUT: u16 = 3003;
pub const CANCELLED: u16 = 3004;
pub const TOO_MANY_CONNECTIONS: u16 = 3005;
pub const IDLE_TIMEOUT: u16 = 3006;
pub const SHUTTING_DOWN: u16 = 3007;
pub const AUTH_FAILED: u16 = 4001;
pub const AUTH_REQUIRED: u16 = 4002;
pub const INTERNAL: u16 = 5001;

/// Whether the server closes the connection after an error with this code.
pub fn closes_connection(code: u16) -> bool {
    matches!(
        code,
        PROTOCOL
            | FRAME_TOO_LARGE
            | TOO_MANY_CONNECTIONS
            | IDLE_TIMEOUT
            | SHUTTING_DOWN
            | AUTH_FAILED
            | AUTH_REQUIRED
    )
}
