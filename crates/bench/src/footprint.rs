//! Section 5: Footprint: memory of an idle shepherd, and this process's memory and
//! descriptors for each live process.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::{fmt_bytes, Res};
use crate::report::{ratio, Report};
use crate::{alloc, sys, Ctx};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Children of this process that are shepherds with no child of their own:
/// the pool's idle ones (waits until the pool is full and nothing else runs).
fn idle_shepherds() -> Vec<u32> {
    let want = net_runner::prestarted_idle();
    let start = std::time::Instant::now();
    loop {
        let idle: Vec<u32> = sys::children()
            .into_iter()
            .filter(|&pid| {
                std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|e| e.to_string_lossy().contains("netrunner-shepherd"))
                    && std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                        .is_ok_and(|c| c.trim().is_empty())
            })
            .collect();
        if idle.len() == want || start.elapsed() > Duration::from_secs(2) {
            return idle;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn run(ctx: &Ctx, rep: &mut Report) -> Res<()> {
    let rt = &ctx.rt;
    let sleep = &ctx.sleep;
    let test = "5. footprint (lower is better)";

    // One idle shepherd, several times.
    let (mut rss, mut pss, mut uss, mut child_rss) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ctx.cfg.footprint_rounds.max(3) {
        rt.block_on(async {
            let mut p = net_runner::Command::new(sleep).arg("30").spawn().await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let sh = p.shepherd_pid();
            rss.push(sys::rss_kib(sh)? as f64 * 1024.0);
            let (p_, u_) = sys::pss_uss_kib(sh)?;
            pss.push(p_ as f64 * 1024.0);
            uss.push(u_ as f64 * 1024.0);
            child_rss.push(sys::rss_kib(p.os_pid())? as f64 * 1024.0);
            p.kill(net_runner::Signal::Kill)?;
            p.wait().await?;
            Res::Ok(())
        })?;
    }
    let dash = || "—".to_string();
    let (rss, pss, uss, child_rss) = (median(rss), median(pss), median(uss), median(child_rss));
    rep.row(
        test,
        "idle shepherd (`sleep 30` child): VmRSS / PSS / USS",
        format!(
            "{} / {} / {}",
            fmt_bytes(rss),
            fmt_bytes(pss),
            fmt_bytes(uss)
        ),
        dash(),
        dash(),
        format!("the `sleep` child itself: VmRSS {}", fmt_bytes(child_rss)),
    );
    rep.metric("fp.shepherd_rss", rss);
    rep.metric("fp.shepherd_uss", uss);

    // Library memory and descriptors per live process, interleaved rounds.
    let n = ctx.cfg.live;
    let (mut t_mem, mut t_fd, mut n_mem, mut n_fd) = (vec![], vec![], vec![], vec![]);
    let (mut t_heap, mut n_heap) = (vec![], vec![]);
    for _ in 0..ctx.cfg.footprint_rounds {
        rt.block_on(async {
            let mut kids = Vec::with_capacity(n);
            let (m0, f0, h0) = (sys::rss_kib(0)?, sys::fd_count()?, alloc::live_bytes());
            for _ in 0..n {
                kids.push(
                    tokio::process::Command::new(sleep)
                        .arg("30")
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()?,
                );
            }
            let (m1, f1, h1) = (sys::rss_kib(0)?, sys::fd_count()?, alloc::live_bytes());
            t_heap.push((h1 - h0) as f64 / n as f64);
            for k in &mut kids {
                k.start_kill()?;
            }
            for k in &mut kids {
                k.wait().await?;
            }
            t_mem.push((m1 as f64 - m0 as f64) * 1024.0 / n as f64);
            t_fd.push((f1 as f64 - f0 as f64) / n as f64);
            Res::Ok(())
        })?;
        rt.block_on(async {
            let mut procs = Vec::with_capacity(n);
            let (m0, f0, h0) = (sys::rss_kib(0)?, sys::fd_count()?, alloc::live_bytes());
            for _ in 0..n {
                procs.push(net_runner::Command::new(sleep).arg("30").spawn().await?);
            }
            let (m1, f1, h1) = (sys::rss_kib(0)?, sys::fd_count()?, alloc::live_bytes());
            n_heap.push((h1 - h0) as f64 / n as f64);
            for p in &mut procs {
                p.kill(net_runner::Signal::Kill)?;
            }
            for p in &mut procs {
                p.wait().await?;
            }
            n_mem.push((m1 as f64 - m0 as f64) * 1024.0 / n as f64);
            n_fd.push((f1 as f64 - f0 as f64) / n as f64);
            Res::Ok(())
        })?;
        sys::wait_children_at_most(net_runner::prestarted_idle(), Duration::from_secs(5));
    }
    // The pool's idle pre-started shepherds, once every process above is gone.
    let idle = idle_shepherds();
    if let Some(&pid) = idle.first() {
        let rss = sys::rss_kib(pid)? as f64 * 1024.0;
        let (_, uss) = sys::pss_uss_kib(pid)?;
        rep.row(
            test,
            &format!(
                "pre-started idle shepherds kept by the pool: {}",
                idle.len()
            ),
            format!(
                "{} VmRSS / {} USS each",
                fmt_bytes(rss),
                fmt_bytes(uss as f64 * 1024.0)
            ),
            dash(),
            dash(),
            dash(),
        );
    }
    let (t_mem, t_fd, n_mem, n_fd) = (median(t_mem), median(t_fd), median(n_mem), median(n_fd));
    let (t_heap, n_heap) = (median(t_heap), median(n_heap));
    let what = format!("RSS delta of this process / {n} live `sleep 30`");
    rep.row(
        test,
        &format!("tokio::process (3 pipes): {what}"),
        fmt_bytes(t_mem),
        dash(),
        dash(),
        dash(),
    );
    rep.row(
        test,
        &format!("net_runner spawn(): {what}"),
        fmt_bytes(n_mem),
        dash(),
        dash(),
        if t_mem > 0.0 {
            format!("{} tokio", ratio(n_mem, t_mem))
        } else {
            dash()
        },
    );
    rep.row(
        test,
        "tokio::process (3 pipes): heap of this process per live process (+ inline handle)",
        format!(
            "{} + {} B",
            fmt_bytes(t_heap),
            std::mem::size_of::<tokio::process::Child>()
        ),
        dash(),
        dash(),
        dash(),
    );
    rep.row(
        test,
        "net_runner spawn(): heap of this process per live process (+ inline handle)",
        format!(
            "{} + {} B",
            fmt_bytes(n_heap),
            std::mem::size_of::<net_runner::Process>()
        ),
        dash(),
        dash(),
        format!("{} tokio", ratio(n_heap, t_heap)),
    );
    rep.row(
        test,
        "tokio::process (3 pipes): descriptors per live process",
        format!("{t_fd:.2}"),
        dash(),
        dash(),
        dash(),
    );
    rep.row(
        test,
        "net_runner spawn(): descriptors per live process",
        format!("{n_fd:.2}"),
        dash(),
        dash(),
        format!("{} tokio", ratio(n_fd, t_fd)),
    );
    rep.metric("fp.nr_mem", n_mem);
    rep.metric("fp.nr_fd", n_fd);
    rep.metric("fp.tokio_mem", t_mem);
    rep.metric("fp.tokio_fd", t_fd);
    rep.metric("fp.nr_heap", n_heap);
    rep.metric("fp.tokio_heap", t_heap);
    Ok(())
}
