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
//! - in PTY mode ([`Command::pty`]), [`RawChild::stdout`] is the master
//!   and [`RawChild::stdin`] a duplicate of it: read until `EIO` (the end
//!   of file of a terminal), write [`pty_eof_bytes`] before closing stdin,
//!   resize with [`set_window_size`];
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
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use net_runner_proto::{FrameDecoder, FromShepherd, StdioMode, ToShepherd};
use rustix::process::Pid;

pub use net_runner_proto::{
    CgroupReport, ExitReport, FromShepherd as Message, StopCause, Termination, WindowSize,
};

use crate::cgroup::Plan;
use crate::pty::LineState;
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
    /// In PTY mode a duplicate of the master: closing it alone does not end
    /// the terminal's input, write [`pty_eof_bytes`] first.
    pub stdin: Option<OwnedFd>,
    /// The read end of the child's stdout (non-blocking). In PTY mode the
    /// master: what the terminal shows (stdout and stderr, the echo), and
    /// `EIO` once the program and its children closed the terminal and
    /// everything was read.
    pub stdout: Option<OwnedFd>,
    /// The read end of the child's stderr, when it is a pipe (non-blocking).
    pub stderr: Option<OwnedFd>,
    /// Whether the child runs on a PTY ([`Command::pty`]).
    pub pty: bool,
}

/// A shepherd process, reaped when dropped (without blocking: the reaper
/// thread waits for it if it has not exited yet); then what it left of the
/// child's cgroup, if it died before its own teardown, is removed.
#[derive(Debug)]
pub struct Shepherd(Pid, Option<Arc<Plan>>);

impl Shepherd {
    /// The shepherd's pid.
    pub fn pid(&self) -> i32 {
        self.0.as_raw_nonzero().get()
    }
}

impl Drop for Shepherd {
    fn drop(&mut self) {
        reaper::reap_then(self.0, self.1.take());
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
/// `/dev/null`; stderr follows [`Command::stderr`]. In PTY mode stdout is
/// the master, stdin a duplicate of it (whatever `stdin_pipe` says) and
/// stderr `None`. The shepherd enforces the timeout (the exit report's
/// `stopped` says `Deadline`), the stop sequence and the cgroup; the
/// command's input, `max_output` and idle timeout are not used: the
/// embedder does that.
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
        let pty = req.pty.is_some();
        let request = launch::Request::new(req, &program)?;
        let launched = launch::launch(request, None, program, cwd, passed, plan).await?;
        let shepherd = Shepherd(launched.shepherd_pid, launched.cgroup);
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
        let (stdin, stdout, stderr) = if pty {
            // The master alone was passed.
            let master = next(StdioMode::Pipe)?.ok_or_else(|| {
                Error::Shepherd(ShepherdError::Protocol(
                    "PTY mode: no master descriptor in Spawned".into(),
                ))
            })?;
            (Some(sys::dup(&master)?), Some(master), None)
        } else {
            (next(modes[0])?, next(modes[1])?, next(modes[2])?)
        };
        Ok(RawChild {
            child_pid: launched.child_pid,
            shepherd,
            control,
            decoder: ControlDecoder { frames },
            stdin,
            stdout,
            stderr,
            pty,
        })
    }
}

/// What to write to a PTY master to deliver end of file to the program, as
/// [`Process::close_stdin`](crate::Process::close_stdin) does: the
/// terminal's VEOF character (as it is set now), once at the start of a
/// line, twice after a partial line (`at_line_start` false: the last byte
/// written was not `\n` or `\r`); once in raw mode; nothing when VEOF is
/// disabled.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use std::io::{Read, Write};
/// use net_runner::{raw, Command};
///
/// let mut cmd = Command::new("wc");
/// cmd.arg("-c").pty(24, 80);
/// let mut child = raw::spawn(&cmd, true).await?;
/// assert!(child.pty && child.stderr.is_none());
/// let mut master = std::fs::File::from(child.stdout.take().unwrap());
/// let mut stdin = std::fs::File::from(child.stdin.take().unwrap());
/// raw::set_window_size(&master, 30, 100)?;
/// stdin.write_all(b"abc")?;
/// stdin.write_all(&raw::pty_eof_bytes(&stdin, false)?)?; // ^D ^D
/// drop(stdin);
/// let mut screen = Vec::new();
/// loop {
///     let mut buf = [0u8; 64];
///     match master.read(&mut buf) {
///         Ok(0) => break,
///         Ok(n) => screen.extend_from_slice(&buf[..n]),
///         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
///             tokio::time::sleep(std::time::Duration::from_millis(5)).await
///         }
///         Err(e) if e.raw_os_error() == Some(libc::EIO) => break, // end of file
///         Err(e) => return Err(e.into()),
///     }
/// }
/// assert_eq!(screen, b"abc3\r\n");
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// The `tcgetattr` failure (not a terminal).
pub fn pty_eof_bytes(master: impl AsFd, at_line_start: bool) -> io::Result<Vec<u8>> {
    LineState { at_line_start }.eof_bytes(master)
}

/// Sets the terminal size through the master, as
/// [`Process::set_window_size`](crate::Process::set_window_size).
///
/// # Errors
///
/// [`Error::InvalidOption`] for 0 or more than
/// [`Pty::MAX_SIZE`](crate::Pty::MAX_SIZE) rows or columns;
/// [`Error::Io`] if the ioctl fails (not a terminal).
pub fn set_window_size(master: impl AsFd, rows: u16, cols: u16) -> Result<(), Error> {
    crate::pty::set_size(master, rows, cols)
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

/// The frame setting the terminal size. The shepherd keeps no copy of the
/// PTY master and answers it with an `Error` message: resize through the
/// master with [`set_window_size`].
pub fn window_size_frame(rows: u16, cols: u16) -> Vec<u8> {
    encode(&ToShepherd::SetWindowSize(WindowSize { rows, cols }))
}

fn encode(msg: &ToShepherd) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16);
    msg.encode(&mut bytes);
    bytes
}
