//! A `Command` is a reusable template: clone it, append arguments and
//! override options at the call site (the call site wins, arguments
//! append). A `Daemon` re-runs its template at every restart.
//!
//! `cargo run -p net_runner --example templates`

use std::time::Duration;

use net_runner::daemon::{Daemon, DaemonState, Readiness, Restart};
use net_runner::Command;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The template: program, common arguments and options.
    let mut sh = Command::new("sh");
    sh.env("GREETING", "hello").timeout(Duration::from_secs(10));

    // Call sites: append arguments, override options.
    let out = sh.clone().args(["-c", "echo $GREETING"]).output().await?;
    assert_eq!(out.stdout, b"hello\n");
    let out = sh
        .clone()
        .env("GREETING", "bonjour") // overrides the template's value
        .args(["-c", "echo $GREETING"])
        .output()
        .await?;
    assert_eq!(out.stdout, b"bonjour\n");

    // A daemon re-runs a template: here a worker that fails once, then
    // stays up; each start is checked for readiness.
    let dir = std::env::temp_dir().join(format!("netrunner-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut worker = sh.clone();
    worker.args([
        "-c",
        &format!(
            "if [ ! -e {d}/once ]; then touch {d}/once; exit 1; fi; echo ready; exec sleep 60",
            d = dir.display()
        ),
    ]);
    let daemon = Daemon::builder(worker)
        .name("worker")
        .restart(Restart::OnFailure)
        .backoff(Duration::from_millis(50), Duration::from_secs(1))
        .ready(Readiness::pattern("^ready$")?)
        .start()
        .await?;
    let status = daemon.status();
    assert_eq!((status.state, status.restarts), (DaemonState::Ready, 1));
    println!(
        "{} is {} after {} restart(s)",
        status.name, status.state, status.restarts
    );
    let status = daemon.stop().await?;
    println!("then {}: {:?}", status.state, status.last_exit);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
