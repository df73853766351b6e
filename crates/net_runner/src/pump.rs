//! The engine behind `run` and the streams: reads stdout and stderr as
//! asked, feeds stdin concurrently, enforces the timeout (see
//! [`crate::deadline`]) and `max_output`, and finally waits for the exit.
//! One place for all of it, so `run`, the streams and the CLI behave alike.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use crate::deadline::Deadline;
use crate::input::{feed, Input};
use crate::pipe::{ChildStderr, ChildStdout, CHUNK};
use crate::{Error, ExitStatus, Output, Process};

/// A piece of output, tagged with the stream it came from.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use futures_util::StreamExt;
/// use net_runner::{Chunk, Command};
/// let mut s = Command::new("sh").args(["-c", "echo out; echo err >&2"]).stream_tagged().await?;
/// let (mut out, mut err) = (Vec::new(), Vec::new());
/// while let Some(chunk) = s.next().await {
///     match chunk? {
///         Chunk::Stdout(b) => out.extend_from_slice(&b),
///         Chunk::Stderr(b) => err.extend_from_slice(&b),
///     }
/// }
/// assert_eq!((&out[..], &err[..]), (&b"out\n"[..], &b"err\n"[..]));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// From stdout (or stderr redirected into it).
    Stdout(Bytes),
    /// From stderr.
    Stderr(Bytes),
}

/// Why the pump stopped the process early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    Timeout(Duration),
    MaxOutput(u64),
}

type Feeder = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

pub(crate) struct Pump {
    pub(crate) process: Process,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    feeder: Option<Feeder>,
    deadline: Option<Deadline>,
    max_output: Option<u64>,
    out_seen: u64,
    err_seen: u64,
    /// Set when a chunk was cut at `max_output`: the next call aborts.
    pending_abort: Option<Abort>,
    /// The exit status once the pump is done; `finished` without a status
    /// means it failed.
    status: Option<ExitStatus>,
    finished: bool,
}

/// One step of the pump.
pub(crate) type Step = Result<Chunk, PumpError>;

#[derive(Debug)]
pub(crate) enum PumpError {
    /// The process was stopped for this reason and exited with `status`.
    Aborted {
        reason: Abort,
        status: ExitStatus,
    },
    Failed(Error),
}

impl From<Error> for PumpError {
    fn from(e: Error) -> Self {
        PumpError::Failed(e)
    }
}

impl Pump {
    pub(crate) fn new(
        mut process: Process,
        input: Option<Input>,
        timeout: Option<Duration>,
        max_output: Option<u64>,
    ) -> Self {
        let feeder = match (process.take_stdin(), input) {
            (Some(stdin), Some(input)) => Some(Box::pin(feed(stdin, input)) as Feeder),
            _ => None,
        };
        Pump {
            deadline: timeout.map(|t| Deadline::start(t, process.handle())),
            stdout: process.take_stdout(),
            stderr: process.take_stderr(),
            process,
            feeder,
            max_output,
            out_seen: 0,
            err_seen: 0,
            pending_abort: None,
            status: None,
            finished: false,
        }
    }

    /// The exit status, once [`next`](Self::next) returned `None`.
    pub(crate) fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// The timeout, once its deadline has passed. Checked before anything
    /// else, so a child the deadline stopped is reported as timed out, not
    /// by its exit status, and no chunk is returned after the deadline.
    fn timed_out(&self) -> Option<Abort> {
        let deadline = self.deadline.as_ref()?;
        deadline.passed().then(|| Abort::Timeout(deadline.limit()))
    }

    /// The next chunk, an error, or `None` once the child exited and all
    /// output was read (the status is then in [`status`](Self::status)).
    pub(crate) async fn next(&mut self) -> Option<Step> {
        if self.finished {
            return None;
        }
        if let Some(reason) = self.pending_abort.take() {
            return Some(self.abort(reason).await);
        }
        loop {
            if let Some(reason) = self.timed_out() {
                return Some(self.abort(reason).await);
            }
            if self.stdout.is_none() && self.stderr.is_none() {
                return self.finish().await.err().map(Err);
            }
            tokio::select! {
                () = expired(&self.deadline) => {}
                r = read(&mut self.stdout) => match r {
                    Ok(Some(b)) => return Some(self.limit(b, true).map(Chunk::Stdout)),
                    Ok(None) => self.stdout = None,
                    Err(e) => return Some(self.fail(e.into())),
                },
                r = read(&mut self.stderr) => match r {
                    Ok(Some(b)) => return Some(self.limit(b, false).map(Chunk::Stderr)),
                    Ok(None) => self.stderr = None,
                    Err(e) => return Some(self.fail(e.into())),
                },
                r = feeding(&mut self.feeder) => {
                    self.feeder = None;
                    if let Err(e) = r {
                        return Some(self.fail(e.into()));
                    }
                }
                // Never completes; handles the control channel meanwhile
                // (a lost shepherd gets the group killed, ending the reads).
                () = self.process.watch() => {}
            }
        }
    }

