//! What a daemon reports: its state, each start's record, its errors and
//! its events.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::{Error, ExitStatus};

/// Where a [`Daemon`](super::Daemon) is in its life.
///
/// ```text
///            spawn ok               ready (or no readiness check)
/// Starting ───────────▶ (running) ──────────────▶ Ready
///    ▲                    │ exit / idle / ready timeout      │ exit / idle
///    │ delay over         ▼                                  ▼
///    └────────────── BackingOff ◀── policy says restart, intensity allows
///                         │ limit reached          policy says no
///                         ▼                          ▼
///                       Failed                    Stopped ◀── stop() / drop
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DaemonState {
    /// The program is being started, or runs and is not ready yet.
    Starting,
    /// The program runs and passed its readiness check (or has none).
    Ready,
    /// The program ended; it is restarted when the backoff delay is over.
    BackingOff,
    /// A stop was asked for: the stop sequence runs.
    Stopping,
    /// Stopped by [`stop`](super::Daemon::stop) or drop, or ended and not
    /// restarted by the policy.
    Stopped,
    /// Gave up: the restart limit was reached, or it never became ready.
    Failed,
}

impl fmt::Display for DaemonState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DaemonState::Starting => "starting",
            DaemonState::Ready => "ready",
            DaemonState::BackingOff => "backing off",
            DaemonState::Stopping => "stopping",
            DaemonState::Stopped => "stopped",
            DaemonState::Failed => "failed",
        })
    }
}

/// How one run of the program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunEnd {
    /// It exited, or died of a signal, on its own.
    Exited(ExitStatus),
    /// It was stopped because it wrote nothing for the command's
    /// [`idle_timeout`](crate::Command::idle_timeout) (a failure).
    IdleTimeout(ExitStatus),
    /// It was stopped at the command's [`timeout`](crate::Command::timeout)
    /// (a failure).
    Timeout(ExitStatus),
    /// It was stopped because it did not become ready within the ready
    /// timeout (a failure).
    ReadyTimeout(ExitStatus),
    /// It was stopped by [`Daemon::stop`](super::Daemon::stop) or a drop.
    Stopped(ExitStatus),
    /// It could not be started; the message says why.
    SpawnFailed(String),
    /// Its shepherd died without reporting the exit (the program's group
    /// was killed).
    Lost,
}

impl RunEnd {
    /// The exit status, when the program ran and its exit was reported.
    ///
    /// ```
    /// use net_runner::daemon::RunEnd;
    /// assert_eq!(RunEnd::Lost.status(), None);
    /// ```
    pub fn status(&self) -> Option<ExitStatus> {
        match self {
            RunEnd::Exited(s)
            | RunEnd::IdleTimeout(s)
            | RunEnd::Timeout(s)
            | RunEnd::ReadyTimeout(s)
            | RunEnd::Stopped(s) => Some(*s),
            RunEnd::SpawnFailed(_) | RunEnd::Lost => None,
        }
    }

    /// Whether this counts as a failure for [`Restart::OnFailure`](super::Restart::OnFailure):
    /// everything but an exit with status 0 and a stop asked for.
    ///
    /// ```
    /// use net_runner::daemon::RunEnd;
    /// assert!(RunEnd::SpawnFailed("EAGAIN".into()).is_failure());
    /// ```
    pub fn is_failure(&self) -> bool {
        match self {
            RunEnd::Exited(s) => !s.success(),
            RunEnd::Stopped(_) => false,
            _ => true,
        }
    }
}

impl fmt::Display for RunEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = |f: &mut fmt::Formatter<'_>, s: &ExitStatus| match (s.code(), s.signal()) {
            (Some(c), _) => write!(f, "exit status {c}"),
            (_, Some(n)) => match s.signal_kind() {
                Some(sig) => write!(f, "killed by {sig:?} (signal {n})"),
                None => write!(f, "killed by signal {n}"),
            },
            _ => write!(f, "{s:?}"),
        };
        match self {
            RunEnd::Exited(s) => status(f, s),
            RunEnd::IdleTimeout(s) => {
                f.write_str("stopped for silence (idle timeout), ")?;
                status(f, s)
            }
            RunEnd::Timeout(s) => {
                f.write_str("stopped at its timeout, ")?;
                status(f, s)
            }
            RunEnd::ReadyTimeout(s) => {
                f.write_str("not ready in time, stopped, ")?;
                status(f, s)
            }
            RunEnd::Stopped(s) => {
                f.write_str("stopped, ")?;
                status(f, s)
            }
            RunEnd::SpawnFailed(m) => write!(f, "could not start: {m}"),
            RunEnd::Lost => f.write_str("its shepherd died"),
        }
    }
}

