//! Framing: length-prefixed frames over a byte stream.

use std::fmt;

/// Largest frame either side accepts (length field included in the count).
/// A spawn request carries argv and the environment, which the kernel caps far
/// below this; anything larger is a corrupt or hostile stream.
pub const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;

/// Bytes of the length prefix.
const HEADER: usize = 4;

/// One whole frame: its kind byte and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message kind (see [`crate::ToShepherd`] and [`crate::FromShepherd`]).
    pub kind: u8,
    /// The message body.
    pub payload: Vec<u8>,
}

/// Why bytes could not be turned into a frame or a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A length prefix of zero (a frame needs at least its kind byte).
    EmptyFrame,
    /// A length prefix larger than [`MAX_FRAME_LEN`].
    FrameTooLarge(usize),
    /// A kind byte that this direction of the protocol does not define.
    UnknownKind(u8),
    /// A spawn-request field tag that this version does not know.
    UnknownField(u8),
    /// A payload shorter than its fields say.
    Truncated,
    /// Bytes left after the last field of a payload.
    TrailingBytes(usize),
    /// A field whose value is out of range (an unknown stdio mode, say).
    BadValue(&'static str),
    /// A `Hello` without the magic bytes.
    BadMagic,
    /// A `Hello` from a peer speaking another protocol version.
    VersionMismatch {
        /// The version this side speaks.
        ours: u16,
        /// The version the peer announced.
        theirs: u16,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::EmptyFrame => write!(f, "empty frame"),
            DecodeError::FrameTooLarge(n) => {
                write!(
                    f,
                    "frame of {n} bytes exceeds the {MAX_FRAME_LEN}-byte limit"
                )
            }
            DecodeError::UnknownKind(k) => write!(f, "unknown message kind {k:#04x}"),
            DecodeError::UnknownField(t) => write!(f, "unknown spawn field tag {t}"),
            DecodeError::Truncated => write!(f, "truncated payload"),
            DecodeError::TrailingBytes(n) => write!(f, "{n} unexpected trailing bytes"),
            DecodeError::BadValue(what) => write!(f, "invalid value for {what}"),
            DecodeError::BadMagic => write!(f, "peer is not a net_runner shepherd/library"),
            DecodeError::VersionMismatch { ours, theirs } => {
                write!(f, "protocol version mismatch: ours {ours}, peer {theirs}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Appends one frame (`len`, `kind`, `payload`) to `out`.
///
/// ```
/// let mut out = Vec::new();
/// net_runner_proto::encode_frame(&mut out, 7, b"hi");
/// assert_eq!(out, [3, 0, 0, 0, 7, b'h', b'i']);
/// ```
pub fn encode_frame(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let len = crate::codec::len_u32(payload.len() + 1);
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// Reassembles frames from a byte stream cut at arbitrary points.
///
/// Feed it with [`push`](Self::push) as bytes arrive; take frames with
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`. After an error
/// the stream is out of sync and should be dropped.
///
/// ```
/// use net_runner_proto::{encode_frame, FrameDecoder};
/// let mut wire = Vec::new();
/// encode_frame(&mut wire, 1, b"abc");
/// let mut d = FrameDecoder::new();
/// for byte in &wire {
///     d.push(std::slice::from_ref(byte));
/// }
/// assert_eq!(d.next_frame().unwrap().unwrap().payload, b"abc");
/// assert!(d.next_frame().unwrap().is_none());
/// ```
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`; consumed bytes are dropped lazily so
    /// that many small frames in one read cost no memmove each.
    start: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Number of buffered bytes not yet returned as frames.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Returns the next whole frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER {
            return Ok(None);
        }
        let len = u32::from_le_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len == 0 {
            return Err(DecodeError::EmptyFrame);
        }
        if len > MAX_FRAME_LEN {
            return Err(DecodeError::FrameTooLarge(len));
        }
        if avail.len() < HEADER + len {
            return Ok(None);
        }
        let kind = avail[HEADER];
        let payload = avail[HEADER + 1..HEADER + len].to_vec();
        self.start += HEADER + len;
        Ok(Some(Frame { kind, payload }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_zero_and_oversized_lengths() {
        let mut d = FrameDecoder::new();
        d.push(&[0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(DecodeError::EmptyFrame));

        let mut d = FrameDecoder::new();
        d.push(&((MAX_FRAME_LEN as u32) + 1).to_le_bytes());
        assert!(matches!(d.next_frame(), Err(DecodeError::FrameTooLarge(_))));
    }

    #[test]
    fn compacts_consumed_bytes() {
        let mut d = FrameDecoder::new();
        let mut wire = Vec::new();
        for _ in 0..10_000 {
            encode_frame(&mut wire, 1, b"x");
        }
        for chunk in wire.chunks(777) {
            d.push(chunk);
            while d.next_frame().unwrap().is_some() {}
        }
        assert_eq!(d.pending(), 0);
        assert!(d.buf.capacity() < wire.len());
    }
}
