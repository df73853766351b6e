//! Bad input: oversized arguments, bytes that are not UTF-8, working
//! directories that cannot be entered, signal numbers that do not exist.
//! Each gets a typed error (or passes through, where the OS allows it),
//! never a panic and never a stray shepherd.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use net_runner::{Command, Error, Signal};

fn errno(e: &Error) -> Option<i32> {
    match e {
        Error::Spawn { source, .. } | Error::Cwd { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

#[tokio::test]
async fn one_mebibyte_argument_is_e2big() {
    let r = Command::new("true").arg("x".repeat(1 << 20)).run().await;
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Spawn {
                stage: net_runner::SpawnStage::Exec,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(errno(&e), Some(libc::E2BIG));
    // The same in the environment.
    let e = Command::new("true")
        .env("BIG", "y".repeat(1 << 20))
        .run()
        .await
        .unwrap_err();
    assert_eq!(errno(&e), Some(libc::E2BIG), "{e:?}");
    // Many small arguments adding up past the kernel's limit.
    let e = Command::new("true")
        .args(std::iter::repeat_n("z".repeat(1000), 10_000))
        .run()
        .await
        .unwrap_err();
    assert_eq!(errno(&e), Some(libc::E2BIG), "{e:?}");
}

/// Larger than a protocol frame may be (64 MiB): refused by the library
/// with the error exec would give, instead of being sent to the shepherd
/// as a frame it must reject as corrupt.
#[tokio::test]
async fn argument_larger_than_a_frame_is_e2big_too() {
    let e = Command::new("true")
        .arg("x".repeat(65 << 20))
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Spawn {
                stage: net_runner::SpawnStage::Exec,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(errno(&e), Some(libc::E2BIG));
}

#[tokio::test]
async fn invalid_utf8_in_arguments_and_environment_passes_through() {
    let arg = OsStr::from_bytes(b"caf\xe9 \xff\xfe");
    let out = Command::new("printf")
        .args([OsStr::new("%s"), arg])
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout, arg.as_bytes());

    let key = OsStr::from_bytes(b"NR_K\xe9Y");
    let value = OsStr::from_bytes(b"v\xff\x80al");
    let out = Command::new("/usr/bin/env")
        .env_clear()
        .env(key, value)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"NR_K\xe9Y=v\xff\x80al\n");
}

#[tokio::test]
async fn cwd_that_does_not_exist_or_is_not_a_directory() {
    let r = Command::new("true")
        .current_dir("/nonexistent/netrunner")
        .run()
        .await;
    assert!(matches!(r, Err(Error::CwdNotFound { .. })), "{r:?}");

    // A regular file: ENOTDIR.
    let file = std::env::current_exe().unwrap();
    let e = Command::new("true")
        .current_dir(&file)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Cwd { .. }), "{e:?}");
    assert_eq!(errno(&e), Some(libc::ENOTDIR));

    // Longer than PATH_MAX: ENAMETOOLONG.
    let long = format!("/{}", "d/".repeat(3000));
    let e = Command::new("true")
        .current_dir(long)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Cwd { .. }), "{e:?}");
    assert_eq!(errno(&e), Some(libc::ENAMETOOLONG));
}

#[tokio::test]
async fn cwd_without_permission() {
    if unsafe { libc::geteuid() } == 0 {
        // Root passes every permission check on directories, so a mode-000
        // directory is still entered: there is nothing to test.
        println!("skipped: running as root, which may enter any directory");
        return;
    }
    let dir = std::env::temp_dir().join(format!("netrunner-noperm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    let r = Command::new("true").current_dir(&dir).run().await;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::remove_dir(&dir).unwrap();
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Cwd { .. }), "{e:?}");
    assert_eq!(errno(&e), Some(libc::EACCES));
}

#[test]
fn signals_outside_the_known_set_are_rejected() {
    for n in [0, -1, -15, 32, 34, 64, 65, 99, i32::MIN, i32::MAX] {
        assert!(
            matches!(Signal::try_from(n), Err(Error::InvalidSignal(_))),
            "{n}"
        );
    }
    for s in ["0", "99", "-9", "+9x", "SIG", "SIGRTMIN", ""] {
        assert!(
            matches!(s.parse::<Signal>(), Err(Error::InvalidSignal(_))),
            "{s:?}"
        );
    }
    // Every known one is accepted by number.
    for n in 1..=31 {
        assert_eq!(Signal::try_from(n).unwrap().as_raw(), n);
    }
}

/// No input error leaves a process behind: the failed spawns above and
/// these are all reaped.
#[tokio::test]
async fn failed_spawns_leave_no_process() {
    let m = common::marker();
    let file = std::env::current_exe().unwrap();
    for _ in 0..20 {
        let r = Command::new("true")
            .env(common::MARKER_VAR, &m)
            .current_dir(&file)
            .run()
            .await;
        assert!(r.is_err());
        let r = Command::new("netrunner-no-such-program")
            .env(common::MARKER_VAR, &m)
            .run()
            .await;
        assert!(matches!(r, Err(Error::NotFound { .. })));
    }
    common::assert_all_gone(&m, common::GUARD);
}
