//! Section 4: Concurrency: many `run`s of a short command at once.

use std::time::Instant;

use crate::harness::{ensure, interleave, Contender, Res};
use crate::report::{time_ratio, Report};
use crate::Ctx;

pub(crate) fn run(ctx: &Ctx, rep: &mut Report) -> Res<()> {
    let k = ctx.cfg.concurrent;
    let t = ctx.bin_true.clone();
    let rt = &ctx.rt;
    let mut cs = vec![
        Contender::new("tokio::process::Command output(), one task each", || {
            let t = t.clone();
            rt.block_on(async move {
                let s = Instant::now();
                let tasks: Vec<_> = (0..k)
                    .map(|_| {
                        let t = t.clone();
                        tokio::spawn(async move { tokio::process::Command::new(t).output().await })
                    })
                    .collect();
                let mut ok = 0;
                for h in tasks {
                    ok += h.await??.status.success() as usize;
                }
                let d = s.elapsed();
                ensure(ok == k, || format!("{ok} of {k} succeeded"))?;
                Ok(d)
            })
        }),
        Contender::new("net_runner Command::run(), one task each", || {
            let t = t.clone();
            rt.block_on(async move {
                let s = Instant::now();
                let tasks: Vec<_> = (0..k)
                    .map(|_| {
                        let t = t.clone();
                        tokio::spawn(async move { net_runner::Command::new(t).run().await })
                    })
                    .collect();
                let mut ok = 0;
                for h in tasks {
                    ok += h.await??.status.success() as usize;
                }
                let d = s.elapsed();
                ensure(ok == k, || format!("{ok} of {k} succeeded"))?;
                Ok(d)
            })
        }),
    ];
    let s = interleave(&mut cs, 1, ctx.cfg.concurrency_iters)?;
    let test = format!(
        "4. {k} concurrent runs of `/bin/true`, total time (lower is better), n={}",
        s[0].len()
    );
    rep.time_row(
        &test,
        cs[0].name,
        &s[0],
        Some(k as u64),
        "1.00× (baseline)".into(),
    );
    rep.time_row(
        &test,
        cs[1].name,
        &s[1],
        Some(k as u64),
        time_ratio(&s[1], &s[0], "tokio"),
    );
    rep.metric("conc.tokio", s[0].median().as_secs_f64());
    rep.metric("conc.nr", s[1].median().as_secs_f64());
    Ok(())
}
