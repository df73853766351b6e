//! `--timeout`, `--idle-timeout`, `--signal`, `--stop-sequence` and the
//! `end` of `--stats-json` (issue 10). Guards only; no speed asserted.

mod common;

use common::{run, temp_dir, Marker};

fn stats(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The scenario: the program's SIGTERM trap prints and finishes,
/// as under `timeout 0.3`; netrunner still exits 124.
#[test]
fn timeout_lets_the_trap_print_and_finish() {
    for (redirect, on_stdout) in [("", true), (" >&2", false)] {
        let marker = Marker::new();
        let dir = temp_dir();
        let done = dir.path().join("done");
        let json = dir.path().join("stats.json");
        let script = format!(
            "trap 'echo cleaning up{redirect}; touch {}; exit 0' TERM; sleep 10 & wait",
            done.display()
        );
        let r = run(&[
            "run",
            "--timeout",
            "300ms",
            "--stats-json",
            json.to_str().unwrap(),
            "--env",
            &marker.env(),
            "--",
            "sh",
            "-c",
            &script,
        ]);
        assert_eq!(r.code(), 124, "{}", r.err());
        assert_eq!(r.out().contains("cleaning up"), on_stdout, "{r:?}");
        assert_eq!(r.err().contains("cleaning up"), !on_stdout, "{r:?}");
        assert!(
            r.err()
                .contains("netrunner: timed out after 300ms (then exit code 0)"),
            "{}",
            r.err()
        );
        assert!(done.exists(), "the trap did not finish");
        let s = stats(&json);
        assert_eq!(s["end"], "timeout");
        assert_eq!(s["exit_code"], 0);
        assert!(s["signal"].is_null());
        marker.assert_gone();
    }
}

/// `--stop-sequence` runs its steps in order; `--signal` picks the first
/// signal of the default one.
#[test]
fn stop_sequence_and_signal() {
    let script = "for s in INT TERM USR1; do trap \"echo $s\" $s; done; \
                  echo ready; while :; do sleep 0.05; done";
    let r = run(&[
        "run",
        "--timeout",
        "200ms",
        "--stop-sequence",
        "USR1:400ms,INT:400ms,KILL",
        "--",
        "sh",
        "-c",
        script,
    ]);
    // It needed the final SIGKILL: 137, as timeout(1) says.
    assert_eq!(r.code(), 137, "{}", r.err());
    assert_eq!(r.out(), "ready\nUSR1\nINT\n");

    let r = run(&[
        "run",
        "--timeout",
        "200ms",
        "--signal",
        "INT",
        "--kill-timeout",
        "30s",
        "--",
        "sh",
        "-c",
        "trap 'echo got INT; exit 3' INT; while :; do sleep 0.05; done",
    ]);
    assert_eq!(r.code(), 124, "{}", r.err());
    assert_eq!(r.out(), "got INT\n");
    assert!(r.err().contains("exit code 3"), "{}", r.err());
}

/// `--idle-timeout` stops a silent program, exit 124, `end` idle_timeout.
#[test]
fn idle_timeout_stops_a_silent_program() {
    let dir = temp_dir();
    let json = dir.path().join("stats.json");
    let r = run(&[
        "run",
        "--idle-timeout",
        "300ms",
        "--stats-json",
        json.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo hi; sleep 30",
    ]);
    assert_eq!(r.code(), 124, "{}", r.err());
    assert_eq!(r.out(), "hi\n");
    assert!(r.err().contains("idle timeout"), "{}", r.err());
    assert_eq!(stats(&json)["end"], "idle_timeout");
}

#[test]
fn bad_stop_specs_are_usage_errors() {
    for args in [
        &["--stop-sequence", "TERM,KILL:1s"][..],
        &["--stop-sequence", "NOPE"],
        &["--signal", "0"],
    ] {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend(["--", "true"]);
        let r = run(&all);
        assert_eq!(r.code(), 125, "{args:?}");
        r.message();
    }
}
