//! The library's system calls: every `unsafe` block of the crate lives
//! here, each with the invariant it relies on.
//!
//! [`rustix`] makes every call it covers; what it does not cover
//! (`posix_spawn`, `pidfd_send_signal` with `PIDFD_SIGNAL_PROCESS_GROUP`,
//! registering descriptors with tokio, reading into uninitialised memory) is
//! written here in rustix's shape: descriptors in as `impl AsFd`, owned
//! descriptors out as `OwnedFd`, failures as `io::Error`.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use bytes::BytesMut;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendFlags,
    SocketFlags, SocketType,
};
use rustix::process::{Pid, WaitOptions};
use tokio::io::unix::AsyncFd;
use tokio::io::{Interest, ReadBuf};

/// The lowest descriptor number the library keeps anything on. An owner
/// may run with fds 0, 1 or 2 closed; a socket or pipe of ours sitting
/// there would receive the owner's `println!` and be clobbered by the
/// shepherd's stdio set-up.
pub(crate) const FIRST_FREE_FD: RawFd = 3;

/// Opens `/dev/null` on each of fds 0, 1 and 2 that the owner has closed,
/// as std does before `main`. Every descriptor the kernel hands out takes
/// the lowest free number: with one of those free, a socket, pidfd or
/// `/proc` file the library opens (on any thread) would sit there for a
/// moment before [`at_least`] moves it, where another thread could take it
/// for the owner's stdio (and pass it to a child as its stderr). Called
/// when a spawn starts; the owner's writes to a closed stdout went nowhere
/// before and go to `/dev/null` now.
pub(crate) fn reserve_stdio() {
    use rustix::fs::{Mode, OFlags};
    for fd in 0..3 {
        // SAFETY: the borrow lasts for the one fcntl, which only reads
        // the flags (EBADF when closed).
        let open = rustix::io::fcntl_getfd(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) });
        if open.is_ok() {
            continue;
        }
        // The lowest free number is `fd` (the lower ones are open by now),
        // unless another thread opened something meanwhile: then leave it.
        if let Ok(null) = rustix::fs::open(c"/dev/null", OFlags::RDWR, Mode::empty()) {
            if null.as_raw_fd() == fd {
                // The owner's now, like the stdio it replaces.
                std::mem::forget(null);
            }
        }
    }
}

/// `fd` itself if its number is at least `min`; otherwise a close-on-exec
/// duplicate numbered `min` or above, and the low one is closed. Only an
/// owner that closed its low descriptors pays the extra `fcntl`.
pub(crate) fn at_least(fd: OwnedFd, min: RawFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= min {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, min)?)
}

/// A close-on-exec `AF_UNIX` stream socket pair, both ends above stdio.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    Ok((at_least(a, FIRST_FREE_FD)?, at_least(b, FIRST_FREE_FD)?))
}

/// Forks this process into a shepherd that serves `control` (our copy is
/// closed on return); returns the shepherd's pid. Refuses unless this
/// process has exactly one thread.
pub(crate) fn fork_shepherd(control: OwnedFd) -> io::Result<Pid> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "cannot fork a shepherd: this process has {threads} threads, whose locks \
             the fork would copy held; fork before starting any (before a tokio runtime)"
        )));
    }
    // SAFETY: this process has one thread (checked above; only this thread
    // could have started another since), so the child's copies of every
    // lock, of the allocator and of std's state are consistent. The child
    // runs the shepherd and ends with `_exit`: it never returns here, and
    // the parent's objects are never dropped twice.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => netrunner_shepherd::serve_forked(control),
        pid => Ok(Pid::from_raw(pid).ok_or_else(|| io::Error::other("fork returned pid 0"))?),
    }
}

/// Field `n` (counted from 1, as in proc(5); 3 or more) of a
/// `/proc/PID/stat` line. The command name, field 2, may hold spaces and
/// parentheses: the fields after it start past its last `)`.
pub(crate) fn stat_field(stat: &[u8], n: usize) -> Option<&[u8]> {
    let rest = stat.get(stat.iter().rposition(|&b| b == b')')? + 1..)?;
    rest.split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .nth(n.checked_sub(3)?)
}

/// The number of threads of this process (`/proc/self/stat`, field 20).
fn thread_count() -> io::Result<usize> {
    let stat = read_proc_file(c"/proc/self/stat")?;
    stat_field(&stat, 20)
        .and_then(|f| std::str::from_utf8(f).ok()?.parse().ok())
        .ok_or_else(|| io::Error::other("cannot read the thread count in /proc/self/stat"))
}

