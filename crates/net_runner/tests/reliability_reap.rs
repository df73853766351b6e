//! A shepherd's pid is reaped exactly once, even after the number has been
//! recycled for another child of ours. Its own binary: it steers the
//! kernel's pid allocator (`/proc/sys/kernel/ns_last_pid`), which other
//! tests spawning in the same process would disturb.

mod common;

use std::time::Duration;

use net_runner::Command;

/// Makes the next process created anywhere in this pid namespace get `pid`,
/// unless another fork gets there first. `false` if we may not.
fn next_pid_will_be(pid: u32) -> bool {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_ok()
}

#[tokio::test]
async fn a_recycled_shepherd_pid_is_not_reaped_again() {
    for _attempt in 0..20 {
        let mut p = Command::new("true").spawn().await.unwrap();
        p.close_stdin();
        assert!(p.wait().await.unwrap().success());
        // The exit report hands the shepherd to the reaper; wait until it
        // has exited and been reaped.
        let shepherd = p.shepherd_pid();
        assert!(common::eventually(common::GUARD, || !common::exists(
            shepherd as i32
        )));
        // Recycle its pid for a child that the library knows nothing of.
        if !next_pid_will_be(shepherd) {
            println!("skipped: cannot write /proc/sys/kernel/ns_last_pid (needs CAP_SYS_ADMIN)");
            return;
        }
        let mut other = std::process::Command::new("sleep")
            .arg("0.05")
            .spawn()
            .unwrap();
        if other.id() != shepherd {
            // Someone else forked in between; try again.
            other.wait().unwrap();
            continue;
        }
        // Dropping the Process must not hand the pid to the reaper again:
        // the reaper would wait for our `sleep` and take its exit status.
        drop(p);
        std::thread::sleep(Duration::from_millis(300));
        let status = other
            .wait()
            .expect("the exit status of an unrelated child was stolen");
        assert!(status.success());
        return;
    }
    println!("skipped: could not get a recycled pid in 20 attempts");
}
