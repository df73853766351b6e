//! cgroups: placement before exec, path rejection, limits really enforced
//! (memory OOM-kills, pids stops forks, cpu throttles), teardown in every
//! hierarchy after exit, timeout, owner SIGKILL and shepherd SIGKILL, and
//! no leak over 200 runs.
//!
//! Tests that need a writable cgroup hierarchy (root, and a cgroup mount)
//! print why and pass without checking anything where there is none.

mod common;

use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::Duration;

use net_runner::{CgroupError, Command, End, Error};

use common::{assert_all_gone, eventually, marker, pids_with_marker, GUARD, MARKER_VAR};

/// `Some(reason)` when this host has no hierarchy these tests can write.
fn no_writable_cgroups() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned));
    if uid.as_deref() != Some("0") {
        return Some(format!("not root (euid {uid:?})"));
    }
    if cgroup_mounts().is_empty() {
        return Some("no cgroup filesystem in /proc/self/mountinfo".into());
    }
    None
}

macro_rules! needs_cgroups {
    () => {
        if let Some(reason) = no_writable_cgroups() {
            eprintln!("SKIPPED: needs a writable cgroup hierarchy: {reason}");
            return;
        }
    };
}

/// Every cgroup mount (v1 and v2) with our own cgroup in it: where a path
/// `P` of ours lands is `mount/own/P`.
fn cgroup_mounts() -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left[3] != "/" {
            continue;
        }
        let opts: Vec<&str> = right[2].split(',').collect();
        let own_path = own.lines().find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, ctrls, path) = (p.next()?, p.next()?, p.next()?);
            let matches = match right[0] {
                "cgroup2" => ctrls.is_empty(),
                "cgroup" => !ctrls.is_empty() && ctrls.split(',').all(|c| opts.contains(&c)),
                _ => false,
            };
            matches.then(|| path.trim_start_matches('/').to_owned())
        });
        if let Some(own_path) = own_path {
            out.push(PathBuf::from(left[4]).join(own_path));
        }
    }
    out
}

/// The directories named `path` below our cgroup, in every hierarchy.
fn dirs_of(path: &str) -> Vec<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .map(|m| m.join(path))
        .filter(|d| d.exists())
        .collect()
}

fn assert_no_dirs(path: &str) {
    assert!(
        eventually(GUARD, || dirs_of(path).is_empty()),
        "cgroup directories left: {:?}",
        dirs_of(path)
    );
}

fn unique(tag: &str) -> String {
    format!("nrtest-{tag}-{}", marker())
}

#[test]
fn the_child_is_in_its_cgroups_when_it_starts() {
    needs_cgroups!();
    let name = unique("place");
    let out = Command::new("cat")
        .arg("/proc/self/cgroup")
        .cgroup(&name)
        .memory_max(256 << 20)
        .pids_max(100)
        .cpu_max(Duration::from_millis(50), Duration::from_millis(100))
        .run_blocking()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let suffix = format!("/{name}");
    let in_it = |pred: &dyn Fn(&str) -> bool| {
        text.lines()
            .filter(|l| pred(l.split(':').nth(1).unwrap_or("")))
            .all(|l| l.ends_with(&suffix))
    };
    // The v2 line, and every v1 hierarchy that carries one of the limits.
    assert!(text.lines().any(|l| l.starts_with("0::")), "{text}");
    assert!(in_it(&|c| c.is_empty()), "v2: {text}");
    for ctrl in ["memory", "pids", "cpu"] {
        assert!(
            in_it(&|c| c.split(',').any(|x| x == ctrl)),
            "{ctrl}: {text}"
        );
    }
    assert!(out.status.success());
    assert_no_dirs(&name);
}

#[test]
fn bad_paths_are_refused_before_anything_runs() {
    let m = marker();
    let long = "x".repeat(256);
    let deep = ["abcdefgh"; 120].join("/");
    for (path, reason) in [
        ("/abs", "absolute"),
        ("", "empty"),
        ("..", "'..'"),
        ("a/../b", "'..'"),
        (".", "'.'"),
        ("a/./b", "'.'"),
        ("a//b", "empty component"),
        ("a/", "empty component"),
        ("a\nb", "newline"),
        (long.as_str(), "255"),
        (deep.as_str(), "1024"),
    ] {
        let err = Command::new("sleep")
            .arg("100")
            .env(MARKER_VAR, &*m)
            .cgroup(path)
            .run_blocking()
            .unwrap_err();
        match &err {
            Error::Cgroup(CgroupError::InvalidPath { what: "path", .. }) => {
                assert!(err.to_string().contains(reason), "{path:?}: {err}")
            }
            other => panic!("{path:?}: {other:?}"),
        }
    }
    // NUL cannot be in a &str path on the CLI, but can be here.
    let nul = std::ffi::OsStr::new("a\0b");
    assert!(matches!(
        Command::new("true").cgroup(nul).run_blocking(),
        Err(Error::Cgroup(CgroupError::InvalidPath { .. }))
    ));
    for base in ["relative", "/a/../b", "/a//b"] {
        assert!(matches!(
            Command::new("true")
                .cgroup("x")
                .cgroup_base(base)
                .run_blocking(),
            Err(Error::Cgroup(CgroupError::InvalidPath { what: "base", .. }))
        ));
    }
    assert!(pids_with_marker(&m).is_empty(), "something ran");
}

