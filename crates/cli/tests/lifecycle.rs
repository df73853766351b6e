//! Signals, a closed stdout, and netrunner's own death, with real process
//! trees. Every test program carries a unique marker in its environment so
//! that "the program is gone" can be checked in /proc; leftovers are killed
//! by pid when the marker drops.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{netrunner, read_until, signal, wait_guarded, Marker, GUARD};

/// Starts netrunner running `sh -c script` with the marker, stdout piped,
/// and waits until the script printed `ready`.
fn start_ready(m: &Marker, extra: &[&str], script: &str) -> (Child, std::process::ChildStdout) {
    let env = m.env();
    let mut args = vec!["run", "--env", &env];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let mut child = netrunner(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netrunner");
    let (stdout, _) = read_until(child.stdout.take().unwrap(), b"ready");
    (child, stdout)
}

/// Waits until at least `n` marked processes are visible: a background job
/// may be mid-exec (its environ briefly unreadable) when "ready" arrives.
fn wait_for_procs(m: &Marker, n: usize) {
    let start = std::time::Instant::now();
    while m.pids().len() < n && start.elapsed() < GUARD {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pids = m.pids();
    assert!(pids.len() >= n, "expected {n} processes, found {pids:?}");
}

fn drain(mut stdout: std::process::ChildStdout) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stdout.read_to_end(&mut all);
        all
    })
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    err
}

#[test]
fn forwarded_signals_reach_the_program_and_its_status_is_returned() {
    for (sig, code) in [(libc::SIGTERM, 7), (libc::SIGINT, 8), (libc::SIGHUP, 9)] {
        let m = Marker::new();
        let name = match sig {
            libc::SIGTERM => "TERM",
            libc::SIGINT => "INT",
            _ => "HUP",
        };
        let script = format!("trap 'exit {code}' {name}; echo ready; while :; do sleep 0.05; done");
        let (mut child, stdout) = start_ready(&m, &[], &script);
        let out = drain(stdout);
        signal(child.id(), sig);
        let status = wait_guarded(&mut child, GUARD);
        assert_eq!(
            status.code(),
            Some(code),
            "SIG{name}: {}",
            stderr_of(&mut child)
        );
        // `ready` itself was consumed by start_ready.
        assert_eq!(out.join().unwrap(), b"");
        m.assert_gone();
    }
}

#[test]
fn forwarded_sigterm_kills_the_whole_group() {
    let m = Marker::new();
    // The grandchild is in the program's process group and dies with it.
    let (mut child, stdout) = start_ready(&m, &[], "sleep 1000 & echo ready; wait");
    let out = drain(stdout);
    wait_for_procs(&m, 2);
    signal(child.id(), libc::SIGTERM);
    let status = wait_guarded(&mut child, GUARD);
    // Forwarded, and the program died of it: so does netrunner.
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(stderr_of(&mut child).is_empty());
    out.join().unwrap();
    m.assert_gone();
}

#[test]
fn signals_are_forwarded_while_stdout_is_blocked() {
    let m = Marker::new();
    // Floods stdout, which nobody reads for now: netrunner sits in a write
    // (and the program in its own). No trap: a shell runs traps only
    // between commands, and this one would never finish its write.
    let (mut child, stdout) =
        start_ready(&m, &["--pipe"], "echo ready; while :; do echo flood; done");
    std::thread::sleep(Duration::from_millis(300));
    signal(child.id(), libc::SIGTERM);
    // The program must die although netrunner's stdout is still stuck.
    m.assert_gone();
    let out = drain(stdout);
    let status = wait_guarded(&mut child, GUARD);
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "{}",
        stderr_of(&mut child)
    );
    let out = out.join().unwrap();
    assert!(out.ends_with(b"flood\n") || out.is_empty());
}

#[test]
fn closed_stdout_kills_the_program_and_netrunner_exits_141() {
    let m = Marker::new();
    let env = m.env();
    let mut child = netrunner(&["run", "--env", &env, "--", "yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -c 1000`: read a little, then close the pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1000];
    stdout.read_exact(&mut buf).unwrap();
    assert!(buf.starts_with(b"y\ny\n"));
    drop(stdout);
    let status = wait_guarded(&mut child, GUARD);
    assert_eq!(status.code(), Some(141), "{}", stderr_of(&mut child));
    m.assert_gone();
}

#[test]
fn closed_stdout_kills_grandchildren_too() {
    let m = Marker::new();
    let (mut child, stdout) = start_ready(
        &m,
        &[],
        "sleep 1000 & echo ready; while :; do echo more; sleep 0.01; done",
    );
    drop(stdout);
    let status = wait_guarded(&mut child, GUARD);
    assert_eq!(status.code(), Some(141));
    m.assert_gone();
}

#[test]
fn timeout_is_not_held_up_by_a_stuck_stdout() {
    let m = Marker::new();
    let env = m.env();
    // Nobody ever reads netrunner's stdout: its write blocks for good, yet
    // the timeout still ends the run.
    let mut child = netrunner(&[
        "run",
        "--timeout",
        "500ms",
        "--kill-timeout",
        "500ms",
        "--env",
        &env,
        "--",
        "yes",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take();
    let status = wait_guarded(&mut child, GUARD);
    let err = stderr_of(&mut child);
    drop(stdout);
    assert_eq!(status.code(), Some(124), "{err}");
    assert!(err.starts_with("netrunner: "), "{err}");
    m.assert_gone();
}

#[test]
fn timeout_is_not_held_up_by_a_stuck_stderr() {
    let m = Marker::new();
    let env = m.env();
    // The same with stderr: netrunner's final message must not block on it
    // either.
    let mut child = netrunner(&[
        "run",
        "--timeout",
        "500ms",
        "--kill-timeout",
        "500ms",
        "--env",
        &env,
        "--",
        "sh",
        "-c",
        "yes >&2",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take();
    let status = wait_guarded(&mut child, GUARD);
    drop(stderr);
    assert_eq!(status.code(), Some(124));
    m.assert_gone();
}

/// SIGKILLs netrunner while `script` runs; everything marked must die.
fn sigkill_netrunner(extra: &[&str], script: &str, min_procs: usize) {
    let m = Marker::new();
    let (mut child, stdout) = start_ready(&m, extra, script);
    wait_for_procs(&m, min_procs);
    signal(child.id(), libc::SIGKILL);
    let status = wait_guarded(&mut child, GUARD);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    drop(stdout);
    m.assert_gone();
}

#[test]
fn sigkilled_netrunner_takes_program_and_grandchild_along() {
    sigkill_netrunner(&[], "sleep 1000 & echo ready; wait", 2);
}

#[test]
fn sigkilled_netrunner_escalates_to_sigkill_for_stubborn_programs() {
    // SIGTERM is ignored by the program and inherited by its grandchild.
    sigkill_netrunner(
        &["--kill-timeout", "1s"],
        "trap '' TERM; sleep 1000 & echo ready; while :; do wait; done",
        2,
    );
}

#[test]
fn sigkilled_netrunner_also_kills_a_grandchild_that_left_the_group() {
    // `setsid` moves the grandchild to its own session and process group:
    // only the shepherd's subreaper role can find it.
    sigkill_netrunner(
        &["--kill-timeout", "1s"],
        "setsid sleep 1000 & echo ready; wait",
        2,
    );
}
