//! Section 2: stdout throughput: `head -c SIZE /dev/zero` read to the end.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use crate::harness::{ensure, fmt_size, interleave, Contender, Res};
use crate::report::{speed_ratio, Report};
use crate::{sys, Ctx, BUF};

/// The section as asked: `head -c SIZE /dev/zero` (8 KiB writes), with the
/// `/dev/null` and CLI rows.
pub(crate) fn run(ctx: &Ctx, rep: &mut Report) -> Res<()> {
    let size = ctx.cfg.stdout_bytes;
    let size_arg = size.to_string();
    let args = ["-c", size_arg.as_str(), "/dev/zero"];
    let test = format!(
        "2. stdout, `head -c {}` read to the end (throughput; higher is better)",
        fmt_size(size)
    );
    run_with(ctx, rep, &ctx.head, &args, &test, "stdout", true)
}

/// The same readers behind a producer that writes 1 MiB at a time
/// (`dd bs=1M`), so that the reader, not `head`'s 8 KiB writes, is the
/// bottleneck.
pub(crate) fn run_fast_producer(ctx: &Ctx, rep: &mut Report) -> Res<()> {
    let size = ctx.cfg.stdout_bytes;
    let count = format!("count={}", size >> 20);
    let args = ["if=/dev/zero", "bs=1M", count.as_str(), "status=none"];
    let test = format!(
        "2b. stdout, `dd bs=1M` {} read to the end (throughput; higher is better)",
        fmt_size(size)
    );
    run_with(ctx, rep, &ctx.dd, &args, &test, "stdout_dd", false)
}

