//! Test helpers: unique markers to find our own processes, and guards.
//!
//! Every test process gets `NETRUNNER_TEST_MARKER=<unique>` in its
//! environment, so a test can prove that nothing of its own survived by
//! scanning `/proc/*/environ` — and clean up by pid, never by name.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const MARKER_VAR: &str = "NETRUNNER_TEST_MARKER";

/// Generous guard against hangs on a loaded 2-core machine; never a speed
/// assertion.
pub const GUARD: Duration = Duration::from_secs(30);

/// A marker unique to this call. Dropping it SIGKILLs (by pid) whatever
/// still carries it, so even a failing test leaves the machine clean.
pub fn marker() -> Marker {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    Marker(format!(
        "nrtest-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    ))
}

pub struct Marker(String);

impl std::ops::Deref for Marker {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Marker {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        cleanup(&self.0);
    }
}

/// Pids of live (non-zombie) processes whose environment holds the marker.
pub fn pids_with_marker(marker: &str) -> Vec<i32> {
    let needle = format!("{MARKER_VAR}={marker}");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.split(|&b| b == 0).any(|e| e == needle.as_bytes()) && !is_zombie(pid) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// The process state letter from `/proc/PID/stat` ('Z' for a zombie).
pub fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

pub fn is_zombie(pid: i32) -> bool {
    state(pid) == Some('Z')
}

/// Whether `pid` exists at all (zombie included).
pub fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Polls until `cond` holds or the guard expires; returns whether it held.
pub fn eventually(guard: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > guard {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until no process carries the marker; on failure SIGKILLs the
/// survivors by pid (so the machine stays clean) and returns their pids.
pub fn assert_all_gone(marker: &str, guard: Duration) {
    if eventually(guard, || pids_with_marker(marker).is_empty()) {
        return;
    }
    let left = pids_with_marker(marker);
    kill_pids(&left);
    panic!("processes with marker {marker} survived: {left:?}");
}

/// Cleanup by pid.
pub fn kill_pids(pids: &[i32]) {
    for &pid in pids {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Kills whatever carries the marker (end-of-test cleanup).
pub fn cleanup(marker: &str) {
    kill_pids(&pids_with_marker(marker));
}

/// Direct children of this test process, with their states.
pub fn children() -> Vec<(i32, char)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut fields = stat[close + 2..].split_whitespace();
        let st = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: i32 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == me {
            out.push((pid, st));
        }
    }
    out
}

/// Number of open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}
