//! The system calls rustix does not offer safely, in rustix's shape
//! (`impl AsFd`/`BorrowedFd` in; `OwnedFd` and `rustix::io::Result` out).
//! This is the only module of the shepherd with `unsafe`.
//!
//! Here: the start of a forked shepherd (`dup2` onto fd 3, `_exit`, the
//! rewrite of its command line), claiming the inherited control socket and
//! closing the rest (`close_range`), signal dispositions and masks (`sigaction`, the raw
//! `rt_sigaction`, `signalfd`), `kill` with a raw signal number, `wait4`
//! with its resource usage, and the vfork-style spawn with its child side.
//! Everything else the shepherd calls through rustix directly.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use libc::c_int;
use net_runner_proto::SpawnStage;
use rustix::fs::{Mode, OFlags};
use rustix::io::{Errno, FdFlags, Result};
use rustix::process::{Gid, Pid, Resource, Rlimit, Signal, Uid, WaitOptions};

/// The current `errno`, read right after a libc call that failed (`EIO`
/// should it be 0: `Errno` cannot hold that).
fn last_errno() -> Errno {
    match io::Error::last_os_error().raw_os_error() {
        Some(e) if e > 0 && e < 4096 => Errno::from_raw_os_error(e),
        _ => Errno::IO,
    }
}

/// Turns a libc `-1` return into the current `errno`.
fn cvt(ret: c_int) -> Result<c_int> {
    if ret == -1 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

// ---------------------------------------------------------------------------
// Started as a fork of the owner

/// Gives a freshly forked process what an exec'd shepherd starts with:
/// `control` on fd 3 without close-on-exec (as the owner's spawn puts it),
/// `/dev/null` on fds 0 and 1, no signal blocked. The descriptors above 3
/// are then closed by [`claim_inherited`], as for an exec'd shepherd.
///
/// The owner's objects that own descriptors live on in this copy of its
/// memory, but are never dropped: the process ends with [`exit_now`].
pub(crate) fn become_forked_shepherd(control: OwnedFd) -> Result<()> {
    let raw = control.into_raw_fd();
    let target = net_runner_proto::CONTROL_FD;
    if raw == target {
        // SAFETY: `raw` is the open descriptor we were just given; F_SETFD
        // only changes its flags.
        cvt(unsafe { libc::fcntl(raw, libc::F_SETFD, 0) })?;
    } else {
        // SAFETY: dup2 takes plain numbers; `raw` is open, and whatever the
        // owner had on fd 3 is only a copy in this process, never used by
        // the code that runs from here (see above).
        cvt(unsafe { libc::dup2(raw, target) })?;
    }
    let null = rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    dup_onto(null.as_fd(), 0)?;
    dup_onto(null.as_fd(), 1)?;
    set_sigmask(libc::SIG_SETMASK, &sigset(&[], false)?)?;
    Ok(())
}

/// Ends the process at once with `code`: no destructors, no `atexit`
/// handlers, no flushing of buffers (in a forked shepherd, those are the
/// owner's).
pub(crate) fn exit_now(code: c_int) -> ! {
    // SAFETY: `_exit` has no preconditions; skipping every cleanup of the
    // process is what it is for.
    unsafe { libc::_exit(code) }
}

/// Makes `/proc/self/cmdline`, hence `ps`, show `parts` as the arguments,
/// cut to the size of the argument area this process started with. For a
/// forked shepherd, which would otherwise show its owner's command line.
/// Best effort: nothing changes if `/proc` cannot say where that area is.
pub(crate) fn set_command_line(parts: &[&[u8]]) {
    let Some((start, len)) = argument_area() else {
        return;
    };
    let mut text = Vec::with_capacity(len);
    for part in parts {
        text.extend(part.iter().filter(|&&b| b != 0));
        text.push(0);
    }
    // The kernel shows the area up to its last byte when that is a NUL;
    // otherwise it reads on into the environment.
    text.resize(len - 1, 0);
    text.push(0);
    // SAFETY: the kernel reports [start, start + len) as this process's
    // argument strings: bytes of its initial stack, mapped and writable
    // for as long as the process lives. A forked shepherd has one thread,
    // and no Rust reference points into those bytes (std reads `argv`
    // through raw pointers, and only when asked).
    unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), start as *mut u8, len) }
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

