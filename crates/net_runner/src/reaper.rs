//! Reaps shepherds that are still finishing their work when their `Process`
//! is gone, so that no shepherd is ever left a zombie and no caller blocks.
//!
//! One lazily started thread sleeps in `poll` on an eventfd (new work) and
//! on a pidfd per pending shepherd, which becomes readable when that
//! shepherd exits: it wakes only when there is something to reap. Where
//! the kernel has no pidfds (before 5.3; remembered after the first
//! `ENOSYS`), it falls back to trying every 10 ms while anything is
//! pending. The bookkeeping ([`Pending`]) is generic over [`Wait`], so it
//! is tested below without real processes.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::process::Pid;

use crate::cgroup::Plan;
use crate::sys;

/// How often pending processes without a pidfd are tried.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Most pidfds held at once: a burst of thousands of dropped processes
/// must not take that many descriptors from the owner. The rest are
/// polled.
const MAX_PIDFDS: usize = 32;

/// What the reaper needs from the operating system.
trait Wait {
    /// Reaps `pid` if it has exited: `None` while it runs; then whether it
    /// exited on its own (`true`: its teardown ran) rather than by a signal.
    fn try_reap(&self, pid: Pid) -> Option<bool>;
    /// A descriptor that becomes readable when `pid` exits, where the
    /// kernel can give one.
    fn exit_fd(&self, pid: Pid) -> Option<OwnedFd>;
}

/// The real thing: `waitpid` and pidfds.
struct Os {
    /// The kernel said ENOSYS to `pidfd_open` once: don't ask again.
    no_pidfds: AtomicBool,
}

impl Wait for Os {
    fn try_reap(&self, pid: Pid) -> Option<bool> {
        sys::try_reap(pid)
    }

    fn exit_fd(&self, pid: Pid) -> Option<OwnedFd> {
        if self.no_pidfds.load(Ordering::Relaxed) {
            return None;
        }
        match sys::pidfd_open(pid) {
            Ok(fd) => Some(fd),
            Err(e) => {
                if e.raw_os_error() == Some(libc::ENOSYS) {
                    self.no_pidfds.store(true, Ordering::Relaxed);
                }
                None
            }
        }
    }
}

/// The processes waiting to be reaped, each with the cgroup to remove once
/// it is gone (if its shepherd left it).
#[derive(Default)]
struct Pending {
    entries: Vec<(Pid, Option<OwnedFd>, Option<Arc<Plan>>)>,
    /// Cgroups of reaped shepherds, to remove now.
    cleanups: Vec<Arc<Plan>>,
}

impl Pending {
    #[cfg(test)]
    fn add(&mut self, wait: &impl Wait, pid: Pid) {
        self.add_then(wait, pid, None);
    }

    fn add_then(&mut self, wait: &impl Wait, pid: Pid, after: Option<Arc<Plan>>) {
        if let Some(clean) = wait.try_reap(pid) {
            // A shepherd that exited removed its cgroup itself; the path
            // may already be the next command's.
            if !clean {
                self.cleanups.extend(after);
            }
        } else {
            let fd = if self.exit_fds().count() < MAX_PIDFDS {
                wait.exit_fd(pid)
            } else {
                None
            };
            self.entries.push((pid, fd, after));
        }
    }

    /// Reaps every pending process that has exited.
    fn sweep(&mut self, wait: &impl Wait) {
        let cleanups = &mut self.cleanups;
        self.entries
            .retain_mut(|(pid, _, after)| match wait.try_reap(*pid) {
                None => true,
                Some(clean) => {
                    if !clean {
                        cleanups.extend(after.take());
                    }
                    false
                }
            });
    }

    /// How long the thread may sleep before sweeping again: until a
    /// descriptor wakes it (`None`) when every pending process has a
    /// pidfd, the poll interval otherwise.
    fn sleep_limit(&self) -> Option<Duration> {
        self.entries
            .iter()
            .any(|(_, fd, _)| fd.is_none())
            .then_some(POLL_INTERVAL)
    }

