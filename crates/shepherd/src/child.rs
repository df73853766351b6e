//! Starting the child: pipes, the request turned into C strings and the
//! `PATH` candidates, then `sys::spawn` (a vfork-style clone whose child
//! side only makes system calls).
//!
//! Everything the child needs is built here, before the clone: the child
//! shares our memory while we are suspended, so it must not allocate.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use net_runner_proto::{RlimitResource, SpawnRequest, SpawnStage, StdioMode};
use rustix::fs::Mode;
use rustix::pipe::{fcntl_setpipe_size, pipe_with, PipeFlags};
use rustix::process::{Gid, Pid, Resource, Rlimit, Uid};

use crate::sys;

/// A started child as the shepherd sees it.
pub(crate) struct Started {
    pub(crate) pid: Pid,
    /// The ends that go to the library, in stdin, stdout, stderr order; in
    /// PTY mode, the master alone.
    pub(crate) library_fds: Vec<OwnedFd>,
}

pub(crate) type StartError = (SpawnStage, i32);

/// Why the child did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartFailure {
    /// A step failed with this `errno`.
    Stage(StartError),
    /// The program exists but its interpreter does not.
    Interpreter {
        program: Vec<u8>,
        interpreter: Vec<u8>,
    },
}

impl From<StartError> for StartFailure {
    fn from(e: StartError) -> Self {
        StartFailure::Stage(e)
    }
}

/// Descriptors the owner passed with the request, in the request's order.
#[derive(Debug, Default)]
pub(crate) struct Passed {
    /// For fds 0, 1, 2, when passed.
    pub(crate) stdio: [Option<OwnedFd>; 3],
    /// The terminal to make the child the foreground group of.
    pub(crate) terminal: Option<OwnedFd>,
}

impl Passed {
    /// Sorts `fds` (as many as `req.passed_fds()`) by the request's bits.
    pub(crate) fn new(req: &SpawnRequest, fds: Vec<OwnedFd>) -> Passed {
        let mut fds = fds.into_iter();
        let mut passed = Passed::default();
        for (bit, slot) in passed.stdio.iter_mut().enumerate() {
            if req.passed_stdio & (1 << bit) != 0 {
                *slot = fds.next();
            }
        }
        if req.foreground {
            passed.terminal = fds.next();
        }
        passed
    }
}

/// The interpreter `path` asks the kernel for: the first word of a
/// script's `#!` line, or an ELF program's loader (its `PT_INTERP`); empty
/// when the file has neither or cannot be read.
pub(crate) fn interpreter_of(path: &[u8]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(file) = std::fs::File::open(std::ffi::OsStr::from_bytes(path)) else {
        return Vec::new();
    };
    let mut head = [0u8; 256];
    let n = read_at(&file, 0, &mut head);
    let head = &head[..n];
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        return line
            .split(|b| b.is_ascii_whitespace())
            .find(|w| !w.is_empty())
            .unwrap_or_default()
            .to_vec();
    }
    elf_interpreter(head, |offset, buf| read_at(&file, offset, buf)).unwrap_or_default()
}

/// Reads at `offset` as much of `buf` as the file has there.
fn read_at(file: &std::fs::File, offset: u64, buf: &mut [u8]) -> usize {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
    done
}

