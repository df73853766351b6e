//! Section 1: Spawn latency: spawn + wait of `/bin/true`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{ensure, interleave, Contender, Res, Samples};
use crate::report::{time_ratio, Report};
use crate::Ctx;

const TEST: &str = "1. spawn + wait `/bin/true` (time; lower is better)";

/// The very first `run` of the process, which also installs the embedded
/// shepherd (memfd). Must be the first net_runner call of the program.
pub(crate) fn cold(ctx: &Ctx) -> Res<Duration> {
    let t = Instant::now();
    let out = ctx
        .rt
        .block_on(net_runner::Command::new(&ctx.bin_true).run())?;
    let d = t.elapsed();
    ensure(out.status.success(), || "cold run failed".into())?;
    Ok(d)
}

pub(crate) fn run(ctx: &Ctx, rep: &mut Report, cold: Duration) -> Res<()> {
    let t = &ctx.bin_true;
    let rt = &ctx.rt;
    let pool_size = ctx.pool_size;
    let mut cs = vec![
        // Same work as net_runner's `run`: stdout and stderr piped and collected.
        Contender::new("std::process::Command output()", || {
            let s = Instant::now();
            let o = std::process::Command::new(t).output()?;
            let d = s.elapsed();
            ensure(o.status.success(), || "failed".into())?;
            Ok(d)
        }),
        Contender::new("std::process::Command status() (no pipes)", || {
            let s = Instant::now();
            let st = std::process::Command::new(t)
                .stdin(Stdio::null())
                .status()?;
            let d = s.elapsed();
            ensure(st.success(), || "failed".into())?;
            Ok(d)
        }),
        Contender::new("tokio::process::Command output()", || {
            rt.block_on(async {
                let s = Instant::now();
                let o = tokio::process::Command::new(t).output().await?;
                let d = s.elapsed();
                ensure(o.status.success(), || "failed".into())?;
                Ok(d)
            })
        }),
        Contender::new("net_runner Command::run()", || {
            rt.block_on(async {
                let s = Instant::now();
                let o = net_runner::Command::new(t).run().await?;
                let d = s.elapsed();
                ensure(o.status.success(), || "failed".into())?;
                Ok(d)
            })
        }),
        // The cold path: no pre-started shepherd (what a burst beyond the
        // pool, or `NETRUNNER_PRESTART=0`, costs). The pool is turned back on
        // and refilled outside the measured part.
        Contender::new("net_runner Command::run(), pre-start pool off", || {
            net_runner::set_prestarted_shepherds(0);
            let r = rt.block_on(async {
                let s = Instant::now();
                let o = net_runner::Command::new(t).run().await?;
                let d = s.elapsed();
                ensure(o.status.success(), || "failed".into())?;
                Ok(d)
            });
            net_runner::set_prestarted_shepherds(pool_size);
            crate::wait_pool_refilled(pool_size);
            r
        }),
        // Outside any runtime: pays its private runtime, as a sync caller does.
        Contender::new("net_runner Command::run_blocking()", || {
            let s = Instant::now();
            let o = net_runner::Command::new(t).run_blocking()?;
            let d = s.elapsed();
            ensure(o.status.success(), || "failed".into())?;
            Ok(d)
        }),
    ];
    let s = interleave(&mut cs, ctx.cfg.warmup_spawns, ctx.cfg.spawns)?;
    let names: Vec<&str> = cs.iter().map(|c| c.name).collect();
    let std_out = &s[0];
    let vs_std = |x: &Samples| time_ratio(x, std_out, "std output()");
    let test = format!("{TEST}, n={}", std_out.len());
    for (i, x) in s.iter().enumerate() {
        let ratio = match i {
            0 => "1.00× (baseline)".to_string(),
            3..=5 => format!("{}; {}", vs_std(x), time_ratio(x, &s[2], "tokio")),
            _ => vs_std(x),
        };
        rep.time_row(&test, names[i], x, None, ratio);
    }
    rep.row(
        &test,
        "net_runner first run() in the process (installs the shepherd memfd)",
        crate::harness::fmt_dur(cold),
        "—".into(),
        "—".into(),
        "1 sample".into(),
    );
    rep.metric("spawn.std_output", s[0].median().as_secs_f64());
    rep.metric("spawn.std_status", s[1].median().as_secs_f64());
    rep.metric("spawn.tokio", s[2].median().as_secs_f64());
    rep.metric("spawn.nr_run", s[3].median().as_secs_f64());
    rep.metric("spawn.nr_run_nopool", s[4].median().as_secs_f64());
    rep.metric("spawn.nr_run_blocking", s[5].median().as_secs_f64());
    Ok(())
}
