//! Thin wrappers over the libc calls the shepherd makes, returning `io::Result`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Turns a `-1` return into the current `errno`.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Retries a call interrupted by a signal.
pub fn retry<T, F: FnMut() -> io::Result<T>>(mut f: F) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `pipe2(O_CLOEXEC)`: returns `(read end, write end)`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Asks the kernel for a larger pipe buffer; failure (over the per-user limit)
/// is harmless, the pipe keeps its default size.
pub fn grow_pipe(fd: &OwnedFd, size: u32) {
    if size > 0 {
        let _ = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
    }
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| {
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    })
}

/// Sends all of `data` on a socket, with `fds` attached to the first byte by
/// `SCM_RIGHTS`. `MSG_NOSIGNAL`: a vanished owner is an `EPIPE`, not a signal.
pub fn send_all(sock: RawFd, mut data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut first = true;
    while !data.is_empty() {
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        let space =
            unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as libc::c_uint) } as usize;
        // u64 storage keeps the control buffer aligned for cmsghdr.
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        if first && !fds.is_empty() {
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as libc::c_uint) as _;
                std::ptr::copy_nonoverlapping(
                    fds.as_ptr(),
                    libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                    fds.len(),
                );
            }
        }
        let n = retry(|| {
            let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        })?;
        first = false;
        data = &data[n..];
    }
    Ok(())
}

/// Blocks `signals` for this thread and returns a signalfd that reports them.
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        cvt(libc::sigprocmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        let fd = cvt(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Drains a signalfd; returns the signal numbers read.
pub fn drain_signalfd(fd: &OwnedFd) -> Vec<u32> {
    drain_signalfd_raw(fd.as_raw_fd())
}

/// [`drain_signalfd`] on a raw descriptor.
pub fn drain_signalfd_raw(fd: RawFd) -> Vec<u32> {
    let mut out = Vec::new();
    loop {
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if n as usize != size {
            return out;
        }
        out.push(info.ssi_signo);
    }
}

/// `kill(2)`; `ESRCH` (nobody left) counts as success.
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    match cvt(unsafe { libc::kill(pid, signal) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        other => other.map(drop),
    }
}

/// Current `errno` as an `i32`.
pub fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Resets `signal` to its default action with the raw system call: glibc's
/// `signal()` refuses the real-time signals it reserves for itself (32 and
/// 33), which an ancestor may still have left ignored, and ignored signals
/// survive exec.
pub fn reset_signal(signal: libc::c_int) {
    // The kernel's `struct sigaction` (x86_64 and the generic layout).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            &default as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            std::mem::size_of::<u64>(),
        );
    }
}
