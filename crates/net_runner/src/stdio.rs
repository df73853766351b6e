//! What the child's stdin and stdout are connected to, like
//! [`std::process::Stdio`].

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

/// Where one of the child's standard streams goes: a pipe to this program,
/// `/dev/null`, this program's own descriptor, or a file or descriptor of
/// your choice. Set with [`Command::stdin`](crate::Command::stdin) and
/// [`Command::stdout`](crate::Command::stdout).
///
/// Inherited and given descriptors reach the child unchanged (its stdout
/// can be a terminal; `isatty` says yes): the library sends them to the
/// shepherd with the spawn request (`SCM_RIGHTS`), which puts them on the
/// child's fd 0 or 1. Nothing is copied through this program.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use net_runner::{Command, Stdio};
/// // The child writes straight into the file; nothing passes through us.
/// let path = std::env::temp_dir().join(format!("nr-doc-stdio-{}", std::process::id()));
/// let file = std::fs::File::create(&path)?;
/// let mut p = Command::new("echo").arg("into the file").stdout(Stdio::from(file)).spawn().await?;
/// assert!(p.wait().await?.success());
/// assert_eq!(std::fs::read_to_string(&path)?, "into the file\n");
/// # std::fs::remove_file(&path)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Stdio(pub(crate) Kind);

#[derive(Clone)]
pub(crate) enum Kind {
    Piped,
    Null,
    Inherit,
    Fd(Arc<OwnedFd>),
}

impl Stdio {
    /// A pipe to this program (`Process::write`, `Process::read`).
    ///
    /// ```
    /// let _ = net_runner::Stdio::piped();
    /// ```
    pub fn piped() -> Stdio {
        Stdio(Kind::Piped)
    }

    /// `/dev/null`.
    ///
    /// ```
    /// let _ = net_runner::Stdio::null();
    /// ```
    pub fn null() -> Stdio {
        Stdio(Kind::Null)
    }

    /// This program's own stdin or stdout, as it is when the command runs.
    ///
    /// ```
    /// let _ = net_runner::Stdio::inherit();
    /// ```
    pub fn inherit() -> Stdio {
        Stdio(Kind::Inherit)
    }
}

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Piped => f.write_str("Stdio::piped"),
            Kind::Null => f.write_str("Stdio::null"),
            Kind::Inherit => f.write_str("Stdio::inherit"),
            Kind::Fd(fd) => write!(f, "Stdio::from({fd:?})"),
        }
    }
}

impl From<OwnedFd> for Stdio {
    /// The child gets (a copy of) this descriptor.
    fn from(fd: OwnedFd) -> Stdio {
        Stdio(Kind::Fd(Arc::new(fd)))
    }
}

impl From<std::fs::File> for Stdio {
    /// The child reads or writes this file directly.
    fn from(file: std::fs::File) -> Stdio {
        Stdio::from(OwnedFd::from(file))
    }
}

/// A copy of `fd` above stdio, to send with the request.
pub(crate) fn dup(fd: impl AsFd) -> std::io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(
        fd,
        crate::sys::FIRST_FREE_FD,
    )?)
}
