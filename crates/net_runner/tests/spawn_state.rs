//! Spawning works whatever the owner's descriptor table and process state
//! look like, and the child gets the owner's state as of the spawn, not as
//! of the moment a pre-started shepherd was started.
//!
//! Each case runs in a re-executed copy of this test binary
//! (`common::reexec`), so that it controls its fd table, cwd, umask and
//! limits from the start without disturbing other tests. A helper reports
//! on a descriptor it duplicated from its stdout before closing anything.

mod common;

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

use net_runner::{Command, Error, Stderr};

use common::{assert_all_gone, eventually, marker, GUARD, MARKER_VAR};

const HELPER_MARKER: &str = "NETRUNNER_STATE_MARKER";
const LAYOUT: &str = "NETRUNNER_TEST_FD_LAYOUT";

fn helper_marker() -> Option<String> {
    std::env::var(HELPER_MARKER).ok()
}

/// A copy of our stdout at a high descriptor, for reporting after fd 1 may
/// have been closed.
fn report_channel() -> File {
    let fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 100) };
    assert!(fd >= 100);
    unsafe { File::from_raw_fd(fd) }
}

fn is_open(fd: i32) -> bool {
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// A standard descriptor the owner closed is closed still, or `/dev/null`
/// (which the library opens there, as std does before `main`): never a
/// socket, pipe or pidfd of the library's.
fn closed_or_null(fd: i32) -> bool {
    !is_open(fd)
        || std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .is_ok_and(|t| t == std::path::Path::new("/dev/null"))
}

fn run_sh(m: &str, script: &str) -> net_runner::Output {
    common::runtime()
        .block_on(
            Command::new("sh")
                .args(["-c", script])
                .env(MARKER_VAR, m)
                .run(),
        )
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Helper: sets up the fd layout named by `NETRUNNER_TEST_FD_LAYOUT`
/// before anything of the library runs, then spawns in several ways.
#[test]
fn helper_fd_layout() {
    let Some(m) = helper_marker() else { return };
    let layout = std::env::var(LAYOUT).unwrap();
    let mut report = report_channel();
    // Our stderr may be closed below: a failure's message goes to the
    // report channel, which the test prints.
    let channel = report_channel();
    std::panic::set_hook(Box::new(move |info| {
        let _ = writeln!(&channel, "HELPER PANIC: {info}");
    }));
    // Fd 3 is held while the runtime is built, so that the runtime's own
    // descriptors land above it and fd 3 is free at the first spawn (where
    // the embedded shepherd's memfd used to land).
    let null = File::open("/dev/null").unwrap().into_raw_fd();
    assert_eq!(unsafe { libc::dup2(null, 3) }, 3);
    let rt = common::runtime();
    let close: &[i32] = match layout.as_str() {
        "fd3_free" => &[3],
        "stdin_closed" => &[0, 3],
        "stdout_closed" => &[1, 3],
        "stderr_closed" => &[2, 3],
        "all_closed" => &[0, 1, 2, 3],
        "low_fd_limit" => &[3],
        other => panic!("unknown layout {other}"),
    };
    for &fd in close {
        unsafe { libc::close(fd) };
    }
    unsafe { libc::close(null) };
    if layout == "low_fd_limit" {
        // A few descriptors free above those in use.
        let highest = (0..100).filter(|&fd| is_open(fd)).max().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        lim.rlim_cur = highest as u64 + 16;
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    }
    rt.block_on(async {
        for round in 0..5 {
            let out = Command::new("echo")
                .arg("hi")
                .env(MARKER_VAR, &m)
                .run()
                .await
                .unwrap_or_else(|e| panic!("{layout}, round {round}: {e}"));
            assert_eq!(out.stdout, b"hi\n", "{layout}, round {round}");
        }
        let out = Command::new("sh")
            .args(["-c", "echo err >&2; cat"])
            .input("in")
            .env(MARKER_VAR, &m)
            .run()
            .await
            .unwrap();
        assert_eq!(
            (&out.stdout[..], &out.stderr[..]),
            (&b"in"[..], &b"err\n"[..])
        );
        let mut p = Command::new("cat")
            .env(MARKER_VAR, &m)
            .spawn()
            .await
            .unwrap();
        // The child's pipe ends and our control socket stay off the
        // standard descriptors we closed, even while in use.
        for &fd in close.iter().filter(|&&fd| fd < 3) {
            assert!(closed_or_null(fd), "{layout}: fd {fd} taken while spawned");
        }
        p.write(b"x").await.unwrap();
        p.close_stdin();
        assert_eq!(p.read().await.unwrap().as_deref(), Some(&b"x"[..]));
        assert!(p.wait().await.unwrap().success());
        // An inheriting child's stderr is ours, or /dev/null when we have
        // none: never one of the shepherd's own descriptors.
        let out = Command::new("sh")
            .args(["-c", "readlink /proc/$$/fd/2"])
            .stderr(Stderr::Inherit)
            .env(MARKER_VAR, &m)
            .run()
            .await
            .unwrap();
        let target = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if close.contains(&2) {
            assert_eq!(target, "/dev/null", "{layout}");
        } else {
            assert!(
                !target.starts_with("socket:") && !target.starts_with("anon_inode:"),
                "{layout}: child's stderr is {target}"
            );
        }
    });
    // Nothing of the library's sits on the standard descriptors we closed:
    // it would get our `println!`s, and the shepherd's stdio set-up would
    // clobber it.
    for &fd in close.iter().filter(|&&fd| fd < 3) {
        assert!(
            closed_or_null(fd),
            "{layout}: fd {fd} was taken by the library"
        );
    }
    drop(rt);
    net_runner::set_prestarted_shepherds(0);
    assert_all_gone(&m, GUARD);
    writeln!(report, "LAYOUT-OK {layout}").unwrap();
}

fn expect_layout(layout: &str) {
    let m = marker();
    let (status, out) = common::run_helper(
        "helper_fd_layout",
        &[(HELPER_MARKER, &m), (LAYOUT, layout)],
        Duration::from_secs(120),
    );
    println!("{out}");
    assert!(
        status.success() && out.contains(&format!("LAYOUT-OK {layout}")),
        "{layout}: {status:?}"
    );
    assert_all_gone(&m, GUARD);
}

#[test]
fn spawning_works_with_fd_3_free_at_the_first_spawn() {
    expect_layout("fd3_free");
}

#[test]
fn spawning_works_with_stdin_closed() {
    expect_layout("stdin_closed");
}

#[test]
fn spawning_works_with_stdout_closed() {
    expect_layout("stdout_closed");
}

#[test]
fn spawning_works_with_stderr_closed() {
    expect_layout("stderr_closed");
}

#[test]
fn spawning_works_with_every_standard_fd_closed() {
    expect_layout("all_closed");
}

#[test]
fn spawning_works_under_a_low_fd_limit() {
    expect_layout("low_fd_limit");
}

/// Helper: changes its cwd, umask, a limit and its stderr after the pool
/// has a shepherd ready; every child must see the new state.
#[test]
fn helper_state_changes_after_prestart() {
    let Some(m) = helper_marker() else { return };
    let mut report = report_channel();
    let dir = std::env::temp_dir().join(format!("netrunner-cwd-{m}"));
    for (name, content) in [("a", "from a"), ("b", "from b")] {
        std::fs::create_dir_all(dir.join(name).join("sub")).unwrap();
        std::fs::write(dir.join(name).join("sub/which"), content).unwrap();
    }
    let pool_ready = || eventually(GUARD, || net_runner::prestarted_idle() == 1);

    std::env::set_current_dir(dir.join("a")).unwrap();
    run_sh(&m, "true");
    assert!(pool_ready());
    std::env::set_current_dir(dir.join("b")).unwrap();
    let out = common::runtime()
        .block_on(
            Command::new("cat")
                .arg("which")
                .current_dir("sub")
                .env(MARKER_VAR, &m)
                .run(),
        )
        .unwrap();
    assert_eq!(
        out.stdout, b"from b",
        "relative cwd resolved against the old cwd"
    );
    assert_eq!(
        run_sh(&m, "pwd").stdout,
        format!("{}\n", dir.join("b").display()).as_bytes()
    );

    assert!(pool_ready());
    let old = unsafe { libc::umask(0o027) };
    assert_eq!(run_sh(&m, "umask").stdout, b"0027\n", "stale umask");
    unsafe { libc::umask(old) };

    assert!(pool_ready());
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_cur = 321.min(lim.rlim_max);
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    assert_eq!(
        run_sh(&m, "ulimit -n").stdout,
        format!("{}\n", lim.rlim_cur).as_bytes(),
        "stale fd limit"
    );

    assert!(pool_ready());
    let log = dir.join("stderr.log");
    let file = File::create(&log).unwrap().into_raw_fd();
    assert_eq!(unsafe { libc::dup2(file, 2) }, 2);
    common::runtime()
        .block_on(
            Command::new("sh")
                .args(["-c", "echo to-new-stderr >&2"])
                .stderr(Stderr::Inherit)
                .env(MARKER_VAR, &m)
                .run(),
        )
        .unwrap();
    assert_eq!(
        std::fs::read(&log).unwrap(),
        b"to-new-stderr\n",
        "stale stderr"
    );

    // And the pool is still used once the state stops changing.
    assert!(pool_ready());
    run_sh(&m, "true");
    std::fs::remove_dir_all(&dir).unwrap();
    net_runner::set_prestarted_shepherds(0);
    assert_all_gone(&m, GUARD);
    writeln!(report, "STATE-OK").unwrap();
}

#[test]
fn children_get_the_owner_state_of_the_spawn_not_of_the_prestart() {
    let m = marker();
    let (status, out) = common::run_helper(
        "helper_state_changes_after_prestart",
        &[(HELPER_MARKER, &m)],
        Duration::from_secs(120),
    );
    println!("{out}");
    assert!(status.success() && out.contains("STATE-OK"), "{status:?}");
    assert_all_gone(&m, GUARD);
}

#[tokio::test]
async fn read_after_take_stdout_is_an_error_not_end_of_file() {
    let m = marker();
    let mut p = Command::new("sh")
        .args(["-c", "echo out; echo err >&2"])
        .env(MARKER_VAR, &m)
        .spawn()
        .await
        .unwrap();
    let _out = p.take_stdout().unwrap();
    let _err = p.take_stderr().unwrap();
    assert!(matches!(
        p.read().await,
        Err(Error::StreamTaken { stream: "stdout" })
    ));
    assert!(matches!(
        p.read_stderr().await,
        Err(Error::StreamTaken { stream: "stderr" })
    ));
    assert!(p.wait().await.unwrap().success());
    // A stderr that is not consumed still reads as nothing.
    let mut p = Command::new("true")
        .stderr(Stderr::Discard)
        .env(MARKER_VAR, &m)
        .spawn()
        .await
        .unwrap();
    assert_eq!(p.read_stderr().await.unwrap(), None);
    p.wait().await.unwrap();
}

#[test]
fn polling_outside_a_runtime_is_an_error_not_a_panic() {
    use futures_util::FutureExt;
    let m = marker();
    let r = Command::new("true")
        .env(MARKER_VAR, &m)
        .run()
        .now_or_never();
    assert!(matches!(r, Some(Err(Error::NoRuntime))), "{r:?}");
    let r = Command::new("true")
        .env(MARKER_VAR, &m)
        .spawn()
        .now_or_never();
    assert!(matches!(r, Some(Err(Error::NoRuntime))));
}
