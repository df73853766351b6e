//! What the harness reads from `/proc` and the few libc calls it makes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::Res;

/// A `kB` field of `/proc/PID/status` or `/proc/PID/smaps_rollup`, in KiB.
fn kib_field(path: &str, field: &str) -> Res<u64> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .ok_or_else(|| format!("{path}: no {field}").into())
}

/// Resident set size in KiB (`VmRSS`); `pid` 0 is this process.
pub(crate) fn rss_kib(pid: u32) -> Res<u64> {
    kib_field(&format!("{}/status", proc_dir(pid)), "VmRSS")
}

/// Proportional and unique (private) set size in KiB, from `smaps_rollup`.
pub(crate) fn pss_uss_kib(pid: u32) -> Res<(u64, u64)> {
    let path = format!("{}/smaps_rollup", proc_dir(pid));
    let pss = kib_field(&path, "Pss")?;
    let uss = kib_field(&path, "Private_Clean")? + kib_field(&path, "Private_Dirty")?;
    Ok((pss, uss))
}

fn proc_dir(pid: u32) -> String {
    if pid == 0 {
        "/proc/self".into()
    } else {
        format!("/proc/{pid}")
    }
}

/// Open descriptors of this process.
pub(crate) fn fd_count() -> Res<usize> {
    // The directory handle itself is one of them while we count.
    Ok(std::fs::read_dir("/proc/self/fd")?
        .count()
        .saturating_sub(1))
}

/// Direct children of every thread of this process (zombies included).
pub(crate) fn children() -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Waits until this process has no children left (net_runner reaps its
/// shepherds on a background thread), up to `limit`.
pub(crate) fn wait_no_children(limit: Duration) -> Vec<u32> {
    wait_children_at_most(0, limit)
}

/// Waits until this process has at most `n` children (e.g. the idle
/// pre-started shepherds), up to `limit`; returns the children left.
pub(crate) fn wait_children_at_most(n: usize, limit: Duration) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let left = children();
        if left.len() <= n || start.elapsed() >= limit {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Raises the soft descriptor limit to the hard one (256 concurrent runs
/// hold ~1000 descriptors).
pub(crate) fn raise_nofile() {
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// `F_SETPIPE_SZ`; returns the new size.
pub(crate) fn grow_pipe(fd: std::os::fd::RawFd, size: i32) -> Res<i32> {
    let r = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size) };
    if r < 0 {
        Err(std::io::Error::last_os_error().into())
    } else {
        Ok(r)
    }
}

/// `PATH` lookup, so that every contender execs the same absolute path.
pub(crate) fn which(name: &str) -> Res<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| format!("{name} not found in PATH").into())
}

pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The 1-minute load average.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            let v: Vec<&str> = s.split_whitespace().take(3).collect();
            (v.len() == 3).then(|| v.join(" "))
        })
        .unwrap_or_else(|| "?".into())
}

pub(crate) fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|x| x.1.trim().to_string())
            })
        })
        .unwrap_or_else(|| "?".into())
}

pub(crate) fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