fn run_with(
    ctx: &Ctx,
    rep: &mut Report,
    head: &Path,
    args: &[&str],
    test: &str,
    key: &str,
    devnull_rows: bool,
) -> Res<()> {
    let size = ctx.cfg.stdout_bytes;
    let rt = &ctx.rt;
    let check = move |total: u64, ok: bool| {
        ensure(total == size && ok, || {
            format!("read {total} of {size} bytes, success={ok}")
        })
    };

    let mut raw_buf = vec![0u8; BUF];
    let mut raw1m_buf = vec![0u8; BUF];
    let mut tokio_buf = vec![0u8; BUF];
    let mut nr_buf = vec![0u8; BUF];
    let mut cs = vec![
        Contender::new(
            "raw blocking read() loop, std::process pipe (64 KiB)",
            || raw_read(head, args, &mut raw_buf, None, check),
        ),
        Contender::new("raw blocking read() loop, pipe grown to 1 MiB", || {
            raw_read(head, args, &mut raw1m_buf, Some(1 << 20), check)
        }),
        Contender::new(
            "tokio::process ChildStdout, read() into reused buffer",
            || {
                rt.block_on(async {
                    let s = Instant::now();
                    let mut child = tokio::process::Command::new(head)
                        .args(args)
                        .stdout(Stdio::piped())
                        .spawn()?;
                    let mut out = child.stdout.take().expect("piped");
                    let mut total = 0u64;
                    loop {
                        let n = out.read(&mut tokio_buf).await?;
                        if n == 0 {
                            break;
                        }
                        total += n as u64;
                    }
                    let st = child.wait().await?;
                    let d = s.elapsed();
                    check(total, st.success())?;
                    Ok(d)
                })
            },
        ),
        Contender::new("net_runner Command::stream()", || {
            rt.block_on(async {
                let s = Instant::now();
                let mut st = net_runner::Command::new(head).args(args).stream().await?;
                let mut total = 0u64;
                while let Some(chunk) = st.next().await {
                    total += chunk?.len() as u64;
                }
                let d = s.elapsed();
                check(total, st.status().is_some_and(|s| s.success()))?;
                Ok(d)
            })
        }),
        Contender::new(
            "net_runner spawn + take_stdout(), AsyncRead into reused buffer",
            || {
                rt.block_on(async {
                    let s = Instant::now();
                    let mut p = net_runner::Command::new(head).args(args).spawn().await?;
                    p.close_stdin();
                    let mut out = p.take_stdout().expect("piped");
                    let mut total = 0u64;
                    loop {
                        let n = out.read(&mut nr_buf).await?;
                        if n == 0 {
                            break;
                        }
                        total += n as u64;
                    }
                    let st = p.wait().await?;
                    let d = s.elapsed();
                    check(total, st.success())?;
                    Ok(d)
                })
            },
        ),
    ];
    if devnull_rows {
        cs.push(Contender::new(
            "`head … > /dev/null` directly (no pipe)",
            || to_devnull(std::process::Command::new(head).args(args)),
        ));
        cs.push(Contender::new(
            "`sh -c 'head … | cat > /dev/null'` (one pipe hop)",
            || {
                let script = format!(
                    "{} {} | {} > /dev/null",
                    head.display(),
                    args.join(" "),
                    ctx.cat.display()
                );
                to_devnull(std::process::Command::new("/bin/sh").args(["-c", &script]))
            },
        ));
    }
    if let (true, Ok(cli)) = (devnull_rows, &ctx.cli) {
        cs.push(Contender::new(
            "`netrunner run -- head …` > /dev/null (CLI)",
            move || {
                to_devnull(
                    std::process::Command::new(cli)
                        .arg("run")
                        .arg("--")
                        .arg(head)
                        .args(args),
                )
            },
        ));
    }
    let s = interleave(&mut cs, 1, ctx.cfg.stdout_iters)?;
    let names: Vec<&str> = cs.iter().map(|c| c.name).collect();
    let test = format!("{test}, n={}", s[0].len());
    let (raw, tokio) = (&s[0], &s[2]);
    for (i, x) in s.iter().enumerate() {
        let ratio = match i {
            0 => "1.00× (the limit)".to_string(),
            1 | 2 => speed_ratio(x, raw, "raw read"),
            3 | 4 => format!(
                "{}; {}",
                speed_ratio(x, raw, "raw read"),
                speed_ratio(x, tokio, "tokio")
            ),
            5 => "—".into(),
            6 => speed_ratio(x, &s[5], "direct"),
            _ => format!(
                "{}; {}",
                speed_ratio(x, &s[5], "direct"),
                speed_ratio(x, &s[6], "sh pipe")
            ),
        };
        rep.bytes_row(&test, names[i], x, size, ratio);
    }
    if let (true, Err(why)) = (devnull_rows, &ctx.cli) {
        rep.na(&test, "`netrunner run -- head …` > /dev/null (CLI)", why);
    }
    let secs = |i: usize| s[i].median().as_secs_f64();
    for (i, name) in ["raw", "raw1m", "tokio", "nr_stream", "nr_read"]
        .iter()
        .enumerate()
    {
        rep.metric(&format!("{key}.{name}"), secs(i));
    }
    Ok(())
}

fn raw_read(
    head: &Path,
    args: &[&str],
    buf: &mut [u8],
    grow: Option<i32>,
    check: impl Fn(u64, bool) -> Res<()>,
) -> Res<Duration> {
    let s = Instant::now();
    let mut child = std::process::Command::new(head)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take().expect("piped");
    if let Some(size) = grow {
        sys::grow_pipe(out.as_raw_fd(), size)?;
    }
    let mut total = 0u64;
    loop {
        let n = out.read(buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let st = child.wait()?;
    let d = s.elapsed();
    check(total, st.success())?;
    Ok(d)
}

fn to_devnull(cmd: &mut std::process::Command) -> Res<Duration> {
    let null = File::create("/dev/null")?;
    let s = Instant::now();
    let st = cmd.stdin(Stdio::null()).stdout(null).status()?;
    let d = s.elapsed();
    ensure(st.success(), || format!("exit {st}"))?;
    Ok(d)
}
