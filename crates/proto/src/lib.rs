//! Wire protocol between the `net_runner` library and its per-command shepherd.
//!
//! This crate does no I/O: it turns messages into bytes and bytes back into
//! messages. Both ends (the shepherd binary, the tokio library, and later the
//! Erlang NIF) share it, so the format is defined in exactly one place.
//!
//! A frame is `u32` little-endian length, then one kind byte, then the payload;
//! the length counts the kind byte and the payload. Bytes arrive from a stream
//! socket, so a read may hold half a frame or several frames: [`FrameDecoder`]
//! takes whatever arrived and hands out whole frames.
//!
//! ```
//! use net_runner_proto::{FrameDecoder, ToShepherd};
//!
//! let mut wire = Vec::new();
//! ToShepherd::Signal { signal: 15 }.encode(&mut wire);
//! ToShepherd::Shutdown.encode(&mut wire);
//!
//! let mut decoder = FrameDecoder::new();
//! decoder.push(&wire[..3]); // a partial frame is fine
//! assert!(decoder.next_frame().unwrap().is_none());
//! decoder.push(&wire[3..]); // the rest, plus a second frame
//! let first = decoder.next_frame().unwrap().unwrap();
//! assert_eq!(ToShepherd::decode(&first).unwrap(), ToShepherd::Signal { signal: 15 });
//! let second = decoder.next_frame().unwrap().unwrap();
//! assert_eq!(ToShepherd::decode(&second).unwrap(), ToShepherd::Shutdown);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cgroup;
mod codec;
mod frame;
mod message;
mod spawn;

pub use cgroup::{CgroupDir, CgroupKind, CgroupReport, CgroupSpec, CgroupStep, MAX_CGROUP_PATH};
pub use frame::{encode_frame, DecodeError, Frame, FrameDecoder, MAX_FRAME_LEN};
pub use message::{
    check_version, ExitReport, FromShepherd, SpawnStage, StopCause, Termination, ToShepherd,
};
pub use spawn::{
    Rlimit, RlimitResource, SpawnRequest, StdioMode, StopAction, StopStep, WindowSize, PASS_STDERR,
    PASS_STDIN, PASS_STDOUT,
};

/// Protocol version spoken by this crate. Both sides send it in their `Hello`
/// frame; a shepherd refuses a library with another version.
pub const PROTOCOL_VERSION: u16 = 1;

/// Magic bytes that open every `Hello` payload, so a stray peer is recognised
/// at once instead of being misread as a frame.
pub const MAGIC: [u8; 4] = *b"NRSH";

/// The file descriptor number at which the shepherd finds its end of the
/// control socket.
pub const CONTROL_FD: i32 = 3;
