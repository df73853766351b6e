//! The shepherd's end of the control socket.

use std::io;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use net_runner_proto::{DecodeError, FrameDecoder, FromShepherd, ToShepherd};
use rustix::event::{PollFd, PollFlags};
use rustix::fs::FileType;
use rustix::io::{retry_on_intr, FdFlags};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::sys;

/// One decoded input: `None` is the owner hanging up.
pub(crate) type Input = Option<Result<ToShepherd, DecodeError>>;

pub(crate) struct Control {
    fd: OwnedFd,
    decoder: FrameDecoder,
    out: Vec<u8>,
    /// Descriptors the owner passed (`SCM_RIGHTS`, with its `Spawn`), in
    /// arrival order.
    fds: Vec<OwnedFd>,
}

/// Most descriptors one read accepts: three stdio ends and a terminal.
const MAX_PASSED_FDS: usize = 4;

impl Control {
    /// Takes over the socket `fd` and marks it close-on-exec so the child
    /// never holds the owner's channel open.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Self> {
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a socket"));
        }
        rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC)?;
        Ok(Control {
            fd,
            decoder: FrameDecoder::new(),
            out: Vec::new(),
            fds: Vec::new(),
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Blocks until at least one input is available. While waiting (an
    /// idle, pre-started shepherd), a SIGTERM on `sigfd` counts as the owner
    /// gone: it must not stay pending and hit the next request's child.
    pub(crate) fn wait_frames(&mut self, sigfd: BorrowedFd<'_>) -> io::Result<Vec<Input>> {
        loop {
            let (control, signal) = {
                let mut fds = [
                    PollFd::new(&self.fd, PollFlags::IN),
                    PollFd::from_borrowed_fd(sigfd, PollFlags::IN),
                ];
                retry_on_intr(|| rustix::event::poll(&mut fds, None))?;
                (!fds[0].revents().is_empty(), !fds[1].revents().is_empty())
            };
            if signal && sys::read_signals(sigfd).contains(&(libc::SIGTERM as u32)) {
                return Ok(vec![None]);
            }
            if control {
                let inputs = self.read_frames();
                if !inputs.is_empty() {
                    return Ok(inputs);
                }
            }
        }
    }

    /// One read (the socket is readable) and every whole frame it completed.
    /// A read error counts as hang-up: either way the owner cannot talk to us.
    pub(crate) fn read_frames(&mut self) -> Vec<Input> {
        let mut buf = [0u8; 16 * 1024];
        let mut space =
            [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED_FDS))];
        let mut ancillary = RecvAncillaryBuffer::new(&mut space);
        let n = match retry_on_intr(|| {
            rustix::net::recvmsg(
                &self.fd,
                &mut [io::IoSliceMut::new(&mut buf)],
                &mut ancillary,
                RecvFlags::CMSG_CLOEXEC,
            )
        }) {
            Ok(msg) if msg.bytes == 0 => return vec![None],
            Err(_) => return vec![None],
            Ok(msg) => msg.bytes,
        };
        for message in ancillary.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = message {
                self.fds.extend(fds);
            }
        }
        self.decoder.push(&buf[..n]);
        let mut inputs = Vec::new();
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => inputs.push(Some(ToShepherd::decode(&frame))),
                Ok(None) => return inputs,
                Err(e) => {
                    inputs.push(Some(Err(e)));
                    return inputs;
                }
            }
        }
    }

    /// Takes the `n` descriptors passed with the request; `None` if fewer
    /// arrived (a truncated or forged request).
    pub(crate) fn take_fds(&mut self, n: usize) -> Option<Vec<OwnedFd>> {
        if self.fds.len() < n {
            return None;
        }
        Some(self.fds.drain(..n).collect())
    }

    /// Adds a message to the outgoing buffer.
    pub(crate) fn queue(&mut self, msg: &FromShepherd) {
        msg.encode(&mut self.out);
    }

    /// Sends everything queued, with `fds` attached to its first byte.
    pub(crate) fn flush(&mut self, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let out = std::mem::take(&mut self.out);
        send_all(&self.fd, &out, fds)
    }
}

/// Sends all of `data` on a socket, with `fds` attached to the first byte by
/// `SCM_RIGHTS`. `MSG_NOSIGNAL`: a vanished owner is an `EPIPE`, not a signal.
fn send_all(sock: impl AsFd, mut data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = Vec::new();
    if !fds.is_empty() {
        space.resize(
            rustix::cmsg_space!(ScmRights(fds.len())),
            MaybeUninit::uninit(),
        );
    }
    let mut rights = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !rights.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many fds"));
    }
    let mut none = SendAncillaryBuffer::default();
    let mut first = true;
    while !data.is_empty() {
        let control = if first { &mut rights } else { &mut none };
        let n = retry_on_intr(|| {
            rustix::net::sendmsg(&sock, &[IoSlice::new(data)], control, SendFlags::NOSIGNAL)
        })?;
        first = false;
        data = &data[n..];
    }
    Ok(())
}
