//! Daemons: long-running programs kept running by a small supervisor.
//!
//! A [`Daemon`] starts a [`Command`] (a template it re-runs), drains its
//! output into an [`OutputSink`], waits for it to be ready
//! ([`Readiness`]), and restarts it by a [`Restart`] policy with
//! exponential backoff and an OTP-style restart intensity (at most N
//! restarts within T, then it gives up with [`DaemonError::GaveUp`]
//! carrying the history of starts).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use net_runner::daemon::{Daemon, DaemonState, Readiness, Restart};
//! use net_runner::Command;
//!
//! let mut server = Command::new("sh");
//! server.args(["-c", "echo starting; sleep 0.1; echo listening; exec sleep 60"]);
//! let daemon = Daemon::builder(server)
//!     .name("server")
//!     .restart(Restart::OnFailure)
//!     .max_restarts(5, Duration::from_secs(60))
//!     .backoff(Duration::from_millis(100), Duration::from_secs(10))
//!     .ready(Readiness::pattern("^listening$")?)
//!     .ready_timeout(Duration::from_secs(10))
//!     .start()
//!     .await?; // returns once "listening" was printed
//! assert_eq!(daemon.status().state, DaemonState::Ready);
//! let status = daemon.stop().await?; // SIGTERM, the kill timeout, SIGKILL
//! assert_eq!(status.state, DaemonState::Stopped);
//! # Ok(()) }
//! ```
//!
//! The supervisor is a tokio task. Dropping the [`Daemon`] stops the
//! program the same way without blocking; if the whole program dies, the
//! shepherd kills the program's tree as for any process.

mod output;
mod policy;
mod ready;
mod status;

use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{oneshot, watch};

use crate::pump::{Abort, Pump, PumpError};
use crate::{ChildStdin, Chunk, Command, Error, ExitStatus, ProcessHandle, Signal};

pub use output::{DaemonOutput, Framing, OutputSink, Overflow};
pub use policy::Restart;
pub use ready::Readiness;
pub use status::{DaemonError, DaemonEvent, DaemonState, DaemonStatus, RunEnd, StartRecord};

use output::{Delivery, LineBuf};
use policy::{Backoff, Intensity};
use ready::{NotifySocket, ReadyKind};

/// How many starts [`DaemonStatus::history`] and the errors keep (the
/// most recent).
pub const HISTORY_LEN: usize = 64;

/// Default restart limit: at most 5 restarts ...
pub const DEFAULT_MAX_RESTARTS: u32 = 5;
/// ... within 60 s.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(60);
/// Default first backoff delay.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(100);
/// Default longest backoff delay.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default uptime after which the backoff starts again from its first delay.
pub const DEFAULT_RESET_AFTER: Duration = Duration::from_secs(30);
/// Default time a start has to become ready.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

type EventFn = Box<dyn FnMut(&DaemonEvent) + Send>;

/// Configures and starts a [`Daemon`] (see [`Daemon::builder`]).
pub struct DaemonBuilder {
    command: Command,
    name: Option<String>,
    restart: Restart,
    max_restarts: u32,
    within: Duration,
    backoff: Backoff,
    reset_after: Duration,
    ready: Option<Readiness>,
    ready_timeout: Duration,
    sink: OutputSink,
    on_event: Option<EventFn>,
}

