//! The `Command` builder: what to run and how.

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;
use net_runner_proto::{SpawnRequest, StdioMode};
use tokio::io::AsyncRead;

use crate::input::Input;
use crate::pump::Pump;
use crate::{launch, Error, Output, Process, ProcessStream, TaggedStream};

/// Where the child's stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Stderr {
    /// Read separately: [`Output::stderr`], [`Process::read_stderr`], tagged
    /// stream chunks.
    #[default]
    Consume,
    /// Into the stdout pipe, like `2>&1`.
    Redirect,
    /// To `/dev/null`.
    Discard,
    /// The owner's own stderr.
    Inherit,
}

/// Describes a process to run. Builder methods take and return `self`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use std::time::Duration;
/// use net_runner::Command;
///
/// let out = Command::new("sort")
///     .input("b\na\n")
///     .timeout(Duration::from_secs(5))
///     .run()
///     .await?;
/// assert_eq!(out.stdout, b"a\nb\n");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    env_clear: bool,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    input: Option<Input>,
    stderr: Stderr,
    kill_timeout: Duration,
    timeout: Option<Duration>,
    max_output: Option<u64>,
    kill_leftovers: bool,
}

/// The default grace period between SIGTERM and SIGKILL.
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(5);

impl Command {
    /// A command running `program` (searched in `PATH` when it has no `/`).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env_clear: false,
            env: Vec::new(),
            cwd: None,
            input: None,
            stderr: Stderr::Consume,
            kill_timeout: DEFAULT_KILL_TIMEOUT,
            timeout: None,
            max_output: None,
            kill_leftovers: true,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Sets several environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the child with an empty environment (plus what `env` sets after).
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// The child's working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Bytes to feed to stdin (then stdin is closed).
    pub fn input(mut self, data: impl Into<Bytes>) -> Self {
        self.input = Some(Input::Bytes(data.into()));
        self
    }

