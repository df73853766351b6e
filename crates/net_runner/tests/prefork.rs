//! `prefork_shepherd`: a shepherd forked from a single-threaded owner, as
//! the `netrunner` CLI starts its one shepherd.
//!
//! Its own binary without libtest's harness (`harness = false`): the forks
//! need a process that has one thread, which a test harness never is. The
//! checks run in order in `main`, each printing its name; a panic fails
//! the binary.

mod common;

use std::time::Duration;

use net_runner::{Command, Stderr};

use common::{eventually, marker, GUARD, MARKER_VAR};

fn main() {
    // Listing or filtering (`cargo test -- --list`, nextest): one test.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("prefork: test");
        }
        return;
    }
    let m = marker();
    std::env::set_var(MARKER_VAR, &*m);
    check(
        "refused with NETRUNNER_SHEPHERD set",
        refused_with_shepherd_env,
    );
    check(
        "the forked shepherd looks exec'd",
        forked_shepherd_looks_execd,
    );
    check("a spawn uses it and no reaper thread starts", spawn_uses_it);
    check(
        "the program starts when the spawn's future is created",
        starts_before_the_first_poll,
    );
    check("without a forked shepherd, a spawn execs one", then_exec);
    check("refused once another thread runs", refused_when_threaded);
    common::assert_all_gone(&m, GUARD);
    println!("prefork: all passed");
}

fn check(name: &str, f: fn()) {
    println!("prefork: {name} ...");
    f();
    println!("prefork: {name} ok");
}

/// Our children that are shepherds: named so by the kernel (`comm`).
fn shepherd_children() -> Vec<i32> {
    common::children()
        .into_iter()
        .filter(|&(pid, _)| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "netrunner-sheph")
        })
        .map(|(pid, _)| pid)
        .collect()
}

fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == name)
        })
        .count()
}

fn refused_with_shepherd_env() {
    std::env::set_var(net_runner::SHEPHERD_ENV, "/nonexistent/shepherd");
    let e = net_runner::prefork_shepherd().unwrap_err();
    std::env::remove_var(net_runner::SHEPHERD_ENV);
    assert!(e.to_string().contains("NETRUNNER_SHEPHERD"), "{e}");
    assert_eq!(net_runner::prestarted_idle(), 0);
    assert!(shepherd_children().is_empty());
}

fn forked_shepherd_looks_execd() {
    // Nothing pre-started but the fork: the pool's refill thread would
    // make this process multi-threaded.
    net_runner::set_prestarted_shepherds(0);
    assert_eq!(common::thread_count(), 1, "the checks need one thread");
    // A signal we block must not stay blocked in the shepherd (nor reach
    // its child blocked).
    let mut usr2 = unsafe { std::mem::zeroed::<libc::sigset_t>() };
    unsafe {
        libc::sigemptyset(&mut usr2);
        libc::sigaddset(&mut usr2, libc::SIGUSR2);
        assert_eq!(
            libc::sigprocmask(libc::SIG_BLOCK, &usr2, std::ptr::null_mut()),
            0
        );
    }
    let forked = net_runner::prefork_shepherd();
    unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &usr2, std::ptr::null_mut()) };
    forked.unwrap();
    assert_eq!(net_runner::prestarted_idle(), 1);
    // It names itself once it runs the shepherd's code.
    assert!(eventually(GUARD, || shepherd_children().len() == 1));
    let pid = shepherd_children()[0];
    // Exactly an exec'd shepherd's descriptors: /dev/null on 0 and 1, our
    // stderr on 2, the control socket on 3, its own signalfd, nothing of
    // ours.
    let fds = |pid: i32| -> Vec<(i32, String)> {
        let mut fds: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let n = e.file_name().to_string_lossy().parse().unwrap();
                let target = std::fs::read_link(e.path()).unwrap();
                (n, target.to_string_lossy().into_owned())
            })
            .collect();
        fds.sort();
        fds
    };
    let theirs = fds(pid);
    let numbers: Vec<i32> = theirs.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [0, 1, 2, 3, 4], "{theirs:?}");
    assert_eq!(theirs[0].1, "/dev/null");
    assert_eq!(theirs[1].1, "/dev/null");
    assert_eq!(
        theirs[2].1,
        std::fs::read_link("/proc/self/fd/2")
            .unwrap()
            .to_string_lossy()
    );
    assert!(theirs[3].1.starts_with("socket:"), "{theirs:?}");
    assert_eq!(theirs[4].1, "anon_inode:[signalfd]");
    // No signal blocked, whatever we block.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let blocked = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .unwrap();
    // SIGCHLD and SIGTERM: its signalfd's, blocked by the shepherd itself.
    assert_eq!(blocked.trim(), "0000000000014000", "{status}");
}