/// Where this process's argument strings are: `arg_start` and the length
/// up to `arg_end`, from `/proc/self/stat` (fields 48 and 49).
fn argument_area() -> Option<(usize, usize)> {
    let stat = std::fs::read("/proc/self/stat").ok()?;
    let number = |n| {
        let field = stat_field(&stat, n)?;
        std::str::from_utf8(field).ok()?.parse::<usize>().ok()
    };
    let (start, end) = (number(48)?, number(49)?);
    // Anything odd (a kernel that hides the fields shows 0s): leave it.
    (start > 0 && end > start && end - start <= 1 << 20).then_some((start, end - start))
}

// ---------------------------------------------------------------------------
// Inherited descriptors

/// Closes every descriptor above `keep` (whatever the owner leaked without
/// close-on-exec: a jobserver pipe, a stray file, which must not reach the
/// child) and takes ownership of `keep`, which must be open.
///
/// Meant as the first thing `main` does, before anything opens a
/// descriptor of its own. Only the first call claims; later ones fail with
/// `EBUSY`, so `keep` never gets two owners.
pub(crate) fn claim_inherited(keep: RawFd) -> Result<OwnedFd> {
    static CLAIMED: AtomicBool = AtomicBool::new(false);
    if CLAIMED.swap(true, Ordering::SeqCst) {
        return Err(Errno::BUSY);
    }
    close_above(keep);
    // SAFETY: F_GETFD on a plain descriptor number only reads its flags;
    // a closed number fails with EBADF.
    cvt(unsafe { libc::fcntl(keep, libc::F_GETFD) })?;
    // SAFETY: `keep` is open (checked above) and owned by nothing else in
    // this process: it was inherited, nothing has claimed it yet (CLAIMED),
    // and nothing opened it since start (the caller's contract).
    Ok(unsafe { OwnedFd::from_raw_fd(keep) })
}

/// Closes every descriptor above `keep`.
fn close_above(keep: RawFd) {
    let first = (keep + 1) as libc::c_uint;
    // SAFETY: close_range takes plain numbers and only closes descriptors;
    // those above `keep` belong to no Rust object yet (see claim_inherited).
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) };
    if ret == 0 {
        return;
    }
    // Kernels before 5.9: close what /proc lists. The listing's own
    // descriptor is closed by the time we close (EBADF, harmless).
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<RawFd> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > keep)
            .collect();
        for fd in fds {
            // SAFETY: as for close_range above.
            unsafe { libc::close(fd) };
        }
    }
}

// ---------------------------------------------------------------------------
// Signals

/// What a signal does when it arrives, for the dispositions we set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    Default,
    Ignore,
}

/// Sets `signal`'s disposition with libc's `sigaction`. glibc refuses the
/// signals it reserves (32 and 33) with `EINVAL`: see
/// [`reset_signal_raw`] for those.
///
/// Safe in the vfork child: glibc's `sigaction` only fills in the kernel's
/// structure on the stack and makes the system call (its own `posix_spawn`
/// child does the same); it may set `errno`, which the suspended parent
/// does not read across the clone.
pub(crate) fn set_disposition(signal: c_int, disposition: Disposition) -> Result<()> {
    let handler = match disposition {
        Disposition::Default => libc::SIG_DFL,
        Disposition::Ignore => libc::SIG_IGN,
    };
    let mut action = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a zeroed `sigaction` is valid (no handler, no flags, and
    // sa_mask is emptied below); we write its fields through a raw pointer
    // into that memory, then pass it to sigaction, which only reads it.
    unsafe {
        let act = action.as_mut_ptr();
        (*act).sa_sigaction = handler;
        libc::sigemptyset(&mut (*act).sa_mask);
        cvt(libc::sigaction(signal, act, std::ptr::null_mut()))?;
    }
    Ok(())
}

/// Resets `signal` to its default action with the raw `rt_sigaction`
/// system call, which also reaches the signals glibc reserves (32 and 33):
/// an ancestor may have left them ignored, and ignored signals survive
/// exec.
///
/// No per-arch struct layout is needed: with `SIG_DFL` (0), no flags, no
/// restorer and an empty mask the kernel's `struct sigaction` is all zero
/// bytes whatever its field order. What does differ per arch is listed
/// below: the sigset size (`_NSIG / 8`, 16 on MIPS), the argument list
/// (SPARC and Alpha pass a restorer too) and the struct's size (at most 32
/// bytes on the listed ones).
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "s390x",
))]
pub(crate) fn reset_signal_raw(signal: c_int) -> Result<()> {
    const KERNEL_SIGSET_SIZE: usize = 8;
    let default = [0u64; 4];
    // SAFETY: `default` is a readable, zeroed buffer at least as large as
    // the kernel's `struct sigaction` on this arch (see above), the old
    // action is not asked for (null), and the sigset size matches the
    // kernel's: the call only reads our buffer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            default.as_ptr(),
            std::ptr::null_mut::<u64>(),
            KERNEL_SIGSET_SIZE,
        )
    };
    if ret == -1 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// On the other arches: libc's `sigaction`, which leaves glibc's reserved
