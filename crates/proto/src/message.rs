//! The messages of each direction, and their payload layouts.

use crate::codec::{put_bytes, put_i32, put_u16, put_u64, put_u8, Reader};
use crate::{
    encode_frame, CgroupReport, CgroupStep, DecodeError, Frame, RlimitResource, SpawnRequest,
    WindowSize, MAGIC, PROTOCOL_VERSION,
};

/// Messages from the library to the shepherd.
// One `Spawn` per shepherd: boxing it would save nothing that matters.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToShepherd {
    /// First frame on the channel: magic and protocol version.
    Hello {
        /// The sender's [`PROTOCOL_VERSION`].
        version: u16,
    },
    /// Start the child. Sent once, right after `Hello`.
    Spawn(SpawnRequest),
    /// Send a signal to the child's whole process group.
    Signal {
        /// Signal number (the shepherd validates it).
        signal: i32,
    },
    /// SIGTERM the group, wait the kill timeout, then SIGKILL.
    Shutdown,
    /// Resize the child's terminal (PTY mode). Unused since PTY mode
    /// landed: the library resizes through the master it holds, and the
    /// shepherd, which keeps no copy of the master, answers with an `Error`.
    SetWindowSize(WindowSize),
    /// The library closed its end of the child's stdout (1) or stderr (2)
    /// for good: the shepherd closes its spare read end too, so that the
    /// child's next write gets `EPIPE` as without a shepherd.
    ReleaseOutput {
        /// 1 for stdout, 2 for stderr.
        fd: u8,
    },
}

/// Messages from the shepherd to the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromShepherd {
    /// Answer to the library's `Hello`.
    Hello {
        /// The shepherd's [`PROTOCOL_VERSION`].
        version: u16,
    },
    /// The child exec'd. `fds` descriptors travel with this frame by
    /// `SCM_RIGHTS`, in the order stdin, stdout, stderr (each only if piped),
    /// or a single PTY master.
    Spawned {
        /// The child's pid, which is also its process group id.
        pid: i32,
        /// How many descriptors ride along with this frame.
        fds: u8,
    },
    /// The child could not be started.
    SpawnFailed {
        /// Where it failed.
        stage: SpawnStage,
        /// The `errno` of the failing call.
        errno: i32,
    },
    /// The child has exited and been reaped.
    Exited(ExitReport),
    /// The shepherd refused a message (bad request, unsupported feature).
    Error {
        /// A human-readable reason.
        message: String,
    },
    /// A stop sequence reached a `close-stdin` step: the library closes its
    /// end of the child's stdin.
    CloseStdin,
    /// Setting up the child's cgroup failed before the child was started
    /// (instead of `Spawned`; nothing ran, what was created is removed).
    CgroupFailed {
        /// What failed.
        step: CgroupStep,
        /// The `errno` of the failing call.
        errno: i32,
        /// The file or directory it failed on.
        path: Vec<u8>,
    },
    /// The cgroup's figures, read after the child exited and before its
    /// directories were removed. Sent right before `Exited`.
    CgroupStats(CgroupReport),
    /// The child was stopped by this signal (`SIGTSTP` from the terminal,
    /// `SIGTTIN`, `SIGSTOP`, ...): job control for its owner.
    ChildStopped {
        /// The stopping signal.
        signal: i32,
    },
    /// The stopped child was continued (`SIGCONT`).
    ChildContinued,
    /// Instead of `SpawnFailed`: the program exists but its interpreter
    /// (the `#!` line's, or an ELF loader) does not (`execve` said
    /// `ENOENT` for a file that is there).
    InterpreterNotFound {
        /// The path that was exec'd (after the `PATH` search).
        program: Vec<u8>,
        /// The interpreter the `#!` line names; empty when it could not be
        /// read (an ELF file's loader).
        interpreter: Vec<u8>,
    },
}

