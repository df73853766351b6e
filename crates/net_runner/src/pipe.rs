//! The library's ends of the child's pipes, driven by tokio readiness.
//!
//! Nothing is read until asked for: the data waits in the kernel pipe, and a
//! full pipe blocks the writer. That is the whole of backpressure.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use net_runner_proto::ToShepherd;

use crate::control;
use crate::pty::LineState;
use crate::stats::{Counters, STOP_MAX_OUTPUT};
use crate::{sys, Error};

/// Bytes asked of the kernel per read when reading chunks.
pub(crate) const CHUNK: usize = 128 * 1024;

/// Largest chunk `read_chunk` asks for, whatever `max` says.
const MAX_CHUNK: usize = 1 << 20;

/// Which counter a reader feeds.
#[derive(Debug, Clone, Copy)]
enum Source {
    Stdout,
    Stderr,
}

/// What a reader needs to know of its process: the control channel (to
/// start the stop sequence at `max_output`, and to release the shepherd's
/// spare read end when dropped) and the byte limit.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReaderLink {
    pub(crate) control: Weak<OwnedFd>,
    pub(crate) limit: Option<u64>,
}

/// A non-blocking pipe read end.
#[derive(Debug)]
struct PipeReader {
    fd: AsyncFd<OwnedFd>,
    counters: Arc<Counters>,
    source: Source,
    buf: BytesMut,
    link: ReaderLink,
    /// Bytes delivered so far (for the limit).
    delivered: u64,
    /// The limit was exceeded: reads fail with the typed error.
    exceeded: bool,
    /// A PTY master: `EIO` (the slave side is gone) is end of file.
    pty: bool,
}

impl PipeReader {
    fn new(
        fd: OwnedFd,
        counters: Arc<Counters>,
        source: Source,
        link: ReaderLink,
    ) -> io::Result<Self> {
        Ok(PipeReader {
            fd: sys::register(fd, Interest::READABLE)?,
            counters,
            source,
            buf: BytesMut::new(),
            link,
            delivered: 0,
            exceeded: false,
            pty: false,
        })
    }

