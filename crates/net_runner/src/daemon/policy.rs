//! Restart policy, backoff and restart intensity: pure bookkeeping, no I/O.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use super::RunEnd;

/// When a [`Daemon`](super::Daemon) restarts its program.
///
/// ```
/// use net_runner::daemon::Restart;
/// assert_eq!(Restart::default(), Restart::OnFailure);
/// assert_eq!("always".parse::<Restart>(), Ok(Restart::Always));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum Restart {
    /// Never: when the program ends, the daemon ends (state `Stopped`).
    Never,
    /// When the run failed: a non-zero exit, death by a signal, the idle
    /// timeout, the command's timeout, a readiness timeout after a restart,
    /// a failed spawn. An exit with status 0 ends the daemon.
    #[default]
    OnFailure,
    /// Whenever the program ends, even with status 0.
    Always,
}

impl Restart {
    /// Whether a run that ended so is restarted.
    pub(crate) fn restarts(self, end: &RunEnd) -> bool {
        if matches!(end, RunEnd::Stopped(_)) {
            return false;
        }
        match self {
            Restart::Never => false,
            Restart::OnFailure => end.is_failure(),
            Restart::Always => true,
        }
    }
}

impl std::str::FromStr for Restart {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(Restart::Never),
            "on-failure" => Ok(Restart::OnFailure),
            "always" => Ok(Restart::Always),
            _ => Err(format!(
                "unknown restart policy {s:?} (never, on-failure, always)"
            )),
        }
    }
}

/// Exponential backoff: `base * 2^n`, plus up to `jitter * delay` at
/// random, never above `max`. The jitter is additive (at most +25 % by
/// default), so below the cap every delay is longer than the one before
/// whatever the draw; "full jitter" would not keep that order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) max: Duration,
    pub(crate) jitter: f64,
}

impl Backoff {
    /// The delay before restart number `n` (0 for the first restart after
    /// a reset); `random` is uniform in `[0, 1)`.
    pub(crate) fn delay(&self, n: u32, random: f64) -> Duration {
        let exp = self.base.saturating_mul(2u32.saturating_pow(n.min(31)));
        let jitter = exp.mul_f64((self.jitter * random).clamp(0.0, 1.0));
        exp.saturating_add(jitter).min(self.max)
    }
}

/// A uniform number in `[0, 1)` from the standard library's per-process
/// random hash keys (no `rand` dependency for a jitter).
pub(crate) fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6e65_7472_756e_6e72);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Restart intensity as an OTP supervisor counts it: at most `max`
/// restarts within any window of `within`.
#[derive(Debug, Clone)]
pub(crate) struct Intensity {
    max: u32,
    within: Duration,
    recent: VecDeque<Instant>,
}

impl Intensity {
    pub(crate) fn new(max: u32, within: Duration) -> Self {
        Intensity {
            max,
            within,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart at `now` if the limit allows it; `false` means
    /// give up (nothing recorded).
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        while let Some(&first) = self.recent.front() {
            if now.duration_since(first) >= self.within {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() as u32 >= self.max {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_keeps_the_order() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            jitter: 0.25,
        };
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(100));
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay(3, 0.0), Duration::from_millis(800));
        assert_eq!(b.delay(4, 0.0), Duration::from_millis(1600));
        assert_eq!(b.delay(5, 0.0), Duration::from_secs(2));
        assert_eq!(b.delay(500, 0.99), Duration::from_secs(2));
        // The worst draws: a high one, then a low one, still grow.
        for n in 0..4 {
            assert!(b.delay(n, 0.999) < b.delay(n + 1, 0.0), "{n}");
        }
        assert_eq!(b.delay(5, 0.999), Duration::from_secs(2));
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..1000 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r), "{r}");
        }
    }

    #[test]
    fn intensity_allows_max_within_the_window() {
        let t0 = Instant::now();
        let mut i = Intensity::new(2, Duration::from_secs(10));
        assert!(i.allow(t0));
        assert!(i.allow(t0 + Duration::from_secs(1)));
        assert!(!i.allow(t0 + Duration::from_secs(2)));
        // The first restart left the window.
        assert!(i.allow(t0 + Duration::from_secs(10)));
        assert!(!i.allow(t0 + Duration::from_secs(10)));
        let mut none = Intensity::new(0, Duration::from_secs(1));
        assert!(!none.allow(t0));
    }

    #[test]
    fn restart_policies() {
        use crate::ExitStatus;
        use net_runner_proto::Termination;
        let ok = RunEnd::Exited(ExitStatus(Termination::Exited(0)));
        let bad = RunEnd::Exited(ExitStatus(Termination::Exited(1)));
        for (policy, on_ok, on_bad) in [
            (Restart::Never, false, false),
            (Restart::OnFailure, false, true),
            (Restart::Always, true, true),
        ] {
            assert_eq!(policy.restarts(&ok), on_ok, "{policy:?}");
            assert_eq!(policy.restarts(&bad), on_bad, "{policy:?}");
        }
        assert!(!Restart::Always.restarts(&RunEnd::Stopped(ExitStatus(Termination::Exited(0)))));
    }
}
