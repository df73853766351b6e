//! The one error type of the library.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Output, Resource};

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
    /// A builder option holds a value that can never work (a nice value
    /// outside -20..=19, a umask above 0o777, an rlimit whose soft limit is
    /// above its hard one, the id -1). Reported before anything starts.
    ///
    /// ```
    /// use net_runner::{Command, Error};
    /// let err = Command::new("true").nice(40).run_blocking().unwrap_err();
    /// assert!(matches!(err, Error::InvalidOption { option: "nice", .. }));
    /// assert_eq!(err.to_string(), "invalid nice: 40 is outside -20..=19");
    /// ```
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        /// The builder method: "uid", "gid", "groups", "umask", "nice", "rlimit".
        option: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// The command's one-shot input ([`input_stream`](crate::Command::input_stream),
    /// [`input_reader`](crate::Command::input_reader)) was taken by an
    /// earlier run of this command or of a clone of it. Nothing was started.
    #[error("the command's input stream or reader was used by an earlier run (give each run its own, or use input(bytes))")]
    InputConsumed,
    /// A line of output is longer than the stream's limit
    /// ([`ProcessStream::set_max_line_length`](crate::ProcessStream::set_max_line_length));
    /// that line was dropped.
    #[error("output line longer than {limit} bytes")]
    LineTooLong {
        /// The limit in force.
        limit: usize,
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
    /// The program exists, but the interpreter that runs it does not: the
    /// one its `#!` line names, or an ELF program's loader. (`execve` says
    /// `ENOENT` for both; the shepherd checks the program is there.)
    ///
    /// ```
    /// # use std::os::unix::fs::PermissionsExt;
    /// use net_runner::{Command, Error};
    /// let path = std::env::temp_dir().join(format!("nr-doc-interp-{}", std::process::id()));
    /// std::fs::write(&path, "#!/no/such/python9\n")?;
    /// std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    /// let err = Command::new(&path).run_blocking().unwrap_err();
    /// std::fs::remove_file(&path)?;
    /// assert!(matches!(&err, Error::InterpreterNotFound { interpreter, .. } if interpreter == "/no/such/python9"));
    /// assert!(err.to_string().starts_with("interpreter not found: /no/such/python9 (for "));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("{}", interpreter_message(.program, .interpreter))]
    InterpreterNotFound {
        /// The program's path, as found in `PATH`.
        program: OsString,
        /// What its `#!` line names, or an ELF program's loader
        /// (`PT_INTERP`); empty when the file could not be read to say.
        interpreter: OsString,
    },
    /// A `NETRUNNER_*` environment variable the library reads holds a value
    /// it cannot use. Reported by every spawn while it is set so.
    ///
    /// ```
    /// let err = net_runner::Error::InvalidEnvVar {
    ///     name: "NETRUNNER_PRESTART",
    ///     value: "abc".into(),
    ///     reason: "expected a number of shepherds (0 turns pre-starting off)".into(),
    /// };
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid NETRUNNER_PRESTART=\"abc\": expected a number of shepherds (0 turns pre-starting off)"
    /// );
    /// ```
    #[error("invalid {name}={:?}: {reason}", .value.to_string_lossy())]
    InvalidEnvVar {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: OsString,
        /// What is wrong with it.
        reason: String,
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
        stage: SpawnStage,
        /// The error of that step.
        source: io::Error,
    },
    /// The timeout expired; the shepherd ran the stop sequence. Carries
    /// everything read, including what the program wrote while it shut
    /// down, and its real exit status (exit 0 from a trap handler, say).
    #[error("timed out after {timeout:?} (then {}){}", .output.status, StderrTail(&.output.stderr))]
    Timeout {
        /// The configured timeout.
        timeout: Duration,
        /// Output read until the process was gone, with the final status and stats.
        output: Box<Output>,
    },
    /// No output for `idle_timeout`; the process was stopped as on a timeout.
    #[error("no output for {timeout:?} (idle timeout; then {}){}", .output.status, StderrTail(&.output.stderr))]
    IdleTimeout {
        /// The configured idle timeout.
        timeout: Duration,
        /// Output read until the process was gone, with the final status and stats.
        output: Box<Output>,
    },
    /// Output exceeded `max_output`; the process was stopped. Carries
    /// exactly the first `limit` bytes of the stream that overflowed (the
    /// rest of it was drained and discarded while the process stopped).
    #[error("output exceeded the {limit}-byte limit (then {}){}", .output.status, StderrTail(&.output.stderr))]
    MaxOutputExceeded {
        /// The configured limit.
        limit: u64,
        /// Output up to the limit, with the final status and stats.
        output: Box<Output>,
    },
    /// A read of a [`Process`](crate::Process) stream (`read`,
    /// `read_stderr`, a `take_stdout` reader) went past `max_output`: exactly
    /// `limit` bytes were delivered, and the process's stop sequence started.
    /// Its exit status comes from [`Process::wait`](crate::Process::wait).
    #[error("{stream} exceeded the {limit}-byte limit; the process is being stopped")]
    OutputLimit {
        /// `"stdout"` or `"stderr"`.
        stream: &'static str,
        /// The configured limit.
        limit: u64,
    },
    /// The program exited, but processes it left behind (with
    /// `kill_leftovers(false)`) still held its output pipes open after the
    /// `leftover_wait` bound: reading stopped there instead of hanging.
    #[error("the program exited ({}), but pids {pids:?} still hold its output open", .output.status)]
    LeftoverHolders {
        /// The processes that hold the pipes, found through `/proc`
        /// (empty if they could not be identified).
        pids: Vec<u32>,
        /// Everything read until then, with the exit status and stats.
        output: Box<Output>,
    },
    /// [`Output::exit_ok`](crate::Output::exit_ok) on a run that did not
    /// exit with 0.
    #[error("{}{}", .output.status, StderrTail(&.output.stderr))]
    Failed {
        /// The run's output, status and stats.
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
    /// A terminal operation ([`Process::set_window_size`](crate::Process::set_window_size))
    /// on a process that does not run on a pseudo-terminal
    /// ([`Command::pty`](crate::Command::pty)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let p = net_runner::Command::new("sleep").arg("1").spawn().await?;
    /// assert!(matches!(p.set_window_size(24, 80), Err(net_runner::Error::NotATerminal)));
    /// # Ok(()) }
    /// ```
    #[error("the process does not run on a terminal (see Command::pty)")]
    NotATerminal,
    /// A signal name or number that is not a known POSIX signal.
    #[error("unknown signal {0:?}")]
    InvalidSignal(String),
    /// The command's cgroup could not be set up (bad path, no hierarchy, a
    /// limit no hierarchy can apply, no permission, ...). Nothing ran.
    #[error("cgroup: {0}")]
    Cgroup(crate::CgroupError),
    /// The shepherd went away, broke the protocol or refused a request.
    #[error("shepherd: {0}")]
    Shepherd(ShepherdError),
    /// An I/O error on a pipe or the control channel.
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn interpreter_message(program: &OsString, interpreter: &OsString) -> String {
    let program = program.to_string_lossy();
    if interpreter.is_empty() {
        format!("cannot run {program}: its interpreter (ELF loader) was not found")
    } else {
        format!(
            "interpreter not found: {} (for {program})",
            interpreter.to_string_lossy()
        )
    }
}

impl Error {
    /// The library error inside an `io::Error` produced by a stream, if any.
    ///
    /// [`ProcessStream`](crate::ProcessStream) yields `io::Result`; errors
    /// such as a timeout travel inside the `io::Error` and come back out here.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use std::time::Duration;
    /// use net_runner::{Command, Error};
    /// let mut s = Command::new("sleep").arg("10").timeout(Duration::from_millis(50)).stream().await?;
    /// let err = s.next_chunk().await.unwrap_err();
    /// assert!(matches!(Error::from_io(&err), Some(Error::Timeout { .. })));
    /// # Ok(()) }
    /// ```
    pub fn from_io(err: &io::Error) -> Option<&Error> {
        err.get_ref()?.downcast_ref::<Error>()
    }

    /// The last few KiB of the program's stderr carried by this error
    /// (timeouts, limits, [`Error::Failed`]), if any: the part to log.
    pub fn stderr_tail(&self) -> Option<&[u8]> {
        let stderr = &self.output()?.stderr;
        (!stderr.is_empty()).then(|| tail(stderr))
    }

    /// The output, status and stats this error carries, if any.
    pub fn output(&self) -> Option<&Output> {
        match self {
            Error::Timeout { output, .. }
            | Error::IdleTimeout { output, .. }
            | Error::MaxOutputExceeded { output, .. }
            | Error::LeftoverHolders { output, .. }
            | Error::Failed { output } => Some(output),
            _ => None,
        }
    }

    pub(crate) fn into_io(self) -> io::Error {
        match self {
            Error::Io(e) => e,
            other => {
                let kind = match &other {
                    Error::Timeout { .. } | Error::IdleTimeout { .. } => io::ErrorKind::TimedOut,
                    Error::NotFound { .. } | Error::CwdNotFound { .. } => io::ErrorKind::NotFound,
                    Error::PermissionDenied { .. } => io::ErrorKind::PermissionDenied,
                    _ => io::ErrorKind::Other,
                };
                io::Error::new(kind, other)
            }
        }
    }
}

/// How much of stderr errors keep for logs.
pub(crate) const STDERR_TAIL: usize = 4096;

/// The last [`STDERR_TAIL`] bytes, starting at a line when one starts there.
fn tail(stderr: &[u8]) -> &[u8] {
    if stderr.len() <= STDERR_TAIL {
        return stderr;
    }
    let cut = &stderr[stderr.len() - STDERR_TAIL..];
    match cut.iter().position(|&b| b == b'\n') {
        Some(i) if i + 1 < cut.len() => &cut[i + 1..],
        _ => cut,
    }
}

/// Formats `; stderr: ...` with the tail of stderr, nothing when empty.
struct StderrTail<'a>(&'a [u8]);

impl std::fmt::Display for StderrTail<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = String::from_utf8_lossy(tail(self.0));
        let text = text.trim_end();
        if text.is_empty() {
            Ok(())
        } else {
            write!(f, "; stderr: {text}")
        }
    }
}