/// signals as inherited.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "s390x",
)))]
pub(crate) fn reset_signal_raw(signal: c_int) -> Result<()> {
    match set_disposition(signal, Disposition::Default) {
        Err(Errno::INVAL) => Ok(()),
        other => other,
    }
}

/// A signal set holding `signals` (all of them with `full`).
fn sigset(signals: &[c_int], full: bool) -> Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset/sigfillset initialise the whole set they are
    // given; sigaddset only writes inside the initialised set.
    unsafe {
        if full {
            cvt(libc::sigfillset(set.as_mut_ptr()))?;
        } else {
            cvt(libc::sigemptyset(set.as_mut_ptr()))?;
        }
        for &s in signals {
            cvt(libc::sigaddset(set.as_mut_ptr(), s))?;
        }
        Ok(set.assume_init())
    }
}

/// `sigprocmask`: sets this thread's signal mask, returns the old one.
fn set_sigmask(how: c_int, set: &libc::sigset_t) -> Result<libc::sigset_t> {
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `set` is a valid set; the kernel fills in `old` in full when
    // the call succeeds, and only then do we read it.
    unsafe {
        cvt(libc::sigprocmask(how, set, old.as_mut_ptr()))?;
        Ok(old.assume_init())
    }
}

/// Blocks `signals` for this thread and returns a signalfd (close-on-exec,
/// non-blocking) that reports them.
pub(crate) fn signalfd(signals: &[c_int]) -> Result<OwnedFd> {
    let set = sigset(signals, false)?;
    set_sigmask(libc::SIG_BLOCK, &set)?;
    // SAFETY: `set` is a valid set that signalfd only reads; -1 asks for a
    // new descriptor.
    let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: signalfd just returned this new descriptor: nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

const SIGINFO_SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();
// The signal number is the first field of what a signalfd read returns.
const _: () = assert!(std::mem::offset_of!(libc::signalfd_siginfo, ssi_signo) == 0);

/// Drains a non-blocking signalfd; returns the signal numbers read.
pub(crate) fn read_signals(fd: impl AsFd) -> Vec<u32> {
    let mut out = Vec::new();
    let mut info = [0u8; SIGINFO_SIZE];
    while let Ok(SIGINFO_SIZE) = rustix::io::read(fd.as_fd(), &mut info) {
        let [a, b, c, d, ..] = info;
        out.push(u32::from_ne_bytes([a, b, c, d]));
    }
    out
}

/// `kill(-pgid, signal)` with a raw signal number, as the library sends
/// them: rustix's `Signal` names only the classic signals, not 0 or the
/// real-time ones a child may expect.
pub(crate) fn kill_process_group_raw(pgid: Pid, signal: c_int) -> Result<()> {
    // SAFETY: kill takes plain numbers and touches no memory of ours.
    cvt(unsafe { libc::kill(-pgid.as_raw_pid(), signal) }).map(drop)
}

// ---------------------------------------------------------------------------
// Reaping

/// `wait4`: rustix's `waitpid` has no resource usage. `pid: None` waits for
/// any child. `Ok(None)` when `WNOHANG` finds nothing ready; the status is
/// the raw one (`libc::WIFEXITED` and friends read it).
pub(crate) fn wait4(
    pid: Option<Pid>,
    options: WaitOptions,
) -> Result<Option<(Pid, c_int, libc::rusage)>> {
    let mut status: c_int = 0;
    let mut usage = MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `status` and `usage` are writable and live across the call;
    // the kernel fills in `usage` in full when it returns a pid.
    let ret = unsafe {
        libc::wait4(
            pid.map_or(-1, Pid::as_raw_pid),
            &mut status,
            options.bits() as c_int,
            usage.as_mut_ptr(),
        )
    };
    let ret = cvt(ret)?;
    match Pid::from_raw(ret) {
        None => Ok(None),
        // SAFETY: wait4 returned a pid, so it filled in `usage`.
        Some(pid) => Ok(Some((pid, status, unsafe { usage.assume_init() }))),
    }
}

// ---------------------------------------------------------------------------
// Spawning

/// Where one of the child's standard descriptors comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stdio<'a> {
    /// Left as the shepherd has it.
    Inherit,
    /// This descriptor, duplicated onto the target.
    From(BorrowedFd<'a>),
    /// `/dev/null`, read-write.
    Null,
    /// A copy of the child's stdout (`2>&1`).
    Stdout,
}

/// Everything the child needs, prepared by the parent: the child side only
/// makes system calls.
pub(crate) struct Exec<'a> {
    /// For fds 0, 1, 2.
    pub(crate) stdio: [Stdio<'a>; 3],
    /// PTY mode: a new session (`setsid`) instead of a new process group,
    /// with stdin (the PTY's slave) as its controlling terminal.
    pub(crate) session: bool,
    pub(crate) cwd: Option<&'a CStr>,
    /// The paths to try in order (the `PATH` search, done by the parent).
    pub(crate) candidates: &'a [CString],
    pub(crate) argv: &'a [CString],
    pub(crate) envp: &'a [CString],
    /// Signals the shepherd ignores, restored to default in the child.
    pub(crate) restore_default: &'a [c_int],
    /// Identity and limits, applied in the child before exec.
    pub(crate) harden: Harden<'a>,
    /// `cgroup.procs` of each of the child's cgroup directories: the child
    /// writes itself (`0`) into each, first thing, so it never runs a
    /// single instruction of the program outside them.
    pub(crate) cgroup_procs: &'a [BorrowedFd<'a>],
    /// A terminal whose foreground process group the child becomes
    /// (`tcsetpgrp`, with every signal still blocked, so no `SIGTTOU`).
    pub(crate) terminal: Option<BorrowedFd<'a>>,
}

