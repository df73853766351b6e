//! Lazy output streams over a running process.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use crate::pump::{Chunk, Pump, Step};
use crate::{ExitStatus, ProcessHandle, Stats};

type NextFuture = Pin<Box<dyn Future<Output = (Pump, Option<Step>)> + Send>>;

/// Drives a [`Pump`] one step at a time from `poll_next`. Between steps the
/// pump is at rest and its status and stats can be read.
struct Core {
    pump: Option<Pump>,
    next: Option<NextFuture>,
    handle: ProcessHandle,
    pid: u32,
    /// Final status and stats, kept once the stream ended.
    done: Option<(Option<ExitStatus>, Stats)>,
}

impl Core {
    fn new(pump: Pump) -> Self {
        Core {
            handle: pump.process.handle(),
            pid: pump.process.os_pid(),
            pump: Some(pump),
            next: None,
            done: None,
        }
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Option<Step>> {
        if self.next.is_none() {
            let Some(mut pump) = self.pump.take() else {
                return Poll::Ready(None);
            };
            self.next = Some(Box::pin(async move {
                let step = pump.next().await;
                (pump, step)
            }));
        }
        let fut = self.next.as_mut().expect("set above");
        let (pump, step) = std::task::ready!(fut.as_mut().poll(cx));
        self.next = None;
        if step.is_none() || matches!(step, Some(Err(_))) {
            self.done = Some((pump.status(), pump.process.stats()));
        }
        self.pump = Some(pump);
        Poll::Ready(step)
    }

    fn to_io(&self, e: crate::pump::PumpError) -> io::Error {
        let pump = self.pump.as_ref().expect("pump at rest after a step");
        pump.error_with_output(e, Vec::new(), Vec::new()).into_io()
    }

    fn status(&self) -> Option<ExitStatus> {
        self.done.as_ref().and_then(|(s, _)| *s)
    }

    fn stats(&self) -> Stats {
        match (&self.done, &self.pump) {
            (Some((_, stats)), _) => stats.clone(),
            (None, Some(p)) => p.process.stats(),
            (None, None) => Stats::default(),
        }
    }
}

macro_rules! stream_common {
    () => {
        /// The child's pid (and process group id).
        pub fn os_pid(&self) -> u32 {
            self.core.pid
        }

        /// A handle for signalling the process while the stream is polled.
        pub fn handle(&self) -> ProcessHandle {
            self.core.handle.clone()
        }

        /// The exit status, once the stream has ended.
        pub fn status(&self) -> Option<ExitStatus> {
            self.core.status()
        }

        /// Statistics so far (final once the stream has ended).
        pub fn stats(&self) -> Stats {
            self.core.stats()
        }
    };
}

/// The child's stdout as a stream of chunks ([`Command::stream`](crate::Command::stream)).
///
/// Errors (timeout, `max_output`, I/O) arrive as an `io::Error` item that
/// wraps the library [`Error`](crate::Error); get it back with
/// [`Error::from_io`](crate::Error::from_io). Stderr,
/// when consumed, is read concurrently (so the child never blocks on it) and
/// kept: see [`stderr`](Self::stderr). Dropping the stream kills the tree.
pub struct ProcessStream {
    core: Core,
    stderr: Vec<u8>,
}

impl ProcessStream {
    pub(crate) fn new(pump: Pump) -> Self {
        ProcessStream {
            core: Core::new(pump),
            stderr: Vec::new(),
        }
    }

    stream_common!();

    /// Stderr collected so far (bounded by `max_output` when set).
    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }
}

impl Stream for ProcessStream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            return Poll::Ready(match std::task::ready!(this.core.poll_step(cx)) {
                None => None,
                Some(Ok(Chunk::Stdout(b))) => Some(Ok(b)),
                Some(Ok(Chunk::Stderr(b))) => {
                    this.stderr.extend_from_slice(&b);
                    continue;
                }
                Some(Err(e)) => Some(Err(this.core.to_io(e))),
            });
        }
    }
}

/// Stdout and stderr as one stream of tagged chunks
/// ([`Command::stream_tagged`](crate::Command::stream_tagged)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use futures_util::StreamExt;
/// use net_runner::{Chunk, Command};
/// let mut s = Command::new("sh").args(["-c", "echo o; echo e >&2"]).stream_tagged().await?;
/// let (mut out, mut err) = (Vec::new(), Vec::new());
/// while let Some(chunk) = s.next().await {
///     match chunk? {
///         Chunk::Stdout(b) => out.extend_from_slice(&b),
///         Chunk::Stderr(b) => err.extend_from_slice(&b),
///     }
/// }
/// assert_eq!((out.as_slice(), err.as_slice()), (&b"o\n"[..], &b"e\n"[..]));
/// # Ok(()) }
/// ```
pub struct TaggedStream {
    core: Core,
}

impl TaggedStream {
    pub(crate) fn new(pump: Pump) -> Self {
        TaggedStream {
            core: Core::new(pump),
        }
    }

    stream_common!();
}

impl Stream for TaggedStream {
    type Item = io::Result<Chunk>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        Poll::Ready(match std::task::ready!(this.core.poll_step(cx)) {
            None => None,
            Some(Ok(chunk)) => Some(Ok(chunk)),
            Some(Err(e)) => Some(Err(this.core.to_io(e))),
        })
    }
}

impl std::fmt::Debug for ProcessStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessStream")
            .field("pid", &self.core.pid)
            .finish()
    }
}

impl std::fmt::Debug for TaggedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaggedStream")
            .field("pid", &self.core.pid)
            .finish()
    }
}

// Both streams can move between tasks: checked at compile time.
const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<ProcessStream>();
    is_send::<TaggedStream>();
};
