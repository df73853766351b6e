//! Nothing outlives its owner: kill, drop, shutdown escalation, owner
//! SIGKILLed, escaped descendants.

mod common;

use std::io::BufRead;
use std::time::Duration;

use futures_util::StreamExt;
use net_runner::{Command, Signal};

use common::{assert_all_gone, eventually, marker, pids_with_marker, GUARD, MARKER_VAR};

/// `sh` with a background grandchild, both marked, then waits.
fn family(marker: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "sleep 1000 & sleep 1000 & echo ready; wait"])
        .env(MARKER_VAR, marker);
    cmd
}

async fn wait_ready(p: &mut net_runner::Process) {
    assert_eq!(p.read().await.unwrap().as_deref(), Some(&b"ready\n"[..]));
}

#[tokio::test]
async fn kill_reaches_the_whole_group() {
    let m = marker();
    let mut p = family(&m).spawn().await.unwrap();
    wait_ready(&mut p).await;
    // The second sleep may still be between fork and exec, its environ
    // unreadable for a moment.
    assert!(eventually(GUARD, || pids_with_marker(&m).len() == 3));
    p.kill(Signal::Kill).unwrap();
    assert_eq!(p.wait().await.unwrap().signal(), Some(9));
    assert_all_gone(&m, GUARD);
    // Killing an exited process is a no-op.
    p.kill(Signal::Term).unwrap();
}

#[tokio::test]
async fn drop_of_a_live_process_leaves_nothing() {
    let m = marker();
    let mut p = family(&m).spawn().await.unwrap();
    wait_ready(&mut p).await;
    let shepherd = p.shepherd_pid() as i32;
    let started = std::time::Instant::now();
    drop(p);
    // Drop does not wait for the tree to die.
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_all_gone(&m, GUARD);
    // And the shepherd is reaped, not a zombie.
    assert!(
        common::eventually(GUARD, || !common::exists(shepherd)),
        "shepherd {shepherd} not reaped"
    );
}

#[tokio::test]
async fn dropping_a_stream_kills_the_tree() {
    let m = marker();
    let mut s = Command::new("sh")
        .args(["-c", "sleep 1000 & yes"])
        .env(MARKER_VAR, &m)
        .stream()
        .await
        .unwrap();
    s.next().await.unwrap().unwrap();
    drop(s);
    assert_all_gone(&m, GUARD);
}

