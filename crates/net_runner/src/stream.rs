//! Lazy output streams over a running process.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use tokio::io::{AsyncRead, ReadBuf};

use std::sync::Arc;

use crate::pump::{Chunk, Event, EventStep, Pump};
use crate::terminal::Terminal;
use crate::{Error, ExitStatus, ProcessEvent, ProcessHandle, Stats};

/// The longest line [`ProcessStream::next_line`] and the line streams
/// accept by default: 1 MiB, without its terminator.
///
/// ```
/// assert_eq!(net_runner::DEFAULT_MAX_LINE_LENGTH, 1 << 20);
/// ```
pub const DEFAULT_MAX_LINE_LENGTH: usize = 1 << 20;

type NextFuture = Pin<Box<dyn Future<Output = (Pump, Option<EventStep>)> + Send>>;

/// Drives a [`Pump`] one step at a time from `poll_next`. Between steps the
/// pump is at rest and its status and stats can be read.
struct Core {
    pump: Option<Pump>,
    next: Option<NextFuture>,
    handle: ProcessHandle,
    pid: u32,
    /// The terminal a foreground child was given, for `resume` while the
    /// pump is inside a pending step.
    terminal: Option<Arc<Terminal>>,
    /// Final status and stats, kept once the stream ended.
    done: Option<(Option<ExitStatus>, Stats)>,
}

impl Core {
    fn new(pump: Pump) -> Self {
        Core {
            handle: pump.process.handle(),
            pid: pump.process.os_pid(),
            terminal: pump.process.terminal(),
            pump: Some(pump),
            next: None,
            done: None,
        }
    }

