//! The engine behind `run` and the streams: reads stdout and stderr as
//! asked, feeds stdin concurrently, enforces the timeout and `max_output`,
//! and finally waits for the exit. One place for all of it, so `run`, the
//! streams and the CLI behave alike.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::time::{sleep, Sleep};

use crate::command::Input;
use crate::pipe::{ChildStderr, ChildStdin, ChildStdout, CHUNK};
use crate::{Error, ExitStatus, Output, Process};

/// A piece of output, tagged with the stream it came from.
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

/// Writes all of `input` to stdin, then closes it. A child that stops
/// reading (closes stdin or exits) is not an error.
pub(crate) async fn feed(mut stdin: ChildStdin, input: Input) -> io::Result<()> {
    let result = async {
        match input {
            Input::Bytes(b) => stdin.write_all(&b).await,
            Input::Stream(mut s) => {
                while let Some(buf) = s.next().await {
                    stdin.write_all(&buf?).await?;
                }
                Ok(())
            }
            Input::Reader(mut r) => {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = r.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    stdin.write_all(&buf[..n]).await?;
                }
            }
        }
    }
    .await;
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

type Feeder = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

pub(crate) struct Pump {
    pub(crate) process: Process,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    feeder: Option<Feeder>,
    deadline: Option<(Pin<Box<Sleep>>, Duration)>,
    /// Terminates the tree at the deadline even while nobody polls the pump
    /// (a slow consumer must not extend the timeout).
    watchdog: Option<tokio::task::JoinHandle<()>>,
    max_output: Option<u64>,
    out_seen: u64,
    err_seen: u64,
    /// Set when a chunk was cut at `max_output`: the next call aborts.
    pending_abort: Option<Abort>,
    status: Option<ExitStatus>,
    finished: bool,
}

/// One step of the pump.
pub(crate) type Step = Result<Chunk, PumpError>;

#[derive(Debug)]
pub(crate) enum PumpError {
    /// The process was stopped for this reason; it has exited.
    Aborted(Abort),
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
        let watchdog = timeout.map(|t| {
            let handle = process.handle();
            tokio::spawn(async move {
                sleep(t).await;
                let _ = handle.shutdown();
            })
        });
        Pump {
            watchdog,
            stdout: process.take_stdout(),
            stderr: process.take_stderr(),
            process,
            feeder,
            deadline: timeout.map(|t| (Box::pin(sleep(t)), t)),
            max_output,
            out_seen: 0,
            err_seen: 0,
            pending_abort: None,
            status: None,
            finished: false,
        }
    }

    pub(crate) fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// The next chunk, an error, or `None` once the child exited and all
    /// output was read.
    pub(crate) async fn next(&mut self) -> Option<Step> {
        if self.finished {
            return None;
        }
        if let Some(reason) = self.pending_abort.take() {
            return Some(self.abort(reason).await);
        }
        loop {
            if let Some(t) = self.expired() {
                return Some(self.abort(Abort::Timeout(t)).await);
            }
            if self.stdout.is_none() && self.stderr.is_none() {
                return self.finish().await.err().map(Err);
            }
            let deadline = self.deadline.as_mut().map(|(s, t)| (s.as_mut(), *t));
            tokio::select! {
                t = async { let (s, t) = deadline.unwrap(); s.await; t }, if deadline.is_some() => {
                    return Some(self.abort(Abort::Timeout(t)).await);
                }
                r = read(&mut self.stdout) => match r {
                    Ok(Some(b)) => return Some(self.limit(b, true).map(Chunk::Stdout)),
                    Ok(None) => self.stdout = None,
                    Err(e) => return Some(self.fail(e.into())),
                },
                r = read_err(&mut self.stderr) => match r {
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
            if let Some(t) = self.expired() {
                return self.abort(Abort::Timeout(t)).await.map(drop);
            }
            let deadline = self.deadline.as_mut().map(|(s, t)| (s.as_mut(), *t));
            tokio::select! {
                t = async { let (s, t) = deadline.unwrap(); s.await; t }, if deadline.is_some() => {
                    return self.abort(Abort::Timeout(t)).await.map(drop);
                }
                r = self.process.wait() => {
                    self.finished = true;
                    self.stop_watchdog();
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

    /// The timeout, once its deadline has passed. Checked before anything
    /// else, so a child the watchdog stopped is reported as timed out, not
    /// by its exit status, and no chunk is returned after the deadline.
    fn expired(&self) -> Option<Duration> {
        match &self.deadline {
            Some((sleep, t)) if sleep.is_elapsed() => Some(*t),
            _ => None,
        }
    }

    fn stop_watchdog(&mut self) {
        if let Some(w) = self.watchdog.take() {
            w.abort();
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
        self.status = Some(self.process.wait().await?);
        Err(PumpError::Aborted(reason))
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
        Ok(self.output(stdout, stderr))
    }

    pub(crate) fn output(&self, stdout: Vec<u8>, stderr: Vec<u8>) -> Output {
        let stats = self.process.stats();
        Output {
            stdout,
            stderr,
            // `next` returned None only after the status was stored.
            status: self
                .status
                .or(stats.exit_status)
                .unwrap_or(ExitStatus(net_runner_proto::Termination::Exited(-1))),
            stats,
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
            PumpError::Aborted(Abort::Timeout(timeout)) => Error::Timeout {
                timeout,
                output: Box::new(self.output(stdout, stderr)),
            },
            PumpError::Aborted(Abort::MaxOutput(limit)) => Error::MaxOutputExceeded {
                limit,
                output: Box::new(self.output(stdout, stderr)),
            },
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop_watchdog();
    }
}

async fn read(pipe: &mut Option<ChildStdout>) -> io::Result<Option<Bytes>> {
    match pipe {
        Some(p) => p.read_chunk(CHUNK).await,
        None => std::future::pending().await,
    }
}

async fn read_err(pipe: &mut Option<ChildStderr>) -> io::Result<Option<Bytes>> {
    match pipe {
        Some(p) => p.read_chunk(CHUNK).await,
        None => std::future::pending().await,
    }
}

async fn feeding(feeder: &mut Option<Feeder>) -> io::Result<()> {
    match feeder {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
