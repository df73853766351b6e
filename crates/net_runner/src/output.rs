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

impl Output {
    /// `Ok(self)` if the program exited with 0, otherwise
    /// [`Error::Failed`](crate::Error::Failed), whose message ends with the
    /// last few KiB of stderr.
    ///
    /// ```
    /// let err = net_runner::Command::new("sh")
    ///     .args(["-c", "echo oops >&2; exit 3"])
    ///     .run_blocking()?
    ///     .exit_ok()
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "exit code 3; stderr: oops");
    /// assert_eq!(err.stderr_tail(), Some(&b"oops\n"[..]));
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn exit_ok(self) -> Result<Output, crate::Error> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(crate::Error::Failed {
                output: Box::new(self),
            })
        }
    }
}