/// Reads a small `/proc` file whole. `std::fs::read` sizes its buffer by
/// the file's length, which `/proc` gives as 0, and so reads in growing
/// steps: one or two reads here instead of eight.
pub(crate) fn read_proc_file(path: &CStr) -> io::Result<Vec<u8>> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut data = vec![0; 4096];
    let mut len = 0;
    loop {
        if len == data.len() {
            data.resize(len * 2, 0);
        }
        match rustix::io::retry_on_intr(|| rustix::io::read(&fd, &mut data[len..]))? {
            0 => break,
            n => len += n,
        }
    }
    data.truncate(len);
    Ok(data)
}

/// A close-on-exec duplicate, above stdio (a PTY master's second and
/// third descriptor).
pub(crate) fn dup(fd: impl AsFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, FIRST_FREE_FD)?)
}

pub(crate) fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::io::ioctl_fionbio(fd, true)?)
}

/// A descriptor owner that keeps one descriptor open, unchanged, for as
/// long as it lives: what tokio's `AsyncFd` registration requires.
pub(crate) trait StableFd: AsFd + AsRawFd {}
impl StableFd for OwnedFd {}
impl StableFd for Arc<OwnedFd> {}

/// Makes `fd` non-blocking and registers it with the current tokio reactor.
pub(crate) fn register<T: StableFd>(fd: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    set_nonblocking(&fd)?;
    // SAFETY: `T: StableFd` is an `OwnedFd` or an `Arc<OwnedFd>`: the
    // descriptor stays open and names the same file until the `AsyncFd`
    // (which owns `fd`) is dropped, and `as_raw_fd` always returns it.
    Ok(unsafe { AsyncFd::register_with_interest(fd, interest) }?)
}

/// `read` into uninitialised memory; the number of bytes read.
pub(crate) fn read(fd: impl AsFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    let (filled, _) = rustix::io::read(fd, buf)?;
    Ok(filled.len())
}

/// Reads up to `max` bytes into `buf`'s spare capacity (reserving it) and
/// extends `buf` by what was read, without zeroing the memory first.
pub(crate) fn read_into_bytes(fd: impl AsFd, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    buf.reserve(max);
    let n = read(fd, &mut buf.spare_capacity_mut()[..max])?;
    // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// `read` into an initialised slice.
pub(crate) fn read_slice(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::io::read(fd, buf)?)
}

/// Reads at most `max` bytes into the unfilled part of a tokio `ReadBuf`
/// and advances it.
pub(crate) fn read_into_readbuf(
    fd: impl AsFd,
    buf: &mut ReadBuf<'_>,
    max: usize,
) -> io::Result<usize> {
    // SAFETY: `read` only writes initialised bytes into the slice and
    // never de-initialises any; we report exactly the `n` it wrote.
    let unfilled = unsafe { buf.unfilled_mut() };
    let max = max.min(unfilled.len());
    let n = read(fd, &mut unfilled[..max])?;
    // SAFETY: those `n` bytes were just initialised by the kernel.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Ok(n)
}

pub(crate) fn write(fd: impl AsFd, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::io::write(fd, buf)?)
}

/// Non-blocking send without SIGPIPE.
pub(crate) fn send(fd: impl AsFd, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::net::send(
        fd,
        buf,
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
    )?)
}

/// Non-blocking `sendmsg` without SIGPIPE, with `fds` attached by
/// `SCM_RIGHTS` to the first byte sent.
pub(crate) fn send_with_fds(
    fd: impl AsFd,
    buf: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> io::Result<usize> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage};
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many fds"));
    }
    Ok(rustix::net::sendmsg(
        fd,
        &[io::IoSlice::new(buf)],
        &mut control,
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
    )?)
}

/// Most descriptors one message may carry; the shepherd sends at most three.
const MAX_FDS: usize = 8;

/// Non-blocking `recvmsg` that also collects descriptors passed by
/// `SCM_RIGHTS` (received close-on-exec, and moved above stdio). Returns
/// the number of bytes read.
pub(crate) fn recv_with_fds(
    fd: impl AsFd,
    buf: &mut [u8],
    fds_out: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        fd,
        &mut [io::IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
    )?;
    let mut received = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            received.extend(fds);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        // The kernel could not install every passed descriptor (the rest are
        // closed). With room for MAX_FDS and a shepherd that sends at most
        // three, that means this process is out of descriptors.
        return Err(io::Error::from_raw_os_error(libc::EMFILE));
    }
    for fd in received {
        fds_out.push(at_least(fd, FIRST_FREE_FD)?);
    }
    Ok(msg.bytes)
}

