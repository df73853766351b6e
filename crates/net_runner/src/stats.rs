//! Per-process statistics: I/O counters kept by the library, CPU time and
//! peak memory reported by the shepherd from `wait4`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use crate::ExitStatus;

/// A snapshot of one process's statistics.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// let out = net_runner::Command::new("cat").input("hello").run().await?;
/// assert_eq!(out.stats.bytes_in, 5);
/// assert_eq!(out.stats.bytes_out, 5);
/// assert!(out.stats.exit_status.unwrap().success());
/// assert!(out.stats.max_rss_bytes.unwrap() > 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes written to the child's stdin.
    pub bytes_in: u64,
    /// Bytes read from the child's stdout.
    pub bytes_out: u64,
    /// Bytes read from the child's stderr.
    pub bytes_err: u64,
    /// Successful reads from stdout and stderr.
    pub read_count: u64,
    /// Successful writes to stdin.
    pub write_count: u64,
    /// From spawn until the exit was seen (until now while running).
    pub wall_time: Duration,
    /// The exit status, once known.
    pub exit_status: Option<ExitStatus>,
    /// User CPU time of the child and its reaped descendants, once exited.
    pub user_time: Option<Duration>,
    /// System CPU time of the child and its reaped descendants, once exited.
    pub system_time: Option<Duration>,
    /// Peak resident set size of the child, once exited.
    pub max_rss_bytes: Option<u64>,
    /// How the run ended, once the child exited.
    pub end: Option<End>,
    /// The figures of the command's cgroup, read after the child exited
    /// (with [`Command::cgroup`](crate::Command::cgroup) or a cgroup limit).
    pub cgroup: Option<crate::CgroupStats>,
}

/// Counters and stop state shared by a process, its pipes and handles.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) bytes_err: AtomicU64,
    pub(crate) reads: AtomicU64,
    pub(crate) writes: AtomicU64,
    /// The caller sent a signal (`kill`) or asked for `shutdown`.
    pub(crate) caller_stopped: AtomicBool,
    /// The library stopped the process: 0 no, [`STOP_MAX_OUTPUT`], [`STOP_IDLE`].
    pub(crate) library_stop: AtomicU8,
    /// The stop sequence reached `close-stdin`: the stdin writer closes.
    pub(crate) close_stdin: AtomicBool,
}

pub(crate) const STOP_MAX_OUTPUT: u8 = 1;
pub(crate) const STOP_IDLE: u8 = 2;

impl Counters {
    /// Records the first reason the library stopped the process.
    pub(crate) fn library_stopped(&self, why: u8) {
        let _ = self.library_stop.compare_exchange(0, why, Relaxed, Relaxed);
    }
}

/// How a run ended, in [`Stats::end`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use net_runner::{Command, End};
/// let out = Command::new("true").run().await?;
/// assert_eq!(out.stats.end, Some(End::Exited));
/// assert_eq!(End::IdleTimeout.as_str(), "idle_timeout");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum End {
    /// It exited on its own.
    Exited,
    /// A signal killed it that nobody here sent (a crash, an outside `kill`).
    Signalled,
    /// The overall `timeout` expired and it was stopped.
    Timeout,
    /// The `idle_timeout` expired and it was stopped.
    IdleTimeout,
    /// It wrote more than `max_output` and was stopped.
    MaxOutput,
    /// The caller stopped it: `kill`, `shutdown`, or dropping the handle.
    Killed,
    /// Its shepherd stopped it because the owner went away (or the shepherd
    /// itself was sent SIGTERM).
    OwnerGone,
    /// The kernel's OOM killer killed it: its cgroup reached
    /// [`memory_max`](crate::Command::memory_max).
    OomKilled,
}

impl End {
    /// The name used in `--stats-json`: `exited`, `signalled`, `timeout`,
    /// `idle_timeout`, `max_output`, `killed`, `owner_gone`, `oom_killed`.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Exited => "exited",
            End::Signalled => "signalled",
            End::Timeout => "timeout",
            End::IdleTimeout => "idle_timeout",
            End::MaxOutput => "max_output",
            End::Killed => "killed",
            End::OwnerGone => "owner_gone",
            End::OomKilled => "oom_killed",
        }
    }
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Counters {
    pub(crate) fn fill(&self, stats: &mut Stats) {
        stats.bytes_in = self.bytes_in.load(Relaxed);
        stats.bytes_out = self.bytes_out.load(Relaxed);
        stats.bytes_err = self.bytes_err.load(Relaxed);
        stats.read_count = self.reads.load(Relaxed);
        stats.write_count = self.writes.load(Relaxed);
    }
}