/// Why the shepherd ran the stop sequence, in [`ExitReport::stopped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopCause {
    /// The request's timeout expired.
    Deadline,
    /// The library asked for it (`Shutdown`).
    Requested,
    /// The control socket closed: the owner is gone.
    OwnerGone,
    /// The shepherd itself was sent SIGTERM.
    Signalled,
}

impl StopCause {
    fn to_u8(self) -> u8 {
        match self {
            StopCause::Deadline => 1,
            StopCause::Requested => 2,
            StopCause::OwnerGone => 3,
            StopCause::Signalled => 4,
        }
    }
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            1 => StopCause::Deadline,
            2 => StopCause::Requested,
            3 => StopCause::OwnerGone,
            4 => StopCause::Signalled,
            _ => return Err(DecodeError::BadValue("stop cause")),
        })
    }
}

/// Wire values `0x10 | resource` are `SpawnStage::Rlimit(resource)`.
const RLIMIT_STAGE: u8 = 0x10;

/// The step of starting a child that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpawnStage {
    /// Creating pipes or the PTY in the shepherd.
    Stdio,
    /// `fork` in the shepherd.
    Fork,
    /// `chdir` to the requested working directory.
    Chdir,
    /// Setting up the child before exec (dup2, process group, signals).
    Setup,
    /// `execve` (including the `PATH` search).
    Exec,
    /// `setgroups` (the requested groups, or dropping them for a `uid`).
    SetGroups,
    /// `setgid`.
    SetGid,
    /// `setuid`.
    SetUid,
    /// `setrlimit` of this resource.
    Rlimit(RlimitResource),
    /// `setpriority` (the nice value).
    Nice,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivs,
    /// Writing the child into `cgroup.procs` of the request's cgroup
    /// directory number `n` (in request order), before exec.
    CgroupPlace(u8),
}

/// Wire values `0x50 | n` are `SpawnStage::CgroupPlace(n)`.
const CGROUP_STAGE: u8 = 0x50;

impl SpawnStage {
    /// Stable wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            SpawnStage::Stdio => 1,
            SpawnStage::Fork => 2,
            SpawnStage::Chdir => 3,
            SpawnStage::Setup => 4,
            SpawnStage::Exec => 5,
            SpawnStage::SetGroups => 6,
            SpawnStage::SetGid => 7,
            SpawnStage::SetUid => 8,
            SpawnStage::Nice => 9,
            SpawnStage::NoNewPrivs => 10,
            SpawnStage::Rlimit(r) => RLIMIT_STAGE | r.to_u8(),
            SpawnStage::CgroupPlace(n) => CGROUP_STAGE | (n & 0x0f),
        }
    }
    /// Parses a wire value.
    pub fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            1 => SpawnStage::Stdio,
            2 => SpawnStage::Fork,
            3 => SpawnStage::Chdir,
            4 => SpawnStage::Setup,
            5 => SpawnStage::Exec,
            6 => SpawnStage::SetGroups,
            7 => SpawnStage::SetGid,
            8 => SpawnStage::SetUid,
            9 => SpawnStage::Nice,
            10 => SpawnStage::NoNewPrivs,
            v if v & 0xf0 == RLIMIT_STAGE => SpawnStage::Rlimit(
                RlimitResource::from_u8(v & 0x0f).ok_or(DecodeError::BadValue("spawn stage"))?,
            ),
            v if v & 0xf0 == CGROUP_STAGE => SpawnStage::CgroupPlace(v & 0x0f),
            _ => return Err(DecodeError::BadValue("spawn stage")),
        })
    }
}

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Termination {
    /// Normal exit with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether a core dump was written.
        core_dumped: bool,
    },
}

/// The child's end, with its resource usage from `wait4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitReport {
    /// Exit code or signal.
    pub termination: Termination,
    /// User CPU time, microseconds.
    pub user_time_us: u64,
    /// System CPU time, microseconds.
    pub system_time_us: u64,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
    /// Why the shepherd had started the stop sequence before the child
    /// exited; `None` if it had not. On the wire: one optional trailing
    /// byte, absent for `None` (so older reports decode unchanged).
    pub stopped: Option<StopCause>,
}

