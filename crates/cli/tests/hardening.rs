//! `netrunner run` identity and hardening flags (issue 9), observed from
//! inside the program; privilege errors as `nobody` through `setpriv`.

mod common;

use std::process::Command;

use common::{bin, run, run_cmd};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn every_flag_is_seen_by_the_program() {
    let script = "echo $0; umask; ulimit -n; ulimit -Hn; ulimit -c; \
                  ps -o ni= -p $$; grep NoNewPrivs /proc/self/status";
    let r = run(&[
        "run",
        "--arg0",
        "renamed",
        "--umask",
        "077",
        "--rlimit",
        "NOFILE=64:128",
        "--rlimit",
        "core=0",
        "--nice",
        "9",
        "--no-new-privs",
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(r.code(), 0, "{}", r.err());
    let out = r.out();
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines[..6], ["renamed", "0077", "64", "128", "0", "9"]);
    assert_eq!(
        lines[6].split_whitespace().collect::<Vec<_>>(),
        ["NoNewPrivs:", "1"]
    );
}

#[test]
fn uid_gid_and_groups_as_root() {
    if !is_root() {
        println!("skipped: changing to another user needs root");
        return;
    }
    let r = run(&[
        "run",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--groups",
        "65534",
        "--",
        "sh",
        "-c",
        "id -u; id -g; id -G",
    ]);
    assert_eq!(r.code(), 0, "{}", r.err());
    assert_eq!(r.out(), "65534\n65534\n65534\n");
}

#[test]
fn privilege_errors_exit_125_naming_the_option() {
    let cases = [
        (
            vec!["--uid", "0"],
            "setuid(0) failed: Operation not permitted",
        ),
        (vec!["--gid", "0"], "setgid(0) failed"),
        (vec!["--groups", "0"], "setgroups failed"),
        (vec!["--nice=-10"], "setpriority(nice -10) failed"),
    ];
    let dir = common::temp_dir();
    let witness = dir.path().join("ran");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    for (flags, message) in cases {
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()]);
            c
        } else {
            Command::new(bin())
        };
        cmd.arg("run")
            .args(&flags)
            .args(["--", "sh", "-c", "touch \"$0\""])
            .arg(&witness)
            .stdin(std::process::Stdio::null());
        let r = run_cmd(cmd, None);
        if is_root() && r.err().contains("setpriv") && r.code() != 125 {
            println!("skipped: setpriv cannot drop privileges here: {}", r.err());
            return;
        }
        assert_eq!(r.code(), 125, "{flags:?}: {}", r.err());
        let line = r.message();
        assert!(line.contains(message), "{flags:?}: {line}");
        assert!(!witness.exists(), "{flags:?}: the program ran");
    }
}
