//! `netrunner daemon`: pass-through, announcements, exit statuses, a
//! graceful stop by SIGTERM. Every program carries a marker; each test
//! proves none is left.

mod common;

use std::process::Stdio;

use common::{netrunner, read_until, run, signal, wait_guarded, Marker, GUARD};

#[test]
fn restart_limit_exits_125_and_output_passes_through() {
    let m = Marker::new();
    let env = m.env();
    let r = run(&[
        "daemon",
        "--env",
        &env,
        "--max-restarts",
        "2",
        "--backoff",
        "10ms",
        "--",
        "sh",
        "-c",
        "printf 'out\\0bytes'; echo err >&2; exit 3",
    ]);
    assert_eq!(r.code(), 125, "{}", r.err());
    // Three starts, each output byte for byte.
    assert_eq!(r.stdout, b"out\0bytes".repeat(3));
    let err = r.err();
    assert_eq!(err.matches("err\n").count(), 3, "{err}");
    assert_eq!(
        err.matches("netrunner: sh: restarting in").count(),
        2,
        "{err}"
    );
    assert_eq!(
        err.matches("netrunner: sh: exit status 3").count(),
        3,
        "{err}"
    );
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("netrunner: daemon sh: gave up after 2 restarts"),
        "{err}"
    );
    // --quiet: only the final line.
    let r = run(&[
        "daemon",
        "--quiet",
        "--env",
        &env,
        "--max-restarts",
        "1",
        "--backoff",
        "10ms",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(r.code(), 125);
    assert!(r.message().contains("gave up after 1 restarts"));
    // --restart never: the program's own status.
    let r = run(&[
        "daemon",
        "--quiet",
        "--restart",
        "never",
        "--env",
        &env,
        "--",
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(r.code(), 4);
    // Readiness timeout: 125, the program stopped.
    let r = run(&[
        "daemon",
        "--quiet",
        "--ready-pattern",
        "^never$",
        "--ready-timeout",
        "200ms",
        "--env",
        &env,
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(r.code(), 125);
    assert!(r.message().contains("not ready within"), "{}", r.err());
    m.assert_gone();
}

#[test]
fn sigterm_stops_gracefully_and_exits_0() {
    let m = Marker::new();
    let env = m.env();
    let mut child = netrunner(&[
        "daemon",
        "--env",
        &env,
        "--ready-pattern",
        "^ready$",
        "--kill-timeout",
        "300ms",
        "--",
        "sh",
        "-c",
        "trap 'echo bye; exit 5' TERM; echo ready; while :; do sleep 0.05; done",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (mut stdout, _) = read_until(child.stdout.take().unwrap(), b"ready\n");
    signal(child.id(), libc::SIGTERM);
    let status = wait_guarded(&mut child, GUARD);
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    // The program's SIGTERM handler ran and its output came through.
    assert_eq!(rest, "bye\n");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("netrunner: sh: ready (pid"), "{err}");
    assert!(!err.contains("restart"), "{err}");
    m.assert_gone();
}
