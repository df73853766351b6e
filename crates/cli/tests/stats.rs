//! `--stats-json`: the file's content after real runs.

mod common;

use std::path::Path;

use common::{run, run_in, run_with_stdin, temp_dir};
use serde_json::{Map, Value};

const KEYS: [&str; 19] = [
    "mode",
    "timed_out",
    "bytes_in",
    "bytes_out",
    "bytes_err",
    "read_count",
    "write_count",
    "wall_time_ms",
    "exit_code",
    "signal",
    "user_time_ms",
    "system_time_ms",
    "max_rss_bytes",
    "end",
    "memory_peak_bytes",
    "oom_kills",
    "cgroup_cpu_time_ms",
    "cpu_throttled_periods",
    "pids_peak",
];

fn read_stats(path: &Path) -> Map<String, Value> {
    let text = std::fs::read_to_string(path).expect("stats file written");
    let map = match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => map,
        other => panic!("not a JSON object: {other:?} from {text:?}"),
    };
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    let mut expected = KEYS.to_vec();
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{text}");
    map
}

fn u64_of(map: &Map<String, Value>, key: &str) -> u64 {
    map[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count: {:?}", map[key]))
}

#[test]
fn stats_of_a_normal_run() {
    let dir = temp_dir();
    let stats = dir.path().join("stats.json");
    let r = run_with_stdin(
        &[
            "run",
            "--pipe",
            "--input",
            "-",
            "--stats-json",
            stats.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "cat; printf err >&2; exit 3",
        ],
        b"hello",
    );
    assert_eq!(r.code(), 3, "{r:?}");
    assert_eq!(r.out(), "hello");
    let s = read_stats(&stats);
    assert_eq!(u64_of(&s, "bytes_in"), 5);
    assert_eq!(u64_of(&s, "bytes_out"), 5);
    assert_eq!(u64_of(&s, "bytes_err"), 3);
    assert!(u64_of(&s, "read_count") >= 2, "{s:?}");
    assert!(u64_of(&s, "write_count") >= 1, "{s:?}");
    assert_eq!(s["exit_code"], 3);
    assert!(s["signal"].is_null());
    assert_eq!(s["end"], "exited");
    assert_eq!(s["mode"], "pipe");
    assert_eq!(s["timed_out"], false);
    u64_of(&s, "wall_time_ms");
    u64_of(&s, "user_time_ms");
    u64_of(&s, "system_time_ms");
    assert!(u64_of(&s, "max_rss_bytes") > 0);
}

#[test]
fn stats_of_a_signalled_program() {
    let dir = temp_dir();
    let stats = dir.path().join("stats.json");
    let r = run(&[
        "run",
        "--stats-json",
        stats.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "kill -USR2 $$",
    ]);
    assert_eq!(r.code(), 128 + libc::SIGUSR2);
    let s = read_stats(&stats);
    assert!(s["exit_code"].is_null(), "{s:?}");
    assert_eq!(s["signal"], libc::SIGUSR2);
    assert_eq!(s["end"], "signalled");
    // Transparent: nothing passed through netrunner, nothing counted.
    assert_eq!(s["mode"], "inherit");
    assert!(
        s["bytes_in"].is_null() && s["write_count"].is_null(),
        "{s:?}"
    );
}

#[test]
fn stats_after_a_timeout() {
    let dir = temp_dir();
    let stats = dir.path().join("stats.json");
    for mode in ["--pipe", "--stderr=consume"] {
        let r = run(&[
            "run",
            mode,
            "--timeout",
            "200ms",
            "--stats-json",
            stats.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "echo hi; exec sleep 1000",
        ]);
        assert_eq!(r.code(), 124, "{r:?}");
        assert_eq!(r.out(), "hi\n");
        let s = read_stats(&stats);
        assert_eq!(s["signal"], libc::SIGTERM, "{s:?}");
        assert_eq!(s["end"], "timeout");
        assert_eq!(s["timed_out"], true);
        if mode == "--pipe" {
            assert_eq!(u64_of(&s, "bytes_out"), 3);
        } else {
            assert!(s["bytes_out"].is_null(), "{s:?}");
        }
        assert!(u64_of(&s, "wall_time_ms") >= 200, "{s:?}");
    }
}

#[test]
fn stats_to_stderr_with_a_dash() {
    let dir = temp_dir();
    let r = run_in(dir.path(), &["run", "--stats-json", "-", "--", "true"]);
    assert_eq!(r.code(), 0, "{r:?}");
    let line = r.err();
    let s: Map<String, Value> = serde_json::from_str(line.trim()).expect(&line);
    assert_eq!(s["end"], "exited");
    assert!(
        !dir.path().join("-").exists(),
        "a file named '-' was created"
    );
}

#[test]
fn stats_wall_time_of_a_timeout() {
    let dir = temp_dir();
    let stats = dir.path().join("stats.json");
    let r = run(&[
        "run",
        "--timeout",
        "200ms",
        "--stats-json",
        stats.to_str().unwrap(),
        "--",
        "sleep",
        "1000",
    ]);
    assert_eq!(r.code(), 124, "{r:?}");
    let s = read_stats(&stats);
    assert!(u64_of(&s, "wall_time_ms") >= 200, "{s:?}");
}

#[test]
fn stats_are_written_when_the_program_cannot_start() {
    let dir = temp_dir();
    let stats = dir.path().join("stats.json");
    let r = run(&[
        "run",
        "--stats-json",
        stats.to_str().unwrap(),
        "--",
        "/nonexistent/program",
    ]);
    assert_eq!(r.code(), 127);
    let s = read_stats(&stats);
    assert!(s["exit_code"].is_null() && s["signal"].is_null(), "{s:?}");
    assert!(s["max_rss_bytes"].is_null(), "{s:?}");
    assert!(s["end"].is_null(), "{s:?}");
}

#[test]
fn stats_count_large_transfers() {
    let dir = temp_dir();
    let stats = dir.path().join("stats.json");
    let input = dir.path().join("in");
    std::fs::write(&input, vec![7u8; 1_000_000]).unwrap();
    let r = run(&[
        "run",
        "--pipe",
        "--input",
        input.to_str().unwrap(),
        "--stats-json",
        stats.to_str().unwrap(),
        "--",
        "cat",
    ]);
    assert_eq!(r.code(), 0);
    assert_eq!(r.stdout.len(), 1_000_000);
    let s = read_stats(&stats);
    assert_eq!(u64_of(&s, "bytes_in"), 1_000_000);
    assert_eq!(u64_of(&s, "bytes_out"), 1_000_000);
    assert_eq!(s["exit_code"], 0);
}
