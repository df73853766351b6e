//! A handle on one running child and its shepherd.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use net_runner_proto::{ExitReport, FromShepherd, StdioMode, StopCause, Termination, ToShepherd};
use rustix::process::Pid;

use crate::control::{self, ControlChannel};
use crate::launch::Launched;
use crate::pipe::{ChildStderr, ChildStdin, ChildStdout, ReaderLink, CHUNK};
use crate::stats::{Counters, STOP_IDLE, STOP_MAX_OUTPUT};
use crate::terminal::Terminal;
use crate::{reaper, sys, End, Error, ExitStatus, Signal, Stats};

/// A running (or finished) child process.
///
/// Created by [`Command::spawn`](crate::Command::spawn). Dropping a `Process`
/// whose child still runs never blocks and never leaks: the control channel
/// closes, the shepherd sends SIGTERM to the whole tree, SIGKILL after the
/// kill timeout, reaps everything and exits; a background thread reaps the
/// shepherd.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use net_runner::Command;
/// let mut p = Command::new("cat").spawn().await?;
/// p.write(b"hi").await?;
/// p.close_stdin();
/// assert_eq!(p.read().await?.as_deref(), Some(&b"hi"[..]));
/// assert_eq!(p.read().await?, None);
/// assert!(p.wait().await?.success());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Process {
    link: Link,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    /// `take_stdout` / `take_stderr` was called: a `read` of that stream
    /// is a mistake, not end of file.
    stdout_taken: bool,
    stderr_taken: bool,
    counters: Arc<Counters>,
    started: Instant,
    /// The overall timeout (enforced by the shepherd), for `Error::Timeout`.
    timeout: Option<Duration>,
    /// PTY mode: a copy of the terminal's master, for resizing (handles
    /// hold a weak reference).
    pty_master: Option<Arc<OwnedFd>>,
}

/// What [`Process::watch`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// The exit report arrived (reported once).
    Exited,
    /// The stop sequence asks to close stdin (reported once).
    CloseStdin,
    /// The child stopped or continued (each change once, the latest
    /// first; none once the exit is known).
    Job(ProcessEvent),
}

/// What [`Process::wait_or_close_stdin`] saw.
#[derive(Debug)]
pub(crate) enum Waited {
    /// The exit status (or the failure to learn it).
    Exit(Result<ExitStatus, Error>),
    /// The stop sequence asks to close stdin (reported once).
    CloseStdin,
    /// The child stopped or continued (as [`Watch::Job`]).
    Job(ProcessEvent),
}

/// What the library knows of the child through its shepherd: the control
/// channel and what came over it. Apart from the pipes, so that a read or a
/// write can watch the channel while it waits (see [`Link::guard`]).
#[derive(Debug)]
struct Link {
    pid: libc::pid_t,
    shepherd_pid: Pid,
    control: ControlChannel,
    exit: Option<(ExitReport, Instant)>,
    /// The shepherd closed the channel (it exited or is exiting).
    shepherd_done: bool,
    /// The shepherd's pid was handed to the reaper. Exactly once: a second
    /// `waitpid` on a pid that was reaped and then recycled would take the
    /// exit status of an unrelated child of this process.
    shepherd_released: bool,
    /// A forked shepherd (`prefork_shepherd`): once done, reaped when the
    /// `Process` drops unless the reaper thread runs already.
    reap_at_drop: bool,
    /// A pidfd for the child, taken at spawn: names its process group
    /// without the pid-reuse risk of the bare number (see
    /// `kill_orphaned_group`). `None` where the kernel has no pidfds.
    leader: Option<OwnedFd>,
    counters: Arc<Counters>,
    /// `Watch::Exited` was handed out.
    exit_watched: bool,
    /// `Watch::CloseStdin` was handed out.
    close_stdin_watched: bool,
    /// The cgroup asked for, removed by the reaper if the shepherd leaves it.
    cgroup: Option<Arc<crate::cgroup::Plan>>,
    /// The cgroup's figures, sent by the shepherd right before `Exited`.
    cgroup_report: Option<net_runner_proto::CgroupReport>,
    /// The terminal the child was made the foreground group of (shared
    /// with the streams, which resume the child without the `Process`).
    terminal: Option<Arc<Terminal>>,
    /// The last stop or continue of the child not yet handed out by
    /// `wait_event` (only the latest matters: it is the current state).
    job: Option<ProcessEvent>,
}

