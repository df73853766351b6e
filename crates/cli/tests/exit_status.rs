//! netrunner's exit statuses and failure messages, with real processes.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{run, temp_dir, Marker};

#[test]
fn success_is_zero_and_quiet() {
    let r = run(&["run", "--", "true"]);
    assert_eq!(r.code(), 0);
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
}

#[test]
fn program_exit_code_is_passed_through() {
    for code in [1, 3, 42, 255] {
        let r = run(&["run", "--", "sh", "-c", &format!("exit {code}")]);
        assert_eq!(r.code(), code);
        assert!(
            r.stderr.is_empty(),
            "a program's failure is not netrunner's: {r:?}"
        );
    }
}

#[test]
fn program_killed_by_signal_n_gives_128_plus_n() {
    for (sig, code) in [("USR1", 138), ("KILL", 137), ("TERM", 143), ("HUP", 129)] {
        let r = run(&["run", "--", "sh", "-c", &format!("kill -{sig} $$")]);
        assert_eq!(r.code(), code, "SIG{sig}");
        assert!(r.stderr.is_empty(), "{r:?}");
    }
}

#[test]
fn timeout_gives_124_and_kills_the_program() {
    let m = Marker::new();
    let r = run(&[
        "run",
        "--timeout",
        "300ms",
        "--env",
        &m.env(),
        "--",
        "sh",
        "-c",
        "echo before; sleep 1000 & wait",
    ]);
    assert_eq!(r.code(), 124, "{r:?}");
    assert_eq!(r.out(), "before\n", "output before the timeout is kept");
    let msg = r.message();
    assert!(msg.contains("timed out"), "{msg}");
    m.assert_gone();
}

#[test]
fn timeout_escalates_to_sigkill_after_the_kill_timeout() {
    let m = Marker::new();
    // Ignores SIGTERM (and so do its children): only SIGKILL ends it.
    let r = run(&[
        "run",
        "--timeout",
        "300ms",
        "--kill-timeout",
        "500ms",
        "--env",
        &m.env(),
        "--",
        "sh",
        "-c",
        "trap '' TERM; sleep 1000 & wait; wait",
    ]);
    // SIGKILL was needed: 137, as timeout(1) says (124 when TERM does it).
    assert_eq!(r.code(), 137, "{r:?}");
    r.message();
    m.assert_gone();
}

#[test]
fn zero_timeout_means_no_limit() {
    let r = run(&[
        "run",
        "--timeout",
        "0",
        "--",
        "sh",
        "-c",
        "sleep 0.2; exit 5",
    ]);
    assert_eq!(r.code(), 5, "{r:?}");
}

#[test]
fn max_output_gives_125_and_exactly_the_first_bytes() {
    // Small, and large enough to span several 128 KiB reads.
    for limit in [0usize, 1, 1000, 300_001] {
        let m = Marker::new();
        let r = run(&[
            "run",
            "--max-output",
            &limit.to_string(),
            "--env",
            &m.env(),
            "--",
            "yes",
        ]);
        assert_eq!(r.code(), 125, "limit {limit}: {}", r.err());
        assert_eq!(r.stdout.len(), limit, "limit {limit}");
        let expected: Vec<u8> = b"y\n".iter().copied().cycle().take(limit).collect();
        assert!(r.stdout == expected, "limit {limit}: wrong bytes");
        let msg = r.message();
        assert!(msg.contains(&format!("{limit}-byte")), "{msg}");
        m.assert_gone();
    }
}

#[test]
fn max_output_applies_to_stderr_too() {
    let r = run(&["run", "--max-output", "100", "--", "sh", "-c", "yes >&2"]);
    assert_eq!(r.code(), 125);
    let expected: Vec<u8> = b"y\n".iter().copied().cycle().take(100).collect();
    assert!(r.stderr.starts_with(&expected), "{}", r.err());
    let rest = String::from_utf8_lossy(&r.stderr[100..]).into_owned();
    assert!(
        rest.starts_with("netrunner: ") && rest.lines().count() == 1,
        "{rest:?}"
    );
}

#[test]
fn output_under_the_limit_is_fine() {
    let r = run(&["run", "--max-output", "6", "--", "echo", "hello"]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.out(), "hello\n");
}

