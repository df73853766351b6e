//! Time limits, output limits and stopping (issue 10): graceful means
//! graceful, and every limit holds for every way of running.
//!
//! No test asserts wall-clock speed: limits are short, guards generous.

mod common;

use std::io::BufRead;
use std::time::Duration;

use futures_util::StreamExt;
use net_runner::{Command, End, Error, Signal, StopSequence};
use tokio::io::AsyncReadExt;

/// A program that, on SIGTERM, writes `echo`s to stdout or stderr while it
/// cleans up, creates `done`, and exits 0.
fn trapper(cleanup: &str, done: &std::path::Path) -> Command {
    let script = format!(
        "trap '{cleanup}; touch {}; exit 0' TERM; echo started; sleep 30 & wait",
        done.display()
    );
    Command::new("sh").args(["-c", &script]).clone()
}

/// The scenario: the timeout's SIGTERM lets the trap print and
/// finish; the error carries that output and the real exit status.
#[tokio::test]
async fn timeout_keeps_the_pipes_open_while_the_program_cleans_up() {
    for (cleanup, on_stdout, on_stderr) in [
        ("echo cleaning up", true, false),
        ("echo cleaning up >&2", false, true),
        ("echo cleaning up; echo cleaning up >&2", true, true),
    ] {
        let marker = common::marker();
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        let err = trapper(cleanup, &done)
            .env(common::MARKER_VAR, &marker)
            .timeout(Duration::from_millis(300))
            .run()
            .await
            .unwrap_err();
        let Error::Timeout { timeout, output } = &err else {
            panic!("{cleanup}: {err:?}");
        };
        assert_eq!(*timeout, Duration::from_millis(300));
        let (out, errs) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(out.starts_with("started\n"), "{cleanup}: {out:?}");
        assert_eq!(out.contains("cleaning up"), on_stdout, "{cleanup}: {out:?}");
        assert_eq!(
            errs.contains("cleaning up"),
            on_stderr,
            "{cleanup}: {errs:?}"
        );
        assert_eq!(output.status.code(), Some(0), "{cleanup}: {err}");
        assert_eq!(output.stats.end, Some(End::Timeout));
        assert!(done.exists(), "{cleanup}: the trap did not finish");
        assert!(err.to_string().contains("timed out"), "{err}");
        common::assert_all_gone(&marker, common::GUARD);
    }
}

/// The same through a stream: cleanup output arrives as chunks, then the
/// timeout error.
#[tokio::test]
async fn stream_delivers_cleanup_output_then_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let mut s = trapper("echo cleaning up", &done)
        .timeout(Duration::from_millis(300))
        .stream()
        .await
        .unwrap();
    let mut all = Vec::new();
    let err = loop {
        match s.next().await.expect("ends with the timeout") {
            Ok(b) => all.extend_from_slice(&b),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(Error::from_io(&err), Some(Error::Timeout { .. })),
        "{err:?}"
    );
    assert_eq!(all, b"started\ncleaning up\n");
    assert!(done.exists());
}