/// What the child changes about itself before exec: limits and the nice
/// value while it still has the shepherd's privileges, then the umask, then
/// groups, group and user (in that order: each step needs the privilege the
/// next one drops), and `no_new_privs` last.
#[derive(Debug, Default)]
pub(crate) struct Harden<'a> {
    /// Each limit with its stage name (the wire resource).
    pub(crate) rlimits: &'a [(net_runner_proto::RlimitResource, Resource, Rlimit)],
    pub(crate) nice: Option<i32>,
    pub(crate) umask: Option<Mode>,
    /// `setgroups` to these.
    pub(crate) groups: Option<&'a [Gid]>,
    /// No groups requested but a `uid` is: drop the supplementary groups
    /// if permitted (as `std` does), so a root owner's groups do not stay.
    pub(crate) drop_groups: bool,
    pub(crate) gid: Option<Gid>,
    pub(crate) uid: Option<Uid>,
    pub(crate) no_new_privs: bool,
}

/// Why the child could not exec: the step and its `errno`.
pub(crate) type SpawnError = (SpawnStage, i32);

/// Why [`spawn`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpawnFailure {
    /// A step failed with this `errno`.
    Stage(SpawnError),
    /// `execve` of `candidates[i]`, a file that exists, said `ENOENT`: its
    /// interpreter (the `#!` line's, or the ELF loader) is missing.
    Interpreter(usize),
}