/// One start of the program, in a daemon's history.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StartRecord {
    /// 1 for the first start, then counting every restart.
    pub number: u64,
    /// When the start began.
    pub started_at: SystemTime,
    /// The backoff delay waited before this start (zero for the first).
    pub delay: Duration,
    /// The program's pid (`None` if the spawn failed).
    pub pid: Option<u32>,
    /// Whether it passed its readiness check (`true` without one).
    pub ready: bool,
    /// How long it ran, once it ended.
    pub uptime: Option<Duration>,
    /// How it ended; `None` while it runs.
    pub end: Option<RunEnd>,
}

/// A snapshot of a daemon (see [`Daemon::status`](super::Daemon::status)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DaemonStatus {
    /// The daemon's name.
    pub name: String,
    /// The running program's pid (also its process group id).
    pub os_pid: Option<u32>,
    /// Where it is.
    pub state: DaemonState,
    /// How many times the program was restarted.
    pub restarts: u64,
    /// The last run's exit status.
    pub last_exit: Option<ExitStatus>,
    /// How long the current run has been up.
    pub uptime: Option<Duration>,
    /// The starts, oldest first: the last [`HISTORY_LEN`](super::HISTORY_LEN).
    pub history: Vec<StartRecord>,
}

/// Why a daemon could not start or gave up. Each variant that follows runs
/// carries the history of starts (oldest first).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The first start failed: bad input, program not found, ... Nothing
    /// runs.
    #[error("daemon {name}: {source}")]
    Spawn {
        /// The daemon's name.
        name: String,
        /// Why.
        #[source]
        source: Error,
    },
    /// The program did not become ready within the ready timeout at its
    /// first start; it was stopped (its tree killed).
    #[error("daemon {name}: not ready within {timeout:?}; stopped")]
    ReadyTimeout {
        /// The daemon's name.
        name: String,
        /// The ready timeout.
        timeout: Duration,
        /// The starts.
        history: Vec<StartRecord>,
    },
    /// The program ended before it became ready at its first start, and
    /// the policy does not restart it.
    #[error("daemon {name}: ended before it was ready ({end})")]
    EndedBeforeReady {
        /// The daemon's name.
        name: String,
        /// How it ended.
        end: RunEnd,
        /// The starts.
        history: Vec<StartRecord>,
    },
    /// The restart limit was reached: more than `max_restarts` restarts
    /// within `within`. Nothing runs any more.
    #[error("daemon {name}: gave up after {restarts} restarts within {within:?} (last run: {})", last_end(.history))]
    GaveUp {
        /// The daemon's name.
        name: String,
        /// The limit.
        restarts: u32,
        /// Its window.
        within: Duration,
        /// The starts.
        history: Vec<StartRecord>,
    },
    /// The daemon's setup failed (the notify socket could not be made, the
    /// supervisor task died).
    #[error("daemon {name}: {message}")]
    Setup {
        /// The daemon's name.
        name: String,
        /// What failed.
        message: String,
    },
}

fn last_end(history: &[StartRecord]) -> String {
    match history.last().and_then(|r| r.end.as_ref()) {
        Some(end) => end.to_string(),
        None => "unknown".to_owned(),
    }
}

impl DaemonError {
    /// The history of starts carried by the error (empty for `Spawn` and
    /// `Setup`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use net_runner::{daemon::Daemon, Command};
    /// let err = Daemon::builder(Command::new("no-such-program-xyz")).start().await.unwrap_err();
    /// assert!(err.history().is_empty());
    /// # }
    /// ```
    pub fn history(&self) -> &[StartRecord] {
        match self {
            DaemonError::ReadyTimeout { history, .. }
            | DaemonError::EndedBeforeReady { history, .. }
            | DaemonError::GaveUp { history, .. } => history,
            DaemonError::Spawn { .. } | DaemonError::Setup { .. } => &[],
        }
    }
}

/// What happened, as it happens (see
/// [`DaemonBuilder::on_event`](super::DaemonBuilder::on_event)). Every
/// event is also logged through `tracing` with the daemon's name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaemonEvent {
    /// Start number `number` began with this pid.
    Started {
        /// Which start (1 for the first).
        number: u64,
        /// The program's pid.
        pid: u32,
    },
    /// The program passed its readiness check.
    Ready {
        /// The program's pid.
        pid: u32,
    },
    /// A run ended.
    Ended {
        /// The program's pid, if it started.
        pid: Option<u32>,
        /// How it ended.
        end: RunEnd,
    },
    /// It is restarted after `delay`.
    Restarting {
        /// The backoff delay.
        delay: Duration,
        /// Restarts so far, this one included.
        restarts: u64,
    },
    /// The restart limit was reached (or the first start never became
    /// ready): the daemon gave up.
    GaveUp,
    /// The daemon stopped.
    Stopped,
}
