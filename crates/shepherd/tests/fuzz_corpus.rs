//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the
//! very checks the fuzz targets run, so every corpus file — the seeds and
//! whatever a fuzzing run added — is a regression test of a plain
//! `cargo test`, on the stable toolchain.
//!
//! It compiles in the shepherd's control reader (`src/control.rs`,
//! `src/sys.rs`) and the fuzz crate's checks (`fuzz/src/*.rs`) by path,
//! exactly as the `shepherd_input` fuzz target does.
//!
//! The seeds are written by the ignored test at the end:
//! `cargo test -p netrunner-shepherd --test fuzz_corpus -- --ignored write_seed_corpus`

#[allow(dead_code)]
#[path = "../src/sys.rs"]
mod sys;

#[allow(dead_code)]
#[path = "../src/control.rs"]
mod control;

#[allow(dead_code)]
#[path = "../../../fuzz/src/lib.rs"]
mod checks;

#[path = "../../../fuzz/src/shepherd_control.rs"]
mod shepherd_control;

use std::path::{Path, PathBuf};

use net_runner_proto::{
    encode_frame, FromShepherd, Rlimit, RlimitResource, SpawnRequest, SpawnStage, StdioMode,
    Termination, ToShepherd, WindowSize, MAX_FRAME_LEN,
};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Every file of one target's corpus, with its name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "{}: expected the seed corpus, found {} files",
        dir.display(),
        files.len()
    );
    files
}

/// Runs `check` on each file, naming the file that fails.
fn replay(target: &str, check: impl Fn(&[u8])) {
    let files = corpus(target);
    for (name, data) in &files {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(data)));
        if let Err(panic) = outcome {
            eprintln!("fuzz/corpus/{target}/{name} fails");
            std::panic::resume_unwind(panic);
        }
    }
    println!("{target}: {} corpus files pass", files.len());
}

#[test]
fn frame_decoder_corpus() {
    replay("frame_decoder", checks::frame_stream);
}

#[test]
fn spawn_request_corpus() {
    replay("spawn_request", checks::spawn_request);
}

#[test]
fn shepherd_input_corpus() {
    replay("shepherd_input", |data| {
        let (lens, stream) = checks::split_input(data);
        let inputs = shepherd_control::through_shepherd(&checks::chunks(stream, &lens));
        checks::shepherd_session(stream, &inputs);
    });
}

// ---------------------------------------------------------------------------
// Seeds.

fn full_request() -> SpawnRequest {
    SpawnRequest {
        program: b"/bin/\xffsh".to_vec(),
        args: vec![b"-c".to_vec(), b"echo hi".to_vec(), Vec::new()],
        arg0: Some(b"zero".to_vec()),
        env: vec![b"PATH=/usr/bin:/bin".to_vec(), b"K\xe9=v\xff".to_vec()],
        cwd: Some(b"/tmp".to_vec()),
        stdin: StdioMode::Null,
        stdout: StdioMode::Pipe,
        stderr: StdioMode::ToStdout,
        kill_timeout_ms: 250,
        pipe_size: 65536,
        kill_leftovers: false,
        pty: Some(WindowSize { rows: 24, cols: 80 }),
        pty_raw: false,
        timeout_ms: None,
        stop_sequence: Vec::new(),
        uid: Some(65534),
        gid: Some(65534),
        groups: Some(vec![65534]),
        umask: Some(0o022),
        rlimits: vec![Rlimit {
            resource: RlimitResource::Nofile,
            soft: 256,
            hard: u64::MAX,
        }],
        no_new_privs: true,
        nice: Some(5),
        cgroup: None,
        passed_stdio: 0,
        foreground: false,
    }
}

fn to_wire(msgs: &[ToShepherd]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out
}

fn from_wire(msgs: &[FromShepherd]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out
}

/// A stream seed for the targets that take cut lengths first.
fn cut(lens: &[u8], stream: &[u8]) -> Vec<u8> {
    assert!(lens.len() < 8 && lens.iter().all(|&l| l > 0));
    let mut out = vec![lens.len() as u8];
    out.extend(lens.iter().map(|l| l - 1));
    out.extend_from_slice(stream);
    out
}

