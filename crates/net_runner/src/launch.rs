//! Starting a shepherd and the spawn handshake.
//!
//! One round trip: the library writes `Hello` and `Spawn` in one go; the
//! shepherd answers `Hello` and either `Spawned` (with the pipe ends attached
//! by `SCM_RIGHTS`) or `SpawnFailed` (stage and errno).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::Arc;

use rustix::process::Pid;

use net_runner_proto::{
    check_version, FromShepherd, SpawnRequest, SpawnStage, ToShepherd, MAX_FRAME_LEN,
};

use crate::cgroup::Plan;
use crate::control::ControlChannel;
use crate::error::StageValues;
use crate::{pool, reaper, sys, Error, ShepherdError, SpawnStage as Stage};

fn protocol(message: String) -> Error {
    Error::Shepherd(ShepherdError::Protocol(message))
}

/// A child that is running, with its shepherd.
pub(crate) struct Launched {
    pub(crate) shepherd_pid: Pid,
    pub(crate) child_pid: libc::pid_t,
    pub(crate) control: ControlChannel,
    pub(crate) fds: Vec<OwnedFd>,
    /// The cgroup asked for: removed by the library if the shepherd dies
    /// without removing it.
    pub(crate) cgroup: Option<Arc<Plan>>,
    /// A forked shepherd (see `prefork_shepherd`): reaped at the latest
    /// when its owner drops, rather than by the reaper thread on exit.
    pub(crate) forked: bool,
}

/// Reaps the shepherd if the handshake is abandoned (error or
/// cancellation), then removes what it left of the cgroup.
struct ReapOnDrop(Option<Pid>, Option<Arc<Plan>>);

impl Drop for ReapOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            reaper::reap_then(pid, self.1.take());
        }
    }
}

/// A spawn request, encoded (`Hello` and `Spawn`) and checked.
pub(crate) struct Request {
    bytes: Vec<u8>,
    values: StageValues,
    names_cwd: bool,
}

impl Request {
    /// Encodes `req`, refusing what no shepherd could take.
    pub(crate) fn new(req: SpawnRequest, program: &OsString) -> Result<Request, Error> {
        pool::check_env()?;
        let mut bytes = Vec::new();
        ToShepherd::hello().encode(&mut bytes);
        let names_cwd = req.cwd.is_some();
        let values = StageValues {
            uid: req.uid,
            gid: req.gid,
            nice: req.nice,
        };
        let hello_len = bytes.len();
        ToShepherd::Spawn(req).encode(&mut bytes);
        // A request the shepherd would refuse as a corrupt frame could never
        // be exec'd either: the kernel caps argv and envp together far lower.
        if bytes.len() - hello_len - 4 > MAX_FRAME_LEN {
            return Err(Error::Spawn {
                program: program.clone(),
                stage: Stage::Exec,
                source: io::Error::from_raw_os_error(libc::E2BIG),
            });
        }
        Ok(Request {
            bytes,
            values,
            names_cwd,
        })
    }
}

/// A request already on its way to a forked shepherd.
pub(crate) struct Early {
    /// Taken by [`launch`]; still here if the spawn's future is dropped
    /// before it ran.
    idle: Option<pool::Idle>,
    /// Bytes of the request sent, the passed descriptors with the first.
    sent: usize,
}

impl Drop for Early {
    /// The spawn was abandoned before its handshake: the closed socket
    /// tells the shepherd to stop what it started; it is reaped after.
    fn drop(&mut self) {
        if let Some(idle) = self.idle.take() {
            let pid = idle.pid;
            drop(idle.control);
            reaper::reap(pid);
        }
    }
}

/// Sends `request` now to a forked shepherd that waits in the pool (see
/// `prefork_shepherd`), if there is one whose inherited state still
/// holds: it starts the program while the caller goes on (builds its
/// runtime, say) instead of when the spawn is first polled. Whatever does
/// not fit in the socket at once follows in [`launch`].
pub(crate) fn send_early(request: &Request, passed: &[OwnedFd]) -> Option<Early> {
    if !request.names_cwd {
        return None;
    }
    let idle = pool::take_forked()?;
    let fds: Vec<_> = passed.iter().map(|fd| fd.as_fd()).collect();
    let sent = if fds.is_empty() {
        sys::send(&idle.control, &request.bytes)
    } else {
        sys::send_with_fds(&idle.control, &request.bytes, &fds)
    };
    // Not even a byte (no room, or it is gone): all of it goes in `launch`.
    let sent = sent.unwrap_or(0);
    Some(Early {
        idle: Some(idle),
        sent,
    })
}

