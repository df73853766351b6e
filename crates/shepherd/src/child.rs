//! Starting the child: pipes, a vfork-style clone, the child-side setup, exec.
//!
//! Everything the child needs (argv, envp, the `PATH` candidates) is built
//! before the clone, so the child side only makes system calls. The child
//! shares our memory and we are suspended until it execs or exits
//! (`CLONE_VM | CLONE_VFORK`): a failure is written as `(stage, errno)` into
//! that shared memory, and its absence when `clone` returns means "the
//! program is running".

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use net_runner_proto::{SpawnRequest, SpawnStage, StdioMode};

use crate::sys;

/// A started child as the shepherd sees it.
pub struct Started {
    pub pid: libc::pid_t,
    /// The ends that go to the library, in stdin, stdout, stderr order.
    pub library_fds: Vec<OwnedFd>,
}

pub type StartError = (SpawnStage, i32);

/// Signals the shepherd ignores (it resets every other disposition at
/// start); the child restores them to default before exec.
pub const SHEPHERD_IGNORES: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGPIPE,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

fn cstring(bytes: &[u8]) -> Result<CString, StartError> {
    CString::new(bytes).map_err(|_| (SpawnStage::Setup, libc::EINVAL))
}

/// The paths to try for `program`: itself when it names a path, otherwise
/// each `PATH` entry of the child's environment (an empty entry is the cwd).
fn exec_candidates(req: &SpawnRequest) -> Result<Vec<CString>, StartError> {
    if req.program.is_empty() {
        return Err((SpawnStage::Exec, libc::ENOENT));
    }
    if req.program.contains(&b'/') {
        return Ok(vec![cstring(&req.program)?]);
    }
    let path = req
        .env
        .iter()
        .find_map(|e| e.strip_prefix(b"PATH="))
        .unwrap_or(b"/usr/local/bin:/usr/bin:/bin");
    path.split(|&b| b == b':')
        .map(|dir| {
            let mut full = if dir.is_empty() {
                b".".to_vec()
            } else {
                dir.to_vec()
            };
            full.push(b'/');
            full.extend_from_slice(&req.program);
            cstring(&full)
        })
        .collect()
}

/// Child-side ends of the three standard streams, as prepared in the parent.
struct ChildStdio {
    /// Per target fd 0, 1, 2: `Some(fd)` to dup2 from.
    ends: [Option<OwnedFd>; 3],
}

/// Creates the pipes the request asks for.
fn make_pipes(req: &SpawnRequest) -> io::Result<(ChildStdio, Vec<OwnedFd>)> {
    let mut ends: [Option<OwnedFd>; 3] = [None, None, None];
    let mut library = Vec::new();
    if req.stdin == StdioMode::Pipe {
        let (r, w) = sys::pipe()?;
        sys::grow_pipe(&w, req.pipe_size);
        ends[0] = Some(r);
        library.push(w);
    }
    if req.stdout == StdioMode::Pipe {
        let (r, w) = sys::pipe()?;
        sys::grow_pipe(&r, req.pipe_size);
        ends[1] = Some(w);
        library.push(r);
    }
    if req.stderr == StdioMode::Pipe {
        let (r, w) = sys::pipe()?;
        sys::grow_pipe(&r, req.pipe_size);
        ends[2] = Some(w);
        library.push(r);
    }
    Ok((ChildStdio { ends }, library))
}

/// What the child needs, and where it reports why it could not exec: the
/// memory is shared with the suspended parent (`CLONE_VM | CLONE_VFORK`).
struct ChildArgs<'a> {
    req: &'a SpawnRequest,
    parent: libc::pid_t,
    stdio: &'a ChildStdio,
    cwd: Option<&'a CString>,
    candidates: &'a [CString],
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    failure: Option<StartError>,
}

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `start` passes its live `ChildArgs` and stays suspended until
    // this exec's or exits.
    let a = unsafe { &mut *arg.cast::<ChildArgs>() };
    a.failure = Some(child_setup_and_exec(
        a.req,
        a.parent,
        a.stdio,
        a.cwd,
        a.candidates,
        a.argv,
        a.envp,
    ));
    unsafe { libc::_exit(127) }
}

