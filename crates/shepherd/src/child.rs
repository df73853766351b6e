//! Starting the child: pipes, fork, the child-side setup, exec.
//!
//! Everything the child needs (argv, envp, the `PATH` candidates) is built
//! before `fork`, so the child side only makes system calls. A failure in the
//! child is written as `(stage, errno)` to a close-on-exec pipe; a successful
//! exec closes that pipe, so EOF on it means "the program is running".

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use net_runner_proto::{SpawnRequest, SpawnStage, StdioMode};

use crate::sys;

/// A started child as the shepherd sees it.
pub struct Started {
    pub pid: libc::pid_t,
    /// Readable with `(stage, errno)` on failure, EOF once exec succeeded.
    pub status_pipe: OwnedFd,
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

/// Decodes what the child wrote to the status pipe.
pub fn decode_status(bytes: &[u8]) -> StartError {
    if bytes.len() < 5 {
        return (SpawnStage::Exec, libc::EIO);
    }
    let stage = SpawnStage::from_u8(bytes[0]).unwrap_or(SpawnStage::Exec);
    let errno = i32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    (stage, errno)
}

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

/// Forks and execs the child described by `req`.
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
    let (status_r, status_w) = sys::pipe().map_err(|e| (SpawnStage::Stdio, os_errno(&e)))?;
    let parent = unsafe { libc::getpid() };

    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err((SpawnStage::Fork, sys::errno()));
    }
    if pid == 0 {
        // Child: system calls only, then exec or report and _exit.
        let (stage, errno) =
            child_setup_and_exec(req, parent, &stdio, cwd.as_ref(), &candidates, &argv, &envp);
        let mut msg = [0u8; 5];
        msg[0] = stage.to_u8();
        msg[1..].copy_from_slice(&errno.to_le_bytes());
        unsafe {
            libc::write(status_w.as_raw_fd(), msg.as_ptr().cast(), msg.len());
            libc::_exit(127);
        }
    }
    // Parent: also set the group here, so a signal sent right after fork
    // cannot miss the child; EACCES (already exec'd) means the child did it.
    unsafe { libc::setpgid(pid, pid) };
    drop(stdio);
    drop(status_w);
    Ok(Started {
        pid,
        status_pipe: status_r,
        library_fds,
    })
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
            libc::_exit(127);
        }
        // The shepherd blocks and ignores signals; the program starts clean.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        for &sig in SHEPHERD_IGNORES {
            libc::signal(sig, libc::SIG_DFL);
        }
        for (target, mode) in [(0, req.stdin), (1, req.stdout), (2, req.stderr)] {
            let r = match mode {
                StdioMode::Pipe => match &stdio.ends[target as usize] {
                    Some(fd) => dup_onto(fd.as_raw_fd(), target),
                    None => -1,
                },
                StdioMode::Null => {
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
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
