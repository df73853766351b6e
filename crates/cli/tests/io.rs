//! Input, output, environment and working directory, with real processes.

mod common;

use std::process::Stdio;

use common::{netrunner, run, run_cmd, run_with_stdin, temp_dir, wait_guarded, GUARD};

/// Every byte value, NULs included, in a pattern that is not periodic in
/// any power of two (so misplaced chunks would show).
fn binary_data(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|i| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if i % 7 == 0 {
                0
            } else {
                (x >> 24) as u8
            }
        })
        .collect()
}

#[test]
fn backpressure_holds_the_program_while_stdout_is_not_read() {
    let dir = temp_dir();
    let done = dir.path().join("done");
    // 16 MB: far more than every pipe and buffer on the way can hold.
    let script = format!("head -c 16000000 /dev/zero; touch {}", done.display());
    let mut child = netrunner(&["run", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    // Not a speed check: with backpressure this holds however slow the
    // machine is; without it, it fails whenever the copy is quick.
    assert!(!done.exists(), "the program finished while nobody read");
    let mut stdout = child.stdout.take().unwrap();
    let mut n = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match std::io::Read::read(&mut stdout, &mut buf).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    assert_eq!(wait_guarded(&mut child, GUARD).code(), Some(0));
    assert_eq!(n, 16_000_000);
    assert!(done.exists());
}

#[test]
fn stdout_and_stderr_go_to_their_own_streams() {
    let r = run(&["run", "--", "sh", "-c", "echo out; echo err >&2; echo out2"]);
    assert_eq!(r.code(), 0);
    assert_eq!(r.out(), "out\nout2\n");
    assert_eq!(r.err(), "err\n");
}

#[test]
fn stdin_is_inherited_by_default() {
    // `echo hello | netrunner run -- cat`: the program reads our stdin.
    let r = run_with_stdin(&["run", "--", "cat"], b"hello\n");
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.out(), "hello\n");
    // So it does with --max-output (which pipes only the output).
    let r = run_with_stdin(&["run", "--max-output", "1M", "--", "cat"], b"hello\n");
    assert_eq!(r.out(), "hello\n");
}

#[test]
fn stdin_is_empty_with_pipe() {
    // netrunner's own stdin has data, but with --pipe and without --input
    // the program must see none (and not hang waiting for it).
    let r = run_with_stdin(&["run", "--pipe", "--", "cat"], b"not for the program\n");
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");

    let r = run_with_stdin(
        &[
            "run",
            "--pipe",
            "--",
            "sh",
            "-c",
            "if read -r line; then echo got; else echo eof; fi",
        ],
        b"line\n",
    );
    assert_eq!(r.out(), "eof\n");
}

#[test]
fn input_file_feeds_stdin() {
    let dir = temp_dir();
    let path = dir.path().join("input.bin");
    let data = binary_data(3 * 1024 * 1024 + 17);
    std::fs::write(&path, &data).unwrap();
    let r = run(&["run", "--input", path.to_str().unwrap(), "--", "cat"]);
    assert_eq!(r.code(), 0, "{}", r.err());
    assert_eq!(r.stdout.len(), data.len());
    assert!(r.stdout == data, "bytes differ");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let r = run(&["run", "--input", empty.to_str().unwrap(), "--", "wc", "-c"]);
    assert_eq!(r.out().trim(), "0");
}

#[test]
fn input_dash_is_netrunners_stdin() {
    let data = binary_data(2 * 1024 * 1024 + 3);
    let r = run_with_stdin(&["run", "--input", "-", "--", "cat"], &data);
    assert_eq!(r.code(), 0, "{}", r.err());
    assert!(
        r.stdout == data,
        "bytes differ ({} vs {})",
        r.stdout.len(),
        data.len()
    );
}

#[test]
fn unread_stdin_does_not_hold_netrunner() {
    // `--input -` with a stdin that never ends, and a program that never
    // reads it: netrunner exits with the program.
    let mut child = netrunner(&["run", "--input", "-", "--", "sh", "-c", "exit 4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let status = wait_guarded(&mut child, GUARD);
    drop(stdin);
    assert_eq!(status.code(), Some(4));
}

#[test]
fn nul_bytes_round_trip_on_every_stream() {
    let r = run(&[
        "run",
        "--",
        "sh",
        "-c",
        r"printf 'a\000b\000\000c'; printf '\000e\000' >&2",
    ]);
    assert_eq!(r.code(), 0);
    assert_eq!(r.stdout, b"a\0b\0\0c");
    assert_eq!(r.stderr, b"\0e\0");

    let data = b"\0\0x\0y\n\0".to_vec();
    let r = run_with_stdin(&["run", "--input", "-", "--", "cat"], &data);
    assert_eq!(r.stdout, data);
}

#[test]
fn large_output_is_complete() {
    let r = run(&["run", "--", "head", "-c", "20000000", "/dev/zero"]);
    assert_eq!(r.code(), 0);
    assert_eq!(r.stdout.len(), 20_000_000);
    assert!(r.stdout.iter().all(|&b| b == 0));
}

#[test]
fn stderr_consume_goes_to_netrunners_stderr() {
    let script = "echo 1; echo 2 >&2; echo 3";
    let r = run(&["run", "--stderr", "consume", "--", "sh", "-c", script]);
    assert_eq!((r.out().as_str(), r.err().as_str()), ("1\n3\n", "2\n"));
}

#[test]
fn stderr_redirect_merges_into_stdout_in_order() {
    let script = "echo 1; echo 2 >&2; echo 3; echo 4 >&2";
    let r = run(&["run", "--stderr", "redirect", "--", "sh", "-c", script]);
    assert_eq!(r.code(), 0);
    assert_eq!(r.out(), "1\n2\n3\n4\n");
    assert!(r.stderr.is_empty(), "{r:?}");
}

#[test]
fn stderr_discard_drops_it() {
    let script = "echo 1; echo 2 >&2; echo 3";
    let r = run(&["run", "--stderr", "discard", "--", "sh", "-c", script]);
    assert_eq!(r.code(), 0);
    assert_eq!(r.out(), "1\n3\n");
    assert!(r.stderr.is_empty(), "{r:?}");
}

#[test]
fn env_sets_and_overrides_variables() {
    let mut cmd = netrunner(&[
        "run",
        "--env",
        "NR_A=1",
        "--env",
        "NR_B=x=y",
        "--env",
        "NR_OVERRIDDEN=new",
        "--env",
        "NR_EMPTY=",
        "--",
        "sh",
        "-c",
        r#"echo "$NR_A|$NR_B|$NR_OVERRIDDEN|${NR_EMPTY-unset}|$NR_INHERITED""#,
    ]);
    cmd.env("NR_INHERITED", "inherited")
        .env("NR_OVERRIDDEN", "old");
    let r = run_cmd(cmd, None);
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.out(), "1|x=y|new||inherited\n");
}

#[test]
fn clear_env_leaves_only_the_given_variables() {
    let mut cmd = netrunner(&["run", "--clear-env", "--env", "ONLY=1", "--", "env"]);
    cmd.env("NR_INHERITED", "inherited");
    let r = run_cmd(cmd, None);
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.out(), "ONLY=1\n");

    // Order does not matter: --env before --clear-env is kept too.
    let r = run(&["run", "--env", "FIRST=1", "--clear-env", "--", "env"]);
    assert_eq!(r.out(), "FIRST=1\n");

    let r = run(&["run", "--clear-env", "--", "env"]);
    assert_eq!(r.code(), 0);
    assert!(r.stdout.is_empty(), "{r:?}");
}

#[test]
fn cwd_sets_the_working_directory() {
    let dir = temp_dir();
    let real = dir.path().canonicalize().unwrap();
    let r = run(&[
        "run",
        "--cwd",
        dir.path().to_str().unwrap(),
        "--",
        "pwd",
        "-P",
    ]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.out().trim_end(), real.to_str().unwrap());

    // A relative program path is relative to --cwd.
    std::fs::write(dir.path().join("tool"), "#!/bin/sh\necho tool ran\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("tool"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let r = run(&["run", "--cwd", dir.path().to_str().unwrap(), "--", "./tool"]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.out(), "tool ran\n");
}

#[test]
fn program_arguments_pass_through_untouched() {
    let r = run(&[
        "run",
        "--",
        "printf",
        "[%s]",
        "--timeout",
        "-x",
        "",
        "two words",
        "--",
    ]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.out(), "[--timeout][-x][][two words][--]");
}

/// `NETRUNNER_*` variables netrunner reads are checked, and the message
/// names the variable (and, for the shepherd, the path).
#[test]
fn bad_netrunner_variables_are_named() {
    for value in ["abc", "-1", "65", ""] {
        let mut cmd = common::netrunner(&["run", "--", "true"]);
        cmd.env("NETRUNNER_PRESTART", value);
        let r = common::run_cmd(cmd, None);
        assert_eq!(r.code(), 125, "{value:?}: {r:?}");
        let msg = r.message();
        assert!(
            msg.contains("NETRUNNER_PRESTART") && msg.contains(value),
            "{msg}"
        );
    }
    let mut cmd = common::netrunner(&["run", "--", "true"]);
    cmd.env("NETRUNNER_PRESTART", " 2 ");
    assert_eq!(common::run_cmd(cmd, None).code(), 0);
    for path in ["/no/such/shepherd", "/etc/passwd", ""] {
        let mut cmd = common::netrunner(&["run", "--", "true"]);
        cmd.env("NETRUNNER_SHEPHERD", path);
        let r = common::run_cmd(cmd, None);
        assert_eq!(r.code(), 125, "{path:?}: {r:?}");
        let msg = r.message();
        assert!(
            msg.contains(&format!("NETRUNNER_SHEPHERD=\"{path}\"")),
            "{msg}"
        );
    }
}

/// The CLI forks its shepherd (no second exec) and starts no thread of its
/// own for a plain run: `ps` still shows a shepherd by name, and netrunner
/// itself runs on its one thread (no reaper, no pool refill).
#[test]
fn the_shepherd_is_forked_named_and_netrunner_keeps_one_thread() {
    // $PPID is the shepherd; field 4 of its stat is netrunner.
    let script = r#"
        tr '\0' ' ' < /proc/$PPID/cmdline; echo
        cat /proc/$PPID/comm
        nr=$(cut -d' ' -f4 /proc/$PPID/stat)
        readlink /proc/$nr/exe
        readlink /proc/$PPID/exe
        ls /proc/$nr/task | wc -l
    "#;
    let r = run(&["run", "--", "sh", "-c", script]);
    assert_eq!(r.code(), 0, "{}", r.err());
    let out = r.out();
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines[0], "netrunner-shepherd sh", "{out}");
    assert_eq!(lines[1], "netrunner-sheph", "{out}");
    // A fork: the shepherd runs netrunner's own executable.
    assert_eq!(lines[2], lines[3], "{out}");
    assert_eq!(lines[4], "1", "netrunner runs threads: {out}");
}