fn spawn_uses_it() {
    let forked = shepherd_children();
    assert_eq!(forked.len(), 1);
    let rt = common::runtime();
    rt.block_on(async {
        let mut p = Command::new("sh")
            .args([
                "-c",
                "tr '\\0' ' ' < /proc/$PPID/cmdline; echo; cat /proc/$PPID/comm; echo oops >&2",
            ])
            .stderr(Stderr::Consume)
            .spawn()
            .await
            .unwrap();
        assert_eq!(
            p.shepherd_pid() as i32,
            forked[0],
            "the forked shepherd was not used"
        );
        assert_eq!(net_runner::prestarted_idle(), 0);
        let out = common::read_all(&mut p).await;
        let mut err = Vec::new();
        while let Some(chunk) = p.read_stderr().await.unwrap() {
            err.extend_from_slice(&chunk);
        }
        assert!(p.wait().await.unwrap().success());
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        // Its command line is a shepherd's, not ours.
        assert_eq!(lines[0].trim_end(), "netrunner-shepherd sh", "{out:?}");
        assert_eq!(lines[1], "netrunner-sheph");
        assert_eq!(err, b"oops\n");
        // The shepherd exits by itself; nothing started a reaper thread for
        // it while its `Process` lives.
        assert!(eventually(GUARD, || common::is_zombie(forked[0])));
        assert_eq!(threads_named("netrunner-reape"), 0);
        drop(p);
    });
    // Dropping the `Process` reaps it (on the spot or on the reaper thread).
    assert!(eventually(GUARD, || !common::exists(forked[0])));
}

/// With a forked shepherd waiting, the request goes out when the spawn's
/// future is created: the program runs before there is even a runtime to
/// poll the future in; dropping the future unpolled stops it, and its
/// shepherd is reaped.
fn starts_before_the_first_poll() {
    assert_eq!(common::thread_count(), 1, "the checks need one thread");
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("started");

    // Polled later, in a runtime built meanwhile: the same process.
    net_runner::prefork_shepherd().unwrap();
    // It names itself once it runs the shepherd's code.
    assert!(eventually(GUARD, || shepherd_children().len() == 1));
    let first = shepherd_children();
    let spawn = Command::new("sh")
        .args(["-c", &format!("touch {}; echo hi", flag.display())])
        .spawn();
    assert!(eventually(GUARD, || flag.exists()), "not started unpolled");
    common::runtime().block_on(async {
        let mut p = spawn.await.unwrap();
        assert_eq!(common::read_all(&mut p).await, b"hi\n");
        assert!(p.wait().await.unwrap().success());
        // Dropped once its shepherd is done: reaped on the spot, with no
        // reaper thread (the next check forks again).
        assert!(eventually(GUARD, || common::is_zombie(first[0])));
    });
    assert!(eventually(GUARD, || !common::exists(first[0])));

    // Dropped unpolled.
    std::fs::remove_file(&flag).unwrap();
    net_runner::prefork_shepherd().unwrap();
    assert!(eventually(GUARD, || shepherd_children().len() == 1));
    let shepherd = shepherd_children();
    let script = format!("touch {}; exec sleep 100", flag.display());
    let spawn = Command::new("sh").args(["-c", &script]).spawn();
    assert!(eventually(GUARD, || flag.exists()), "not started unpolled");
    let sleeper = || {
        common::pids_with_marker(&std::env::var(MARKER_VAR).unwrap())
            .into_iter()
            .filter(|&pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
            .count()
    };
    assert!(eventually(GUARD, || sleeper() == 1));
    drop(spawn);
    assert!(eventually(GUARD, || sleeper() == 0), "still running");
    assert!(
        eventually(GUARD, || !common::exists(shepherd[0])),
        "the shepherd of the dropped spawn was not reaped"
    );
}

fn then_exec() {
    assert_eq!(net_runner::prestarted_idle(), 0);
    let rt = common::runtime();
    let out = rt
        .block_on(
            Command::new("sh")
                .args(["-c", "cat /proc/$PPID/comm"])
                .output(),
        )
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"netrunner-sheph\n");
}

fn refused_when_threaded() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || rx.recv_timeout(Duration::from_secs(60)));
    let e = net_runner::prefork_shepherd().unwrap_err();
    assert!(e.to_string().contains("threads"), "{e}");
    assert_eq!(net_runner::prestarted_idle(), 0);
    drop(tx);
    let _ = thread.join();
}