/// The step of starting a child that failed, in [`Error::Spawn`].
///
/// ```
/// use net_runner::{Command, Error, SpawnStage};
/// // One argument over the kernel's 128 KiB limit: execve fails with E2BIG.
/// let err = Command::new("true").arg("y".repeat(1 << 20)).run_blocking().unwrap_err();
/// assert!(matches!(err, Error::Spawn { stage: SpawnStage::Exec, .. }));
/// assert_eq!(SpawnStage::Exec.to_string(), "exec");
/// assert_eq!(SpawnStage::SetUid(1000).to_string(), "setuid(1000)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpawnStage {
    /// Starting the shepherd process (its binary, the socket pair, the
    /// reaper thread).
    StartShepherd,
    /// Talking to the shepherd: sending the request, receiving the pipes.
    ControlSocket,
    /// Creating the child's pipes (in the shepherd).
    Pipes,
    /// Creating the child process.
    Fork,
    /// Entering the working directory.
    Chdir,
    /// Setting up the child before exec (stdio, process group, signals).
    ChildSetup,
    /// Executing the program.
    Exec,
    /// `setgroups`: [`Command::groups`](crate::Command::groups), or
    /// dropping the groups for a [`uid`](crate::Command::uid).
    SetGroups,
    /// `setgid` to this group: [`Command::gid`](crate::Command::gid).
    SetGid(u32),
    /// `setuid` to this user: [`Command::uid`](crate::Command::uid).
    SetUid(u32),
    /// `setrlimit` of this resource: [`Command::rlimit`](crate::Command::rlimit).
    Rlimit(Resource),
    /// `setpriority` to this nice value: [`Command::nice`](crate::Command::nice).
    Nice(i32),
    /// `prctl(PR_SET_NO_NEW_PRIVS)`: [`Command::no_new_privs`](crate::Command::no_new_privs).
    NoNewPrivs,
}