impl std::fmt::Debug for DaemonBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonBuilder")
            .field("command", &self.command)
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("max_restarts", &self.max_restarts)
            .field("within", &self.within)
            .field("ready", &self.ready)
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl DaemonBuilder {
    /// The name in logs, events, errors and the status (default: the
    /// program's file name).
    ///
    /// ```
    /// let b = net_runner::daemon::Daemon::builder(net_runner::Command::new("sleep")).name("nap");
    /// # drop(b);
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// When to restart (default [`Restart::OnFailure`]).
    ///
    /// ```
    /// use net_runner::daemon::{Daemon, Restart};
    /// let b = Daemon::builder(net_runner::Command::new("sleep")).restart(Restart::Always);
    /// # drop(b);
    /// ```
    pub fn restart(mut self, policy: Restart) -> Self {
        self.restart = policy;
        self
    }

    /// At most `max` restarts within any window of `within`; one more
    /// failure and the daemon gives up with [`DaemonError::GaveUp`] (so a
    /// program that always fails is started `max + 1` times). Default 5
    /// within 60 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = net_runner::daemon::Daemon::builder(net_runner::Command::new("sleep"))
    ///     .max_restarts(3, Duration::from_secs(10));
    /// # drop(b);
    /// ```
    pub fn max_restarts(mut self, max: u32, within: Duration) -> Self {
        self.max_restarts = max;
        self.within = within;
        self
    }

    /// The backoff before a restart: `first`, doubling each time, at most
    /// `max` (defaults 100 ms and 30 s). A jitter of up to +25 % is added
    /// (below the cap each delay stays longer than the one before).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = net_runner::daemon::Daemon::builder(net_runner::Command::new("sleep"))
    ///     .backoff(Duration::from_millis(50), Duration::from_secs(5));
    /// # drop(b);
    /// ```
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff.base = first;
        self.backoff.max = max.max(first);
        self
    }

    /// The fraction of random delay added to each backoff, 0.0 to 1.0
    /// (default 0.25).
    ///
    /// ```
    /// let b = net_runner::daemon::Daemon::builder(net_runner::Command::new("sleep")).jitter(0.0);
    /// # drop(b);
    /// ```
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.backoff.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// A run that stayed up this long resets the backoff to its first
    /// delay (default 30 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = net_runner::daemon::Daemon::builder(net_runner::Command::new("sleep"))
    ///     .reset_after(Duration::from_secs(5));
    /// # drop(b);
    /// ```
    pub fn reset_after(mut self, uptime: Duration) -> Self {
        self.reset_after = uptime;
        self
    }

    /// How to know the program is ready (default: as soon as it runs).
    /// [`start`](Self::start) returns only once it is; every restart is
    /// checked again.
    ///
    /// ```
    /// use net_runner::daemon::{Daemon, Readiness};
    /// let b = Daemon::builder(net_runner::Command::new("sleep")).ready(Readiness::tcp("127.0.0.1:8080"));
    /// # drop(b);
    /// ```
    pub fn ready(mut self, readiness: Readiness) -> Self {
        self.ready = Some(readiness);
        self
    }

    /// How long each start has to become ready (default 30 s). At the
    /// first start: the program is stopped and `start` fails with
    /// [`DaemonError::ReadyTimeout`]. After a restart: the run is stopped
    /// and counts as a failure.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = net_runner::daemon::Daemon::builder(net_runner::Command::new("sleep"))
    ///     .ready_timeout(Duration::from_secs(5));
    /// # drop(b);
    /// ```
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Where the output goes (default [`OutputSink::log`]). It is always
    /// read, so the program never blocks on a full pipe (unless a channel
    /// with [`Overflow::Block`] says so).
    ///
    /// ```
    /// use net_runner::daemon::{Daemon, OutputSink};
    /// let b = Daemon::builder(net_runner::Command::new("sleep")).output(OutputSink::discard());
    /// # drop(b);
    /// ```
    pub fn output(mut self, sink: OutputSink) -> Self {
        self.sink = sink;
        self
    }

    /// Calls `f` with every [`DaemonEvent`] (start, ready, end, restart,
    /// give-up, stop), on the daemon's task: keep it quick. Events are also
    /// logged through `tracing` at INFO.
    ///
    /// ```
    /// use net_runner::daemon::{Daemon, DaemonEvent};
    /// let b = Daemon::builder(net_runner::Command::new("sleep")).on_event(|e| {
    ///     if let DaemonEvent::Restarting { delay, .. } = e {
    ///         eprintln!("restarting in {delay:?}");
    ///     }
    /// });
    /// # drop(b);
    /// ```
    pub fn on_event(mut self, f: impl FnMut(&DaemonEvent) + Send + 'static) -> Self {
        self.on_event = Some(Box::new(f));
        self
    }

    /// Starts the program and returns once it is ready (at once without a
    /// [`ready`](Self::ready) check). Needs a tokio runtime: the
    /// supervisor is a task on it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::daemon::DaemonError> {
    /// let mut cmd = net_runner::Command::new("sleep");
    /// cmd.arg("60");
    /// let d = net_runner::daemon::Daemon::builder(cmd).start().await?;
    /// assert!(d.os_pid().is_some());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`DaemonError::Spawn`] if the first start fails (bad input, not
    /// found, a one-shot [`input_stream`](Command::input_stream) which a
    /// restart could not replay, no runtime);
    /// [`DaemonError::ReadyTimeout`], [`DaemonError::EndedBeforeReady`],
    /// [`DaemonError::GaveUp`] if it never became ready;
    /// [`DaemonError::Setup`] if the notify socket cannot be made.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops what was started, as dropping a `Daemon`.
    pub async fn start(self) -> Result<Daemon, DaemonError> {
        let name = self.name.clone().unwrap_or_else(|| {
            let program = self.command.get_program();
            Path::new(program)
                .file_name()
                .unwrap_or(program)
                .to_string_lossy()
                .into_owned()
        });
        let name: Arc<str> = name.into();
        if self.command.has_one_shot_input() {
            return Err(DaemonError::Spawn {
                name: name.to_string(),
                source: Error::InvalidOption {
                    option: "input_stream",
                    reason: "a daemon re-runs its command: use input(bytes) or Daemon::write"
                        .into(),
                },
            });
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(DaemonError::Spawn {
                name: name.to_string(),
                source: Error::NoRuntime,
            });
        }
        let mut command = self.command;
        let notify = match self.ready.as_ref().map(|r| &r.0) {
            Some(ReadyKind::Notify) => {
                let socket = NotifySocket::bind().map_err(|e| DaemonError::Setup {
                    name: name.to_string(),
                    message: format!("cannot create the notify socket: {e}"),
                })?;
                command.env("NOTIFY_SOCKET", socket.path().as_os_str());
                Some(Arc::new(socket))
            }
            _ => None,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            name: name.clone(),
            stop: stop_tx,
            inner: Mutex::new(Inner {
                state: DaemonState::Starting,
                os_pid: None,
                restarts: 0,
                last_exit: None,
                run_started: None,
                history: VecDeque::new(),
                handle: None,
                stdin: None,
            }),
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let supervisor = Supervisor {
            command,
            restart: self.restart,
            max_restarts: self.max_restarts,
            within: self.within,
            backoff: self.backoff,
            reset_after: self.reset_after,
            ready: self.ready.map(|r| r.0),
            ready_timeout: self.ready_timeout,
            notify,
            shared: shared.clone(),
            stop: stop_rx,
            delivery: Delivery::new(self.sink, name.clone()),
            on_event: self.on_event,
            first_ready: Some(ready_tx),
        };
        let task = tokio::spawn(supervisor.run());
        // From here, dropping `daemon` (this future cancelled) stops it.
        let daemon = Daemon {
            shared,
            task: Some(task),
        };
        match ready_rx.await {
            Ok(()) => Ok(daemon),
            Err(_) => Err(daemon.finish().await.err().unwrap_or(DaemonError::Setup {
                name: name.to_string(),
                message: "stopped before it was ready".into(),
            })),
        }
    }
}

