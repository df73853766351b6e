//! PTY mode on real pseudo-terminals: the child's view (a terminal on fds
//! 0-2, its size, SIGWINCH), no output lost however late the reader, end of
//! file through the line discipline, interactive programs, owner death,
//! bad sizes, and no leaks.

mod common;

use std::time::Duration;

use net_runner::{Command, Error, Process, Pty};

/// Reads until `needle` has appeared in the output (returns all so far).
async fn read_until(p: &mut Process, out: &mut Vec<u8>, needle: &str) {
    let found = |out: &[u8]| String::from_utf8_lossy(out).contains(needle);
    tokio::time::timeout(common::GUARD, async {
        while !found(out) {
            match p.read().await.unwrap() {
                Some(chunk) => out.extend_from_slice(&chunk),
                None => panic!(
                    "end of output before {needle:?}: {:?}",
                    String::from_utf8_lossy(out)
                ),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(out)));
}

#[tokio::test]
async fn the_program_sees_a_terminal_on_stdin_stdout_and_stderr() {
    let out = Command::new("sh")
        .args(["-c", "test -t 0 && test -t 1 && test -t 2"])
        .pty(24, 80)
        .run()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // And without PTY mode it does not (the test can fail).
    let out = Command::new("sh")
        .args(["-c", "test -t 0 && test -t 1 && test -t 2"])
        .run()
        .await
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn stty_reports_the_size_at_start_and_after_set_window_size() {
    let out = Command::new("stty")
        .arg("size")
        .pty(33, 101)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"33 101\r\n");

    let mut p = Command::new("sh")
        .args(["-c", "stty size; read go; stty size"])
        .pty(24, 80)
        .spawn()
        .await
        .unwrap();
    let mut out = Vec::new();
    read_until(&mut p, &mut out, "24 80\r\n").await;
    p.set_window_size(50, 132).unwrap();
    p.write(b"go\n").await.unwrap();
    out.extend(common::read_all(&mut p).await);
    assert_eq!(String::from_utf8_lossy(&out), "24 80\r\ngo\r\n50 132\r\n");
    assert!(p.wait().await.unwrap().success());
}

#[tokio::test]
async fn a_program_trapping_winch_sees_the_resize() {
    let mut p = Command::new("sh")
        .args([
            "-c",
            "trap 'echo WINCH $(stty size); exit 0' WINCH; echo ready; \
             while :; do sleep 0.05; done",
        ])
        .pty(24, 80)
        .spawn()
        .await
        .unwrap();
    let mut out = Vec::new();
    read_until(&mut p, &mut out, "ready").await;
    p.set_window_size(30, 90).unwrap();
    read_until(&mut p, &mut out, "WINCH 30 90").await;
    assert!(p.wait().await.unwrap().success());
}

#[tokio::test]
async fn echo_hi_is_never_lost_over_200_runs_even_read_late() {
    for i in 0..200 {
        let out = Command::new("echo")
            .arg("hi")
            .pty(24, 80)
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"hi\r\n", "run {i}");
        // The reader first waits: the program has exited (and the
        // shepherd closed its slave) long before anything is read.
        let mut p = Command::new("echo")
            .arg("hi")
            .pty(24, 80)
            .spawn()
            .await
            .unwrap();
        if i % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            // The exit is reported before a byte is read; the output is
            // still all there.
            assert!(p.wait().await.unwrap().success());
        }
        assert_eq!(
            common::read_all(&mut p).await,
            b"hi\r\n",
            "late reader, run {i}"
        );
        assert!(p.wait().await.unwrap().success());
    }
}

#[tokio::test]
async fn three_mib_from_a_fast_exiting_program_arrive_whole() {
    // Raw mode: output is passed unchanged, so the count is exact.
    let size = 3 * 1024 * 1024;
    let script = format!("head -c {size} /dev/zero | tr '\\0' x; exit 0");
    let out = Command::new("sh")
        .args(["-c", &script])
        .pty_with(Pty::new(24, 80).raw(true))
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), size);
    assert!(out.stdout.iter().all(|&b| b == b'x'));
    assert_eq!(out.stats.bytes_out, size as u64);

    // Cooked, with a reader that starts late: every "\n" becomes "\r\n".
    let lines = 100_000; // 3.1 MB of "012345678901234567890123456789\n"
    let script = format!("yes 012345678901234567890123456789 | head -n {lines}");
    let mut p = Command::new("sh")
        .args(["-c", &script])
        .pty(24, 80)
        .spawn()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = common::read_all(&mut p).await;
    assert_eq!(out.len(), lines * 32);
    assert!(out
        .chunks(32)
        .all(|l| l == b"012345678901234567890123456789\r\n"));
    assert!(p.wait().await.unwrap().success());
}