/// The request's values that name a failed setup step.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StageValues {
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) nice: Option<i32>,
}

impl SpawnStage {
    pub(crate) fn from_wire(stage: net_runner_proto::SpawnStage, values: StageValues) -> Self {
        use net_runner_proto::SpawnStage as Wire;
        match stage {
            Wire::Stdio => SpawnStage::Pipes,
            Wire::Fork => SpawnStage::Fork,
            Wire::Chdir => SpawnStage::Chdir,
            Wire::Setup => SpawnStage::ChildSetup,
            Wire::Exec => SpawnStage::Exec,
            Wire::SetGroups => SpawnStage::SetGroups,
            Wire::SetGid => SpawnStage::SetGid(values.gid.unwrap_or(u32::MAX)),
            Wire::SetUid => SpawnStage::SetUid(values.uid.unwrap_or(u32::MAX)),
            Wire::Rlimit(r) => SpawnStage::Rlimit(Resource::from_wire(r)),
            Wire::Nice => SpawnStage::Nice(values.nice.unwrap_or(0)),
            Wire::NoNewPrivs => SpawnStage::NoNewPrivs,
            // Reported as `Error::Cgroup` by the launch; never shown.
            Wire::CgroupPlace(_) => SpawnStage::ChildSetup,
        }
    }
}