#[test]
fn bad_limits_and_keeping_descendants_are_refused() {
    for (cmd, option) in [
        (Command::new("true").memory_max(0).clone(), "memory_max"),
        (
            Command::new("true")
                .cpu_max(Duration::from_millis(10), Duration::from_secs(2))
                .clone(),
            "cpu_max",
        ),
        (
            Command::new("true")
                .cpu_max(Duration::from_micros(10), Duration::from_millis(100))
                .clone(),
            "cpu_max",
        ),
    ] {
        match cmd.run_blocking() {
            Err(Error::InvalidOption { option: o, .. }) => assert_eq!(o, option),
            other => panic!("{option}: {other:?}"),
        }
    }
    let err = Command::new("true")
        .cgroup(unique("keep"))
        .kill_leftovers(false)
        .run_blocking()
        .unwrap_err();
    assert!(
        matches!(err, Error::Cgroup(CgroupError::KeepDescendants)),
        "{err:?}"
    );
}

#[test]
fn a_base_that_does_not_exist_is_an_error() {
    needs_cgroups!();
    let err = Command::new("true")
        .cgroup("x")
        .cgroup_base(format!("/{}", unique("nobase")))
        .run_blocking()
        .unwrap_err();
    assert!(
        matches!(err, Error::Cgroup(CgroupError::Setup { .. })),
        "{err:?}"
    );
}

/// Helper: allocates and touches 200 MiB.
#[test]
fn helper_memory_hog() {
    if std::env::var_os("NETRUNNER_CGROUP_HOG").is_none() {
        return;
    }
    let mut v = vec![0u8; 200 << 20];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    println!(
        "survived {}",
        v.iter().step_by(4096).map(|&b| b as usize).sum::<usize>()
    );
}

fn hog() -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "helper_memory_hog",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("NETRUNNER_CGROUP_HOG", "1");
    cmd
}

#[test]
fn a_memory_hog_is_oom_killed_and_reported_as_such() {
    needs_cgroups!();
    let name = unique("oom");
    let out = hog()
        .cgroup(&name)
        .memory_max(50 << 20)
        .timeout(GUARD)
        .run_blocking()
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
    assert_eq!(out.stats.end, Some(End::OomKilled));
    let cg = out.stats.cgroup.unwrap();
    assert!(cg.oom_kills.unwrap() >= 1, "{cg:?}");
    assert!(cg.memory_peak_bytes.unwrap() <= 50 << 20, "{cg:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
    assert_no_dirs(&name);
    // The same program with room to spare: not killed.
    let out = hog().memory_max(400 << 20).run_blocking().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stats.end, Some(End::Exited));
    assert_eq!(out.stats.cgroup.unwrap().oom_kills, Some(0));
}

#[test]
fn a_fork_bomb_stops_at_pids_max() {
    needs_cgroups!();
    let m = marker();
    let name = unique("pids");
    let out = Command::new("sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); done; wait",
        ])
        .env(MARKER_VAR, &*m)
        .cgroup(&name)
        .pids_max(8)
        .timeout(GUARD)
        .run_blocking()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.to_lowercase().contains("fork"), "{stderr}");
    let peak = out.stats.cgroup.unwrap().pids_peak;
    assert!(peak.is_none_or(|p| p <= 8), "{peak:?}");
    assert_all_gone(&m, GUARD);
    assert_no_dirs(&name);
}

#[test]
fn a_cpu_quota_throttles() {
    needs_cgroups!();
    let name = unique("cpu");
    let err = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .cgroup(&name)
        .cpu_max(Duration::from_millis(5), Duration::from_millis(50))
        .timeout(Duration::from_millis(800))
        .kill_timeout(Duration::from_millis(100))
        .run_blocking()
        .unwrap_err();
    let Error::Timeout { output, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(output.stats.end, Some(End::Timeout));
    let cg = output.stats.cgroup.unwrap();
    assert!(cg.cpu_throttled_periods.unwrap() > 0, "{cg:?}");
    assert!(cg.cpu_throttled.unwrap() > Duration::ZERO, "{cg:?}");
    assert_no_dirs(&name);
}

#[test]
fn teardown_after_exit_and_timeout_removes_every_directory() {
    needs_cgroups!();
    let m = marker();
    // Exit, leaving a setsid'd daemon behind: killed, directory removed.
    let name = unique("exit");
    let out = Command::new("sh")
        .args(["-c", "setsid sleep 1000 & exit 0"])
        .env(MARKER_VAR, &*m)
        .cgroup(&name)
        .memory_max(64 << 20)
        .run_blocking()
        .unwrap();
    assert!(out.status.success());
    assert_all_gone(&m, GUARD);
    assert_no_dirs(&name);
    // Timeout.
    let name = unique("timeout");
    let err = Command::new("sleep")
        .arg("1000")
        .env(MARKER_VAR, &*m)
        .cgroup(&name)
        .pids_max(10)
        .timeout(Duration::from_millis(200))
        .run_blocking()
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }));
    assert_all_gone(&m, GUARD);
    assert_no_dirs(&name);
}

