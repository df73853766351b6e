//! Data in and out: run, stream, Process, stderr modes, env, backpressure.

mod common;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use net_runner::{Chunk, Command, Error, Stderr};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn nul_bytes_round_trip_in_output() {
    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let out = Command::new("cat").input(data.clone()).run().await.unwrap();
    assert_eq!(out.stdout, data);
    let out = Command::new("printf").arg(r"a\0b\0").run().await.unwrap();
    assert_eq!(out.stdout, b"a\0b\0");
}

#[tokio::test]
async fn fast_exiting_programs_never_lose_stderr() {
    for i in 0..50 {
        let out = Command::new("sh")
            .args(["-c", &format!("echo out{i}; echo err{i} >&2; exit 3")])
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, format!("out{i}\n").as_bytes());
        assert_eq!(out.stderr, format!("err{i}\n").as_bytes());
        assert_eq!(out.status.code(), Some(3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_round_trip_through_cat() {
    const SIZE: usize = 64 << 20;
    let mut data = vec![0u8; SIZE];
    let mut x: u32 = 12345;
    for b in data.iter_mut() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let want = Sha256::digest(&data);
    // As one buffer...
    let out = Command::new("cat").input(data.clone()).run().await.unwrap();
    assert_eq!(out.stdout.len(), SIZE);
    assert_eq!(Sha256::digest(&out.stdout), want);
    assert_eq!(out.stats.bytes_in, SIZE as u64);
    assert_eq!(out.stats.bytes_out, SIZE as u64);
    // ...and as a stream of 1 MiB pieces.
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(1 << 20)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let out = Command::new("cat")
        .input_stream(futures_util::stream::iter(chunks))
        .run()
        .await
        .unwrap();
    assert_eq!(Sha256::digest(&out.stdout), want);
}

#[tokio::test]
async fn input_from_an_async_reader() {
    let reader: &'static [u8] = b"from a reader\n";
    let out = Command::new("cat")
        .input_reader(reader)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"from a reader\n");
}

#[tokio::test]
async fn stdin_is_empty_without_input() {
    let out = Command::new("wc").arg("-c").run().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

#[tokio::test]
async fn stderr_modes() {
    let cases: [(Stderr, &[u8], &[u8]); 3] = [
        (Stderr::Redirect, b"out\nerr\n", b""),
        (Stderr::Discard, b"out\n", b""),
        (Stderr::Consume, b"out\n", b"err\n"),
    ];
    for (mode, stdout, stderr) in cases {
        let out = Command::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .stderr(mode)
            .run()
            .await
            .unwrap();
        assert_eq!(
            (out.stdout.as_slice(), out.stderr.as_slice()),
            (stdout, stderr),
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn env_set_remove_clear_and_cwd() {
    std::env::set_var("NETRUNNER_IO_TEST_INHERITED", "yes");
    let out = Command::new("sh")
        .args(["-c", "echo \"$NETRUNNER_IO_TEST_INHERITED/$FOO/$(pwd)\""])
        .env("FOO", "bar")
        .current_dir("/tmp")
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"yes/bar//tmp\n");
    let out = Command::new("sh")
        .args(["-c", "echo \"[$NETRUNNER_IO_TEST_INHERITED]\""])
        .env_remove("NETRUNNER_IO_TEST_INHERITED")
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"[]\n");
    let out = Command::new("/usr/bin/env")
        .env_clear()
        .env("ONLY", "1")
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"ONLY=1\n");
}

#[tokio::test]
async fn non_utf8_arguments_pass_through() {
    use std::os::unix::ffi::OsStrExt;
    let arg = std::ffi::OsStr::from_bytes(b"\xff\xfe-raw");
    let out = Command::new("printf")
        .args(["%s"])
        .arg(arg)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"\xff\xfe-raw");
}

#[tokio::test]
async fn process_interactive_read_write() {
    let mut p = Command::new("cat").spawn().await.unwrap();
    for i in 0..10 {
        let msg = format!("line {i}\n");
        p.write(msg.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        while got.len() < msg.len() {
            got.extend_from_slice(&p.read().await.unwrap().unwrap());
        }
        assert_eq!(got, msg.as_bytes());
    }
    assert!(p.is_alive());
    p.close_stdin();
    assert_eq!(p.read().await.unwrap(), None);
    assert!(p.wait().await.unwrap().success());
    assert!(!p.is_alive());
    let stats = p.stats();
    assert_eq!(stats.bytes_in, stats.bytes_out);
    assert_eq!(stats.write_count, 10);
    // Writing after close is an error, not a panic.
    assert!(p.write(b"x").await.is_err());
}

#[tokio::test]
async fn async_read_write_halves() {
    let mut p = Command::new("tr")
        .args(["a-z", "A-Z"])
        .spawn()
        .await
        .unwrap();
    let mut stdin = p.take_stdin().unwrap();
    let mut stdout = p.take_stdout().unwrap();
    let writer = tokio::spawn(async move {
        stdin.write_all(b"hello halves").await.unwrap();
        drop(stdin);
    });
    let mut s = String::new();
    stdout.read_to_string(&mut s).await.unwrap();
    writer.await.unwrap();
    assert_eq!(s, "HELLO HALVES");
    assert!(p.wait().await.unwrap().success());
}

#[tokio::test]
async fn read_stderr_separately() {
    let mut p = Command::new("sh")
        .args(["-c", "echo to-err >&2; echo to-out"])
        .spawn()
        .await
        .unwrap();
    assert_eq!(
        p.read_stderr().await.unwrap().as_deref(),
        Some(&b"to-err\n"[..])
    );
    assert_eq!(p.read().await.unwrap().as_deref(), Some(&b"to-out\n"[..]));
    assert_eq!(p.wait().await.unwrap().code(), Some(0));
}

#[tokio::test]
async fn stats_report_cpu_and_memory() {
    let out = Command::new("sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done",
        ])
        .run()
        .await
        .unwrap();
    let s = out.stats;
    assert_eq!(s.bytes_out, 5);
    assert!(s.read_count >= 1);
    assert!(s.user_time.unwrap() + s.system_time.unwrap() > Duration::ZERO);
    assert!(s.max_rss_bytes.unwrap() > 100 * 1024);
    assert!(s.wall_time > Duration::ZERO);
    assert_eq!(s.exit_status, Some(out.status));
}

#[tokio::test]
async fn exit_codes_and_signals() {
    let out = Command::new("sh")
        .args(["-c", "exit 42"])
        .run()
        .await
        .unwrap();
    assert_eq!((out.status.code(), out.status.shell_code()), (Some(42), 42));
    let out = Command::new("sh")
        .args(["-c", "kill -9 $$"])
        .run()
        .await
        .unwrap();
    assert_eq!(out.status.signal(), Some(9));
    assert_eq!(out.status.shell_code(), 137);
    assert_eq!(out.status.to_string(), "killed by SIGKILL");
}

#[tokio::test]
async fn stream_yields_stdout_and_keeps_stderr() {
    let mut s = Command::new("sh")
        .args(["-c", "echo a; echo b >&2; echo c"])
        .stream()
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(out, b"a\nc\n");
    assert_eq!(s.stderr(), b"b\n");
    assert!(s.status().unwrap().success());
    assert_eq!(s.stats().bytes_out, 4);
}

#[tokio::test]
async fn tagged_stream_keeps_streams_apart() {
    let mut s = Command::new("sh")
        .args(["-c", "echo o1; echo e1 >&2; echo o2"])
        .stream_tagged()
        .await
        .unwrap();
    let (mut o, mut e) = (Vec::new(), Vec::new());
    while let Some(c) = s.next().await {
        match c.unwrap() {
            Chunk::Stdout(b) => o.extend_from_slice(&b),
            Chunk::Stderr(b) => e.extend_from_slice(&b),
        }
    }
    assert_eq!(
        (o.as_slice(), e.as_slice()),
        (&b"o1\no2\n"[..], &b"e1\n"[..])
    );
}

/// A consumer that stops reading stops the producer: the child blocks on a
/// full pipe instead of the library buffering its output.
#[tokio::test]
async fn slow_consumer_blocks_the_producer() {
    let marker = common::marker();
    let mut s = Command::new("head")
        .args(["-c", "512M", "/dev/zero"])
        .env(common::MARKER_VAR, &marker)
        .stream()
        .await
        .unwrap();
    let first = s.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    let pid = s.os_pid();
    // Give the child every chance to run ahead, then look at what it wrote.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = wchar(pid);
    // At most what was read plus one (1 MiB) pipe buffer, with slack.
    assert!(
        written < 4 << 20,
        "child wrote {written} bytes while nobody read"
    );
    assert_eq!(
        common::state(pid as i32),
        Some('S'),
        "child should be blocked in write"
    );
    drop(s);
    common::assert_all_gone(&marker, common::GUARD);
}

fn wchar(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn timeout_returns_partial_output_and_kills() {
    let marker = common::marker();
    let r = Command::new("sh")
        .args(["-c", "echo started; exec sleep 60"])
        .env(common::MARKER_VAR, &marker)
        .timeout(Duration::from_millis(300))
        .run()
        .await;
    match r {
        Err(Error::Timeout { timeout, output }) => {
            assert_eq!(timeout, Duration::from_millis(300));
            assert_eq!(output.stdout, b"started\n");
            assert_eq!(output.status.signal(), Some(libc::SIGTERM));
        }
        other => panic!("{other:?}"),
    }
    common::assert_all_gone(&marker, common::GUARD);
}

#[tokio::test]
async fn max_output_keeps_exactly_the_limit() {
    for limit in [0u64, 1, 1000, 200_000] {
        let r = Command::new("yes").max_output(limit).run().await;
        match r {
            Err(Error::MaxOutputExceeded { limit: l, output }) => {
                assert_eq!(l, limit);
                assert_eq!(output.stdout.len() as u64, limit);
                assert!(output.stdout.chunks(2).all(|c| c == b"y\n" || c == b"y"));
            }
            other => panic!("{limit}: {other:?}"),
        }
    }
    // Output exactly at the limit is fine.
    let out = Command::new("printf")
        .arg("12345")
        .max_output(5)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"12345");
}

#[tokio::test]
async fn stream_errors_carry_the_library_error() {
    let mut s = Command::new("yes").max_output(10).stream().await.unwrap();
    let mut total = 0;
    let err = loop {
        match s.next().await.unwrap() {
            Ok(b) => total += b.len(),
            Err(e) => break e,
        }
    };
    assert_eq!(total, 10);
    assert!(matches!(
        Error::from_io(&err),
        Some(Error::MaxOutputExceeded { limit: 10, .. })
    ));
    assert!(s.next().await.is_none());
    assert!(s.status().is_some());
}

#[test]
fn blocking_run_without_and_inside_a_runtime() {
    let out = Command::new("echo").arg("plain").run_blocking().unwrap();
    assert_eq!(out.stdout, b"plain\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt
        .block_on(async { Command::new("echo").arg("nested").run_blocking() })
        .unwrap();
    assert_eq!(out.stdout, b"nested\n");
}

#[tokio::test]
async fn child_that_closes_stdin_early_does_not_fail_the_run() {
    let big = vec![b'x'; 8 << 20];
    let out = Command::new("head")
        .args(["-c", "3"])
        .input(big)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"xxx");
    assert!(out.status.success());
}

/// A descriptor the owner leaked without close-on-exec reaches neither the
/// shepherd nor the child, and the shepherd holds none of our stdin/stdout.
/// Of the child's pipes it keeps only spare read ends of stdout and stderr
/// (so that stopping never closes them under the child), never stdin's
/// write end (end of file on stdin is the library's).
#[tokio::test]
async fn child_sees_only_its_three_standard_fds() {
    use std::os::fd::AsRawFd;
    let leaked = std::fs::File::open("/dev/zero").unwrap();
    unsafe { libc::fcntl(leaked.as_raw_fd(), libc::F_SETFD, 0) };
    let mut p = Command::new("sh")
        .args(["-c", "echo ready; exec sleep 60"])
        .spawn()
        .await
        .unwrap();
    assert_eq!(p.read().await.unwrap().as_deref(), Some(&b"ready\n"[..]));
    common::assert_only_standard_fds(p.os_pid() as i32);
    let shepherd = p.shepherd_pid();
    let shepherd_fds = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{shepherd}/fd"))
            .unwrap()
            .filter_map(|e| {
                let e = e.ok()?;
                let target = std::fs::read_link(e.path()).ok()?;
                Some(format!(
                    "{}->{}",
                    e.file_name().to_string_lossy(),
                    target.display()
                ))
            })
            .collect()
    };
    // Right after sending the pipe ends the shepherd closes its stdin copy;
    // give it that instant. A kept copy would never go away.
    assert!(
        common::eventually(common::GUARD, || shepherd_fds().len() == 7),
        "0-2, control socket, signalfd, spare stdout and stderr: {:?}",
        shepherd_fds()
    );
    let (stdin_end, stdout_end) = (p.take_stdin().unwrap(), p.take_stdout().unwrap());
    let inode = |fd: i32| {
        std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .display()
            .to_string()
    };
    let fds = shepherd_fds();
    // (fd 2 is the owner's stderr, a pipe too under a test runner.)
    let pipes: Vec<&String> = fds
        .iter()
        .filter(|f| f.contains("pipe:") && !f.starts_with("2->"))
        .collect();
    assert_eq!(pipes.len(), 2, "{fds:?}");
    assert!(
        !fds.iter()
            .any(|f| f.ends_with(&inode(stdin_end.as_raw_fd()))),
        "{fds:?}"
    );
    assert!(
        fds.iter()
            .any(|f| f.ends_with(&inode(stdout_end.as_raw_fd()))),
        "{fds:?}"
    );
    let fds = shepherd_fds();
    assert!(fds.contains(&"0->/dev/null".to_string()), "{fds:?}");
    assert!(fds.contains(&"1->/dev/null".to_string()), "{fds:?}");
    assert!(!fds.iter().any(|f| f.ends_with("/dev/zero")), "{fds:?}");
    p.kill(net_runner::Signal::Kill).unwrap();
    p.wait().await.unwrap();
    drop(leaked);
}

/// Signals the owner ignores (Rust ignores SIGPIPE) and the shepherd's own
/// ignores do not leak into the child: it starts with default dispositions.
#[tokio::test]
async fn child_starts_with_default_signal_dispositions() {
    let out = Command::new("grep")
        .args(["-E", "^Sig(Ign|Blk):", "/proc/self/status"])
        .run()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
}

/// The timeout holds even when nobody polls the stream: a slow consumer
/// does not keep the child alive past the deadline. (Multi-threaded: this
/// test blocks its own thread while it waits.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_fires_while_the_stream_is_not_polled() {
    let marker = common::marker();
    let mut s = Command::new("yes")
        .env(common::MARKER_VAR, &marker)
        .timeout(Duration::from_millis(200))
        .stream()
        .await
        .unwrap();
    s.next().await.unwrap().unwrap();
    // Not polling: the watchdog alone must stop the child.
    common::assert_all_gone(&marker, common::GUARD);
    let err = loop {
        match s.next().await.expect("the stream ends with the timeout") {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(Error::from_io(&err), Some(Error::Timeout { .. })),
        "{err:?}"
    );
}

/// `run`/`stream` without input give the child /dev/null as stdin (and here
/// as stderr): opened for the child, those must not leave a copy behind.
#[tokio::test]
async fn null_stdio_leaves_no_extra_fd_in_the_child() {
    let mut s = Command::new("sh")
        .args(["-c", "echo ready; exec sleep 60"])
        .stderr(Stderr::Discard)
        .stream()
        .await
        .unwrap();
    assert_eq!(s.next().await.unwrap().unwrap(), &b"ready\n"[..]);
    let pid = s.os_pid();
    common::assert_only_standard_fds(pid as i32);
}

/// A huge `max` is capped, not allocated.
#[tokio::test]
async fn read_chunk_with_a_huge_max_is_capped() {
    let mut p = Command::new("echo").arg("x").spawn().await.unwrap();
    let mut out = p.take_stdout().unwrap();
    assert_eq!(
        out.read_chunk(usize::MAX).await.unwrap().as_deref(),
        Some(&b"x\n"[..])
    );
    p.wait().await.unwrap();
}