impl std::fmt::Display for SpawnStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            SpawnStage::SetGid(gid) => return write!(f, "setgid({gid})"),
            SpawnStage::SetUid(uid) => return write!(f, "setuid({uid})"),
            SpawnStage::Rlimit(r) => return write!(f, "setrlimit({r})"),
            SpawnStage::Nice(n) => return write!(f, "setpriority(nice {n})"),
            SpawnStage::SetGroups => "setgroups",
            SpawnStage::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            SpawnStage::StartShepherd => "starting the shepherd",
            SpawnStage::ControlSocket => "control socket",
            SpawnStage::Pipes => "creating pipes or the PTY",
            SpawnStage::Fork => "fork",
            SpawnStage::Chdir => "chdir",
            SpawnStage::ChildSetup => "child setup",
            SpawnStage::Exec => "exec",
        };
        f.write_str(name)
    }
}

/// How the shepherd failed, in [`Error::Shepherd`].
///
/// ```
/// use net_runner::ShepherdError;
/// let e = ShepherdError::Lost;
/// assert!(e.to_string().contains("exited"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShepherdError {
    /// The shepherd exited (killed, or crashed) before reporting the
    /// child's exit. The library then killed the child's process group.
    #[error(
        "shepherd exited without reporting the child's exit (the child's process group was killed)"
    )]
    Lost,
    /// The shepherd exited before it answered a spawn request.
    #[error("shepherd exited before answering the spawn request")]
    LostDuringSpawn,
    /// A malformed, unexpected or wrong-version message.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The shepherd refused a request, with its reason.
    #[error("refused: {0}")]
    Refused(String),
}

/// Shorthand for results of this crate.
///
/// ```
/// fn list() -> net_runner::Result<Vec<u8>> {
///     Ok(net_runner::Command::new("ls").arg("/").run_blocking()?.stdout)
/// }
/// assert!(!list()?.is_empty());
/// # Ok::<(), net_runner::Error>(())
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