/// `spawn()` honours the timeout: the shepherd stops the child, `wait`
/// says it was a timeout.
#[tokio::test]
async fn spawn_honours_the_timeout() {
    let marker = common::marker();
    let mut p = Command::new("sleep")
        .arg("30")
        .env(common::MARKER_VAR, &marker)
        .timeout(Duration::from_millis(200))
        .spawn()
        .await
        .unwrap();
    let err = p.wait().await.unwrap_err();
    let Error::Timeout { output, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(output.status.signal_kind(), Some(Signal::Term));
    assert_eq!(p.stats().end, Some(End::Timeout));
    common::assert_all_gone(&marker, common::GUARD);
}

fn is_output_limit(e: &Error) -> bool {
    matches!(e, Error::OutputLimit { limit: 10, .. })
}

/// `spawn()` with `max_output`: `read`, `read_stderr` and a `take_stdout`
/// reader deliver exactly the first N bytes, then the typed error; the
/// process is stopped.
#[tokio::test]
async fn spawn_honours_max_output_for_every_reader() {
    for how in ["read", "read_stderr", "take_stdout"] {
        let marker = common::marker();
        let script = if how == "read_stderr" {
            "yes >&2"
        } else {
            "yes"
        };
        let mut p = Command::new("sh")
            .args(["-c", script])
            .env(common::MARKER_VAR, &marker)
            .max_output(10)
            .spawn()
            .await
            .unwrap();
        let mut got = Vec::new();
        let err = match how {
            "take_stdout" => {
                let mut r = p.take_stdout().unwrap();
                let mut buf = [0u8; 3];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) => panic!("{how}: end of file"),
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) => break Error::from_io(&e).map(is_output_limit),
                    }
                }
            }
            _ => loop {
                let r = if how == "read" {
                    p.read().await
                } else {
                    p.read_stderr().await
                };
                match r {
                    Ok(Some(b)) => got.extend_from_slice(&b),
                    Ok(None) => panic!("{how}: end of file"),
                    Err(Error::Io(e)) => break Error::from_io(&e).map(is_output_limit),
                    Err(e) => break Some(is_output_limit(&e)),
                }
            },
        };
        assert_eq!(err, Some(true), "{how}");
        assert_eq!(got, b"y\ny\ny\ny\ny\n", "{how}");
        let status = p.wait().await.unwrap();
        assert_eq!(status.signal_kind(), Some(Signal::Term), "{how}");
        assert_eq!(p.stats().end, Some(End::MaxOutput), "{how}");
        common::assert_all_gone(&marker, common::GUARD);
    }
}

/// `run` with `max_output`: exactly N bytes kept, the overflowing stream
/// drained (not closed) while the program shuts down, stderr kept.
#[tokio::test]
async fn run_max_output_drains_instead_of_closing() {
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let script = format!(
        "trap 'echo bye >&2; touch {}; exit 0' TERM; yes & wait",
        done.display()
    );
    let err = Command::new("sh")
        .args(["-c", &script])
        .max_output(10)
        .kill_leftovers(true)
        .run()
        .await
        .unwrap_err();
    let Error::MaxOutputExceeded { limit, output } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*limit, 10);
    assert_eq!(output.stdout, b"y\ny\ny\ny\ny\n");
    assert_eq!(output.stderr, b"bye\n");
    assert_eq!(output.status.code(), Some(0));
    assert!(done.exists());
    assert!(err.to_string().ends_with("; stderr: bye"), "{err}");
}

/// A program that logs every signal it receives sees the custom stop
/// sequence in order, then SIGKILL.
#[tokio::test]
async fn custom_stop_sequence_runs_in_order() {
    let script = "for s in INT TERM HUP; do trap \"echo $s\" $s; done; \
                  echo ready; while :; do sleep 0.05; done";
    let err = Command::new("sh")
        .args(["-c", script])
        .timeout(Duration::from_millis(200))
        .stop_sequence(
            StopSequence::new()
                .signal(Signal::Int, Duration::from_millis(400))
                .signal(Signal::Hup, Duration::from_millis(400))
                .signal(Signal::Term, Duration::from_millis(400)),
        )
        .run()
        .await
        .unwrap_err();
    let Error::Timeout { output, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "ready\nINT\nHUP\nTERM\n"
    );
    assert_eq!(output.status.signal_kind(), Some(Signal::Kill));
}

/// `close-stdin` as a step: a program reading its stdin sees end of file.
#[tokio::test]
async fn stop_sequence_can_close_stdin() {
    let (_tx, rx) = futures_channel_like();
    let out = Command::new("sh")
        .args(["-c", "cat; echo eof"])
        .input_stream(rx)
        .timeout(Duration::from_millis(200))
        .stop_sequence(StopSequence::new().close_stdin(Duration::from_secs(60)))
        .run()
        .await
        .unwrap_err();
    let Error::Timeout { output, .. } = &out else {
        panic!("{out:?}");
    };
    assert_eq!(output.stdout, b"eof\n");
    assert_eq!(output.status.code(), Some(0));
}

/// An input stream that never ends (until its sender is dropped).
fn futures_channel_like() -> (
    tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    impl futures_core::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (tx, stream)
}