    fn stream_name(&self) -> &'static str {
        match self.source {
            Source::Stdout => "stdout",
            Source::Stderr => "stderr",
        }
    }

    /// What may still be delivered under the limit (`u64::MAX` without one).
    fn room(&self) -> u64 {
        self.link
            .limit
            .map_or(u64::MAX, |max| max.saturating_sub(self.delivered))
    }

    fn limit_error(&self) -> io::Error {
        Error::OutputLimit {
            stream: self.stream_name(),
            limit: self.link.limit.unwrap_or(0),
        }
        .into_io()
    }

    /// The limit is exceeded: start the stop sequence (the shepherd runs it;
    /// nothing is closed here, so the child can still write while it stops).
    fn exceed(&mut self) -> io::Error {
        if !self.exceeded {
            self.exceeded = true;
            self.counters.library_stopped(STOP_MAX_OUTPUT);
            if let Some(fd) = self.link.control.upgrade() {
                let _ = control::send_now(&fd, &ToShepherd::Shutdown);
            }
        }
        self.limit_error()
    }

    /// Reads one chunk under the limit: at most `room` bytes while there is
    /// room; at the limit, one probe read tells end of file (fine, exactly
    /// `limit` bytes) from more data (the limit is exceeded; the probe's
    /// bytes are discarded).
    fn poll_limited(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
        mut read: impl FnMut(&OwnedFd, usize) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if self.exceeded {
            // Keep draining what the stopping child writes, but report.
            let mut scratch = [0u8; 4096];
            let _ = self.poll_read_with(cx, |fd| sys::read_slice(fd, &mut scratch));
            return Poll::Ready(Err(self.limit_error()));
        }
        let room = self.room();
        if room == 0 {
            let mut probe = [0u8; 1];
            let n = ready!(self.poll_read_with(cx, |fd| sys::read_slice(fd, &mut probe)))?;
            return Poll::Ready(if n == 0 { Ok(0) } else { Err(self.exceed()) });
        }
        let want = (want as u64).min(room) as usize;
        let n = ready!(self.poll_read_with(cx, |fd| read(fd, want)))?;
        self.delivered += n as u64;
        Poll::Ready(Ok(n))
    }

    fn count(&self, n: usize) {
        let c = match self.source {
            Source::Stdout => &self.counters.bytes_out,
            Source::Stderr => &self.counters.bytes_err,
        };
        c.fetch_add(n as u64, Relaxed);
        self.counters.reads.fetch_add(1, Relaxed);
    }

    /// Runs `read` on the descriptor once it is readable; counts what it
    /// read.
    fn poll_read_with(
        &mut self,
        cx: &mut Context<'_>,
        mut read: impl FnMut(&OwnedFd) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            match guard.try_io(|fd| retry_eintr(|| read(fd.get_ref()))) {
                Ok(Ok(n)) => {
                    if n > 0 {
                        self.count(n);
                    }
                    return Poll::Ready(Ok(n));
                }
                // The last holder of the slave is gone; everything written
                // before was read first (the kernel drains, then says EIO).
                Ok(Err(e)) if self.pty && e.raw_os_error() == Some(libc::EIO) => {
                    return Poll::Ready(Ok(0))
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// One chunk of up to `max` bytes; `None` at end of file.
    fn poll_chunk(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Option<Bytes>>> {
        // Reuses the old allocation when all earlier chunks were dropped.
        let mut buf = std::mem::take(&mut self.buf);
        let polled = self.poll_limited(cx, max, |fd, max| sys::read_into_bytes(fd, &mut buf, max));
        self.buf = buf;
        if ready!(polled)? == 0 {
            return Poll::Ready(Ok(None));
        }
        Poll::Ready(Ok(Some(self.buf.split().freeze())))
    }
}

impl Drop for PipeReader {
    /// Dropped while the process runs (and is not being stopped): the
    /// shepherd closes its spare read end too, so the child's next write
    /// fails with `EPIPE` as it would without a shepherd. Dropped with its
    /// `Process` (or the channel gone), nothing is sent: the shepherd then
    /// drains the pipe itself while the child stops.
    fn drop(&mut self) {
        // A PTY's shepherd keeps no spare end to release.
        if self.exceeded || self.pty {
            return;
        }
        if let Some(fd) = self.link.control.upgrade() {
            let which = match self.source {
                Source::Stdout => 1,
                Source::Stderr => 2,
            };
            let _ = control::send_now(&fd, &ToShepherd::ReleaseOutput { fd: which });
        }
    }
}

fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

macro_rules! reader {
    ($name:ident, $source:expr, $doc:literal) => {
        #[doc = $doc]
        ///
        /// Implements tokio's [`AsyncRead`]; [`read_chunk`](Self::read_chunk)
        /// returns owned [`Bytes`] without an extra copy.
        #[derive(Debug)]
        pub struct $name(PipeReader);

        impl $name {
            pub(crate) fn new(
                fd: OwnedFd,
                counters: Arc<Counters>,
                link: ReaderLink,
            ) -> io::Result<Self> {
                Ok($name(PipeReader::new(fd, counters, $source, link)?))
            }

            /// Reads the next chunk of at most `max` bytes (as much as the
            /// pipe holds, up to `max`, at most 1 MiB); `Ok(None)` at end of
            /// file.
            ///
            /// # Errors
            ///
            /// The `read` error, if any.
            ///
            /// # Cancel safety
            ///
            /// Cancel-safe: no data is lost if the future is dropped.
            ///
            /// With [`max_output`](crate::Command::max_output) (under
            /// [`spawn`](crate::Command::spawn)), exactly the first `limit`
            /// bytes are delivered; the read after them fails with
            /// [`Error::OutputLimit`](crate::Error::OutputLimit) inside the
            /// `io::Error` ([`Error::from_io`](crate::Error::from_io)) and
            /// the process's stop sequence starts.
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), net_runner::Error> {
            /// let mut p = net_runner::Command::new("echo").arg("hi").spawn().await?;
            /// let mut out = p.take_stdout().unwrap();
            /// assert_eq!(out.read_chunk(1024).await?.as_deref(), Some(&b"hi\n"[..]));
            /// assert_eq!(out.read_chunk(1024).await?, None);
            /// # Ok(()) }
            /// ```
            pub async fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
                // Capped: a huge `max` must not allocate that much up front.
                let max = max.clamp(1, MAX_CHUNK);
                std::future::poll_fn(|cx| self.0.poll_chunk(cx, max)).await
            }
        }

        impl AsyncRead for $name {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let this = self.get_mut();
                let want = buf.remaining();
                ready!(this
                    .0
                    .poll_limited(cx, want, |fd, want| sys::read_into_readbuf(fd, buf, want)))?;
                Poll::Ready(Ok(()))
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.0.fd.as_raw_fd()
            }
        }
    };
}

reader!(
    ChildStdout,
    Source::Stdout,
    "The read end of the child's stdout."
);
reader!(
    ChildStderr,
    Source::Stderr,
    "The read end of the child's stderr."
);

impl ChildStdout {
    /// The reader of a PTY master (PTY mode: the terminal's output).
    pub(crate) fn new_pty(
        master: OwnedFd,
        counters: Arc<Counters>,
        link: ReaderLink,
    ) -> io::Result<Self> {
        let mut reader = PipeReader::new(master, counters, Source::Stdout, link)?;
        reader.pty = true;
        Ok(ChildStdout(reader))
    }
}

/// The write end of the child's stdin. Dropping it closes the child's stdin
/// (the child reads end of file).
///
/// In PTY mode it writes to the terminal's master, and closing it (drop,
/// [`Process::close_stdin`](crate::Process::close_stdin), the end of an
/// [`input`](crate::Command::input)) sends the terminal's end-of-file
/// character (VEOF, ^D) through the line discipline: once at the start of a
/// line, twice after a partial one (the first ends the line), judged by the
/// last byte written here. The terminal itself stays open for the output.
///
/// Implements tokio's [`AsyncWrite`]; `shutdown` is a no-op, drop closes.
/// When the process's stop sequence reaches `close-stdin`, the next write
/// closes it and fails with [`io::ErrorKind::BrokenPipe`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use tokio::io::AsyncWriteExt;
/// let mut p = net_runner::Command::new("cat").spawn().await?;
/// let mut stdin = p.take_stdin().unwrap();
/// tokio::spawn(async move { stdin.write_all(b"from a task").await });
/// assert_eq!(p.read().await?.as_deref(), Some(&b"from a task"[..]));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ChildStdin {
    fd: Option<AsyncFd<OwnedFd>>,
    counters: Arc<Counters>,
    /// PTY mode: a copy of the master, and whether the last byte written
    /// ended a line (for end of file).
    pty: Option<LineState>,
}

