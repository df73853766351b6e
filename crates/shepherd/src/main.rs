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

mod child;
mod control;
#[allow(unsafe_code)]
mod sys;
#[cfg(test)]
mod tests;
mod tree;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use net_runner_proto::{
    check_version, ExitReport, FromShepherd, SpawnRequest, ToShepherd, CONTROL_FD,
};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::{retry_on_intr, Errno};
use rustix::process::{Pid, Signal};

use control::Control;
use sys::Disposition;

fn main() {
    match run() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("netrunner-shepherd: {e}");
            std::process::exit(2)
        }
    }
}

fn run() -> io::Result<()> {
    // fds 0-2 are open: std opens /dev/null on any that is closed before
    // `main`, so no pipe we create lands on them.
    let no_control = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("no control socket on fd {CONTROL_FD} ({e}); this program is started by the net_runner library"),
        )
    };
    let control_fd = sys::claim_inherited(CONTROL_FD).map_err(|e| no_control(e.into()))?;
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
    control.queue(&FromShepherd::hello());
    if let Err(e) = subreaper {
        return refuse(
            &mut control,
            format!("cannot become a child subreaper (prctl: {e}): escaped descendants could not be cleaned up"),
        );
    }
    if req.pty.is_some() {
        return refuse(
            &mut control,
            "PTY mode is not supported by this shepherd yet".into(),
        );
    }
    let started = match child::start(&req) {
        Ok(s) => s,
        Err((stage, errno)) => {
            control.queue(&FromShepherd::SpawnFailed { stage, errno });
            let _ = control.flush(&[]);
            return Ok(());
        }
    };
    let mut shepherd = Shepherd {
        control,
        sigfd,
        pid: started.pid,
        exit: None,
        exit_sent: false,
        owner_gone: false,
        deadline: None,
        kill_timeout: Duration::from_millis(req.kill_timeout_ms),
        kill_leftovers: req.kill_leftovers,
        terminated: Vec::new(),
    };
    // `start` returns once the child has exec'd: hand over its pipes now.
    shepherd.send_spawned(started.library_fds);
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

/// The running state: one child, its tree, and the owner's channel.
struct Shepherd {
    control: Control,
    sigfd: OwnedFd,
    /// The child's pid, which is also its process group id.
    pid: Pid,
    exit: Option<ExitReport>,
    exit_sent: bool,
    owner_gone: bool,
    /// When SIGTERM was sent: the moment to SIGKILL what is left.
    deadline: Option<Instant>,
    /// Children already sent SIGTERM by `terminate`.
    terminated: Vec<Pid>,
    kill_timeout: Duration,
    kill_leftovers: bool,
}

impl Shepherd {
    fn run(mut self) -> io::Result<()> {
        loop {
            if self.exit.is_some() && !self.exit_sent {
                self.send_exit();
                if self.kill_leftovers {
                    self.terminate();
                } else if self.deadline.is_none() {
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
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return self.finish_by_sigkill();
            }
            self.terminate_adopted();
            if ready.signal {
                self.on_signals();
            }
            if ready.control {
                self.on_control();
            }
        }
    }

    fn poll(&self) -> io::Result<Ready> {
        let mut fds = [
            PollFd::new(&self.sigfd, PollFlags::IN),
            PollFd::from_borrowed_fd(self.control.fd(), PollFlags::IN),
        ];
        let watched = if self.owner_gone { 1 } else { 2 };
        // While terminating, wake at least every 50 ms: an adoption (a
        // grandchild whose parent died) sends us no signal of its own.
        let timeout = self.deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            let ms = left.min(ADOPTION_CHECK).as_millis() as i64 + 1;
            Timespec {
                tv_sec: 0,
                tv_nsec: ms * 1_000_000,
            }
        });
        retry_on_intr(|| rustix::event::poll(&mut fds[..watched], timeout.as_ref()))?;
        // An unwatched slot keeps empty revents.
        let [signal, control] = fds.map(|f| !f.revents().is_empty());
        Ok(Ready { signal, control })
    }

    /// Sends `Spawned` with the library's ends of the pipes, then closes
    /// them here: we keep no copy, so EOF and close are the library's.
    fn send_spawned(&mut self, library_fds: Vec<OwnedFd>) {
        let fds: Vec<_> = library_fds.iter().map(|f| f.as_fd()).collect();
        self.control.queue(&FromShepherd::Spawned {
            pid: self.pid.as_raw_pid(),
            fds: fds.len() as u8,
        });
        if self.control.flush(&fds).is_err() {
            self.owner_gone = true;
            self.terminate();
        }
    }

    fn on_signals(&mut self) {
        let signals = sys::read_signals(&self.sigfd);
        if signals.contains(&(libc::SIGTERM as u32)) {
            // Someone asks the shepherd itself to stop: clean up the tree.
            self.terminate();
        }
        let reaped = tree::reap_ready(self.pid);
        if let Some(report) = reaped.main {
            self.exit = Some(report);
        }
    }

    fn on_control(&mut self) {
        for msg in self.control.read_frames() {
            match msg {
                None => {
                    self.owner_gone = true;
                    self.terminate();
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
                Some(Ok(ToShepherd::Shutdown)) => self.terminate(),
                Some(Ok(ToShepherd::SetWindowSize(_))) => {
                    self.reply_error("not a PTY session".into());
                }
                Some(Ok(other)) => self.reply_error(format!("unexpected message {other:?}")),
                Some(Err(e)) => {
                    // The stream is out of sync: treat it as the owner gone.
                    self.owner_gone = true;
                    self.reply_error(format!("protocol error: {e}"));
                    self.terminate();
                    return;
                }
            }
        }
    }

    fn reply_error(&mut self, message: String) {
        self.control.queue(&FromShepherd::Error { message });
        let _ = self.control.flush(&[]);
    }

    /// SIGTERM the tree (once) and arm the SIGKILL deadline.
    fn terminate(&mut self) {
        if self.deadline.is_none() {
            // One snapshot, so that a child adopted meanwhile is not
            // recorded as signalled without having been.
            let children = tree::children();
            tree::signal_group_and(self.pid, &children, Signal::TERM);
            // A stopped process only sees SIGTERM once continued.
            tree::signal_group_and(self.pid, &children, Signal::CONT);
            self.terminated = children;
            self.deadline = Some(Instant::now() + self.kill_timeout);
        }
    }

    /// While terminating: descendants that escaped the group (`setsid`) are
    /// adopted by us only when their parent dies, after the first SIGTERM
    /// round. Give each newcomer its SIGTERM (once) instead of leaving it
    /// for the SIGKILL at the deadline.
    fn terminate_adopted(&mut self) {
        if self.deadline.is_none() {
            return;
        }
        for pid in tree::children() {
            if !self.terminated.contains(&pid) {
                let _ = rustix::process::kill_process(pid, Signal::TERM);
                let _ = rustix::process::kill_process(pid, Signal::CONT);
                self.terminated.push(pid);
            }
        }
    }

    fn finish_by_sigkill(&mut self) -> io::Result<()> {
        if let Some(report) = tree::kill_and_reap_all(self.pid, self.pid) {
            self.exit = Some(report);
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
            self.control.queue(&FromShepherd::Exited(report));
            if self.control.flush(&[]).is_err() {
                self.owner_gone = true;
            }
            self.exit_sent = true;
        }
    }
}

struct Ready {
    signal: bool,
    control: bool,
}
