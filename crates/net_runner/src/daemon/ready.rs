//! Readiness checks: a pattern on an output line, the systemd notify
//! protocol, a TCP or Unix-socket connect probe.

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use tokio::io::Interest;

use crate::Error;

/// How a [`Daemon`](super::Daemon) knows its program is ready. Checked at
/// every start, restarts included.
///
/// ```
/// use net_runner::daemon::Readiness;
/// let _ = Readiness::pattern(r"listening on port \d+")?;
/// let _ = Readiness::notify();
/// let _ = Readiness::tcp("127.0.0.1:8080");
/// let _ = Readiness::unix("/run/app.sock");
/// assert!(Readiness::pattern("(").is_err());
/// # Ok::<(), net_runner::Error>(())
/// ```
#[derive(Clone)]
pub struct Readiness(pub(crate) ReadyKind);

#[derive(Clone)]
pub(crate) enum ReadyKind {
    Pattern(regex_lite::Regex),
    Notify,
    Tcp(String),
    Unix(PathBuf),
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ReadyKind::Pattern(re) => write!(f, "Readiness::Pattern({:?})", re.as_str()),
            ReadyKind::Notify => f.write_str("Readiness::Notify"),
            ReadyKind::Tcp(a) => write!(f, "Readiness::Tcp({a:?})"),
            ReadyKind::Unix(p) => write!(f, "Readiness::Unix({p:?})"),
        }
    }
}

impl Readiness {
    /// Ready when a line of stdout or stderr matches `regex` (the syntax of
    /// the `regex` crate, without Unicode classes: `regex-lite`). Lines are
    /// matched without their newline, lossily decoded as UTF-8.
    ///
    /// ```
    /// let r = net_runner::daemon::Readiness::pattern("^ready$");
    /// assert!(r.is_ok());
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] (option `"ready_pattern"`) for a bad regex.
    pub fn pattern(regex: &str) -> Result<Self, Error> {
        regex_lite::Regex::new(regex)
            .map(|re| Readiness(ReadyKind::Pattern(re)))
            .map_err(|e| Error::InvalidOption {
                option: "ready_pattern",
                reason: e.to_string(),
            })
    }

    /// The systemd protocol: the program gets `NOTIFY_SOCKET` and sends
    /// `READY=1` in a datagram (`systemd-notify --ready`, `sd_notify`).
    ///
    /// The socket is a path in a directory of our own with mode 0700 (so
    /// only our user, or root, can reach it; an abstract name could be
    /// reached by anyone in the network namespace), created at start and
    /// removed when the daemon ends (an owner killed by SIGKILL leaves it
    /// behind, with no process). Each datagram's sender is checked with
    /// `SO_PASSCRED`: it counts only if its pid is the program, is in the
    /// program's process group, or has the program or its shepherd among
    /// its ancestors (`/proc/PID/stat`). A sender that has already exited
    /// when its message is read cannot be checked and is ignored, so send
    /// from a process that outlives the message (`systemd-notify` forked
    /// by a shell is in the group while it runs).
    ///
    /// ```
    /// let _ = net_runner::daemon::Readiness::notify();
    /// ```
    pub fn notify() -> Self {
        Readiness(ReadyKind::Notify)
    }

    /// Ready once a TCP connection to `addr` (`host:port`) succeeds; tried
    /// every 50 ms. Anything listening there counts, so make sure no other
    /// program holds the port.
    ///
    /// ```
    /// let _ = net_runner::daemon::Readiness::tcp("localhost:5432");
    /// ```
    pub fn tcp(addr: impl Into<String>) -> Self {
        Readiness(ReadyKind::Tcp(addr.into()))
    }

    /// Ready once a connection to the Unix socket at `path` succeeds;
    /// tried every 50 ms.
    ///
    /// ```
    /// let _ = net_runner::daemon::Readiness::unix("/tmp/app.sock");
    /// ```
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Readiness(ReadyKind::Unix(path.into()))
    }
}

