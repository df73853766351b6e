//! The library's ends of the child's pipes, driven by tokio readiness.
//!
//! Nothing is read until asked for: the data waits in the kernel pipe, and a
//! full pipe blocks the writer. That is the whole of backpressure.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use crate::stats::Counters;
use crate::sys;

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

/// A non-blocking pipe read end.
#[derive(Debug)]
struct PipeReader {
    fd: AsyncFd<OwnedFd>,
    counters: Arc<Counters>,
    source: Source,
    buf: BytesMut,
}

impl PipeReader {
    fn new(fd: OwnedFd, counters: Arc<Counters>, source: Source) -> io::Result<Self> {
        Ok(PipeReader {
            fd: sys::register(fd, Interest::READABLE)?,
            counters,
            source,
            buf: BytesMut::new(),
        })
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
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// One chunk of up to `max` bytes; `None` at end of file.
    fn poll_chunk(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Option<Bytes>>> {
        // Reuses the old allocation when all earlier chunks were dropped.
        let mut buf = std::mem::take(&mut self.buf);
        let polled = self.poll_read_with(cx, |fd| sys::read_into_bytes(fd, &mut buf, max));
        self.buf = buf;
        if ready!(polled)? == 0 {
            return Poll::Ready(Ok(None));
        }
        Poll::Ready(Ok(Some(self.buf.split().freeze())))
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
            pub(crate) fn new(fd: OwnedFd, counters: Arc<Counters>) -> io::Result<Self> {
                Ok($name(PipeReader::new(fd, counters, $source)?))
            }

            /// Reads the next chunk of at most `max` bytes (as much as the
            /// pipe holds, up to `max`, at most 1 MiB); `Ok(None)` at end of
            /// file.
            /// Cancel-safe: no data is lost if the future is dropped.
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
                ready!(this
                    .0
                    .poll_read_with(cx, |fd| sys::read_into_readbuf(fd, buf)))?;
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

/// The write end of the child's stdin. Dropping it closes the child's stdin
/// (the child reads end of file).
///
/// Implements tokio's [`AsyncWrite`]; `shutdown` is a no-op, drop closes.
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
    fd: AsyncFd<OwnedFd>,
    counters: Arc<Counters>,
}

impl ChildStdin {
    pub(crate) fn new(fd: OwnedFd, counters: Arc<Counters>) -> io::Result<Self> {
        Ok(ChildStdin {
            fd: sys::register(fd, Interest::WRITABLE)?,
            counters,
        })
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
    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = std::future::poll_fn(|cx| self.poll_write_raw(cx, data)).await?;
            data = &data[n..];
        }
        Ok(())
    }

    fn poll_write_raw(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| retry_eintr(|| sys::write(fd, data))) {
                Ok(Ok(n)) => {
                    self.counters.bytes_in.fetch_add(n as u64, Relaxed);
                    self.counters.writes.fetch_add(1, Relaxed);
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_raw(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsRawFd for ChildStdin {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}
