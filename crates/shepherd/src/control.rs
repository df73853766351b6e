//! The shepherd's end of the control socket.

use std::io;
use std::os::fd::RawFd;

use net_runner_proto::{DecodeError, FrameDecoder, FromShepherd, ToShepherd};

use crate::sys;

/// One decoded input: `None` is the owner hanging up.
pub type Input = Option<Result<ToShepherd, DecodeError>>;

pub struct Control {
    fd: RawFd,
    decoder: FrameDecoder,
    out: Vec<u8>,
}

impl Control {
    /// Takes over the inherited socket at `fd` and marks it close-on-exec so
    /// the child never holds the owner's channel open.
    pub fn from_inherited(fd: RawFd) -> io::Result<Self> {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        sys::cvt(unsafe { libc::fstat(fd, &mut st) })?;
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a socket"));
        }
        sys::cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        Ok(Control {
            fd,
            decoder: FrameDecoder::new(),
            out: Vec::new(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Blocks until at least one input is available. While waiting (an
    /// idle, pre-started shepherd), a SIGTERM on `sigfd` counts as the owner
    /// gone: it must not stay pending and hit the next request's child.
    pub fn wait_frames(&mut self, sigfd: RawFd) -> io::Result<Vec<Input>> {
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: sigfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            sys::retry(|| sys::cvt(unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) }))?;
            if fds[1].revents != 0 {
                let signals = sys::drain_signalfd_raw(sigfd);
                if signals.contains(&(libc::SIGTERM as u32)) {
                    return Ok(vec![None]);
                }
            }
            if fds[0].revents != 0 {
                let inputs = self.read_frames();
                if !inputs.is_empty() {
                    return Ok(inputs);
                }
            }
        }
    }

    /// One read (the socket is readable) and every whole frame it completed.
    /// A read error counts as hang-up: either way the owner cannot talk to us.
    pub fn read_frames(&mut self) -> Vec<Input> {
        let mut buf = [0u8; 16 * 1024];
        let n = match sys::read(self.fd, &mut buf) {
            Ok(0) | Err(_) => return vec![None],
            Ok(n) => n,
        };
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

    /// Adds a message to the outgoing buffer.
    pub fn queue(&mut self, msg: &FromShepherd) {
        msg.encode(&mut self.out);
    }

    /// Sends everything queued, with `fds` attached.
    pub fn flush(&mut self, fds: &[RawFd]) -> io::Result<()> {
        let out = std::mem::take(&mut self.out);
        sys::send_all(self.fd, &out, fds)
    }
}
