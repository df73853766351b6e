//! The few raw system calls the library makes, as `io::Result` functions.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// The lowest descriptor number the library keeps anything on. An owner
/// may run with fds 0, 1 or 2 closed; a socket or pipe of ours sitting
/// there would receive the owner's `println!` and be clobbered by the
/// shepherd's stdio set-up.
pub(crate) const FIRST_FREE_FD: RawFd = 3;

/// `fd` itself if its number is at least `min`; otherwise a close-on-exec
/// duplicate numbered `min` or above, and the low one is closed. Only an
/// owner that closed its low descriptors pays the extra `fcntl`.
pub(crate) fn at_least(fd: OwnedFd, min: RawFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= min {
        return Ok(fd);
    }
    let moved = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// A close-on-exec `AF_UNIX` stream socket pair, both ends above stdio.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((at_least(a, FIRST_FREE_FD)?, at_least(b, FIRST_FREE_FD)?))
}

/// Makes `fd` non-blocking and registers it with the current tokio reactor.
pub(crate) fn register(
    fd: OwnedFd,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    set_nonblocking(&fd)?;
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and unchanged
    // until the AsyncFd is dropped.
    Ok(unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }?)
}

pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

pub(crate) fn read(fd: RawFd, buf: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
    cvt_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

pub(crate) fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    cvt_size(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// Non-blocking send without SIGPIPE.
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    cvt_size(unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    })
}

/// `recvmsg` that also collects descriptors passed by `SCM_RIGHTS`
/// (received close-on-exec). Returns the number of bytes read.
pub(crate) fn recv_with_fds(
    fd: RawFd,
    buf: &mut [u8],
    fds_out: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    const MAX_FDS: usize = 8;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) };
    let mut cbuf = [0u64; 16];
    debug_assert!(space as usize <= std::mem::size_of_val(&cbuf));
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = cvt_size(unsafe {
        libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT)
    })?;
    let mut received = Vec::new();
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*cmsg).cmsg_len as usize - header) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    received.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        // The kernel could not install every passed descriptor (the rest are
        // closed). With room for MAX_FDS and a shepherd that sends at most
        // three, that means this process is out of descriptors.
        return Err(io::Error::from_raw_os_error(libc::EMFILE));
    }
    for fd in received {
        fds_out.push(at_least(fd, FIRST_FREE_FD)?);
    }
    Ok(n)
}

/// Starts `program` (an executable path) with `control` as its fd 3,
/// `/dev/null` as fds 0 and 1, our stderr as fd 2 (for `Stderr::Inherit` and
/// its diagnostics; the shepherd puts `/dev/null` there if we have none),
/// an empty signal mask;
/// returns its pid. `program` must not name a descriptor numbered 0 to 3
/// (`/proc/self/fd/N`): the file actions replace those before the exec. The shepherd
/// must not hold our stdin or stdout open: a reader of our stdout would wait
/// on it. `posix_spawn` is a
/// vfork-style clone in glibc: it does not copy the caller's address space.
pub(crate) fn spawn_shepherd(program: &CString, control: &OwnedFd) -> io::Result<libc::pid_t> {
    // dup2 onto itself would keep close-on-exec on some libcs: stay off fd 3.
    let moved;
    let mut control_fd = control.as_raw_fd();
    if control_fd == net_runner_proto::CONTROL_FD {
        moved = unsafe {
            OwnedFd::from_raw_fd(cvt(libc::fcntl(control_fd, libc::F_DUPFD_CLOEXEC, 10))?)
        };
        control_fd = moved.as_raw_fd();
    }
    let argv: [*mut libc::c_char; 2] = [program.as_ptr() as *mut _, std::ptr::null_mut()];
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        spawn_err(libc::posix_spawn_file_actions_init(&mut actions))?;
        let result = (|| {
            spawn_err(libc::posix_spawn_file_actions_adddup2(
                &mut actions,
                control_fd,
                net_runner_proto::CONTROL_FD,
            ))?;
            for (fd, flags) in [(0, libc::O_RDONLY), (1, libc::O_WRONLY)] {
                spawn_err(libc::posix_spawn_file_actions_addopen(
                    &mut actions,
                    fd,
                    c"/dev/null".as_ptr(),
                    flags,
                    0,
                ))?;
            }
            spawn_err(libc::posix_spawnattr_init(&mut attr))?;
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            spawn_err(libc::posix_spawnattr_setsigmask(&mut attr, &empty))?;
            spawn_err(libc::posix_spawnattr_setflags(
                &mut attr,
                libc::POSIX_SPAWN_SETSIGMASK as libc::c_short,
            ))?;
            let mut pid = 0;
            extern "C" {
                static environ: *const *mut libc::c_char;
            }
            spawn_err(libc::posix_spawn(
                &mut pid,
                program.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                environ,
            ))?;
            Ok(pid)
        })();
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        result
    }
}

fn spawn_err(code: libc::c_int) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code))
    }
}

/// `waitpid(pid, WNOHANG)`: true once the process is reaped (or is not ours).
pub(crate) fn try_reap(pid: libc::pid_t) -> bool {
    let mut status = 0;
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    r == pid || (r == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
}

/// `pidfd_open(pid)`; `None` if the kernel has no pidfds (before 5.3) or
/// the process is gone.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })?;
    at_least(fd, FIRST_FREE_FD).ok()
}

/// `PIDFD_SIGNAL_PROCESS_GROUP` from `<linux/pidfd.h>`.
const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

/// Sends `signal` to the process group of the pidfd's process (Linux
/// 6.9+; `EINVAL` before). The group is the kernel's pid object, so a
/// recycled number cannot redirect the signal.
pub(crate) fn pidfd_kill_group(pidfd: &OwnedFd, signal: libc::c_int) -> io::Result<()> {
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            PIDFD_SIGNAL_PROCESS_GROUP,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