    /// The pump's next step, job events included (the callers that do not
    /// ask for them skip them).
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Option<EventStep>> {
        if self.next.is_none() {
            let Some(mut pump) = self.pump.take() else {
                return Poll::Ready(None);
            };
            self.next = Some(Box::pin(async move {
                let step = pump.next_event().await;
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

    /// Gives the terminal back to a foreground child (if our group holds
    /// it) and continues the child's group; nothing once the stream ended.
    fn resume(&self) -> Result<(), Error> {
        if self.done.is_some() {
            return Ok(());
        }
        if let Some(t) = &self.terminal {
            t.give_to_child();
        }
        self.handle.resume_group()
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
    ($start:literal, $sleeper:literal) => {
        /// The child's pid (and process group id).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")]
        /// # async fn main() -> Result<(), net_runner::Error> {
        #[doc = $start]
        /// assert!(s.os_pid() > 1);
        /// # Ok(()) }
        /// ```
        pub fn os_pid(&self) -> u32 {
            self.core.pid
        }

        /// A handle for signalling the process while the stream is polled.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")]
        /// # async fn main() -> Result<(), net_runner::Error> {
        #[doc = $sleeper]
        /// s.handle().kill(net_runner::Signal::Kill)?;
        /// while s.next_chunk().await?.is_some() {}
        /// assert_eq!(s.status().unwrap().signal(), Some(9));
        /// # Ok(()) }
        /// ```
        pub fn handle(&self) -> ProcessHandle {
            self.core.handle.clone()
        }

        /// The exit status, once the stream has ended (`None` before, and
        /// after an error: the error tells what happened).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")]
        /// # async fn main() -> Result<(), net_runner::Error> {
        #[doc = $start]
        /// assert_eq!(s.status(), None);
        /// while s.next_chunk().await?.is_some() {}
        /// assert!(s.status().unwrap().success());
        /// # Ok(()) }
        /// ```
        pub fn status(&self) -> Option<ExitStatus> {
            self.core.status()
        }

        /// Statistics so far (final once the stream has ended).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")]
        /// # async fn main() -> Result<(), net_runner::Error> {
        #[doc = $start]
        /// while s.next_chunk().await?.is_some() {}
        /// assert_eq!(s.stats().bytes_out, 3);
        /// # Ok(()) }
        /// ```
        pub fn stats(&self) -> Stats {
            self.core.stats()
        }
    };
}

/// The child's stdout as a stream of chunks ([`Command::stream`](crate::Command::stream)).
///
/// Read it without any extra crate with [`next_chunk`](Self::next_chunk),
/// [`next_line`](Self::next_line) or [`next_line_bytes`](Self::next_line_bytes);
/// it is also a `futures` [`Stream`] of chunks and a tokio [`AsyncRead`], and
/// [`lines`](Self::lines) / [`byte_lines`](Self::byte_lines) turn it into a
/// `Stream` of lines. All of these share one buffer: mixing them loses
/// nothing.
///
/// Errors (timeout, `max_output`, I/O) arrive as an `io::Error` that wraps
/// the library [`Error`](crate::Error); get it back with
/// [`Error::from_io`](crate::Error::from_io). Stderr, when consumed, is read
/// concurrently (so the child never blocks on it) and kept: see
/// [`stderr`](Self::stderr). Dropping the stream kills the tree.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use net_runner::{Command, Error};
///
/// let mut s = Command::new("sh")
///     .args(["-c", "echo one; echo two; echo oops >&2; sleep 10"])
///     .timeout(Duration::from_millis(300))
///     .stream()
///     .await?;
/// assert_eq!(s.next_line().await?.as_deref(), Some("one"));
/// assert_eq!(s.next_line().await?.as_deref(), Some("two"));
/// let err = s.next_line().await.unwrap_err();
/// assert!(matches!(Error::from_io(&err), Some(Error::Timeout { .. })));
/// assert_eq!(s.stderr(), b"oops\n");
/// # Ok(()) }
/// ```
pub struct ProcessStream {
    core: Core,
    stderr: Vec<u8>,
    /// Stdout read but not yet returned (a partial line, or what an
    /// `AsyncRead` caller had no room for).
    buf: BytesMut,
    max_line: usize,
    /// A line over `max_line` was reported: drop the rest of it.
    discarding: bool,
}

impl ProcessStream {
    pub(crate) fn new(pump: Pump) -> Self {
        ProcessStream {
            core: Core::new(pump),
            stderr: Vec::new(),
            buf: BytesMut::new(),
            max_line: DEFAULT_MAX_LINE_LENGTH,
            discarding: false,
        }
    }

    stream_common!(
        "let mut s = net_runner::Command::new(\"echo\").arg(\"hi\").stream().await?;",
        "let mut s = net_runner::Command::new(\"sleep\").arg(\"10\").stream().await?;"
    );

    /// Stderr collected so far (bounded by `max_output` when set).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut s = net_runner::Command::new("sh").args(["-c", "echo e >&2"]).stream().await?;
    /// while s.next_chunk().await?.is_some() {}
    /// assert_eq!(s.stderr(), b"e\n");
    /// # Ok(()) }
    /// ```
    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    /// The next chunk of stdout as it arrived, `None` at the end (the
    /// status is then in [`status`](Self::status)). No `StreamExt` needed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut s = net_runner::Command::new("echo").arg("hi").stream().await?;
    /// let mut all = Vec::new();
    /// while let Some(chunk) = s.next_chunk().await? {
    ///     all.extend_from_slice(&chunk);
    /// }
    /// assert_eq!(all, b"hi\n");
    /// # Ok(()) }
    /// ```
    pub async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx))
            .await
            .transpose()
    }

    /// The next line of stdout as UTF-8, without its `\n` or `\r\n`;
    /// the last line is returned even without a newline; `None` at the end.
    ///
    /// Invalid UTF-8 is an [`InvalidData`](io::ErrorKind::InvalidData)
    /// error (use [`next_line_bytes`](Self::next_line_bytes) for raw
    /// lines). A line longer than [`max_line_length`](Self::set_max_line_length)
    /// is an error wrapping [`Error::LineTooLong`]; it is not kept in
    /// memory and the next call returns the line after it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut s = net_runner::Command::new("printf").arg("a\\nb").stream().await?;
    /// let mut lines = Vec::new();
    /// while let Some(line) = s.next_line().await? {
    ///     lines.push(line);
    /// }
    /// assert_eq!(lines, ["a", "b"]);
    /// # Ok(()) }
    /// ```
    pub async fn next_line(&mut self) -> io::Result<Option<String>> {
        std::future::poll_fn(|cx| self.poll_line(cx))
            .await
            .transpose()
    }

    /// Like [`next_line`](Self::next_line), for bytes that need not be
    /// UTF-8.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut s = net_runner::Command::new("printf").arg("\\377\\r\\n").stream().await?;
    /// assert_eq!(s.next_line_bytes().await?.as_deref(), Some(&b"\xff"[..]));
    /// assert_eq!(s.next_line_bytes().await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn next_line_bytes(&mut self) -> io::Result<Option<Bytes>> {
        std::future::poll_fn(|cx| self.poll_line_bytes(cx))
            .await
            .transpose()
    }

    /// Sets the longest line, in bytes without the terminator, that the
    /// line methods accept (default [`DEFAULT_MAX_LINE_LENGTH`]). Bounds the
    /// memory a child without newlines can make us use.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::Error;
    /// let mut s = net_runner::Command::new("printf").arg("long line\\nok\\n").stream().await?;
    /// s.set_max_line_length(4);
    /// let err = s.next_line().await.unwrap_err();
    /// assert!(matches!(Error::from_io(&err), Some(Error::LineTooLong { limit: 4 })));
    /// assert_eq!(s.next_line().await?.as_deref(), Some("ok"));
    /// # Ok(()) }
    /// ```
    pub fn set_max_line_length(&mut self, max: usize) {
        self.max_line = max;
    }

    /// The stream as a `Stream` of UTF-8 lines, as [`next_line`](Self::next_line)
    /// returns them. The stream stays reachable with
    /// [`Lines::get_ref`] (status, stderr) and [`Lines::into_inner`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use futures_util::TryStreamExt;
    /// let s = net_runner::Command::new("seq").arg("3").stream().await?;
    /// let lines: Vec<String> = s.lines().try_collect().await?;
    /// assert_eq!(lines, ["1", "2", "3"]);
    /// # Ok(()) }
    /// ```
    pub fn lines(self) -> Lines {
        Lines { inner: self }
    }

    /// The stream as a `Stream` of byte lines, as
    /// [`next_line_bytes`](Self::next_line_bytes) returns them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut lines = net_runner::Command::new("seq").arg("2").stream().await?.byte_lines();
    /// assert_eq!(lines.next_line().await?.as_deref(), Some(&b"1"[..]));
    /// # Ok(()) }
    /// ```
    pub fn byte_lines(self) -> ByteLines {
        ByteLines { inner: self }
    }

    /// The next piece of stdout from the pump (stderr is kept aside).
    fn poll_pump(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            return Poll::Ready(match std::task::ready!(self.core.poll_step(cx)) {
                None => None,
                Some(Ok(Event::Chunk(Chunk::Stdout(b)))) => Some(Ok(b)),
                Some(Ok(Event::Chunk(Chunk::Stderr(b)))) => {
                    self.stderr.extend_from_slice(&b);
                    continue;
                }
                Some(Ok(Event::Job(_))) => continue,
                Some(Err(e)) => Some(Err(self.core.to_io(e))),
            });
        }
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if !self.buf.is_empty() {
            return Poll::Ready(Some(Ok(self.buf.split().freeze())));
        }
        self.poll_pump(cx)
    }

    fn poll_line_bytes(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.buf[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + i;
                if self.discarding {
                    let _ = self.buf.split_to(end + 1);
                    self.discarding = false;
                    searched = 0;
                    continue;
                }
                let mut line = self.buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                if line.len() > self.max_line {
                    return Poll::Ready(Some(Err(self.line_too_long())));
                }
                return Poll::Ready(Some(Ok(line.freeze())));
            }
            if self.discarding {
                self.buf.clear();
            } else if self.buf.len() > self.max_line.saturating_add(1) {
                // Past the limit even if a `\r\n` follows.
                self.buf.clear();
                self.discarding = true;
                return Poll::Ready(Some(Err(self.line_too_long())));
            }
            searched = self.buf.len();
            match std::task::ready!(self.poll_pump(cx)) {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None if self.buf.is_empty() || self.discarding => {
                    self.buf.clear();
                    return Poll::Ready(None);
                }
                None => {
                    let mut line = self.buf.split();
                    if line.last() == Some(&b'\r') {
                        line.truncate(line.len() - 1);
                    }
                    if line.len() > self.max_line {
                        return Poll::Ready(Some(Err(self.line_too_long())));
                    }
                    return Poll::Ready(Some(Ok(line.freeze())));
                }
            }
        }
    }

    fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<String>>> {
        Poll::Ready(match std::task::ready!(self.poll_line_bytes(cx)) {
            None => None,
            Some(Err(e)) => Some(Err(e)),
            Some(Ok(line)) => Some(
                String::from_utf8(line.to_vec())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            ),
        })
    }

    fn line_too_long(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            Error::LineTooLong {
                limit: self.max_line,
            },
        )
    }
}

impl Stream for ProcessStream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx)
    }
}

/// Stdout as bytes: `tokio::io::copy`, `BufReader`, codecs. An error item
/// of the stream becomes the read's error; the end is a read of 0.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tokio::io::AsyncReadExt;
/// let mut s = net_runner::Command::new("echo").arg("hi").stream().await?;
/// let mut text = String::new();
/// s.read_to_string(&mut text).await?;
/// assert_eq!(text, "hi\n");
/// # Ok(()) }
/// ```
impl AsyncRead for ProcessStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buf.is_empty() {
            match std::task::ready!(this.poll_pump(cx)) {
                Some(Ok(chunk)) => this.buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = out.remaining().min(this.buf.len());
        out.put_slice(&this.buf.split_to(n));
        Poll::Ready(Ok(()))
    }
}

macro_rules! line_stream {
    ($name:ident, $item:ty, $poll:ident, $doc:literal, $example:literal) => {
        #[doc = $doc]
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")]
        /// # async fn main() -> Result<(), net_runner::Error> {
        #[doc = $example]
        /// # Ok(()) }
        /// ```
        pub struct $name {
            inner: ProcessStream,
        }

        impl $name {
            /// The next line, `None` at the end (see
            /// [`ProcessStream::next_line`] for the rules).
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), net_runner::Error> {
            #[doc = $example]
            /// # Ok(()) }
            /// ```
            pub async fn next_line(&mut self) -> io::Result<Option<$item>> {
                std::future::poll_fn(|cx| self.inner.$poll(cx))
                    .await
                    .transpose()
            }

            /// Sets the longest line accepted (see
            /// [`ProcessStream::set_max_line_length`]); builder style.
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), net_runner::Error> {
            #[doc = $example]
            /// let _lines = lines.max_line_length(80);
            /// # Ok(()) }
            /// ```
            pub fn max_line_length(mut self, max: usize) -> Self {
                self.inner.set_max_line_length(max);
                self
            }

            /// The underlying stream: status, stats, stderr.
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), net_runner::Error> {
            #[doc = $example]
            /// while lines.next_line().await?.is_some() {}
            /// assert!(lines.get_ref().status().unwrap().success());
            /// # Ok(()) }
            /// ```
            pub fn get_ref(&self) -> &ProcessStream {
                &self.inner
            }

            /// The underlying stream, mutably.
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), net_runner::Error> {
            #[doc = $example]
            /// lines.get_mut().set_max_line_length(10);
            /// # Ok(()) }
            /// ```
            pub fn get_mut(&mut self) -> &mut ProcessStream {
                &mut self.inner
            }

            /// Back to the chunk stream; buffered data is kept.
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), net_runner::Error> {
            #[doc = $example]
            /// let mut s = lines.into_inner();
            /// assert_eq!(s.next_chunk().await?.as_deref(), Some(&b"2\n"[..]));
            /// # Ok(()) }
            /// ```
            pub fn into_inner(self) -> ProcessStream {
                self.inner
            }
        }

        impl Stream for $name {
            type Item = io::Result<$item>;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                self.get_mut().inner.$poll(cx)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("pid", &self.inner.core.pid)
                    .finish()
            }
        }
    };
}

