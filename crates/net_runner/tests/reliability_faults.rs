//! Fault injection: the owner or the shepherd SIGKILLed at awkward moments,
//! children that ignore signals or close their output early, a reader that
//! stops reading, a process that runs out of file descriptors.
//!
//! Tests that need a process they may SIGKILL or constrain (rlimits, memory
//! measurements) re-execute this test binary to run one `helper_*` test in
//! it (`common::reexec`); in a normal run those helpers return at once.

mod common;

use std::io::BufRead;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use futures_util::StreamExt;
use net_runner::{Command, Error, Signal};
use tokio::time::timeout;

use common::{assert_all_gone, eventually, marker, pids_with_marker, GUARD, MARKER_VAR};

/// Environment variable that carries a marker into a helper process.
const HELPER_MARKER: &str = "NETRUNNER_FAULT_MARKER";

fn helper_marker() -> Option<String> {
    std::env::var(HELPER_MARKER).ok()
}

// ---------------------------------------------------------------------------
// The owner SIGKILLed in the middle of a 1 GiB stream.

/// Helper: streams 1 GiB of zeros (with a marked background sleeper), reads
/// it at a throttled pace, announces itself after 8 MiB.
#[test]
fn helper_owner_streams_a_gigabyte() {
    let Some(m) = helper_marker() else { return };
    common::runtime().block_on(async {
        let mut s = Command::new("sh")
            .args(["-c", "sleep 1000 & head -c 1G /dev/zero"])
            .env(MARKER_VAR, &m)
            .kill_timeout(Duration::from_millis(500))
            .stream()
            .await
            .unwrap();
        let mut seen = 0u64;
        let mut announced = false;
        while let Some(chunk) = s.next().await {
            seen += chunk.unwrap().len() as u64;
            if !announced && seen >= 8 << 20 {
                println!("STREAMING {} {seen}", s.os_pid());
                announced = true;
            }
            // Throttled, so that the stream is still flowing when the test
            // kills this process.
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        println!("FINISHED {seen}");
    });
}

#[test]
fn owner_sigkilled_during_a_gigabyte_stream_leaves_nothing() {
    let m = marker();
    let mut owner = common::reexec("helper_owner_streams_a_gigabyte", &[(HELPER_MARKER, &m)]);
    let mut lines = std::io::BufReader::new(owner.stdout.take().unwrap()).lines();
    let streaming = common::line_with(&mut lines, "STREAMING ").expect("owner never streamed");
    let child: i32 = streaming.split(' ').next().unwrap().parse().unwrap();
    assert!(pids_with_marker(&m).contains(&child));
    owner.kill().unwrap(); // SIGKILL: no destructor runs in the owner
    let status = owner.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "owner was not mid-stream"
    );
    assert_all_gone(&m, GUARD);
}

// ---------------------------------------------------------------------------
// The owner SIGKILLed while it is spawning.

/// Helper: four tasks spawn marked `sleep`s as fast as they can, keeping up
/// to 16 each alive. The helper itself carries the marker (the test sets
/// it), and so do its shepherds, which inherit its environment.
#[test]
fn helper_owner_spawns_in_a_loop() {
    if helper_marker().is_none() || std::env::var_os("NETRUNNER_FAULT_SPAWN_LOOP").is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // One spawn done before the test starts its clock, so that every
        // round kills an owner that has spawned.
        let _first = Command::new("sleep")
            .arg("1000")
            .kill_timeout(Duration::from_millis(200))
            .spawn()
            .await
            .unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(async {
                    let mut alive = Vec::new();
                    loop {
                        let p = Command::new("sleep")
                            .arg("1000")
                            .kill_timeout(Duration::from_millis(200))
                            .spawn()
                            .await
                            .unwrap();
                        alive.push(p);
                        if alive.len() >= 16 {
                            alive.clear();
                        }
                    }
                })
            })
            .collect();
        println!("LOOPING");
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn owner_sigkilled_while_spawning_leaves_nothing() {
    let m = marker();
    let mut most_alive = 0;
    for round in 0..12u64 {
        let mut owner = common::reexec(
            "helper_owner_spawns_in_a_loop",
            &[
                (HELPER_MARKER, &m),
                (MARKER_VAR, &m),
                ("NETRUNNER_FAULT_SPAWN_LOOP", "1"),
            ],
        );
        let mut lines = std::io::BufReader::new(owner.stdout.take().unwrap()).lines();
        common::line_with(&mut lines, "LOOPING").expect("owner never started its loop");
        // A different moment in the spawn cycle each round.
        std::thread::sleep(Duration::from_millis(round * 17 % 120));
        most_alive = most_alive.max(pids_with_marker(&m).len());
        owner.kill().unwrap();
        owner.wait().unwrap();
        assert_all_gone(&m, GUARD);
    }
    // The owner, its first child and that child's shepherd at least.
    assert!(most_alive >= 3, "the owner never got to spawn anything");
}

