//! The spawn request: everything the shepherd needs to start the child.
//!
//! Encoded as tagged fields (`tag: u8`, `len: u32`, value) so that later
//! features (PTY, cgroup) add tags instead of changing the layout; a shepherd
//! that meets a tag it does not know refuses the request with a clear error
//! instead of silently ignoring an isolation setting.

use crate::cgroup::{self, CgroupSpec};
use crate::codec::{put_bytes, put_i32, put_u16, put_u32, put_u64, put_u8, Reader};
use crate::DecodeError;

/// What one of the child's standard streams is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StdioMode {
    /// `/dev/null`.
    Null,
    /// A pipe whose other end is handed to the library.
    Pipe,
    /// The shepherd's own descriptor (which is the owner's stderr for fd 2,
    /// `/dev/null` for fds 0 and 1).
    Inherit,
    /// stderr only: the same pipe as stdout (`2>&1`).
    ToStdout,
}

impl StdioMode {
    fn to_u8(self) -> u8 {
        match self {
            StdioMode::Null => 0,
            StdioMode::Pipe => 1,
            StdioMode::Inherit => 2,
            StdioMode::ToStdout => 3,
        }
    }
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            0 => StdioMode::Null,
            1 => StdioMode::Pipe,
            2 => StdioMode::Inherit,
            3 => StdioMode::ToStdout,
            _ => return Err(DecodeError::BadValue("stdio mode")),
        })
    }
}

/// Terminal size for PTY mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowSize {
    /// Rows (lines).
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// What one step of a stop sequence does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopAction {
    /// Send this signal to the process group (and the shepherd's children).
    Signal(i32),
    /// Tell the library to close the child's stdin (the shepherd holds no
    /// end of it: it sends [`FromShepherd::CloseStdin`](crate::FromShepherd::CloseStdin)).
    CloseStdin,
}

/// One step of a stop sequence: an action, then a wait before the next
/// step. After the last step's wait, the shepherd always SIGKILLs what is
/// left, so every sequence ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StopStep {
    /// What to do.
    pub action: StopAction,
    /// Milliseconds to wait before the next step (or the final SIGKILL).
    pub wait_ms: u64,
}

/// A resource a limit can be set on (`setrlimit`), with a wire number of our
/// own: the kernel's `RLIMIT_*` numbers differ between architectures.
///
/// ```
/// use net_runner_proto::RlimitResource;
/// assert_eq!(RlimitResource::from_u8(RlimitResource::Nofile.to_u8()), Some(RlimitResource::Nofile));
/// assert_eq!(RlimitResource::Nofile.name(), "NOFILE");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RlimitResource {
    /// `RLIMIT_CPU`: CPU time, seconds.
    Cpu,
    /// `RLIMIT_FSIZE`: largest file written, bytes.
    Fsize,
    /// `RLIMIT_DATA`: data segment, bytes.
    Data,
    /// `RLIMIT_STACK`: stack, bytes.
    Stack,
    /// `RLIMIT_CORE`: core file size, bytes.
    Core,
    /// `RLIMIT_RSS`: resident set (ignored by Linux).
    Rss,
    /// `RLIMIT_NPROC`: processes of the real user.
    Nproc,
    /// `RLIMIT_NOFILE`: one more than the highest descriptor number.
    Nofile,
    /// `RLIMIT_MEMLOCK`: locked memory, bytes.
    Memlock,
    /// `RLIMIT_AS`: address space, bytes.
    As,
    /// `RLIMIT_LOCKS`: file locks.
    Locks,
    /// `RLIMIT_SIGPENDING`: queued signals.
    Sigpending,
    /// `RLIMIT_MSGQUEUE`: POSIX message queues, bytes.
    Msgqueue,
    /// `RLIMIT_NICE`: ceiling of the nice value (as `20 - limit`).
    Nice,
    /// `RLIMIT_RTPRIO`: real-time priority.
    Rtprio,
    /// `RLIMIT_RTTIME`: real-time CPU time without blocking, microseconds.
    Rttime,
}