/// `posix_spawn` file actions, destroyed on drop.
struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> io::Result<Self> {
        let mut raw = MaybeUninit::uninit();
        // SAFETY: `init` fully initialises the object it is given.
        spawn_result(unsafe { libc::posix_spawn_file_actions_init(raw.as_mut_ptr()) })?;
        // SAFETY: initialised by the successful call above.
        Ok(FileActions(unsafe { raw.assume_init() }))
    }

    fn dup2(&mut self, fd: RawFd, target: RawFd) -> io::Result<()> {
        // SAFETY: `self.0` is initialised; the call copies its arguments.
        spawn_result(unsafe { libc::posix_spawn_file_actions_adddup2(&mut self.0, fd, target) })
    }

    fn open(&mut self, target: RawFd, path: &CStr, flags: libc::c_int) -> io::Result<()> {
        // SAFETY: `self.0` is initialised; `path` is NUL-terminated and
        // glibc copies it into the action.
        spawn_result(unsafe {
            libc::posix_spawn_file_actions_addopen(&mut self.0, target, path.as_ptr(), flags, 0)
        })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed exactly once.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// `posix_spawn` attributes, destroyed on drop.
struct SpawnAttr(libc::posix_spawnattr_t);

impl SpawnAttr {
    /// Attributes that give the new process an empty signal mask.
    fn with_empty_sigmask() -> io::Result<Self> {
        let mut raw = MaybeUninit::uninit();
        // SAFETY: `init` fully initialises the object it is given.
        spawn_result(unsafe { libc::posix_spawnattr_init(raw.as_mut_ptr()) })?;
        // SAFETY: initialised by the successful call above; from here on the
        // guard destroys it, whatever fails next.
        let mut attr = SpawnAttr(unsafe { raw.assume_init() });
        let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `sigemptyset` initialises the set it is given.
        unsafe { libc::sigemptyset(empty.as_mut_ptr()) };
        // SAFETY: `attr.0` is initialised and `empty` was initialised above;
        // the call copies the set.
        spawn_result(unsafe { libc::posix_spawnattr_setsigmask(&mut attr.0, empty.as_ptr()) })?;
        // SAFETY: `attr.0` is initialised.
        spawn_result(unsafe {
            libc::posix_spawnattr_setflags(&mut attr.0, libc::POSIX_SPAWN_SETSIGMASK as _)
        })?;
        Ok(attr)
    }
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: initialised in `with_empty_sigmask`, destroyed exactly once.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

/// Starts `program` (an executable path) with `control` as its fd 3,
/// `/dev/null` as fds 0 and 1, our stderr as fd 2 (for `Stderr::Inherit` and
/// its diagnostics; the shepherd puts `/dev/null` there if we have none),
/// an empty signal mask and our environment; returns its pid. `program`
/// must not name a descriptor numbered 0 to 3 (`/proc/self/fd/N`): the
/// file actions replace those before the exec. The shepherd must not hold
/// our stdin or stdout open: a reader of our stdout would wait on it.
///
/// `posix_spawn` is a vfork-style clone in glibc: it does not copy the
/// caller's address space, which matters for a large owner.
///
/// Its `argv` is `netrunner-shepherd` and, when given, `label` (the
/// program it is started for), which is what `ps` shows.
pub(crate) fn spawn_shepherd(
    program: &CStr,
    control: impl AsFd,
    label: Option<&CStr>,
) -> io::Result<Pid> {
    let control = control.as_fd();
    // dup2 onto itself would keep close-on-exec on some libcs: stay off fd 3.
    let moved;
    let mut control_fd = control.as_raw_fd();
    if control_fd == net_runner_proto::CONTROL_FD {
        moved = rustix::io::fcntl_dupfd_cloexec(control, 10)?;
        control_fd = moved.as_raw_fd();
    }
    let mut actions = FileActions::new()?;
    actions.dup2(control_fd, net_runner_proto::CONTROL_FD)?;
    actions.open(0, c"/dev/null", libc::O_RDONLY)?;
    actions.open(1, c"/dev/null", libc::O_WRONLY)?;
    let attr = SpawnAttr::with_empty_sigmask()?;
    // Named in `ps` by what it is, not by `/proc/self/fd/N`.
    let argv: [*mut libc::c_char; 3] = [
        c"netrunner-shepherd".as_ptr().cast_mut(),
        label.map_or(std::ptr::null_mut(), |l| l.as_ptr().cast_mut()),
        std::ptr::null_mut(),
    ];
    extern "C" {
        static environ: *const *mut libc::c_char;
    }
    let mut pid = 0;
    // SAFETY: `program`, `label` and `argv` are NUL-terminated and outlive the call
    // (posix_spawn returns after the exec or its failure); `actions` and
    // `attr` are initialised; `environ` is the process environment, which
    // std only modifies under its environment lock, and glibc's posix_spawn
    // reads it before returning. `pid` is written on success.
    spawn_result(unsafe {
        libc::posix_spawn(
            &mut pid,
            program.as_ptr(),
            &actions.0,
            &attr.0,
            argv.as_ptr(),
            environ,
        )
    })?;
    Pid::from_raw(pid).ok_or_else(|| io::Error::other("posix_spawn returned pid 0"))
}

/// `posix_spawn*` functions return the error number instead of setting errno.
fn spawn_result(code: libc::c_int) -> io::Result<()> {
    match code {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// `waitpid(pid, WNOHANG)`: `None` while it runs; once reaped (or not our
/// child, so that there is nothing left to wait for), whether it ended by
/// returning from `main`/`exit` (`true`) rather than by a signal. A
/// shepherd that exits runs its teardown first; one killed by a signal
/// may have left its cgroup behind.
pub(crate) fn try_reap(pid: Pid) -> Option<bool> {
    match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
        Ok(Some((_, status))) => Some(status.exit_status().is_some()),
        Ok(None) | Err(rustix::io::Errno::INTR) => None,
        // Not ours (reaped elsewhere): nothing to wait for, and nothing we
        // know it left behind.
        Err(_) => Some(true),
    }
}

/// `pidfd_open(pid)` (Linux 5.3+), above stdio.
pub(crate) fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    at_least(fd, FIRST_FREE_FD)
}

/// `PIDFD_SIGNAL_PROCESS_GROUP` from `<linux/pidfd.h>`.
const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

/// Sends `signal` to the process group of the pidfd's process (Linux
/// 6.9+; `EINVAL` before). The group is the kernel's pid object, so a
/// recycled number cannot redirect the signal. (rustix's
/// `pidfd_send_signal` has no flags argument.)
pub(crate) fn pidfd_kill_group(pidfd: impl AsFd, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system call; the pidfd is borrowed for its duration and
    // a null `siginfo` is allowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_fd().as_raw_fd(),
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

/// `tcgetpgrp(tty)`: the terminal's foreground process group.
pub(crate) fn tcgetpgrp(tty: impl AsFd) -> io::Result<libc::pid_t> {
    // SAFETY: an ioctl(TIOCGPGRP) on a borrowed descriptor; no memory of
    // ours is involved.
    let pgrp = unsafe { libc::tcgetpgrp(tty.as_fd().as_raw_fd()) };
    if pgrp < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pgrp)
    }
}

/// `tcsetpgrp(tty, pgrp)` with `SIGTTOU` blocked in the calling thread
/// meanwhile: a background group may then take the terminal (as a shell
/// does) instead of being stopped.
pub(crate) fn tcsetpgrp(tty: impl AsFd, pgrp: libc::pid_t) -> io::Result<()> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset/sigaddset initialise and fill the set; the mask
    // calls read `set` and write `old` in full on success (only then is
    // `old` used); tcsetpgrp is an ioctl on a borrowed descriptor.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGTTOU);
        let masked = libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), old.as_mut_ptr()) == 0;
        let r = libc::tcsetpgrp(tty.as_fd().as_raw_fd(), pgrp);
        let err = io::Error::last_os_error();
        if masked {
            libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut());
        }
        if r != 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// `getpgrp()`.
pub(crate) fn getpgrp() -> libc::pid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getpgrp() }
}

/// A close-on-exec copy (above stdio) of descriptor number `fd`, which
/// this process may have closed: `None` then.
pub(crate) fn dup_raw(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: the borrow lasts for the one fcntl below, which fails with
    // EBADF if `fd` is closed; nothing closes it meanwhile on our side
    // (fds 0-2 belong to the process, not to an object that could drop).
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_dupfd_cloexec(borrowed, FIRST_FREE_FD).ok()
}
