//! The one error type of the library.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::Output;

/// Everything that can go wrong. Bad input is reported here, never by a panic.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use net_runner::{Command, Error};
/// let err = Command::new("no-such-program-xyz").run().await.unwrap_err();
/// assert!(matches!(err, Error::NotFound { .. }));
/// let err = Command::new("").run().await.unwrap_err();
/// assert!(matches!(err, Error::EmptyProgram));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The program name is empty.
    #[error("program name is empty")]
    EmptyProgram,
    /// A program, argument, environment entry or cwd holds a NUL byte.
    #[error("{what} contains a NUL byte")]
    NulByte {
        /// Which input: "program", "argument", "environment", "cwd".
        what: &'static str,
    },
    /// An environment variable name is empty or contains `=`.
    #[error("invalid environment variable name {0:?}")]
    InvalidEnvName(OsString),
    /// The program was not found (no such file, or not in `PATH`).
    #[error("program not found: {}", .program.to_string_lossy())]
    NotFound {
        /// The program as given.
        program: OsString,
    },
    /// The program exists but may not be executed.
    #[error("permission denied: {} is not executable", .program.to_string_lossy())]
    PermissionDenied {
        /// The program as given.
        program: OsString,
    },
    /// The working directory does not exist.
    #[error("working directory not found: {}", .path.display())]
    CwdNotFound {
        /// The directory as given.
        path: PathBuf,
    },
    /// The working directory exists but cannot be entered.
    #[error("cannot enter working directory {}: {source}", .path.display())]
    Cwd {
        /// The directory as given.
        path: PathBuf,
        /// The `chdir` error.
        source: io::Error,
    },
    /// The child could not be started for another reason (E2BIG, ENOEXEC,
    /// EMFILE, ...).
    #[error("cannot start {}: {stage} failed: {source}", .program.to_string_lossy())]
    Spawn {
        /// The program as given.
        program: OsString,
        /// The step that failed.
        stage: &'static str,
        /// The error of that step.
        source: io::Error,
    },
    /// The timeout expired; the process tree was terminated. Carries what was
    /// read until then.
    #[error("timed out after {timeout:?}")]
    Timeout {
        /// The configured timeout.
        timeout: Duration,
        /// Output read before the timeout, with the final status and stats.
        output: Box<Output>,
    },
    /// Output exceeded `max_output`; the process tree was terminated. Carries
    /// exactly the first `limit` bytes of the stream that overflowed.
    #[error("output exceeded the {limit}-byte limit")]
    MaxOutputExceeded {
        /// The configured limit.
        limit: u64,
        /// Output up to the limit, with the final status and stats.
        output: Box<Output>,
    },
    /// [`Process::read`](crate::Process::read) or
    /// [`read_stderr`](crate::Process::read_stderr) after that stream was
    /// taken with `take_stdout` / `take_stderr`: read the taken reader.
    #[error("{stream} was taken with take_{stream}(): read from the taken reader")]
    StreamTaken {
        /// `"stdout"` or `"stderr"`.
        stream: &'static str,
    },
    /// An async method was polled outside a tokio runtime. Use
    /// [`Command::run_blocking`](crate::Command::run_blocking) there.
    #[error("net_runner needs a tokio runtime (with I/O and time enabled); without one, use run_blocking")]
    NoRuntime,
    /// A signal name or number that is not a known POSIX signal.
    #[error("unknown signal {0:?}")]
    InvalidSignal(String),
    /// The shepherd is missing, refused the request, or went away.
    #[error("shepherd: {0}")]
    Shepherd(String),
    /// An I/O error on a pipe or the control channel.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Error {
    /// The library error inside an `io::Error` produced by a stream, if any.
    ///
    /// [`ProcessStream`](crate::ProcessStream) yields `io::Result`; errors
    /// such as a timeout travel inside the `io::Error` and come back out here.
    pub fn from_io(err: &io::Error) -> Option<&Error> {
        err.get_ref()?.downcast_ref::<Error>()
    }

    pub(crate) fn into_io(self) -> io::Error {
        match self {
            Error::Io(e) => e,
            other => {
                let kind = match &other {
                    Error::Timeout { .. } => io::ErrorKind::TimedOut,
                    Error::NotFound { .. } | Error::CwdNotFound { .. } => io::ErrorKind::NotFound,
                    Error::PermissionDenied { .. } => io::ErrorKind::PermissionDenied,
                    _ => io::ErrorKind::Other,
                };
                io::Error::new(kind, other)
            }
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