/// The memory the child shares with the suspended parent.
struct Shared<'a> {
    exec: &'a Exec<'a>,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    /// `/bin/sh`, a slot for the script's path, then `argv[1..]`: for a
    /// file without `#!` (`ENOEXEC`), run as execvp does. The child fills
    /// in the slot (a pointer store, no allocation).
    sh_argv: &'a mut [*const libc::c_char],
    parent: Pid,
    /// Written by the child if it cannot exec.
    failure: Option<SpawnError>,
    /// Written by the child: the first candidate that exists but whose
    /// exec said `ENOENT`.
    no_interpreter: Option<usize>,
}

/// The child runs only system calls, no allocation: 64 KiB is plenty.
const CHILD_STACK: usize = 64 * 1024;

/// Starts the child the way glibc's `posix_spawn` does:
/// `clone(CLONE_VM | CLONE_VFORK)` on a stack of its own, so no page table
/// is copied; when `clone` returns the child has either exec'd or written
/// why it could not into our memory (then it has been reaped here). No
/// status pipe, no extra wake-up.
pub(crate) fn spawn(exec: &Exec<'_>) -> std::result::Result<Pid, SpawnFailure> {
    let argv = null_terminated(exec.argv);
    let envp = null_terminated(exec.envp);
    let mut sh_argv: Vec<*const libc::c_char> = [SHELL.as_ptr(), std::ptr::null()]
        .into_iter()
        .chain(argv.iter().skip(1).copied())
        .collect();
    let mut shared = Shared {
        exec,
        argv: &argv,
        envp: &envp,
        sh_argv: &mut sh_argv,
        parent: rustix::process::getpid(),
        failure: None,
        no_interpreter: None,
    };
    // Not zeroed: the child touches only the top few pages, and writing
    // 64 KiB of zeros first would fault in all sixteen.
    let mut stack = vec![MaybeUninit::<u128>::uninit(); CHILD_STACK / 16];
    let fork_failed = |e: Errno| SpawnFailure::Stage((SpawnStage::Fork, e.raw_os_error()));
    // No handler of ours may run in the child on our memory: block
    // everything; the child resets dispositions, then unblocks.
    let all = sigset(&[], true).map_err(fork_failed)?;
    let old = set_sigmask(libc::SIG_SETMASK, &all).map_err(fork_failed)?;
    let top = stack.as_mut_ptr_range().end.cast::<libc::c_void>();
    // SAFETY: `child_entry` runs on `stack` (ours, 16-byte aligned, its top
    // passed as clone wants it), sharing our memory. CLONE_VFORK suspends
    // this thread inside `clone` until the child execs or exits, so
    // `shared`, `stack` and everything they borrow stay valid and untouched
    // by us while the child uses them. All signals are blocked, so no
    // handler runs in the child before it has reset dispositions.
    let pid = unsafe {
        libc::clone(
            child_entry,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::addr_of_mut!(shared).cast(),
        )
    };
    let clone_errno = (pid < 0).then(last_errno);
    let _ = set_sigmask(libc::SIG_SETMASK, &old);
    let Some(pid) = Pid::from_raw(pid) else {
        return Err(fork_failed(clone_errno.unwrap_or(Errno::IO)));
    };
    // A plain read sees the child's write: `shared` escaped to `clone`
    // through a raw pointer, so the compiler reloads it after the call.
    if let Some(failure) = shared.failure {
        let _ =
            rustix::io::retry_on_intr(|| rustix::process::waitpid(Some(pid), WaitOptions::empty()));
        return Err(match (failure, shared.no_interpreter) {
            ((SpawnStage::Exec, libc::ENOENT), Some(i)) => SpawnFailure::Interpreter(i),
            _ => SpawnFailure::Stage(failure),
        });
    }
    Ok(pid)
}

