//! A low-level start for embedders that drive the descriptors themselves
//! (the Elixir NIF, `elixir/native/net_runner_nif`, polls them with the
//! BEAM's `enif_select` instead of tokio).
//!
//! [`spawn`] goes through exactly the launch path of [`Command::spawn`]:
//! the same validation and spawn request, the pre-started shepherd pool,
//! the same handshake and the same typed errors. Instead of a
//! [`Process`](crate::Process) it hands back the parts: the child's pid,
//! the shepherd (reaped when its [`Shepherd`] is dropped), the control
//! socket and the pipe ends, all as [`OwnedFd`]s in non-blocking mode.
//!
//! From then on the embedder owns the protocol's library side:
//!
//! - read the control socket and feed what it returns to
//!   [`RawChild::control`] ([`ControlDecoder`]); `Exited` carries the status
//!   and rusage; end of file means the shepherd is gone;
//! - send [`signal_frame`] / [`shutdown_frame`] to signal the tree;
//! - close the control socket to make the shepherd terminate the tree
//!   (SIGTERM, kill timeout, SIGKILL). The kernel does it too if the whole
//!   program dies.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), net_runner::Error> {
//! use std::io::Read;
//! use net_runner::raw::{self, Message};
//!
//! let mut child = raw::spawn(&net_runner::Command::new("echo").arg("hi"), false).await?;
//! assert!(child.child_pid > 0);
//! let mut out = std::fs::File::from(child.stdout.take().unwrap());
//! let mut text = Vec::new();
//! loop {
//!     let mut buf = [0u8; 64];
//!     match out.read(&mut buf) {
//!         Ok(0) => break,
//!         Ok(n) => text.extend_from_slice(&buf[..n]),
//!         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
//!             tokio::time::sleep(std::time::Duration::from_millis(5)).await
//!         }
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! assert_eq!(text, b"hi\n");
//! # Ok(()) }
//! ```

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;

use net_runner_proto::{FrameDecoder, FromShepherd, StdioMode, ToShepherd};
use rustix::process::Pid;

pub use net_runner_proto::{ExitReport, FromShepherd as Message, Termination, WindowSize};

use crate::{launch, reaper, sys, Command, Error, ShepherdError};

/// A started child, as parts.
#[derive(Debug)]
pub struct RawChild {
    /// The child's pid, which is also its process group id.
    pub child_pid: i32,
    /// The child's shepherd. Drop it after closing [`Self::control`] (or
    /// once the channel reached end of file): it is then reaped, at once or
    /// by the library's reaper thread.
    pub shepherd: Shepherd,
    /// The library's end of the control socket (non-blocking).
    pub control: OwnedFd,
    /// Bytes already read from the control socket during the handshake and
    /// not yet decoded (an `Exited` of a fast child can be there): decode
    /// them before reading the socket.
    pub decoder: ControlDecoder,
    /// The write end of the child's stdin, when it is a pipe (non-blocking).
    pub stdin: Option<OwnedFd>,
    /// The read end of the child's stdout (non-blocking).
    pub stdout: Option<OwnedFd>,
    /// The read end of the child's stderr, when it is a pipe (non-blocking).
    pub stderr: Option<OwnedFd>,
}

/// A shepherd process, reaped when dropped (without blocking: the reaper
/// thread waits for it if it has not exited yet).
#[derive(Debug)]
pub struct Shepherd(Pid);

impl Shepherd {
    /// The shepherd's pid.
    pub fn pid(&self) -> i32 {
        self.0.as_raw_nonzero().get()
    }
}

impl Drop for Shepherd {
    fn drop(&mut self) {
        reaper::reap(self.0);
    }
}

/// Decodes the shepherd's messages from what the control socket returns.
#[derive(Debug, Default)]
pub struct ControlDecoder {
    frames: FrameDecoder,
}

