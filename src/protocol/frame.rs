//! Frames: `[length u32 LE][type u8][payload]`, `length` counting type and
//! payload. Blocking readers and writers over `std::io` (the client's);
//! the server frames its tokio streams with the same layout via
//! [`parse_header`].

use std::io::{Read, Write};

/// The largest frame accepted unless configured otherwise.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 16 << 20;

/// One frame: its message type and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("frame of {length} bytes exceeds the maximum of {max}")]
    TooLarge { length: u32, max: u32 },
    #[error("frame with length 0 (it must count at least its type byte)")]
    Empty,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks a frame header's length; returns the payload length.
pub fn parse_header(length: u32, max: u32) -> Result<usize, FrameError> {
    if length == 0 {
        return Err(FrameError::Empty);
    }
    if length > max {
        return Err(FrameError::TooLarge { length, max });
    }
    Ok(length as usize - 1)
}

/// Reads one frame. A clean end of stream before the first byte is `Closed`.
pub fn read_frame(r: &mut impl Read, max: u32) -> Result<Frame, FrameError> {
    let mut header = [0u8; 5];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let payload_len = parse_header(length, max)?;
    let mut payload = vec![0u8; payload_len];
    r.read_exact(&mut payload)?;
    Ok(Frame {
        kind: header[4],
        payload,
    })
}

/// The bytes of a frame.
pub fn encode_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.extend_from_slice(&(payload.len() as u32 + 1).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

/// Writes one frame (not flushed).
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&(payload.len() as u32 + 1).to_le_bytes())?;
    w.write_all(&[kind])?;
    w.write_all(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_limits_hold() {
        let bytes = encode_frame(0x02, b"hello");
        let frame = read_frame(&mut &bytes[..], 64).unwrap();
        assert_eq!(
            frame,
            Frame {
                kind: 2,
                payload: b"hello".to_vec()
            }
        );
        assert!(matches!(
            read_frame(&mut &bytes[..], 4),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            read_frame(&mut &[][..], 64),
            Err(FrameError::Closed)
        ));
        for cut in 1..bytes.len() {
            assert!(matches!(
                read_frame(&mut &bytes[..cut], 64),
                Err(FrameError::Io(_))
            ));
        }
        assert!(matches!(
            read_frame(&mut &[0u8, 0, 0, 0, 1][..], 64),
            Err(FrameError::Empty)
        ));
    }
}