/// The shell execvp runs a file without `#!` with.
const SHELL: &CStr = c"/bin/sh";

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The child's entry point: on its own stack, sharing the memory of the
/// parent, which is suspended in `clone` meanwhile.
///
/// `extern "C"`: a panic cannot unwind out of it (it aborts), though
/// nothing here panics.
extern "C" fn child_entry(arg: *mut libc::c_void) -> c_int {
    // SAFETY: `spawn` passed a pointer to its live `Shared` and stays
    // suspended until we exec or exit: the `Shared` and all it borrows
    // outlive every use here and nobody else touches it meanwhile.
    let shared = unsafe { &mut *arg.cast::<Shared<'_>>() };
    shared.failure = Some(child_exec(
        shared.exec,
        shared.argv,
        shared.envp,
        shared.sh_argv,
        shared.parent,
        &mut shared.no_interpreter,
    ));
    // SAFETY: `_exit` ends the child at once; unlike `exit` it runs no
    // atexit handler and flushes no stdio buffer of the parent's.
    unsafe { libc::_exit(127) }
}

/// The child side, run in the vfork child only. It shares the parent's
/// memory and runs on a small stack without a guard page, so it must not
/// allocate (the allocator's state is the parent's), must not panic, and
/// leaves the parent's objects alone but for the failure it returns. Only
/// system calls: rustix's (raw `syscall` instructions, no `errno`) and libc's
/// async-signal-safe `sigaction`, `sigprocmask` and `execve`. Returns only
/// on failure.
fn child_exec(
    exec: &Exec<'_>,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    sh_argv: &mut [*const libc::c_char],
    parent: Pid,
    no_interpreter: &mut Option<usize>,
) -> SpawnError {
    let setup = |e: Errno| (SpawnStage::Setup, e.raw_os_error());
    // "0" is the writing process, in v1 and v2 alike: nothing to format.
    for (i, procs) in (0u8..).zip(exec.cgroup_procs) {
        if let Err(e) = rustix::io::retry_on_intr(|| rustix::io::write(procs, b"0")) {
            return (SpawnStage::CgroupPlace(i), e.raw_os_error());
        }
    }
    if let Err(e) = child_stdio(exec) {
        return setup(e);
    }
    if let Err(e) = child_harden(&exec.harden) {
        return e;
    }
    // After the credentials: changing them clears the parent-death signal.
    if let Err(e) = child_signals(exec, parent) {
        return setup(e);
    }
    if exec.harden.no_new_privs {
        if let Err(e) = rustix::thread::set_no_new_privs(true) {
            return (SpawnStage::NoNewPrivs, e.raw_os_error());
        }
    }
    // As the new user, like std: a directory only root may enter is
    // refused to the child too.
    if let Some(dir) = exec.cwd {
        if let Err(e) = rustix::process::chdir(dir) {
            return (SpawnStage::Chdir, e.raw_os_error());
        }
    }
    // PATH search like execvp: EACCES anywhere wins over ENOENT; a file
    // the kernel cannot run (ENOEXEC: no `#!`) runs under /bin/sh; any
    // other error stops the search. A candidate that exists but says
    // ENOENT lacks its interpreter: remembered, so that the error names it.
    let mut result = libc::ENOENT;
    for (i, path) in exec.candidates.iter().enumerate() {
        // SAFETY: `path` is a C string, `argv` and `envp` null-terminated
        // arrays of C strings that `spawn` built from `exec`, all alive
        // until we exec or exit; execve only reads them.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        match last_errno().raw_os_error() {
            libc::ENOENT => {
                if no_interpreter.is_none()
                    && rustix::fs::access(path.as_c_str(), rustix::fs::Access::EXISTS).is_ok()
                {
                    *no_interpreter = Some(i);
                }
            }
            libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG => {}
            libc::EACCES => result = libc::EACCES,
            libc::ENOEXEC => {
                // `sh_argv` has room for the path in slot 1 and ends with
                // its null terminator (built by `spawn`).
                sh_argv[1] = path.as_ptr();
                // SAFETY: as above; `sh_argv` is a null-terminated array
                // of C strings alive until we exec or exit.
                unsafe { libc::execve(SHELL.as_ptr(), sh_argv.as_ptr(), envp.as_ptr()) };
                return (SpawnStage::Exec, libc::ENOEXEC);
            }
            other => return (SpawnStage::Exec, other),
        }
    }
    (SpawnStage::Exec, result)
}

