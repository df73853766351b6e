//! The cgroup part of the spawn request (tags 50-53) and of the shepherd's
//! answers (`CgroupFailed`, `CgroupStats`).
//!
//! The library resolves everything host-specific (where cgroup2 and the v1
//! controllers are mounted, the base, which hierarchy carries each limit)
//! and sends absolute directories; the shepherd creates them, writes the
//! limits, places the child before exec, and tears them down.

use crate::codec::{put_bytes, put_u32, put_u64, put_u8, Reader};
use crate::DecodeError;

/// Which hierarchy a cgroup directory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupKind {
    /// The cgroup2 (unified) hierarchy: containment, `cgroup.kill`, and the
    /// limits whose controller is enabled there.
    V2,
    /// A cgroup v1 hierarchy with the `memory` controller.
    Memory,
    /// A cgroup v1 hierarchy with the `pids` controller.
    Pids,
    /// A cgroup v1 hierarchy with the `cpu` controller.
    Cpu,
}

impl CgroupKind {
    /// Every kind, in wire order.
    pub const ALL: [CgroupKind; 4] = [
        CgroupKind::V2,
        CgroupKind::Memory,
        CgroupKind::Pids,
        CgroupKind::Cpu,
    ];

    /// Stable wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            CgroupKind::V2 => 0,
            CgroupKind::Memory => 1,
            CgroupKind::Pids => 2,
            CgroupKind::Cpu => 3,
        }
    }

    /// Parses a wire value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// `cgroup2`, or the v1 controller's name.
    pub fn name(self) -> &'static str {
        match self {
            CgroupKind::V2 => "cgroup2",
            CgroupKind::Memory => "memory",
            CgroupKind::Pids => "pids",
            CgroupKind::Cpu => "cpu",
        }
    }
}

/// One directory of the child's cgroup, in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDir {
    /// The hierarchy.
    pub kind: CgroupKind,
    /// The directory, absolute (`/sys/fs/cgroup/unified/base/path`).
    pub path: Vec<u8>,
    /// Length of the prefix of `path` that is the base: it exists, nothing
    /// is created or removed at or above it. `path[base_len]` is `/`.
    pub base_len: u32,
}

impl CgroupDir {
    /// The base directory (the prefix nothing is created in or above).
    pub fn base(&self) -> &[u8] {
        &self.path[..self.base_len as usize]
    }
}

/// The child's cgroup: the directories to create (one per hierarchy) and
/// the limits. A limit goes to the v1 directory of its controller when the
/// request has one, to the v2 directory otherwise (see [`CgroupSpec::dir_for`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupSpec {
    /// At most one directory per [`CgroupKind`].
    pub dirs: Vec<CgroupDir>,
    /// `memory.max` (v2) or `memory.limit_in_bytes` (v1), bytes.
    pub memory_max: Option<u64>,
    /// `pids.max`.
    pub pids_max: Option<u64>,
    /// CPU bandwidth: quota and period in microseconds (`cpu.max`, or
    /// `cpu.cfs_quota_us` / `cpu.cfs_period_us`).
    pub cpu_max: Option<(u64, u64)>,
}

impl CgroupSpec {
    /// The directory of `kind`, if the request has one.
    pub fn dir(&self, kind: CgroupKind) -> Option<&CgroupDir> {
        self.dirs.iter().find(|d| d.kind == kind)
    }

    /// Where the limits of `controller` (`Memory`, `Pids` or `Cpu`) are
    /// written: its v1 directory, else the v2 one.
    pub fn dir_for(&self, controller: CgroupKind) -> Option<&CgroupDir> {
        self.dir(controller).or_else(|| self.dir(CgroupKind::V2))
    }

    /// The v2 controllers that must be enabled (`+memory` in
    /// `cgroup.subtree_control` from the base down): those with a limit and
    /// no v1 directory.
    pub fn v2_controllers(&self) -> Vec<CgroupKind> {
        let mut out = Vec::new();
        if self.dir(CgroupKind::V2).is_none() {
            return out;
        }
        for (kind, set) in [
            (CgroupKind::Memory, self.memory_max.is_some()),
            (CgroupKind::Pids, self.pids_max.is_some()),
            (CgroupKind::Cpu, self.cpu_max.is_some()),
        ] {
            if set && self.dir(kind).is_none() {
                out.push(kind);
            }
        }
        out
    }
}