/// A supervised long-running program (see the [module](self)).
///
/// Dropping a `Daemon` stops its program with the command's stop sequence
/// (by default SIGTERM, the kill timeout, SIGKILL) without blocking; the
/// supervisor task finishes that in the background.
#[derive(Debug)]
pub struct Daemon {
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<Result<DaemonStatus, DaemonError>>>,
}

/// A cheap, cloneable handle on a [`Daemon`]: status, stdin, signals,
/// asking for a stop. It does not keep the daemon running.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut cmd = net_runner::Command::new("sleep");
/// cmd.arg("60");
/// let d = net_runner::daemon::Daemon::builder(cmd).start().await?;
/// let h = d.handle();
/// h.request_stop();
/// let status = d.wait().await?;
/// assert_eq!(status.state, net_runner::daemon::DaemonState::Stopped);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DaemonHandle {
    shared: Arc<Shared>,
}

impl Daemon {
    /// A builder for a daemon running `command` (a template: each start
    /// runs it afresh, so clone and adapt a `Command` freely).
    ///
    /// ```
    /// let b = net_runner::daemon::Daemon::builder(net_runner::Command::new("sleep"));
    /// # drop(b);
    /// ```
    pub fn builder(command: Command) -> DaemonBuilder {
        DaemonBuilder {
            command,
            name: None,
            restart: Restart::default(),
            max_restarts: DEFAULT_MAX_RESTARTS,
            within: DEFAULT_WITHIN,
            backoff: Backoff {
                base: DEFAULT_BACKOFF,
                max: DEFAULT_BACKOFF_MAX,
                jitter: 0.25,
            },
            reset_after: DEFAULT_RESET_AFTER,
            ready: None,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            sink: OutputSink::default(),
            on_event: None,
        }
    }