#[test]
fn a_path_can_be_reused_right_after_a_run() {
    needs_cgroups!();
    let name = unique("reuse");
    for _ in 0..20 {
        let out = Command::new("true")
            .cgroup(&name)
            .pids_max(10)
            .run_blocking()
            .unwrap();
        assert!(out.status.success());
    }
    assert_no_dirs(&name);
}

#[test]
fn a_path_in_use_is_refused() {
    needs_cgroups!();
    common::runtime().block_on(async {
        let name = unique("busy");
        let mut first = Command::new("sleep")
            .arg("100")
            .cgroup(&name)
            .spawn()
            .await
            .unwrap();
        let err = Command::new("true").cgroup(&name).run().await.unwrap_err();
        assert!(
            matches!(err, Error::Cgroup(CgroupError::Exists { .. })),
            "{err:?}"
        );
        first.shutdown().await.unwrap();
        drop(first);
        assert_no_dirs(&name);
    });
}

/// Helper: spawns a command in a cgroup with a setsid'd grandchild, prints
/// READY, then waits to be SIGKILLed.
#[test]
fn helper_owner_with_a_cgroup() {
    let (Ok(m), Ok(name)) = (
        std::env::var("NETRUNNER_CG_MARKER"),
        std::env::var("NETRUNNER_CG_NAME"),
    ) else {
        return;
    };
    common::runtime().block_on(async {
        let _p = Command::new("sh")
            .args(["-c", "setsid sleep 1000 & sleep 1000"])
            .env(MARKER_VAR, &m)
            .cgroup(&name)
            .memory_max(64 << 20)
            .spawn()
            .await
            .unwrap();
        println!("READY");
        tokio::time::sleep(Duration::from_secs(1000)).await;
    });
}

#[test]
fn owner_sigkill_leaves_no_process_and_no_directory() {
    needs_cgroups!();
    let m = marker();
    let name = unique("owner");
    let mut owner = common::reexec(
        "helper_owner_with_a_cgroup",
        &[("NETRUNNER_CG_MARKER", &m), ("NETRUNNER_CG_NAME", &name)],
    );
    let mut lines = std::io::BufReader::new(owner.stdout.take().unwrap()).lines();
    common::line_with(&mut lines, "READY").expect("owner never spawned");
    assert!(eventually(GUARD, || pids_with_marker(&m).len() >= 2));
    assert!(!dirs_of(&name).is_empty(), "no directory while running");
    owner.kill().unwrap();
    assert_eq!(owner.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert_all_gone(&m, GUARD);
    assert_no_dirs(&name);
}

#[test]
fn shepherd_sigkill_the_library_kills_the_cgroup_and_removes_it() {
    needs_cgroups!();
    let m = marker();
    let name = unique("shepherd");
    common::runtime().block_on(async {
        let mut p = Command::new("sh")
            .args(["-c", "setsid sleep 1000 & sleep 1000"])
            .env(MARKER_VAR, &*m)
            .cgroup(&name)
            .pids_max(20)
            .spawn()
            .await
            .unwrap();
        assert!(eventually(GUARD, || pids_with_marker(&m).len() >= 3));
        assert!(!dirs_of(&name).is_empty(), "no directory while running");
        // SAFETY: a plain kill of the shepherd's pid, which is our child.
        unsafe { libc::kill(p.shepherd_pid() as i32, libc::SIGKILL) };
        assert!(matches!(p.wait().await, Err(Error::Shepherd(_))));
    });
    // The setsid'd sleep is in neither the process group nor the
    // shepherd's tree any more: only the cgroup finds it.
    assert_all_gone(&m, GUARD);
    assert_no_dirs(&name);
}

#[test]
fn two_hundred_runs_leak_nothing() {
    needs_cgroups!();
    let parent = unique("many");
    // Warm up: the reaper thread, the pre-started shepherd.
    common::runtime().block_on(common::warm_up());
    Command::new("true")
        .cgroup(unique("warm"))
        .run_blocking()
        .unwrap();
    let before = common::settled_fd_count();
    common::runtime().block_on(async {
        for i in 0..200 {
            let out = Command::new("true")
                .cgroup(format!("{parent}/{i}"))
                .pids_max(10)
                .run()
                .await
                .unwrap();
            assert!(out.status.success());
        }
    });
    assert_no_dirs(&parent);
    assert!(eventually(GUARD, || net_runner::pending_reaps() == 0));
    assert!(
        eventually(GUARD, || common::settled_fd_count() <= before),
        "descriptors: {before} before, {} after",
        common::fd_count()
    );
}
