//! Section 2c: bytes through a PTY master against the same bytes through a
//! pipe, both read with `Process::read` in one interleaved run (`dd bs=1M`
//! writing zeros; the terminal in raw mode, so every byte arrives as
//! written and the counts match).

use std::time::{Duration, Instant};

use crate::harness::{ensure, fmt_size, interleave, Contender, Res};
use crate::report::{speed_ratio, Report};
use crate::Ctx;

pub(crate) fn run(ctx: &Ctx, rep: &mut Report) -> Res<()> {
    // A terminal is far slower than a pipe: an eighth of the stdout size.
    let size = (ctx.cfg.stdout_bytes / 8).max(1 << 20);
    let count = format!("count={}", size >> 20);
    let args = ["if=/dev/zero", "bs=1M", count.as_str(), "status=none"];
    let dd = &ctx.dd;
    let rt = &ctx.rt;
    let once = move |pty: bool| -> Res<Duration> {
        rt.block_on(async {
            let s = Instant::now();
            let mut cmd = net_runner::Command::new(dd);
            cmd.args(args);
            if pty {
                cmd.pty_with(net_runner::Pty::new(24, 80).raw(true));
            }
            let mut p = cmd.spawn().await?;
            p.close_stdin();
            let mut total = 0u64;
            while let Some(chunk) = p.read().await? {
                total += chunk.len() as u64;
            }
            let st = p.wait().await?;
            let d = s.elapsed();
            ensure(total == size && st.success(), || {
                format!("read {total} of {size} bytes, {st}")
            })?;
            Ok(d)
        })
    };
    let mut cs = vec![
        Contender::new("net_runner spawn + read(), pipe", move || once(false)),
        Contender::new("net_runner spawn + read(), PTY master (raw)", move || {
            once(true)
        }),
    ];
    let s = interleave(&mut cs, 1, ctx.cfg.stdout_iters)?;
    let test = format!(
        "2c. PTY vs pipe, `dd bs=1M` {} read with Process::read (throughput; higher is better), n={}",
        fmt_size(size),
        s[0].len()
    );
    rep.bytes_row(&test, cs[0].name, &s[0], size, "1.00× (pipe)".into());
    rep.bytes_row(
        &test,
        cs[1].name,
        &s[1],
        size,
        speed_ratio(&s[1], &s[0], "pipe"),
    );
    rep.metric("pty.pipe", s[0].median().as_secs_f64());
    rep.metric("pty.pty", s[1].median().as_secs_f64());
    Ok(())
}