const TO_HELLO: u8 = 0x01;
const TO_SPAWN: u8 = 0x02;
const TO_SIGNAL: u8 = 0x03;
const TO_SHUTDOWN: u8 = 0x04;
const TO_WINSIZE: u8 = 0x05;
const TO_RELEASE_OUTPUT: u8 = 0x06;

const FROM_HELLO: u8 = 0x81;
const FROM_SPAWNED: u8 = 0x82;
const FROM_SPAWN_FAILED: u8 = 0x83;
const FROM_EXITED: u8 = 0x84;
const FROM_ERROR: u8 = 0x85;
const FROM_CLOSE_STDIN: u8 = 0x86;
// Issue 13 (cgroups): 0x8D-0x8F.
const FROM_CGROUP_FAILED: u8 = 0x8D;
const FROM_CGROUP_STATS: u8 = 0x8E;

// Issue 11 (the CLI): job control and exec errors.
const FROM_CHILD_STOPPED: u8 = 0x87;
const FROM_CHILD_CONTINUED: u8 = 0x88;
const FROM_INTERPRETER_NOT_FOUND: u8 = 0x89;

fn hello_payload(version: u16) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    put_u16(&mut p, version);
    p
}

fn decode_hello(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    let magic = [r.u8()?, r.u8()?, r.u8()?, r.u8()?];
    if magic != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    r.u16()
}

impl ToShepherd {
    /// The `Hello` this crate's version sends.
    pub fn hello() -> Self {
        ToShepherd::Hello {
            version: PROTOCOL_VERSION,
        }
    }