impl RlimitResource {
    /// Every resource, in wire order.
    pub const ALL: [RlimitResource; 16] = [
        RlimitResource::Cpu,
        RlimitResource::Fsize,
        RlimitResource::Data,
        RlimitResource::Stack,
        RlimitResource::Core,
        RlimitResource::Rss,
        RlimitResource::Nproc,
        RlimitResource::Nofile,
        RlimitResource::Memlock,
        RlimitResource::As,
        RlimitResource::Locks,
        RlimitResource::Sigpending,
        RlimitResource::Msgqueue,
        RlimitResource::Nice,
        RlimitResource::Rtprio,
        RlimitResource::Rttime,
    ];

    /// Stable wire value (0 to 15).
    pub fn to_u8(self) -> u8 {
        Self::ALL.iter().position(|&r| r == self).unwrap_or(0) as u8
    }

    /// Parses a wire value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// The name without `RLIMIT_`, as `ulimit` and `prlimit` print it.
    pub fn name(self) -> &'static str {
        match self {
            RlimitResource::Cpu => "CPU",
            RlimitResource::Fsize => "FSIZE",
            RlimitResource::Data => "DATA",
            RlimitResource::Stack => "STACK",
            RlimitResource::Core => "CORE",
            RlimitResource::Rss => "RSS",
            RlimitResource::Nproc => "NPROC",
            RlimitResource::Nofile => "NOFILE",
            RlimitResource::Memlock => "MEMLOCK",
            RlimitResource::As => "AS",
            RlimitResource::Locks => "LOCKS",
            RlimitResource::Sigpending => "SIGPENDING",
            RlimitResource::Msgqueue => "MSGQUEUE",
            RlimitResource::Nice => "NICE",
            RlimitResource::Rtprio => "RTPRIO",
            RlimitResource::Rttime => "RTTIME",
        }
    }
}

/// One resource limit for the child; `u64::MAX` is `RLIM_INFINITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rlimit {
    /// Which resource.
    pub resource: RlimitResource,
    /// The soft limit, which the kernel enforces.
    pub soft: u64,
    /// The hard limit, the ceiling of the soft one.
    pub hard: u64,
}