line_stream!(
    Lines,
    String,
    poll_line,
    "Stdout as UTF-8 lines ([`ProcessStream::lines`]): a `Stream` of `String`, or [`next_line`](Self::next_line) without `StreamExt`.",
    "let mut lines = net_runner::Command::new(\"seq\").arg(\"2\").stream().await?.lines();\nassert_eq!(lines.next_line().await?.as_deref(), Some(\"1\"));"
);

line_stream!(
    ByteLines,
    Bytes,
    poll_line_bytes,
    "Stdout as byte lines ([`ProcessStream::byte_lines`]): a `Stream` of [`Bytes`], or [`next_line`](Self::next_line) without `StreamExt`.",
    "let mut lines = net_runner::Command::new(\"seq\").arg(\"2\").stream().await?.byte_lines();\nassert_eq!(lines.next_line().await?.as_deref(), Some(&b\"1\"[..]));"
);

/// Stdout and stderr as one stream of tagged chunks
/// ([`Command::stream_tagged`](crate::Command::stream_tagged)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use net_runner::{Chunk, Command};
/// let mut s = Command::new("sh").args(["-c", "echo o; echo e >&2"]).stream_tagged().await?;
/// let (mut out, mut err) = (Vec::new(), Vec::new());
/// while let Some(chunk) = s.next_chunk().await? {
///     match chunk {
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

    stream_common!(
        "let mut s = net_runner::Command::new(\"echo\").arg(\"hi\").stream_tagged().await?;",
        "let mut s = net_runner::Command::new(\"sleep\").arg(\"10\").stream_tagged().await?;"
    );

    /// The next chunk of stdout or stderr, `None` at the end. No
    /// `StreamExt` needed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::Chunk;
    /// let mut s = net_runner::Command::new("echo").arg("hi").stream_tagged().await?;
    /// assert_eq!(s.next_chunk().await?, Some(Chunk::Stdout("hi\n".into())));
    /// assert_eq!(s.next_chunk().await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx))
            .await
            .transpose()
    }

    /// The next chunk, or the next change in the child's job state, `None`
    /// at the end: [`next_chunk`](Self::next_chunk) for callers that act
    /// on stops, as a shell does for its foreground job. A stop or continue
    /// is reported once (the latest, when several happened since the last
    /// call), and only while the child has not exited; the stream's limits
    /// (timeout, idle timeout) keep counting while it is stopped.
    ///
    /// With [`Command::foreground`](crate::Command::foreground), when
    /// Ctrl-Z stops the child the terminal is already back with this
    /// program's group: stop yourself, then call [`resume`](Self::resume)
    /// once continued. The chunks are those `next_chunk` returns; mixing
    /// the two loses none of them (`next_chunk` skips the job events).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::{Chunk, Command, Signal, StreamEvent};
    /// let mut s = Command::new("sh").args(["-c", "echo go; exec sleep 10"]).stream_tagged().await?;
    /// assert_eq!(s.next_event().await?, Some(StreamEvent::Chunk(Chunk::Stdout("go\n".into()))));
    /// s.handle().kill(Signal::Stop)?;
    /// assert_eq!(s.next_event().await?, Some(StreamEvent::Stopped(Signal::Stop.as_raw())));
    /// s.resume()?;
    /// assert_eq!(s.next_event().await?, Some(StreamEvent::Continued));
    /// s.handle().kill(Signal::Term)?;
    /// while s.next_event().await?.is_some() {}
    /// assert_eq!(s.status().unwrap().signal(), Some(Signal::Term.as_raw()));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`next_chunk`](Self::next_chunk).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as `next_chunk`: the step under way is kept for the
    /// next call, so a `select!` branch loses nothing.
    pub async fn next_event(&mut self) -> io::Result<Option<StreamEvent>> {
        std::future::poll_fn(|cx| loop {
            return Poll::Ready(match std::task::ready!(self.core.poll_step(cx)) {
                None => None,
                Some(Ok(Event::Chunk(chunk))) => Some(Ok(StreamEvent::Chunk(chunk))),
                Some(Ok(Event::Job(ProcessEvent::Stopped(sig)))) => {
                    Some(Ok(StreamEvent::Stopped(sig)))
                }
                Some(Ok(Event::Job(ProcessEvent::Continued))) => Some(Ok(StreamEvent::Continued)),
                // Never sent as a job event (the end is `None`).
                Some(Ok(Event::Job(_))) => continue,
                Some(Err(e)) => Some(Err(self.core.to_io(e))),
            });
        })
        .await
        .transpose()
    }

    /// Continues a stopped child, as [`Process::resume`](crate::Process::resume):
    /// gives it the terminal again if it is a
    /// [`foreground`](crate::Command::foreground) child and this program's
    /// group holds the terminal (after `fg`; not after `bg`), then sends
    /// `SIGCONT` to its group. Nothing once the stream has ended. See
    /// [`next_event`](Self::next_event).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::Signal;
    /// let mut s = net_runner::Command::new("sleep").arg("0.2").stream_tagged().await?;
    /// s.handle().kill(Signal::Stop)?;
    /// s.resume()?;
    /// while s.next_chunk().await?.is_some() {}
    /// assert!(s.status().unwrap().success());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ProcessHandle::kill`].
    pub fn resume(&mut self) -> Result<(), Error> {
        self.core.resume()
    }
}