/// What [`Process::wait_event`] reports: a change in the child's state.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use net_runner::{Command, ProcessEvent, Signal};
/// let mut p = Command::new("sleep").arg("10").spawn().await?;
/// p.kill(Signal::Stop)?;
/// assert_eq!(p.wait_event().await?, ProcessEvent::Stopped(Signal::Stop.as_raw()));
/// p.resume()?;
/// assert_eq!(p.wait_event().await?, ProcessEvent::Continued);
/// p.kill(Signal::Term)?;
/// assert!(matches!(p.wait_event().await?, ProcessEvent::Exited(s) if s.signal() == Some(15)));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessEvent {
    /// The child was stopped by this signal (Ctrl-Z's `SIGTSTP`, `SIGSTOP`,
    /// `SIGTTIN`...). With [`Command::foreground`](crate::Command::foreground)
    /// the terminal is already ours again.
    Stopped(i32),
    /// The child was continued.
    Continued,
    /// The child exited (as [`Process::wait`] reports it).
    Exited(ExitStatus),
}

/// A cheap handle that can signal a process from elsewhere (another task,
/// a signal handler loop) without owning it. It does not keep the process
/// alive: once the [`Process`] is dropped, signalling is a no-op.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use net_runner::{Command, Signal};
/// let mut p = Command::new("sleep").arg("30").spawn().await?;
/// let handle = p.handle();
/// handle.kill(Signal::Term)?;
/// assert_eq!(p.wait().await?.signal_kind(), Some(Signal::Term));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProcessHandle {
    pid: libc::pid_t,
    control: Weak<OwnedFd>,
    counters: Arc<Counters>,
    /// PTY mode: the process's copy of the master.
    pty_master: Option<Weak<OwnedFd>>,
}

impl ProcessHandle {
    /// The child's pid (also its process group id).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let p = net_runner::Command::new("sleep").arg("10").spawn().await?;
    /// let h = p.handle();
    /// assert_eq!(h.os_pid(), p.os_pid());
    /// # Ok(()) }
    /// ```
    pub fn os_pid(&self) -> u32 {
        self.pid as u32
    }

    /// Sends `signal` to the child's whole process group. `Ok(())` if the
    /// process is already gone.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::Signal;
    /// let mut p = net_runner::Command::new("sleep").arg("10").spawn().await?;
    /// p.handle().kill(Signal::Int)?;
    /// assert_eq!(p.wait().await?.signal_kind(), Some(Signal::Int));
    /// # Ok(()) }
    /// ```
    pub fn kill(&self, signal: Signal) -> Result<(), Error> {
        match self.control.upgrade() {
            Some(fd) => {
                self.counters.caller_stopped.store(true, Relaxed);
                send_ignoring_gone(
                    &fd,
                    &ToShepherd::Signal {
                        signal: signal.as_raw(),
                    },
                )
            }
            None => Ok(()),
        }
    }

    /// Resizes the process's terminal (PTY mode), as
    /// [`Process::set_window_size`]; also for a stream, whose process is
    /// not at hand. `Ok(())` once the process is dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut s = net_runner::Command::new("sh")
    ///     .args(["-c", "read go; stty size"])
    ///     .pty(24, 80)
    ///     .input("go\n")
    ///     .stream()
    ///     .await?;
    /// s.handle().set_window_size(30, 100)?;
    /// let mut out = Vec::new();
    /// while let Some(chunk) = s.next_chunk().await? {
    ///     out.extend_from_slice(&chunk);
    /// }
    /// assert!(out.ends_with(b"30 100\r\n"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Process::set_window_size`].
    pub fn set_window_size(&self, rows: u16, cols: u16) -> Result<(), Error> {
        match &self.pty_master {
            Some(master) => match master.upgrade() {
                Some(master) => crate::pty::set_size(&*master, rows, cols),
                None => crate::pty::check_size(rows, cols).map(drop),
            },
            None => Err(Error::NotATerminal),
        }
    }

    /// `SIGCONT` to the child's group, as [`Process::resume`] sends it (a
    /// continue is no reason to call the end "killed").
    pub(crate) fn resume_group(&self) -> Result<(), Error> {
        match self.control.upgrade() {
            Some(fd) => send_ignoring_gone(
                &fd,
                &ToShepherd::Signal {
                    signal: Signal::Cont.as_raw(),
                },
            ),
            None => Ok(()),
        }
    }

    /// Graceful stop: runs the command's stop sequence (by default SIGTERM
    /// to the group, SIGKILL after the kill timeout).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("sleep").arg("10").spawn().await?;
    /// p.handle().shutdown()?;
    /// assert_eq!(p.wait().await?.shell_code(), 143); // SIGTERM
    /// # Ok(()) }
    /// ```
    pub fn shutdown(&self) -> Result<(), Error> {
        match self.control.upgrade() {
            Some(fd) => {
                self.counters.caller_stopped.store(true, Relaxed);
                send_ignoring_gone(&fd, &ToShepherd::Shutdown)
            }
            None => Ok(()),
        }
    }
}