/// Everything needed to start one child. Strings are raw bytes: Unix paths,
/// arguments and environment entries need not be UTF-8.
///
/// `env` is the child's complete environment (`KEY=VALUE` entries): the library
/// resolves inheritance, so the shepherd applies no policy of its own.
///
/// ```
/// use net_runner_proto::{SpawnRequest, StdioMode};
/// let mut req = SpawnRequest::new(b"echo".to_vec());
/// req.args.push(b"hello".to_vec());
/// req.stderr = StdioMode::ToStdout;
/// let bytes = req.encode();
/// assert_eq!(SpawnRequest::decode(&bytes).unwrap(), req);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRequest {
    /// Program to execute; searched in the child's `PATH` when it has no `/`.
    pub program: Vec<u8>,
    /// Arguments after `argv[0]`.
    pub args: Vec<Vec<u8>>,
    /// `argv[0]`; the program name when `None`.
    pub arg0: Option<Vec<u8>>,
    /// The complete environment as `KEY=VALUE` entries.
    pub env: Vec<Vec<u8>>,
    /// Working directory; the shepherd's when `None`.
    pub cwd: Option<Vec<u8>>,
    /// The child's stdin.
    pub stdin: StdioMode,
    /// The child's stdout.
    pub stdout: StdioMode,
    /// The child's stderr.
    pub stderr: StdioMode,
    /// Grace period between SIGTERM and SIGKILL when the owner goes away or
    /// asks for a graceful shutdown.
    pub kill_timeout_ms: u64,
    /// Pipe capacity to ask for with `F_SETPIPE_SZ` (0 leaves the default).
    pub pipe_size: u32,
    /// Kill what is left of the process group (and escaped descendants) once
    /// the child itself has exited.
    pub kill_leftovers: bool,
    /// Run the child on a pseudo-terminal of this size instead of pipes.
    pub pty: Option<WindowSize>,
    /// PTY mode: the terminal starts in raw mode (`cfmakeraw`: no echo, no
    /// line editing, no output processing) instead of the usual cooked one.
    pub pty_raw: bool,
    /// Overall time limit, enforced by the shepherd: when it expires, the
    /// stop sequence starts and the exit report says so.
    pub timeout_ms: Option<u64>,
    /// How to stop the child (on timeout, `Shutdown`, owner gone). Empty:
    /// SIGTERM, wait `kill_timeout_ms`, SIGKILL.
    pub stop_sequence: Vec<StopStep>,
    /// `setuid` to this user before exec.
    pub uid: Option<u32>,
    /// `setgid` to this group before exec.
    pub gid: Option<u32>,
    /// `setgroups` to these supplementary groups before exec. `None` with a
    /// `uid` drops them all when permitted, as `std` does.
    pub groups: Option<Vec<u32>>,
    /// The child's file mode creation mask.
    pub umask: Option<u32>,
    /// Resource limits, applied in order.
    pub rlimits: Vec<Rlimit>,
    /// Set `PR_SET_NO_NEW_PRIVS`: exec can grant no privilege (setuid bits,
    /// file capabilities) to the child or its descendants.
    pub no_new_privs: bool,
    /// The child's nice value (absolute, -20 to 19).
    pub nice: Option<i32>,
    /// The child's cgroup (tags 50-53): created, limited and joined before
    /// exec, killed and removed at the end.
    pub cgroup: Option<CgroupSpec>,
    /// Standard streams whose descriptor travels with the `Spawn` frame by
    /// `SCM_RIGHTS` (bit 0 stdin, 1 stdout, 2 stderr), in that order. Their
    /// mode must be [`StdioMode::Inherit`]: the child gets the owner's
    /// descriptor instead of the shepherd's own (see [`passed_fds`](Self::passed_fds)).
    pub passed_stdio: u8,
    /// Make the child's process group the foreground group of a terminal,
    /// whose descriptor travels after the passed stdio ones. The child does
    /// it before exec, with `SIGTTOU` blocked.
    pub foreground: bool,
}

const TAG_PROGRAM: u8 = 1;
const TAG_ARG: u8 = 2;
const TAG_ENV: u8 = 3;
const TAG_CWD: u8 = 4;
const TAG_STDIO: u8 = 5;
const TAG_KILL_TIMEOUT: u8 = 6;
const TAG_PIPE_SIZE: u8 = 7;
const TAG_KILL_LEFTOVERS: u8 = 8;
const TAG_ARG0: u8 = 9;
const TAG_PTY: u8 = 10;
// Issue 10 (limits). Numbered apart from the tags other work adds after 10,
// so that two branches cannot give one number two meanings.
const TAG_TIMEOUT: u8 = 20;
const TAG_STOP_STEP: u8 = 21;
// Running as someone else and hardening (issue 9).
const TAG_UID: u8 = 11;
const TAG_GID: u8 = 12;
const TAG_GROUPS: u8 = 13;
const TAG_UMASK: u8 = 14;
const TAG_RLIMIT: u8 = 15;
const TAG_NO_NEW_PRIVS: u8 = 16;
const TAG_NICE: u8 = 17;
// PTY mode (issue 12): 40-49.
const TAG_PTY_RAW: u8 = 40;

// Issue 11 (the CLI): descriptors passed with the request, terminal.
const TAG_PASSED_STDIO: u8 = 30;
const TAG_FOREGROUND: u8 = 31;

/// Bits of [`SpawnRequest::passed_stdio`].
pub const PASS_STDIN: u8 = 1;
/// Bits of [`SpawnRequest::passed_stdio`].
pub const PASS_STDOUT: u8 = 2;
/// Bits of [`SpawnRequest::passed_stdio`].
pub const PASS_STDERR: u8 = 4;