    /// Appends this message as one frame to `out`.
    ///
    /// ```
    /// use net_runner_proto::{FrameDecoder, ToShepherd};
    /// let mut out = Vec::new();
    /// ToShepherd::hello().encode(&mut out);
    /// let mut d = FrameDecoder::new();
    /// d.push(&out);
    /// let frame = d.next_frame().unwrap().unwrap();
    /// assert_eq!(ToShepherd::decode(&frame).unwrap(), ToShepherd::hello());
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ToShepherd::Hello { version } => encode_frame(out, TO_HELLO, &hello_payload(*version)),
            ToShepherd::Spawn(req) => encode_frame(out, TO_SPAWN, &req.encode()),
            ToShepherd::Signal { signal } => encode_frame(out, TO_SIGNAL, &signal.to_le_bytes()),
            ToShepherd::Shutdown => encode_frame(out, TO_SHUTDOWN, &[]),
            ToShepherd::SetWindowSize(ws) => {
                let mut p = Vec::with_capacity(4);
                put_u16(&mut p, ws.rows);
                put_u16(&mut p, ws.cols);
                encode_frame(out, TO_WINSIZE, &p)
            }
            ToShepherd::ReleaseOutput { fd } => encode_frame(out, TO_RELEASE_OUTPUT, &[*fd]),
        }
    }

    /// Decodes one frame of this direction.
    pub fn decode(frame: &Frame) -> Result<Self, DecodeError> {
        let mut r = Reader::new(&frame.payload);
        let msg = match frame.kind {
            TO_HELLO => ToShepherd::Hello {
                version: decode_hello(&mut r)?,
            },
            TO_SPAWN => return Ok(ToShepherd::Spawn(SpawnRequest::decode(&frame.payload)?)),
            TO_SIGNAL => ToShepherd::Signal { signal: r.i32()? },
            TO_SHUTDOWN => ToShepherd::Shutdown,
            TO_WINSIZE => ToShepherd::SetWindowSize(WindowSize {
                rows: r.u16()?,
                cols: r.u16()?,
            }),
            TO_RELEASE_OUTPUT => match r.u8()? {
                fd @ (1 | 2) => ToShepherd::ReleaseOutput { fd },
                _ => return Err(DecodeError::BadValue("released fd")),
            },
            other => return Err(DecodeError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

impl FromShepherd {
    /// The `Hello` this crate's version sends.
    pub fn hello() -> Self {
        FromShepherd::Hello {
            version: PROTOCOL_VERSION,
        }
    }

    /// Appends this message as one frame to `out`.
    ///
    /// ```
    /// use net_runner_proto::{FrameDecoder, FromShepherd};
    /// let mut out = Vec::new();
    /// FromShepherd::Spawned { pid: 42, fds: 3 }.encode(&mut out);
    /// let mut d = FrameDecoder::new();
    /// d.push(&out);
    /// let frame = d.next_frame().unwrap().unwrap();
    /// assert_eq!(
    ///     FromShepherd::decode(&frame).unwrap(),
    ///     FromShepherd::Spawned { pid: 42, fds: 3 }
    /// );
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut p = Vec::new();
        let kind = match self {
            FromShepherd::Hello { version } => {
                p = hello_payload(*version);
                FROM_HELLO
            }
            FromShepherd::Spawned { pid, fds } => {
                put_i32(&mut p, *pid);
                put_u8(&mut p, *fds);
                FROM_SPAWNED
            }
            FromShepherd::SpawnFailed { stage, errno } => {
                put_u8(&mut p, stage.to_u8());
                put_i32(&mut p, *errno);
                FROM_SPAWN_FAILED
            }
            FromShepherd::Exited(report) => {
                match report.termination {
                    Termination::Exited(code) => {
                        put_u8(&mut p, 0);
                        put_i32(&mut p, code);
                    }
                    Termination::Signaled {
                        signal,
                        core_dumped,
                    } => {
                        put_u8(&mut p, if core_dumped { 2 } else { 1 });
                        put_i32(&mut p, signal);
                    }
                }
                put_u64(&mut p, report.user_time_us);
                put_u64(&mut p, report.system_time_us);
                put_u64(&mut p, report.max_rss_kib);
                if let Some(cause) = report.stopped {
                    put_u8(&mut p, cause.to_u8());
                }
                FROM_EXITED
            }
            FromShepherd::Error { message } => {
                put_bytes(&mut p, message.as_bytes());
                FROM_ERROR
            }
            FromShepherd::CloseStdin => FROM_CLOSE_STDIN,
            FromShepherd::CgroupFailed { step, errno, path } => {
                put_u8(&mut p, step.to_u8());
                put_i32(&mut p, *errno);
                put_bytes(&mut p, path);
                FROM_CGROUP_FAILED
            }
            FromShepherd::CgroupStats(report) => {
                report.encode(&mut p);
                FROM_CGROUP_STATS
            }
            FromShepherd::ChildStopped { signal } => {
                put_i32(&mut p, *signal);
                FROM_CHILD_STOPPED
            }
            FromShepherd::ChildContinued => FROM_CHILD_CONTINUED,
            FromShepherd::InterpreterNotFound {
                program,
                interpreter,
            } => {
                put_bytes(&mut p, program);
                put_bytes(&mut p, interpreter);
                FROM_INTERPRETER_NOT_FOUND
            }
        };
        encode_frame(out, kind, &p);
    }

    /// Decodes one frame of this direction.
    pub fn decode(frame: &Frame) -> Result<Self, DecodeError> {
        let mut r = Reader::new(&frame.payload);
        let msg = match frame.kind {
            FROM_HELLO => FromShepherd::Hello {
                version: decode_hello(&mut r)?,
            },
            FROM_SPAWNED => FromShepherd::Spawned {
                pid: r.i32()?,
                fds: r.u8()?,
            },
            FROM_SPAWN_FAILED => FromShepherd::SpawnFailed {
                stage: SpawnStage::from_u8(r.u8()?)?,
                errno: r.i32()?,
            },
            FROM_EXITED => {
                let how = r.u8()?;
                let value = r.i32()?;
                let termination = match how {
                    0 => Termination::Exited(value),
                    1 | 2 => Termination::Signaled {
                        signal: value,
                        core_dumped: how == 2,
                    },
                    _ => return Err(DecodeError::BadValue("termination")),
                };
                FromShepherd::Exited(ExitReport {
                    termination,
                    user_time_us: r.u64()?,
                    system_time_us: r.u64()?,
                    max_rss_kib: r.u64()?,
                    stopped: if r.is_empty() {
                        None
                    } else {
                        Some(StopCause::from_u8(r.u8()?)?)
                    },
                })
            }
            FROM_ERROR => FromShepherd::Error {
                message: String::from_utf8_lossy(r.bytes()?).into_owned(),
            },
            FROM_CLOSE_STDIN => FromShepherd::CloseStdin,
            FROM_CGROUP_FAILED => FromShepherd::CgroupFailed {
                step: CgroupStep::from_u8(r.u8()?)?,
                errno: r.i32()?,
                path: r.bytes()?.to_vec(),
            },
            FROM_CGROUP_STATS => FromShepherd::CgroupStats(CgroupReport::decode(&mut r)?),
            FROM_CHILD_STOPPED => FromShepherd::ChildStopped { signal: r.i32()? },
            FROM_CHILD_CONTINUED => FromShepherd::ChildContinued,
            FROM_INTERPRETER_NOT_FOUND => FromShepherd::InterpreterNotFound {
                program: r.bytes()?.to_vec(),
                interpreter: r.bytes()?.to_vec(),
            },
            other => return Err(DecodeError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Checks a peer's `Hello` version against ours.
///
/// ```
/// assert!(net_runner_proto::check_version(net_runner_proto::PROTOCOL_VERSION).is_ok());
/// assert!(net_runner_proto::check_version(999).is_err());
/// ```
pub fn check_version(theirs: u16) -> Result<(), DecodeError> {
    if theirs == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(DecodeError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs,
        })
    }
}

#[cfg(test)]
mod stage_tests {
    use super::*;

    #[test]
    fn every_spawn_stage_round_trips() {
        let mut stages = vec![
            SpawnStage::Stdio,
            SpawnStage::Fork,
            SpawnStage::Chdir,
            SpawnStage::Setup,
            SpawnStage::Exec,
            SpawnStage::SetGroups,
            SpawnStage::SetGid,
            SpawnStage::SetUid,
            SpawnStage::Nice,
            SpawnStage::NoNewPrivs,
        ];
        stages.extend(RlimitResource::ALL.map(SpawnStage::Rlimit));
        stages.extend((0..16).map(SpawnStage::CgroupPlace));
        let mut seen = std::collections::HashSet::new();
        for stage in stages {
            assert!(seen.insert(stage.to_u8()), "{stage:?} shares a wire value");
            assert_eq!(SpawnStage::from_u8(stage.to_u8()), Ok(stage));
        }
        assert!(SpawnStage::from_u8(0x20).is_err());
        assert!(SpawnStage::from_u8(0).is_err());
    }

    #[test]
    fn cgroup_messages_round_trip() {
        for msg in [
            FromShepherd::CgroupFailed {
                step: CgroupStep::Limit,
                errno: 13,
                path: b"/sys/fs/cgroup/x/memory.max".to_vec(),
            },
            FromShepherd::CgroupStats(CgroupReport {
                memory_peak: Some(4096),
                oom_kills: Some(1),
                ..CgroupReport::default()
            }),
            FromShepherd::CgroupStats(CgroupReport::default()),
        ] {
            let mut out = Vec::new();
            msg.encode(&mut out);
            let mut d = crate::FrameDecoder::new();
            d.push(&out);
            let frame = d.next_frame().unwrap().unwrap();
            assert_eq!(FromShepherd::decode(&frame), Ok(msg));
        }
    }
}
