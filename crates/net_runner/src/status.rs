//! How a child ended.

use std::fmt;

use net_runner_proto::Termination;

use crate::Signal;

/// The child's exit: a code, or the signal that killed it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// let out = net_runner::Command::new("sh").args(["-c", "exit 3"]).run().await?;
/// assert_eq!(out.status.code(), Some(3));
/// assert!(!out.status.success());
/// assert_eq!(out.status.shell_code(), 3);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitStatus(pub(crate) Termination);

impl ExitStatus {
    /// The exit code, if the child exited normally.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let out = net_runner::Command::new("sh").args(["-c", "exit 5"]).run().await?;
    /// assert_eq!(out.status.code(), Some(5));
    /// # Ok(()) }
    /// ```
    pub fn code(&self) -> Option<i32> {
        match self.0 {
            Termination::Exited(code) => Some(code),
            Termination::Signaled { .. } => None,
        }
    }

    /// The raw number of the signal that killed the child, if one did.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let out = net_runner::Command::new("sh").args(["-c", "kill -9 $$"]).run().await?;
    /// assert_eq!((out.status.signal(), out.status.code()), (Some(9), None));
    /// # Ok(()) }
    /// ```
    pub fn signal(&self) -> Option<i32> {
        match self.0 {
            Termination::Signaled { signal, .. } => Some(signal),
            Termination::Exited(_) => None,
        }
    }

    /// The signal that killed the child, when it is one [`Signal`] knows.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let out = net_runner::Command::new("sh").args(["-c", "kill -9 $$"]).run().await?;
    /// assert_eq!(out.status.signal_kind(), Some(net_runner::Signal::Kill));
    /// # Ok(()) }
    /// ```
    pub fn signal_kind(&self) -> Option<Signal> {
        self.signal().and_then(|n| Signal::try_from(n).ok())
    }

    /// Whether a core dump was written.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let out = net_runner::Command::new("sh").args(["-c", "kill -9 $$"]).run().await?;
    /// assert!(!out.status.core_dumped());
    /// # Ok(()) }
    /// ```
    pub fn core_dumped(&self) -> bool {
        matches!(
            self.0,
            Termination::Signaled {
                core_dumped: true,
                ..
            }
        )
    }

    /// Exit code 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// assert!(net_runner::Command::new("true").run().await?.status.success());
    /// assert!(!net_runner::Command::new("false").run().await?.status.success());
    /// # Ok(()) }
    /// ```
    pub fn success(&self) -> bool {
        self.code() == Some(0)
    }

    /// The status as a shell reports it: the code, or 128 + the signal number.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let out = net_runner::Command::new("sh").args(["-c", "kill -9 $$"]).run().await?;
    /// assert_eq!(out.status.shell_code(), 137);
    /// # Ok(()) }
    /// ```
    pub fn shell_code(&self) -> i32 {
        match self.0 {
            Termination::Exited(code) => code,
            Termination::Signaled { signal, .. } => 128 + signal,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Termination::Exited(code) => write!(f, "exit code {code}"),
            Termination::Signaled { signal, .. } => match Signal::try_from(signal) {
                Ok(s) => write!(f, "killed by {s}"),
                Err(_) => write!(f, "killed by signal {signal}"),
            },
        }
    }
}