impl ControlDecoder {
    /// Appends bytes read from the control socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.frames.push(bytes);
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`Error::Shepherd`] for a corrupt stream; the channel is then out of
    /// sync and should be closed.
    pub fn next_message(&mut self) -> Result<Option<FromShepherd>, Error> {
        let protocol = |e: net_runner_proto::DecodeError| {
            Error::Shepherd(ShepherdError::Protocol(e.to_string()))
        };
        match self.frames.next_frame().map_err(protocol)? {
            Some(frame) => Ok(Some(FromShepherd::decode(&frame).map_err(protocol)?)),
            None => Ok(None),
        }
    }
}

/// Starts `command` through the library's launch path and returns the
/// parts. stdout is always a pipe; stdin is a pipe when `stdin_pipe`, else
/// `/dev/null`; stderr follows [`Command::stderr`]. The command's input,
/// timeout and `max_output` are not used: the embedder does that.
///
/// Needs a tokio runtime with I/O enabled (the handshake uses it); the
/// returned descriptors are no longer registered with it.
///
/// # Errors
///
/// As [`Command::spawn`]: [`Error::EmptyProgram`], [`Error::NulByte`],
/// [`Error::InvalidEnvName`] before anything starts; then
/// [`Error::NotFound`], [`Error::PermissionDenied`], [`Error::CwdNotFound`],
/// [`Error::Cwd`], [`Error::Spawn`], [`Error::Shepherd`],
/// [`Error::NoRuntime`].
///
/// # Cancel safety
///
/// Dropping the future leaves nothing running, as for [`Command::spawn`].
pub fn spawn(
    command: &Command,
    stdin_pipe: bool,
) -> impl Future<Output = Result<RawChild, Error>> + Send + 'static {
    let stdin = if stdin_pipe {
        crate::stdio::Kind::Piped
    } else {
        crate::stdio::Kind::Null
    };
    // Checked now; the future owns what it needs, so it is `Send` whatever
    // the command's input is.
    let prepared = command.launch_parts(stdin, crate::stdio::Kind::Piped);
    async move {
        let (req, passed, plan, program, cwd) = prepared?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        let modes = [req.stdin, req.stdout, req.stderr];
        let launched = launch::launch(req, program, cwd, passed, plan).await?;
        let shepherd = Shepherd(launched.shepherd_pid);
        let (control, frames, _unclaimed) = launched.control.into_raw_parts();
        let mut fds = launched.fds.into_iter();
        let mut next = |mode: StdioMode| -> io::Result<Option<OwnedFd>> {
            match (mode == StdioMode::Pipe).then(|| fds.next()).flatten() {
                Some(fd) => {
                    sys::set_nonblocking(&fd)?;
                    Ok(Some(fd))
                }
                None => Ok(None),
            }
        };
        // On error the parts drop here: the control socket closes (the
        // shepherd terminates the child) and the shepherd is reaped.
        let (stdin, stdout, stderr) = (next(modes[0])?, next(modes[1])?, next(modes[2])?);
        Ok(RawChild {
            child_pid: launched.child_pid,
            shepherd,
            control,
            decoder: ControlDecoder { frames },
            stdin,
            stdout,
            stderr,
        })
    }
}

/// The frame asking the shepherd to send `signal` to the child's group.
pub fn signal_frame(signal: i32) -> Vec<u8> {
    encode(&ToShepherd::Signal { signal })
}

/// The frame asking for a graceful stop: SIGTERM to the tree, SIGKILL after
/// the kill timeout.
pub fn shutdown_frame() -> Vec<u8> {
    encode(&ToShepherd::Shutdown)
}

/// The frame setting the terminal size (PTY mode; refused by a shepherd
/// without PTY support with an `Error` message).
pub fn window_size_frame(rows: u16, cols: u16) -> Vec<u8> {
    encode(&ToShepherd::SetWindowSize(WindowSize { rows, cols }))
}

fn encode(msg: &ToShepherd) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16);
    msg.encode(&mut bytes);
    bytes
}