impl SpawnRequest {
    /// A request with defaults: stdin, stdout and stderr piped, empty
    /// environment, 5 s kill timeout, 1 MiB pipes, leftovers killed.
    pub fn new(program: Vec<u8>) -> Self {
        SpawnRequest {
            program,
            args: Vec::new(),
            arg0: None,
            env: Vec::new(),
            cwd: None,
            stdin: StdioMode::Pipe,
            stdout: StdioMode::Pipe,
            stderr: StdioMode::Pipe,
            kill_timeout_ms: 5_000,
            // Big enough that a producer writing small blocks (head's 8 KiB)
            // rarely waits for the reader, small enough that the data in
            // flight stays in a core's L2: 1 MiB was 10-20 % slower than
            // 256 KiB for fast producers and stdin -> stdout round trips.
            pipe_size: 256 << 10,
            kill_leftovers: true,
            pty: None,
            pty_raw: false,
            uid: None,
            gid: None,
            groups: None,
            umask: None,
            rlimits: Vec::new(),
            no_new_privs: false,
            nice: None,
            cgroup: None,
            timeout_ms: None,
            stop_sequence: Vec::new(),
            passed_stdio: 0,
            foreground: false,
        }
    }

    /// How many descriptors must travel with this request by `SCM_RIGHTS`:
    /// one per bit of [`passed_stdio`](Self::passed_stdio), one more for
    /// [`foreground`](Self::foreground).
    ///
    /// ```
    /// use net_runner_proto::{SpawnRequest, StdioMode, PASS_STDIN, PASS_STDOUT};
    /// let mut req = SpawnRequest::new(b"cat".to_vec());
    /// assert_eq!(req.passed_fds(), 0);
    /// req.stdin = StdioMode::Inherit;
    /// req.stdout = StdioMode::Inherit;
    /// req.passed_stdio = PASS_STDIN | PASS_STDOUT;
    /// req.foreground = true;
    /// assert_eq!(req.passed_fds(), 3);
    /// ```
    pub fn passed_fds(&self) -> usize {
        (self.passed_stdio & 7).count_ones() as usize + usize::from(self.foreground)
    }

    /// The stop sequence the shepherd runs: the requested one, or the
    /// default SIGTERM then `kill_timeout_ms`. (The final SIGKILL is
    /// implicit in both.)
    pub fn effective_stop_sequence(&self) -> Vec<StopStep> {
        if self.stop_sequence.is_empty() {
            vec![StopStep {
                action: StopAction::Signal(15),
                wait_ms: self.kill_timeout_ms,
            }]
        } else {
            self.stop_sequence.clone()
        }
    }

