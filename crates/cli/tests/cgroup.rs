//! `--cgroup`, the `--cgroup-*-max` limits and `--keep-descendants`.
//!
//! Tests that need a writable cgroup hierarchy (root and a cgroup mount)
//! print why and pass without checking anything where there is none.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{netrunner, run, Marker, GUARD};

fn no_writable_cgroups() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned));
    if euid.as_deref() != Some("0") {
        return Some(format!("not root (euid {euid:?})"));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !mountinfo.contains(" - cgroup") {
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

/// Every existing directory named `name` directly below our own cgroup, in
/// any hierarchy (what `--cgroup name` creates).
fn dirs_named(name: &str) -> Vec<String> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if !right[0].starts_with("cgroup") || left[3] != "/" {
            continue;
        }
        let opts: Vec<&str> = right[2].split(',').collect();
        for l in own.lines() {
            let mut p = l.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (p.next(), p.next(), p.next()) else {
                continue;
            };
            let same = if right[0] == "cgroup2" {
                ctrls.is_empty()
            } else {
                !ctrls.is_empty() && ctrls.split(',').all(|c| opts.contains(&c))
            };
            let dir = format!("{}{}/{name}", left[4], path.trim_end_matches('/'));
            if same && std::path::Path::new(&dir).exists() {
                out.push(dir);
            }
        }
    }
    out
}

fn assert_no_dirs(name: &str) {
    let start = Instant::now();
    while !dirs_named(name).is_empty() {
        assert!(
            start.elapsed() < GUARD,
            "cgroup directories left: {:?}",
            dirs_named(name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_cgroup_paths_exit_125_with_one_line() {
    for (path, words) in [
        ("/etc", "absolute"),
        ("..", "'..'"),
        ("a/../b", "'..'"),
        ("a/./b", "'.'"),
        ("a//b", "empty component"),
        ("", "value is required"),
    ] {
        let r = run(&["run", "--cgroup", path, "--", "echo", "ran"]);
        assert_eq!(r.code(), 125, "{path:?}: {}", r.err());
        let msg = r.message();
        assert!(
            msg.contains("cgroup") && msg.contains(words),
            "{path:?}: {msg}"
        );
        assert!(r.out().is_empty(), "the program ran");
    }
    let long = "x".repeat(2000);
    let r = run(&["run", "--cgroup", &long, "--", "echo", "ran"]);
    assert_eq!(r.code(), 125);
    assert!(r.out().is_empty());
}

#[test]
fn bad_limit_values_are_usage_errors() {
    for args in [
        ["--cgroup-memory-max", "0"],
        ["--cgroup-memory-max", "12Q"],
        ["--cgroup-pids-max", "-1"],
        ["--cgroup-cpu-max", "10ms/5s"],
        ["--cgroup-cpu-max", "0"],
        ["--cgroup-cpu-max", "fast"],
    ] {
        let r = run(&["run", args[0], args[1], "--", "echo", "ran"]);
        assert_eq!(r.code(), 125, "{args:?}");
        r.message();
        assert!(r.out().is_empty(), "{args:?}: the program ran");
    }
}

#[test]
fn keep_descendants_with_a_cgroup_is_refused() {
    let r = run(&[
        "run",
        "--keep-descendants",
        "--cgroup",
        "x",
        "--",
        "echo",
        "ran",
    ]);
    assert_eq!(r.code(), 125);
    assert!(r.message().contains("keep-descendants"), "{}", r.err());
    assert!(r.out().is_empty());
}

/// `sh -c 'setsid sleep 1000 & exit 0'`: the sleep left the group and the
/// session; it must not survive netrunner's exit.
fn daemon_script() -> &'static str {
    "setsid sleep 1000 & exit 0"
}

#[test]
fn a_setsid_daemon_is_killed_without_a_cgroup() {
    let m = Marker::new();
    let r = run(&["run", "--env", &m.env(), "--", "sh", "-c", daemon_script()]);
    assert_eq!(r.code(), 0, "{}", r.err());
    m.assert_gone();
}

#[test]
fn a_setsid_daemon_is_killed_with_a_cgroup() {
    needs_cgroups!();
    let m = Marker::new();
    let name = format!("nrcli-daemon-{}", m.value);
    let r = run(&[
        "run",
        "--env",
        &m.env(),
        "--cgroup",
        &name,
        "--cgroup-pids-max",
        "50",
        "--",
        "sh",
        "-c",
        daemon_script(),
    ]);
    assert_eq!(r.code(), 0, "{}", r.err());
    m.assert_gone();
    assert_no_dirs(&name);
}

#[test]
fn with_keep_descendants_the_daemon_lives() {
    let m = Marker::new();
    let r = run(&[
        "run",
        "--keep-descendants",
        "--env",
        &m.env(),
        "--",
        "sh",
        "-c",
        "setsid sleep 1000 </dev/null >/dev/null 2>&1 & exit 0",
    ]);
    assert_eq!(r.code(), 0, "{}", r.err());
    // Still there a while after netrunner exited (the Marker's drop kills it).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(m.pids().len(), 1, "the daemon did not survive");
}

/// netrunner SIGKILLed while its program runs with a setsid'd daemon: the
/// shepherd kills everything (through the cgroup when there is one) and
/// removes the directories.
fn sigkill_owner(cgroup: Option<&str>, m: &Marker) {
    let mut args = vec!["run".to_owned(), "--env".into(), m.env()];
    if let Some(name) = cgroup {
        args.extend(["--cgroup".into(), name.into()]);
        args.extend(["--cgroup-memory-max".into(), "64M".into()]);
    }
    args.extend(
        [
            "--",
            "sh",
            "-c",
            "setsid sleep 1000 & echo ready; sleep 1000",
        ]
        .map(String::from),
    );
    let mut child = netrunner(&args).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let start = Instant::now();
    while m.pids().len() < 3 {
        assert!(start.elapsed() < GUARD, "the program never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(name) = cgroup {
        assert!(!dirs_named(name).is_empty(), "no cgroup while running");
    }
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    m.assert_gone();
    if let Some(name) = cgroup {
        assert_no_dirs(name);
    }
}

#[test]
fn owner_sigkill_leaves_nothing_without_a_cgroup() {
    sigkill_owner(None, &Marker::new());
}

#[test]
fn owner_sigkill_leaves_nothing_with_a_cgroup() {
    needs_cgroups!();
    let m = Marker::new();
    let name = format!("nrcli-owner-{}", m.value);
    sigkill_owner(Some(&name), &m);
}

#[test]
fn an_oom_kill_is_reported_in_the_stats() {
    needs_cgroups!();
    let dir = common::temp_dir();
    let stats = dir.path().join("stats.json");
    // `sort` holds a line in memory until its end: /dev/zero has none.
    let r = run(&[
        "run",
        "--cgroup-memory-max",
        "50M",
        "--stats-json",
        stats.to_str().unwrap(),
        "--",
        "sort",
        "/dev/zero",
    ]);
    assert_eq!(r.code(), 128 + libc::SIGKILL, "{}", r.err());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert!(
        json["oom_kills"].as_u64().unwrap() >= 1,
        "{json} {}",
        r.err()
    );
    assert!(
        json["memory_peak_bytes"].as_u64().unwrap() <= 50 << 20,
        "{json}"
    );
    assert_eq!(json["end"], "oom_killed", "{json}");
}