pub(crate) const TAG_CGROUP_DIR: u8 = 50;
pub(crate) const TAG_CGROUP_MEMORY_MAX: u8 = 51;
pub(crate) const TAG_CGROUP_PIDS_MAX: u8 = 52;
pub(crate) const TAG_CGROUP_CPU_MAX: u8 = 53;

/// Longest directory accepted on the wire (`PATH_MAX`).
pub const MAX_CGROUP_PATH: usize = 4096;

pub(crate) fn encode(spec: &CgroupSpec, out: &mut Vec<u8>) {
    let field = |out: &mut Vec<u8>, tag: u8, value: &[u8]| {
        put_u8(out, tag);
        put_bytes(out, value);
    };
    for dir in &spec.dirs {
        let mut v = Vec::with_capacity(5 + dir.path.len());
        put_u8(&mut v, dir.kind.to_u8());
        put_u32(&mut v, dir.base_len);
        v.extend_from_slice(&dir.path);
        field(out, TAG_CGROUP_DIR, &v);
    }
    if let Some(m) = spec.memory_max {
        field(out, TAG_CGROUP_MEMORY_MAX, &m.to_le_bytes());
    }
    if let Some(p) = spec.pids_max {
        field(out, TAG_CGROUP_PIDS_MAX, &p.to_le_bytes());
    }
    if let Some((quota, period)) = spec.cpu_max {
        let mut v = Vec::with_capacity(16);
        put_u64(&mut v, quota);
        put_u64(&mut v, period);
        field(out, TAG_CGROUP_CPU_MAX, &v);
    }
}

/// Decodes one cgroup field into `spec`; `Ok(false)` if `tag` is not one.
pub(crate) fn decode_field(
    spec: &mut Option<CgroupSpec>,
    tag: u8,
    v: &mut Reader<'_>,
) -> Result<bool, DecodeError> {
    let spec = match tag {
        TAG_CGROUP_DIR..=TAG_CGROUP_CPU_MAX => spec.get_or_insert_with(CgroupSpec::default),
        _ => return Ok(false),
    };
    match tag {
        TAG_CGROUP_DIR => {
            let kind = CgroupKind::from_u8(v.u8()?).ok_or(DecodeError::BadValue("cgroup kind"))?;
            let base_len = v.u32()?;
            let path = v.rest().to_vec();
            let base = base_len as usize;
            let valid = path.first() == Some(&b'/')
                && path.len() <= MAX_CGROUP_PATH
                && base > 0
                && base + 1 < path.len()
                && path[base] == b'/'
                && !path.contains(&0)
                && !path.ends_with(b"/")
                && path[base + 1..]
                    .split(|&b| b == b'/')
                    .all(|c| !c.is_empty() && c != b"." && c != b"..");
            if !valid {
                return Err(DecodeError::BadValue("cgroup directory"));
            }
            if spec.dir(kind).is_some() {
                return Err(DecodeError::BadValue("cgroup directory (repeated kind)"));
            }
            spec.dirs.push(CgroupDir {
                kind,
                path,
                base_len,
            });
        }
        TAG_CGROUP_MEMORY_MAX => match v.u64()? {
            0 => return Err(DecodeError::BadValue("cgroup memory max")),
            m => spec.memory_max = Some(m),
        },
        TAG_CGROUP_PIDS_MAX => spec.pids_max = Some(v.u64()?),
        TAG_CGROUP_CPU_MAX => {
            let (quota, period) = (v.u64()?, v.u64()?);
            if !(1_000..=1_000_000).contains(&period) || quota < 1_000 {
                return Err(DecodeError::BadValue("cgroup cpu max"));
            }
            spec.cpu_max = Some((quota, period));
        }
        _ => unreachable!("matched above"),
    }
    Ok(true)
}