    /// A handle for use elsewhere.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut cmd = net_runner::Command::new("sleep"); cmd.arg("60");
    /// let d = net_runner::daemon::Daemon::builder(cmd).name("nap").start().await?;
    /// assert_eq!(d.handle().name(), "nap");
    /// # Ok(()) }
    /// ```
    pub fn handle(&self) -> DaemonHandle {
        DaemonHandle {
            shared: self.shared.clone(),
        }
    }

    /// The daemon's name.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut cmd = net_runner::Command::new("sleep"); cmd.arg("60");
    /// let d = net_runner::daemon::Daemon::builder(cmd).start().await?;
    /// assert_eq!(d.name(), "sleep");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A snapshot: state, pid, restarts, last exit, uptime, history.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut cmd = net_runner::Command::new("sleep"); cmd.arg("60");
    /// let d = net_runner::daemon::Daemon::builder(cmd).start().await?;
    /// let s = d.status();
    /// assert_eq!((s.restarts, s.history.len()), (0, 1));
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> DaemonStatus {
        self.shared.snapshot()
    }

    /// The running program's pid (its process group id too).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut cmd = net_runner::Command::new("sleep"); cmd.arg("60");
    /// let d = net_runner::daemon::Daemon::builder(cmd).start().await?;
    /// assert_eq!(d.os_pid(), d.status().os_pid);
    /// # Ok(()) }
    /// ```
    pub fn os_pid(&self) -> Option<u32> {
        self.shared.lock().os_pid
    }

    /// Writes to the running program's stdin (see [`DaemonHandle::write`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use net_runner::daemon::{Daemon, OutputSink, Framing, Overflow};
    /// let (sink, mut rx) = OutputSink::channel(8, Overflow::Block, Framing::Lines);
    /// let d = Daemon::builder(net_runner::Command::new("cat")).output(sink).start().await?;
    /// d.write(b"ping\n").await?;
    /// assert_eq!(rx.recv().await, Some(net_runner::Chunk::Stdout("ping".into())));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`DaemonHandle::write`].
    pub async fn write(&self, data: &[u8]) -> Result<(), Error> {
        self.handle().write(data).await
    }

    /// Sends `signal` to the running program's process group; a no-op
    /// while none runs (see [`DaemonHandle::signal`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut cmd = net_runner::Command::new("sleep"); cmd.arg("60");
    /// let d = net_runner::daemon::Daemon::builder(cmd).start().await?;
    /// d.signal(net_runner::Signal::Cont)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ProcessHandle::kill`].
    pub fn signal(&self, signal: Signal) -> Result<(), Error> {
        self.handle().signal(signal)
    }

    /// Stops the daemon: the program's stop sequence (by default SIGTERM,
    /// the kill timeout, SIGKILL), or the backoff cut short; then returns
    /// the final status.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut cmd = net_runner::Command::new("sleep"); cmd.arg("60");
    /// let d = net_runner::daemon::Daemon::builder(cmd).start().await?;
    /// let s = d.stop().await?;
    /// assert_eq!(s.last_exit.unwrap().signal_kind(), Some(net_runner::Signal::Term));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The daemon's own error if it had already given up
    /// ([`DaemonError::GaveUp`]).
    pub async fn stop(self) -> Result<DaemonStatus, DaemonError> {
        self.shared.stop.send_replace(true);
        self.finish().await
    }

    /// Waits until the daemon ends by itself (the policy did not restart
    /// the program, or it gave up) or by a stop asked through a
    /// [`DaemonHandle`]. Dropping the future stops the daemon.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use net_runner::daemon::{Daemon, Restart};
    /// let mut cmd = net_runner::Command::new("sh");
    /// cmd.args(["-c", "exit 3"]);
    /// let s = Daemon::builder(cmd).restart(Restart::Never).start().await?.wait().await?;
    /// assert_eq!(s.last_exit.unwrap().code(), Some(3));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`DaemonError::GaveUp`] when the restart limit was reached.
    pub async fn wait(self) -> Result<DaemonStatus, DaemonError> {
        self.finish().await
    }

