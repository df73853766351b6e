//! Interleaved measurement: every iteration runs each contender once, in a
//! rotating order, so that drift on a shared machine (other builds, thermal,
//! page cache) hits all contenders alike.

use std::sync::OnceLock;
use std::time::Duration;

/// `--profile NAME`: run only the contender of that exact name, or else those
/// whose name contains it (for `perf`/`strace`); print their medians to
/// stderr, skip the table.
pub(crate) static PROFILE: OnceLock<String> = OnceLock::new();

/// Returned by `interleave` in profile mode once the chosen contenders ran.
#[derive(Debug)]
pub(crate) struct ProfileDone;

impl std::fmt::Display for ProfileDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("profile run done")
    }
}

impl std::error::Error for ProfileDone {}

/// Errors of the harness: anything displayable, with context added by hand.
pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Fails with `what` unless `ok`.
pub(crate) fn ensure(ok: bool, what: impl FnOnce() -> String) -> Res<()> {
    if ok {
        Ok(())
    } else {
        Err(what().into())
    }
}

/// One side of a comparison: a closure that does the work once and returns
/// the wall-clock time it measured itself (so setup outside the measured part
/// stays out).
pub(crate) struct Contender<'a> {
    pub name: &'static str,
    run: Box<dyn FnMut() -> Res<Duration> + 'a>,
}

impl<'a> Contender<'a> {
    pub(crate) fn new(name: &'static str, run: impl FnMut() -> Res<Duration> + 'a) -> Self {
        Contender {
            name,
            run: Box::new(run),
        }
    }
}

/// Runs `warmup` unmeasured rounds, then `iters` measured rounds; round `i`
/// starts with contender `i % n`. Returns the samples in contender order.
pub(crate) fn interleave(
    contenders: &mut [Contender<'_>],
    warmup: usize,
    iters: usize,
) -> Res<Vec<Samples>> {
    if let Some(filter) = PROFILE.get() {
        return profile(contenders, filter, warmup, iters);
    }
    let n = contenders.len();
    for _ in 0..warmup {
        for c in contenders.iter_mut() {
            (c.run)().map_err(|e| format!("{} (warm-up): {e}", c.name))?;
        }
    }
    let mut samples = vec![Vec::with_capacity(iters); n];
    for i in 0..iters {
        for k in 0..n {
            let idx = (i + k) % n;
            let c = &mut contenders[idx];
            let d = (c.run)().map_err(|e| format!("{}: {e}", c.name))?;
            samples[idx].push(d);
        }
    }
    Ok(samples.into_iter().map(Samples::new).collect())
}

fn profile(
    contenders: &mut [Contender<'_>],
    filter: &str,
    warmup: usize,
    iters: usize,
) -> Res<Vec<Samples>> {
    // An exact name selects that contender alone; otherwise a substring.
    let exact = contenders.iter().any(|c| c.name == filter);
    let chosen = |c: &Contender<'_>| {
        if exact {
            c.name == filter
        } else {
            c.name.contains(filter)
        }
    };
    for c in contenders.iter_mut().filter(|c| chosen(c)) {
        for _ in 0..warmup {
            (c.run)()?;
        }
        let mut v = Vec::with_capacity(iters);
        for _ in 0..iters {
            v.push((c.run)()?);
        }
        let s = Samples::new(v);
        eprintln!(
            "profile: {}: median {} p90 {} (n={})",
            c.name,
            fmt_dur(s.median()),
            fmt_dur(s.p90()),
            s.len()
        );
    }
    Err(Box::new(ProfileDone))
}

/// Sorted durations of one contender.
#[derive(Debug, Clone)]
pub(crate) struct Samples(Vec<Duration>);

impl Samples {
    pub(crate) fn new(mut v: Vec<Duration>) -> Self {
        assert!(!v.is_empty(), "no samples");
        v.sort();
        Samples(v)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The median (mean of the two middle samples for an even count).
    pub(crate) fn median(&self) -> Duration {
        let n = self.0.len();
        if n % 2 == 1 {
            self.0[n / 2]
        } else {
            (self.0[n / 2 - 1] + self.0[n / 2]) / 2
        }
    }

    /// Nearest-rank percentile, `p` in 0..=100.
    pub(crate) fn percentile(&self, p: u32) -> Duration {
        let n = self.0.len();
        let rank = (p as usize * n).div_ceil(100).clamp(1, n);
        self.0[rank - 1]
    }

    pub(crate) fn p90(&self) -> Duration {
        self.percentile(90)
    }
}

/// `1.23 ms`, `412 µs`, `1.234 s`.
pub(crate) fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.3} s")
    }
}

/// Decimal gigabytes per second.
pub(crate) fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

pub(crate) fn fmt_bytes(b: f64) -> String {
    let a = b.abs();
    if a >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else if a >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

pub(crate) fn fmt_size(b: u64) -> String {
    if b >= 1 << 30 && b & ((1 << 30) - 1) == 0 {
        format!("{} GiB", b >> 30)
    } else {
        format!("{} MiB", b >> 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Samples {
        Samples::new(v.iter().map(|&m| Duration::from_millis(m)).collect())
    }

    #[test]
    fn median_and_p90() {
        let s = ms(&[5, 1, 3, 2, 4]);
        assert_eq!(s.median(), Duration::from_millis(3));
        assert_eq!(s.p90(), Duration::from_millis(5));
        let s = ms(&[4, 1, 3, 2]);
        assert_eq!(s.median(), Duration::from_micros(2500));
        let s = ms(&(1..=10).collect::<Vec<_>>());
        assert_eq!(s.p90(), Duration::from_millis(9));
        assert_eq!(s.percentile(100), Duration::from_millis(10));
    }

    #[test]
    fn interleave_rotates() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut cs = vec![
            Contender::new("a", || {
                order.borrow_mut().push('a');
                Ok(Duration::from_millis(1))
            }),
            Contender::new("b", || {
                order.borrow_mut().push('b');
                Ok(Duration::from_millis(2))
            }),
        ];
        let s = interleave(&mut cs, 1, 2).unwrap();
        drop(cs);
        assert_eq!(order.into_inner(), vec!['a', 'b', 'a', 'b', 'b', 'a']);
        assert_eq!(s[1].median(), Duration::from_millis(2));
    }
}
