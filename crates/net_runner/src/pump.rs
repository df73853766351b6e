//! The engine behind `run` and the streams: reads stdout and stderr as
//! asked, feeds stdin concurrently, enforces `max_output` and the idle
//! timeout, and finally waits for the exit. The overall timeout is the
//! shepherd's: the pump learns from the exit report that it fired. One
//! place for all of it, so `run`, the streams and the CLI behave alike.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use crate::input::{feed, Input};
use crate::pipe::{ChildStderr, ChildStdout, CHUNK};
use crate::process::{Waited, Watch};
use crate::stats::{STOP_IDLE, STOP_MAX_OUTPUT};
use crate::{Error, ExitStatus, Output, Process, ProcessEvent};

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

/// Why the process was stopped, or reading ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Abort {
    /// The shepherd's deadline fired (learnt from the exit report).
    Timeout(Duration),
    /// No output for this long.
    Idle(Duration),
    /// A stream went past the limit.
    MaxOutput(u64),
    /// The child exited but these pids kept the pipes open past the bound.
    Leftovers(Vec<u32>),
}

/// The library-side limits of `run` and the streams.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PumpLimits {
    pub(crate) max_output: Option<u64>,
    pub(crate) idle: Option<Duration>,
    /// Set with `kill_leftovers(false)`: how long to wait for end of file
    /// after the exit.
    pub(crate) leftover_wait: Option<Duration>,
    /// Leave a piped stdin without input open, with the process (a
    /// daemon's, for `Daemon::write`); otherwise it is closed at once.
    pub(crate) keep_stdin: bool,
}

type Feeder = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;
type Timer = Pin<Box<tokio::time::Sleep>>;

pub(crate) struct Pump {
    pub(crate) process: Process,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    feeder: Option<Feeder>,
    limits: PumpLimits,
    out_seen: u64,
    err_seen: u64,
    /// The stream went past `max_output`: the rest is read and discarded.
    out_over: bool,
    err_over: bool,
    /// Why the library started the stop sequence, if it did.
    stopping: Option<Abort>,
    /// Fires after `limits.idle` without a chunk; re-armed by every read.
    idle: Option<Timer>,
    /// Armed when the exit is known and kill_leftovers is off.
    leftovers: Option<Timer>,
    /// The exit status once the pump is done; `finished` without a status
    /// means it failed.
    status: Option<ExitStatus>,
    finished: bool,
}

/// One step of the pump.
pub(crate) type Step = Result<Chunk, PumpError>;

/// What [`Pump::next_event`] hands out: output, or a change in the
/// child's job state (stopped, continued) that a caller may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    Chunk(Chunk),
    /// [`ProcessEvent::Stopped`] or [`ProcessEvent::Continued`], never
    /// `Exited` (the end is `None`).
    Job(ProcessEvent),
}