#[test]
fn non_executable_file_gives_126() {
    let dir = temp_dir();
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(&["run", "--", script.to_str().unwrap()]);
    assert_eq!(r.code(), 126, "{r:?}");
    assert!(r.stdout.is_empty());
    assert!(r.message().contains("permission denied"), "{}", r.err());
    // A directory is not executable either.
    let r = run(&["run", "--", dir.path().to_str().unwrap()]);
    assert_eq!(r.code(), 126, "{r:?}");
    r.message();
}

/// Like execvp(3) and timeout(1): a file the kernel cannot run (ENOEXEC)
/// is handed to /bin/sh, whose verdict on junk is its own 127.
#[test]
fn executable_without_shebang_runs_under_sh() {
    let dir = temp_dir();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, [0x7f, b'X', 0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = run(&["run", "--", junk.to_str().unwrap()]);
    assert_eq!(r.code(), 127, "{r:?}");
    assert!(r.err().contains("not found"), "{r:?}");
    assert!(
        !r.err().contains("netrunner:"),
        "sh's message, not ours: {r:?}"
    );
}

#[test]
fn missing_program_gives_127() {
    let name = format!("no-such-program-{}", Marker::new().value);
    let r = run(&["run", "--", &name]);
    assert_eq!(r.code(), 127, "{r:?}");
    let msg = r.message();
    assert!(msg.contains("not found") && msg.contains(&name), "{msg}");

    let r = run(&["run", "--", "/nonexistent/dir/program"]);
    assert_eq!(r.code(), 127, "{r:?}");
    r.message();
}

#[test]
fn usage_errors_give_125_with_one_line() {
    for args in [
        &["run", "--timeout", "soon", "--", "true"][..],
        &["run", "--kill-timeout", "-1s", "--", "true"],
        &["run", "--max-output", "many", "--", "true"],
        &["run", "--stderr", "elsewhere", "--", "true"],
        &["run", "--env", "NO_EQUALS_SIGN", "--", "true"],
        &["run", "--no-such-option", "--", "true"],
        &["run"],
        &["run", "--"],
        &["fly"],
        &[],
    ] {
        let r = run(args);
        assert_eq!(r.code(), 125, "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}");
        r.message();
    }
}

#[test]
fn help_and_version_succeed() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["run", "-h"],
        &["--version"],
    ] {
        let r = run(args);
        assert_eq!(r.code(), 0, "{args:?}");
        assert!(!r.stdout.is_empty() && r.stderr.is_empty(), "{args:?}");
    }
    let help = run(&["run", "--help"]).out();
    for needle in [
        "--timeout",
        "--kill-timeout",
        "--max-output",
        "--input",
        "--stderr",
        "--env",
        "--clear-env",
        "--cwd",
        "--stats-json",
        "124",
        "125",
        "126",
        "127",
        "SIGTERM",
    ] {
        assert!(help.contains(needle), "help lacks {needle}");
    }
}

#[test]
fn netrunner_failures_give_125_before_running_anything() {
    let dir = temp_dir();
    let ran = dir.path().join("ran");
    let touch = format!("touch {}", ran.display());

    let r = run(&["run", "--cwd", "/nonexistent/dir", "--", "sh", "-c", &touch]);
    assert_eq!(r.code(), 125, "{r:?}");
    assert!(r.message().contains("/nonexistent/dir"));

    let missing = dir.path().join("missing-input");
    let r = run(&[
        "run",
        "--input",
        missing.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &touch,
    ]);
    assert_eq!(r.code(), 125, "{r:?}");
    assert!(r.message().contains("missing-input"));

    let r = run(&[
        "run",
        "--input",
        dir.path().to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &touch,
    ]);
    assert_eq!(r.code(), 125, "{r:?}");
    r.message();

    let r = run(&[
        "run",
        "--stats-json",
        "/nonexistent/dir/stats.json",
        "--",
        "sh",
        "-c",
        &touch,
    ]);
    assert_eq!(r.code(), 125, "{r:?}");
    assert!(r.message().contains("stats.json"));

    assert!(!ran.exists(), "the program ran although netrunner failed");
}