impl ChildStdin {
    pub(crate) fn new(fd: OwnedFd, counters: Arc<Counters>) -> io::Result<Self> {
        Ok(ChildStdin {
            fd: Some(sys::register(fd, Interest::WRITABLE)?),
            counters,
            pty: None,
        })
    }

    /// The writer of a PTY master (`master` is a copy of the library's).
    pub(crate) fn new_pty(master: OwnedFd, counters: Arc<Counters>) -> io::Result<Self> {
        let mut stdin = ChildStdin::new(master, counters)?;
        stdin.pty = Some(LineState::default());
        Ok(stdin)
    }

    /// Closes stdin, waiting for room in the terminal to deliver end of
    /// file (PTY mode); for a pipe, the same as dropping it.
    pub(crate) async fn close(mut self) -> io::Result<()> {
        let (Some(line), Some(fd)) = (self.pty, self.fd.take()) else {
            return Ok(());
        };
        write_eof(fd, line).await
    }

    /// Closes at once, from a synchronous context: in PTY mode end of file
    /// is written now if the terminal has room, else by a task that waits
    /// for it (it ends when the terminal does).
    fn close_now(&mut self) {
        let Some(fd) = self.fd.take() else { return };
        let Some(line) = self.pty else { return };
        let eof = match line.eof_bytes(fd.get_ref()) {
            Ok(eof) => eof,
            Err(_) => return, // the terminal is gone: nothing to end
        };
        match sys::write(fd.get_ref(), &eof) {
            Ok(n) if n == eof.len() => {}
            Ok(n) => spawn_eof_writer(fd, eof[n..].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => spawn_eof_writer(fd, eof),
            Err(_) => {}
        }
    }

    /// Writes all of `data`, waiting while the pipe is full. A child that
    /// closed its stdin gives [`io::ErrorKind::BrokenPipe`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("cat").spawn().await?;
    /// let mut stdin = p.take_stdin().unwrap();
    /// stdin.write_all(b"hi").await?;
    /// drop(stdin); // end of file for the child
    /// assert_eq!(p.read().await?.as_deref(), Some(&b"hi"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`BrokenPipe`](io::ErrorKind::BrokenPipe) once the child closed its
    /// stdin; other `write` errors as they come.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped future may have written a prefix of
    /// `data`. [`AsyncWrite`]'s `poll_write` reports exactly what it wrote.
    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = std::future::poll_fn(|cx| self.poll_write_raw(cx, data)).await?;
            data = &data[n..];
        }
        Ok(())
    }

    fn poll_write_raw(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.counters.close_stdin.load(Relaxed) {
            self.close_now();
        }
        let Some(fd) = &self.fd else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stdin was closed by the stop sequence",
            )));
        };
        loop {
            let mut guard = ready!(fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| retry_eintr(|| sys::write(fd, data))) {
                Ok(Ok(n)) => {
                    self.counters.bytes_in.fetch_add(n as u64, Relaxed);
                    self.counters.writes.fetch_add(1, Relaxed);
                    if let Some(line) = &mut self.pty {
                        line.wrote(&data[..n]);
                    }
                    return Poll::Ready(Ok(n));
                }
                // The terminal's slave side is gone: like a closed pipe.
                Ok(Err(e)) if self.pty.is_some() && e.raw_os_error() == Some(libc::EIO) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the terminal was closed by the program",
                    )))
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl Drop for ChildStdin {
    fn drop(&mut self) {
        self.close_now();
    }
}

/// Writes the end-of-file bytes for a PTY's stdin (see [`LineState`]).
async fn write_eof(fd: AsyncFd<OwnedFd>, line: LineState) -> io::Result<()> {
    let eof = match line.eof_bytes(fd.get_ref()) {
        Ok(eof) => eof,
        Err(_) => return Ok(()),
    };
    write_rest(fd, eof).await
}

async fn write_rest(fd: AsyncFd<OwnedFd>, mut rest: Vec<u8>) -> io::Result<()> {
    while !rest.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|fd| retry_eintr(|| sys::write(fd.get_ref(), &rest))) {
            Ok(Ok(n)) => {
                rest.drain(..n);
            }
            // The slave side is gone: nobody is left to read the end.
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    Ok(())
}

/// Finishes writing end of file when the terminal has room again; the
/// write fails (and the task ends) once the terminal is gone.
fn spawn_eof_writer(fd: AsyncFd<OwnedFd>, rest: Vec<u8>) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = write_rest(fd, rest).await;
        });
    }
}

impl AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_raw(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsRawFd for ChildStdin {
    /// -1 once the stop sequence closed it.
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }
}
