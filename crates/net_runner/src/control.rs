//! The library's end of the control socket: frames out, frames and passed
//! descriptors in.

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll};

use net_runner_proto::{FrameDecoder, FromShepherd, ToShepherd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::{sys, Error, ShepherdError};

#[derive(Debug)]
pub(crate) struct ControlChannel {
    fd: AsyncFd<Arc<OwnedFd>>,
    decoder: FrameDecoder,
    fds: VecDeque<OwnedFd>,
    eof: bool,
}

fn protocol_error(e: impl std::fmt::Display) -> Error {
    Error::Shepherd(ShepherdError::Protocol(e.to_string()))
}

impl ControlChannel {
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Self> {
        // Weak handles (for signalling) never close it.
        let fd = sys::register(Arc::new(fd), Interest::READABLE | Interest::WRITABLE)?;
        Ok(ControlChannel {
            fd,
            decoder: FrameDecoder::new(),
            fds: VecDeque::new(),
            eof: false,
        })
    }

    /// A handle for sending small frames without owning the channel; it does
    /// not keep the socket open.
    pub(crate) fn weak(&self) -> Weak<OwnedFd> {
        Arc::downgrade(self.fd.get_ref())
    }

    pub(crate) fn fd_ref(&self) -> &OwnedFd {
        self.fd.get_ref()
    }

    /// Writes `bytes` completely, waiting for socket space; `fds` travel
    /// by `SCM_RIGHTS` with the first byte.
    pub(crate) async fn send_all(
        &self,
        mut bytes: &[u8],
        mut fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut guard = self.fd.writable().await?;
            let sent = guard.try_io(|fd| {
                if fds.is_empty() {
                    sys::send(fd, bytes)
                } else {
                    sys::send_with_fds(fd, bytes, fds)
                }
            });
            match sent {
                Ok(Ok(n)) => {
                    bytes = &bytes[n..];
                    fds = &[];
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// The next message; `Ok(None)` once the shepherd closed the channel.
    pub(crate) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<FromShepherd>, Error>> {
        loop {
            if let Some(frame) = self.decoder.next_frame().map_err(protocol_error)? {
                return Poll::Ready(
                    FromShepherd::decode(&frame)
                        .map(Some)
                        .map_err(protocol_error),
                );
            }
            if self.eof {
                return Poll::Ready(Ok(None));
            }
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let mut buf = [0u8; 4096];
            let fds = &mut self.fds;
            let mut received = Vec::new();
            match guard.try_io(|fd| sys::recv_with_fds(fd, &mut buf, &mut received)) {
                Ok(Ok(0)) => self.eof = true,
                Ok(Ok(n)) => self.decoder.push(&buf[..n]),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => self.eof = true,
                Ok(Err(e)) => return Poll::Ready(Err(e.into())),
                Err(_would_block) => {}
            }
            fds.extend(received);
        }
    }

    /// Reads what the socket holds right now, without waiting and without
    /// the reactor's readiness (which a `Drop` cannot wait for): buffered
    /// frames go to the decoder, a hang-up sets end of file. The next
    /// `poll_recv` then hands them out before it would wait.
    pub(crate) fn read_available(&mut self) {
        while !self.eof {
            let mut buf = [0u8; 4096];
            let mut received = Vec::new();
            match sys::recv_with_fds(self.fd.get_ref(), &mut buf, &mut received) {
                Ok(0) => self.eof = true,
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => self.eof = true,
                Err(_) => return, // nothing more now (EAGAIN), or unreadable
            }
            self.fds.extend(received);
        }
    }

    pub(crate) async fn recv(&mut self) -> Result<Option<FromShepherd>, Error> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Gives the channel up for use outside tokio (see [`crate::raw`]):
    /// the socket, the bytes read but not yet decoded, and descriptors
    /// received but not taken.
    pub(crate) fn into_raw_parts(self) -> (OwnedFd, FrameDecoder, VecDeque<OwnedFd>) {
        let fd = Arc::try_unwrap(self.fd.into_inner())
            .unwrap_or_else(|_| unreachable!("the channel holds the only strong reference"));
        (fd, self.decoder, self.fds)
    }

    /// Takes the `n` descriptors that came with a `Spawned` frame.
    pub(crate) fn take_fds(&mut self, n: usize) -> Result<Vec<OwnedFd>, Error> {
        if self.fds.len() < n {
            return Err(protocol_error(format!(
                "expected {n} descriptors, received {}",
                self.fds.len()
            )));
        }
        Ok(self.fds.drain(..n).collect())
    }
}

/// Sends one small frame without waiting. A frame of a few bytes fits the
/// socket buffer whole (the shepherd drains it continuously), and one `send`
/// of it is not interleaved with another sender's.
pub(crate) fn send_now(fd: &OwnedFd, msg: &ToShepherd) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(16);
    msg.encode(&mut bytes);
    let n = loop {
        match sys::send(fd, &bytes) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    if n != bytes.len() {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "control socket full",
        ));
    }
    Ok(())
}
