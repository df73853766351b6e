//! Helpers shared by the integration tests: running the real `netrunner`
//! binary with guard timeouts, and finding (and cleaning up) test processes
//! by a unique marker in their environment.
//!
//! Timeouts here only guard against hangs; they are generous on purpose and
//! never assert speed.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long any single wait may take before the test is declared hung.
pub const GUARD: Duration = Duration::from_secs(60);

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_netrunner")
}

/// A `netrunner` command with the given arguments (stdin null by default).
pub fn netrunner<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// What a finished netrunner produced.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("netrunner was killed: {:?}; {}", self.status, self.err()))
    }

    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Asserts that stderr is exactly one line starting with `netrunner: `
    /// and returns it.
    pub fn message(&self) -> String {
        let err = self.err();
        assert!(
            err.starts_with("netrunner: ") && err.ends_with('\n') && err.lines().count() == 1,
            "expected one 'netrunner: ' line on stderr, got {err:?}"
        );
        err
    }
}

/// Runs netrunner with `args` and no stdin, collecting everything.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    run_cmd(netrunner(args), None)
}

/// Runs netrunner with `args` in the directory `dir`.
#[allow(dead_code)]
pub fn run_in<S: AsRef<std::ffi::OsStr>>(dir: &std::path::Path, args: &[S]) -> Run {
    let mut cmd = netrunner(args);
    cmd.current_dir(dir);
    run_cmd(cmd, None)
}

/// Runs netrunner with `args`, feeding `input` to its own stdin.
pub fn run_with_stdin<S: AsRef<std::ffi::OsStr>>(args: &[S], input: &[u8]) -> Run {
    run_cmd(netrunner(args), Some(input.to_vec()))
}

/// Runs `cmd` to the end under the guard timeout.
pub fn run_cmd(mut cmd: Command, input: Option<Vec<u8>>) -> Run {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netrunner");
    if let Some(data) = input {
        let mut stdin = child.stdin.take().unwrap();
        // A program that does not read its input is not an error.
        thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let status = wait_guarded(&mut child, GUARD);
    Run {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn reader(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child`; past `guard`, kills it (by pid) and panics.
pub fn wait_guarded(child: &mut Child, guard: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > guard {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "netrunner (pid {}) still running after {guard:?}",
                child.id()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `stdout` until `needle` has been seen (under the guard timeout)
/// and gives the pipe back, with everything read so far.
pub fn read_until(stdout: ChildStdout, needle: &[u8]) -> (ChildStdout, Vec<u8>) {
    let shown = String::from_utf8_lossy(needle).into_owned();
    let needle = needle.to_vec();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut stdout = stdout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Err(seen));
                    return;
                }
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(needle.len()).any(|w| w == needle.as_slice()) {
                        let _ = tx.send(Ok((stdout, seen)));
                        return;
                    }
                }
            }
        }
    });
    match rx.recv_timeout(GUARD) {
        Ok(Ok(found)) => found,
        Ok(Err(seen)) => panic!(
            "stdout ended before {shown:?}; got {:?}",
            String::from_utf8_lossy(&seen)
        ),
        Err(_) => panic!("no {shown:?} on stdout after {GUARD:?}"),
    }
}

/// A unique value for `NETRUNNER_TEST_MARKER`, given to test programs with
/// `--env`, so that exactly the processes of one test can be found in /proc.
/// Dropping it SIGKILLs (by pid) whatever still carries it.
pub struct Marker {
    pub value: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Marker {
    pub fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Marker {
            value: format!(
                "nrtest-{}-{}-{nanos}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// The `--env` value that marks a program.
    pub fn env(&self) -> String {
        format!("NETRUNNER_TEST_MARKER={}", self.value)
    }

    /// Live processes (not zombies) whose environment holds the marker.
    pub fn pids(&self) -> Vec<i32> {
        let wanted = self.env().into_bytes();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                // A zombie's environ reads empty; a vanished pid fails.
                std::fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|&b| b == 0).any(|var| var == wanted.as_slice()))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Waits until no marked process is left; `Err` with the survivors
    /// after `guard`.
    pub fn wait_gone(&self, guard: Duration) -> Result<(), Vec<i32>> {
        let start = Instant::now();
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                return Ok(());
            }
            if start.elapsed() > guard {
                return Err(pids);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asserts that every marked process is gone within the guard timeout.
    pub fn assert_gone(&self) {
        if let Err(pids) = self.wait_gone(GUARD) {
            let what: Vec<String> = pids.iter().map(|p| describe(*p)).collect();
            panic!("processes still alive after {GUARD:?}: {what:?}");
        }
    }
}

impl Default for Marker {
    fn default() -> Self {
        Marker::new()
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: plain kill(2) of a pid we found carrying our marker.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// `pid (cmdline)` for failure messages.
pub fn describe(pid: i32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    format!("{pid} ({})", cmdline.join(" "))
}

/// Sends `signal` to one process by pid.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: plain kill(2).
    let r = unsafe { libc::kill(pid as i32, signal) };
    assert_eq!(r, 0, "kill({pid}, {signal})");
}

/// A private temporary directory, removed on drop.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("netrunner-cli-test")
        .tempdir()
        .expect("temp dir")
}
