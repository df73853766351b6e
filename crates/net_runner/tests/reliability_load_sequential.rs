//! Many short runs one after another; afterwards descriptors, threads and
//! children are back where they were. One test in this binary, so that no
//! other test blurs the counts.
//!
//! 10,000 runs (about 20 s in a debug build on 2 cores). Another count:
//! `NETRUNNER_LOAD_RUNS=100000 cargo test -p net_runner --test reliability_load_sequential`

mod common;

use std::time::Instant;

use net_runner::Command;

use common::{eventually, footprint, marker, GUARD, MARKER_VAR};

#[test]
fn sequential_short_runs_leave_nothing_behind() {
    let runs: usize = std::env::var("NETRUNNER_LOAD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let m = marker();
    let rt = common::runtime();
    rt.block_on(async {
        common::warm_up().await;
        let before = footprint();
        let started = Instant::now();
        for i in 0..runs {
            let out = Command::new("echo")
                .arg(i.to_string())
                .env(MARKER_VAR, &m)
                .run()
                .await
                .unwrap();
            assert_eq!(out.stdout, format!("{i}\n").as_bytes());
        }
        println!("{runs} runs in {:?}", started.elapsed());
        assert!(
            eventually(GUARD, || net_runner::prestarted_idle() == 1
                && footprint() == before),
            "before {before:?}, after {:?}",
            footprint()
        );
    });
    common::assert_all_gone(&m, GUARD);
}
