//! `netrunner-shepherd`: one per command, started by the `net_runner` library.
//!
//! It finds its control socket on fd 3, reads `Hello` and `Spawn`, starts the
//! child, hands the pipe ends to the library, reports the child's exit, and
//! makes sure nothing of the child's tree outlives the owner: when the
//! control socket hangs up (the owner is gone, however it died) it sends
//! SIGTERM to the tree, waits the kill timeout, SIGKILLs what is left, reaps
//! everything and exits.
//!
//! Single-threaded, one `poll` loop, never blocked on anything but `poll`.
//!
//! It starts two ways: as the `netrunner-shepherd` binary that `net_runner`
//! embeds and execs ([`main`]), or as a fork of a single-threaded owner
//! ([`serve_forked`], `net_runner::prefork_shepherd`), which saves the
//! exec. Both run the same code from the control socket on.
//!
//! System calls go through rustix; what rustix lacks is in `sys`, the only
//! module allowed `unsafe`.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(unreachable_pub)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "netrunner-shepherd runs on Linux only: it needs signalfd, child subreapers, \
     PR_SET_PDEATHSIG, /proc and clone(CLONE_VM | CLONE_VFORK)"
);

mod cgroup;
mod child;
mod control;
mod pty;
#[allow(unsafe_code)]
mod sys;
#[cfg(test)]
mod tests;
mod tree;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use net_runner_proto::{
    check_version, ExitReport, FromShepherd, SpawnRequest, StdioMode, StopAction, StopCause,
    StopStep, ToShepherd, CONTROL_FD,
};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::{retry_on_intr, Errno};
use rustix::process::{Pid, Signal};

use control::Control;
use sys::Disposition;

/// The entry point of the `netrunner-shepherd` binary: serves the control
/// socket on fd 3, then exits (0, or 2 after printing what went wrong).
#[doc(hidden)]
pub fn main() -> ! {
    std::process::exit(exit_code(run(Launch::Exec)))
}

/// Runs the shepherd in the child of a `fork` of its owner, with `control`
/// as its control socket, and ends that process: never returns into the
/// owner's code.
///
/// The caller forks a process that had a single thread, so everything the
/// child copied is consistent. The child then looks exactly like an exec'd
/// shepherd before `run`: control socket on fd 3 and nothing else above
/// it, `/dev/null` on stdin and stdout, the owner's stderr, no signal
/// blocked. It ends with `_exit`: the owner's buffered output and
/// destructors are the owner's, not to be run twice.
#[doc(hidden)]
pub fn serve_forked(control: std::os::fd::OwnedFd) -> ! {
    let code = match sys::become_forked_shepherd(control) {
        Ok(()) => std::panic::catch_unwind(|| exit_code(run(Launch::Forked))).unwrap_or(101),
        Err(e) => exit_code(Err(e.into())),
    };
    sys::exit_now(code)
}

/// How this shepherd was started.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Launch {
    /// The embedded binary, exec'd with the program in its argv.
    Exec,
    /// A fork of the owner, whose command line `ps` would show: replaced by
    /// ours once the program is known.
    Forked,
}

fn exit_code(result: io::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("netrunner-shepherd: {e}");
            2
        }
    }
}

