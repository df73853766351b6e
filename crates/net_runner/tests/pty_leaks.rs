//! 500 PTY runs leak no fd and no process. One test per binary so no
//! other test's processes blur the counts.

mod common;

use std::time::Duration;

use common::eventually;
use net_runner::Command;

#[test]
fn five_hundred_pty_runs_leak_no_fd_and_no_process() {
    let rt = common::runtime();
    let m = common::marker();
    rt.block_on(async {
        common::warm_up().await;
        Command::new("true").pty(24, 80).run().await.unwrap();
        assert!(eventually(common::GUARD, || net_runner::prestarted_idle() == 1));
        let fds_before = common::settled_fd_count();
        for i in 0..500 {
            let mut cmd = Command::new("sh");
            cmd.env(common::MARKER_VAR, &m).pty(24, 80);
            match i % 4 {
                0 => {
                    let out = cmd.args(["-c", "echo x"]).run().await.unwrap();
                    assert_eq!(out.stdout, b"x\r\n");
                }
                1 => {
                    // Dropped while running, stdin and stdout taken away.
                    let mut p = cmd
                        .args(["-c", "sleep 100"])
                        .kill_timeout(Duration::from_millis(100))
                        .spawn()
                        .await
                        .unwrap();
                    let (stdin, stdout) = (p.take_stdin(), p.take_stdout());
                    drop(p);
                    drop((stdin, stdout));
                }
                2 => {
                    let mut p = cmd.args(["-c", "cat"]).spawn().await.unwrap();
                    p.write(b"partial").await.unwrap();
                    p.close_stdin();
                    assert_eq!(common::read_all(&mut p).await, b"partialpartial");
                    assert!(p.wait().await.unwrap().success());
                }
                _ => {
                    let mut p = cmd.args(["-c", "exit 0"]).spawn().await.unwrap();
                    assert!(p.wait().await.unwrap().success());
                }
            }
        }
        assert!(
            eventually(common::GUARD, || {
                net_runner::prestarted_idle() == 1 && common::fd_count() == fds_before
            }),
            "fds before {fds_before}, after {}",
            common::fd_count()
        );
    });
    common::assert_all_gone(&m, common::GUARD);
}
