//! Frames survive any cut of the byte stream: property tests over random
//! messages, split and coalesced at random boundaries.

use net_runner_proto::*;
use proptest::prelude::*;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn stdio() -> impl Strategy<Value = StdioMode> {
    prop_oneof![
        Just(StdioMode::Null),
        Just(StdioMode::Pipe),
        Just(StdioMode::Inherit)
    ]
}

fn spawn_request() -> impl Strategy<Value = SpawnRequest> {
    (
        bytes(),
        proptest::collection::vec(bytes(), 0..5),
        proptest::collection::vec(bytes(), 0..5),
        proptest::option::of(bytes()),
        (stdio(), stdio(), stdio()),
        any::<u64>(),
        any::<u32>(),
        any::<bool>(),
        proptest::option::of((any::<u16>(), any::<u16>())),
        (
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(stop_step(), 0..4),
        ),
    )
        .prop_map(
            |(program, args, env, cwd, (i, o, e), kt, ps, kl, pty, (to, stop))| {
                let mut r = SpawnRequest::new(program);
                r.args = args;
                r.env = env;
                r.cwd = cwd;
                r.stdin = i;
                r.stdout = o;
                r.stderr = e;
                r.kill_timeout_ms = kt;
                r.pipe_size = ps;
                r.kill_leftovers = kl;
                r.pty = pty.map(|(rows, cols)| WindowSize { rows, cols });
                r.timeout_ms = to;
                r.stop_sequence = stop;
                r
            },
        )
}

fn stop_step() -> impl Strategy<Value = StopStep> {
    (
        prop_oneof![
            any::<i32>().prop_map(StopAction::Signal),
            Just(StopAction::CloseStdin)
        ],
        any::<u64>(),
    )
        .prop_map(|(action, wait_ms)| StopStep { action, wait_ms })
}

fn to_shepherd() -> impl Strategy<Value = ToShepherd> {
    prop_oneof![
        any::<u16>().prop_map(|version| ToShepherd::Hello { version }),
        spawn_request().prop_map(ToShepherd::Spawn),
        any::<i32>().prop_map(|signal| ToShepherd::Signal { signal }),
        Just(ToShepherd::Shutdown),
        (any::<u16>(), any::<u16>())
            .prop_map(|(rows, cols)| ToShepherd::SetWindowSize(WindowSize { rows, cols })),
        (1u8..=2).prop_map(|fd| ToShepherd::ReleaseOutput { fd }),
    ]
}

fn from_shepherd() -> impl Strategy<Value = FromShepherd> {
    let stage = prop_oneof![
        Just(SpawnStage::Stdio),
        Just(SpawnStage::Fork),
        Just(SpawnStage::Chdir),
        Just(SpawnStage::Setup),
        Just(SpawnStage::Exec),
    ];
    let termination = prop_oneof![
        any::<i32>().prop_map(Termination::Exited),
        (any::<i32>(), any::<bool>()).prop_map(|(signal, core_dumped)| Termination::Signaled {
            signal,
            core_dumped
        }),
    ];
    let stopped = proptest::option::of(prop_oneof![
        Just(StopCause::Deadline),
        Just(StopCause::Requested),
        Just(StopCause::OwnerGone),
        Just(StopCause::Signalled),
    ]);
    prop_oneof![
        any::<u16>().prop_map(|version| FromShepherd::Hello { version }),
        (any::<i32>(), any::<u8>()).prop_map(|(pid, fds)| FromShepherd::Spawned { pid, fds }),
        (stage, any::<i32>()).prop_map(|(stage, errno)| FromShepherd::SpawnFailed { stage, errno }),
        (
            termination,
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            stopped
        )
            .prop_map(|(t, u, s, m, stopped)| {
                FromShepherd::Exited(ExitReport {
                    termination: t,
                    user_time_us: u,
                    system_time_us: s,
                    max_rss_kib: m,
                    stopped,
                })
            }),
        "[a-z ]{0,30}".prop_map(|message| FromShepherd::Error { message }),
        Just(FromShepherd::CloseStdin),
        any::<i32>().prop_map(|signal| FromShepherd::ChildStopped { signal }),
        Just(FromShepherd::ChildContinued),
        ("[a-z/]{0,20}", "[a-z/]{0,20}").prop_map(|(p, i)| FromShepherd::InterpreterNotFound {
            program: p.into_bytes(),
            interpreter: i.into_bytes(),
        }),
    ]
}

/// Feeds `wire` to a decoder in pieces cut at `cuts` and returns all frames.
fn decode_in_pieces(wire: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    let mut d = FrameDecoder::new();
    let mut frames = Vec::new();
    for w in points.windows(2) {
        d.push(&wire[w[0]..w[1]]);
        while let Some(f) = d.next_frame().expect("valid stream") {
            frames.push(f);
        }
    }
    assert_eq!(d.pending(), 0);
    frames
}

proptest! {
    #[test]
    fn to_shepherd_survives_any_split(
        msgs in proptest::collection::vec(to_shepherd(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for m in &msgs { m.encode(&mut wire); }
        let frames = decode_in_pieces(&wire, &cuts);
        let back: Vec<ToShepherd> = frames.iter().map(|f| ToShepherd::decode(f).unwrap()).collect();
        prop_assert_eq!(back, msgs);
    }

    #[test]
    fn from_shepherd_survives_any_split(
        msgs in proptest::collection::vec(from_shepherd(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for m in &msgs { m.encode(&mut wire); }
        let frames = decode_in_pieces(&wire, &cuts);
        let back: Vec<FromShepherd> = frames.iter().map(|f| FromShepherd::decode(f).unwrap()).collect();
        prop_assert_eq!(back, msgs);
    }

    /// Arbitrary bytes never panic the decoder or the message parsers.
    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut d = FrameDecoder::new();
        d.push(&data);
        while let Ok(Some(f)) = d.next_frame() {
            let _ = ToShepherd::decode(&f);
            let _ = FromShepherd::decode(&f);
        }
    }
}
