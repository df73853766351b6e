//! `netrunner timeout` against timeout(1): the same command lines, run
//! side by side, give the same exit status (as a shell reports it). Where
//! timeout(1) is not installed, netrunner is checked against the table
//! alone.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};

use common::{netrunner, temp_dir, wait_guarded, Marker, GUARD};

/// `$?` as a shell shows it.
fn shell_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .expect("exited or signalled")
}

fn run(mut cmd: Command) -> (i32, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let status = wait_guarded(&mut child, GUARD);
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (shell_code(status), err)
}

fn have_timeout() -> bool {
    Command::new("timeout")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn executable(dir: &std::path::Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn exit_codes_match_timeout() {
    let dir = temp_dir();
    let no_shebang = executable(dir.path(), "plain", "echo plain; exit 5\n");
    let no_interp = executable(dir.path(), "py", "#!/no/such/python9\nprint(1)\n");
    let not_exec = dir.path().join("not-exec");
    std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    let not_exec = not_exec.to_str().unwrap().to_owned();
    let ignores_term = "trap '' TERM; sleep 30 & wait; wait";
    let table: Vec<(Vec<&str>, i32)> = vec![
        (vec!["5", "true"], 0),
        (vec!["5", "sh", "-c", "exit 3"], 3),
        (vec!["0.2", "sleep", "30"], 124),
        (vec!["2e-1", "sleep", "30"], 124),
        (vec!["-s", "INT", "0.2", "sleep", "30"], 124),
        (vec!["-s", "KILL", "0.2", "sleep", "30"], 137),
        (vec!["-k", "0.3", "0.2", "sh", "-c", ignores_term], 137),
        (vec!["--preserve-status", "0.2", "sleep", "30"], 143),
        (
            vec![
                "--preserve-status",
                "-k",
                "0.3",
                "0.2",
                "sh",
                "-c",
                ignores_term,
            ],
            137,
        ),
        (vec!["5", "sh", "-c", "kill -USR1 $$"], 128 + libc::SIGUSR1),
        (vec!["5", "/nonexistent/program"], 127),
        (vec!["5", "no-such-program-anywhere"], 127),
        (vec!["5", &not_exec], 126),
        (vec!["5", &no_shebang], 5),
        (vec!["5", &no_interp], 127),
    ];
    let compare = have_timeout();
    if !compare {
        println!("timeout(1) not installed: checking netrunner against the table only");
    }
    for (args, expected) in &table {
        let m = Marker::new();
        let mut nr = netrunner(&["timeout"]);
        nr.args(args).env("NETRUNNER_TEST_MARKER", &m.value);
        let (ours, err) = run(nr);
        assert_eq!(ours, *expected, "netrunner timeout {args:?}: {err}");
        if compare {
            let mut t = Command::new("timeout");
            t.args(args);
            let (theirs, terr) = run(t);
            assert_eq!(
                ours, theirs,
                "timeout {args:?} gave {theirs} ({terr}), netrunner {ours} ({err})"
            );
        }
        m.assert_gone();
    }
    // The message names the missing interpreter, not the script.
    let (_, err) = run({
        let mut c = netrunner(&["timeout", "5", &no_interp]);
        c.env_remove("NETRUNNER_TEST_MARKER");
        c
    });
    assert!(
        err.contains("interpreter not found: /no/such/python9") && err.contains(&no_interp),
        "{err}"
    );
}

#[test]
fn verbose_says_which_signals_were_sent() {
    let (code, err) = run({
        let mut c = netrunner(&["timeout", "-v", "-k", "0.3", "0.2", "sh", "-c"]);
        c.arg("trap '' TERM; sleep 30 & wait; wait");
        c
    });
    assert_eq!(code, 137);
    assert!(
        err.contains("netrunner: sending signal TERM to command 'sh'"),
        "{err}"
    );
    assert!(
        err.contains("netrunner: sending signal KILL to command 'sh'"),
        "{err}"
    );
}

/// Stdout and stderr are the program's own: their lines arrive in the
/// order it wrote them (`2>&1`), and `echo hello | netrunner run -- cat`
/// works.
#[test]
fn stdio_is_inherited_and_order_is_kept() {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} run -- sh -c 'echo 1; echo 2 >&2; echo 3' 2>&1; echo hello | {} run -- cat",
            common::bin(),
            common::bin()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n2\n3\nhello\n");
}

/// An ELF program whose loader (`PT_INTERP`) is missing: 127 as with
/// timeout(1), and the message names the loader, not the program.
#[test]
fn a_missing_elf_loader_is_named() {
    let dir = temp_dir();
    let mut elf = std::fs::read("/bin/true").unwrap();
    // The loader's path, NUL-terminated in the file: spoil one letter of
    // its name so that it names nothing.
    let Some(at) = elf.windows(3).position(|w| w == b"ld-") else {
        println!("skipped: /bin/true names no ld- loader");
        return;
    };
    let start = elf[..at].iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
    let end = at + elf[at..].iter().position(|&b| b == 0).unwrap();
    elf[at] = b'X';
    let loader = String::from_utf8(elf[start..end].to_vec()).unwrap();
    assert!(loader.starts_with('/') && !std::path::Path::new(&loader).exists());
    let program = dir.path().join("no-loader");
    std::fs::write(&program, &elf).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = program.to_str().unwrap();
    let (code, err) = run(netrunner(&["timeout", "5", program]));
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains(&format!("interpreter not found: {loader} (for {program})")),
        "{err}"
    );
    if have_timeout() {
        let mut t = Command::new("timeout");
        t.args(["5", program]);
        assert_eq!(run(t).0, 127);
    }
}