/// What [`TaggedStream::next_event`] reports: a chunk of output, or a
/// change in the child's job state.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use net_runner::{Chunk, StreamEvent};
/// let mut s = net_runner::Command::new("echo").arg("hi").stream_tagged().await?;
/// let mut out = Vec::new();
/// while let Some(event) = s.next_event().await? {
///     match event {
///         StreamEvent::Chunk(Chunk::Stdout(b)) => out.extend_from_slice(&b),
///         StreamEvent::Stopped(_) => { /* stop yourself, then s.resume() */ }
///         _ => {}
///     }
/// }
/// assert_eq!(out, b"hi\n");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// A chunk of stdout or stderr, as [`TaggedStream::next_chunk`]
    /// returns it.
    Chunk(Chunk),
    /// The child was stopped by this signal (Ctrl-Z's `SIGTSTP`,
    /// `SIGSTOP`, `SIGTTIN`...). With
    /// [`Command::foreground`](crate::Command::foreground) the terminal is
    /// already this program's again.
    Stopped(i32),
    /// The child was continued.
    Continued,
}

impl Stream for TaggedStream {
    type Item = io::Result<Chunk>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            return Poll::Ready(match std::task::ready!(this.core.poll_step(cx)) {
                None => None,
                Some(Ok(Event::Chunk(chunk))) => Some(Ok(chunk)),
                Some(Ok(Event::Job(_))) => continue,
                Some(Err(e)) => Some(Err(this.core.to_io(e))),
            });
        }
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
    is_send::<Lines>();
    is_send::<ByteLines>();
};
