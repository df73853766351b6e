//! cgroups: the public types, validation of the path, discovery of the
//! hierarchies (from `/proc/self/mountinfo` and `/proc/self/cgroup`), the
//! plan sent to the shepherd, and the clean-up after a lost shepherd.
//!
//! The shepherd does the rest (crates/shepherd/src/cgroup.rs): creates the
//! directories, writes the limits, places the child before exec, reads the
//! figures, kills the members and removes the directories.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use net_runner_proto::{CgroupDir, CgroupKind, CgroupReport, CgroupSpec, CgroupStep};

use crate::Error;

/// The environment variable that sets the default base under which
/// [`Command::cgroup`](crate::Command::cgroup) paths are created: a cgroup
/// path such as `/netrunner` (as in `/proc/self/cgroup`), the same in every
/// hierarchy. Without it (and without
/// [`Command::cgroup_base`](crate::Command::cgroup_base)) the base is the
/// caller's own cgroup.
///
/// ```
/// assert_eq!(net_runner::CGROUP_BASE_ENV, "NETRUNNER_CGROUP_BASE");
/// ```
pub const CGROUP_BASE_ENV: &str = "NETRUNNER_CGROUP_BASE";

/// Longest accepted cgroup path, in bytes.
const MAX_PATH: usize = 1024;
/// Longest accepted name of one directory (`NAME_MAX`).
const MAX_NAME: usize = 255;

/// What the cgroup reported once the child exited, in
/// [`Stats::cgroup`](crate::Stats::cgroup). A figure is `None` where the
/// host does not provide it: memory figures need the memory controller on
/// the cgroup (a [`memory_max`](crate::Command::memory_max) on hybrid
/// hosts), the throttling figures the cpu controller, `pids_peak` the pids
/// controller (and Linux 6.1+ for v1).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// # if !std::path::Path::new("/sys/fs/cgroup").exists() || !nix_root() { return Ok(()); }
/// let out = net_runner::Command::new("true")
///     .cgroup(format!("doc-stats-{}", std::process::id()))
///     .memory_max(64 << 20)
///     .run()
///     .await?;
/// let cg = out.stats.cgroup.unwrap();
/// assert_eq!(cg.oom_kills, Some(0));
/// assert!(cg.memory_peak_bytes.is_some());
/// # Ok(()) }
/// # fn nix_root() -> bool { std::fs::read_to_string("/proc/self/status").unwrap().lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CgroupStats {
    /// Peak memory use of the cgroup (`memory.peak`, v1
    /// `memory.max_usage_in_bytes`).
    pub memory_peak_bytes: Option<u64>,
    /// Processes the OOM killer killed in the cgroup (`memory.events`, v1
    /// `memory.oom_control`).
    pub oom_kills: Option<u64>,
    /// CPU time of everything in the cgroup (`cpu.stat` `usage_usec`).
    pub cpu_usage: Option<Duration>,
    /// Periods in which the CPU quota throttled the cgroup (`nr_throttled`).
    pub cpu_throttled_periods: Option<u64>,
    /// Time the cgroup spent throttled.
    pub cpu_throttled: Option<Duration>,
    /// Most processes in the cgroup at once (`pids.peak`).
    pub pids_peak: Option<u64>,
}

impl From<CgroupReport> for CgroupStats {
    fn from(r: CgroupReport) -> Self {
        CgroupStats {
            memory_peak_bytes: r.memory_peak,
            oom_kills: r.oom_kills,
            cpu_usage: r.cpu_usage_us.map(Duration::from_micros),
            cpu_throttled_periods: r.cpu_throttled_periods,
            cpu_throttled: r.cpu_throttled_us.map(Duration::from_micros),
            pids_peak: r.pids_peak,
        }
    }
}

