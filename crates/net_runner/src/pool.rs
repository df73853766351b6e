//! Shepherds started ahead of time.
//!
//! Starting a shepherd is an exec; doing it while the caller waits roughly
//! doubles spawn latency. A background thread keeps a few shepherds started
//! and blocked on their control socket, waiting for a `Spawn` request; a
//! spawn takes one and the thread starts a replacement off the critical path.
//!
//! An idle shepherd was started at some earlier moment, so it carries the
//! process state of that moment (see [`crate::inherited`]): resource
//! limits, umask, credentials, stderr, ... Each idle shepherd keeps a
//! snapshot of that state, and is handed out only while the caller's state
//! still matches it; a stale one is let go. The request always names the
//! working directory and the full environment, so those are current.
//! `set_prestarted_shepherds(0)` turns the pool off.
//!
//! Idle shepherds die with us: their control socket closes when this
//! process exits, and an idle shepherd that reads end of file exits.

use std::os::fd::OwnedFd;

use rustix::process::Pid;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use crate::inherited::Inherited;
use crate::{reaper, shepherd_exe, sys};

/// A started shepherd waiting for its request.
#[derive(Debug)]
pub(crate) struct Idle {
    pub(crate) pid: Pid,
    pub(crate) control: OwnedFd,
    /// Forked by [`prefork_shepherd`] rather than exec'd.
    pub(crate) forked: bool,
}

impl Idle {
    /// Lets the shepherd go: it reads end of file and exits.
    fn release(self) {
        let pid = self.pid;
        drop(self.control);
        reaper::reap(pid);
    }
}

/// Environment variable with the default pool size (a number up to 64; `0`
/// disables). Any other value makes every spawn fail with
/// [`Error::InvalidEnvVar`](crate::Error::InvalidEnvVar).
///
/// ```
/// // NETRUNNER_PRESTART=0 in the environment turns pre-starting off.
/// assert_eq!(net_runner::PRESTART_ENV, "NETRUNNER_PRESTART");
/// ```
pub const PRESTART_ENV: &str = "NETRUNNER_PRESTART";

const DEFAULT_SIZE: usize = 1;

/// The most shepherds `NETRUNNER_PRESTART` may ask for: each is a process.
const MAX_SIZE: usize = 64;

/// `NETRUNNER_PRESTART`, read once: `Ok(None)` when unset, `Err` with the
/// value and what is wrong with it.
fn env_size() -> &'static Result<Option<usize>, (std::ffi::OsString, String)> {
    static SIZE: OnceLock<Result<Option<usize>, (std::ffi::OsString, String)>> = OnceLock::new();
    SIZE.get_or_init(|| {
        let Some(value) = std::env::var_os(PRESTART_ENV) else {
            return Ok(None);
        };
        match value.to_str().map(|v| v.trim().parse::<usize>()) {
            Some(Ok(n)) if n <= MAX_SIZE => Ok(Some(n)),
            Some(Ok(_)) => Err((value, format!("at most {MAX_SIZE} shepherds"))),
            _ => Err((
                value,
                "expected a number of shepherds (0 turns pre-starting off)".to_owned(),
            )),
        }
    })
}

/// Fails while `NETRUNNER_PRESTART` holds something that is not a size,
/// instead of silently using the default.
pub(crate) fn check_env() -> Result<(), crate::Error> {
    match env_size() {
        Ok(_) => Ok(()),
        Err((value, reason)) => Err(crate::Error::InvalidEnvVar {
            name: PRESTART_ENV,
            value: value.clone(),
            reason: reason.clone(),
        }),
    }
}

struct State {
    /// Each with what it inherited from us when it started.
    idle: Vec<(Idle, Inherited)>,
    target: usize,
    thread_started: bool,
    /// The last start failed (fd limit, say): wait for the next take
    /// instead of retrying in a loop.
    failed: bool,
}

struct Pool {
    state: Mutex<State>,
    wake: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State {
            idle: Vec::new(),
            target: match env_size() {
                Ok(Some(n)) => *n,
                _ => DEFAULT_SIZE,
            },
            thread_started: false,
            failed: false,
        }),
        wake: Condvar::new(),
    })
}

fn lock(pool: &Pool) -> MutexGuard<'_, State> {
    pool.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes an idle shepherd if one is ready and would give the child what a
/// shepherd started now would, and asks for a replacement.
pub(crate) fn take() -> Option<Idle> {
    let (idle, inherited) = take_any()?;
    if inherited == Inherited::now() {
        return Some(idle);
    }
    tracing::debug!("pre-started shepherd is stale (limits, ids, umask, ...): not used");
    idle.release();
    None
}

/// Takes a forked idle shepherd (see [`prefork_shepherd`]) if one is
/// ready and still matches, without starting any replacement.
pub(crate) fn take_forked() -> Option<Idle> {
    let (idle, inherited) = {
        let mut state = lock(pool());
        let i = state.idle.iter().rposition(|(idle, _)| idle.forked)?;
        state.idle.remove(i)
    };
    if inherited == Inherited::now() {
        return Some(idle);
    }
    tracing::debug!("forked shepherd is stale (limits, ids, umask, ...): not used");
    idle.release();
    None
}

