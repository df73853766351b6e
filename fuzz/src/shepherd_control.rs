//! Drives the shepherd's own control-socket reader
//! (`crates/shepherd/src/control.rs`, compiled in with `#[path]` by the
//! `shepherd_input` target and by the corpus replay test) over a real
//! socket pair.
//!
//! The shepherd is a binary crate, so its message *dispatch* (in its
//! `main.rs`, which signals and forks) is not linked here; its reader is,
//! and the handshake rules are mirrored in `lib.rs`.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::control::{Control, Input};

/// Bytes written per `write` at most: less than a socket buffer, so a
/// write never waits for the reader (which runs in between).
const WRITE_MAX: usize = 32 * 1024;

/// Writes `chunks` one by one into a socket pair and, after each, lets the
/// shepherd's `Control` read what arrived; then hangs up. Stops at the
/// first error or hang-up, as the shepherd does. Returns what it read.
pub fn through_shepherd(chunks: &[&[u8]]) -> Vec<Input> {
    let (shepherd_end, owner) = UnixStream::pair().expect("socketpair");
    let owner_end = owner.as_raw_fd();
    let mut control = Control::new(OwnedFd::from(shepherd_end)).expect("a socket");
    let mut inputs = Vec::new();
    let stopped = |inputs: &Vec<Input>| inputs.iter().any(|i| !matches!(i, Some(Ok(_))));
    'feed: for chunk in chunks {
        for piece in chunk.chunks(WRITE_MAX) {
            write_all(owner_end, piece);
            while readable(control.fd().as_raw_fd()) {
                inputs.extend(control.read_frames());
                if stopped(&inputs) {
                    break 'feed;
                }
            }
        }
    }
    drop(owner);
    while !stopped(&inputs) {
        inputs.extend(control.read_frames());
    }
    drop(control);
    // One read may complete frames past the first bad message; the
    // shepherd stops listening at that message.
    if let Some(i) = inputs.iter().position(|i| !matches!(i, Some(Ok(_)))) {
        inputs.truncate(i + 1);
    }
    inputs
}

fn write_all(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        assert!(n > 0, "write: {}", std::io::Error::last_os_error());
        bytes = &bytes[n as usize..];
    }
}

fn readable(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
}