/// A shepherd that already exited has nothing left to signal.
fn send_ignoring_gone(fd: &OwnedFd, msg: &ToShepherd) -> Result<(), Error> {
    match control::send_now(fd, msg) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

impl Process {
    /// Wraps a launched child; `fds` are in stdin, stdout, stderr order,
    /// present for each stream that `modes` says is piped; in PTY mode
    /// (`pty`), the master alone.
    pub(crate) fn from_launched(
        launched: Launched,
        modes: [StdioMode; 3],
        pty: bool,
        started: Instant,
        limit: Option<u64>,
        timeout: Option<Duration>,
        mut terminal: Option<Terminal>,
    ) -> Result<Self, Error> {
        if let Some(t) = &mut terminal {
            t.set_child(launched.child_pid);
        }
        let Launched {
            shepherd_pid,
            child_pid,
            control,
            fds,
            cgroup,
            forked,
        } = launched;
        let counters = Arc::new(Counters::default());
        let mut fds = fds.into_iter();
        let (mut stdin_fd, mut stdout_fd, mut stderr_fd) = (None, None, None);
        if !pty {
            let mut next =
                |mode: StdioMode| (mode == StdioMode::Pipe).then(|| fds.next()).flatten();
            (stdin_fd, stdout_fd, stderr_fd) = (next(modes[0]), next(modes[1]), next(modes[2]));
        }
        let master = if pty { fds.next() } else { None };
        let mut process = Process {
            link: Link {
                pid: child_pid,
                shepherd_pid,
                control,
                exit: None,
                shepherd_done: false,
                shepherd_released: false,
                reap_at_drop: forked,
                // Opened right after `Spawned`: the child cannot have been
                // reaped and its number recycled in between (the shepherd
                // reaps it, and the whole pid space would have to wrap).
                leader: Pid::from_raw(child_pid).and_then(|pid| sys::pidfd_open(pid).ok()),
                counters: counters.clone(),
                exit_watched: false,
                close_stdin_watched: false,
                cgroup,
                cgroup_report: None,
                terminal: terminal.map(Arc::new),
                job: None,
            },
            stdin: None,
            stdout: None,
            stderr: None,
            stdout_taken: false,
            stderr_taken: false,
            counters: counters.clone(),
            started,
            timeout,
            pty_master: None,
        };
        let link = ReaderLink {
            control: process.link.control.weak(),
            limit,
        };
        // On error `process` drops here, which cleans up the child.
        process.stdin = stdin_fd
            .map(|fd| ChildStdin::new(fd, counters.clone()))
            .transpose()?;
        process.stdout = stdout_fd
            .map(|fd| ChildStdout::new(fd, counters.clone(), link.clone()))
            .transpose()?;
        process.stderr = stderr_fd
            .map(|fd| ChildStderr::new(fd, counters.clone(), link.clone()))
            .transpose()?;
        if let Some(master) = master {
            // One master, three descriptors: the reader's, the writer's
            // (dropped on close_stdin), and ours for resizing.
            let writer = sys::dup(&master)?;
            process.pty_master = Some(Arc::new(sys::dup(&master)?));
            process.stdin = Some(ChildStdin::new_pty(writer, counters.clone())?);
            process.stdout = Some(ChildStdout::new_pty(master, counters, link)?);
        } else if pty {
            return Err(Error::Shepherd(crate::ShepherdError::Protocol(
                "PTY mode: no master descriptor in Spawned".into(),
            )));
        }
        Ok(process)
    }

    /// The child's pid, which is also its process group id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let p = net_runner::Command::new("sleep").arg("10").spawn().await?;
    /// assert!(std::path::Path::new(&format!("/proc/{}", p.os_pid())).exists());
    /// # Ok(()) }
    /// ```
    pub fn os_pid(&self) -> u32 {
        self.link.pid as u32
    }

    /// The pid of this process's shepherd.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let p = net_runner::Command::new("sleep").arg("10").spawn().await?;
    /// assert_ne!(p.shepherd_pid(), p.os_pid());
    /// # Ok(()) }
    /// ```
    pub fn shepherd_pid(&self) -> u32 {
        self.link.shepherd_pid.as_raw_nonzero().get() as u32
    }

    /// A handle for signalling this process from elsewhere.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::Signal;
    /// let mut p = net_runner::Command::new("sleep").arg("10").spawn().await?;
    /// let handle = p.handle();
    /// tokio::spawn(async move { handle.kill(Signal::Term) });
    /// assert_eq!(p.wait().await?.signal_kind(), Some(Signal::Term));
    /// # Ok(()) }
    /// ```
    pub fn handle(&self) -> ProcessHandle {
        ProcessHandle {
            pid: self.link.pid,
            control: self.link.control.weak(),
            counters: self.counters.clone(),
            pty_master: self.pty_master.as_ref().map(Arc::downgrade),
        }
    }

    /// Writes all of `data` to the child's stdin.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("cat").spawn().await?;
    /// p.write(b"hello").await?;
    /// p.close_stdin();
    /// assert_eq!(p.read().await?.as_deref(), Some(&b"hello"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`BrokenPipe`](std::io::ErrorKind::BrokenPipe)
    /// once stdin is closed (by [`close_stdin`](Self::close_stdin),
    /// [`take_stdin`](Self::take_stdin), an [`input`](crate::Command::input),
    /// or the child closing its end); other I/O errors as [`Error::Io`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: if the future is dropped, a prefix of `data` may
    /// have been written and the rest not. Keep the future (or write in a
    /// task of its own) when that matters.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        match &mut self.stdin {
            Some(stdin) => Ok(self.link.guard(stdin.write_all(data)).await?),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "stdin is closed").into()),
        }
    }

    /// Closes the child's stdin; it reads end of file. Idempotent.
    ///
    /// In PTY mode the terminal stays open (it is also the output) and end
    /// of file goes through its line discipline: the VEOF character (^D),
    /// twice when the last byte written was not a newline, so `cat`, `wc`,
    /// `sort` finish as on a pipe. In raw mode the kernel has no end of
    /// file: one VEOF is sent, as a user would type it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("wc").arg("-c").spawn().await?;
    /// p.write(b"abc").await?;
    /// p.close_stdin(); // wc sees end of file and answers
    /// assert_eq!(String::from_utf8_lossy(&p.read().await?.unwrap()).trim(), "3");
    /// # Ok(()) }
    /// ```
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads the next chunk of stdout (up to 128 KiB, whatever the pipe
    /// holds); `Ok(None)` at end of file.
    ///
    /// After [`take_stdout`](Self::take_stdout) this fails with
    /// [`Error::StreamTaken`]: read from the taken reader instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("echo").arg("hi").spawn().await?;
    /// let mut out = Vec::new();
    /// while let Some(chunk) = p.read().await? {
    ///     out.extend_from_slice(&chunk);
    /// }
    /// assert_eq!(out, b"hi\n");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::StreamTaken`] after `take_stdout`; [`Error::Io`] if reading
    /// fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it completes, no data
    /// has been taken from the pipe.
    pub async fn read(&mut self) -> Result<Option<Bytes>, Error> {
        match &mut self.stdout {
            Some(out) => Ok(self.link.guard(out.read_chunk(CHUNK)).await?),
            None if self.stdout_taken => Err(Error::StreamTaken { stream: "stdout" }),
            None => Ok(None),
        }
    }

    /// Reads the next chunk of stderr; `Ok(None)` at end of file, or when
    /// stderr is not consumed ([`Stderr::Consume`](crate::Stderr::Consume)
    /// is the default).
    ///
    /// After [`take_stderr`](Self::take_stderr) this fails with
    /// [`Error::StreamTaken`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("sh").args(["-c", "echo e >&2"]).spawn().await?;
    /// assert_eq!(p.read_stderr().await?.as_deref(), Some(&b"e\n"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::StreamTaken`] after `take_stderr`; [`Error::Io`] if reading
    /// fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`read`](Self::read).
    pub async fn read_stderr(&mut self) -> Result<Option<Bytes>, Error> {
        match &mut self.stderr {
            Some(err) => Ok(self.link.guard(err.read_chunk(CHUNK)).await?),
            None if self.stderr_taken => Err(Error::StreamTaken { stream: "stderr" }),
            None => Ok(None),
        }
    }

    /// Resizes the terminal (PTY mode): sets the size on the master, and the
    /// kernel sends SIGWINCH to the terminal's foreground process group.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("sh")
    ///     .args(["-c", "read go; stty size"])
    ///     .pty(24, 80)
    ///     .spawn()
    ///     .await?;
    /// p.set_window_size(50, 132)?;
    /// p.write(b"go\n").await?;
    /// let mut out = Vec::new();
    /// while let Some(chunk) = p.read().await? {
    ///     out.extend_from_slice(&chunk);
    /// }
    /// assert!(String::from_utf8_lossy(&out).ends_with("50 132\r\n"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotATerminal`] when the process does not run in PTY mode;
    /// [`Error::InvalidOption`] for a size with 0 or more than
    /// [`Pty::MAX_SIZE`](crate::Pty::MAX_SIZE) rows or columns.
    pub fn set_window_size(&self, rows: u16, cols: u16) -> Result<(), Error> {
        match &self.pty_master {
            Some(master) => crate::pty::set_size(master, rows, cols),
            None => Err(Error::NotATerminal),
        }
    }

    /// Whether the process runs on a pseudo-terminal
    /// ([`Command::pty`](crate::Command::pty)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let p = net_runner::Command::new("true").pty(24, 80).spawn().await?;
    /// assert!(p.is_pty());
    /// # Ok(()) }
    /// ```
    pub fn is_pty(&self) -> bool {
        self.pty_master.is_some()
    }

    /// Takes the stdin writer (tokio `AsyncWrite`), e.g. to use it in another task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use tokio::io::AsyncWriteExt;
    /// let mut p = net_runner::Command::new("cat").spawn().await?;
    /// let mut stdin = p.take_stdin().unwrap();
    /// stdin.write_all(b"x").await?;
    /// drop(stdin);
    /// assert_eq!(p.read().await?.as_deref(), Some(&b"x"[..]));
    /// # Ok(()) }
    /// ```
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Takes the stdout reader (tokio `AsyncRead`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use tokio::io::AsyncReadExt;
    /// let mut p = net_runner::Command::new("echo").arg("hi").spawn().await?;
    /// let mut text = String::new();
    /// p.take_stdout().unwrap().read_to_string(&mut text).await?;
    /// assert_eq!(text, "hi\n");
    /// # Ok(()) }
    /// ```
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        let taken = self.stdout.take();
        self.stdout_taken |= taken.is_some();
        taken
    }

    /// Takes the stderr reader (tokio `AsyncRead`), if stderr is consumed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use tokio::io::AsyncReadExt;
    /// let mut p = net_runner::Command::new("sh").args(["-c", "echo e >&2"]).spawn().await?;
    /// let mut text = String::new();
    /// p.take_stderr().unwrap().read_to_string(&mut text).await?;
    /// assert_eq!(text, "e\n");
    /// # Ok(()) }
    /// ```
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        let taken = self.stderr.take();
        self.stderr_taken |= taken.is_some();
        taken
    }

    /// Sends `signal` to the child's whole process group. A no-op once the
    /// child has exited: a signal never reaches a recycled pid, because the
    /// shepherd, which sends it, is the one that reaps the child.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::Signal;
    /// let mut p = net_runner::Command::new("sleep").arg("10").spawn().await?;
    /// p.kill(Signal::Kill)?;
    /// assert_eq!(p.wait().await?.signal(), Some(9));
    /// # Ok(()) }
    /// ```
    pub fn kill(&self, signal: Signal) -> Result<(), Error> {
        if self.link.exit.is_some() {
            return Ok(());
        }
        self.counters.caller_stopped.store(true, Relaxed);
        send_ignoring_gone(
            self.control_fd(),
            &ToShepherd::Signal {
                signal: signal.as_raw(),
            },
        )
    }

    fn control_fd(&self) -> &OwnedFd {
        self.link.control.fd_ref()
    }

    /// Waits for the child to exit and returns its status. Safe to call again.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("sh").args(["-c", "exit 2"]).spawn().await?;
    /// assert_eq!(p.wait().await?.code(), Some(2));
    /// assert_eq!(p.wait().await?.code(), Some(2));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Shepherd`] with [`ShepherdError::Lost`](crate::ShepherdError::Lost)
    /// if the shepherd died before reporting the exit (the child's group is
    /// then killed), or with a protocol error.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future loses nothing; wait again.
    pub async fn wait(&mut self) -> Result<ExitStatus, Error> {
        std::future::poll_fn(|cx| self.poll_wait(cx)).await
    }

    /// Waits for the next change of the child's state: stopped, continued
    /// (each reported once, the latest first if several happened since the
    /// last call), or exited (reported on every call from then on). For job
    /// control: when Ctrl-Z stops a [`foreground`](crate::Command::foreground)
    /// child, the terminal is already back with this program; stop
    /// yourself, then call [`resume`](Self::resume) when continued.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::ProcessEvent;
    /// let mut p = net_runner::Command::new("true").spawn().await?;
    /// assert!(matches!(p.wait_event().await?, ProcessEvent::Exited(s) if s.success()));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: an event is taken only when the future completes.
    pub async fn wait_event(&mut self) -> Result<ProcessEvent, Error> {
        std::future::poll_fn(|cx| {
            let polled = self.poll_status(cx);
            if let Some(event) = self.take_job() {
                return Poll::Ready(Ok(event));
            }
            polled.map(|r| r.map(ProcessEvent::Exited))
        })
        .await
    }

    /// Continues a stopped child: gives it the terminal again if it is a
    /// [`foreground`](crate::Command::foreground) child and this program's
    /// group holds the terminal (after `fg`; not after `bg`), then sends
    /// `SIGCONT` to its group. See [`wait_event`](Self::wait_event).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::Signal;
    /// let mut p = net_runner::Command::new("sleep").arg("0.2").spawn().await?;
    /// p.kill(Signal::Stop)?;
    /// p.resume()?;
    /// assert!(p.wait().await?.success());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`kill`](Self::kill).
    pub fn resume(&mut self) -> Result<(), Error> {
        if self.link.exit.is_some() {
            return Ok(());
        }
        if let Some(t) = &self.link.terminal {
            t.give_to_child();
        }
        // Not `kill`: continuing is no reason to call its end "killed".
        send_ignoring_gone(
            self.control_fd(),
            &ToShepherd::Signal {
                signal: Signal::Cont.as_raw(),
            },
        )
    }

    /// Non-blocking: the exit status if the child has exited.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("sleep").arg("10").spawn().await?;
    /// assert_eq!(p.try_wait()?, None);
    /// # Ok(()) }
    /// ```
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        let waker = futures_util::task::noop_waker_ref();
        match self.poll_wait(&mut Context::from_waker(waker)) {
            Poll::Ready(r) => r.map(Some),
            Poll::Pending => Ok(None),
        }
    }

    /// Whether the child is still running.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("true").spawn().await?;
    /// p.wait().await?;
    /// assert!(!p.is_alive());
    /// # Ok(()) }
    /// ```
    pub fn is_alive(&mut self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// The exit status; [`Error::Timeout`] (with the status, no output:
    /// that is the caller's to read) when the shepherd stopped the process
    /// at the command's timeout.
    pub(crate) fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<Result<ExitStatus, Error>> {
        let status = std::task::ready!(self.poll_status(cx))?;
        if let (true, Some(timeout)) = (self.deadline_fired(), self.timeout) {
            return Poll::Ready(Err(Error::Timeout {
                timeout,
                output: Box::new(crate::Output {
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    status,
                    stats: self.stats(),
                }),
            }));
        }
        Poll::Ready(Ok(status))
    }

    /// The plain exit status, whatever stopped the process.
    pub(crate) fn poll_status(&mut self, cx: &mut Context<'_>) -> Poll<Result<ExitStatus, Error>> {
        let events = self.link.poll_events(cx);
        self.apply_close_stdin();
        std::task::ready!(events)?;
        Poll::Ready(match self.link.exit {
            Some((report, _)) => Ok(ExitStatus(report.termination)),
            None => Err(Error::Shepherd(crate::ShepherdError::Lost)),
        })
    }

    /// Like [`wait_status`](Self::wait_status), but also says (once each)
    /// when the stop sequence asks to close stdin, and when the child
    /// stops or continues before it exits.
    pub(crate) async fn wait_or_close_stdin(&mut self) -> Waited {
        std::future::poll_fn(|cx| {
            let polled = self.poll_status(cx);
            if self.close_stdin_requested() && !self.link.close_stdin_watched {
                self.link.close_stdin_watched = true;
                return Poll::Ready(Waited::CloseStdin);
            }
            if let Some(event) = self.take_job() {
                return Poll::Ready(Waited::Job(event));
            }
            polled.map(Waited::Exit)
        })
        .await
    }

    /// The child's latest stop or continue not yet handed out; `None` (and
    /// forgotten) once the exit is known, which is the newer news.
    fn take_job(&mut self) -> Option<ProcessEvent> {
        let event = self.link.job.take()?;
        self.link.exit.is_none().then_some(event)
    }

    /// The terminal a [`foreground`](crate::Command::foreground) child
    /// was given, for resuming it without the `Process` at hand.
    pub(crate) fn terminal(&self) -> Option<Arc<Terminal>> {
        self.link.terminal.clone()
    }

    /// The plain exit status (see [`poll_status`](Self::poll_status)).
    pub(crate) async fn wait_status(&mut self) -> Result<ExitStatus, Error> {
        std::future::poll_fn(|cx| self.poll_status(cx)).await
    }

    /// The shepherd ran the stop sequence because the timeout expired.
    pub(crate) fn deadline_fired(&self) -> bool {
        matches!(self.link.exit, Some((r, _)) if r.stopped == Some(StopCause::Deadline))
    }

    /// The stop sequence asked to close stdin: drop ours.
    fn apply_close_stdin(&mut self) {
        if self.stdin.is_some() && self.counters.close_stdin.load(Relaxed) {
            self.stdin = None;
        }
    }

    /// Whether the stop sequence has asked to close stdin.
    pub(crate) fn close_stdin_requested(&self) -> bool {
        self.counters.close_stdin.load(Relaxed)
    }

    /// Handles what the shepherd sends while the caller waits on something
    /// else (the pipes). The pump runs it alongside its reads, so that a
    /// lost shepherd ends `run` and the streams instead of leaving them
    /// waiting for output that holders of the pipes never send. Completes
    /// once, when the exit report arrives, and otherwise when the stop
    /// sequence asks to close stdin or the child stops or continues.
    pub(crate) async fn watch(&mut self) -> Watch {
        std::future::poll_fn(|cx| {
            let _ = self.link.poll_events(cx);
            self.apply_close_stdin();
            if self.close_stdin_requested() && !self.link.close_stdin_watched {
                self.link.close_stdin_watched = true;
                return Poll::Ready(Watch::CloseStdin);
            }
            if let Some(event) = self.take_job() {
                return Poll::Ready(Watch::Job(event));
            }
            if self.link.exit.is_some() && !self.link.exit_watched {
                self.link.exit_watched = true;
                return Poll::Ready(Watch::Exited);
            }
            Poll::Pending
        })
        .await
    }

    /// Graceful stop: runs the command's stop sequence in the shepherd
    /// (default: SIGTERM to the group, SIGKILL after the kill timeout),
    /// then waits for the exit.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("sleep").arg("10").spawn().await?;
    /// let status = p.shutdown().await?;
    /// assert_eq!(status.signal_kind(), Some(net_runner::Signal::Term));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the stop is under way once the first poll sent it, and
    /// the shepherd completes it whatever happens to the future.
    pub async fn shutdown(&mut self) -> Result<ExitStatus, Error> {
        if self.link.exit.is_none() {
            self.counters.caller_stopped.store(true, Relaxed);
        }
        self.start_shutdown()?;
        self.wait().await
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The command's overall timeout.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Starts the stop sequence (for the library's own reasons).
    pub(crate) fn start_shutdown(&self) -> Result<(), Error> {
        if self.link.exit.is_some() {
            return Ok(());
        }
        send_ignoring_gone(self.control_fd(), &ToShepherd::Shutdown)
    }

    /// Statistics so far; CPU time and peak memory once the child exited.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("echo").arg("hi").spawn().await?;
    /// while p.read().await?.is_some() {}
    /// p.wait().await?;
    /// assert_eq!(p.stats().bytes_out, 3);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        self.counters.fill(&mut stats);
        match self.link.exit {
            Some((report, at)) => {
                stats.wall_time = at.duration_since(self.started);
                stats.exit_status = Some(ExitStatus(report.termination));
                stats.user_time = Some(Duration::from_micros(report.user_time_us));
                stats.system_time = Some(Duration::from_micros(report.system_time_us));
                stats.max_rss_bytes = Some(report.max_rss_kib * 1024);
                stats.end = Some(self.end(&report));
                stats.cgroup = self.link.cgroup_report.map(crate::CgroupStats::from);
            }
            None => stats.wall_time = self.started.elapsed(),
        }
        stats
    }
}