/// The `PT_INTERP` path of the ELF file whose first bytes are `head`
/// (32 or 64 bits, either byte order), reading the rest with `read_at`.
fn elf_interpreter(head: &[u8], read_at: impl Fn(u64, &mut [u8]) -> usize) -> Option<Vec<u8>> {
    const PT_INTERP: u32 = 3;
    if head.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match head.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match head.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let uint = |bytes: &[u8]| -> u64 {
        let mut v = 0u64;
        for (i, &b) in bytes.iter().enumerate() {
            let shift = if little { i } else { bytes.len() - 1 - i };
            v |= u64::from(b) << (8 * shift);
        }
        v
    };
    let field = |at: usize, len: usize| head.get(at..at + len).map(uint);
    // e_phoff, e_phentsize, e_phnum; then p_type, p_offset, p_filesz.
    let (phoff, phentsize, phnum) = if wide {
        (field(0x20, 8)?, field(0x36, 2)?, field(0x38, 2)?)
    } else {
        (field(0x1c, 4)?, field(0x2a, 2)?, field(0x2c, 2)?)
    };
    let (offset_at, size_at, word) = if wide { (8, 32, 8) } else { (4, 16, 4) };
    let mut entry = vec![0u8; usize::try_from(phentsize).ok()?.min(256)];
    if entry.len() < size_at + word {
        return None;
    }
    for i in 0..phnum.min(256) {
        if read_at(phoff + i * phentsize, &mut entry) < entry.len() {
            return None;
        }
        if uint(&entry[..4]) != u64::from(PT_INTERP) {
            continue;
        }
        let len = usize::try_from(uint(&entry[size_at..size_at + word])).ok()?;
        let mut path = vec![0u8; len.min(4096)];
        let n = read_at(uint(&entry[offset_at..offset_at + word]), &mut path);
        path.truncate(n);
        // NUL-terminated in the file.
        let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
        path.truncate(end);
        return (!path.is_empty()).then_some(path);
    }
    None
}

/// Signals the shepherd ignores (it resets every other disposition at
/// start); the child restores them to default before exec.
pub(crate) const SHEPHERD_IGNORES: &[libc::c_int] = &[
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

/// `pipe2(O_CLOEXEC)` as `(read end, write end)`, grown to `size` when
/// asked: failure to grow (over the per-user limit) is harmless, the pipe
/// keeps its default size.
fn pipe(size: u32) -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = pipe_with(PipeFlags::CLOEXEC)?;
    if size > 0 {
        let _ = fcntl_setpipe_size(&r, size as usize);
    }
    Ok((r, w))
}

/// Creates the pipes the request asks for: the child's ends per target fd
/// 0, 1, 2, and the library's ends in that order.
fn make_pipes(req: &SpawnRequest) -> io::Result<([Option<OwnedFd>; 3], Vec<OwnedFd>)> {
    let mut ends: [Option<OwnedFd>; 3] = [None, None, None];
    let mut library = Vec::new();
    if req.stdin == StdioMode::Pipe {
        let (r, w) = pipe(req.pipe_size)?;
        ends[0] = Some(r);
        library.push(w);
    }
    if req.stdout == StdioMode::Pipe {
        let (r, w) = pipe(req.pipe_size)?;
        ends[1] = Some(w);
        library.push(r);
    }
    if req.stderr == StdioMode::Pipe {
        let (r, w) = pipe(req.pipe_size)?;
        ends[2] = Some(w);
        library.push(r);
    }
    Ok((ends, library))
}