// ---------------------------------------------------------------------------
// The shepherd itself SIGKILLed.
//
// The child dies by its PR_SET_PDEATHSIG; its own children do not. The
// library notices the control channel closing without an exit report and
// SIGKILLs the child's process group.

/// `sh` with two background sleepers, all marked; prints `ready`, waits.
fn family(m: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "sleep 1000 & sleep 1000 & echo ready; wait"])
        .env(MARKER_VAR, m);
    cmd
}

fn sigkill(pid: i32) {
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

#[tokio::test]
async fn shepherd_sigkilled_wait_reports_an_error_and_the_group_dies() {
    let m = marker();
    let mut p = family(&m).spawn().await.unwrap();
    assert_eq!(p.read().await.unwrap().as_deref(), Some(&b"ready\n"[..]));
    assert!(eventually(GUARD, || pids_with_marker(&m).len() == 3));
    let shepherd = p.shepherd_pid() as i32;
    sigkill(shepherd);
    let r = timeout(GUARD, p.wait())
        .await
        .expect("wait hung after the shepherd died");
    assert!(matches!(r, Err(Error::Shepherd(_))), "{r:?}");
    assert_all_gone(&m, GUARD);
    assert!(
        eventually(GUARD, || !common::exists(shepherd)),
        "dead shepherd {shepherd} was not reaped"
    );
}

#[tokio::test]
async fn shepherd_sigkilled_then_process_dropped_unpolled_kills_the_group() {
    let m = marker();
    let mut p = family(&m).spawn().await.unwrap();
    assert_eq!(p.read().await.unwrap().as_deref(), Some(&b"ready\n"[..]));
    assert!(eventually(GUARD, || pids_with_marker(&m).len() == 3));
    let shepherd = p.shepherd_pid() as i32;
    sigkill(shepherd);
    // Dead (a zombie: nobody has waited for it yet), and the Process has
    // not looked at its channel since.
    assert!(eventually(GUARD, || common::is_zombie(shepherd)));
    drop(p);
    assert_all_gone(&m, GUARD);
}

#[tokio::test]
async fn shepherd_sigkilled_read_reaches_end_of_file() {
    let m = marker();
    let mut p = family(&m).spawn().await.unwrap();
    assert_eq!(p.read().await.unwrap().as_deref(), Some(&b"ready\n"[..]));
    assert!(eventually(GUARD, || pids_with_marker(&m).len() == 3));
    sigkill(p.shepherd_pid() as i32);
    // The sleepers hold stdout open: only killing them ends the read.
    let r = timeout(GUARD, p.read())
        .await
        .expect("read hung after the shepherd died");
    assert_eq!(r.unwrap(), None);
    assert!(matches!(p.wait().await, Err(Error::Shepherd(_))));
    assert_all_gone(&m, GUARD);
}

#[tokio::test]
async fn shepherd_sigkilled_mid_stream_ends_the_stream_with_an_error() {
    let m = marker();
    let mut s = family(&m).stream().await.unwrap();
    assert_eq!(s.next().await.unwrap().unwrap(), &b"ready\n"[..]);
    assert!(eventually(GUARD, || pids_with_marker(&m).len() == 3));
    sigkill(common::parent_of(s.os_pid() as i32).unwrap());
    let errors = timeout(GUARD, async {
        let mut errors = Vec::new();
        while let Some(item) = s.next().await {
            if let Err(e) = item {
                errors.push(e);
            }
        }
        errors
    })
    .await
    .expect("stream hung after the shepherd died");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        matches!(Error::from_io(&errors[0]), Some(Error::Shepherd(_))),
        "{errors:?}"
    );
    assert_all_gone(&m, GUARD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shepherd_sigkilled_during_run_fails_the_run() {
    let m = marker();
    let killer = {
        let m = m.to_string();
        std::thread::spawn(move || {
            // The shepherd is the unmarked parent of the marked `sh`.
            let mut shepherd = None;
            let found = eventually(GUARD, || {
                let marked = pids_with_marker(&m);
                shepherd = marked
                    .iter()
                    .filter_map(|&p| common::parent_of(p))
                    .find(|parent| !marked.contains(parent));
                marked.len() == 3 && shepherd.is_some()
            });
            assert!(found, "family never started");
            sigkill(shepherd.unwrap());
        })
    };
    let r = timeout(GUARD, family(&m).run())
        .await
        .expect("run hung after the shepherd died");
    killer.join().unwrap();
    assert!(matches!(r, Err(Error::Shepherd(_))), "{r:?}");
    assert_all_gone(&m, GUARD);
}

/// Helper: SIGKILLs its idle pre-started shepherd (its only child), then
/// spawns; the spawn must not notice, and the dead one must be reaped.
#[test]
fn helper_idle_shepherd_killed() {
    let Some(m) = helper_marker() else { return };
    common::runtime().block_on(async {
        common::warm_up().await;
        let idle = common::children();
        assert_eq!(idle.len(), 1, "{idle:?}");
        sigkill(idle[0].0);
        assert!(eventually(GUARD, || common::is_zombie(idle[0].0)));
        let out = Command::new("echo")
            .arg("hi")
            .env(MARKER_VAR, &m)
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"hi\n");
        assert!(eventually(GUARD, || !common::exists(idle[0].0)));
        assert!(eventually(GUARD, || net_runner::prestarted_idle() == 1
            && common::children().len() == 1));
    });
    println!("IDLE-OK");
}

#[test]
fn idle_prestarted_shepherd_killed_is_replaced_and_reaped() {
    let m = marker();
    expect_helper(
        "helper_idle_shepherd_killed",
        &[(HELPER_MARKER, &m)],
        "IDLE-OK",
    );
    assert_all_gone(&m, GUARD);
}

// ---------------------------------------------------------------------------
// A child that ignores every signal it can.

/// Ignores every catchable signal (1–31 but KILL and STOP, which cannot be,
/// and CHLD, which is ignored by default anyway) and execs `sleep`, which
/// keeps those dispositions.
const IGNORE_ALL: &str =
    "trap '' 1 2 3 4 5 6 7 8 10 11 12 13 14 15 16 18 20 21 22 23 24 25 26 27 28 29 30 31; \
                          echo ready; exec sleep 1000";

#[tokio::test]
async fn child_ignoring_every_catchable_signal_is_still_killed() {
    let m = marker();
    let spawn = || {
        Command::new("sh")
            .args(["-c", IGNORE_ALL])
            .env(MARKER_VAR, &*m)
            .kill_timeout(Duration::from_millis(300))
            .spawn()
    };
    let mut p = spawn().await.unwrap();
    assert_eq!(p.read().await.unwrap().as_deref(), Some(&b"ready\n"[..]));
    for &sig in Signal::ALL {
        if sig != Signal::Kill && sig != Signal::Stop {
            p.kill(sig).unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(p.is_alive(), "a signal it ignores ended it");
    // Graceful shutdown escalates to SIGKILL after the kill timeout.
    let status = timeout(GUARD, p.shutdown()).await.unwrap().unwrap();
    assert_eq!(status.signal_kind(), Some(Signal::Kill));

    // Dropped while alive: the shepherd escalates the same way.
    let mut p = spawn().await.unwrap();
    assert_eq!(p.read().await.unwrap().as_deref(), Some(&b"ready\n"[..]));
    drop(p);
    assert_all_gone(&m, GUARD);

    // A timeout on run escalates too, and still returns the output.
    let r = Command::new("sh")
        .args(["-c", IGNORE_ALL])
        .env(MARKER_VAR, &*m)
        .kill_timeout(Duration::from_millis(300))
        .timeout(Duration::from_millis(500))
        .run()
        .await;
    match r {
        Err(Error::Timeout { output, .. }) => {
            assert!(b"ready\n".starts_with(&output.stdout), "{output:?}");
            assert_eq!(output.status.signal_kind(), Some(Signal::Kill));
        }
        other => panic!("{other:?}"),
    }
    assert_all_gone(&m, GUARD);
}

// ---------------------------------------------------------------------------
// A child that closes its output early and keeps running.

#[tokio::test]
async fn child_closing_its_output_early_can_still_be_waited_for() {
    let m = marker();
    let mut p = Command::new("sh")
        .args(["-c", "exec >&- 2>&-; read line; exit 3"])
        .env(MARKER_VAR, &m)
        .spawn()
        .await
        .unwrap();
    assert_eq!(p.read().await.unwrap(), None);
    assert_eq!(p.read_stderr().await.unwrap(), None);
    // End of output is not the end of the process.
    assert!(p.is_alive());
    p.write(b"go\n").await.unwrap();
    let status = timeout(GUARD, p.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(3));
    assert_all_gone(&m, GUARD);
}

#[tokio::test]
async fn run_finishes_when_a_child_without_output_exits() {
    let m = marker();
    // Closes its output, then lives on consuming 4 MiB of input.
    let out = timeout(
        GUARD,
        Command::new("sh")
            .args(["-c", "exec >&- 2>&-; cat >/dev/null; exit 4"])
            .env(MARKER_VAR, &m)
            .input(vec![7u8; 4 << 20])
            .run(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    assert_eq!(out.stats.bytes_in, 4 << 20);
    // Closes its output, then lives on without input.
    let out = timeout(
        GUARD,
        Command::new("sh")
            .args(["-c", "exec >&- 2>&-; sleep 0.2; exit 5"])
            .env(MARKER_VAR, &m)
            .run(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_all_gone(&m, GUARD);
}

// ---------------------------------------------------------------------------
// A reader that stops reading forever.

/// Helper: reads one chunk of a 1 GiB stream and then nothing; the child
/// must block on its full pipe and this process's memory must stay flat.
#[test]
fn helper_stops_reading() {
    let Some(m) = helper_marker() else { return };
    common::runtime().block_on(async {
        let mut s = Command::new("head")
            .args(["-c", "1G", "/dev/zero"])
            .env(MARKER_VAR, &m)
            .stream()
            .await
            .unwrap();
        s.next().await.unwrap().unwrap();
        let pid = s.os_pid();
        // Wait until the child has filled the pipe and sleeps in write.
        let mut last = u64::MAX;
        assert!(eventually(GUARD, || {
            std::thread::sleep(Duration::from_millis(100));
            let now = common::wchar(pid);
            std::mem::replace(&mut last, now) == now && common::state(pid as i32) == Some('S')
        }));
        let (rss0, w0) = (common::vm_rss_kib(), common::wchar(pid));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss1, w1) = (common::vm_rss_kib(), common::wchar(pid));
        println!("RSS_KIB {rss0} -> {rss1}; CHILD_WCHAR {w0} -> {w1}");
        assert_eq!(w0, w1, "the child kept writing with nobody reading");
        // What was read, plus the pipe buffer (1 MiB), with slack.
        assert!(w1 < 8 << 20, "child wrote {w1} bytes");
        assert_eq!(common::state(pid as i32), Some('S'), "child not blocked");
        assert!(rss1 <= rss0 + 4096, "RSS grew from {rss0} to {rss1} KiB");
        drop(s);
    });
    assert_all_gone(&m, GUARD);
    println!("STALL-OK");
}

#[test]
fn reader_that_stops_reading_blocks_the_child_and_holds_no_memory() {
    let m = marker();
    expect_helper("helper_stops_reading", &[(HELPER_MARKER, &m)], "STALL-OK");
    assert_all_gone(&m, GUARD);
}

// ---------------------------------------------------------------------------
// Out of file descriptors (EMFILE).

/// Soft `RLIMIT_NOFILE` of the helper process.
const FD_LIMIT: u64 = 128;

/// Opens `/dev/null` until `EMFILE`.
fn fill_fd_table() -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    loop {
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EMFILE)
            );
            return fds;
        }
        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// Open descriptors, counted without opening one (`/proc/self/fd` would
/// need a descriptor of its own).
fn open_fds() -> usize {
    (0..1024)
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .count()
}

fn is_emfile(e: &Error) -> bool {
    matches!(e, Error::Spawn { source, .. } if source.raw_os_error() == Some(libc::EMFILE))
}

/// Helper: lowers its own `RLIMIT_NOFILE`, fills its descriptor table and
/// spawns with 0, 1, 2, ... descriptors free.
#[test]
fn helper_out_of_fds() {
    let Some(m) = helper_marker() else { return };
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = FD_LIMIT.min(lim.rlim_max);
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let echo = || Command::new("echo").arg("hi").env(MARKER_VAR, &m).clone();
    common::runtime().block_on(async {
        // Cold: the first spawn of this process (which installs the
        // embedded shepherd and starts the pre-start pool) meets a full
        // table.
        let filler = fill_fd_table();
        let err = echo().run().await.unwrap_err();
        assert!(is_emfile(&err), "cold, no fd free: {err:?}");
        println!("COLD {err}");
        // Once descriptors are free again, spawning works: the failure is
        // not remembered.
        drop(filler);
        let out = echo().run().await.expect("no recovery after freeing fds");
        assert_eq!(out.stdout, b"hi\n");
        // The reaper thread and its eventfd, created once, on the first
        // reap that must wait: not during the counts below.
        common::warm_up().await;

        // Warm, without pre-started shepherds (whose background refills
        // would blur the count): 0, 1, 2, ... descriptors free. Each attempt
        // works or fails with EMFILE, and leaves the table as it found it.
        // Let the pool refill, then turn it off and let its shepherd go.
        assert!(eventually(GUARD, || net_runner::prestarted_idle() == 1));
        net_runner::set_prestarted_shepherds(0);
        assert!(eventually(GUARD, || common::children().is_empty()));
        let mut filler = fill_fd_table();
        for free in 0..=8 {
            filler.truncate(filler.len() - free);
            let before = open_fds();
            let r = echo().run().await;
            match &r {
                Ok(out) => assert_eq!(out.stdout, b"hi\n"),
                Err(e) => assert!(is_emfile(e), "{free} fds free: {e:?}"),
            }
            // Once the attempt's shepherd is reaped (the reaper holds a
            // pidfd for it until then), the table is as it was.
            assert!(
                eventually(GUARD, || net_runner::pending_reaps() == 0
                    && open_fds() == before),
                "{free} fds free: {r:?}: fds leaked: {} before, {} after",
                before,
                open_fds()
            );
            println!("FREE {free}: {}", if r.is_ok() { "ran" } else { "EMFILE" });
            filler.extend(fill_fd_table());
        }
        drop(filler);
        // And with the pool back on, a full table again, then recovery.
        net_runner::set_prestarted_shepherds(1);
        echo().run().await.unwrap();
        assert!(eventually(GUARD, || net_runner::prestarted_idle() == 1));
        let filler = fill_fd_table();
        let err = echo().run().await.unwrap_err();
        assert!(is_emfile(&err), "pool on, no fd free: {err:?}");
        drop(filler);
        echo().run().await.expect("no recovery with the pool on");
        net_runner::set_prestarted_shepherds(0);
    });
    // Every shepherd of a failed attempt was reaped.
    assert!(
        eventually(GUARD, || common::children().is_empty()),
        "children left: {:?}",
        common::children()
    );
    assert_all_gone(&m, GUARD);
    println!("EMFILE-OK");
}

#[test]
fn running_out_of_fds_is_a_clean_error_and_recovers() {
    let m = marker();
    // A fresh runtime dir: where memfds cannot be had, the embedded
    // shepherd is written there, and a copy left by an earlier run would
    // let the cold attempt skip installing it.
    struct RemovedOnDrop(std::path::PathBuf);
    impl Drop for RemovedOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let runtime_dir = RemovedOnDrop(std::env::temp_dir().join(format!("netrunner-emfile-{m}")));
    std::fs::create_dir_all(&runtime_dir.0).unwrap();
    expect_helper(
        "helper_out_of_fds",
        &[
            (HELPER_MARKER, &m),
            ("XDG_RUNTIME_DIR", runtime_dir.0.to_str().unwrap()),
        ],
        "EMFILE-OK",
    );
    assert_all_gone(&m, GUARD);
}

/// Runs the re-executed helper test `name` with `envs` and checks that it
/// passed and printed `token` (its last line when all its checks held).
fn expect_helper(name: &str, envs: &[(&str, &str)], token: &str) {
    let (status, out) = common::run_helper(name, envs, Duration::from_secs(120));
    println!("{out}");
    assert!(
        status.success() && out.contains(token),
        "{name}: {status:?}"
    );
}