/// Why a cgroup could not be used, in [`Error::Cgroup`]. Nothing was
/// started in every case.
///
/// ```
/// use net_runner::{CgroupError, Command, Error};
/// let err = Command::new("true").cgroup("../escape").run_blocking().unwrap_err();
/// assert!(matches!(err, Error::Cgroup(CgroupError::InvalidPath { .. })));
/// assert_eq!(err.to_string(), "cgroup: invalid path \"../escape\": it contains a '..' component");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    /// The path (or base) given is not acceptable: absolute (for a path),
    /// relative (for a base), `..`, `.` or empty components, a NUL or
    /// newline, too long.
    #[error("invalid {what} {:?}: {reason}", .path.to_string_lossy())]
    InvalidPath {
        /// `"path"` or `"base"`.
        what: &'static str,
        /// What was given.
        path: OsString,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No cgroup hierarchy to put the child in (no cgroup2 mount, and no
    /// v1 hierarchy for the limits), or `/proc` could not be read.
    #[error("no usable cgroup hierarchy: {reason}")]
    NoHierarchy {
        /// What was looked at.
        reason: String,
    },
    /// A limit's controller is available in no hierarchy: not enabled for
    /// the base in cgroup2 and not mounted as cgroup v1.
    #[error("cannot apply the {controller} limit: {reason}")]
    ControllerUnavailable {
        /// `"memory"`, `"pids"` or `"cpu"`.
        controller: &'static str,
        /// Where it was looked for.
        reason: String,
    },
    /// The directory already exists: another command uses this path (or
    /// the previous one was still being torn down after 3 s).
    #[error("{} already exists (another command uses this cgroup path)", .path.display())]
    Exists {
        /// The directory.
        path: PathBuf,
    },
    /// Creating or configuring the cgroup failed in the shepherd.
    #[error("{step} {} failed: {source}{}", .path.display(), Hint(.source))]
    Setup {
        /// `"mkdir"`, `"enabling controllers in"`, `"writing the limit"`,
        /// `"opening"`, or `"joining"` (the child writing itself into
        /// `cgroup.procs` before exec).
        step: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// [`kill_leftovers(false)`](crate::Command::kill_leftovers) with a
    /// cgroup: the leftovers would keep the directory alive after the
    /// command.
    #[error("a cgroup cannot be combined with kill_leftovers(false) (--keep-descendants): the leftovers would outlive the command inside it")]
    KeepDescendants,
}

/// A hint for the usual causes of a failed setup step.
struct Hint<'a>(&'a io::Error);

impl std::fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => f.write_str(
                " (no write access: run as root, or use a delegated subtree as the base)",
            ),
            Some(libc::EBUSY) => f.write_str(
                " (cgroup2 enables controllers only for a cgroup without processes of its own: \
                 set a base without processes, NETRUNNER_CGROUP_BASE)",
            ),
            Some(libc::EROFS) => f.write_str(" (the cgroup filesystem is mounted read-only)"),
            _ => Ok(()),
        }
    }
}

impl From<CgroupError> for Error {
    fn from(e: CgroupError) -> Self {
        Error::Cgroup(e)
    }
}

/// The cgroup settings of a `Command`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub(crate) path: Option<PathBuf>,
    pub(crate) base: Option<PathBuf>,
    pub(crate) memory_max: Option<u64>,
    pub(crate) pids_max: Option<u64>,
    pub(crate) cpu_max: Option<(Duration, Duration)>,
}

impl Config {
    fn has_limits(&self) -> bool {
        self.memory_max.is_some() || self.pids_max.is_some() || self.cpu_max.is_some()
    }

    pub(crate) fn wanted(&self) -> bool {
        self.path.is_some() || self.has_limits()
    }
}

/// What a spawn with a cgroup asked for: the request's part, and what the
/// library removes should the shepherd die without doing it.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) spec: CgroupSpec,
}