/// Starts the child described by `req`, with the descriptors the owner
/// passed, the child joining the cgroups of `cgroup_procs` (their
/// `cgroup.procs` files) before anything else; returns once it has exec'd.
pub(crate) fn start(
    req: &SpawnRequest,
    passed: &Passed,
    cgroup_procs: &[OwnedFd],
) -> Result<Started, StartFailure> {
    let candidates = exec_candidates(req)?;
    let argv0 = cstring(req.arg0.as_deref().unwrap_or(&req.program))?;
    let mut argv = vec![argv0];
    for a in &req.args {
        argv.push(cstring(a)?);
    }
    let envp = req
        .env
        .iter()
        .map(|e| cstring(e))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = req.cwd.as_deref().map(cstring).transpose()?;
    let hardening = Hardening::new(req)?;

    let (ends, library_fds) = match req.pty {
        Some(size) => {
            let (master, slave) = crate::pty::open(size, req.pty_raw)
                .map_err(|e| (SpawnStage::Stdio, e.raw_os_error()))?;
            ([Some(slave), None, None], vec![master])
        }
        None => make_pipes(req).map_err(|e| (SpawnStage::Stdio, os_errno(&e)))?,
    };
    let modes = [req.stdin, req.stdout, req.stderr];
    let stdio = [0, 1, 2].map(|i| match (&ends[i], modes[i], &passed.stdio[i]) {
        // PTY mode: the slave is all three (the stdio modes do not apply).
        _ if req.pty.is_some() => sys::Stdio::From(ends[0].as_ref().expect("slave").as_fd()),
        (Some(end), _, _) => sys::Stdio::From(end.as_fd()),
        (None, StdioMode::Inherit, Some(fd)) => sys::Stdio::From(fd.as_fd()),
        (None, StdioMode::Null, _) => sys::Stdio::Null,
        (None, StdioMode::ToStdout, _) => sys::Stdio::Stdout,
        // A `Pipe` always has its end.
        (None, StdioMode::Inherit | StdioMode::Pipe, _) => sys::Stdio::Inherit,
    });
    let cgroup_procs: Vec<_> = cgroup_procs.iter().map(|fd| fd.as_fd()).collect();
    let pid = sys::spawn(&sys::Exec {
        stdio,
        session: req.pty.is_some(),
        cwd: cwd.as_deref(),
        candidates: &candidates,
        argv: &argv,
        envp: &envp,
        restore_default: SHEPHERD_IGNORES,
        harden: hardening.borrow(),
        cgroup_procs: &cgroup_procs,
        terminal: passed.terminal.as_ref().map(|t| t.as_fd()),
    })
    .map_err(|e| match e {
        sys::SpawnFailure::Stage(e) => StartFailure::Stage(e),
        sys::SpawnFailure::Interpreter(i) => {
            let program = candidates[i].as_bytes().to_vec();
            StartFailure::Interpreter {
                interpreter: interpreter_of(&program),
                program,
            }
        }
    })?;
    // Also set the group here, so a signal sent right after cannot miss the
    // child; EACCES (already exec'd) means the child did it (EPERM in PTY
    // mode: the child leads its own session, and so its own group).
    let _ = rustix::process::setpgid(Some(pid), Some(pid));
    // The child has exec'd: our copies of its ends go, the PTY's slave
    // too, so that the master reads end of output (EIO) as soon as the
    // last process holding the slave is gone.
    drop(ends);
    Ok(Started { pid, library_fds })
}

/// The request's identity and limits in the types the child's system calls
/// take, built before the clone (the child must not allocate).
pub(crate) struct Hardening {
    rlimits: Vec<(RlimitResource, Resource, Rlimit)>,
    nice: Option<i32>,
    umask: Option<Mode>,
    groups: Option<Vec<Gid>>,
    drop_groups: bool,
    gid: Option<Gid>,
    uid: Option<Uid>,
    no_new_privs: bool,
}

