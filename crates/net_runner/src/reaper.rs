//! Reaps shepherds that are still finishing their work when their `Process`
//! is gone, so that no shepherd is ever left a zombie and no caller blocks.
//!
//! One lazily started thread polls the pending pids; it sleeps on its
//! channel while nothing is pending.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::sys;

static QUEUE: OnceLock<Mutex<Sender<libc::pid_t>>> = OnceLock::new();

/// Starts the reaper thread if it is not running. Called before any
/// shepherd is started, so that a failure to create the thread is a spawn
/// error rather than a panic later, where no error can be returned.
pub(crate) fn start() -> std::io::Result<()> {
    static START: Mutex<()> = Mutex::new(());
    if QUEUE.get().is_some() {
        return Ok(());
    }
    let _one_at_a_time = START.lock().unwrap_or_else(|e| e.into_inner());
    if QUEUE.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = channel::<libc::pid_t>();
    std::thread::Builder::new()
        .name("netrunner-reaper".into())
        .spawn(move || {
            let mut pending: Vec<libc::pid_t> = Vec::new();
            loop {
                let next = if pending.is_empty() {
                    rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
                } else {
                    rx.recv_timeout(Duration::from_millis(10))
                };
                match next {
                    Ok(pid) => pending.push(pid),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                pending.retain(|&pid| !sys::try_reap(pid));
            }
        })?;
    let _ = QUEUE.set(Mutex::new(tx));
    Ok(())
}

/// Reaps `pid` now if it has exited, otherwise in the background.
pub(crate) fn reap(pid: libc::pid_t) {
    if sys::try_reap(pid) {
        return;
    }
    match QUEUE.get() {
        Some(queue) => {
            let _ = queue.lock().unwrap_or_else(|e| e.into_inner()).send(pid);
        }
        // Unreachable: every shepherd is started after `start` succeeded.
        None => tracing::warn!(pid, "no reaper thread: shepherd left unreaped"),
    }
}
