//! Per-process statistics: I/O counters kept by the library, CPU time and
//! peak memory reported by the shepherd from `wait4`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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
}

/// Counters shared by a process's pipes.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) bytes_err: AtomicU64,
    pub(crate) reads: AtomicU64,
    pub(crate) writes: AtomicU64,
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
