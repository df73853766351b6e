//! Bad input gets a distinct typed error, never a panic and never a fake
//! exit status.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use net_runner::{Command, Error, Signal};

#[tokio::test]
async fn empty_program() {
    assert!(matches!(
        Command::new("").run().await,
        Err(Error::EmptyProgram)
    ));
}

#[tokio::test]
async fn nul_bytes_are_rejected_before_spawning() {
    let cases = [
        (Command::new("ec\0ho"), "program"),
        (Command::new("echo").arg("a\0b").clone(), "argument"),
        (Command::new("echo").arg0("a\0").clone(), "arg0"),
        (Command::new("echo").env("K", "v\0").clone(), "environment"),
        (Command::new("echo").env("K\0", "v").clone(), "environment"),
        (Command::new("echo").current_dir("/tm\0p").clone(), "cwd"),
    ];
    for (cmd, expected) in cases {
        match cmd.run().await {
            Err(Error::NulByte { what }) => assert_eq!(what, expected),
            other => panic!("{expected}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn invalid_env_names() {
    for key in ["", "A=B"] {
        let r = Command::new("true").env(key, "x").run().await;
        assert!(matches!(r, Err(Error::InvalidEnvName(_))), "{key:?}: {r:?}");
    }
}

#[tokio::test]
async fn program_not_found_in_path_or_by_path() {
    for program in ["netrunner-no-such-program", "/nonexistent/dir/prog"] {
        match Command::new(program).run().await {
            Err(Error::NotFound { program: p }) => assert_eq!(p, program),
            other => panic!("{program}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn not_executable_is_permission_denied() {
    let dir = tempdir();
    let file = dir.join("script.sh");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = Command::new(&file).run().await;
    assert!(matches!(r, Err(Error::PermissionDenied { .. })), "{r:?}");
    // A directory is not executable either.
    let r = Command::new(&dir).run().await;
    assert!(matches!(r, Err(Error::PermissionDenied { .. })), "{r:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn missing_cwd_is_its_own_error() {
    let r = Command::new("true")
        .current_dir("/nonexistent-netrunner-dir")
        .run()
        .await;
    match r {
        Err(Error::CwdNotFound { path }) => {
            assert_eq!(path.as_os_str().as_bytes(), b"/nonexistent-netrunner-dir")
        }
        other => panic!("{other:?}"),
    }
    // A file as cwd: exists, but cannot be entered.
    let r = Command::new("true")
        .current_dir("/etc/hostname")
        .run()
        .await;
    assert!(matches!(r, Err(Error::Cwd { .. })), "{r:?}");
}

#[tokio::test]
async fn huge_argument_is_e2big_not_a_panic() {
    let big = "x".repeat(1 << 20);
    match Command::new("true").arg(big).run().await {
        Err(Error::Spawn { stage, source, .. }) => {
            assert_eq!(stage, net_runner::SpawnStage::Exec);
            assert_eq!(source.raw_os_error(), Some(libc::E2BIG));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_signals_are_errors() {
    for bad in ["0", "99", "-9", "SIGFOO"] {
        assert!(
            matches!(bad.parse::<Signal>(), Err(Error::InvalidSignal(_))),
            "{bad}"
        );
    }
}

#[test]
fn errors_do_not_panic_without_runtime() {
    let r = Command::new("").run_blocking();
    assert!(matches!(r, Err(Error::EmptyProgram)));
    let r = Command::new("netrunner-no-such-program").run_blocking();
    assert!(matches!(r, Err(Error::NotFound { .. })));
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netrunner-errors-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
