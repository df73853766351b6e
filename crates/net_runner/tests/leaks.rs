//! Many sequential spawns leak no fd and no process. One test per binary so
//! no other test's processes blur the counts.

mod common;

use std::time::Duration;

use net_runner::Command;

#[test]
fn a_thousand_sequential_spawns_leak_nothing() {
    let rt = common::runtime();
    let m = common::marker();
    rt.block_on(async {
        // Warm up: the runtime, the memfd and the reaper thread are created once.
        common::warm_up().await;
        // ...and the pre-started shepherd pool refills to its size.
        assert!(common::eventually(
            common::GUARD,
            || net_runner::prestarted_idle() == 1
        ));
        let fds_before = common::settled_fd_count();
        for i in 0..1000 {
            let mut cmd = Command::new("sh");
            cmd.env(common::MARKER_VAR, &m);
            // Mix the ways a process can end: run to completion, spawn and
            // drop while alive, spawn and wait.
            match i % 3 {
                0 => {
                    let out = cmd.args(["-c", "echo x"]).run().await.unwrap();
                    assert_eq!(out.stdout, b"x\n");
                }
                1 => {
                    let p = cmd
                        .args(["-c", "sleep 100"])
                        .kill_timeout(Duration::from_millis(100))
                        .spawn()
                        .await
                        .unwrap();
                    drop(p);
                }
                _ => {
                    let mut p = cmd.args(["-c", "exit 0"]).spawn().await.unwrap();
                    p.close_stdin();
                    assert!(p.wait().await.unwrap().success());
                }
            }
        }
        assert!(
            common::eventually(common::GUARD, || {
                net_runner::prestarted_idle() == 1 && common::fd_count() == fds_before
            }),
            "fds before {fds_before}, after {}",
            common::fd_count()
        );
    });
    common::assert_all_gone(&m, common::GUARD);
    // The idle pre-started shepherd exits when let go...
    net_runner::set_prestarted_shepherds(0);
    // ...and every shepherd was reaped: no child of ours is left, zombie or not.
    assert!(
        common::eventually(common::GUARD, || common::children().is_empty()),
        "children left: {:?}",
        common::children()
    );
}
