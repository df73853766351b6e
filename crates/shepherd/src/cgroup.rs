//! The child's cgroup: create the directories the request names (one per
//! hierarchy), enable the v2 controllers its limits need, write the limits,
//! open `cgroup.procs` for the vfork child (which writes `0`, itself, into
//! each before exec), read the figures once the child exited, and at the
//! end kill every member and remove the directories.
//!
//! The library resolved the host: the request holds absolute directories
//! and says which hierarchy each belongs to. Nothing at or above a
//! directory's base is created or removed.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use net_runner_proto::{CgroupKind, CgroupReport, CgroupSpec, CgroupStep};
use rustix::process::{Pid, Signal};

/// Why the cgroup could not be set up: step, errno, and the path.
pub(crate) type Failure = (CgroupStep, i32, Vec<u8>);

/// How long a new command waits for a directory of the same name that the
/// previous command's shepherd is still removing.
const EXISTS_WAIT: Duration = Duration::from_secs(3);
/// Bound on the removal of one directory whose members are dying.
const RMDIR_WAIT: Duration = Duration::from_secs(2);
const RETRY_SLEEP: Duration = Duration::from_millis(5);

/// One directory of the child's cgroup.
struct Dir {
    kind: CgroupKind,
    path: PathBuf,
    /// The base: nothing at or above it is created or removed.
    base: PathBuf,
    /// The directories we created, leaf last (removed in reverse should
    /// the setup fail).
    created: Vec<PathBuf>,
}

/// The child's cgroup, set up.
pub(crate) struct Cgroup {
    dirs: Vec<Dir>,
    /// `cgroup.procs` of each directory, request order, for the child.
    procs: Vec<OwnedFd>,
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn fail(step: CgroupStep, e: &io::Error, path: &Path) -> Failure {
    use std::os::unix::ffi::OsStrExt;
    (step, errno(e), path.as_os_str().as_bytes().to_vec())
}

fn path_of(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// Writes `value` to a cgroup file in one `write`, as the kernel wants it.
fn write_file(path: &Path, value: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

impl Cgroup {
    /// Creates, configures and opens everything; on failure removes what
    /// it created and says what failed.
    pub(crate) fn setup(spec: &CgroupSpec) -> Result<Cgroup, Failure> {
        let mut cgroup = Cgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
        };
        match cgroup.configure(spec) {
            Ok(()) => Ok(cgroup),
            Err(failure) => {
                for dir in cgroup.dirs.iter_mut().rev() {
                    for path in dir.created.drain(..).rev() {
                        let _ = fs::remove_dir(&path);
                    }
                }
                Err(failure)
            }
        }
    }

    fn configure(&mut self, spec: &CgroupSpec) -> Result<(), Failure> {
        for dir in &spec.dirs {
            let base = path_of(dir.base());
            let path = path_of(&dir.path);
            let mut entry = Dir {
                kind: dir.kind,
                path: path.clone(),
                base: base.clone(),
                created: Vec::new(),
            };
            let made = create(&base, &path, &mut entry.created);
            self.dirs.push(entry);
            made?;
        }
        if let Some(v2) = spec.dir(CgroupKind::V2) {
            let controllers = spec.v2_controllers();
            if !controllers.is_empty() {
                let value = controllers
                    .iter()
                    .map(|c| format!("+{}", c.name()))
                    .collect::<Vec<_>>()
                    .join(" ");
                // From the base down to the leaf's parent: each level hands
                // the controllers to the next.
                let base = path_of(v2.base());
                let leaf = path_of(&v2.path);
                let mut level = base.clone();
                let rest = leaf.strip_prefix(&base).unwrap_or(Path::new(""));
                let mut components = rest.components().peekable();
                while let Some(c) = components.next() {
                    let file = level.join("cgroup.subtree_control");
                    write_file(&file, &value).map_err(|e| fail(CgroupStep::Enable, &e, &file))?;
                    if components.peek().is_none() {
                        break;
                    }
                    level.push(c);
                }
            }
        }
        self.write_limits(spec)?;
        for dir in &self.dirs {
            let file = dir.path.join("cgroup.procs");
            let fd = fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .map_err(|e| fail(CgroupStep::Open, &e, &file))?;
            self.procs.push(fd.into());
        }
        Ok(())
    }

    fn dir(&self, kind: CgroupKind) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.kind == kind)
            .map(|d| d.path.as_path())
    }

    /// Where `controller`'s files are: its v1 directory, else the v2 one.
    fn dir_for(&self, controller: CgroupKind) -> Option<(&Path, bool)> {
        match self.dir(controller) {
            Some(p) => Some((p, false)),
            None => self.dir(CgroupKind::V2).map(|p| (p, true)),
        }
    }