fn run(launch: Launch) -> io::Result<()> {
    // fds 0-2 are open: std opens /dev/null on any that is closed before
    // `main`, so no pipe we create lands on them.
    let no_control = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("no control socket on fd {CONTROL_FD} ({e}); this program is started by the net_runner library"),
        )
    };
    let control_fd = sys::claim_inherited(CONTROL_FD).map_err(|e| no_control(e.into()))?;
    // Exec'd through /proc/self/fd/N, we would be "N" in `ps -e`, forked
    // the owner's name; the kernel keeps 15 bytes of it.
    let _ = rustix::thread::set_name(c"netrunner-shepherd");
    let mut control = Control::new(control_fd).map_err(no_control)?;
    // Descendants that escape the process group come back to us. Without
    // it they could outlive the owner: reported at the spawn below.
    let subreaper = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    // Ignored signals stay ignored across exec: drop whatever the owner
    // ignored (Rust ignores SIGPIPE, nohup SIGHUP), so the child only has
    // to undo our own list below.
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            sys::reset_signal_raw(sig)?;
        }
    }
    // Terminal signals meant for the owner's group must not kill the
    // shepherd: without it, nothing would clean up the child.
    for &sig in child::SHEPHERD_IGNORES {
        sys::set_disposition(sig, Disposition::Ignore)?;
    }
    let sigfd = sys::signalfd(&[libc::SIGCHLD, libc::SIGTERM])?;

    let Some(req) = read_spawn_request(&mut control, &sigfd)? else {
        return Ok(()); // the owner left before asking for anything
    };
    if launch == Launch::Forked {
        sys::set_command_line(&[b"netrunner-shepherd", &req.program]);
    }
    control.queue(&FromShepherd::hello());
    if let Err(e) = subreaper {
        return refuse(
            &mut control,
            format!("cannot become a child subreaper (prctl: {e}): escaped descendants could not be cleaned up"),
        );
    }
    if let Some(size) = req.pty {
        if let Err(reason) = pty::check_size(size) {
            return refuse(&mut control, reason);
        }
    }
    let Some(fds) = control.take_fds(req.passed_fds()) else {
        return refuse(
            &mut control,
            format!(
                "the request names {} passed descriptors, fewer arrived",
                req.passed_fds()
            ),
        );
    };
    let passed = child::Passed::new(&req, fds);
    let mut cgroup = match &req.cgroup {
        None => None,
        Some(_) if !req.kill_leftovers => {
            return refuse(
                &mut control,
                "a cgroup cannot be combined with keeping leftovers: it would outlive the command"
                    .into(),
            );
        }
        Some(spec) => match cgroup::Cgroup::setup(spec) {
            Ok(c) => Some(c),
            Err((step, errno, path)) => {
                control.queue(&FromShepherd::CgroupFailed { step, errno, path });
                let _ = control.flush(&[]);
                return Ok(());
            }
        },
    };
    let procs = cgroup.as_ref().map_or(&[][..], |c| c.procs());
    let started = match child::start(&req, &passed, procs) {
        Ok(s) => s,
        Err(failure) => {
            control.queue(&match failure {
                child::StartFailure::Stage((stage, errno)) => {
                    FromShepherd::SpawnFailed { stage, errno }
                }
                child::StartFailure::Interpreter {
                    program,
                    interpreter,
                } => FromShepherd::InterpreterNotFound {
                    program,
                    interpreter,
                },
            });
            let _ = control.flush(&[]);
            if let Some(c) = &mut cgroup {
                c.teardown(|| {});
            }
            return Ok(());
        }
    };
    if let Some(c) = &mut cgroup {
        c.close_procs();
    }
    // The child has its copies: ours would keep a terminal or a pipe of
    // the owner's open for as long as we live.
    drop(passed);
    let now = Instant::now();
    // No spare in PTY mode: the one descriptor sent is the master, of which
    // we keep no copy (see `pty`).
    let outputs = [req.stdout, req.stderr]
        .iter()
        .enumerate()
        .filter(|(_, mode)| **mode == StdioMode::Pipe && req.pty.is_none())
        .map(|(i, _)| i as u8 + 1)
        .collect();
    let mut shepherd = Shepherd {
        control,
        sigfd,
        pid: started.pid,
        exit: None,
        exit_sent: false,
        owner_gone: false,
        deadline: req
            .timeout_ms
            .and_then(|ms| now.checked_add(Duration::from_millis(ms))),
        stop: None,
        stop_sequence: req.effective_stop_sequence(),
        kill_leftovers: req.kill_leftovers,
        terminated: Vec::new(),
        spare: Vec::new(),
        cgroup,
    };
    // `start` returns once the child has exec'd: hand over its pipes now.
    shepherd.send_spawned(started.library_fds, outputs);
    shepherd.run()
}

/// Answers the spawn request with an `Error` frame and ends the shepherd.
fn refuse(control: &mut Control, message: String) -> io::Result<()> {
    control.queue(&FromShepherd::Error { message });
    let _ = control.flush(&[]);
    Ok(())
}

/// Reads frames until `Hello` and `Spawn` have arrived. `Ok(None)` if the
/// owner hung up first.
fn read_spawn_request(control: &mut Control, sigfd: &OwnedFd) -> io::Result<Option<SpawnRequest>> {
    let mut hello = false;
    loop {
        for msg in control.wait_frames(sigfd.as_fd())? {
            match msg {
                None => return Ok(None),
                Some(Err(e)) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                Some(Ok(ToShepherd::Hello { version })) if !hello => {
                    if let Err(e) = check_version(version) {
                        control.queue(&FromShepherd::hello());
                        control.queue(&FromShepherd::Error {
                            message: e.to_string(),
                        });
                        let _ = control.flush(&[]);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                    hello = true;
                }
                Some(Ok(ToShepherd::Spawn(req))) if hello => return Ok(Some(req)),
                Some(Ok(other)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unexpected {other:?} before spawn"),
                    ))
                }
            }
        }
    }
}

