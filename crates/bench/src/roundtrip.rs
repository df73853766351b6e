//! Section 3: stdin → stdout round trip through `cat`.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{ensure, fmt_size, interleave, Contender, Res};
use crate::report::{speed_ratio, Report};
use crate::{Ctx, BUF};

/// Bytes per write.
const WRITE: usize = 1 << 20;

/// The async contenders' shared body: a writer task sends `writes` copies
/// of `data` to stdin (then closes it), while this task reads stdout to the
/// end into `buf`. Returns the bytes read. The same code for tokio and
/// net_runner, so only the pipes differ.
async fn through<W, R>(
    stdin: W,
    out: &mut R,
    data: &Bytes,
    writes: usize,
    buf: &mut [u8],
) -> Res<u64>
where
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    R: tokio::io::AsyncRead + Unpin,
{
    let data = data.clone();
    let mut stdin = stdin;
    let writer = tokio::spawn(async move {
        for _ in 0..writes {
            stdin.write_all(&data).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut total = 0u64;
    loop {
        let n = out.read(buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    writer.await??;
    Ok(total)
}

pub(crate) fn run(ctx: &Ctx, rep: &mut Report) -> Res<()> {
    let size = ctx.cfg.roundtrip_bytes;
    let writes = (size / WRITE as u64) as usize;
    let chunk = Bytes::from((0..WRITE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let cat = &ctx.cat;
    let rt = &ctx.rt;
    let check = move |total: u64, ok: bool| {
        ensure(total == size && ok, || {
            format!("got back {total} of {size} bytes, success={ok}")
        })
    };
    let mut bufs = [vec![0u8; BUF], vec![0u8; BUF], vec![0u8; BUF]];
    let [raw_buf, tokio_buf, nr_buf] = &mut bufs;

    let mut cs = vec![
        Contender::new(
            "raw: std::process, writer thread + blocking read() loop",
            || {
                let s = Instant::now();
                let mut child = std::process::Command::new(cat)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let mut stdin = child.stdin.take().expect("piped");
                let mut out = child.stdout.take().expect("piped");
                let data = chunk.clone();
                let writer = std::thread::spawn(move || -> std::io::Result<()> {
                    for _ in 0..writes {
                        stdin.write_all(&data)?;
                    }
                    Ok(())
                });
                let mut total = 0u64;
                loop {
                    let n = out.read(raw_buf)?;
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                writer.join().expect("writer panicked")?;
                let st = child.wait()?;
                let d = s.elapsed();
                check(total, st.success())?;
                Ok(d)
            },
        ),
        Contender::new("tokio::process, writer task + reader", || {
            rt.block_on(async {
                let s = Instant::now();
                let mut child = tokio::process::Command::new(cat)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let stdin = child.stdin.take().expect("piped");
                let mut out = child.stdout.take().expect("piped");
                let total = through(stdin, &mut out, &chunk, writes, tokio_buf).await?;
                let st = child.wait().await?;
                let d = s.elapsed();
                check(total, st.success())?;
                Ok(d)
            })
        }),
        Contender::new("net_runner Command::input_stream() + stream()", || {
            rt.block_on(async {
                let s = Instant::now();
                let data = chunk.clone();
                let input = futures_util::stream::iter((0..writes).map(move |_| Ok(data.clone())));
                let mut st = net_runner::Command::new(cat)
                    .input_stream(input)
                    .stream()
                    .await?;
                let mut total = 0u64;
                while let Some(c) = st.next().await {
                    total += c?.len() as u64;
                }
                let d = s.elapsed();
                check(total, st.status().is_some_and(|s| s.success()))?;
                Ok(d)
            })
        }),
        Contender::new(
            "net_runner spawn + take_stdin()/take_stdout() in two tasks",
            || {
                rt.block_on(async {
                    let s = Instant::now();
                    let mut p = net_runner::Command::new(cat).spawn().await?;
                    let stdin = p.take_stdin().expect("piped");
                    let mut out = p.take_stdout().expect("piped");
                    let total = through(stdin, &mut out, &chunk, writes, nr_buf).await?;
                    let st = p.wait().await?;
                    let d = s.elapsed();
                    check(total, st.success())?;
                    Ok(d)
                })
            },
        ),
    ];
    let s = interleave(&mut cs, 1, ctx.cfg.roundtrip_iters)?;
    let names: Vec<&str> = cs.iter().map(|c| c.name).collect();
    let test = format!(
        "3. {} stdin → `cat` → stdout, 1 MiB writes (throughput; higher is better), n={}",
        fmt_size(size),
        s[0].len()
    );
    for (i, x) in s.iter().enumerate() {
        let ratio = match i {
            0 => "1.00× (the limit)".to_string(),
            1 => speed_ratio(x, &s[0], "raw"),
            _ => format!(
                "{}; {}",
                speed_ratio(x, &s[1], "tokio"),
                speed_ratio(x, &s[0], "raw")
            ),
        };
        rep.bytes_row(&test, names[i], x, size, ratio);
    }
    let secs = |i: usize| s[i].median().as_secs_f64();
    rep.metric("rt.raw", secs(0));
    rep.metric("rt.tokio", secs(1));
    rep.metric("rt.nr_stream", secs(2));
    rep.metric("rt.nr_tasks", secs(3));
    rep.metric("rt.bytes", size as f64);
    Ok(())
}