    async fn finish(mut self) -> Result<DaemonStatus, DaemonError> {
        let task = self.task.take().expect("the task is taken only here");
        match task.await {
            Ok(result) => result,
            Err(e) => Err(DaemonError::Setup {
                name: self.shared.name.to_string(),
                message: format!("the supervisor task failed: {e}"),
            }),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The task runs the stop sequence and ends; nothing waits here.
        self.shared.stop.send_replace(true);
    }
}

impl DaemonHandle {
    /// The daemon's name.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut cmd = net_runner::Command::new("sleep"); cmd.arg("60");
    /// let d = net_runner::daemon::Daemon::builder(cmd).start().await?;
    /// assert_eq!(d.handle().name(), "sleep");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A snapshot, as [`Daemon::status`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut cmd = net_runner::Command::new("sleep"); cmd.arg("60");
    /// let d = net_runner::daemon::Daemon::builder(cmd).start().await?;
    /// assert_eq!(d.handle().status().state, net_runner::daemon::DaemonState::Ready);
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> DaemonStatus {
        self.shared.snapshot()
    }

    /// Writes to the running program's stdin. Each run has its own stdin;
    /// a write while no program runs, or after the program closed its
    /// stdin, fails.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let d = net_runner::daemon::Daemon::builder(net_runner::Command::new("cat")).start().await?;
    /// d.handle().write(b"hello\n").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`BrokenPipe`](std::io::ErrorKind::BrokenPipe)
    /// when no program runs, the command has an [`input`](Command::input)
    /// (which feeds stdin instead), or the program closed its stdin.
    pub async fn write(&self, data: &[u8]) -> Result<(), Error> {
        let stdin = self.shared.lock().stdin.clone();
        match stdin {
            Some(stdin) => Ok(stdin.lock().await.write_all(data).await?),
            None => Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the daemon's program is not running or its stdin is not ours",
            ))),
        }
    }

    /// Sends `signal` to the running program's process group; a no-op
    /// while none runs. A signal that ends the program is a run's end like
    /// any other: the policy decides about the restart.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut cmd = net_runner::Command::new("sleep"); cmd.arg("60");
    /// let d = net_runner::daemon::Daemon::builder(cmd).start().await?;
    /// d.handle().signal(net_runner::Signal::Cont)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ProcessHandle::kill`].
    pub fn signal(&self, signal: Signal) -> Result<(), Error> {
        let handle = self.shared.lock().handle.clone();
        match handle {
            Some(h) => h.kill(signal),
            None => Ok(()),
        }
    }

    /// Asks for a stop and returns at once; [`Daemon::wait`] returns when
    /// it is done.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut cmd = net_runner::Command::new("sleep"); cmd.arg("60");
    /// let d = net_runner::daemon::Daemon::builder(cmd).start().await?;
    /// d.handle().request_stop();
    /// d.wait().await?;
    /// # Ok(()) }
    /// ```
    pub fn request_stop(&self) {
        self.shared.stop.send_replace(true);
    }
}

/// What the supervisor and the handles share.
#[derive(Debug)]
struct Shared {
    name: Arc<str>,
    /// `true`: stop.
    stop: watch::Sender<bool>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: DaemonState,
    os_pid: Option<u32>,
    restarts: u64,
    last_exit: Option<ExitStatus>,
    run_started: Option<Instant>,
    history: VecDeque<StartRecord>,
    handle: Option<ProcessHandle>,
    stdin: Option<Arc<tokio::sync::Mutex<ChildStdin>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> DaemonStatus {
        let inner = self.lock();
        DaemonStatus {
            name: self.name.to_string(),
            os_pid: inner.os_pid,
            state: inner.state,
            restarts: inner.restarts,
            last_exit: inner.last_exit,
            uptime: inner.run_started.map(|t| t.elapsed()),
            history: inner.history.iter().cloned().collect(),
        }
    }

    fn set_state(&self, state: DaemonState) {
        self.lock().state = state;
    }