/// How often a terminating shepherd looks for newly adopted descendants.
const ADOPTION_CHECK: Duration = Duration::from_millis(50);

/// A stop sequence under way.
struct Stopping {
    /// Why it started; `None` for the cleanup of leftovers after the exit.
    cause: Option<StopCause>,
    /// The next step to run (`steps.len()`: the final SIGKILL).
    next: usize,
    /// When to run it.
    next_at: Instant,
    /// The last signal sent, which newly adopted descendants get too.
    last_signal: Option<i32>,
}

/// The running state: one child, its tree, and the owner's channel.
struct Shepherd {
    control: Control,
    sigfd: OwnedFd,
    /// The child's pid, which is also its process group id.
    pid: Pid,
    exit: Option<ExitReport>,
    exit_sent: bool,
    owner_gone: bool,
    /// The request's overall time limit: when to start the stop sequence.
    deadline: Option<Instant>,
    /// The stop sequence, once started.
    stop: Option<Stopping>,
    stop_sequence: Vec<StopStep>,
    /// Children already signalled by the stop sequence.
    terminated: Vec<Pid>,
    kill_leftovers: bool,
    /// Our own copies of the read ends of the child's stdout (1) and
    /// stderr (2). Never read while the owner is there (the data is the
    /// library's); they keep the pipes open, so that a child writing while
    /// it shuts down never dies of SIGPIPE, and once the owner is gone we
    /// drain them until end of file. Closed early on `ReleaseOutput`.
    spare: Vec<(u8, OwnedFd)>,
    /// The child's cgroup: its members are signalled with the tree, killed
    /// at the end, and its directories removed when the shepherd is done
    /// (in `Drop`, after the exit report went out).
    cgroup: Option<cgroup::Cgroup>,
}

impl Drop for Shepherd {
    fn drop(&mut self) {
        if let Some(mut cgroup) = self.cgroup.take() {
            let pid = self.pid;
            cgroup.teardown(|| {
                let _ = tree::reap_ready(pid);
            });
        }
    }
}

impl Shepherd {
    fn run(mut self) -> io::Result<()> {
        loop {
            if self.exit.is_some() && !self.exit_sent {
                self.send_exit();
                if self.kill_leftovers {
                    self.terminate(None);
                } else if self.stop.is_none() {
                    // Leftovers may live on; but a termination already under
                    // way (owner gone, shutdown, timeout) still ends in
                    // SIGKILL for whatever ignores SIGTERM.
                    return Ok(());
                }
            }
            if self.exit.is_some()
                && (self.exit_sent || self.owner_gone)
                && tree::reap_ready(self.pid).none_left
            {
                return Ok(());
            }

            let ready = self.poll()?;
            let now = Instant::now();
            if self.exit.is_none() && self.deadline.is_some_and(|d| now >= d) {
                self.terminate(Some(StopCause::Deadline));
            }
            if let Some(done) = self.advance_stop(now) {
                return done;
            }
            self.terminate_adopted();
            if ready.signal {
                self.on_signals();
            }
            if ready.control {
                self.on_control();
            }
            self.drain(&ready.spare);
        }
    }

