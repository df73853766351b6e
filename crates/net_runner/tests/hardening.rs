//! Running as someone else and hardening (issue 9): every option observed
//! from inside the child, and the privilege errors of a non-root owner.
//!
//! As root, the identity tests switch to `nobody` (65534); the privilege
//! errors run in a copy of this binary started through `setpriv` as
//! `nobody`. Without root those checks run in this process directly, and
//! the identity tests print why they skip.

mod common;

use std::time::Duration;

use net_runner::{Command, Error, Resource, SpawnStage};

use common::{assert_all_gone, marker, pids_with_marker, GUARD, MARKER_VAR};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

async fn stdout_of(cmd: &Command) -> String {
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The value of a `/proc/self/status` field, as `sh` sees it.
fn status_field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
}

#[tokio::test]
async fn uid_gid_and_groups_are_seen_by_the_child() {
    if !is_root() {
        println!("skipped: changing to another user needs root");
        return;
    }
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "id -u; id -g; cat /proc/self/status"])
        .uid(NOBODY)
        .gid(NOBODY)
        .groups([NOBODY, 100]);
    let out = stdout_of(&cmd).await;
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("65534"));
    assert_eq!(lines.next(), Some("65534"));
    // Real, effective, saved and filesystem ids all changed.
    assert_eq!(status_field(&out, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&out, "Gid"), "65534\t65534\t65534\t65534");
    let mut groups: Vec<&str> = status_field(&out, "Groups").split(' ').collect();
    groups.sort();
    assert_eq!(groups, ["100", "65534"]);
}

#[tokio::test]
async fn uid_without_groups_drops_the_owners_groups() {
    if !is_root() {
        println!("skipped: changing to another user needs root");
        return;
    }
    let mut cmd = Command::new("cat");
    cmd.arg("/proc/self/status").uid(NOBODY).gid(NOBODY);
    let out = stdout_of(&cmd).await;
    assert_eq!(status_field(&out, "Groups"), "");
    // And the group alone, without a user.
    let mut cmd = Command::new("id");
    cmd.arg("-g").gid(NOBODY);
    assert_eq!(stdout_of(&cmd).await, "65534\n");
}

#[tokio::test]
async fn a_child_of_another_user_is_still_killed_with_its_tree() {
    if !is_root() {
        println!("skipped: changing to another user needs root");
        return;
    }
    let m = marker();
    let mut p = Command::new("sh")
        .args(["-c", "sleep 1000 & echo ready; wait"])
        .env(MARKER_VAR, &m)
        .uid(NOBODY)
        .gid(NOBODY)
        .kill_timeout(Duration::from_millis(200))
        .spawn()
        .await
        .unwrap();
    assert_eq!(p.read().await.unwrap().as_deref(), Some(&b"ready\n"[..]));
    assert_eq!(pids_with_marker(&m).len(), 2);
    drop(p);
    assert_all_gone(&m, GUARD);
}

#[test]
fn the_parent_death_signal_survives_the_user_change() {
    // Changing credentials clears PR_SET_PDEATHSIG: the shepherd sets it
    // after setuid. Checked in a copy of this binary that is a child
    // subreaper, so the orphaned child comes to it and not to an init that
    // might kill orphans itself.
    if !is_root() {
        println!("skipped: changing to another user needs root");
        return;
    }
    let m = marker();
    let (status, out) = common::run_helper(
        "helper_shepherd_killed_after_setuid",
        &[(HELPER_VAR, &m)],
        GUARD,
    );
    assert!(status.success() && out.contains("child died"), "{out}");
    assert_all_gone(&m, GUARD);
}

const HELPER_VAR: &str = "NETRUNNER_TEST_HELPER_MARKER";

#[test]
fn helper_shepherd_killed_after_setuid() {
    let Some(m) = std::env::var_os(HELPER_VAR) else {
        return;
    };
    let m = m.into_string().unwrap();
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let rt = common::runtime();
    let p = rt.block_on(async {
        Command::new("sleep")
            .arg("1000")
            .env(MARKER_VAR, &m)
            .uid(NOBODY)
            .gid(NOBODY)
            .spawn()
            .await
            .unwrap()
    });
    let child = p.os_pid() as i32;
    assert_eq!(pids_with_marker(&m), [child]);
    // Not polled from here on: the library's own clean-up of a lost
    // shepherd stays out of it. The child must die by its signal.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(p.shepherd_pid() as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let died = common::eventually(Duration::from_secs(5), || pids_with_marker(&m).is_empty());
    println!("{}", if died { "child died" } else { "child survived" });
    std::mem::forget(p);
}

#[tokio::test]
async fn rlimits_are_seen_by_the_child() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -Sn; ulimit -Hn; ulimit -c; ulimit -t"])
        .rlimit(Resource::Nofile, 100, 200)
        .rlimit(Resource::Core, 0, 0)
        .rlimit(Resource::Cpu, 30, 60);
    assert_eq!(stdout_of(&cmd).await, "100\n200\n0\n30\n");
    // The last setting of a resource wins.
    cmd.rlimit(Resource::Nofile, 50, 50);
    assert_eq!(stdout_of(&cmd).await, "50\n50\n0\n30\n");
}

#[tokio::test]
async fn an_address_space_limit_stops_a_big_allocation() {
    let mut cmd = Command::new("sh");
    // 64 MiB of address space; `head -c` into a 200 MB buffer must fail.
    cmd.args([
        "-c",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' x) && echo fit || echo failed",
    ])
    .rlimit(Resource::As, 64 << 20, 64 << 20);
    let out = cmd.output().await.unwrap();
    assert_ne!(out.stdout, b"fit\n", "{out:?}");
}

