//! `Daemon`: restart policy, backoff, intensity, readiness, stopping,
//! liveness, output channels, and owner death. Every test proves that
//! nothing of its own survived (markers). No wall-clock asserts: order and
//! history only; the GUARD only bounds hangs.
#![cfg(feature = "daemon")]

mod common;

use std::io::BufRead;
use std::time::Duration;

use common::{assert_all_gone, marker, pids_with_marker, GUARD, MARKER_VAR};
use net_runner::daemon::{
    Daemon, DaemonError, DaemonEvent, DaemonState, Framing, OutputSink, Overflow, Readiness,
    Restart, RunEnd,
};
use net_runner::{Chunk, Command, Signal};

/// A marked `sh -c script`.
fn sh(m: &str, script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]).env(MARKER_VAR, m);
    cmd
}

/// A script that fails (`exit CODE`) on its first `n` starts, then stays
/// up; counts its starts in `dir/count`.
fn fail_then_stay(dir: &std::path::Path, n: u32, code: i32) -> String {
    format!(
        "c=$(cat {d}/count 2>/dev/null || echo 0); c=$((c+1)); echo $c > {d}/count; \
         if [ $c -le {n} ]; then exit {code}; fi; echo up; exec sleep 600",
        d = dir.display()
    )
}

/// Polls `cond` without blocking the runtime; panics after the GUARD.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < GUARD, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks on a blocking thread that nothing carrying `m` is left.
async fn all_gone(m: &str) {
    let m = m.to_owned();
    tokio::task::spawn_blocking(move || assert_all_gone(&m, GUARD))
        .await
        .unwrap();
}

/// Awaits `f`, failing the test instead of hanging past the GUARD.
async fn guarded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .expect("hung past the guard")
}

/// `.guarded()` on any future: see [`guarded`].
trait Guarded: std::future::Future + Sized {
    fn guarded(self) -> impl std::future::Future<Output = Self::Output> {
        guarded(self)
    }
}

impl<F: std::future::Future> Guarded for F {}