/// Starts the child described by `req`, the way glibc's `posix_spawn` does:
/// `clone(CLONE_VM | CLONE_VFORK)` on a stack of its own, so no page table
/// is copied, and when `clone` returns the child has either exec'd or
/// written why it could not. No status pipe, no extra wake-up.
pub fn start(req: &SpawnRequest) -> Result<Started, StartError> {
    let candidates = exec_candidates(req)?;
    let argv0 = cstring(req.arg0.as_deref().unwrap_or(&req.program))?;
    let mut argv_owned = vec![argv0];
    for a in &req.args {
        argv_owned.push(cstring(a)?);
    }
    let envp_owned = req
        .env
        .iter()
        .map(|e| cstring(e))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = req.cwd.as_deref().map(cstring).transpose()?;
    let argv = null_terminated(&argv_owned);
    let envp = null_terminated(&envp_owned);

    let (stdio, library_fds) = make_pipes(req).map_err(|e| (SpawnStage::Stdio, os_errno(&e)))?;
    let mut args = ChildArgs {
        req,
        parent: unsafe { libc::getpid() },
        stdio: &stdio,
        cwd: cwd.as_ref(),
        candidates: &candidates,
        argv: &argv,
        envp: &envp,
        failure: None,
    };
    // The child runs only system calls: 64 KiB is plenty.
    let mut stack = vec![0u128; 64 * 1024 / 16];
    let pid = unsafe {
        // No handler of ours may run in the child on our memory: block
        // everything; the child resets dispositions, then unblocks.
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let top = stack.as_mut_ptr().add(stack.len()).cast::<libc::c_void>();
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut args as *mut ChildArgs).cast(),
        );
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        pid
    };
    if pid < 0 {
        return Err((SpawnStage::Fork, sys::errno()));
    }
    // SAFETY: written, if at all, by the child before it exited.
    if let Some(failure) = unsafe { std::ptr::read_volatile(&args.failure) } {
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(failure);
    }
    // Also set the group here, so a signal sent right after cannot miss the
    // child; EACCES (already exec'd) means the child did it.
    unsafe { libc::setpgid(pid, pid) };
    drop(stdio);
    Ok(Started { pid, library_fds })
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn os_errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Runs in the forked child. Returns only on failure.
fn child_setup_and_exec(
    req: &SpawnRequest,
    parent: libc::pid_t,
    stdio: &ChildStdio,
    cwd: Option<&CString>,
    candidates: &[CString],
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> StartError {
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            return (SpawnStage::Setup, sys::errno());
        }
        // If the shepherd dies (even by SIGKILL) the child goes too.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            return (SpawnStage::Setup, libc::ESRCH);
        }
        // The shepherd blocks and ignores signals; the program starts clean
        // (dispositions first: until exec, handlers would run on our memory).
        for &sig in SHEPHERD_IGNORES {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        for (target, mode) in [(0, req.stdin), (1, req.stdout), (2, req.stderr)] {
            let r = match mode {
                StdioMode::Pipe => match &stdio.ends[target as usize] {
                    Some(fd) => dup_onto(fd.as_raw_fd(), target),
                    None => -1,
                },
                StdioMode::Null => {
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
                    if null < 0 {
                        -1
                    } else {
                        dup_onto(null, target)
                    }
                }
                StdioMode::ToStdout => dup_onto(1, 2),
                StdioMode::Inherit => 0,
            };
            if r < 0 {
                return (SpawnStage::Setup, sys::errno());
            }
        }
        if let Some(dir) = cwd {
            if libc::chdir(dir.as_ptr()) != 0 {
                return (SpawnStage::Chdir, sys::errno());
            }
        }
        // PATH search like execvp, but without its ENOEXEC-to-/bin/sh fallback:
        // EACCES anywhere wins over ENOENT; any other error stops the search.
        let mut result = libc::ENOENT;
        for path in candidates {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let errno = sys::errno();
            match errno {
                libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG => {}
                libc::EACCES => result = libc::EACCES,
                other => return (SpawnStage::Exec, other),
            }
        }
        (SpawnStage::Exec, result)
    }
}

/// `dup2(from, to)`; when they are equal, only clears close-on-exec.
unsafe fn dup_onto(from: RawFd, to: RawFd) -> libc::c_int {
    if from == to {
        libc::fcntl(to, libc::F_SETFD, 0)
    } else {
        libc::dup2(from, to)
    }
}