#[tokio::test]
async fn umask_nice_and_no_new_privs_are_seen_by_the_child() {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "umask; ps -o ni= -p $$; grep NoNewPrivs /proc/self/status",
    ])
    .umask(0o027)
    .nice(7)
    .no_new_privs(true);
    let out = stdout_of(&cmd).await;
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines[0], "0027");
    assert_eq!(lines[1], "7");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["NoNewPrivs:", "1"]
    );
    // Defaults: inherited (we do not set NoNewPrivs ourselves).
    let plain = stdout_of(Command::new("grep").args(["NoNewPrivs", "/proc/self/status"])).await;
    assert!(plain.ends_with("0\n"), "{plain}");
}

#[tokio::test]
async fn arg0_changes_argv0_only() {
    let mut cmd = Command::new("sh");
    cmd.arg0("custom-name").args([
        "-c",
        "echo $0; cat /proc/$$/comm; tr '\\0' ' ' < /proc/$$/cmdline",
    ]);
    let out = stdout_of(&cmd).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "custom-name");
    // The program run is still sh (comm comes from the executed file).
    assert_eq!(lines[1], "sh");
    assert!(lines[2].starts_with("custom-name -c "), "{}", lines[2]);
}

#[tokio::test]
async fn impossible_values_are_refused_before_anything_runs() {
    let cases = [
        (Command::new("true").nice(20).clone(), "nice"),
        (Command::new("true").umask(0o1000).clone(), "umask"),
        (Command::new("true").uid(u32::MAX).clone(), "uid"),
        (Command::new("true").groups([1, u32::MAX]).clone(), "groups"),
        (
            Command::new("true").rlimit(Resource::Nofile, 10, 5).clone(),
            "rlimit",
        ),
    ];
    for (cmd, option) in cases {
        match cmd.output().await {
            Err(Error::InvalidOption { option: o, reason }) => {
                assert_eq!(o, option, "{reason}")
            }
            other => panic!("{option}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Privilege errors, as a user without privileges.

const UNPRIVILEGED_VAR: &str = "NETRUNNER_TEST_UNPRIVILEGED";

#[test]
fn privilege_errors_as_a_non_root_user() {
    if !is_root() {
        unprivileged_checks();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let setpriv = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args([
            "--exact",
            "helper_unprivileged",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(UNPRIVILEGED_VAR, "1")
        .output();
    let out = match setpriv {
        Ok(out) => out,
        Err(e) => {
            println!("skipped: setpriv is not available ({e})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("unprivileged checks passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn helper_unprivileged() {
    if std::env::var_os(UNPRIVILEGED_VAR).is_none() {
        return;
    }
    unprivileged_checks();
    println!("unprivileged checks passed");
}

/// As a user without privileges: each option that needs one fails with a
/// typed error naming it, and the program never runs (it would create a
/// file).
fn unprivileged_checks() {
    assert!(!is_root());
    let me = rustix::process::getuid().as_raw();
    let dir = std::env::temp_dir().join(format!("nr-unpriv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let witness = dir.join("ran");
    let mut touch = Command::new("sh");
    touch.args(["-c", "touch \"$W\""]).env("W", &witness);
    let nofile_hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    let rt = common::runtime();
    rt.block_on(async {
        let mut cases: Vec<(Command, SpawnStage, i32, &str)> = vec![
            (
                touch.clone().uid(0).clone(),
                SpawnStage::SetUid(0),
                libc::EPERM,
                "setuid(0) failed: Operation not permitted",
            ),
            (
                touch.clone().gid(0).clone(),
                SpawnStage::SetGid(0),
                libc::EPERM,
                "setgid(0) failed",
            ),
            (
                touch.clone().groups([0]).clone(),
                SpawnStage::SetGroups,
                libc::EPERM,
                "setgroups failed",
            ),
            (
                touch.clone().nice(-5).clone(),
                SpawnStage::Nice(-5),
                libc::EACCES,
                "setpriority(nice -5) failed",
            ),
        ];
        if let Some(hard) = nofile_hard {
            cases.push((
                touch
                    .clone()
                    .rlimit(Resource::Nofile, hard, hard + 1)
                    .clone(),
                SpawnStage::Rlimit(Resource::Nofile),
                libc::EPERM,
                "setrlimit(NOFILE) failed",
            ));
        } else {
            println!("NOFILE has no hard limit: the rlimit privilege check is skipped");
        }
        for (cmd, stage, errno, message) in cases {
            match cmd.output().await {
                Err(e @ Error::Spawn { .. }) => {
                    let Error::Spawn {
                        stage: s, source, ..
                    } = &e
                    else {
                        unreachable!()
                    };
                    assert_eq!(*s, stage, "{e}");
                    assert_eq!(source.raw_os_error(), Some(errno), "{e}");
                    assert!(e.to_string().contains(message), "{e}");
                }
                other => panic!("{stage:?}: expected a spawn error, got {other:?}"),
            }
            assert!(!witness.exists(), "{stage:?}: the program ran");
        }
        // What needs no privilege works: our own ids, a higher nice value,
        // a lower limit.
        let mut own = touch.clone();
        own.uid(me).gid(rustix::process::getgid().as_raw()).nice(10);
        own.rlimit(Resource::Nofile, 64, 64);
        assert!(own.output().await.unwrap().status.success());
        assert!(witness.exists());
    });
    let _ = std::fs::remove_dir_all(&dir);
}