impl Hardening {
    pub(crate) fn new(req: &SpawnRequest) -> Result<Self, StartError> {
        // -1 means "unchanged" to the kernel: never a silent no-op.
        let id = |v: u32, stage| {
            if v == u32::MAX {
                Err((stage, libc::EINVAL))
            } else {
                Ok(v)
            }
        };
        let groups = match &req.groups {
            Some(g) => Some(
                g.iter()
                    .map(|&g| id(g, SpawnStage::SetGroups).map(Gid::from_raw))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let limit = |v: u64| (v != u64::MAX).then_some(v);
        Ok(Hardening {
            rlimits: req
                .rlimits
                .iter()
                .map(|l| {
                    let rlimit = Rlimit {
                        current: limit(l.soft),
                        maximum: limit(l.hard),
                    };
                    (l.resource, resource(l.resource), rlimit)
                })
                .collect(),
            nice: req.nice,
            umask: req.umask.map(Mode::from_raw_mode),
            drop_groups: groups.is_none() && req.uid.is_some(),
            groups,
            gid: req
                .gid
                .map(|g| id(g, SpawnStage::SetGid).map(Gid::from_raw))
                .transpose()?,
            uid: req
                .uid
                .map(|u| id(u, SpawnStage::SetUid).map(Uid::from_raw))
                .transpose()?,
            no_new_privs: req.no_new_privs,
        })
    }

    pub(crate) fn borrow(&self) -> sys::Harden<'_> {
        sys::Harden {
            rlimits: &self.rlimits,
            nice: self.nice,
            umask: self.umask,
            groups: self.groups.as_deref(),
            drop_groups: self.drop_groups,
            gid: self.gid,
            uid: self.uid,
            no_new_privs: self.no_new_privs,
        }
    }
}

fn resource(r: RlimitResource) -> Resource {
    match r {
        RlimitResource::Cpu => Resource::Cpu,
        RlimitResource::Fsize => Resource::Fsize,
        RlimitResource::Data => Resource::Data,
        RlimitResource::Stack => Resource::Stack,
        RlimitResource::Core => Resource::Core,
        RlimitResource::Rss => Resource::Rss,
        RlimitResource::Nproc => Resource::Nproc,
        RlimitResource::Nofile => Resource::Nofile,
        RlimitResource::Memlock => Resource::Memlock,
        RlimitResource::As => Resource::As,
        RlimitResource::Locks => Resource::Locks,
        RlimitResource::Sigpending => Resource::Sigpending,
        RlimitResource::Msgqueue => Resource::Msgqueue,
        RlimitResource::Nice => Resource::Nice,
        RlimitResource::Rtprio => Resource::Rtprio,
        RlimitResource::Rttime => Resource::Rttime,
    }
}

fn os_errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

#[cfg(test)]
mod elf_tests {
    use super::elf_interpreter;

    /// A 32-bit big-endian ELF header with one `PT_NOTE` and one
    /// `PT_INTERP` program header, the loader's path after them.
    fn elf32_be(loader: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 0x34];
        f[..6].copy_from_slice(b"\x7fELF\x01\x02");
        f[0x1c..0x20].copy_from_slice(&0x34u32.to_be_bytes()); // e_phoff
        f[0x2a..0x2c].copy_from_slice(&32u16.to_be_bytes()); // e_phentsize
        f[0x2c..0x2e].copy_from_slice(&2u16.to_be_bytes()); // e_phnum
        let path_at = 0x34 + 2 * 32;
        for p_type in [4u32, 3] {
            let mut ph = [0u8; 32];
            ph[..4].copy_from_slice(&p_type.to_be_bytes());
            ph[4..8].copy_from_slice(&(path_at as u32).to_be_bytes());
            ph[16..20].copy_from_slice(&(loader.len() as u32 + 1).to_be_bytes());
            f.extend_from_slice(&ph);
        }
        f.extend_from_slice(loader);
        f.push(0);
        f
    }

    fn interp_of(file: &[u8]) -> Option<Vec<u8>> {
        let read_at = |offset: u64, buf: &mut [u8]| {
            let data = file.get(offset as usize..).unwrap_or_default();
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            n
        };
        elf_interpreter(&file[..file.len().min(256)], read_at)
    }

    #[test]
    fn finds_the_loader_of_a_32_bit_big_endian_program() {
        let f = elf32_be(b"/lib/ld.so.1");
        assert_eq!(interp_of(&f).as_deref(), Some(&b"/lib/ld.so.1"[..]));
    }

    #[test]
    fn finds_the_loader_of_this_machine_s_programs() {
        let f = std::fs::read("/bin/sh").unwrap();
        let loader = interp_of(&f).expect("/bin/sh has a loader");
        assert!(loader.starts_with(b"/"), "{loader:?}");
        assert!(
            std::path::Path::new(std::ffi::OsStr::new(std::str::from_utf8(&loader).unwrap()))
                .exists()
        );
    }

    #[test]
    fn truncated_or_foreign_files_have_none() {
        let f = elf32_be(b"/lib/ld.so.1");
        for cut in [3, 6, 0x30, 0x40, 0x60] {
            assert_eq!(interp_of(&f[..cut]), None, "cut at {cut}");
        }
        assert_eq!(interp_of(b"#!/bin/sh\n"), None);
        assert_eq!(interp_of(b""), None);
    }
}