#[tokio::test]
async fn close_stdin_delivers_end_of_file_through_the_terminal() {
    let mut p = Command::new("wc")
        .arg("-c")
        .pty(24, 80)
        .spawn()
        .await
        .unwrap();
    p.write(b"abc").await.unwrap();
    p.close_stdin();
    let out = common::read_all(&mut p).await;
    // "abc" is the terminal's echo; wc counted 3 bytes.
    assert_eq!(String::from_utf8_lossy(&out).trim_end(), "abc3");
    assert_eq!(p.wait().await.unwrap().code(), Some(0));

    // At the start of a line one VEOF is enough (a second would be a
    // second end of file: `cat; cat` would see both).
    let mut p = Command::new("sh")
        .args([
            "-c",
            "cat >/dev/null; echo first; cat >/dev/null; echo second",
        ])
        .pty(24, 80)
        .spawn()
        .await
        .unwrap();
    p.write(b"line\n").await.unwrap();
    p.close_stdin();
    let mut out = Vec::new();
    read_until(&mut p, &mut out, "first").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(p.is_alive(), "{:?}", String::from_utf8_lossy(&out));
    p.kill(net_runner::Signal::Kill).unwrap();
    p.wait().await.unwrap();

    // `input` and `run`: sort and cat finish as on a pipe.
    let out = Command::new("sort")
        .pty(24, 80)
        .input("b\na\nc")
        .timeout(common::GUARD)
        .run()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("a\r\nb\r\nc\r\n"),
        "{out:?}"
    );
    // Without input, stdin is at end of file at once (as /dev/null is).
    let out = Command::new("cat")
        .pty(24, 80)
        .timeout(common::GUARD)
        .run()
        .await
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
}

#[tokio::test]
async fn an_interactive_shell_driven_by_write_and_read() {
    let mut p = Command::new("sh")
        .arg("-i")
        .env("PS1", "PROMPT> ")
        .env("ENV", "/dev/null")
        .pty(24, 80)
        .spawn()
        .await
        .unwrap();
    let mut out = Vec::new();
    read_until(&mut p, &mut out, "PROMPT> ").await;
    p.write(b"echo $((6 * 7))\n").await.unwrap();
    read_until(&mut p, &mut out, "42\r\n").await;
    // ^C is a character for the terminal, SIGINT for the shell's
    // foreground job, not for the shell.
    p.write(b"sleep 30\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.write(b"\x03").await.unwrap();
    p.write(b"echo after-$?\n").await.unwrap();
    read_until(&mut p, &mut out, "after-130").await;
    p.write(b"exit 5\n").await.unwrap();
    common::read_all(&mut p).await;
    assert_eq!(p.wait().await.unwrap().code(), Some(5));
}

#[tokio::test]
async fn python_interactive_driven_by_write_and_read() {
    if std::process::Command::new("python3")
        .args(["-c", "pass"])
        .status()
        .is_err()
    {
        eprintln!("no python3: skipped");
        return;
    }
    let mut p = Command::new("python3")
        .args(["-i", "-q"])
        .env("PYTHONSTARTUP", "")
        .pty(24, 80)
        .spawn()
        .await
        .unwrap();
    let mut out = Vec::new();
    read_until(&mut p, &mut out, ">>> ").await;
    p.write(b"print(6 * 7)\n").await.unwrap();
    read_until(&mut p, &mut out, "42\r\n").await;
    p.write(b"import os, sys; print(os.isatty(0), sys.stdout.isatty())\n")
        .await
        .unwrap();
    read_until(&mut p, &mut out, "True True").await;
    // End of input at the prompt ends the interpreter.
    p.close_stdin();
    common::read_all(&mut p).await;
    assert!(p.wait().await.unwrap().success());
}

#[tokio::test]
async fn bad_sizes_are_typed_errors() {
    for (rows, cols) in [(0, 80), (24, 0), (0, 0), (10_001, 80), (24, u16::MAX)] {
        let err = Command::new("true")
            .pty(rows, cols)
            .run()
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidOption { option: "pty", .. }),
            "{rows}x{cols}: {err:?}"
        );
    }
    let p = Command::new("sleep")
        .arg("10")
        .pty(24, 80)
        .spawn()
        .await
        .unwrap();
    assert!(matches!(
        p.set_window_size(0, 80),
        Err(Error::InvalidOption { option: "pty", .. })
    ));
    let p = Command::new("sleep").arg("10").spawn().await.unwrap();
    assert!(matches!(
        p.set_window_size(24, 80),
        Err(Error::NotATerminal)
    ));
}