/// One step of the pump, job events included.
pub(crate) type EventStep = Result<Event, PumpError>;

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
    pub(crate) fn new(mut process: Process, input: Option<Input>, limits: PumpLimits) -> Self {
        let feeder = match input {
            Some(input) => process
                .take_stdin()
                .map(|stdin| Box::pin(feed(stdin, input)) as Feeder),
            // A daemon's stdin stays with the process, for `Daemon::write`.
            None if limits.keep_stdin => None,
            // Otherwise it closes now: end of file at once, as `/dev/null`
            // would give (in PTY mode, the terminal's VEOF).
            None => {
                drop(process.take_stdin());
                None
            }
        };
        Pump {
            stdout: process.take_stdout(),
            stderr: process.take_stderr(),
            process,
            feeder,
            out_seen: 0,
            err_seen: 0,
            out_over: false,
            err_over: false,
            stopping: None,
            idle: limits.idle.map(|d| Box::pin(tokio::time::sleep(d))),
            leftovers: None,
            limits,
            status: None,
            finished: false,
        }
    }

    /// The exit status, once [`next`](Self::next) returned `None`.
    pub(crate) fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// The next chunk, an error, or `None` once the child exited and all
    /// output was read (the status is then in [`status`](Self::status)).
    ///
    /// Stopping never closes the pipes: after a timeout, `max_output` or
    /// an idle timeout, output is still read (what is within the limits is
    /// delivered, the overflowing stream discarded) until end of file on
    /// both pipes and the exit; only then does the error come.
    pub(crate) async fn next(&mut self) -> Option<Step> {
        loop {
            match self.next_event().await? {
                Ok(Event::Chunk(chunk)) => return Some(Ok(chunk)),
                Ok(Event::Job(_)) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// As [`next`](Self::next), and also each stop and continue of the
    /// child (the latest, when several happened since the last step) while
    /// it has not exited. The limits keep counting meanwhile.
    pub(crate) async fn next_event(&mut self) -> Option<EventStep> {
        if self.finished {
            return None;
        }
        loop {
            if self.stdout.is_none() && self.stderr.is_none() {
                return self.finish().await;
            }
            tokio::select! {
                r = read(&mut self.stdout) => match r {
                    Ok(Some(b)) => {
                        if let Some(b) = self.limit(b, true) {
                            return Some(Ok(Event::Chunk(Chunk::Stdout(b))));
                        }
                    }
                    Ok(None) => self.stdout = None,
                    Err(e) => return Some(self.fail(e.into())),
                },
                r = read(&mut self.stderr) => match r {
                    Ok(Some(b)) => {
                        if let Some(b) = self.limit(b, false) {
                            return Some(Ok(Event::Chunk(Chunk::Stderr(b))));
                        }
                    }
                    Ok(None) => self.stderr = None,
                    Err(e) => return Some(self.fail(e.into())),
                },
                r = feeding(&mut self.feeder) => {
                    self.feeder = None;
                    if let Err(e) = r {
                        return Some(self.fail(e.into()));
                    }
                }
                () = sleeping(&mut self.idle) => self.idle_expired(),
                () = sleeping(&mut self.leftovers) => {
                    let pids = pipe_holders(&self.stdout, &self.stderr);
                    self.stdout = None;
                    self.stderr = None;
                    return self.conclude(Some(pids)).await.err().map(Err);
                }
                // Handles the control channel meanwhile (a lost shepherd
                // gets the group killed, ending the reads); completes when
                // the exit report arrives, stdin is to be closed, or the
                // child stopped or continued.
                w = self.process.watch() => {
                    if let Some(event) = self.watched(w) {
                        return Some(Ok(Event::Job(event)));
                    }
                }
            }
        }
    }

    /// Acts on what [`Process::watch`] saw; a job event is handed back.
    fn watched(&mut self, w: Watch) -> Option<ProcessEvent> {
        match w {
            Watch::CloseStdin => self.feeder = None,
            Watch::Exited => {
                if let Some(d) = self.limits.leftover_wait {
                    self.leftovers = Some(Box::pin(tokio::time::sleep(d)));
                }
            }
            Watch::Job(event) => return Some(event),
        }
        None
    }

    fn idle_expired(&mut self) {
        self.idle = None;
        if let Some(d) = self.limits.idle {
            self.stop_for(Abort::Idle(d), STOP_IDLE);
        }
    }

    /// Output is done: wait for the exit (still feeding stdin meanwhile:
    /// a child may read its input after closing its output), handing out
    /// the child's stops and continues until then. `None` at the end.
    async fn finish(&mut self) -> Option<EventStep> {
        loop {
            tokio::select! {
                r = self.process.wait_or_close_stdin() => match r {
                    Waited::CloseStdin => self.feeder = None,
                    Waited::Job(event) => return Some(Ok(Event::Job(event))),
                    Waited::Exit(Err(e)) => {
                        self.finished = true;
                        return Some(Err(e.into()));
                    }
                    Waited::Exit(Ok(_)) => return self.conclude(None).await.err().map(Err),
                },
                r = feeding(&mut self.feeder) => {
                    self.feeder = None;
                    if let Err(e) = r {
                        return Some(self.fail(e.into()));
                    }
                }
                () = sleeping(&mut self.idle) => self.idle_expired(),
            }
        }
    }

    /// The end: the exit status, and the error if the process was stopped
    /// (the timeout first: the shepherd reports the first cause of its
    /// stop) or left holders of its pipes.
    async fn conclude(&mut self, leftovers: Option<Vec<u32>>) -> Result<(), PumpError> {
        self.finished = true;
        self.feeder = None;
        self.idle = None;
        self.leftovers = None;
        let status = self.process.wait_status().await?;
        self.status = Some(status);
        let reason = if self.process.deadline_fired() {
            Some(Abort::Timeout(self.process.timeout().unwrap_or_default()))
        } else {
            self.stopping.take().or(leftovers.map(Abort::Leftovers))
        };
        match reason {
            Some(reason) => Err(PumpError::Aborted { reason, status }),
            None => Ok(()),
        }
    }

    /// Applies `max_output` to a chunk of stdout (`is_out`) or stderr:
    /// what fits is delivered; past the limit the stop sequence starts and
    /// the rest of that stream is discarded (`None`).
    fn limit(&mut self, mut chunk: Bytes, is_out: bool) -> Option<Bytes> {
        if let (Some(idle), Some(d)) = (self.idle.as_mut(), self.limits.idle) {
            idle.as_mut().reset(tokio::time::Instant::now() + d);
        }
        let (seen, over) = if is_out {
            (&mut self.out_seen, &mut self.out_over)
        } else {
            (&mut self.err_seen, &mut self.err_over)
        };
        if *over {
            return None;
        }
        let mut exceeded = None;
        if let Some(max) = self.limits.max_output {
            let room = max.saturating_sub(*seen);
            if chunk.len() as u64 > room {
                chunk.truncate(room as usize);
                *over = true;
                exceeded = Some(max);
            }
        }
        *seen += chunk.len() as u64;
        if let Some(max) = exceeded {
            self.stop_for(Abort::MaxOutput(max), STOP_MAX_OUTPUT);
        }
        (!chunk.is_empty()).then_some(chunk)
    }

    /// Starts the stop sequence for `reason`, once.
    fn stop_for(&mut self, reason: Abort, code: u8) {
        if self.stopping.is_none() {
            self.stopping = Some(reason);
            self.process.counters().library_stopped(code);
            if let Err(e) = self.process.start_shutdown() {
                tracing::debug!(error = %e, "cannot start the stop sequence");
            }
        }
    }

    fn fail<T>(&mut self, e: Error) -> Result<T, PumpError> {
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
        let (reason, status) = match e {
            PumpError::Failed(e) => return e,
            PumpError::Aborted { reason, status } => (reason, status),
        };
        let output = Box::new(self.output(status, stdout, stderr));
        match reason {
            Abort::Timeout(timeout) => Error::Timeout { timeout, output },
            Abort::Idle(timeout) => Error::IdleTimeout { timeout, output },
            Abort::MaxOutput(limit) => Error::MaxOutputExceeded { limit, output },
            Abort::Leftovers(pids) => Error::LeftoverHolders { pids, output },
        }
    }
}

/// Completes when the timer fires; never without one.
async fn sleeping(timer: &mut Option<Timer>) {
    match timer {
        Some(t) => t.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The processes other than us that hold either end of our remaining
/// output pipes, found by their `pipe:[inode]` links in `/proc/*/fd`.
fn pipe_holders(stdout: &Option<ChildStdout>, stderr: &Option<ChildStderr>) -> Vec<u32> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let fds = [
        stdout.as_ref().map(|r| r.as_raw_fd()),
        stderr.as_ref().map(|r| r.as_raw_fd()),
    ];
    let links: Vec<String> = fds
        .iter()
        .flatten()
        .filter_map(|fd| std::fs::metadata(format!("/proc/self/fd/{fd}")).ok())
        .map(|m| format!("pipe:[{}]", m.ino()))
        .collect();
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.filter_map(Result::ok).any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| links.iter().any(|l| target.as_os_str() == l.as_str()))
                })
            })
        })
        .collect();
    pids.sort_unstable();
    pids
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
