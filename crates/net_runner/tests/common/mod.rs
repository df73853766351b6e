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

/// Every pid listed in `/proc`.
pub fn proc_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

/// Pids of live (non-zombie) processes whose environment holds the marker.
pub fn pids_with_marker(marker: &str) -> Vec<i32> {
    let needle = format!("{MARKER_VAR}={marker}");
    let mut pids = Vec::new();
    for pid in proc_pids() {
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
    for pid in proc_pids() {
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

/// Asserts that `pid` ends up with exactly fds 0, 1 and 2. Polls up to the
/// guard: a starting program may briefly hold a file open (`sleep` opens
/// the locale archive), while a leaked descriptor never goes away.
pub fn assert_only_standard_fds(pid: i32) {
    let fds = || {
        let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        fds.sort();
        fds
    };
    assert!(
        eventually(GUARD, || fds() == ["0", "1", "2"]),
        "fds of {pid}: {:?}",
        fds()
    );
}

/// The fd count once no shepherd is waiting to be reaped (the reaper
/// holds a pidfd for each until then).
pub fn settled_fd_count() -> usize {
    assert!(
        eventually(GUARD, || net_runner::pending_reaps() == 0),
        "shepherds never reaped"
    );
    fd_count()
}

/// Number of open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Starts a copy of this test binary that runs only the test `name`, with
/// `envs` set and stdout piped. The helper test returns at once unless its
/// environment variable is set, so in a normal run it is an empty pass.
/// This is how a test gets a process it may SIGKILL or constrain (rlimits)
/// without touching the shared test process.
pub fn reexec(name: &str, envs: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .stdout(std::process::Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Reads lines until one contains `tag`; returns what follows it on that
/// line, or `None` at end of output. (The test harness prints its own
/// `test NAME ... ` before a helper's first line, so `tag` is searched
/// anywhere in the line.)
pub fn line_with(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    tag: &str,
) -> Option<String> {
    lines
        .map_while(Result::ok)
        .find_map(|l| Some(l.split_once(tag)?.1.trim().to_owned()))
}

/// Resident set size of this process, KiB.
pub fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The parent pid of `pid`.
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The `wchar` line of `/proc/PID/io`: bytes the process has passed to
/// `write` so far (0 once it is gone).
pub fn wchar(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Runs the helper test `name` in a copy of this binary (see [`reexec`]),
/// collects its stdout and waits for it; kills it (by pid) and panics if it
/// is not done within `guard`.
pub fn run_helper(
    name: &str,
    envs: &[(&str, &str)],
    guard: Duration,
) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut child = reexec(name, envs);
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + guard;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("helper {name} did not finish within {guard:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
}

/// What a load test compares before and after: open descriptors, threads,
/// and direct children (zombies included) of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub fds: usize,
    pub threads: usize,
    pub children: usize,
}

pub fn footprint() -> Footprint {
    Footprint {
        fds: fd_count(),
        threads: thread_count(),
        children: children().len(),
    }
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` (as far as the hard
/// limit allows); returns the soft limit in force. For load tests in their
/// own binary only: it changes the whole test process.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if lim.rlim_cur < want {
        lim.rlim_cur = want.min(lim.rlim_max);
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
    lim.rlim_cur
}

/// Creates what the library creates once per process — the installed
/// shepherd, the reaper thread (started by the first shepherd that is not
/// reaped at once: one dropped while its child runs), the pre-start thread
/// and its idle shepherd — so that a load test's "before" already has them.
pub async fn warm_up() {
    net_runner::Command::new("true").run().await.unwrap();
    let p = net_runner::Command::new("sleep")
        .arg("1000")
        .kill_timeout(Duration::from_millis(100))
        .spawn()
        .await
        .unwrap();
    drop(p);
    assert!(eventually(GUARD, || net_runner::prestarted_idle() == 1
        && children().len() == 1));
}

/// Everything a process writes to stdout until end of output (which must
/// come within the guard).
pub async fn read_all(p: &mut net_runner::Process) -> Vec<u8> {
    let mut out = Vec::new();
    let all = async {
        while let Some(chunk) = p.read().await.unwrap() {
            out.extend_from_slice(&chunk);
        }
    };
    if tokio::time::timeout(GUARD, all).await.is_err() {
        panic!("no end of output within {GUARD:?}");
    }
    out
}

/// A current-thread runtime with every driver: no thread of its own.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