/// Process group (or session, in PTY mode), the terminal's foreground
/// group, and stdio of the child.
fn child_stdio(exec: &Exec<'_>) -> Result<()> {
    if exec.session {
        // Also a new process group whose id is our pid, as in pipe mode.
        rustix::process::setsid()?;
    } else {
        rustix::process::setpgid(None, None)?;
    }
    if let Some(tty) = exec.terminal {
        // Best effort, as a shell does it: the library checked that its
        // group held the terminal; failing (it lost it meanwhile) leaves
        // the program a background job, which is no reason not to run it.
        // SAFETY: `tcsetpgrp` is an `ioctl(TIOCSPGRP)` on a descriptor we
        // borrow, with our own group id; every signal is blocked here, so
        // the kernel lets a background group do it without SIGTTOU.
        let _ = unsafe { libc::tcsetpgrp(tty.as_raw_fd(), rustix::process::getpid().as_raw_pid()) };
    }
    for (target, stdio) in (0..).zip(exec.stdio) {
        match stdio {
            Stdio::Inherit => {}
            Stdio::From(fd) => dup_onto(fd, target)?,
            Stdio::Null => {
                let null =
                    rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
                dup_onto(null.as_fd(), target)?;
                // Closed by exec (close-on-exec), or it is `target` itself.
                let _ = null.into_raw_fd();
            }
            Stdio::Stdout => dup_onto(rustix::stdio::stdout(), target)?,
        }
    }
    if exec.session {
        // The slave on fd 0 becomes the session's controlling terminal:
        // the kernel then sends SIGWINCH, SIGINT from ^C, and SIGHUP to
        // its foreground group.
        rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
    }
    Ok(())
}

/// Limits, nice value, umask and credentials, each failure named by its
/// stage. The credential calls are rustix's per-thread system calls, not
/// libc's `setuid`, which would signal the parent's threads from here.
fn child_harden(h: &Harden<'_>) -> std::result::Result<(), SpawnError> {
    let at = |stage: SpawnStage| move |e: Errno| (stage, e.raw_os_error());
    for &(name, resource, limit) in h.rlimits {
        rustix::process::setrlimit(resource, limit).map_err(at(SpawnStage::Rlimit(name)))?;
    }
    if let Some(nice) = h.nice {
        rustix::process::setpriority_process(None, nice).map_err(at(SpawnStage::Nice))?;
    }
    if let Some(mask) = h.umask {
        rustix::process::umask(mask);
    }
    if let Some(groups) = h.groups {
        rustix::thread::set_thread_groups(groups).map_err(at(SpawnStage::SetGroups))?;
    } else if h.drop_groups {
        match rustix::thread::set_thread_groups(&[]) {
            Ok(()) | Err(Errno::PERM) => {}
            Err(e) => return Err(at(SpawnStage::SetGroups)(e)),
        }
    }
    if let Some(gid) = h.gid {
        rustix::thread::set_thread_gid(gid).map_err(at(SpawnStage::SetGid))?;
    }
    if let Some(uid) = h.uid {
        rustix::thread::set_thread_uid(uid).map_err(at(SpawnStage::SetUid))?;
    }
    Ok(())
}

/// Parent-death signal, signal dispositions and mask of the child.
fn child_signals(exec: &Exec<'_>, parent: Pid) -> Result<()> {
    // If the shepherd dies (even by SIGKILL) the child goes too; if it
    // already died, the check below sees it.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    if rustix::process::getppid() != Some(parent) {
        return Err(Errno::SRCH);
    }
    // The shepherd blocks and ignores signals; the program starts clean
    // (dispositions first: until exec, handlers would run on our memory).
    for &sig in exec.restore_default {
        set_disposition(sig, Disposition::Default)?;
    }
    set_sigmask(libc::SIG_SETMASK, &sigset(&[], false)?)?;
    Ok(())
}

/// `dup2(fd, target)` for a standard descriptor; when `fd` already is the
/// target, only clears its close-on-exec flag.
fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> Result<()> {
    if fd.as_raw_fd() == target {
        return rustix::io::fcntl_setfd(fd, FdFlags::empty());
    }
    match target {
        0 => rustix::stdio::dup2_stdin(fd),
        1 => rustix::stdio::dup2_stdout(fd),
        _ => rustix::stdio::dup2_stderr(fd),
    }
}