/// Checks what single fields cannot: every limit has a directory to go to.
pub(crate) fn check(spec: &CgroupSpec) -> Result<(), DecodeError> {
    let needs = [
        (CgroupKind::Memory, spec.memory_max.is_some()),
        (CgroupKind::Pids, spec.pids_max.is_some()),
        (CgroupKind::Cpu, spec.cpu_max.is_some()),
    ];
    if spec.dirs.is_empty() {
        return Err(DecodeError::BadValue("cgroup limit without a directory"));
    }
    for (kind, set) in needs {
        if set && spec.dir_for(kind).is_none() {
            return Err(DecodeError::BadValue("cgroup limit without a directory"));
        }
    }
    Ok(())
}

/// The step of setting up the cgroup that failed, in
/// [`FromShepherd::CgroupFailed`](crate::FromShepherd::CgroupFailed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupStep {
    /// `mkdir` of the directory (or of a missing parent).
    Create,
    /// The directory already exists: another command uses it (or the
    /// previous one with that path was still being torn down).
    Exists,
    /// Enabling a controller in `cgroup.subtree_control`.
    Enable,
    /// Writing a limit file.
    Limit,
    /// Opening `cgroup.procs` for the child.
    Open,
}

impl CgroupStep {
    /// Stable wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            CgroupStep::Create => 1,
            CgroupStep::Exists => 2,
            CgroupStep::Enable => 3,
            CgroupStep::Limit => 4,
            CgroupStep::Open => 5,
        }
    }

    /// Parses a wire value.
    pub fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            1 => CgroupStep::Create,
            2 => CgroupStep::Exists,
            3 => CgroupStep::Enable,
            4 => CgroupStep::Limit,
            5 => CgroupStep::Open,
            _ => return Err(DecodeError::BadValue("cgroup step")),
        })
    }
}

/// The cgroup's figures, read by the shepherd after the child exited and
/// before the directories are removed. `None`: not available there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CgroupReport {
    /// Peak memory use, bytes (`memory.peak`, `memory.max_usage_in_bytes`).
    pub memory_peak: Option<u64>,
    /// Processes killed by the OOM killer in the cgroup (`memory.events`
    /// `oom_kill`, `memory.oom_control` `oom_kill`).
    pub oom_kills: Option<u64>,
    /// CPU time used by the cgroup, microseconds (`cpu.stat` `usage_usec`).
    pub cpu_usage_us: Option<u64>,
    /// Periods in which the CPU quota throttled the cgroup (`cpu.stat`
    /// `nr_throttled`).
    pub cpu_throttled_periods: Option<u64>,
    /// Time the cgroup was throttled, microseconds.
    pub cpu_throttled_us: Option<u64>,
    /// Peak number of processes (`pids.peak`).
    pub pids_peak: Option<u64>,
}

impl CgroupReport {
    fn fields(&self) -> [Option<u64>; 6] {
        [
            self.memory_peak,
            self.oom_kills,
            self.cpu_usage_us,
            self.cpu_throttled_periods,
            self.cpu_throttled_us,
            self.pids_peak,
        ]
    }

