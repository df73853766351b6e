//! The std-like builder (issue 9): `&mut` use in loops, templates that are
//! cloned and overridden, one-shot inputs, and the stream helpers that need
//! no extra crate (chunks, lines, `AsyncRead`).

mod common;

use std::time::Duration;

use bytes::Bytes;
use net_runner::{Command, Error};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn builder_works_step_by_step_in_a_loop() {
    let mut cmd = Command::new("printf");
    cmd.arg("%s,");
    for word in ["a", "b", "c"] {
        cmd.arg(word);
    }
    for (k, v) in [("X", "1"), ("Y", "2")] {
        cmd.env(k, v);
    }
    if cmd.get_args().len() > 1 {
        cmd.timeout(Duration::from_secs(30));
    }
    assert_eq!(cmd.output().await.unwrap().stdout, b"a,b,c,");
    // The same command runs again, unchanged.
    assert_eq!(cmd.run().await.unwrap().stdout, b"a,b,c,");
    assert_eq!(cmd.get_program(), "printf");
    assert_eq!(cmd.get_envs().count(), 2);
}

#[tokio::test]
async fn chaining_on_a_temporary_still_works() {
    let out = Command::new("echo").arg("x").run().await.unwrap();
    assert_eq!(out.stdout, b"x\n");
    let status = Command::new("true").status().await.unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_cloned_template_is_overridden_at_the_call_site() {
    let mut template = Command::new("sh");
    template
        .args(["-c", "echo $WHO in $(pwd)"])
        .env("WHO", "template")
        .current_dir("/");
    let mut call = template.clone();
    call.env("WHO", "caller").current_dir("/tmp");
    let (a, b) = tokio::join!(template.output(), call.output());
    assert_eq!(a.unwrap().stdout, b"template in /\n");
    assert_eq!(b.unwrap().stdout, b"caller in /tmp\n");
    // The template is untouched by its clone's changes.
    assert_eq!(template.get_current_dir(), Some(std::path::Path::new("/")));
}

#[tokio::test]
async fn run_futures_own_what_they_need() {
    let fut = {
        let mut cmd = Command::new("echo");
        cmd.arg("spawned");
        cmd.output()
        // `cmd` is dropped here; the future is 'static.
    };
    let out = tokio::spawn(fut).await.unwrap().unwrap();
    assert_eq!(out.stdout, b"spawned\n");
}

#[tokio::test]
async fn byte_input_feeds_every_run_and_every_clone() {
    let mut cmd = Command::new("cat");
    cmd.input("same");
    let clone = cmd.clone();
    for c in [&cmd, &clone, &cmd] {
        assert_eq!(c.output().await.unwrap().stdout, b"same");
    }
}

#[tokio::test]
async fn one_shot_input_is_taken_by_the_first_run_of_any_clone() {
    let parts = futures_util::stream::iter([Ok(Bytes::from("once"))]);
    let mut cmd = Command::new("cat");
    cmd.input_stream(parts);
    let clone = cmd.clone();
    assert_eq!(clone.output().await.unwrap().stdout, b"once");
    for result in [cmd.output().await.map(drop), clone.spawn().await.map(drop)] {
        assert!(matches!(result, Err(Error::InputConsumed)), "{result:?}");
    }
    // A clone given its own input runs again.
    let mut again = cmd.clone();
    again.input_reader(&b"reader"[..]);
    assert_eq!(again.output().await.unwrap().stdout, b"reader");
    assert!(matches!(cmd.output().await, Err(Error::InputConsumed)));
}

#[tokio::test]
async fn status_reports_the_exit_without_collecting() {
    let status = Command::new("sh")
        .args(["-c", "echo to-stdout; echo to-stderr >&2; exit 7"])
        .status()
        .await
        .unwrap();
    assert_eq!(status.code(), Some(7));
    let err = Command::new("sleep")
        .arg("10")
        .timeout(Duration::from_millis(100))
        .status()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn lines_strip_terminators_and_keep_the_last_line() {
    let mut s = Command::new("printf")
        .arg("a\\nb\\r\\n\\nlast")
        .stream()
        .await
        .unwrap();
    let mut lines = Vec::new();
    while let Some(line) = s.next_line().await.unwrap() {
        lines.push(line);
    }
    assert_eq!(lines, ["a", "b", "", "last"]);
    assert!(s.status().unwrap().success());
}

#[tokio::test]
async fn lines_split_across_many_small_chunks() {
    // Each byte in its own write, so lines span chunks.
    let script = "for i in 1 2 3; do printf 'l'; sleep 0.01; printf \"$i\\n\"; done";
    let mut lines = Command::new("sh")
        .args(["-c", script])
        .stream()
        .await
        .unwrap()
        .lines();
    let mut got = Vec::new();
    while let Some(l) = lines.next_line().await.unwrap() {
        got.push(l);
    }
    assert_eq!(got, ["l1", "l2", "l3"]);
}

#[tokio::test]
async fn a_line_over_the_limit_is_an_error_and_is_skipped() {
    let mut s = Command::new("sh")
        .args([
            "-c",
            "echo ok; head -c 100000 /dev/zero | tr '\\0' x; echo; echo after",
        ])
        .stream()
        .await
        .unwrap();
    s.set_max_line_length(1000);
    assert_eq!(s.next_line().await.unwrap().as_deref(), Some("ok"));
    let err = s.next_line().await.unwrap_err();
    assert!(matches!(
        Error::from_io(&err),
        Some(Error::LineTooLong { limit: 1000 })
    ));
    assert_eq!(s.next_line().await.unwrap().as_deref(), Some("after"));
    assert_eq!(s.next_line().await.unwrap(), None);
}

#[tokio::test]
async fn a_line_exactly_at_the_limit_passes_with_crlf() {
    let mut s = Command::new("printf")
        .arg("abcd\\r\\nabcde\\n")
        .stream()
        .await
        .unwrap();
    s.set_max_line_length(4);
    assert_eq!(s.next_line().await.unwrap().as_deref(), Some("abcd"));
    assert!(s.next_line().await.is_err());
    assert_eq!(s.next_line().await.unwrap(), None);
}

#[tokio::test]
async fn invalid_utf8_is_an_error_for_string_lines_only() {
    let cmd = Command::new("printf").arg("\\377\\n").clone();
    let mut s = cmd.stream().await.unwrap();
    let err = s.next_line().await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    let mut s = cmd.stream().await.unwrap().byte_lines();
    assert_eq!(s.next_line().await.unwrap().as_deref(), Some(&b"\xff"[..]));
}

#[tokio::test]
async fn chunks_lines_and_async_read_share_one_buffer() {
    let mut s = Command::new("printf")
        .arg("one\\ntwo\\nthree\\n")
        .stream()
        .await
        .unwrap();
    assert_eq!(s.next_line().await.unwrap().as_deref(), Some("one"));
    let mut two = [0u8; 2];
    s.read_exact(&mut two).await.unwrap();
    assert_eq!(&two, b"tw");
    let mut rest = String::new();
    s.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "o\nthree\n");
    assert!(s.next_chunk().await.unwrap().is_none());
}

#[tokio::test]
async fn deprecated_cwd_still_works() {
    #[allow(deprecated)]
    let out = Command::new("pwd").cwd("/").run().await.unwrap();
    assert_eq!(out.stdout, b"/\n");
}