    fn history(&self) -> Vec<StartRecord> {
        self.lock().history.iter().cloned().collect()
    }
}

/// The supervisor task's state.
struct Supervisor {
    command: Command,
    restart: Restart,
    max_restarts: u32,
    within: Duration,
    backoff: Backoff,
    reset_after: Duration,
    ready: Option<ReadyKind>,
    ready_timeout: Duration,
    notify: Option<Arc<NotifySocket>>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    delivery: Delivery,
    on_event: Option<EventFn>,
    /// Fired when the first start is ready; `Some` until then.
    first_ready: Option<oneshot::Sender<()>>,
}

/// How a run went.
struct Outcome {
    end: RunEnd,
    /// A stop was asked for during the run.
    stopped: bool,
}

/// Why the supervisor started the stop sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Stop,
    ReadyTimeout,
}

/// What the pump gave.
enum PumpEvent {
    Chunk(Chunk),
    /// The exit is known (output may still be pending delivery).
    Exited(Result<ExitStatus, Error>),
    Done(Result<Option<ExitStatus>, PumpError>),
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Supervisor {
    async fn run(mut self) -> Result<DaemonStatus, DaemonError> {
        let mut intensity = Intensity::new(self.max_restarts, self.within);
        let mut exponent = 0u32;
        let mut delay = Duration::ZERO;
        let mut number = 0u64;
        loop {
            number += 1;
            let t0 = Instant::now();
            self.begin_start(number, delay);
            let outcome = match self.command.daemon_run().await {
                Ok(pump) => self.drive(pump, number).await,
                Err(e) if number == 1 => {
                    self.shared.set_state(DaemonState::Failed);
                    self.end_start(&RunEnd::SpawnFailed(e.to_string()), t0.elapsed());
                    return Err(DaemonError::Spawn {
                        name: self.shared.name.to_string(),
                        source: e,
                    });
                }
                Err(e) => Outcome {
                    end: RunEnd::SpawnFailed(e.to_string()),
                    stopped: *self.stop.borrow(),
                },
            };
            let uptime = t0.elapsed();
            self.end_start(&outcome.end, uptime);
            let pid = self.shared.lock().history.back().and_then(|r| r.pid);
            self.event(DaemonEvent::Ended {
                pid,
                end: outcome.end.clone(),
            });
            if outcome.stopped {
                return Ok(self.stopped());
            }
            let never_ready = self.first_ready.is_some();
            if never_ready {
                if let RunEnd::ReadyTimeout(_) = outcome.end {
                    let timeout = self.ready_timeout;
                    return Err(self.failed(|name, history| DaemonError::ReadyTimeout {
                        name,
                        timeout,
                        history,
                    }));
                }
            }
            if !self.restart.restarts(&outcome.end) {
                if never_ready {
                    let end = outcome.end.clone();
                    return Err(self.failed(|name, history| DaemonError::EndedBeforeReady {
                        name,
                        end,
                        history,
                    }));
                }
                return Ok(self.stopped());
            }
            if !intensity.allow(Instant::now()) {
                let (restarts, within) = (self.max_restarts, self.within);
                return Err(self.failed(|name, history| DaemonError::GaveUp {
                    name,
                    restarts,
                    within,
                    history,
                }));
            }
            if uptime >= self.reset_after {
                exponent = 0;
            }
            delay = self.backoff.delay(exponent, policy::random_unit());
            exponent = exponent.saturating_add(1);
            let restarts = {
                let mut inner = self.shared.lock();
                inner.restarts += 1;
                inner.state = DaemonState::BackingOff;
                inner.restarts
            };
            self.event(DaemonEvent::Restarting { delay, restarts });
            // The delay, then what a slow channel receiver has not taken
            // yet (a run's output goes before the next run's); a stop cuts
            // both short.
            let (stop, delivery) = (&mut self.stop, &mut self.delivery);
            let stopped = tokio::select! {
                () = async {
                    tokio::time::sleep(delay).await;
                    delivery.deliver().await;
                } => false,
                () = stop_requested(stop) => true,
            };
            if stopped {
                self.delivery.stop_blocking();
                return Ok(self.stopped());
            }
        }
    }

    /// Drives one run until its output is drained and its exit known.
    async fn drive(&mut self, mut pump: Pump, number: u64) -> Outcome {
        let pid = pump.process.os_pid();
        let shepherd = pump.process.shepherd_pid();
        let stdin = pump
            .process
            .take_stdin()
            .map(|s| Arc::new(tokio::sync::Mutex::new(s)));
        {
            let mut inner = self.shared.lock();
            inner.os_pid = Some(pid);
            inner.run_started = Some(Instant::now());
            inner.handle = Some(pump.process.handle());
            inner.stdin = stdin;
            if let Some(record) = inner.history.back_mut() {
                record.pid = Some(pid);
            }
        }
        self.event(DaemonEvent::Started { number, pid });

        let mut ready = self.ready.is_none();
        if ready {
            self.became_ready(pid);
        }
        let mut deadline: Option<Pin<Box<tokio::time::Sleep>>> =
            (!ready).then(|| Box::pin(tokio::time::sleep(self.ready_timeout)));
        let mut check: Option<BoxFuture> = match (&self.ready, &self.notify) {
            (Some(ReadyKind::Notify), Some(n)) => {
                let n = n.clone();
                Some(Box::pin(async move { n.ready_from(pid, shepherd).await }))
            }
            (Some(kind @ (ReadyKind::Tcp(_) | ReadyKind::Unix(_))), _) => {
                let kind = kind.clone();
                Some(Box::pin(async move { ready::probe(&kind).await }))
            }
            _ => None,
        };
        let pattern = match &self.ready {
            Some(ReadyKind::Pattern(re)) => Some(re.clone()),
            _ => None,
        };
        let mut lines = [LineBuf::default(), LineBuf::default()];
        let mut cause: Option<Cause> = None;
        let mut stop_asked = *self.stop.borrow();
        if stop_asked {
            cause = Some(Cause::Stop);
            self.shutdown(&pump);
        }
        let mut exit_seen = false;
        let done = loop {
            let blocked = self.delivery.blocked();
            let (stop, delivery) = (&mut self.stop, &mut self.delivery);
            let event = tokio::select! {
                biased;
                () = stop_requested(stop), if !stop_asked => None,
                () = sleeping(&mut deadline), if !ready && cause.is_none() => {
                    deadline = None;
                    Some(Err(Cause::ReadyTimeout))
                }
                () = optional(&mut check), if !ready => {
                    check = None;
                    Some(Ok(None))
                }
                () = delivery.deliver(), if blocked => continue,
                ev = pump_event(&mut pump, blocked, exit_seen) => Some(Ok(Some(ev))),
            };
            match event {
                None => {
                    stop_asked = true;
                    self.delivery.stop_blocking();
                    self.shared.set_state(DaemonState::Stopping);
                    if cause.is_none() {
                        cause = Some(Cause::Stop);
                        self.shutdown(&pump);
                    }
                }
                Some(Err(why)) => {
                    tracing::warn!(daemon = %self.shared.name, pid, timeout = ?self.ready_timeout, "not ready in time: stopping it");
                    cause = Some(why);
                    self.shutdown(&pump);
                }
                Some(Ok(None)) => {
                    ready = true;
                    self.became_ready(pid);
                }
                Some(Ok(Some(PumpEvent::Chunk(chunk)))) => {
                    if let (false, Some(re)) = (ready, &pattern) {
                        let (buf, bytes) = match &chunk {
                            Chunk::Stdout(b) => (&mut lines[0], b),
                            Chunk::Stderr(b) => (&mut lines[1], b),
                        };
                        buf.push(bytes, |line| {
                            ready = ready || re.is_match(&String::from_utf8_lossy(&line));
                        });
                        if ready {
                            self.became_ready(pid);
                        }
                    }
                    self.delivery.accept(chunk);
                }
                Some(Ok(Some(PumpEvent::Exited(status)))) => {
                    // Known now although output still waits for a slow
                    // receiver: the bookkeeping does not wait for it.
                    exit_seen = true;
                    let mut inner = self.shared.lock();
                    inner.last_exit = status.ok().or(inner.last_exit);
                    inner.os_pid = None;
                    inner.handle = None;
                }
                Some(Ok(Some(PumpEvent::Done(result)))) => break result,
            }
        };
        self.delivery.end_of_run();
        let stopped_for = |status| match cause {
            Some(Cause::Stop) => RunEnd::Stopped(status),
            Some(Cause::ReadyTimeout) => RunEnd::ReadyTimeout(status),
            None => RunEnd::Exited(status),
        };
        let end = match done {
            Ok(Some(status)) => stopped_for(status),
            Ok(None) => RunEnd::Lost,
            Err(PumpError::Aborted { reason, status }) => match (cause, reason) {
                (Some(_), _) => stopped_for(status),
                (None, Abort::Idle(_)) => RunEnd::IdleTimeout(status),
                (None, Abort::Timeout(_)) => RunEnd::Timeout(status),
                (None, _) => RunEnd::Exited(status),
            },
            Err(PumpError::Failed(Error::Shepherd(_))) => RunEnd::Lost,
            Err(PumpError::Failed(e)) => {
                RunEnd::SpawnFailed(format!("reading its output failed: {e}"))
            }
        };
        Outcome {
            end,
            stopped: stop_asked,
        }
    }

    fn shutdown(&self, pump: &Pump) {
        if let Err(e) = pump.process.start_shutdown() {
            tracing::debug!(daemon = %self.shared.name, error = %e, "cannot start the stop sequence");
        }
    }

    fn became_ready(&mut self, pid: u32) {
        {
            let mut inner = self.shared.lock();
            if inner.state == DaemonState::Starting {
                inner.state = DaemonState::Ready;
            }
            if let Some(record) = inner.history.back_mut() {
                record.ready = true;
            }
        }
        self.event(DaemonEvent::Ready { pid });
        if let Some(tx) = self.first_ready.take() {
            let _ = tx.send(());
        }
    }

    fn begin_start(&mut self, number: u64, delay: Duration) {
        let mut inner = self.shared.lock();
        inner.state = if *self.stop.borrow() {
            DaemonState::Stopping
        } else {
            DaemonState::Starting
        };
        inner.history.push_back(StartRecord {
            number,
            started_at: SystemTime::now(),
            delay,
            pid: None,
            ready: false,
            uptime: None,
            end: None,
        });
        while inner.history.len() > HISTORY_LEN {
            inner.history.pop_front();
        }
    }

    fn end_start(&mut self, end: &RunEnd, uptime: Duration) {
        let mut inner = self.shared.lock();
        inner.os_pid = None;
        inner.run_started = None;
        inner.handle = None;
        inner.stdin = None;
        if let Some(status) = end.status() {
            inner.last_exit = Some(status);
        }
        if let Some(record) = inner.history.back_mut() {
            record.uptime = Some(uptime);
            record.end = Some(end.clone());
        }
    }

    fn stopped(&mut self) -> DaemonStatus {
        self.shared.set_state(DaemonState::Stopped);
        self.event(DaemonEvent::Stopped);
        self.shared.snapshot()
    }

    fn failed(
        &mut self,
        error: impl FnOnce(String, Vec<StartRecord>) -> DaemonError,
    ) -> DaemonError {
        self.shared.set_state(DaemonState::Failed);
        self.event(DaemonEvent::GaveUp);
        error(self.shared.name.to_string(), self.shared.history())
    }

    fn event(&mut self, event: DaemonEvent) {
        tracing::info!(daemon = %self.shared.name, ?event, "daemon event");
        if let Some(f) = &mut self.on_event {
            f(&event);
        }
    }
}

/// The pump's next chunk, or (while delivery is blocked) just the exit.
async fn pump_event(pump: &mut Pump, blocked: bool, exit_seen: bool) -> PumpEvent {
    if !blocked {
        match pump.next().await {
            Some(Ok(chunk)) => PumpEvent::Chunk(chunk),
            Some(Err(e)) => PumpEvent::Done(Err(e)),
            None => PumpEvent::Done(Ok(pump.status())),
        }
    } else if !exit_seen {
        PumpEvent::Exited(pump.process.wait_status().await)
    } else {
        std::future::pending().await
    }
}

/// Completes when a stop is asked for (or every sender is gone).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&v| v).await;
}

async fn sleeping(timer: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match timer {
        Some(t) => t.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn optional(f: &mut Option<BoxFuture>) {
    match f {
        Some(f) => f.as_mut().await,
        None => std::future::pending().await,
    }
}