    /// `u8` field id and `u64` value for each figure present: a later
    /// figure adds an id, and an older library refuses it.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for (id, value) in (1u8..).zip(self.fields()) {
            if let Some(v) = value {
                put_u8(out, id);
                put_u64(out, v);
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut out = CgroupReport::default();
        while !r.is_empty() {
            let id = r.u8()?;
            let v = Some(r.u64()?);
            match id {
                1 => out.memory_peak = v,
                2 => out.oom_kills = v,
                3 => out.cpu_usage_us = v,
                4 => out.cpu_throttled_periods = v,
                5 => out.cpu_throttled_us = v,
                6 => out.pids_peak = v,
                _ => return Err(DecodeError::BadValue("cgroup figure")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SpawnRequest;

    fn dir(kind: CgroupKind, path: &str, base: &str) -> CgroupDir {
        CgroupDir {
            kind,
            path: path.as_bytes().to_vec(),
            base_len: base.len() as u32,
        }
    }

    fn with(spec: CgroupSpec) -> SpawnRequest {
        SpawnRequest {
            cgroup: Some(spec),
            ..SpawnRequest::new(b"x".to_vec())
        }
    }

    #[test]
    fn round_trips() {
        let spec = CgroupSpec {
            dirs: vec![
                dir(
                    CgroupKind::V2,
                    "/sys/fs/cgroup/unified/a/b",
                    "/sys/fs/cgroup/unified",
                ),
                dir(
                    CgroupKind::Memory,
                    "/sys/fs/cgroup/memory/x/b",
                    "/sys/fs/cgroup/memory/x",
                ),
            ],
            memory_max: Some(50 << 20),
            pids_max: Some(0),
            cpu_max: Some((10_000, 100_000)),
        };
        let req = with(spec.clone());
        assert_eq!(SpawnRequest::decode(&req.encode()).unwrap(), req);
        assert_eq!(spec.v2_controllers(), [CgroupKind::Pids, CgroupKind::Cpu]);
        assert_eq!(
            spec.dir_for(CgroupKind::Memory).unwrap().kind,
            CgroupKind::Memory
        );
        assert_eq!(spec.dirs[0].base(), b"/sys/fs/cgroup/unified");
    }

    #[test]
    fn bad_directories_and_limits_are_refused() {
        let base = "/sys/fs/cgroup";
        for path in [
            "/sys/fs/cgroup/a/../b",
            "/sys/fs/cgroup/a//b",
            "/sys/fs/cgroup/./b",
            "/sys/fs/cgroup/",
            "/sys/fs/cgroup",
            "/sys/fs/cgroupX",
            "/sys/fs/cgroup/a/",
        ] {
            let req = with(CgroupSpec {
                dirs: vec![dir(CgroupKind::V2, path, base)],
                ..CgroupSpec::default()
            });
            assert_eq!(
                SpawnRequest::decode(&req.encode()),
                Err(DecodeError::BadValue("cgroup directory")),
                "{path}"
            );
        }
        let ok = || dir(CgroupKind::V2, "/sys/fs/cgroup/a", base);
        for (spec, what) in [
            (
                CgroupSpec {
                    dirs: vec![ok(), ok()],
                    ..CgroupSpec::default()
                },
                "cgroup directory (repeated kind)",
            ),
            (
                CgroupSpec {
                    memory_max: Some(1),
                    ..CgroupSpec::default()
                },
                "cgroup limit without a directory",
            ),
            (
                CgroupSpec {
                    dirs: vec![dir(CgroupKind::Memory, "/m/a", "/m")],
                    pids_max: Some(1),
                    ..CgroupSpec::default()
                },
                "cgroup limit without a directory",
            ),
            (
                CgroupSpec {
                    dirs: vec![ok()],
                    memory_max: Some(0),
                    ..CgroupSpec::default()
                },
                "cgroup memory max",
            ),
            (
                CgroupSpec {
                    dirs: vec![ok()],
                    cpu_max: Some((1_000, 2_000_000)),
                    ..CgroupSpec::default()
                },
                "cgroup cpu max",
            ),
        ] {
            assert_eq!(
                SpawnRequest::decode(&with(spec).encode()),
                Err(DecodeError::BadValue(what))
            );
        }
    }

    #[test]
    fn report_round_trips_and_refuses_unknown_figures() {
        let report = CgroupReport {
            memory_peak: Some(1),
            oom_kills: Some(0),
            cpu_usage_us: None,
            cpu_throttled_periods: Some(3),
            cpu_throttled_us: Some(4),
            pids_peak: Some(u64::MAX),
        };
        let mut bytes = Vec::new();
        report.encode(&mut bytes);
        assert_eq!(CgroupReport::decode(&mut Reader::new(&bytes)), Ok(report));
        bytes.push(99);
        bytes.extend_from_slice(&[0; 8]);
        assert!(CgroupReport::decode(&mut Reader::new(&bytes)).is_err());
    }
}