    fn exit_fds(&self) -> impl Iterator<Item = &OwnedFd> {
        self.entries.iter().filter_map(|(_, fd, _)| fd.as_ref())
    }
}

/// A shepherd to reap (`None`: already reaped) and the cgroup to remove
/// once it is gone.
type Job = (Option<Pid>, Option<Arc<Plan>>);

/// The reaper thread's inbox.
struct Queue {
    /// A shepherd to reap (`None`: already reaped) and its cgroup to
    /// remove afterwards.
    pids: Mutex<VecDeque<Job>>,
    /// Written to wake the thread.
    wake: OwnedFd,
}

static QUEUE: OnceLock<Arc<Queue>> = OnceLock::new();

/// Shepherds handed to the thread and not yet reaped.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Number of shepherds still waiting to be reaped in the background (for
/// tests that count descriptors: each may hold a pidfd).
///
/// ```
/// // Shepherds of dropped processes still being cleaned up in the background.
/// let _n: usize = net_runner::pending_reaps();
/// ```
#[doc(hidden)]
pub fn pending_reaps() -> usize {
    IN_FLIGHT.load(Ordering::SeqCst)
}

/// Jobs that found no reaper thread, because it could not start (out of
/// threads or descriptors): the next [`reap_then`] that starts it hands
/// them over.
static STRANDED: Mutex<Vec<Job>> = Mutex::new(Vec::new());

/// The reaper's queue, starting its thread on first use: only a process
/// that drops a `Process` whose shepherd is still finishing pays for the
/// thread (a command-line tool that exits with its `Process` never does).
fn start() -> io::Result<&'static Arc<Queue>> {
    static START: Mutex<()> = Mutex::new(());
    if let Some(queue) = QUEUE.get() {
        return Ok(queue);
    }
    let _one_at_a_time = START.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(queue) = QUEUE.get() {
        return Ok(queue);
    }
    let wake = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
    let wake = sys::at_least(wake, sys::FIRST_FREE_FD)?;
    let queue = Queue {
        pids: Mutex::new(VecDeque::new()),
        wake,
    };
    // Published only once its thread runs; if the thread cannot start,
    // the queue (and its eventfd) is dropped with the error.
    let queue = Arc::new(queue);
    let served = queue.clone();
    std::thread::Builder::new()
        .name("netrunner-reaper".into())
        .spawn(move || run(&served))?;
    Ok(QUEUE.get_or_init(|| queue))
}

/// Whether the reaper thread runs already.
pub(crate) fn running() -> bool {
    QUEUE.get().is_some()
}

/// Reaps `pid` now if it has exited, otherwise in the background.
pub(crate) fn reap(pid: Pid) {
    reap_then(pid, None);
}

/// Reaps the shepherd `pid`, then removes what it left of its cgroup
/// (nothing, unless it died before its own teardown): on the reaper
/// thread, so that a caller never waits for a dying cgroup.
pub(crate) fn reap_then(pid: Pid, cgroup: Option<Arc<Plan>>) {
    let item = match sys::try_reap(pid) {
        Some(clean) => match cgroup {
            Some(plan) if !clean && plan.left_over() => (None, Some(plan)),
            _ => return,
        },
        None => (Some(pid), cgroup),
    };
    let queue = match start() {
        Ok(queue) => queue,
        Err(e) => {
            tracing::warn!(
                pid = ?item.0,
                error = %e,
                "cannot start the reaper thread: the shepherd waits for the next drop"
            );
            STRANDED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(item);
            return;
        }
    };
    let mut jobs = std::mem::take(&mut *STRANDED.lock().unwrap_or_else(|e| e.into_inner()));
    jobs.push(item);
    IN_FLIGHT.fetch_add(jobs.len(), Ordering::SeqCst);
    queue
        .pids
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(jobs);
    let _ = rustix::io::write(&queue.wake, &1u64.to_ne_bytes());
}