impl Process {
    /// How the run ended, from the exit report and what was asked here.
    fn end(&self, report: &ExitReport) -> End {
        match (report.stopped, self.counters.library_stop.load(Relaxed)) {
            (Some(StopCause::Deadline), _) => End::Timeout,
            (_, STOP_MAX_OUTPUT) => End::MaxOutput,
            (_, STOP_IDLE) => End::IdleTimeout,
            (Some(StopCause::OwnerGone | StopCause::Signalled), _) => End::OwnerGone,
            (Some(StopCause::Requested), _) => End::Killed,
            (None, _) => match report.termination {
                Termination::Exited(_) => End::Exited,
                // SIGKILL with an OOM kill recorded in its cgroup: the
                // kernel, not a person, killed it.
                Termination::Signaled { signal: 9, .. }
                    if self
                        .link
                        .cgroup_report
                        .is_some_and(|r| r.oom_kills.unwrap_or(0) > 0) =>
                {
                    End::OomKilled
                }
                Termination::Signaled { .. } if self.counters.caller_stopped.load(Relaxed) => {
                    End::Killed
                }
                Termination::Signaled { .. } => End::Signalled,
            },
        }
    }
}

impl Link {
    /// Handles the shepherd's messages until the outcome is known: `Ready`
    /// once the exit was reported or the channel closed.
    fn poll_events(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            if self.exit.is_some() || self.shepherd_done {
                return Poll::Ready(Ok(()));
            }
            match std::task::ready!(self.control.poll_recv(cx)) {
                Ok(Some(FromShepherd::Exited(report))) => {
                    self.exit = Some((report, Instant::now()));
                    self.shepherd_finishing();
                    if let Some(t) = &self.terminal {
                        t.take_back();
                    }
                }
                Ok(Some(FromShepherd::ChildStopped { signal })) => {
                    // As a shell does when its job stops.
                    if let Some(t) = &self.terminal {
                        t.take_back();
                    }
                    self.job = Some(ProcessEvent::Stopped(signal));
                }
                Ok(Some(FromShepherd::ChildContinued)) => {
                    self.job = Some(ProcessEvent::Continued);
                }
                Ok(Some(FromShepherd::CloseStdin)) => {
                    self.counters.close_stdin.store(true, Relaxed);
                }
                Ok(Some(FromShepherd::CgroupStats(report))) => {
                    self.cgroup_report = Some(report);
                }
                Ok(Some(FromShepherd::Error { message })) => {
                    tracing::debug!(pid = self.pid, %message, "shepherd reported an error");
                }
                Ok(Some(other)) => {
                    tracing::debug!(pid = self.pid, ?other, "unexpected message from shepherd");
                }
                Ok(None) => {
                    self.shepherd_done = true;
                    self.shepherd_finishing();
                    self.kill_orphaned_group();
                    if let Some(t) = &self.terminal {
                        t.take_back();
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// The shepherd is gone without reporting the child's exit: it was
    /// killed, or it crashed. The child dies by its `PR_SET_PDEATHSIG`, but
    /// the child's own children do not, and no one else will clean them
    /// up: SIGKILL the child's process group.
    ///
    /// Through the pidfd taken at spawn, with `PIDFD_SIGNAL_PROCESS_GROUP`
    /// (Linux 6.9+): the kernel resolves the group from its own pid object,
    /// not from the number, so even if the loss is noticed hours later and
    /// the number has been recycled by another group, only our group is
    /// hit. Without a pidfd (older kernels) nothing is sent: a stray
    /// grandchild is the lesser harm than a signal to a stranger.
    fn kill_orphaned_group(&self) {
        match &self.leader {
            Some(pidfd) => {
                if let Err(e) = sys::pidfd_kill_group(pidfd, libc::SIGKILL) {
                    tracing::warn!(pid = self.pid, error = %e, "cannot kill the orphaned process group");
                }
            }
            None => tracing::warn!(
                pid = self.pid,
                "shepherd lost and no pidfd for the child: its descendants may survive"
            ),
        }
    }

    /// The shepherd reported the exit or closed the channel: it exits in
    /// a moment. Handed to the reaper now, unless it was forked for a
    /// program that exits with its `Process` alive (a command-line tool):
    /// then only once the reaper thread runs anyway, or at drop.
    fn shepherd_finishing(&mut self) {
        if !self.reap_at_drop || reaper::running() {
            self.release_shepherd();
        }
    }

    /// Hands the shepherd's pid to the reaper, once.
    fn release_shepherd(&mut self) {
        if !self.shepherd_released {
            self.shepherd_released = true;
            reaper::reap_then(self.shepherd_pid, self.cgroup.take());
        }
    }

    /// Runs `io` (a read or write on the child's pipes) while handling the
    /// control channel, so that a shepherd lost meanwhile gets the group
    /// killed, which ends the read or write.
    async fn guard<T>(&mut self, io: impl std::future::Future<Output = T>) -> T {
        let mut io = std::pin::pin!(io);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = io.as_mut().poll(cx) {
                return Poll::Ready(v);
            }
            let _ = self.poll_events(cx);
            Poll::Pending
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.link.exit.is_none() && !self.link.shepherd_done {
            // A shepherd that died unnoticed (nothing polled the channel
            // since) leaves the child's group to us: look now, without
            // waiting, and kill the group if the channel is closed.
            self.link.control.read_available();
            let waker = futures_util::task::noop_waker_ref();
            let _ = self.link.poll_events(&mut Context::from_waker(waker));
        }
        // Closing the channel (when the fields drop, right after this) tells
        // a live shepherd to clean up; the reaper collects it after.
        self.link.release_shepherd();
        if let Some(t) = &self.link.terminal {
            t.take_back();
        }
    }
}
