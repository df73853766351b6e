//! The child's process tree: signalling it, finding escaped descendants,
//! reaping everything.
//!
//! The shepherd is a child subreaper, so every descendant whose parent dies is
//! re-parented to it. Once the main child is gone, every live descendant is
//! therefore either a direct child of the shepherd or below one, and
//! "`waitpid` says ECHILD" means "nothing of ours is left".

use std::io;

use net_runner_proto::{ExitReport, Termination};

use crate::sys;

/// Pids of the shepherd's direct children (descendants that escaped the
/// process group with `setsid` but were re-parented here show up too).
pub fn children() -> Vec<libc::pid_t> {
    let me = std::process::id();
    let path = format!("/proc/{me}/task/{me}/children");
    if let Ok(text) = std::fs::read_to_string(path) {
        return text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    children_by_scan(me as libc::pid_t)
}

/// Fallback when the kernel lacks `CONFIG_PROC_CHILDREN`: scan `/proc`.
fn children_by_scan(me: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // Fields after the parenthesised command name: state, ppid.
                    let rest = &s[s.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<libc::pid_t>().ok()
                })
                == Some(me)
        })
        .collect()
}

/// Sends `signal` to the process group and to every direct child.
pub fn signal_all(pgid: libc::pid_t, signal: libc::c_int) {
    signal_group_and(pgid, &children(), signal);
}

/// Sends `signal` to the process group and to each of `pids`.
pub fn signal_group_and(pgid: libc::pid_t, pids: &[libc::pid_t], signal: libc::c_int) {
    let _ = sys::kill(-pgid, signal);
    for &pid in pids {
        let _ = sys::kill(pid, signal);
    }
}

/// What one non-blocking reaping pass found.
pub struct Reaped {
    /// The main child's report, if it was reaped in this pass.
    pub main: Option<ExitReport>,
    /// No child of the shepherd is left.
    pub none_left: bool,
}

/// Reaps every child that has exited, without blocking.
pub fn reap_ready(main: libc::pid_t) -> Reaped {
    let mut out = Reaped {
        main: None,
        none_left: false,
    };
    loop {
        match wait_any(libc::WNOHANG) {
            Ok(Some((pid, report))) => {
                if pid == main {
                    out.main = Some(report);
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
pub fn kill_and_reap_all(pgid: libc::pid_t, main: libc::pid_t) -> Option<ExitReport> {
    let mut main_report = None;
    loop {
        signal_all(pgid, libc::SIGKILL);
        match wait_any(0) {
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
fn wait_any(flags: libc::c_int) -> io::Result<Option<(libc::pid_t, ExitReport)>> {
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = sys::retry(|| sys::cvt(unsafe { libc::wait4(-1, &mut status, flags, &mut usage) }))?;
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some((pid, report(status, &usage))))
}

fn micros(tv: libc::timeval) -> u64 {
    (tv.tv_sec.max(0) as u64) * 1_000_000 + tv.tv_usec.max(0) as u64
}

fn report(status: libc::c_int, usage: &libc::rusage) -> ExitReport {
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
    }
}
