//! 256 processes alive at once, each answering; afterwards descriptors,
//! threads and children are back where they were. One test in this binary,
//! so that no other test blurs the counts.

mod common;

use futures_util::future::join_all;
use net_runner::Command;

use common::{eventually, footprint, marker, GUARD, MARKER_VAR};

const N: usize = 256;

#[test]
fn two_hundred_fifty_six_processes_alive_at_once() {
    // Each process holds four descriptors here: stdin, stdout, stderr and
    // the control socket.
    let limit = common::raise_nofile(4096);
    assert!(limit as usize > 4 * N + 64, "RLIMIT_NOFILE {limit} too low");
    let m = marker();
    let rt = common::runtime();
    rt.block_on(async {
        common::warm_up().await;
        let before = footprint();

        let spawned =
            join_all((0..N).map(|_| Command::new("cat").env(MARKER_VAR, &m).spawn())).await;
        let mut procs: Vec<_> = spawned.into_iter().map(Result::unwrap).collect();
        // All alive at the same time.
        assert_eq!(common::pids_with_marker(&m).len(), N);
        // And each one answers.
        for (i, p) in procs.iter_mut().enumerate() {
            let line = format!("process {i}\n");
            p.write(line.as_bytes()).await.unwrap();
            let mut echoed = Vec::new();
            while echoed.len() < line.len() {
                echoed.extend_from_slice(&p.read().await.unwrap().unwrap());
            }
            assert_eq!(echoed, line.as_bytes());
        }
        for p in &mut procs {
            p.close_stdin();
        }
        for status in join_all(procs.iter_mut().map(|p| p.wait())).await {
            assert!(status.unwrap().success());
        }
        drop(procs);

        assert!(
            eventually(GUARD, || net_runner::prestarted_idle() == 1
                && footprint() == before),
            "before {before:?}, after {:?}",
            footprint()
        );
    });
    common::assert_all_gone(&m, GUARD);
}