    /// Encodes the request as tagged fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self.program.len()
                + self.args.iter().map(|a| a.len() + 5).sum::<usize>()
                + self.env.iter().map(|e| e.len() + 5).sum::<usize>(),
        );
        let field = |out: &mut Vec<u8>, tag: u8, value: &[u8]| {
            put_u8(out, tag);
            put_bytes(out, value);
        };
        field(&mut out, TAG_PROGRAM, &self.program);
        if let Some(arg0) = &self.arg0 {
            field(&mut out, TAG_ARG0, arg0);
        }
        for arg in &self.args {
            field(&mut out, TAG_ARG, arg);
        }
        for entry in &self.env {
            field(&mut out, TAG_ENV, entry);
        }
        if let Some(cwd) = &self.cwd {
            field(&mut out, TAG_CWD, cwd);
        }
        let stdio = [self.stdin.to_u8(), self.stdout.to_u8(), self.stderr.to_u8()];
        field(&mut out, TAG_STDIO, &stdio);
        field(
            &mut out,
            TAG_KILL_TIMEOUT,
            &self.kill_timeout_ms.to_le_bytes(),
        );
        field(&mut out, TAG_PIPE_SIZE, &self.pipe_size.to_le_bytes());
        field(
            &mut out,
            TAG_KILL_LEFTOVERS,
            &[u8::from(self.kill_leftovers)],
        );
        if let Some(ws) = self.pty {
            let mut v = Vec::with_capacity(4);
            put_u16(&mut v, ws.rows);
            put_u16(&mut v, ws.cols);
            field(&mut out, TAG_PTY, &v);
        }
        if self.pty_raw {
            field(&mut out, TAG_PTY_RAW, &[1]);
        }
        if let Some(ms) = self.timeout_ms {
            field(&mut out, TAG_TIMEOUT, &ms.to_le_bytes());
        }
        for step in &self.stop_sequence {
            let mut v = Vec::with_capacity(13);
            match step.action {
                StopAction::Signal(sig) => {
                    put_u8(&mut v, 0);
                    put_i32(&mut v, sig);
                }
                StopAction::CloseStdin => {
                    put_u8(&mut v, 1);
                    put_i32(&mut v, 0);
                }
            }
            put_u64(&mut v, step.wait_ms);
            field(&mut out, TAG_STOP_STEP, &v);
        }
        // Only what is set: a plain request stays as it was.
        if let Some(uid) = self.uid {
            field(&mut out, TAG_UID, &uid.to_le_bytes());
        }
        if let Some(gid) = self.gid {
            field(&mut out, TAG_GID, &gid.to_le_bytes());
        }
        if let Some(groups) = &self.groups {
            let mut v = Vec::with_capacity(groups.len() * 4);
            for &g in groups {
                put_u32(&mut v, g);
            }
            field(&mut out, TAG_GROUPS, &v);
        }
        if let Some(umask) = self.umask {
            field(&mut out, TAG_UMASK, &umask.to_le_bytes());
        }
        for limit in &self.rlimits {
            let mut v = Vec::with_capacity(17);
            put_u8(&mut v, limit.resource.to_u8());
            put_u64(&mut v, limit.soft);
            put_u64(&mut v, limit.hard);
            field(&mut out, TAG_RLIMIT, &v);
        }
        if self.no_new_privs {
            field(&mut out, TAG_NO_NEW_PRIVS, &[1]);
        }
        if let Some(nice) = self.nice {
            let mut v = Vec::with_capacity(4);
            put_i32(&mut v, nice);
            field(&mut out, TAG_NICE, &v);
        }
        if let Some(spec) = &self.cgroup {
            cgroup::encode(spec, &mut out);
        }
        if self.passed_stdio != 0 {
            field(&mut out, TAG_PASSED_STDIO, &[self.passed_stdio]);
        }
        if self.foreground {
            field(&mut out, TAG_FOREGROUND, &[1]);
        }
        out
    }

    /// Decodes a request; the program field is mandatory.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let mut req = SpawnRequest::new(Vec::new());
        let mut have_program = false;
        while !r.is_empty() {
            let tag = r.u8()?;
            let value = r.bytes()?;
            let mut v = Reader::new(value);
            match tag {
                TAG_PROGRAM => {
                    req.program = value.to_vec();
                    have_program = true;
                    continue;
                }
                TAG_ARG0 => {
                    req.arg0 = Some(value.to_vec());
                    continue;
                }
                TAG_ARG => {
                    req.args.push(value.to_vec());
                    continue;
                }
                TAG_ENV => {
                    req.env.push(value.to_vec());
                    continue;
                }
                TAG_CWD => {
                    req.cwd = Some(value.to_vec());
                    continue;
                }
                TAG_STDIO => {
                    req.stdin = StdioMode::from_u8(v.u8()?)?;
                    req.stdout = StdioMode::from_u8(v.u8()?)?;
                    req.stderr = StdioMode::from_u8(v.u8()?)?;
                    if req.stdin == StdioMode::ToStdout || req.stdout == StdioMode::ToStdout {
                        return Err(DecodeError::BadValue("stdio mode"));
                    }
                }
                TAG_KILL_TIMEOUT => req.kill_timeout_ms = v.u64()?,
                TAG_PIPE_SIZE => req.pipe_size = v.u32()?,
                TAG_KILL_LEFTOVERS => {
                    req.kill_leftovers = match v.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(DecodeError::BadValue("kill_leftovers")),
                    }
                }
                TAG_PTY => {
                    req.pty = Some(WindowSize {
                        rows: v.u16()?,
                        cols: v.u16()?,
                    })
                }
                TAG_PTY_RAW => {
                    req.pty_raw = match v.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(DecodeError::BadValue("pty_raw")),
                    }
                }
                TAG_TIMEOUT => req.timeout_ms = Some(v.u64()?),
                TAG_STOP_STEP => {
                    let kind = v.u8()?;
                    let sig = v.i32()?;
                    let action = match (kind, sig) {
                        (0, sig) => StopAction::Signal(sig),
                        (1, 0) => StopAction::CloseStdin,
                        _ => return Err(DecodeError::BadValue("stop step")),
                    };
                    req.stop_sequence.push(StopStep {
                        action,
                        wait_ms: v.u64()?,
                    });
                }
                TAG_UID => req.uid = Some(v.u32()?),
                TAG_GID => req.gid = Some(v.u32()?),
                TAG_GROUPS => {
                    if value.len() % 4 != 0 {
                        return Err(DecodeError::BadValue("groups"));
                    }
                    let mut groups = Vec::with_capacity(value.len() / 4);
                    while !v.is_empty() {
                        groups.push(v.u32()?);
                    }
                    req.groups = Some(groups);
                }
                TAG_UMASK => {
                    let umask = v.u32()?;
                    if umask > 0o777 {
                        return Err(DecodeError::BadValue("umask"));
                    }
                    req.umask = Some(umask);
                }
                TAG_RLIMIT => {
                    let resource = RlimitResource::from_u8(v.u8()?)
                        .ok_or(DecodeError::BadValue("rlimit resource"))?;
                    let (soft, hard) = (v.u64()?, v.u64()?);
                    if soft > hard {
                        return Err(DecodeError::BadValue("rlimit (soft above hard)"));
                    }
                    req.rlimits.push(Rlimit {
                        resource,
                        soft,
                        hard,
                    });
                }
                TAG_NO_NEW_PRIVS => {
                    req.no_new_privs = match v.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(DecodeError::BadValue("no_new_privs")),
                    }
                }
                TAG_NICE => {
                    let nice = v.i32()?;
                    if !(-20..=19).contains(&nice) {
                        return Err(DecodeError::BadValue("nice"));
                    }
                    req.nice = Some(nice);
                }
                TAG_PASSED_STDIO => {
                    let mask = v.u8()?;
                    if mask == 0 || mask & !7 != 0 {
                        return Err(DecodeError::BadValue("passed stdio"));
                    }
                    req.passed_stdio = mask;
                }
                TAG_FOREGROUND => {
                    req.foreground = match v.u8()? {
                        1 => true,
                        _ => return Err(DecodeError::BadValue("foreground")),
                    }
                }
                other => {
                    if !cgroup::decode_field(&mut req.cgroup, other, &mut v)? {
                        return Err(DecodeError::UnknownField(other));
                    }
                }
            }
            v.finish()?;
        }
        if !have_program {
            return Err(DecodeError::BadValue("program (missing)"));
        }
        if let Some(spec) = &req.cgroup {
            cgroup::check(spec)?;
        }
        // A passed descriptor replaces the shepherd's own: only for a
        // stream whose mode is "inherit".
        let modes = [req.stdin, req.stdout, req.stderr];
        for (bit, mode) in modes.iter().enumerate() {
            if req.passed_stdio & (1 << bit) != 0 && *mode != StdioMode::Inherit {
                return Err(DecodeError::BadValue("passed stdio (mode is not inherit)"));
            }
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::put_u32;

    #[test]
    fn unknown_tag_is_refused() {
        let mut bytes = SpawnRequest::new(b"x".to_vec()).encode();
        bytes.push(200);
        put_bytes(&mut bytes, b"");
        assert_eq!(
            SpawnRequest::decode(&bytes),
            Err(DecodeError::UnknownField(200))
        );
    }

    #[test]
    fn missing_program_is_refused() {
        let mut bytes = Vec::new();
        put_u8(&mut bytes, TAG_PIPE_SIZE);
        let mut v = Vec::new();
        put_u32(&mut v, 4096);
        put_bytes(&mut bytes, &v);
        assert_eq!(
            SpawnRequest::decode(&bytes),
            Err(DecodeError::BadValue("program (missing)"))
        );
    }

    #[test]
    fn round_trips_every_field() {
        let req = SpawnRequest {
            program: b"/bin/\xffx".to_vec(),
            args: vec![b"".to_vec(), b"a b".to_vec()],
            arg0: Some(b"zero".to_vec()),
            env: vec![b"A=1".to_vec()],
            cwd: Some(b"/tmp".to_vec()),
            stdin: StdioMode::Null,
            stdout: StdioMode::Pipe,
            stderr: StdioMode::ToStdout,
            kill_timeout_ms: 123,
            pipe_size: 0,
            kill_leftovers: false,
            pty: Some(WindowSize { rows: 24, cols: 80 }),
            pty_raw: true,
            timeout_ms: Some(1500),
            stop_sequence: vec![
                StopStep {
                    action: StopAction::CloseStdin,
                    wait_ms: 100,
                },
                StopStep {
                    action: StopAction::Signal(2),
                    wait_ms: 2000,
                },
            ],
            uid: Some(1000),
            gid: Some(0),
            groups: Some(vec![1, 2, u32::MAX]),
            umask: Some(0o027),
            rlimits: vec![
                Rlimit {
                    resource: RlimitResource::Nofile,
                    soft: 64,
                    hard: 128,
                },
                Rlimit {
                    resource: RlimitResource::Rttime,
                    soft: u64::MAX,
                    hard: u64::MAX,
                },
            ],
            no_new_privs: true,
            nice: Some(-20),
            cgroup: None,
            passed_stdio: 0,
            foreground: true,
        };
        assert_eq!(SpawnRequest::decode(&req.encode()).unwrap(), req);
        let mut empty = req.clone();
        empty.groups = Some(Vec::new());
        assert_eq!(SpawnRequest::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn out_of_range_hardening_values_are_refused() {
        for (req, what) in [
            (
                SpawnRequest {
                    umask: Some(0o1000),
                    ..SpawnRequest::new(b"x".to_vec())
                },
                "umask",
            ),
            (
                SpawnRequest {
                    nice: Some(20),
                    ..SpawnRequest::new(b"x".to_vec())
                },
                "nice",
            ),
            (
                SpawnRequest {
                    rlimits: vec![Rlimit {
                        resource: RlimitResource::Core,
                        soft: 2,
                        hard: 1,
                    }],
                    ..SpawnRequest::new(b"x".to_vec())
                },
                "rlimit (soft above hard)",
            ),
        ] {
            assert_eq!(
                SpawnRequest::decode(&req.encode()),
                Err(DecodeError::BadValue(what))
            );
        }
    }

    #[test]
    fn passed_stdio_round_trips_and_needs_inherit() {
        let mut req = SpawnRequest::new(b"x".to_vec());
        req.stdin = StdioMode::Inherit;
        req.stderr = StdioMode::Inherit;
        req.passed_stdio = PASS_STDIN | PASS_STDERR;
        assert_eq!(SpawnRequest::decode(&req.encode()).unwrap(), req);
        assert_eq!(req.passed_fds(), 2);
        req.stderr = StdioMode::Pipe;
        assert_eq!(
            SpawnRequest::decode(&req.encode()),
            Err(DecodeError::BadValue("passed stdio (mode is not inherit)"))
        );
        let mut bytes = SpawnRequest::new(b"x".to_vec()).encode();
        put_u8(&mut bytes, TAG_PASSED_STDIO);
        put_bytes(&mut bytes, &[8]);
        assert_eq!(
            SpawnRequest::decode(&bytes),
            Err(DecodeError::BadValue("passed stdio"))
        );
    }

    #[test]
    fn plain_request_has_no_hardening_tags() {
        let bytes = SpawnRequest::new(b"x".to_vec()).encode();
        let mut r = Reader::new(&bytes);
        while !r.is_empty() {
            assert!(r.u8().unwrap() <= TAG_PTY);
            r.bytes().unwrap();
        }
    }
}