fn run(queue: &Queue) {
    let os = Os {
        no_pidfds: AtomicBool::new(false),
    };
    let wake = &queue.wake;
    let mut pending = Pending::default();
    loop {
        let new: Vec<_> = queue
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        let before = pending.entries.len() + new.len();
        for item in new {
            match item {
                (Some(pid), after) => pending.add_then(&os, pid, after),
                (None, after) => pending.cleanups.extend(after),
            }
        }
        pending.sweep(&os);
        // Removed before the count drops: `pending_reaps` at 0 means the
        // directories are gone too.
        for plan in pending.cleanups.drain(..) {
            plan.remove_leftovers();
        }
        IN_FLIGHT.fetch_sub(before - pending.entries.len(), Ordering::SeqCst);
        let mut fds: Vec<PollFd<'_>> = std::iter::once(wake.as_fd())
            .chain(pending.exit_fds().map(|fd| fd.as_fd()))
            .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
            .collect();
        let timeout = pending.sleep_limit().map(|d| Timespec {
            tv_sec: 0,
            tv_nsec: d.as_nanos() as _,
        });
        // EINTR or a failure: sweep again, then sleep again.
        let _ = rustix::event::poll(&mut fds, timeout.as_ref());
        drop(fds);
        let mut counter = [0u8; 8];
        let _ = rustix::io::read(wake, &mut counter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashSet;

    /// Processes "exit" when the test says so; pidfds are eventfds.
    struct Mock {
        exited: RefCell<HashSet<i32>>,
        pidfds: bool,
    }

    impl Wait for Mock {
        fn try_reap(&self, pid: Pid) -> Option<bool> {
            self.exited
                .borrow()
                .contains(&pid.as_raw_nonzero().get())
                .then_some(true)
        }
        fn exit_fd(&self, _pid: Pid) -> Option<OwnedFd> {
            self.pidfds
                .then(|| rustix::event::eventfd(0, EventfdFlags::CLOEXEC).unwrap())
        }
    }

    fn pid(n: i32) -> Pid {
        Pid::from_raw(n).unwrap()
    }

    #[test]
    fn exited_processes_are_never_queued() {
        let mock = Mock {
            exited: RefCell::new(HashSet::from([7])),
            pidfds: true,
        };
        let mut pending = Pending::default();
        pending.add(&mock, pid(7));
        assert!(pending.entries.is_empty());
    }

    #[test]
    fn with_pidfds_the_thread_sleeps_until_woken() {
        let mock = Mock {
            exited: RefCell::default(),
            pidfds: true,
        };
        let mut pending = Pending::default();
        assert_eq!(pending.sleep_limit(), None);
        pending.add(&mock, pid(1));
        pending.add(&mock, pid(2));
        assert_eq!(pending.sleep_limit(), None);
        assert_eq!(pending.exit_fds().count(), 2);
        mock.exited.borrow_mut().insert(1);
        pending.sweep(&mock);
        assert_eq!(pending.entries.len(), 1);
        assert_eq!(pending.entries[0].0, pid(2));
    }

    #[test]
    fn without_pidfds_the_thread_polls_while_anything_is_pending() {
        let mock = Mock {
            exited: RefCell::default(),
            pidfds: false,
        };
        let mut pending = Pending::default();
        pending.add(&mock, pid(3));
        assert_eq!(pending.sleep_limit(), Some(POLL_INTERVAL));
        mock.exited.borrow_mut().insert(3);
        pending.sweep(&mock);
        assert!(pending.entries.is_empty());
        assert_eq!(pending.sleep_limit(), None);
    }

    #[test]
    fn a_real_child_is_reaped_in_the_background() {
        start().unwrap();
        let child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let raw = child.id() as i32;
        // Handed over unreaped, as a shepherd is.
        drop(child);
        reap(pid(raw));
        let gone = || !std::path::Path::new(&format!("/proc/{raw}")).exists();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !gone() {
            assert!(
                std::time::Instant::now() < deadline,
                "child {raw} not reaped"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