    fn write_limits(&self, spec: &CgroupSpec) -> Result<(), Failure> {
        let set = |dir: &Path, file: &str, value: String| {
            let path = dir.join(file);
            write_file(&path, &value).map_err(|e| fail(CgroupStep::Limit, &e, &path))
        };
        // Swap counts too: a program must not get past the limit by
        // swapping. The swap files exist only where swap accounting is on.
        if let (Some(max), Some((dir, v2))) = (spec.memory_max, self.dir_for(CgroupKind::Memory)) {
            if v2 {
                set(dir, "memory.max", max.to_string())?;
                if dir.join("memory.swap.max").exists() {
                    set(dir, "memory.swap.max", "0".into())?;
                }
            } else {
                set(dir, "memory.limit_in_bytes", max.to_string())?;
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    set(dir, "memory.memsw.limit_in_bytes", max.to_string())?;
                }
            }
        }
        if let (Some(max), Some((dir, _))) = (spec.pids_max, self.dir_for(CgroupKind::Pids)) {
            set(dir, "pids.max", max.to_string())?;
        }
        if let (Some((quota, period)), Some((dir, v2))) =
            (spec.cpu_max, self.dir_for(CgroupKind::Cpu))
        {
            if v2 {
                set(dir, "cpu.max", format!("{quota} {period}"))?;
            } else {
                // The period first: the kernel checks the quota against it.
                set(dir, "cpu.cfs_period_us", period.to_string())?;
                set(dir, "cpu.cfs_quota_us", quota.to_string())?;
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` descriptors the vfork child writes itself into.
    pub(crate) fn procs(&self) -> &[OwnedFd] {
        &self.procs
    }

    /// Closes the `cgroup.procs` descriptors once the child is placed.
    pub(crate) fn close_procs(&mut self) {
        self.procs.clear();
    }

    /// Pids of every member of every directory, without duplicates.
    pub(crate) fn members(&self) -> Vec<Pid> {
        let mut out: Vec<Pid> = Vec::new();
        for dir in &self.dirs {
            for pid in read_pids(&dir.path) {
                if !out.contains(&pid) {
                    out.push(pid);
                }
            }
        }
        out
    }

    /// Kills every member: `cgroup.kill` where the v2 directory has it,
    /// and in any case SIGKILL to whatever `cgroup.procs` still lists.
    pub(crate) fn kill_all(&self) {
        for dir in &self.dirs {
            kill_members(dir);
        }
    }

    /// The figures, read now (after the child exited, before removal).
    pub(crate) fn report(&self) -> CgroupReport {
        let v2 = self.dir(CgroupKind::V2);
        let memory = self.dir(CgroupKind::Memory);
        let pids = self.dir(CgroupKind::Pids);
        let cpu = self.dir(CgroupKind::Cpu);
        let memory_peak = match memory {
            Some(d) => read_u64(&d.join("memory.max_usage_in_bytes")),
            None => v2.and_then(|d| read_u64(&d.join("memory.peak"))),
        };
        let oom_kills = match memory {
            Some(d) => read_key(&d.join("memory.oom_control"), "oom_kill"),
            None => v2.and_then(|d| read_key(&d.join("memory.events"), "oom_kill")),
        };
        let cpu_usage_us = match v2 {
            Some(d) => read_key(&d.join("cpu.stat"), "usage_usec"),
            None => cpu
                .and_then(|d| read_u64(&d.join("cpuacct.usage")))
                .map(|ns| ns / 1000),
        };
        let (cpu_throttled_periods, cpu_throttled_us) = match (cpu, v2) {
            (Some(d), _) => {
                let stat = d.join("cpu.stat");
                (
                    read_key(&stat, "nr_throttled"),
                    read_key(&stat, "throttled_time").map(|ns| ns / 1000),
                )
            }
            (None, Some(d)) => {
                let stat = d.join("cpu.stat");
                (
                    read_key(&stat, "nr_throttled"),
                    read_key(&stat, "throttled_usec"),
                )
            }
            (None, None) => (None, None),
        };
        let pids_peak = match pids {
            Some(d) => read_u64(&d.join("pids.peak")),
            None => v2.and_then(|d| read_u64(&d.join("pids.peak"))),
        };
        CgroupReport {
            memory_peak,
            oom_kills,
            cpu_usage_us,
            cpu_throttled_periods,
            cpu_throttled_us,
            pids_peak,
        }
    }

    /// Kills what is left and removes the directories: each leaf (retried
    /// while its members die, within a bound), then its parents up to the
    /// base while they are empty (below the base, the path's parents are
    /// netrunner's: created when missing, removed when unused, whichever
    /// command made them). `reap` collects our own children meanwhile.
    pub(crate) fn teardown(&mut self, mut reap: impl FnMut()) {
        self.procs.clear();
        let deadline = Instant::now() + RMDIR_WAIT;
        // Once a directory is removed its path is never touched again: the
        // next command with the same path may have created it anew.
        for dir in &self.dirs {
            loop {
                match fs::remove_dir(&dir.path) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) if Instant::now() < deadline => {
                        kill_members(dir);
                        reap();
                        std::thread::sleep(RETRY_SLEEP);
                    }
                    Err(e) => {
                        eprintln!(
                            "netrunner-shepherd: cannot remove cgroup {}: {e}",
                            dir.path.display()
                        );
                        break;
                    }
                }
            }
        }
        for dir in &self.dirs {
            remove_empty_parents(&dir.path, &dir.base);
        }
    }
}

/// Removes the parents of `leaf` below `base` while they are empty; stops
/// at the first one in use (another command's directory is below it).
pub(crate) fn remove_empty_parents(leaf: &Path, base: &Path) {
    let mut parent = leaf.parent();
    while let Some(p) = parent {
        if p == base || !p.starts_with(base) || fs::remove_dir(p).is_err() {
            break;
        }
        parent = p.parent();
    }
}

/// `mkdir -p` from `base` (which must exist) down to `leaf`, recording what
/// we create. The leaf must be new: an existing one belongs to another
/// command, unless it disappears within [`EXISTS_WAIT`] (the previous
/// command with that path being torn down). A parent removed under us by
/// another command's teardown is created again.
fn create(base: &Path, leaf: &Path, created: &mut Vec<PathBuf>) -> Result<(), Failure> {
    let rest = leaf.strip_prefix(base).unwrap_or(Path::new(""));
    let deadline = Instant::now() + EXISTS_WAIT;
    'again: loop {
        let mut path = base.to_path_buf();
        let mut components = rest.components().peekable();
        while let Some(c) = components.next() {
            path.push(c);
            let is_leaf = components.peek().is_none();
            match fs::create_dir(&path) {
                Ok(()) => created.push(path.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !is_leaf => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if Instant::now() >= deadline {
                        return Err(fail(CgroupStep::Exists, &e, &path));
                    }
                    std::thread::sleep(RETRY_SLEEP);
                    continue 'again;
                }
                // A parent vanished (another command removed it): again.
                Err(e) if e.kind() == io::ErrorKind::NotFound && Instant::now() < deadline => {
                    if !base.exists() {
                        return Err(fail(CgroupStep::Create, &e, base));
                    }
                    continue 'again;
                }
                Err(e) => return Err(fail(CgroupStep::Create, &e, &path)),
            }
        }
        return Ok(());
    }
}

/// `cgroup.kill` (v2, Linux 5.14+), then SIGKILL to each member listed.
fn kill_members(dir: &Dir) {
    if dir.kind == CgroupKind::V2 {
        let _ = write_file(&dir.path.join("cgroup.kill"), "1");
    }
    for pid in read_pids(&dir.path) {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

fn read_pids(dir: &Path) -> Vec<Pid> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| Pid::from_raw(s.parse().ok()?))
        .collect()
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`key value` lines).
fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_files() {
        let dir = std::env::temp_dir().join(format!("nr-cg-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("memory.events");
        fs::write(&file, "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n").unwrap();
        assert_eq!(read_key(&file, "oom_kill"), Some(1));
        assert_eq!(read_key(&file, "oom"), Some(2));
        assert_eq!(read_key(&file, "missing"), None);
        fs::write(dir.join("cgroup.procs"), "12\n34\n").unwrap();
        let pids: Vec<i32> = read_pids(&dir).iter().map(|p| p.as_raw_pid()).collect();
        assert_eq!(pids, [12, 34]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn create_makes_parents_and_refuses_an_existing_leaf_after_waiting() {
        let base = std::env::temp_dir().join(format!("nr-cg-create-{}", std::process::id()));
        fs::create_dir_all(&base).unwrap();
        let leaf = base.join("a/b");
        let mut created = Vec::new();
        create(&base, &leaf, &mut created).unwrap();
        assert_eq!(created, [base.join("a"), leaf.clone()]);
        let mut again = Vec::new();
        let started = Instant::now();
        let err = create(&base, &leaf, &mut again).unwrap_err();
        assert_eq!(err.0, CgroupStep::Exists);
        assert!(started.elapsed() >= EXISTS_WAIT);
        assert!(again.is_empty());
        fs::remove_dir_all(&base).unwrap();
    }
}