fn take_any() -> Option<(Idle, Inherited)> {
    let pool = pool();
    let mut state = lock(pool);
    // A forked shepherd may wait here with pre-starting off.
    let idle = state.idle.pop();
    if state.target == 0 {
        return idle;
    }
    if !state.thread_started {
        state.thread_started = std::thread::Builder::new()
            .name("netrunner-prestart".into())
            .spawn(refill_loop)
            .is_ok();
    }
    state.failed = false;
    pool.wake.notify_one();
    idle
}

/// Starts the shepherd of the next spawn now, as a fork of this process
/// instead of an exec of the embedded shepherd binary: for a program that
/// runs a command or two and is still single-threaded, such as a
/// command-line tool, it saves most of a shepherd's start (an exec, a
/// dynamic-loader-free but still whole program start).
///
/// Fails, and changes nothing, unless this process has exactly one
/// thread: a fork copies every lock, and those that other threads held
/// would stay held. So call it before starting a tokio runtime (or any
/// thread), then spawn as usual: the shepherd waits among the
/// pre-started ones (see [`set_prestarted_shepherds`], which also lets it
/// go when lowering the number below those idle) and the next spawn whose
/// process state still matches it takes it. It exits with this process.
///
/// With `NETRUNNER_SHEPHERD` set, it refuses too: that binary is the
/// shepherd asked for.
///
/// A spawn that finds it sends its request when the spawn's future is
/// *created* (`cmd.spawn()`, `cmd.run()`, ...), not when the future is
/// first polled: the program starts at once, and the caller can build its
/// runtime meanwhile, then await the future there. Dropping the future
/// unpolled stops the program, as dropping it at any other point does.
///
/// Made for a program that exits with its `Process` alive: once the child
/// has exited, a forked shepherd is reaped when its `Process` drops (or
/// right away when the background reaper runs already), so that such a
/// program never starts the reaper thread (an exec'd shepherd is handed to
/// it as soon as the exit is reported).
///
/// The forked shepherd shows in `ps` as `netrunner-shepherd` and the
/// program, like an exec'd one.
///
/// ```
/// // In a test binary other threads may run: then it refuses.
/// if net_runner::prefork_shepherd().is_ok() {
///     assert_eq!(net_runner::prestarted_idle(), 1);
/// }
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let status = rt.block_on(net_runner::Command::new("true").status())?;
/// assert!(status.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn prefork_shepherd() -> std::io::Result<()> {
    if let Some(path) = std::env::var_os(crate::SHEPHERD_ENV) {
        return Err(std::io::Error::other(format!(
            "{}={:?} names the shepherd to start: not forking one",
            crate::SHEPHERD_ENV,
            path.to_string_lossy()
        )));
    }
    sys::reserve_stdio();
    let inherited = Inherited::now();
    let (ours, theirs) = sys::socketpair()?;
    let pid = sys::fork_shepherd(theirs)?;
    let idle = Idle {
        pid,
        control: ours,
        forked: true,
    };
    lock(pool()).idle.push((idle, inherited));
    Ok(())
}

/// Sets how many shepherds are kept started ahead of time (default 1, or
/// `NETRUNNER_PRESTART`). `0` turns pre-starting off and lets the idle
/// shepherds exit.
///
/// ```
/// net_runner::set_prestarted_shepherds(0);
/// let out = net_runner::Command::new("true").run_blocking()?;
/// assert!(out.status.success());
/// net_runner::set_prestarted_shepherds(1);
/// # Ok::<(), net_runner::Error>(())
/// ```
pub fn set_prestarted_shepherds(n: usize) {
    let pool = pool();
    let surplus: Vec<(Idle, Inherited)> = {
        let mut state = lock(pool);
        state.target = n;
        let keep = state.idle.len().min(n);
        state.idle.split_off(keep)
    };
    for (idle, _) in surplus {
        idle.release();
    }
    pool.wake.notify_one();
}

/// Number of idle pre-started shepherds (for tests and diagnostics).
///
/// ```
/// net_runner::set_prestarted_shepherds(0);
/// assert_eq!(net_runner::prestarted_idle(), 0);
/// ```
#[doc(hidden)]
pub fn prestarted_idle() -> usize {
    lock(pool()).idle.len()
}

/// Starts a shepherd with its control socket; it waits for a request.
/// `label` (the program, for a shepherd started for one request) is shown
/// by `ps` after `netrunner-shepherd`.
pub(crate) fn start_shepherd(label: Option<&std::ffi::CStr>) -> std::io::Result<Idle> {
    let exe = shepherd_exe::get()?;
    let (ours, theirs) = sys::socketpair()?;
    let pid = sys::spawn_shepherd(&exe.path, &theirs, label)?;
    Ok(Idle {
        pid,
        control: ours,
        forked: false,
    })
}

fn refill_loop() {
    let pool = pool();
    loop {
        {
            let mut state = lock(pool);
            while state.failed || state.idle.len() >= state.target {
                state = pool.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
        let inherited = Inherited::now();
        let started = start_shepherd(None);
        let mut state = lock(pool);
        match started {
            Ok(idle) if state.idle.len() < state.target => state.idle.push((idle, inherited)),
            Ok(idle) => {
                // The target shrank meanwhile.
                drop(state);
                idle.release();
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot pre-start a shepherd");
                state.failed = true;
            }
        }
    }
}