    /// A stream of buffers to feed to stdin.
    pub fn input_stream(
        mut self,
        stream: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Self {
        self.input = Some(Input::Stream(Box::pin(stream)));
        self
    }

    /// A reader whose bytes feed stdin.
    pub fn input_reader(mut self, reader: impl AsyncRead + Send + 'static) -> Self {
        self.input = Some(Input::Reader(Box::pin(reader)));
        self
    }

    /// Where stderr goes (default: [`Stderr::Consume`]).
    pub fn stderr(mut self, mode: Stderr) -> Self {
        self.stderr = mode;
        self
    }

    /// Grace period between SIGTERM and SIGKILL (default 5 s), used on
    /// timeout, `max_output`, graceful shutdown and when the owner goes away.
    pub fn kill_timeout(mut self, timeout: Duration) -> Self {
        self.kill_timeout = timeout;
        self
    }

    /// Overall time limit for [`run`](Self::run) and the streams; on expiry
    /// the tree is terminated and [`Error::Timeout`] returned.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Limit on the bytes read from stdout and from stderr (each). When
    /// exceeded, the tree is terminated and [`Error::MaxOutputExceeded`]
    /// returned carrying exactly the first `limit` bytes.
    pub fn max_output(mut self, limit: u64) -> Self {
        self.max_output = Some(limit);
        self
    }

    /// Whether processes left in the child's group (or escaped from it)
    /// after the child exits are killed too (default: yes).
    pub fn kill_leftovers(mut self, kill: bool) -> Self {
        self.kill_leftovers = kill;
        self
    }

    /// Runs to completion and collects stdout, stderr, status and stats.
    /// Input is written while output is read, so any size works.
    ///
    /// Needs a tokio runtime with I/O and time enabled (`#[tokio::main]`
    /// has both); polled outside any tokio runtime it fails with
    /// [`Error::NoRuntime`]. Without tokio, use
    /// [`run_blocking`](Self::run_blocking).
    ///
    /// # Errors
    ///
    /// Bad input is reported before anything starts: [`Error::EmptyProgram`],
    /// [`Error::NulByte`], [`Error::InvalidEnvName`]. Starting can fail with
    /// [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::CwdNotFound`], [`Error::Cwd`], [`Error::Spawn`] (with the
    /// [`SpawnStage`](crate::SpawnStage) that failed: E2BIG, EMFILE, ...),
    /// [`Error::Shepherd`], or [`Error::NoRuntime`] outside tokio.
    /// Then [`Error::Timeout`] and [`Error::MaxOutputExceeded`] (both with
    /// the output read until then, the exit status and the stats), and
    /// [`Error::Io`] for a failed read or input stream.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the run: the process tree is terminated
    /// (SIGTERM, SIGKILL after the kill timeout) by its shepherd, and the
    /// output read so far is lost.
    pub async fn run(self) -> Result<Output, Error> {
        self.into_pump().await?.collect().await
    }

    /// Runs to completion on a private runtime, for callers without tokio.
    ///
    /// ```
    /// let out = net_runner::Command::new("echo").arg("hi").run_blocking()?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run), but never [`Error::NoRuntime`]: it brings its
    /// own runtime (on a fresh thread if called inside one).
    pub fn run_blocking(self) -> Result<Output, Error> {
        crate::blocking::block_on(self.run())
    }

    /// Starts the child and returns a handle for interactive use. Without an
    /// [`input`](Self::input), stdin is a pipe the caller writes with
    /// [`Process::write`]; with one, this is the same as `run` minus the
    /// collecting, and stdin is fed in a background task.
    ///
    /// Needs a tokio runtime with I/O and time enabled (`#[tokio::main]`
    /// has both); polled outside any tokio runtime it fails with
    /// [`Error::NoRuntime`]. Without tokio, use
    /// [`run_blocking`](Self::run_blocking).
    ///
    /// # Errors
    ///
    /// Bad input is reported before anything starts: [`Error::EmptyProgram`],
    /// [`Error::NulByte`], [`Error::InvalidEnvName`]. Starting can fail with
    /// [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::CwdNotFound`], [`Error::Cwd`], [`Error::Spawn`] (with the
    /// [`SpawnStage`](crate::SpawnStage) that failed: E2BIG, EMFILE, ...),
    /// [`Error::Shepherd`], or [`Error::NoRuntime`] outside tokio.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves nothing running: a
    /// child already started is terminated with its tree, and its shepherd
    /// is reaped.
    pub async fn spawn(mut self) -> Result<Process, Error> {
        let input = self.input.take();
        let mut process = self.launch(StdioMode::Pipe).await?;
        if let Some(input) = input {
            if let Some(stdin) = process.take_stdin() {
                tokio::spawn(crate::input::feed(stdin, input));
            }
        }
        Ok(process)
    }

    /// Starts the child and returns its stdout as a lazy stream of chunks:
    /// nothing is read until polled, so a slow consumer slows the child.
    /// Dropping the stream kills the process tree.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use futures_util::StreamExt;
    /// let mut s = net_runner::Command::new("seq").args(["1", "3"]).stream().await?;
    /// let mut all = Vec::new();
    /// while let Some(chunk) = s.next().await {
    ///     all.extend_from_slice(&chunk?);
    /// }
    /// assert_eq!(all, b"1\n2\n3\n");
    /// assert!(s.status().unwrap().success());
    /// # Ok(()) }
    /// ```
    ///
    /// Needs a tokio runtime with I/O and time enabled (`#[tokio::main]`
    /// has both); polled outside any tokio runtime it fails with
    /// [`Error::NoRuntime`]. Without tokio, use
    /// [`run_blocking`](Self::run_blocking).
    ///
    /// # Errors
    ///
    /// Bad input is reported before anything starts: [`Error::EmptyProgram`],
    /// [`Error::NulByte`], [`Error::InvalidEnvName`]. Starting can fail with
    /// [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::CwdNotFound`], [`Error::Cwd`], [`Error::Spawn`] (with the
    /// [`SpawnStage`](crate::SpawnStage) that failed: E2BIG, EMFILE, ...),
    /// [`Error::Shepherd`], or [`Error::NoRuntime`] outside tokio.
    /// Later failures (timeout, `max_output`, I/O) arrive as the stream's
    /// `Err` items; [`Error::from_io`] recovers the typed error.
    ///
    /// # Cancel safety
    ///
    /// As for [`spawn`](Self::spawn): nothing is left running.
    pub async fn stream(self) -> Result<ProcessStream, Error> {
        Ok(ProcessStream::new(self.into_pump().await?))
    }

    /// Like [`stream`](Self::stream), but yields stdout and stderr chunks
    /// tagged with their origin.
    ///
    /// Needs a tokio runtime with I/O and time enabled (`#[tokio::main]`
    /// has both); polled outside any tokio runtime it fails with
    /// [`Error::NoRuntime`]. Without tokio, use
    /// [`run_blocking`](Self::run_blocking).
    ///
    /// # Errors
    ///
    /// Bad input is reported before anything starts: [`Error::EmptyProgram`],
    /// [`Error::NulByte`], [`Error::InvalidEnvName`]. Starting can fail with
    /// [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::CwdNotFound`], [`Error::Cwd`], [`Error::Spawn`] (with the
    /// [`SpawnStage`](crate::SpawnStage) that failed: E2BIG, EMFILE, ...),
    /// [`Error::Shepherd`], or [`Error::NoRuntime`] outside tokio.
    ///
    /// # Cancel safety
    ///
    /// As for [`spawn`](Self::spawn): nothing is left running.
    pub async fn stream_tagged(self) -> Result<TaggedStream, Error> {
        Ok(TaggedStream::new(self.into_pump().await?))
    }

    async fn into_pump(mut self) -> Result<Pump, Error> {
        let input = self.input.take();
        let stdin = if input.is_some() {
            StdioMode::Pipe
        } else {
            StdioMode::Null
        };
        let (timeout, max_output) = (self.timeout, self.max_output);
        let process = self.launch(stdin).await?;
        Ok(Pump::new(process, input, timeout, max_output))
    }

    /// Validates, starts a shepherd and the child. The future owns what it
    /// needs, so it is `Send` whatever the input is.
    fn launch(
        &self,
        stdin: StdioMode,
    ) -> impl Future<Output = Result<Process, Error>> + Send + 'static {
        let started = Instant::now();
        let prepared = self
            .spawn_request(stdin)
            .map(|req| (req, self.program.clone(), self.cwd.clone()));
        async move {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(Error::NoRuntime);
            }
            let (req, program, cwd) = prepared?;
            let modes = [req.stdin, req.stdout, req.stderr];
            let launched = launch::launch(req, program, cwd).await?;
            Process::from_launched(launched, modes, started)
        }
    }

    /// Builds the wire request, checking every input first.
    fn spawn_request(&self, stdin: StdioMode) -> Result<SpawnRequest, Error> {
        if self.program.is_empty() {
            return Err(Error::EmptyProgram);
        }
        let no_nul = |bytes: &[u8], what: &'static str| {
            if bytes.contains(&0) {
                Err(Error::NulByte { what })
            } else {
                Ok(bytes.to_vec())
            }
        };
        let mut req = SpawnRequest::new(no_nul(self.program.as_bytes(), "program")?);
        req.args = self
            .args
            .iter()
            .map(|a| no_nul(a.as_bytes(), "argument"))
            .collect::<Result<_, _>>()?;
        // Always an absolute path, resolved now as std does: a pre-started
        // shepherd was started in whatever directory we had then.
        req.cwd = match &self.cwd {
            Some(c) if c.is_absolute() => Some(no_nul(c.as_os_str().as_bytes(), "cwd")?),
            Some(c) => {
                no_nul(c.as_os_str().as_bytes(), "cwd")?;
                let here = std::env::current_dir().map_err(|source| Error::Cwd {
                    path: c.clone(),
                    source,
                })?;
                Some(here.join(c).into_os_string().into_vec())
            }
            None => std::env::current_dir()
                .ok()
                .map(|c| c.into_os_string().into_vec()),
        };
        req.env = self.resolved_env()?;
        req.stdin = stdin;
        req.stdout = StdioMode::Pipe;
        req.stderr = match self.stderr {
            Stderr::Consume => StdioMode::Pipe,
            Stderr::Redirect => StdioMode::ToStdout,
            Stderr::Discard => StdioMode::Null,
            Stderr::Inherit => StdioMode::Inherit,
        };
        req.kill_timeout_ms = self.kill_timeout.as_millis().min(u64::MAX as u128) as u64;
        req.kill_leftovers = self.kill_leftovers;
        Ok(req)
    }

    /// What [`launch::launch`] takes, for [`crate::raw::spawn`]: the
    /// checked request, the program and the cwd as given.
    pub(crate) fn launch_parts(
        &self,
        stdin: StdioMode,
    ) -> Result<(SpawnRequest, OsString, Option<PathBuf>), Error> {
        Ok((
            self.spawn_request(stdin)?,
            self.program.clone(),
            self.cwd.clone(),
        ))
    }

    /// The child's complete environment as `KEY=VALUE` entries.
    fn resolved_env(&self) -> Result<Vec<Vec<u8>>, Error> {
        let mut vars: Vec<(OsString, OsString)> = if self.env_clear {
            Vec::new()
        } else {
            std::env::vars_os().collect()
        };
        for (key, value) in &self.env {
            let k = key.as_bytes();
            if k.is_empty() || k.contains(&b'=') {
                return Err(Error::InvalidEnvName(key.clone()));
            }
            if k.contains(&0) {
                return Err(Error::NulByte {
                    what: "environment",
                });
            }
            vars.retain(|(existing, _)| existing != key);
            if let Some(v) = value {
                if v.as_bytes().contains(&0) {
                    return Err(Error::NulByte {
                        what: "environment",
                    });
                }
                vars.push((key.clone(), v.clone()));
            }
        }
        Ok(vars
            .into_iter()
            .map(|(k, v)| {
                let mut entry = k.into_vec();
                entry.push(b'=');
                entry.extend_from_slice(v.as_bytes());
                entry
            })
            .collect())
    }
}