/// How often connect probes are tried.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// Tries to connect until it works.
pub(crate) async fn probe(kind: &ReadyKind) {
    loop {
        let ok = match kind {
            ReadyKind::Tcp(addr) => tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect(addr.as_str()),
            )
            .await
            .is_ok_and(|r| r.is_ok()),
            ReadyKind::Unix(path) => tokio::net::UnixStream::connect(path).await.is_ok(),
            ReadyKind::Pattern(_) | ReadyKind::Notify => return std::future::pending().await,
        };
        if ok {
            return;
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// The daemon's `NOTIFY_SOCKET`: a datagram socket in a private directory.
#[derive(Debug)]
pub(crate) struct NotifySocket {
    dir: PathBuf,
    path: PathBuf,
    socket: tokio::net::UnixDatagram,
}

impl NotifySocket {
    /// Creates the 0700 directory (in `$XDG_RUNTIME_DIR` if set, else the
    /// temporary directory) and binds the socket with `SO_PASSCRED`.
    pub(crate) fn bind() -> io::Result<Self> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let mut attempt = 0u32;
        let dir = loop {
            let r = (super::policy::random_unit() * 1e12) as u64;
            let dir = base.join(format!("netrunner-notify-{}-{r:x}", std::process::id()));
            // `create` fails if it exists: a directory planted by someone
            // else is never used.
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
                Err(e) => return Err(e),
            }
        };
        let path = dir.join("notify");
        let bound = tokio::net::UnixDatagram::bind(&path).and_then(|socket| {
            rustix::net::sockopt::set_socket_passcred(&socket, true)?;
            Ok(socket)
        });
        match bound {
            Ok(socket) => Ok(NotifySocket { dir, path, socket }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// The path to give the program as `NOTIFY_SOCKET`.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for `READY=1` from the tree of `child` (run by `shepherd`).
    /// Cancel-safe: a datagram is taken and judged in one step.
    pub(crate) async fn ready_from(&self, child: u32, shepherd: u32) {
        let mut buf = [0u8; 4096];
        loop {
            let got = self
                .socket
                .async_io(Interest::READABLE, || {
                    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
                    let mut control = RecvAncillaryBuffer::new(&mut space);
                    let msg = rustix::net::recvmsg(
                        &self.socket,
                        &mut [io::IoSliceMut::new(&mut buf)],
                        &mut control,
                        RecvFlags::DONTWAIT,
                    )?;
                    let pid = control.drain().find_map(|m| match m {
                        RecvAncillaryMessage::ScmCredentials(c) => {
                            Some(c.pid.as_raw_nonzero().get())
                        }
                        _ => None,
                    });
                    Ok((msg.bytes.min(buf.len()), pid))
                })
                .await;
            let (len, pid) = match got {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "notify socket read failed");
                    tokio::time::sleep(PROBE_INTERVAL).await;
                    continue;
                }
            };
            let says_ready = buf[..len]
                .split(|&b| b == b'\n')
                .any(|assignment| assignment == b"READY=1");
            match pid {
                Some(pid) if says_ready && in_tree(pid as u32, child, shepherd) => return,
                _ if says_ready => {
                    tracing::warn!(
                        ?pid,
                        child,
                        "READY=1 from outside the program's tree ignored"
                    );
                }
                _ => {}
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Whether `pid` belongs to the program's tree: the program itself, a
/// member of its process group (its pid is the group id), or a process
/// with the program or its shepherd (a subreaper: it adopts the tree's
/// orphans, and has no other children) among its ancestors.
pub(crate) fn in_tree(pid: u32, child: u32, shepherd: u32) -> bool {
    if pid == 0 {
        return false;
    }
    if pid == child {
        return true;
    }
    let mut current = pid;
    for _ in 0..256 {
        let Some((ppid, pgrp)) = stat_ids(current) else {
            return false;
        };
        if pgrp == child || ppid == child || (shepherd != 0 && ppid == shepherd) {
            return true;
        }
        if ppid <= 1 {
            return false;
        }
        current = ppid;
    }
    false
}

/// `(ppid, pgrp)` from `/proc/PID/stat`.
fn stat_ids(pid: u32) -> Option<(u32, u32)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let number = |n| {
        std::str::from_utf8(crate::sys::stat_field(&stat, n)?)
            .ok()?
            .parse()
            .ok()
    };
    Some((number(4)?, number(5)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_membership() {
        let me = std::process::id();
        // Our own tree: we are our children's ancestor.
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(in_tree(child.id(), me, 0));
        // A process outside: not in the tree of our child.
        assert!(!in_tree(me, child.id(), 0));
        assert!(!in_tree(0, child.id(), 0));
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn the_socket_directory_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let s = NotifySocket::bind().unwrap();
        let dir = s.path().parent().unwrap().to_owned();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        drop(s);
        assert!(!dir.exists());
    }
}
