//! Stop sequences: how a process is stopped, step by step.

use std::time::Duration;

use net_runner_proto::{StopAction, StopStep};

use crate::Signal;

/// The steps the shepherd runs to stop a process: each step acts, then
/// waits; after the last wait, whatever is left gets SIGKILL. An empty
/// sequence is the default: SIGTERM, wait the kill timeout, SIGKILL.
///
/// The shepherd runs the sequence, so it completes even when the owner
/// stalls or dies midway. It is used on timeout, idle timeout,
/// `max_output`, [`Process::shutdown`](crate::Process::shutdown), drop of
/// a running process and owner death.
///
/// ```
/// use std::time::Duration;
/// use net_runner::{Signal, StopSequence};
/// // close stdin, wait 1 s; SIGINT, wait 2 s; SIGTERM, wait the kill
/// // timeout; SIGKILL.
/// let stop = StopSequence::new()
///     .close_stdin(Duration::from_secs(1))
///     .signal(Signal::Int, Duration::from_secs(2))
///     .signal_then_kill_timeout(Signal::Term);
/// assert_eq!(stop.len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopSequence {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Signal(Signal, Option<Duration>),
    CloseStdin(Option<Duration>),
}

impl StopSequence {
    /// An empty sequence (on its own: the default one).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `signal` to the process group (and to escaped descendants),
    /// then waits `wait`.
    pub fn signal(mut self, signal: Signal, wait: Duration) -> Self {
        self.steps.push(Step::Signal(signal, Some(wait)));
        self
    }

    /// Sends `signal`, then waits the command's
    /// [`kill_timeout`](crate::Command::kill_timeout).
    pub fn signal_then_kill_timeout(mut self, signal: Signal) -> Self {
        self.steps.push(Step::Signal(signal, None));
        self
    }

    /// Closes the child's stdin, then waits `wait`. The library holds the
    /// write end, so the shepherd asks the library to close it: the
    /// `Process` (and `run`/streams feeding input) drop it at once, a
    /// taken [`ChildStdin`](crate::ChildStdin) on its next write. If the
    /// owner is gone, its end is already closed.
    pub fn close_stdin(mut self, wait: Duration) -> Self {
        self.steps.push(Step::CloseStdin(Some(wait)));
        self
    }

    /// Number of steps (the final SIGKILL is not counted).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// No steps: the default sequence is used.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The wire form, waits without a value resolved to `kill_timeout`.
    pub(crate) fn to_wire(&self, kill_timeout: Duration) -> Vec<StopStep> {
        let ms = |d: Option<Duration>| {
            d.unwrap_or(kill_timeout)
                .as_millis()
                .min(u128::from(u64::MAX)) as u64
        };
        self.steps
            .iter()
            .map(|step| match *step {
                Step::Signal(sig, wait) => StopStep {
                    action: StopAction::Signal(sig.as_raw()),
                    wait_ms: ms(wait),
                },
                Step::CloseStdin(wait) => StopStep {
                    action: StopAction::CloseStdin,
                    wait_ms: ms(wait),
                },
            })
            .collect()
    }
}
