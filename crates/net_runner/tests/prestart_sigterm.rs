//! A SIGTERM meant for our process group also reaches the idle pre-started
//! shepherd. It must not stay pending there and kill the next command's
//! child: the idle shepherd exits, and the next spawn uses a fresh one.
//! One test in its own binary: it identifies the idle shepherd as this
//! process's only child.

mod common;

use net_runner::Command;

#[test]
fn sigterm_to_an_idle_prestarted_shepherd_does_not_hit_the_next_child() {
    let rt = common::runtime();
    rt.block_on(async {
        net_runner::set_prestarted_shepherds(1);
        Command::new("true").run().await.unwrap();
        assert!(common::eventually(common::GUARD, || {
            net_runner::prestarted_idle() == 1 && common::children().len() == 1
        }));
        let (idle, _) = common::children()[0];
        unsafe { libc::kill(idle, libc::SIGTERM) };
        // It exits (a zombie until the pool notices).
        assert!(common::eventually(common::GUARD, || common::state(idle) == Some('Z')));
        let out = Command::new("sh")
            .args(["-c", "sleep 0.2; echo alive"])
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"alive\n");
        assert!(out.status.success(), "{}", out.status);
        net_runner::set_prestarted_shepherds(0);
    });
    assert!(
        common::eventually(common::GUARD, || common::children().is_empty()),
        "{:?}",
        common::children()
    );
}