/// The idle timeout spares a program that keeps talking and stops one
/// that goes silent, reported distinctly from the overall timeout.
#[tokio::test]
async fn idle_timeout_stops_only_a_silent_program() {
    let out = Command::new("sh")
        .args([
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.1; done",
        ])
        .idle_timeout(Duration::from_secs(5))
        .run()
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stats.end, Some(End::Exited));

    let marker = common::marker();
    let err = Command::new("sh")
        .args(["-c", "echo hi; echo warn >&2; sleep 30"])
        .env(common::MARKER_VAR, &marker)
        .idle_timeout(Duration::from_millis(300))
        .run()
        .await
        .unwrap_err();
    let Error::IdleTimeout { timeout, output } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*timeout, Duration::from_millis(300));
    assert_eq!(output.stdout, b"hi\n");
    assert_eq!(output.stats.end, Some(End::IdleTimeout));
    assert!(err.to_string().contains("idle"), "{err}");
    assert!(err.to_string().ends_with("; stderr: warn"), "{err}");
    common::assert_all_gone(&marker, common::GUARD);
}

/// Errors carry the last few KiB of stderr, not all of it.
#[tokio::test]
async fn errors_carry_the_stderr_tail() {
    let err = Command::new("sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 2000 ]; do echo line$i >&2; i=$((i+1)); done; exit 4",
        ])
        .run()
        .await
        .unwrap()
        .exit_ok()
        .unwrap_err();
    let tail = err.stderr_tail().unwrap();
    assert!(tail.len() <= 4096 && tail.len() > 3000, "{}", tail.len());
    assert!(tail.starts_with(b"line") && tail.ends_with(b"line1999\n"));
    let msg = err.to_string();
    assert!(msg.starts_with("exit code 4; stderr: "), "{msg}");
    assert!(
        msg.ends_with("line1999") && !msg.contains("line0\n"),
        "{msg}"
    );
}

/// With `kill_leftovers(false)`, a descendant that keeps the output open
/// does not hang `run`: after the bound it ends with the holders named.
#[tokio::test]
async fn leftover_holders_are_named_instead_of_hanging() {
    let marker = common::marker();
    let err = Command::new("sh")
        .args(["-c", "sleep 30 & echo $!"])
        .env(common::MARKER_VAR, &marker)
        .kill_leftovers(false)
        .leftover_wait(Duration::from_millis(300))
        .run()
        .await
        .unwrap_err();
    let Error::LeftoverHolders { pids, output } = &err else {
        panic!("{err:?}");
    };
    let sleeper: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pids, &[sleeper]);
    assert!(output.status.success());
    common::kill_pids(&[sleeper as i32]);
    common::assert_all_gone(&marker, common::GUARD);
}

/// The deadline is the shepherd's: an owner that is stopped (SIGSTOP)
/// still gets its child stopped on time.
#[test]
fn a_stalled_owner_still_gets_its_child_stopped_at_the_deadline() {
    let marker = common::marker();
    let mut helper = common::reexec(
        "helper_owner_that_stalls",
        &[
            ("NETRUNNER_STALL_HELPER", "1"),
            (common::MARKER_VAR, &marker),
        ],
    );
    let mut lines = std::io::BufReader::new(helper.stdout.take().unwrap()).lines();
    let child: i32 = common::line_with(&mut lines, "CHILD ")
        .expect("the helper reports its child")
        .parse()
        .unwrap();
    let owner = helper.id() as i32;
    unsafe { libc::kill(owner, libc::SIGSTOP) };
    let gone = common::eventually(common::GUARD, || !common::exists(child));
    unsafe { libc::kill(owner, libc::SIGKILL) };
    let _ = helper.wait();
    assert!(
        gone,
        "the child outlived its deadline while the owner was stopped"
    );
    common::assert_all_gone(&marker, common::GUARD);
}

#[tokio::test]
async fn helper_owner_that_stalls() {
    if std::env::var_os("NETRUNNER_STALL_HELPER").is_none() {
        return;
    }
    let p = Command::new("sleep")
        .arg("60")
        .timeout(Duration::from_millis(500))
        .kill_timeout(Duration::from_secs(60))
        .spawn()
        .await
        .unwrap();
    println!("CHILD {}", p.os_pid());
    // Busy with something else; never polls `p` again.
    std::thread::sleep(Duration::from_secs(120));
    drop(p);
}
