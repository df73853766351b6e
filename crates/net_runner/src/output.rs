//! The collected result of [`Command::run`](crate::Command::run).

use crate::{ExitStatus, Stats};

/// Everything a finished process produced.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// let out = net_runner::Command::new("sh")
///     .args(["-c", "echo out; echo err >&2"])
///     .run()
///     .await?;
/// assert_eq!(out.stdout, b"out\n");
/// assert_eq!(out.stderr, b"err\n");
/// assert!(out.status.success());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Everything read from stdout (and stderr, when redirected into it).
    pub stdout: Vec<u8>,
    /// Everything read from stderr (empty unless stderr is consumed).
    pub stderr: Vec<u8>,
    /// How the process ended.
    pub status: ExitStatus,
    /// I/O counters, times and memory.
    pub stats: Stats,
}