#[tokio::test]
async fn child_ignoring_sigterm_is_sigkilled_after_kill_timeout() {
    let m = marker();
    let mut p = Command::new("sh")
        .args([
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .env(MARKER_VAR, &m)
        .kill_timeout(Duration::from_millis(300))
        .spawn()
        .await
        .unwrap();
    wait_ready(&mut p).await;
    let status = p.shutdown().await.unwrap();
    assert_eq!(status.signal_kind(), Some(Signal::Kill));
    assert_all_gone(&m, GUARD);
}

#[tokio::test]
async fn graceful_shutdown_lets_a_term_handler_run() {
    let mut p = Command::new("sh")
        .args([
            "-c",
            "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .spawn()
        .await
        .unwrap();
    wait_ready(&mut p).await;
    assert_eq!(p.shutdown().await.unwrap().code(), Some(7));
}

/// Descendants that escape the group (`setsid`) are killed too. Such a
/// descendant is adopted by the shepherd only when its parent dies, after
/// the first SIGTERM round; it must get its own SIGTERM then, not wait for
/// the SIGKILL at the (here very long) deadline.
#[tokio::test]
async fn escaped_descendants_adopted_while_terminating_get_sigterm() {
    let m = marker();
    let mut p = Command::new("sh")
        .args(["-c", "setsid sleep 1000 & echo ready; wait"])
        .env(MARKER_VAR, &m)
        .kill_timeout(Duration::from_secs(120))
        .spawn()
        .await
        .unwrap();
    wait_ready(&mut p).await;
    assert!(common::eventually(GUARD, || pids_with_marker(&m).len() == 2));
    drop(p);
    // GUARD (30 s) is far below the 120 s kill timeout: only SIGTERM can
    // have ended the escaped sleep in time.
    assert_all_gone(&m, GUARD);
}

#[tokio::test]
async fn leftovers_are_killed_after_the_child_exits() {
    let m = marker();
    let out = Command::new("sh")
        .args(["-c", "sleep 1000 & echo bye"])
        .env(MARKER_VAR, &m)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"bye\n");
    assert_all_gone(&m, GUARD);
}

#[tokio::test]
async fn leftovers_may_be_kept_on_request() {
    let m = marker();
    let out = Command::new("sh")
        .args(["-c", "sleep 1000 >/dev/null 2>&1 & echo $!"])
        .env(MARKER_VAR, &m)
        .kill_leftovers(false)
        .run()
        .await
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(pids_with_marker(&m), vec![pid]);
    common::kill_pids(&[pid]);
    assert_all_gone(&m, GUARD);
}

#[tokio::test]
async fn stopped_child_still_gets_terminated() {
    let m = marker();
    let mut p = family(&m)
        .kill_timeout(Duration::from_secs(20))
        .spawn()
        .await
        .unwrap();
    wait_ready(&mut p).await;
    p.kill(Signal::Stop).unwrap();
    assert!(common::eventually(GUARD, || common::state(
        p.os_pid() as i32
    ) == Some('T')));
    // SIGTERM alone would wait for SIGCONT; the shepherd sends both.
    assert_eq!(
        p.shutdown().await.unwrap().signal_kind(),
        Some(Signal::Term)
    );
    assert_all_gone(&m, GUARD);
}

/// Runs as the owner in a child copy of this test binary (see
/// `owner_sigkilled_mid_stream_leaves_nothing`): streams a marked family of
/// processes, prints its pids, then sleeps until killed.
#[test]
fn owner_process_main() {
    let Ok(m) = std::env::var("NETRUNNER_TEST_OWNER_MARKER") else {
        return; // a normal test run: nothing to do
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut s = Command::new("sh")
            .args(["-c", "sleep 1000 & sleep 1000 & yes"])
            .env(MARKER_VAR, &m)
            .kill_timeout(Duration::from_millis(500))
            .stream()
            .await
            .unwrap();
        s.next().await.unwrap().unwrap();
        println!("READY {}", s.os_pid());
        tokio::time::sleep(Duration::from_secs(1000)).await;
    });
}

#[test]
fn owner_sigkilled_mid_stream_leaves_nothing() {
    let m = marker();
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "owner_process_main",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("NETRUNNER_TEST_OWNER_MARKER", &m)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(owner.stdout.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| Some(l.split_once("READY ")?.1.trim().to_owned()))
        .expect("owner never got ready");
    let child: i32 = ready.parse().unwrap();
    assert!(
        common::eventually(GUARD, || pids_with_marker(&m).len() == 4),
        "{:?}",
        pids_with_marker(&m)
    );
    assert!(pids_with_marker(&m).contains(&child));
    owner.kill().unwrap(); // SIGKILL: no destructor runs in the owner
    owner.wait().unwrap();
    assert_all_gone(&m, GUARD);
}

/// `kill_leftovers(false)` only spares leftovers after a normal exit: when
/// the owner lets go, the termination still ends in SIGKILL for a group
/// member that ignores SIGTERM, even though the main child died at once.
#[tokio::test]
async fn dropping_with_leftovers_kept_still_kills_the_whole_tree() {
    let m = marker();
    let mut p = Command::new("sh")
        .args([
            "-c",
            "(trap '' TERM; exec sleep 1000) & echo ready; exec sleep 1000",
        ])
        .env(MARKER_VAR, &m)
        .kill_leftovers(false)
        .kill_timeout(Duration::from_millis(300))
        .spawn()
        .await
        .unwrap();
    wait_ready(&mut p).await;
    assert!(common::eventually(GUARD, || pids_with_marker(&m).len() == 2));
    drop(p);
    assert_all_gone(&m, GUARD);
}

/// A tagged stream of `sh` printing `one`, then waiting for a line of
/// ours (written to the returned end) before printing `two`: nothing
/// races a stop sent meanwhile.
async fn one_then_a_line(m: &str) -> (tokio::io::DuplexStream, net_runner::TaggedStream) {
    let (go, input) = tokio::io::duplex(64);
    let s = Command::new("sh")
        .args(["-c", "echo one; read x; echo two"])
        .env(MARKER_VAR, m)
        .input_reader(input)
        .stream_tagged()
        .await
        .unwrap();
    (go, s)
}

/// The next event of `s`, within the guard.
async fn next(
    s: &mut net_runner::TaggedStream,
) -> std::io::Result<Option<net_runner::StreamEvent>> {
    tokio::time::timeout(GUARD, s.next_event())
        .await
        .expect("an event in time")
}

/// `TaggedStream::next_event` reports the child's stop and continue
/// between its chunks, and `resume` continues it.
#[tokio::test]
async fn tagged_stream_reports_stop_and_continue() {
    use net_runner::{Chunk, StreamEvent};
    let m = marker();
    let (mut go, mut s) = one_then_a_line(&m).await;
    let pid = s.os_pid() as i32;
    assert_eq!(
        next(&mut s).await.unwrap(),
        Some(StreamEvent::Chunk(Chunk::Stdout("one\n".into())))
    );
    s.handle().kill(Signal::Stop).unwrap();
    assert_eq!(
        next(&mut s).await.unwrap(),
        Some(StreamEvent::Stopped(Signal::Stop.as_raw()))
    );
    assert_eq!(common::state(pid), Some('T'));
    s.resume().unwrap();
    assert_eq!(next(&mut s).await.unwrap(), Some(StreamEvent::Continued));
    // Output flows again, and the end is the child's own.
    tokio::io::AsyncWriteExt::write_all(&mut go, b"go\n")
        .await
        .unwrap();
    drop(go);
    assert_eq!(
        next(&mut s).await.unwrap(),
        Some(StreamEvent::Chunk(Chunk::Stdout("two\n".into())))
    );
    assert_eq!(next(&mut s).await.unwrap(), None);
    assert!(s.status().unwrap().success());
    assert_all_gone(&m, GUARD);
}

/// Also once the child closed its output (the pump only waits for the
/// exit then); `next_chunk` skips the events and loses no chunk.
#[tokio::test]
async fn tagged_stream_reports_a_stop_after_the_output_closed() {
    use net_runner::StreamEvent;
    let m = marker();
    let mut s = Command::new("sh")
        .args(["-c", "exec >&- 2>&-; exec sleep 1000"])
        .env(MARKER_VAR, &m)
        .stream_tagged()
        .await
        .unwrap();
    let pid = s.os_pid() as i32;
    // Let the pump read both ends of file and wait for the exit.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), s.next_event())
            .await
            .is_err(),
        "no event before the stop"
    );
    s.handle().kill(Signal::Stop).unwrap();
    assert_eq!(
        next(&mut s).await.unwrap(),
        Some(StreamEvent::Stopped(Signal::Stop.as_raw()))
    );
    assert_eq!(common::state(pid), Some('T'));
    s.resume().unwrap();
    assert_eq!(next(&mut s).await.unwrap(), Some(StreamEvent::Continued));
    s.handle().kill(Signal::Term).unwrap();
    assert_eq!(next(&mut s).await.unwrap(), None);
    assert_eq!(s.status().unwrap().signal_kind(), Some(Signal::Term));
    assert_all_gone(&m, GUARD);
}

#[tokio::test]
async fn next_chunk_skips_stops_and_continues() {
    use net_runner::Chunk;
    let m = marker();
    let (mut go, mut s) = one_then_a_line(&m).await;
    assert_eq!(
        s.next_chunk().await.unwrap(),
        Some(Chunk::Stdout("one\n".into()))
    );
    s.handle().kill(Signal::Stop).unwrap();
    assert!(eventually(GUARD, || common::state(s.os_pid() as i32) == Some('T')));
    // The stop and the continue reach the pump while `next_chunk` waits.
    let pending = tokio::time::timeout(Duration::from_millis(300), s.next_chunk()).await;
    assert!(pending.is_err(), "{pending:?}");
    s.resume().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut go, b"go\n")
        .await
        .unwrap();
    drop(go);
    assert_eq!(
        s.next_chunk().await.unwrap(),
        Some(Chunk::Stdout("two\n".into()))
    );
    assert_eq!(s.next_chunk().await.unwrap(), None);
    assert!(s.status().unwrap().success());
    assert_all_gone(&m, GUARD);
}