fn fast(cmd: Command) -> net_runner::daemon::DaemonBuilder {
    Daemon::builder(cmd)
        .backoff(Duration::from_millis(10), Duration::from_millis(200))
        .output(OutputSink::discard())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_twice_then_stays_up_is_restarted_exactly_twice() {
    let m = marker();
    let dir = tempfile::tempdir().unwrap();
    let d = fast(sh(&m, &fail_then_stay(dir.path(), 2, 1)))
        .ready(Readiness::pattern("^up$").unwrap())
        .start()
        .guarded()
        .await
        .unwrap();
    // `start` returned once a start was ready: the third.
    let s = d.status();
    assert_eq!(s.state, DaemonState::Ready);
    assert_eq!(s.restarts, 2);
    assert_eq!(s.history.len(), 3, "{:?}", s.history);
    for r in &s.history[..2] {
        assert_eq!(
            r.end
                .as_ref()
                .and_then(|e| e.status())
                .and_then(|s| s.code()),
            Some(1)
        );
        assert!(!r.ready);
    }
    assert!(s.history[2].ready && s.history[2].end.is_none());
    assert_eq!(s.os_pid, s.history[2].pid);
    let s = guarded(d.stop()).await.unwrap();
    assert_eq!(s.state, DaemonState::Stopped);
    assert_eq!(s.restarts, 2);
    assert_eq!(s.history.len(), 3);
    assert!(matches!(s.history[2].end, Some(RunEnd::Stopped(_))));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("count")).unwrap(),
        "3\n"
    );
    all_gone(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_hits_the_limit_after_max_restarts_plus_one_starts() {
    let m = marker();
    let d = fast(sh(&m, "exit 7"))
        .max_restarts(3, Duration::from_secs(600))
        .start()
        .guarded()
        .await
        .unwrap();
    let err = guarded(d.wait()).await.unwrap_err();
    let DaemonError::GaveUp {
        restarts, history, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(*restarts, 3);
    assert_eq!(history.len(), 4, "{history:?}");
    for (i, r) in history.iter().enumerate() {
        assert_eq!(r.number, i as u64 + 1);
        assert_eq!(
            r.end,
            Some(RunEnd::Exited(r.end.as_ref().unwrap().status().unwrap()))
        );
        assert_eq!(r.end.as_ref().unwrap().status().unwrap().code(), Some(7));
    }
    assert!(
        err.to_string().contains("gave up after 3 restarts"),
        "{err}"
    );
    assert!(err.to_string().contains("exit status 7"), "{err}");
    all_gone(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_delays_grow_up_to_the_cap() {
    let m = marker();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let d = Daemon::builder(sh(&m, "exit 1"))
        .backoff(Duration::from_millis(5), Duration::from_millis(40))
        .max_restarts(6, Duration::from_secs(600))
        .output(OutputSink::discard())
        .on_event(move |e| seen.lock().unwrap().push(e.clone()))
        .start()
        .guarded()
        .await
        .unwrap();
    let err = guarded(d.wait()).await.unwrap_err();
    let delays: Vec<Duration> = err.history().iter().map(|r| r.delay).collect();
    assert_eq!(delays.len(), 7, "{delays:?}");
    assert_eq!(delays[0], Duration::ZERO);
    // 5, 10, 20 ms (+ jitter up to 25 %), then the 40 ms cap.
    for w in delays[..4].windows(2) {
        assert!(w[0] < w[1], "{delays:?}");
    }
    for w in delays[1..].windows(2) {
        assert!(w[0] <= w[1], "{delays:?}");
    }
    assert!(delays[1] >= Duration::from_millis(5), "{delays:?}");
    assert_eq!(&delays[4..], [Duration::from_millis(40); 3], "{delays:?}");
    // The events announce the same delays, in order.
    let announced: Vec<Duration> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            DaemonEvent::Restarting { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert_eq!(announced, delays[1..]);
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(DaemonEvent::GaveUp)
    ));
    all_gone(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_restarts_a_program_that_exits_zero() {
    let m = marker();
    let dir = tempfile::tempdir().unwrap();
    let d = fast(sh(&m, &fail_then_stay(dir.path(), 2, 0)))
        .restart(Restart::Always)
        .ready(Readiness::pattern("^up$").unwrap())
        .start()
        .guarded()
        .await
        .unwrap();
    let s = guarded(d.stop()).await.unwrap();
    assert_eq!(s.restarts, 2);
    let ends: Vec<_> = s.history.iter().map(|r| r.end.clone().unwrap()).collect();
    assert!(
        matches!(ends[0], RunEnd::Exited(st) if st.success()),
        "{ends:?}"
    );
    assert!(
        matches!(ends[1], RunEnd::Exited(st) if st.success()),
        "{ends:?}"
    );
    assert!(matches!(ends[2], RunEnd::Stopped(_)), "{ends:?}");
    // `OnFailure` (the default) does not restart it: it ends, stopped.
    std::fs::remove_file(dir.path().join("count")).unwrap();
    let s = fast(sh(&m, &fail_then_stay(dir.path(), 2, 0)))
        .start()
        .guarded()
        .await
        .unwrap()
        .wait()
        .guarded()
        .await
        .unwrap();
    assert_eq!(
        (s.state, s.restarts, s.history.len()),
        (DaemonState::Stopped, 0, 1)
    );
    all_gone(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_by_pattern() {
    let m = marker();
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    let (sink, mut rx) = OutputSink::channel(16, Overflow::Block, Framing::Lines);
    let script = format!(
        "echo booting; echo still booting >&2; sleep 0.2; touch {}; echo 'listening on 8080'; exec sleep 600",
        up.display()
    );
    let d = Daemon::builder(sh(&m, &script))
        .ready(Readiness::pattern(r"listening on \d+").unwrap())
        .output(sink)
        .start()
        .guarded()
        .await
        .unwrap();
    // The file is made before the line is printed: `start` waited for it.
    assert!(up.exists());
    assert_eq!(d.status().state, DaemonState::Ready);
    let mut lines = Vec::new();
    while lines.len() < 3 {
        lines.push(rx.recv().guarded().await.unwrap());
    }
    assert!(
        lines.contains(&Chunk::Stdout("booting".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&Chunk::Stderr("still booting".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&Chunk::Stdout("listening on 8080".into())),
        "{lines:?}"
    );
    // Dropping the daemon stops it, without blocking.
    drop(d);
    all_gone(&m).await;
    assert_eq!(rx.recv().guarded().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_by_notify_socket_only_from_the_programs_tree() {
    let m = marker();
    // A sender outside the program's tree (this test) is ignored: the
    // program itself never says READY=1, so the start times out.
    let quiet = Daemon::builder(sh(&m, "exec sleep 600"))
        .ready(Readiness::notify())
        .ready_timeout(Duration::from_secs(3))
        .output(OutputSink::discard())
        .start();
    let faker = {
        let m = m.to_string();
        tokio::task::spawn_blocking(move || {
            assert!(common::eventually(GUARD, || !pids_with_marker(&m).is_empty()));
            let pid = pids_with_marker(&m)[0];
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
            let path = env
                .split(|&b| b == 0)
                .find_map(|e| e.strip_prefix(b"NOTIFY_SOCKET="))
                .map(|p| String::from_utf8(p.to_vec()).unwrap())
                .expect("NOTIFY_SOCKET is set");
            let sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
            for _ in 0..3 {
                sock.send_to(b"READY=1", &path).unwrap();
            }
            path
        })
    };
    let err = quiet.guarded().await.unwrap_err();
    let path = faker.await.unwrap();
    assert!(matches!(err, DaemonError::ReadyTimeout { .. }), "{err}");
    // The private directory is gone with the daemon.
    assert!(!std::path::Path::new(&path).parent().unwrap().exists());
    all_gone(&m).await;

    // The program itself (no fork: the sender is the program) says it.
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    let script = format!(
        "touch {}; exec perl -MIO::Socket::UNIX -e '$s = IO::Socket::UNIX->new(Type => SOCK_DGRAM(), Peer => $ENV{{NOTIFY_SOCKET}}) or die \"$!\"; $s->send(\"STATUS=starting\\nREADY=1\") or die \"$!\"; sleep 600'",
        up.display()
    );
    let d = Daemon::builder(sh(&m, &script))
        .ready(Readiness::notify())
        .output(OutputSink::discard())
        .start()
        .guarded()
        .await
        .unwrap();
    assert!(up.exists());
    assert_eq!(d.status().state, DaemonState::Ready);
    assert!(d.status().history[0].ready);
    guarded(d.stop()).await.unwrap();
    all_gone(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_by_tcp_connect() {
    let m = marker();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    let script = format!(
        "sleep 0.2; touch {}; exec perl -MIO::Socket::INET -e '$l = IO::Socket::INET->new(LocalAddr => \"127.0.0.1:{port}\", Listen => 16, ReuseAddr => 1) or die \"$!\"; while (my $c = $l->accept) {{ close $c }}'",
        up.display()
    );
    let d = fast(sh(&m, &script))
        .ready(Readiness::tcp(format!("127.0.0.1:{port}")))
        .start()
        .guarded()
        .await
        .unwrap();
    // The file is made before the listener: `start` waited for it.
    assert!(up.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    // Readiness is checked again after a restart.
    std::fs::remove_file(&up).unwrap();
    d.signal(Signal::Kill).unwrap();
    until("the restart is ready", || {
        let s = d.status();
        s.restarts == 1 && s.state == DaemonState::Ready
    })
    .await;
    assert!(up.exists());
    let s = guarded(d.stop()).await.unwrap();
    assert_eq!(s.history.len(), 2);
    assert!(s.history.iter().all(|r| r.ready));
    all_gone(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_timeout_stops_the_program() {
    let m = marker();
    let err = fast(sh(&m, "echo not what you want; exec sleep 600"))
        .ready(Readiness::pattern("^ready$").unwrap())
        .ready_timeout(Duration::from_millis(300))
        .start()
        .guarded()
        .await
        .unwrap_err();
    let DaemonError::ReadyTimeout { history, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(history.len(), 1);
    let Some(RunEnd::ReadyTimeout(status)) = history[0].end else {
        panic!("{history:?}");
    };
    assert_eq!(status.signal_kind(), Some(Signal::Term));
    all_gone(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_escalates_to_sigkill_for_a_program_ignoring_sigterm() {
    let m = marker();
    let mut cmd = sh(&m, "trap '' TERM; echo armed; exec sleep 600");
    cmd.kill_timeout(Duration::from_millis(300));
    let d = fast(cmd)
        .ready(Readiness::pattern("^armed$").unwrap())
        .start()
        .guarded()
        .await
        .unwrap();
    let s = guarded(d.stop()).await.unwrap();
    assert_eq!(s.state, DaemonState::Stopped);
    assert_eq!(s.last_exit.unwrap().signal_kind(), Some(Signal::Kill));
    assert!(matches!(s.history[0].end, Some(RunEnd::Stopped(_))));
    assert_eq!(s.restarts, 0);
    all_gone(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_daemon_is_restarted() {
    let m = marker();
    let mut cmd = sh(&m, "echo hello; exec sleep 600");
    cmd.idle_timeout(Duration::from_millis(300));
    let d = fast(cmd).start().guarded().await.unwrap();
    until("a restart after the silence", || {
        d.status().history.len() >= 2
    })
    .await;
    let s = guarded(d.stop()).await.unwrap();
    let first = s.history[0].end.clone().unwrap();
    assert!(
        matches!(first, RunEnd::IdleTimeout(st) if st.signal_kind() == Some(Signal::Term)),
        "{first:?}"
    );
    assert!(first.is_failure());
    assert!(s.restarts >= 1);
    all_gone(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_channel_receiver_never_blocks_the_bookkeeping() {
    let m = marker();
    // Block: a receiver that never reads. The exit is recorded anyway, and
    // a stop completes (from the stop on, the channel drops the oldest).
    let (sink, rx) = OutputSink::channel(1, Overflow::Block, Framing::Lines);
    let d = Daemon::builder(sh(&m, "seq 1 1000; exit 3"))
        .output(sink)
        .start()
        .guarded()
        .await
        .unwrap();
    until("the exit is recorded", || {
        d.status().last_exit.and_then(|s| s.code()) == Some(3)
    })
    .await;
    // Its output waits for the receiver, so the next run waits too.
    assert_eq!(d.status().restarts, 0);
    let s = guarded(d.stop()).await.unwrap();
    assert_eq!(s.state, DaemonState::Stopped);
    assert!(rx.dropped() > 0);
    drop(rx);

    // Block, and the program blocked in `write` on a full pipe: a stop
    // still completes.
    let (sink, rx) = OutputSink::channel(1, Overflow::Block, Framing::Chunks);
    let d = Daemon::builder(sh(&m, "echo up; exec yes"))
        .ready(Readiness::pattern("^up$").unwrap())
        .output(sink)
        .start()
        .guarded()
        .await
        .unwrap();
    let pid = d.os_pid().unwrap();
    until("the program blocks in write", || {
        let w = common::wchar(pid);
        std::thread::sleep(Duration::from_millis(50));
        w > 0 && common::wchar(pid) == w
    })
    .await;
    let s = guarded(d.stop()).await.unwrap();
    assert!(matches!(s.history[0].end, Some(RunEnd::Stopped(_))));
    drop(rx);

    // DropOldest: restarts, and the limit, go on while nobody reads.
    let (sink, rx) = OutputSink::channel(2, Overflow::DropOldest, Framing::Lines);
    let err = fast(sh(&m, "seq 1 100; exit 1"))
        .max_restarts(2, Duration::from_secs(600))
        .output(sink)
        .start()
        .guarded()
        .await
        .unwrap()
        .wait()
        .guarded()
        .await
        .unwrap_err();
    assert_eq!(err.history().len(), 3);
    assert_eq!(rx.dropped(), 300 - 2);
    all_gone(&m).await;
}

/// The owner of `owner_sigkilled_while_backing_off_leaves_nothing`, in a
/// copy of this binary: one daemon backing off for a long time, one
/// running; prints when both are so, then waits to be killed.
#[test]
fn daemon_owner_main() {
    let Ok(m) = std::env::var("NETRUNNER_TEST_DAEMON_OWNER") else {
        return; // a normal test run: nothing to do
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut tx = Some(tx);
        let _failing = Daemon::builder(sh(&m, "exit 1"))
            .backoff(Duration::from_secs(600), Duration::from_secs(600))
            .output(OutputSink::discard())
            .on_event(move |e| {
                if matches!(e, DaemonEvent::Restarting { .. }) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
            })
            .start()
            .guarded()
            .await
            .unwrap();
        let running = Daemon::builder(sh(&m, "echo up; exec sleep 600"))
            .ready(Readiness::pattern("up").unwrap())
            .output(OutputSink::discard())
            .start()
            .guarded()
            .await
            .unwrap();
        rx.await.unwrap();
        println!("BACKING_OFF {}", running.os_pid().unwrap());
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

#[test]
fn owner_sigkilled_while_backing_off_leaves_nothing() {
    let m = marker();
    let mut owner = common::reexec(
        "daemon_owner_main",
        &[("NETRUNNER_TEST_DAEMON_OWNER", &m), (MARKER_VAR, &m)],
    );
    let mut lines = std::io::BufReader::new(owner.stdout.take().unwrap()).lines();
    let running: i32 = common::line_with(&mut lines, "BACKING_OFF ")
        .expect("the owner never got there")
        .parse()
        .unwrap();
    let alive = pids_with_marker(&m);
    assert!(alive.contains(&running), "{alive:?}");
    assert!(alive.contains(&(owner.id() as i32)), "{alive:?}");
    owner.kill().unwrap(); // SIGKILL: nothing runs in the owner
    owner.wait().unwrap();
    assert_all_gone(&m, GUARD);
}