impl Plan {
    /// The directories of the request, in request order.
    pub(crate) fn leaves(&self) -> impl Iterator<Item = (CgroupKind, PathBuf)> + '_ {
        self.spec
            .dirs
            .iter()
            .map(|d| (d.kind, PathBuf::from(OsStr::from_bytes(&d.path))))
    }

    /// The error for a failure the shepherd reported.
    pub(crate) fn failed(&self, step: CgroupStep, errno: i32, path: Vec<u8>) -> Error {
        let path = PathBuf::from(OsString::from_vec(path));
        let source = io::Error::from_raw_os_error(errno);
        let step = match step {
            CgroupStep::Exists => return CgroupError::Exists { path }.into(),
            CgroupStep::Create => "mkdir",
            CgroupStep::Enable => "enabling controllers in",
            CgroupStep::Limit => "writing the limit",
            CgroupStep::Open => "opening",
        };
        CgroupError::Setup { step, path, source }.into()
    }

    /// The error for the child failing to join directory number `n`.
    pub(crate) fn join_failed(&self, n: u8, errno: i32) -> Error {
        let path = self
            .leaves()
            .nth(usize::from(n))
            .map(|(_, p)| p.join("cgroup.procs"))
            .unwrap_or_default();
        CgroupError::Setup {
            step: "joining",
            path,
            source: io::Error::from_raw_os_error(errno),
        }
        .into()
    }

    /// After the shepherd is gone: kills what is left in the directories
    /// and removes them (bounded: a member that cannot die in 2 s keeps
    /// its directory, which is logged). Cheap when the shepherd did it.
    pub(crate) fn remove_leftovers(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        for (kind, leaf) in self.leaves() {
            loop {
                match std::fs::remove_dir(&leaf) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() >= deadline => {
                        tracing::warn!(dir = %leaf.display(), error = %e, "cannot remove the cgroup of a lost shepherd");
                        break;
                    }
                    Err(_) => {
                        if kind == CgroupKind::V2 {
                            let _ = std::fs::write(leaf.join("cgroup.kill"), "1");
                        }
                        let procs =
                            std::fs::read_to_string(leaf.join("cgroup.procs")).unwrap_or_default();
                        for pid in procs.split_whitespace() {
                            if let Some(pid) =
                                pid.parse().ok().and_then(rustix::process::Pid::from_raw)
                            {
                                let _ = rustix::process::kill_process(
                                    pid,
                                    rustix::process::Signal::KILL,
                                );
                            }
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        // Then the parents up to the base while empty, as the shepherd does.
        for dir in &self.spec.dirs {
            let base = Path::new(OsStr::from_bytes(dir.base()));
            let mut parent = Path::new(OsStr::from_bytes(&dir.path)).parent();
            while let Some(p) = parent {
                if p == base || !p.starts_with(base) || std::fs::remove_dir(p).is_err() {
                    break;
                }
                parent = p.parent();
            }
        }
    }

    /// Whether any directory is still there (the shepherd did not finish).
    pub(crate) fn left_over(&self) -> bool {
        self.leaves().any(|(_, p)| p.exists())
    }
}

/// Checks a user-given relative cgroup path.
fn check_relative(path: &Path, what: &'static str) -> Result<(), CgroupError> {
    let bytes = path.as_os_str().as_bytes();
    let bad = |reason| CgroupError::InvalidPath {
        what,
        path: path.as_os_str().to_owned(),
        reason,
    };
    if bytes.is_empty() {
        return Err(bad("it is empty"));
    }
    if bytes.contains(&0) {
        return Err(bad("it contains a NUL byte"));
    }
    if bytes.contains(&b'\n') {
        return Err(bad("it contains a newline"));
    }
    if bytes.len() > MAX_PATH {
        return Err(bad("it is longer than 1024 bytes"));
    }
    for c in bytes.split(|&b| b == b'/') {
        match c {
            b"" => return Err(bad("it has an empty component ('//' or a trailing '/')")),
            b"." => return Err(bad("it contains a '.' component")),
            b".." => return Err(bad("it contains a '..' component")),
            c if c.len() > MAX_NAME => return Err(bad("a component is longer than 255 bytes")),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a path: relative, clean, not too long.
pub(crate) fn check_path(path: &Path) -> Result<(), CgroupError> {
    if path.as_os_str().as_bytes().first() == Some(&b'/') {
        return Err(CgroupError::InvalidPath {
            what: "path",
            path: path.as_os_str().to_owned(),
            reason: "it is absolute; give it relative to the base",
        });
    }
    check_relative(path, "path")
}

/// Checks a base: a cgroup path as in `/proc/self/cgroup` (`/` or
/// `/a/b`), returned without its leading `/`.
fn check_base(base: &Path) -> Result<PathBuf, CgroupError> {
    let bytes = base.as_os_str().as_bytes();
    let Some(rest) = bytes.strip_prefix(b"/") else {
        return Err(CgroupError::InvalidPath {
            what: "base",
            path: base.as_os_str().to_owned(),
            reason:
                "it must be absolute in the hierarchy, as in /proc/self/cgroup (e.g. /netrunner)",
        });
    };
    let rest = Path::new(OsStr::from_bytes(rest.strip_suffix(b"/").unwrap_or(rest)));
    if !rest.as_os_str().is_empty() {
        check_relative(rest, "base").map_err(|e| match e {
            CgroupError::InvalidPath { reason, .. } => CgroupError::InvalidPath {
                what: "base",
                path: base.as_os_str().to_owned(),
                reason,
            },
            other => other,
        })?;
    }
    Ok(rest.to_path_buf())
}

/// The mounted cgroup hierarchies and our place in them.
#[derive(Debug, Default)]
struct Host {
    /// cgroup2: mount point, and our cgroup there.
    v2: Option<(PathBuf, PathBuf)>,
    /// v1 hierarchies of the controllers we use: kind, mount point, our cgroup.
    v1: Vec<(CgroupKind, PathBuf, PathBuf)>,
}

/// Undoes the octal escapes of mountinfo (`\040` for a space).
fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

impl Host {
    /// Reads `/proc/self/mountinfo` and `/proc/self/cgroup`.
    fn discover() -> Result<Host, CgroupError> {
        let read = |p: &str| {
            std::fs::read_to_string(p).map_err(|e| CgroupError::NoHierarchy {
                reason: format!("cannot read {p}: {e}"),
            })
        };
        Ok(Host::parse(
            &read("/proc/self/mountinfo")?,
            &read("/proc/self/cgroup")?,
        ))
    }

    fn parse(mountinfo: &str, own: &str) -> Host {
        // Our cgroup per hierarchy: "0::/path" (v2), "N:ctrl,ctrl:/path".
        let mut own_v2 = None;
        let mut own_v1: Vec<(String, PathBuf)> = Vec::new();
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if ctrls.is_empty() {
                own_v2 = Some(PathBuf::from(path));
            } else {
                for c in ctrls.split(',') {
                    own_v1.push((c.to_owned(), PathBuf::from(path)));
                }
            }
        }
        let mut host = Host::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (Some(root), Some(point), Some(fstype), Some(opts)) =
                (left.get(3), left.get(4), right.first(), right.get(2))
            else {
                continue;
            };
            // A bind mount of a subtree: our paths are not below it.
            if *root != "/" {
                continue;
            }
            let point = unescape(point);
            match *fstype {
                "cgroup2" if host.v2.is_none() => {
                    if let Some(own) = &own_v2 {
                        host.v2 = Some((point, own.clone()));
                    }
                }
                "cgroup" => {
                    for (kind, name) in [
                        (CgroupKind::Memory, "memory"),
                        (CgroupKind::Pids, "pids"),
                        (CgroupKind::Cpu, "cpu"),
                    ] {
                        if opts.split(',').any(|o| o == name)
                            && !host.v1.iter().any(|(k, _, _)| *k == kind)
                        {
                            if let Some((_, own)) = own_v1.iter().find(|(c, _)| c == name) {
                                host.v1.push((kind, point.clone(), own.clone()));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        host
    }
}

/// `mount/base/path` as bytes, with the base's length.
fn join(mount: &Path, base: &Path, path: &Path) -> CgroupDir {
    let mut full = mount.to_path_buf();
    let base_rel = base.strip_prefix("/").unwrap_or(base);
    if !base_rel.as_os_str().is_empty() {
        full.push(base_rel);
    }
    let base_len = full.as_os_str().len() as u32;
    full.push(path);
    CgroupDir {
        kind: CgroupKind::V2,
        path: full.into_os_string().into_vec(),
        base_len,
    }
}

/// Distinguishes generated paths of one process.
static GENERATED: AtomicU64 = AtomicU64::new(0);

/// Resolves the command's cgroup settings on this host into the request's
/// part. Every limit gets a hierarchy or the spawn fails here, naming the
/// controller: never a silent no-op.
pub(crate) fn plan(config: &Config, kill_leftovers: bool) -> Result<Plan, Error> {
    let path = match &config.path {
        Some(p) => {
            check_path(p)?;
            p.clone()
        }
        None => PathBuf::from(format!(
            "netrunner-{}-{}",
            std::process::id(),
            GENERATED.fetch_add(1, Ordering::Relaxed)
        )),
    };
    let base = match &config.base {
        Some(b) => Some(check_base(b)?),
        None => match std::env::var_os(CGROUP_BASE_ENV).filter(|v| !v.is_empty()) {
            Some(b) => Some(check_base(Path::new(&b))?),
            None => None,
        },
    };
    check_limits(config)?;
    if !kill_leftovers {
        return Err(CgroupError::KeepDescendants.into());
    }
    let host = Host::discover()?;
    plan_on(&host, config, &path, base.as_deref())
}

fn check_limits(config: &Config) -> Result<(), Error> {
    let invalid = |option: &'static str, reason: String| Error::InvalidOption { option, reason };
    if config.memory_max == Some(0) {
        return Err(invalid("memory_max", "0 bytes: nothing could run".into()));
    }
    if let Some((quota, period)) = config.cpu_max {
        if !(Duration::from_millis(1)..=Duration::from_secs(1)).contains(&period) {
            return Err(invalid(
                "cpu_max",
                format!("period {period:?} is outside 1ms..=1s"),
            ));
        }
        if quota < Duration::from_millis(1) {
            return Err(invalid("cpu_max", format!("quota {quota:?} is below 1ms")));
        }
    }
    Ok(())
}

fn plan_on(host: &Host, config: &Config, path: &Path, base: Option<&Path>) -> Result<Plan, Error> {
    let base_of = |own: &Path| -> PathBuf {
        match base {
            Some(b) => Path::new("/").join(b),
            None => own.to_path_buf(),
        }
    };
    let mut spec = CgroupSpec {
        memory_max: config.memory_max,
        pids_max: config.pids_max,
        cpu_max: config
            .cpu_max
            .map(|(q, p)| (q.as_micros() as u64, p.as_micros() as u64)),
        dirs: Vec::new(),
    };
    let v2_controllers: Vec<String> = match &host.v2 {
        Some((mount, own)) => {
            let dir = join(mount, &base_of(own), Path::new(""));
            let base_dir = PathBuf::from(OsString::from_vec(dir.path));
            if !base_dir.is_dir() {
                return Err(base_missing(&base_dir));
            }
            spec.dirs.push(join(mount, &base_of(own), path));
            std::fs::read_to_string(base_dir.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        }
        None => Vec::new(),
    };
    let v1_dir = |kind: CgroupKind| -> Result<Option<CgroupDir>, Error> {
        let Some((_, mount, own)) = host.v1.iter().find(|(k, _, _)| *k == kind) else {
            return Ok(None);
        };
        let base_dir = join(mount, &base_of(own), Path::new(""));
        let base_dir = PathBuf::from(OsString::from_vec(base_dir.path));
        if !base_dir.is_dir() {
            return Err(base_missing(&base_dir));
        }
        Ok(Some(CgroupDir {
            kind,
            ..join(mount, &base_of(own), path)
        }))
    };
    for (kind, set) in [
        (CgroupKind::Memory, config.memory_max.is_some()),
        (CgroupKind::Pids, config.pids_max.is_some()),
        (CgroupKind::Cpu, config.cpu_max.is_some()),
    ] {
        if !set || v2_controllers.iter().any(|c| c == kind.name()) {
            continue;
        }
        match v1_dir(kind)? {
            Some(dir) => spec.dirs.push(dir),
            None => {
                let v2 = match &host.v2 {
                    Some((mount, own)) => format!(
                        "cgroup2 at {} does not offer it to children (cgroup.controllers: {:?})",
                        mount
                            .join(base_of(own).strip_prefix("/").unwrap_or(Path::new("")))
                            .display(),
                        v2_controllers.join(" ")
                    ),
                    None => "no cgroup2 hierarchy is mounted".to_owned(),
                };
                return Err(CgroupError::ControllerUnavailable {
                    controller: kind.name(),
                    reason: format!(
                        "{v2}, and no cgroup v1 hierarchy with {} is mounted",
                        kind.name()
                    ),
                }
                .into());
            }
        }
    }
    // Without cgroup2, the pids hierarchy holds the child for containment.
    if spec.dirs.is_empty() {
        match v1_dir(CgroupKind::Pids)? {
            Some(dir) => spec.dirs.push(dir),
            None => {
                return Err(CgroupError::NoHierarchy {
                    reason:
                        "no cgroup2 mount in /proc/self/mountinfo and no cgroup v1 pids hierarchy"
                            .into(),
                }
                .into())
            }
        }
    }
    Ok(Plan { spec })
}

fn base_missing(dir: &Path) -> Error {
    CgroupError::Setup {
        step: "finding the base",
        path: dir.to_path_buf(),
        source: io::Error::from_raw_os_error(libc::ENOENT),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:99 /sub /mnt/bound rw - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/uni\\040fied rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str = "\
8:pids:/
4:memory:/svc/abc
1:cpu,cpuacct:/
0::/user.slice
";

    #[test]
    fn discovers_hybrid_mounts_and_our_place() {
        let host = Host::parse(MOUNTINFO, OWN);
        assert_eq!(
            host.v2,
            Some((
                PathBuf::from("/sys/fs/cgroup/uni fied"),
                PathBuf::from("/user.slice")
            ))
        );
        let find = |k| host.v1.iter().find(|(kind, _, _)| *kind == k).cloned();
        assert_eq!(
            find(CgroupKind::Memory),
            Some((
                CgroupKind::Memory,
                "/sys/fs/cgroup/memory".into(),
                "/svc/abc".into()
            ))
        );
        assert_eq!(
            find(CgroupKind::Cpu).unwrap().1,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        // The bind mount of a subtree is not used.
        assert_eq!(
            find(CgroupKind::Pids).unwrap().1,
            PathBuf::from("/sys/fs/cgroup/pids")
        );
    }

    #[test]
    fn pure_v2_host() {
        let host = Host::parse(
            "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
            "0::/init.scope\n",
        );
        assert_eq!(
            host.v2,
            Some(("/sys/fs/cgroup".into(), "/init.scope".into()))
        );
        assert!(host.v1.is_empty());
    }

    #[test]
    fn paths_are_checked() {
        for (p, reason) in [
            ("/abs", "it is absolute; give it relative to the base"),
            ("", "it is empty"),
            ("a/../b", "it contains a '..' component"),
            ("..", "it contains a '..' component"),
            ("./a", "it contains a '.' component"),
            ("a//b", "it has an empty component ('//' or a trailing '/')"),
            ("a/", "it has an empty component ('//' or a trailing '/')"),
            ("a\nb", "it contains a newline"),
            ("a\0b", "it contains a NUL byte"),
        ] {
            match check_path(Path::new(p)) {
                Err(CgroupError::InvalidPath { reason: r, .. }) => assert_eq!(r, reason, "{p:?}"),
                other => panic!("{p:?}: {other:?}"),
            }
        }
        let long = "x".repeat(256);
        assert!(check_path(Path::new(&long)).is_err());
        let deep = ["abcdefgh"; 120].join("/");
        assert!(check_path(Path::new(&deep)).is_err());
        assert!(check_path(Path::new("a/b.c/d-e_f")).is_ok());
        assert_eq!(check_base(Path::new("/")).unwrap(), PathBuf::new());
        assert_eq!(
            check_base(Path::new("/a/b/")).unwrap(),
            PathBuf::from("a/b")
        );
        assert!(check_base(Path::new("a")).is_err());
        assert!(check_base(Path::new("/a/../b")).is_err());
    }

    #[test]
    fn a_limit_no_hierarchy_offers_is_an_error_naming_the_controller() {
        let mount = std::env::temp_dir().join(format!("nr-cg-plan-{}", std::process::id()));
        std::fs::create_dir_all(&mount).unwrap();
        std::fs::write(mount.join("cgroup.controllers"), "cpu pids\n").unwrap();
        let host = Host {
            v2: Some((mount.clone(), PathBuf::from("/"))),
            v1: Vec::new(),
        };
        let config = Config {
            memory_max: Some(1 << 20),
            pids_max: Some(5),
            ..Config::default()
        };
        match plan_on(&host, &config, Path::new("job"), None) {
            Err(Error::Cgroup(CgroupError::ControllerUnavailable { controller, reason })) => {
                assert_eq!(controller, "memory");
                assert!(reason.contains("cpu pids"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // pids is offered by cgroup2: it goes there, no v1 directory.
        let config = Config {
            pids_max: Some(5),
            ..Config::default()
        };
        let plan = plan_on(&host, &config, Path::new("a/job"), None).unwrap();
        assert_eq!(plan.spec.dirs.len(), 1);
        assert_eq!(plan.spec.v2_controllers(), [CgroupKind::Pids]);
        assert_eq!(
            plan.spec.dirs[0].path,
            mount.join("a/job").into_os_string().into_vec()
        );
        // No cgroup2 and no v1 hierarchy at all.
        let none = Host::default();
        assert!(matches!(
            plan_on(&none, &Config::default(), Path::new("x"), None),
            Err(Error::Cgroup(CgroupError::NoHierarchy { .. }))
        ));
        std::fs::remove_dir_all(&mount).unwrap();
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape("/a\\040b\\011c"), PathBuf::from("/a b\tc"));
        assert_eq!(unescape("/plain\\"), PathBuf::from("/plain\\"));
    }
}
