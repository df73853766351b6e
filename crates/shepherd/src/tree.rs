//! The child's process tree: signalling it, finding escaped descendants,
//! reaping everything.
//!
//! The shepherd is a child subreaper, so every descendant whose parent dies is
//! re-parented to it. Once the main child is gone, every live descendant is
//! therefore either a direct child of the shepherd or below one, and
//! "`waitpid` says ECHILD" means "nothing of ours is left".

use net_runner_proto::{ExitReport, Termination};
use rustix::io::retry_on_intr;
use rustix::process::{Pid, Signal, WaitOptions};

use crate::sys;

/// Pids of the shepherd's direct children (descendants that escaped the
/// process group with `setsid` but were re-parented here show up too).
pub(crate) fn children() -> Vec<Pid> {
    let me = rustix::process::getpid();
    let path = format!("/proc/{0}/task/{0}/children", me.as_raw_pid());
    if let Ok(text) = std::fs::read_to_string(path) {
        return text.split_whitespace().filter_map(parse_pid).collect();
    }
    children_by_scan(me)
}

fn parse_pid(s: &str) -> Option<Pid> {
    Pid::from_raw(s.parse().ok()?)
}

/// Fallback when the kernel lacks `CONFIG_PROC_CHILDREN`: scan `/proc`.
fn children_by_scan(me: Pid) -> Vec<Pid> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| parse_pid(e.ok()?.file_name().to_str()?))
        .filter(|pid| {
            std::fs::read(format!("/proc/{}/stat", pid.as_raw_pid()))
                .ok()
                .and_then(|s| parse_pid(std::str::from_utf8(crate::sys::stat_field(&s, 4)?).ok()?))
                == Some(me)
        })
        .collect()
}

/// Sends `signal` to the process group and to every direct child.
pub(crate) fn signal_all(pgid: Pid, signal: Signal) {
    signal_group_and(pgid, &children(), signal);
}

/// Sends `signal` to the process group and to each of `pids` outside it.
/// Failures are ignored: a process that is gone needs no signal.
///
/// Members of the group get it once: a second SIGTERM arriving while a
/// trap handler runs would run the handler again.
pub(crate) fn signal_group_and(pgid: Pid, pids: &[Pid], signal: Signal) {
    let _ = rustix::process::kill_process_group(pgid, signal);
    for &pid in pids {
        if rustix::process::getpgid(Some(pid)).ok() != Some(pgid) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }
}

/// A change of the main child's job state (`WUNTRACED`, `WCONTINUED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobChange {
    /// Stopped by this signal.
    Stopped(i32),
    Continued,
}

/// What one non-blocking reaping pass found.
pub(crate) struct Reaped {
    /// The main child's report, if it was reaped in this pass.
    pub(crate) main: Option<ExitReport>,
    /// The main child's stops and continues seen in this pass, in order.
    pub(crate) job: Vec<JobChange>,
    /// No child of the shepherd is left.
    pub(crate) none_left: bool,
}

/// Reaps every child that has exited, without blocking, and notes the main
/// child's stops and continues (others' are of no interest).
pub(crate) fn reap_ready(main: Pid) -> Reaped {
    let mut out = Reaped {
        main: None,
        job: Vec::new(),
        none_left: false,
    };
    let options = WaitOptions::NOHANG | WaitOptions::UNTRACED | WaitOptions::CONTINUED;
    loop {
        match retry_on_intr(|| sys::wait4(None, options)) {
            Ok(Some((pid, status, usage))) => {
                if pid != main {
                    continue;
                }
                if libc::WIFSTOPPED(status) {
                    out.job.push(JobChange::Stopped(libc::WSTOPSIG(status)));
                } else if libc::WIFCONTINUED(status) {
                    out.job.push(JobChange::Continued);
                } else {
                    out.main = Some(report(status, &usage));
                }
            }
            Ok(None) => return out,
            Err(_) => {
                out.none_left = true;
                return out;
            }
        }
    }
}

/// SIGKILLs the group and every child until nothing is left, reaping all.
/// Returns the main child's report if it was reaped here.
pub(crate) fn kill_and_reap_all(pgid: Pid, main: Pid) -> Option<ExitReport> {
    let mut main_report = None;
    loop {
        signal_all(pgid, Signal::KILL);
        match wait_any(WaitOptions::empty()) {
            Ok(Some((pid, report))) => {
                if pid == main {
                    main_report = Some(report);
                }
            }
            Ok(None) => {}
            Err(_) => return main_report,
        }
    }
}

/// `wait4(-1)`: `Ok(None)` when nothing is ready (WNOHANG), `Err` on ECHILD.
fn wait_any(options: WaitOptions) -> rustix::io::Result<Option<(Pid, ExitReport)>> {
    let reaped = retry_on_intr(|| sys::wait4(None, options))?;
    Ok(reaped.map(|(pid, status, usage)| (pid, report(status, &usage))))
}

fn micros(tv: libc::timeval) -> u64 {
    (tv.tv_sec.max(0) as u64) * 1_000_000 + tv.tv_usec.max(0) as u64
}

pub(crate) fn report(status: libc::c_int, usage: &libc::rusage) -> ExitReport {
    let termination = if libc::WIFSIGNALED(status) {
        Termination::Signaled {
            signal: libc::WTERMSIG(status),
            core_dumped: libc::WCOREDUMP(status),
        }
    } else {
        Termination::Exited(libc::WEXITSTATUS(status))
    };
    ExitReport {
        termination,
        user_time_us: micros(usage.ru_utime),
        system_time_us: micros(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
        stopped: None,
    }
}
