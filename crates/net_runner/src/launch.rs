//! Starting a shepherd and the spawn handshake.
//!
//! One round trip: the library writes `Hello` and `Spawn` in one go; the
//! shepherd answers `Hello` and either `Spawned` (with the pipe ends attached
//! by `SCM_RIGHTS`) or `SpawnFailed` (stage and errno).

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use net_runner_proto::{check_version, FromShepherd, SpawnRequest, SpawnStage, ToShepherd};

use crate::control::ControlChannel;
use crate::{reaper, shepherd_exe, sys, Error};

/// A child that is running, with its shepherd.
pub(crate) struct Launched {
    pub(crate) shepherd_pid: libc::pid_t,
    pub(crate) child_pid: libc::pid_t,
    pub(crate) control: ControlChannel,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Reaps the shepherd if the handshake is abandoned (error or cancellation).
struct ReapOnDrop(Option<libc::pid_t>);

impl Drop for ReapOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            reaper::reap(pid);
        }
    }
}

pub(crate) async fn launch(
    req: SpawnRequest,
    program: OsString,
    cwd: Option<PathBuf>,
) -> Result<Launched, Error> {
    let exe = shepherd_exe::get()?;
    let spawn_error = |stage, source| Error::Spawn {
        program: program.clone(),
        stage,
        source,
    };
    let (ours, theirs) = sys::socketpair().map_err(|e| spawn_error("control socket", e))?;
    let shepherd_pid = sys::spawn_shepherd(&exe.path, &theirs)
        .map_err(|e| spawn_error("starting the shepherd", e))?;
    drop(theirs);
    let mut guard = ReapOnDrop(Some(shepherd_pid));
    let mut control = ControlChannel::new(ours).map_err(|e| spawn_error("control socket", e))?;

    let mut hello = Vec::new();
    ToShepherd::hello().encode(&mut hello);
    ToShepherd::Spawn(req).encode(&mut hello);
    if let Err(e) = control.send_all(&hello).await {
        return Err(Error::Shepherd(format!(
            "shepherd went away during spawn: {e}"
        )));
    }
    match control.recv().await? {
        Some(FromShepherd::Hello { version }) => {
            check_version(version).map_err(|e| Error::Shepherd(e.to_string()))?
        }
        Some(other) => return Err(Error::Shepherd(format!("expected Hello, got {other:?}"))),
        None => return Err(Error::Shepherd("shepherd exited before answering".into())),
    }
    match control.recv().await? {
        Some(FromShepherd::Spawned { pid, fds }) => {
            let fds = control.take_fds(fds as usize)?;
            guard.0 = None;
            Ok(Launched {
                shepherd_pid,
                child_pid: pid,
                control,
                fds,
            })
        }
        Some(FromShepherd::SpawnFailed { stage, errno }) => {
            Err(spawn_failed(stage, errno, program, cwd))
        }
        Some(FromShepherd::Error { message }) => Err(Error::Shepherd(message)),
        Some(other) => Err(Error::Shepherd(format!(
            "unexpected {other:?} during spawn"
        ))),
        None => Err(Error::Shepherd("shepherd exited during spawn".into())),
    }
}

fn spawn_failed(stage: SpawnStage, errno: i32, program: OsString, cwd: Option<PathBuf>) -> Error {
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
            stage: match stage {
                SpawnStage::Stdio => "creating pipes",
                SpawnStage::Fork => "fork",
                SpawnStage::Chdir => "chdir",
                SpawnStage::Setup => "child setup",
                SpawnStage::Exec => "exec",
            },
            source,
        },
    }
}