    /// The next moment something is due: the deadline, the next stop step,
    /// and while stopping, the next look for adopted descendants.
    fn wake_at(&self) -> Option<Instant> {
        let deadline = self
            .deadline
            .filter(|_| self.exit.is_none() && self.stop.is_none());
        let step = self
            .stop
            .as_ref()
            .map(|s| s.next_at.min(Instant::now() + ADOPTION_CHECK));
        match (deadline, step) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll(&self) -> io::Result<Ready> {
        let draining = self.owner_gone;
        let mut fds = vec![PollFd::new(&self.sigfd, PollFlags::IN)];
        if !self.owner_gone {
            fds.push(PollFd::from_borrowed_fd(self.control.fd(), PollFlags::IN));
        }
        if draining {
            for (_, fd) in &self.spare {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
        }
        let timeout = self.wake_at().map(|at| {
            // Rounded up, so that we never wake just before the moment.
            let left = at.saturating_duration_since(Instant::now()) + Duration::from_millis(1);
            Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            }
        });
        retry_on_intr(|| rustix::event::poll(&mut fds, timeout.as_ref()))?;
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        let control = !self.owner_gone && ready[1];
        let spare = if draining {
            ready[1..].to_vec()
        } else {
            Vec::new()
        };
        Ok(Ready {
            signal: ready[0],
            control,
            spare,
        })
    }

    /// Once the owner is gone: reads and discards what the child writes,
    /// closing each spare end at end of file.
    fn drain(&mut self, ready: &[bool]) {
        let mut buf = [0u8; 16 * 1024];
        let mut i = 0;
        self.spare.retain(|(_, fd)| {
            let is_ready = ready.get(i).copied().unwrap_or(false);
            i += 1;
            if !is_ready {
                return true;
            }
            match retry_on_intr(|| rustix::io::read(fd, &mut buf)) {
                Ok(0) => false,
                Ok(_) | Err(Errno::AGAIN) => true,
                Err(_) => false,
            }
        });
    }

    /// Sends `Spawned` with the library's ends of the pipes. We keep the
    /// read ends of stdout and stderr (`outputs`: 1, 2) as spares; the
    /// stdin end is closed here, so that end of file on stdin is the
    /// library's.
    fn send_spawned(&mut self, library_fds: Vec<OwnedFd>, outputs: Vec<u8>) {
        let fds: Vec<_> = library_fds.iter().map(|f| f.as_fd()).collect();
        self.control.queue(&FromShepherd::Spawned {
            pid: self.pid.as_raw_pid(),
            fds: fds.len() as u8,
        });
        let sent = self.control.flush(&fds);
        let skip = library_fds.len() - outputs.len();
        self.spare = outputs
            .into_iter()
            .zip(library_fds.into_iter().skip(skip))
            .collect();
        if sent.is_err() {
            self.owner_gone = true;
            self.terminate(Some(StopCause::OwnerGone));
        }
    }

    fn on_signals(&mut self) {
        let signals = sys::read_signals(&self.sigfd);
        if signals.contains(&(libc::SIGTERM as u32)) {
            // Someone asks the shepherd itself to stop: clean up the tree.
            self.terminate(Some(StopCause::Signalled));
        }
        let reaped = tree::reap_ready(self.pid);
        if self.exit.is_none() && !self.owner_gone && !reaped.job.is_empty() {
            for change in &reaped.job {
                self.control.queue(&match *change {
                    tree::JobChange::Stopped(signal) => FromShepherd::ChildStopped { signal },
                    tree::JobChange::Continued => FromShepherd::ChildContinued,
                });
            }
            let _ = self.control.flush(&[]);
        }
        if let Some(report) = reaped.main {
            self.record_exit(report);
        }
    }

    fn record_exit(&mut self, mut report: ExitReport) {
        report.stopped = self.stop.as_ref().and_then(|s| s.cause);
        self.exit = Some(report);
    }

    fn on_control(&mut self) {
        for msg in self.control.read_frames() {
            match msg {
                None => {
                    self.owner_gone = true;
                    self.terminate(Some(StopCause::OwnerGone));
                    return;
                }
                Some(Ok(ToShepherd::Signal { signal })) => {
                    if self.exit.is_none() {
                        match sys::kill_process_group_raw(self.pid, signal) {
                            // Nobody left in the group: the exit report is on its way.
                            Ok(()) | Err(Errno::SRCH) => {}
                            Err(e) => self.reply_error(format!("signal {signal}: {e}")),
                        }
                    }
                }
                Some(Ok(ToShepherd::Shutdown)) => self.terminate(Some(StopCause::Requested)),
                Some(Ok(ToShepherd::ReleaseOutput { fd })) => {
                    self.spare.retain(|(which, _)| *which != fd);
                }
                Some(Ok(ToShepherd::SetWindowSize(_))) => {
                    self.reply_error(
                        "SetWindowSize: the shepherd keeps no copy of the PTY master; \
                         the library resizes through its own"
                            .into(),
                    );
                }
                Some(Ok(other)) => self.reply_error(format!("unexpected message {other:?}")),
                Some(Err(e)) => {
                    // The stream is out of sync: treat it as the owner gone.
                    self.owner_gone = true;
                    self.reply_error(format!("protocol error: {e}"));
                    self.terminate(Some(StopCause::OwnerGone));
                    return;
                }
            }
        }
    }

    fn reply_error(&mut self, message: String) {
        self.control.queue(&FromShepherd::Error { message });
        let _ = self.control.flush(&[]);
    }

    /// Starts the stop sequence (once): its first step runs now.
    fn terminate(&mut self, cause: Option<StopCause>) {
        if self.stop.is_none() {
            self.stop = Some(Stopping {
                cause,
                next: 0,
                next_at: Instant::now(),
                last_signal: None,
            });
            let _ = self.advance_stop(Instant::now());
        }
    }

    /// Runs the steps of the stop sequence that are due. `Some` when the
    /// final SIGKILL was sent and everything reaped: the shepherd is done.
    fn advance_stop(&mut self, now: Instant) -> Option<io::Result<()>> {
        loop {
            let stop = self.stop.as_mut()?;
            if now < stop.next_at {
                return None;
            }
            let Some(step) = self.stop_sequence.get(stop.next).copied() else {
                return Some(self.finish_by_sigkill());
            };
            stop.next += 1;
            stop.next_at = now + Duration::from_millis(step.wait_ms);
            match step.action {
                StopAction::Signal(signal) => {
                    stop.last_signal = Some(signal);
                    self.signal_tree(signal);
                }
                StopAction::CloseStdin => {
                    if !self.owner_gone {
                        self.control.queue(&FromShepherd::CloseStdin);
                        let _ = self.control.flush(&[]);
                    }
                }
            }
        }
    }

    /// Sends `signal` (and SIGCONT: a stopped process only sees it once
    /// continued) to the group and to every child of ours.
    fn signal_tree(&mut self, signal: i32) {
        // One snapshot, so that a child adopted meanwhile is not recorded
        // as signalled without having been.
        let mut children = tree::children();
        // Members of the cgroup that are neither in the group nor our
        // children (a `setsid` daemon whose parent still lives).
        if let Some(cgroup) = &self.cgroup {
            for pid in cgroup.members() {
                if !children.contains(&pid) {
                    children.push(pid);
                }
            }
        }
        if let Some(sig) = signal_from_raw(signal) {
            tree::signal_group_and(self.pid, &children, sig);
        }
        tree::signal_group_and(self.pid, &children, Signal::CONT);
        self.terminated = children;
    }

    /// While stopping: descendants that escaped the group (`setsid`) are
    /// adopted by us only when their parent dies, after the first signal
    /// round. Give each newcomer the last signal sent (once) instead of
    /// leaving it for the SIGKILL at the end.
    fn terminate_adopted(&mut self) {
        let Some(signal) = self.stop.as_ref().and_then(|s| s.last_signal) else {
            return;
        };
        let sig = signal_from_raw(signal);
        for pid in tree::children() {
            if !self.terminated.contains(&pid) {
                if let Some(sig) = sig {
                    let _ = rustix::process::kill_process(pid, sig);
                }
                let _ = rustix::process::kill_process(pid, Signal::CONT);
                self.terminated.push(pid);
            }
        }
    }

    fn finish_by_sigkill(&mut self) -> io::Result<()> {
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill_all();
        }
        if let Some(report) = tree::kill_and_reap_all(self.pid, self.pid) {
            self.record_exit(report);
        }
        // Even after a protocol error the owner may be listening: a failed
        // send costs nothing.
        if !self.exit_sent {
            self.send_exit();
        }
        Ok(())
    }

    fn send_exit(&mut self) {
        if let Some(report) = self.exit {
            // Read now, before anything is killed or removed; one write
            // with the exit report.
            if let Some(cgroup) = &self.cgroup {
                self.control
                    .queue(&FromShepherd::CgroupStats(cgroup.report()));
            }
            self.control.queue(&FromShepherd::Exited(report));
            if self.control.flush(&[]).is_err() {
                self.owner_gone = true;
            }
            self.exit_sent = true;
        }
    }
}

/// A signal number as rustix's type; `None` for numbers it cannot name
/// (the library only sends valid ones).
fn signal_from_raw(signal: i32) -> Option<Signal> {
    Signal::from_named_raw(signal)
}

struct Ready {
    signal: bool,
    control: bool,
    /// Spare output ends that are readable (or hung up).
    spare: Vec<bool>,
}