fn session() -> Vec<ToShepherd> {
    vec![
        ToShepherd::hello(),
        ToShepherd::Spawn(full_request()),
        ToShepherd::Signal { signal: 15 },
        ToShepherd::SetWindowSize(WindowSize {
            rows: 50,
            cols: 132,
        }),
        ToShepherd::Shutdown,
    ]
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, kind, payload);
    out
}

fn stream_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let hello = to_wire(&[ToShepherd::hello()]);
    let hello_kind = hello[4];
    let mut bad_magic = hello.clone();
    bad_magic[5] ^= 0xff;
    let mut oversized = ((MAX_FRAME_LEN + 1) as u32).to_le_bytes().to_vec();
    oversized.push(1);
    let mut truncated = to_wire(&session());
    truncated.pop();
    vec![
        ("to_session", cut(&[], &to_wire(&session()))),
        (
            "to_session_cut_3_1_7",
            cut(&[3, 1, 7], &to_wire(&session())),
        ),
        ("to_session_byte_by_byte", cut(&[1], &to_wire(&session()))),
        (
            "from_session",
            cut(
                &[5, 64],
                &from_wire(&[
                    FromShepherd::hello(),
                    FromShepherd::Spawned { pid: 4242, fds: 3 },
                    FromShepherd::Exited(net_runner_proto::ExitReport {
                        termination: Termination::Signaled {
                            signal: 9,
                            core_dumped: true,
                        },
                        user_time_us: 1,
                        system_time_us: 2,
                        max_rss_kib: 3,
                        stopped: None,
                    }),
                    FromShepherd::SpawnFailed {
                        stage: SpawnStage::Chdir,
                        errno: 2,
                    },
                    FromShepherd::Error {
                        message: "no \u{fffd}".into(),
                    },
                ]),
            ),
        ),
        ("empty_frame", cut(&[], &[0, 0, 0, 0, 7])),
        ("oversized_length", cut(&[2], &oversized)),
        ("truncated_session", cut(&[], &truncated)),
        ("unknown_kind", cut(&[], &frame(0xee, b"??"))),
        ("hello_bad_magic", cut(&[], &bad_magic)),
        (
            "hello_other_version",
            cut(
                &[],
                &frame(hello_kind, &[b'N', b'R', b'S', b'H', 0xe7, 0x03]),
            ),
        ),
        (
            "spawn_before_hello",
            cut(&[], &to_wire(&[ToShepherd::Spawn(full_request())])),
        ),
        (
            "hello_spawn_then_hello",
            cut(
                &[9],
                &to_wire(&[
                    ToShepherd::hello(),
                    ToShepherd::Spawn(SpawnRequest::new(b"true".to_vec())),
                    ToShepherd::hello(),
                ]),
            ),
        ),
        ("hello_only", cut(&[2, 2], &hello)),
    ]
}

fn spawn_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let default = SpawnRequest::new(b"true".to_vec()).encode();
    let mut unknown_tag = default.clone();
    unknown_tag.extend_from_slice(&[200, 0, 0, 0, 0]);
    let mut trailing = default.clone();
    // A stdio field (tag 5) one byte too long.
    trailing.extend_from_slice(&[5, 4, 0, 0, 0, 1, 1, 1, 1]);
    let mut bad_stdio = default.clone();
    bad_stdio.extend_from_slice(&[5, 3, 0, 0, 0, 3, 1, 1]);
    let mut bad_bool = default.clone();
    bad_bool.extend_from_slice(&[8, 1, 0, 0, 0, 2]);
    let mut truncated = full_request().encode();
    truncated.truncate(truncated.len() - 3);
    vec![
        ("default", default),
        ("full", full_request().encode()),
        ("unknown_tag", unknown_tag),
        ("stdio_trailing_byte", trailing),
        ("stdin_to_stdout", bad_stdio),
        ("kill_leftovers_2", bad_bool),
        ("truncated", truncated),
        ("no_program", vec![7, 4, 0, 0, 0, 0, 16, 0, 0]),
        ("huge_length", vec![1, 0xff, 0xff, 0xff, 0xff, b'x']),
    ]
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus"]
fn write_seed_corpus() {
    let mut targets = vec![
        ("frame_decoder", stream_seeds()),
        ("shepherd_input", stream_seeds()),
    ];
    targets.push(("spawn_request", spawn_seeds()));
    for (target, seeds) in targets {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, data) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
}