    /// Output is done: wait for the exit (still feeding stdin meanwhile:
    /// a child may read its input after closing its output).
    async fn finish(&mut self) -> Result<(), PumpError> {
        loop {
            if let Some(reason) = self.timed_out() {
                return self.abort(reason).await.map(drop);
            }
            tokio::select! {
                () = expired(&self.deadline) => {}
                r = self.process.wait() => {
                    self.finished = true;
                    if let Some(d) = &self.deadline {
                        d.cancel();
                    }
                    self.feeder = None;
                    self.status = Some(r?);
                    return Ok(());
                }
                r = feeding(&mut self.feeder) => {
                    self.feeder = None;
                    if let Err(e) = r {
                        return self.fail(e.into()).map(drop);
                    }
                }
            }
        }
    }

    /// Applies `max_output` to a chunk of stdout (`is_out`) or stderr.
    fn limit(&mut self, mut chunk: Bytes, is_out: bool) -> Result<Bytes, PumpError> {
        let seen = if is_out {
            &mut self.out_seen
        } else {
            &mut self.err_seen
        };
        if let Some(max) = self.max_output {
            let room = max.saturating_sub(*seen);
            if chunk.len() as u64 > room {
                chunk.truncate(room as usize);
                self.pending_abort = Some(Abort::MaxOutput(max));
            }
        }
        *seen += chunk.len() as u64;
        Ok(chunk)
    }

    /// Stops reading, terminates the tree (SIGTERM, SIGKILL after the kill
    /// timeout) and waits for the exit.
    async fn abort(&mut self, reason: Abort) -> Step {
        self.stdout = None;
        self.stderr = None;
        self.feeder = None;
        self.finished = true;
        if let Err(e) = self.process.start_shutdown() {
            return Err(e.into());
        }
        let status = self.process.wait().await?;
        self.status = Some(status);
        Err(PumpError::Aborted { reason, status })
    }

    fn fail(&mut self, e: Error) -> Step {
        self.finished = true;
        Err(PumpError::Failed(e))
    }

    /// Drives to the end, collecting everything: the body of `run`.
    pub(crate) async fn collect(mut self) -> Result<Output, Error> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(step) = self.next().await {
            match step {
                Ok(Chunk::Stdout(b)) => stdout.extend_from_slice(&b),
                Ok(Chunk::Stderr(b)) => stderr.extend_from_slice(&b),
                Err(e) => return Err(self.error_with_output(e, stdout, stderr)),
            }
        }
        match self.status {
            Some(status) => Ok(self.output(status, stdout, stderr)),
            // `next` ends only after storing the status.
            None => Err(Error::Shepherd(crate::ShepherdError::Lost)),
        }
    }

    fn output(&self, status: ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>) -> Output {
        Output {
            stdout,
            stderr,
            status,
            stats: self.process.stats(),
        }
    }

    /// Turns a pump error into the public error, attaching partial output.
    pub(crate) fn error_with_output(
        &self,
        e: PumpError,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) -> Error {
        match e {
            PumpError::Failed(e) => e,
            PumpError::Aborted {
                reason: Abort::Timeout(timeout),
                status,
            } => Error::Timeout {
                timeout,
                output: Box::new(self.output(status, stdout, stderr)),
            },
            PumpError::Aborted {
                reason: Abort::MaxOutput(limit),
                status,
            } => Error::MaxOutputExceeded {
                limit,
                output: Box::new(self.output(status, stdout, stderr)),
            },
        }
    }
}

/// Completes when the deadline passes; never without one.
async fn expired(deadline: &Option<Deadline>) {
    match deadline {
        Some(d) => d.expired().await,
        None => std::future::pending().await,
    }
}

/// The next chunk of an output pipe; never once it is gone.
async fn read<R: ReadChunk>(pipe: &mut Option<R>) -> io::Result<Option<Bytes>> {
    match pipe {
        Some(p) => p.chunk().await,
        None => std::future::pending().await,
    }
}

/// Both output readers, for [`read`].
trait ReadChunk {
    fn chunk(&mut self) -> impl Future<Output = io::Result<Option<Bytes>>>;
}

impl ReadChunk for ChildStdout {
    fn chunk(&mut self) -> impl Future<Output = io::Result<Option<Bytes>>> {
        self.read_chunk(CHUNK)
    }
}

impl ReadChunk for ChildStderr {
    fn chunk(&mut self) -> impl Future<Output = io::Result<Option<Bytes>>> {
        self.read_chunk(CHUNK)
    }
}

async fn feeding(feeder: &mut Option<Feeder>) -> io::Result<()> {
    match feeder {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