/// Starts the child of `request` under a shepherd: the one `early` sent it
/// to, a pre-started one, or a new one. `passed` are the descriptors the
/// request names (`passed_fds`), in its order: they travel with the
/// request and stay ours.
pub(crate) async fn launch(
    request: Request,
    early: Option<Early>,
    program: OsString,
    cwd: Option<PathBuf>,
    passed: Vec<OwnedFd>,
    cgroup: Option<Arc<Plan>>,
) -> Result<Launched, Error> {
    let Request {
        bytes,
        values,
        names_cwd,
    } = request;
    let spawn_error = |stage, source| Error::Spawn {
        program: program.clone(),
        stage,
        source,
    };
    // A pre-started shepherd has the cwd of its start: use one only when
    // the request names the cwd explicitly.
    let idle = match early {
        Some(mut early) => early.idle.take().map(|idle| (idle, early.sent)),
        None if names_cwd => pool::take().map(|idle| (idle, 0)),
        None => None,
    };
    if let Some((idle, sent)) = idle {
        match handshake(idle, &bytes, sent, &passed, &program, &cwd, values, &cgroup).await {
            // It died while idle (killed, or told to stop): nothing was
            // started, so a fresh shepherd can take the request.
            Err(Attempt::Vanished) => {}
            Err(Attempt::Failed(e)) => return Err(e),
            Ok(launched) => return Ok(launched),
        }
    }
    let label = std::ffi::CString::new(program.as_bytes()).ok();
    let idle =
        pool::start_shepherd(label.as_deref()).map_err(|e| spawn_error(Stage::StartShepherd, e))?;
    handshake(idle, &bytes, 0, &passed, &program, &cwd, values, &cgroup)
        .await
        .map_err(|e| match e {
            Attempt::Vanished => Error::Shepherd(ShepherdError::LostDuringSpawn),
            Attempt::Failed(e) => e,
        })
}

/// How one handshake with one shepherd ended, when not with a child.
enum Attempt {
    /// The shepherd went away before answering anything.
    Vanished,
    Failed(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Failed(e)
    }
}

/// Sends the request to `idle` and reads its answer. On any failure the
/// shepherd is reaped.
#[allow(clippy::too_many_arguments)]
async fn handshake(
    idle: pool::Idle,
    request: &[u8],
    already_sent: usize,
    passed: &[OwnedFd],
    program: &OsString,
    cwd: &Option<PathBuf>,
    values: StageValues,
    cgroup: &Option<Arc<Plan>>,
) -> Result<Launched, Attempt> {
    let shepherd_pid = idle.pid;
    let forked = idle.forked;
    let mut guard = ReapOnDrop(Some(shepherd_pid), cgroup.clone());
    let mut control = ControlChannel::new(idle.control).map_err(Error::from)?;
    // Descriptors go with the first byte: already sent if any byte was.
    let passed: Vec<_> = match already_sent {
        0 => passed.iter().map(|fd| fd.as_fd()).collect(),
        _ => Vec::new(),
    };
    if let Err(e) = control.send_all(&request[already_sent..], &passed).await {
        tracing::debug!(error = %e, "shepherd went away before the request");
        return Err(Attempt::Vanished);
    }
    // Out of descriptors shows here, when the passed pipes cannot be
    // installed: report it as the spawn failure it is.
    let recv_error = |e: Error| match e {
        Error::Io(e) => Error::Spawn {
            program: program.clone(),
            stage: Stage::ControlSocket,
            source: e,
        },
        other => other,
    };
    match control.recv().await.map_err(recv_error)? {
        Some(FromShepherd::Hello { version }) => {
            check_version(version).map_err(|e| protocol(e.to_string()))?
        }
        Some(other) => return Err(protocol(format!("expected Hello, got {other:?}")).into()),
        None => return Err(Attempt::Vanished),
    }
    let failed = |e: Error| Err(Attempt::Failed(e));
    match control.recv().await.map_err(recv_error)? {
        Some(FromShepherd::Spawned { pid, fds }) => {
            let fds = control.take_fds(fds as usize)?;
            guard.0 = None;
            Ok(Launched {
                shepherd_pid,
                child_pid: pid,
                control,
                fds,
                cgroup: cgroup.clone(),
                forked,
            })
        }
        Some(FromShepherd::SpawnFailed {
            stage: SpawnStage::CgroupPlace(n),
            errno,
        }) => match cgroup {
            Some(plan) => failed(plan.join_failed(n, errno)),
            None => failed(protocol(format!("cgroup failure {n} without a cgroup"))),
        },
        Some(FromShepherd::CgroupFailed { step, errno, path }) => match cgroup {
            Some(plan) => failed(plan.failed(step, errno, path)),
            None => failed(protocol("cgroup failure without a cgroup".into())),
        },
        Some(FromShepherd::SpawnFailed { stage, errno }) => failed(spawn_failed(
            stage,
            errno,
            program.clone(),
            cwd.clone(),
            values,
        )),
        Some(FromShepherd::InterpreterNotFound {
            program,
            interpreter,
        }) => failed(Error::InterpreterNotFound {
            program: OsString::from_vec(program),
            interpreter: OsString::from_vec(interpreter),
        }),
        Some(FromShepherd::Error { message }) => {
            failed(Error::Shepherd(ShepherdError::Refused(message)))
        }
        Some(other) => failed(protocol(format!("unexpected {other:?} during spawn"))),
        None => failed(Error::Shepherd(ShepherdError::LostDuringSpawn)),
    }
}

fn spawn_failed(
    stage: SpawnStage,
    errno: i32,
    program: OsString,
    cwd: Option<PathBuf>,
    values: StageValues,
) -> Error {
    let source = io::Error::from_raw_os_error(errno);
    match (stage, errno) {
        (SpawnStage::Exec, libc::ENOENT) => Error::NotFound { program },
        (SpawnStage::Exec, libc::EACCES) => Error::PermissionDenied { program },
        (SpawnStage::Chdir, libc::ENOENT) => Error::CwdNotFound {
            path: cwd.unwrap_or_default(),
        },
        (SpawnStage::Chdir, _) => Error::Cwd {
            path: cwd.unwrap_or_default(),
            source,
        },
        (stage, _) => Error::Spawn {
            program,
            stage: Stage::from_wire(stage, values),
            source,
        },
    }
}
