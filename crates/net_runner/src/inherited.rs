//! The process state a shepherd inherits when it starts, as opposed to what
//! travels in the spawn request.
//!
//! The request carries the program, arguments, the whole environment and an
//! absolute working directory, so those are always current. Everything else
//! the child gets comes from its shepherd, which got it from us at the
//! moment it was started: credentials, umask, resource limits, nice value,
//! CPU affinity, capabilities and `no_new_privs`, cgroup, and our stderr
//! (for [`Stderr::Inherit`](crate::Stderr::Inherit)). A pre-started
//! shepherd may have been started long before the spawn, by another thread
//! (nice value and affinity are per thread), so the pool keeps a snapshot
//! of this state with every idle shepherd and hands one out only while the
//! snapshot still matches the caller's state; otherwise a shepherd is
//! started on the spot, from the calling thread, as `std::process` would.
//!
//! Taking a snapshot costs about 12 µs (two small `/proc` reads and a few
//! system calls), under 3 % of a spawn.

use std::os::fd::AsFd;

use crate::sys;

/// One snapshot; equal snapshots give a child the same inherited state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inherited {
    /// The lines of `/proc/thread-self/status` that a child inherits:
    /// umask, ids and groups, capabilities, `no_new_privs`, seccomp mode,
    /// allowed CPUs and memory nodes.
    status: Vec<u8>,
    /// `/proc/self/cgroup`: which cgroups a child starts in.
    cgroup: Vec<u8>,
    rlimits: Vec<(Option<u64>, Option<u64>)>,
    nice: Option<i32>,
    /// Device and inode of fd 2, or `None` when it is closed.
    stderr: Option<(u64, u64)>,
}

/// The `/proc/<pid>/status` fields that `fork` and `exec` pass on.
const INHERITED_STATUS_FIELDS: &[&[u8]] = &[
    b"Umask:",
    b"Uid:",
    b"Gid:",
    b"Groups:",
    b"CapInh:",
    b"CapPrm:",
    b"CapEff:",
    b"CapBnd:",
    b"CapAmb:",
    b"NoNewPrivs:",
    b"Seccomp:",
    b"Cpus_allowed:",
    b"Mems_allowed:",
];

const RESOURCES: [rustix::process::Resource; 16] = {
    use rustix::process::Resource::*;
    [
        Cpu, Fsize, Data, Stack, Core, Rss, Nproc, Nofile, Memlock, As, Locks, Sigpending,
        Msgqueue, Nice, Rtprio, Rttime,
    ]
};

impl Inherited {
    /// The state a process started from the calling thread now would get.
    pub(crate) fn now() -> Inherited {
        let status = sys::read_proc_file(c"/proc/thread-self/status").unwrap_or_default();
        Inherited {
            status: inherited_lines(&status),
            cgroup: sys::read_proc_file(c"/proc/self/cgroup").unwrap_or_default(),
            rlimits: RESOURCES
                .iter()
                .map(|&r| {
                    let l = rustix::process::getrlimit(r);
                    (l.current, l.maximum)
                })
                .collect(),
            nice: rustix::process::getpriority_process(None).ok(),
            stderr: rustix::fs::fstat(std::io::stderr().as_fd())
                .ok()
                .map(|st| (st.st_dev, st.st_ino)),
        }
    }
}

fn inherited_lines(status: &[u8]) -> Vec<u8> {
    let mut kept = Vec::new();
    for line in status.split(|&b| b == b'\n') {
        if INHERITED_STATUS_FIELDS.iter().any(|f| line.starts_with(f)) {
            kept.extend_from_slice(line);
            kept.push(b'\n');
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_inherited_status_fields() {
        let status = b"Name:\tx\nUmask:\t0022\nState:\tR (running)\nUid:\t0\t0\t0\t0\nVmRSS:\t1 kB\nNoNewPrivs:\t0\n";
        assert_eq!(
            inherited_lines(status),
            b"Umask:\t0022\nUid:\t0\t0\t0\t0\nNoNewPrivs:\t0\n"
        );
    }

    #[test]
    fn a_snapshot_is_stable_and_sees_a_limit_change() {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let a = Inherited::now();
        assert_eq!(a, Inherited::now(), "nothing changed, yet unequal");
        assert!(a.status.starts_with(b"Umask:"), "{:?}", a.status);
        // The core-dump limit: harmless to change for a moment, even with
        // other tests running in this process.
        let old = getrlimit(Resource::Core);
        let other = Rlimit {
            current: Some(if old.current == Some(0) { 1 } else { 0 }),
            maximum: old.maximum,
        };
        if other.current > old.maximum && old.maximum.is_some() {
            println!("skipped: the core limit's maximum is 0");
            return;
        }
        setrlimit(Resource::Core, other).unwrap();
        let b = Inherited::now();
        setrlimit(Resource::Core, old).unwrap();
        assert_ne!(a, b);
    }
}