#[tokio::test]
async fn timeout_signals_and_max_output_work_as_with_pipes() {
    let err = Command::new("sh")
        .args(["-c", "echo started; sleep 30"])
        .pty(24, 80)
        .timeout(Duration::from_millis(300))
        .run()
        .await
        .unwrap_err();
    match err {
        Error::Timeout { output, .. } => {
            assert_eq!(output.stdout, b"started\r\n");
            assert_eq!(output.stats.end, Some(net_runner::End::Timeout));
        }
        other => panic!("{other:?}"),
    }
    let err = Command::new("sh")
        .args(["-c", "yes"])
        .pty(24, 80)
        .max_output(10_000)
        .run()
        .await
        .unwrap_err();
    match err {
        Error::MaxOutputExceeded { output, .. } => assert_eq!(output.stdout.len(), 10_000),
        other => panic!("{other:?}"),
    }
    let mut p = Command::new("sleep")
        .arg("30")
        .pty(24, 80)
        .spawn()
        .await
        .unwrap();
    p.kill(net_runner::Signal::Term).unwrap();
    assert_eq!(p.wait().await.unwrap().signal(), Some(libc::SIGTERM));
}

/// Carries a marker into the owner helper.
const HELPER_MARKER: &str = "NETRUNNER_PTY_MARKER";

/// Helper: an owner running a PTY session whose shell starts a `setsid`
/// descendant (outside the session's group) and a plain one, then
/// announces the pids and waits to be killed.
#[test]
fn helper_pty_owner() {
    let Ok(m) = std::env::var(HELPER_MARKER) else {
        return;
    };
    let rt = common::runtime();
    rt.block_on(async {
        let mut p = Command::new("sh")
            .args([
                "-c",
                "setsid sleep 1000 & sleep 1000 & echo \"PIDS $$ $!\"; wait",
            ])
            .env(common::MARKER_VAR, &m)
            .kill_timeout(Duration::from_millis(300))
            .pty(24, 80)
            .spawn()
            .await
            .unwrap();
        let mut out = Vec::new();
        read_until(&mut p, &mut out, "\r\n").await;
        println!("OWNER {}", String::from_utf8_lossy(&out).trim());
        // Until SIGKILLed; should the test be gone, the write to its
        // closed pipe fails and this owner ends too.
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            println!("ALIVE");
        }
    });
}

#[test]
fn owner_sigkilled_during_a_pty_session_leaves_nothing() {
    use std::io::BufRead;
    let m = common::marker();
    let mut owner = common::reexec("helper_pty_owner", &[(HELPER_MARKER, &m)]);
    let mut lines = std::io::BufReader::new(owner.stdout.take().unwrap()).lines();
    let line = common::line_with(&mut lines, "OWNER PIDS ").expect("owner never started");
    let pids: Vec<i32> = line.split(' ').map(|p| p.parse().unwrap()).collect();
    // The session leader, the plain sleeper and the setsid one, which
    // leads a session of its own (once `setsid` has run).
    let escaped = || {
        common::pids_with_marker(&m)
            .into_iter()
            .any(|pid| pid != pids[0] && unsafe { libc::getsid(pid) } == pid)
    };
    assert!(
        common::eventually(common::GUARD, escaped),
        "no setsid descendant: {pids:?}"
    );
    assert!(common::pids_with_marker(&m).len() >= 3, "{pids:?}");
    owner.kill().unwrap(); // SIGKILL: no destructor runs in the owner
    owner.wait().unwrap();
    common::assert_all_gone(&m, common::GUARD);
}
