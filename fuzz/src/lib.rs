//! The checks behind the fuzz targets.
//!
//! Shared with the ordinary test that replays the committed corpus
//! (`crates/shepherd/tests/fuzz_corpus.rs` compiles this file in with
//! `#[path]`), so that every corpus file is also a regression test of a
//! plain `cargo test`. Pure: no I/O and no `crate::` paths (it is compiled
//! both as a crate root and as a module). Every function panics when an
//! invariant breaks; that is what the fuzzer looks for.

use net_runner_proto::{
    check_version, DecodeError, Frame, FrameDecoder, FromShepherd, SpawnRequest, StdioMode,
    ToShepherd,
};

/// One input as the shepherd's control reader produces it: `None` is the
/// owner hanging up.
pub type Input = Option<Result<ToShepherd, DecodeError>>;

/// Splits fuzz input into the places to cut the stream and the stream:
/// byte 0 says how many one-byte chunk lengths follow (0–7); the stream is
/// the rest. This lets the fuzzer choose how reads split the bytes.
pub fn split_input(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = usize::from(n % 8).min(rest.len());
    let (lens, stream) = rest.split_at(n);
    (lens.iter().map(|&l| usize::from(l) + 1).collect(), stream)
}

/// Cuts `stream` into chunks of the given lengths, cycling through them;
/// one chunk when there are none.
pub fn chunks<'a>(stream: &'a [u8], lens: &[usize]) -> Vec<&'a [u8]> {
    if lens.is_empty() {
        return vec![stream];
    }
    let mut out = Vec::new();
    let mut rest = stream;
    for &len in lens.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(len.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// What a [`FrameDecoder`] made of a stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Whole frames, in order.
    pub frames: Vec<Frame>,
    /// The framing error that stopped decoding, if any.
    pub error: Option<DecodeError>,
    /// Bytes buffered but not (yet) a frame, when no error stopped it.
    pub pending: usize,
}

/// Feeds `chunks` to a fresh decoder, taking every frame after each push.
pub fn decode_chunks(chunks: &[&[u8]]) -> Decoded {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    // An error is final: asking again gives it again.
                    assert_eq!(decoder.next_frame(), Err(e.clone()));
                    let _ = e.to_string();
                    return Decoded {
                        frames,
                        error: Some(e),
                        pending: 0,
                    };
                }
            }
        }
    }
    Decoded {
        frames,
        error: None,
        pending: decoder.pending(),
    }
}

/// Target `frame_decoder`: any bytes, cut anywhere, decode to the same
/// frames (or the same error) as in one piece, account for every byte, and
/// every frame that decodes as a message of either direction re-encodes to
/// a frame that decodes to the same message.
pub fn frame_stream(data: &[u8]) {
    let (lens, stream) = split_input(data);
    let whole = decode_chunks(&[stream]);
    let pieces = decode_chunks(&chunks(stream, &lens));
    assert_eq!(whole, pieces, "cutting the stream changed the frames");
    if whole.error.is_none() {
        let used: usize = whole.frames.iter().map(|f| 5 + f.payload.len()).sum();
        assert_eq!(used + whole.pending, stream.len(), "bytes lost or invented");
    }
    for frame in &whole.frames {
        let _ = to_shepherd(frame);
        let _ = from_shepherd(frame);
    }
}

/// Decodes `frame` as a message to the shepherd; if it is one, checks
/// that it round-trips.
pub fn to_shepherd(frame: &Frame) -> Result<ToShepherd, DecodeError> {
    let msg = ToShepherd::decode(frame);
    match &msg {
        Ok(m) => {
            let mut wire = Vec::new();
            m.encode(&mut wire);
            let again = ToShepherd::decode(&single_frame(&wire)).expect("own encoding decodes");
            assert_eq!(&again, m);
            let mut wire2 = Vec::new();
            again.encode(&mut wire2);
            assert_eq!(wire, wire2, "encoding is not canonical");
            if let ToShepherd::Spawn(req) = m {
                spawn_request_invariants(req);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    msg
}

/// Decodes `frame` as a message from the shepherd; if it is one, checks
/// that it round-trips.
pub fn from_shepherd(frame: &Frame) -> Result<FromShepherd, DecodeError> {
    let msg = FromShepherd::decode(frame);
    match &msg {
        Ok(m) => {
            let mut wire = Vec::new();
            m.encode(&mut wire);
            let again = FromShepherd::decode(&single_frame(&wire)).expect("own encoding decodes");
            assert_eq!(&again, m);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    msg
}

/// The one frame `wire` holds, nothing before or after it.
fn single_frame(wire: &[u8]) -> Frame {
    let decoded = decode_chunks(&[wire]);
    assert!(decoded.error.is_none(), "{:?}", decoded.error);
    assert_eq!(decoded.pending, 0);
    assert_eq!(decoded.frames.len(), 1);
    decoded.frames.into_iter().next().unwrap()
}

fn spawn_request_invariants(req: &SpawnRequest) {
    assert_ne!(req.stdin, StdioMode::ToStdout);
    assert_ne!(req.stdout, StdioMode::ToStdout);
}

/// Target `spawn_request`: a spawn payload that decodes re-encodes
/// canonically and to the same request.
pub fn spawn_request(data: &[u8]) {
    match SpawnRequest::decode(data) {
        Ok(req) => {
            spawn_request_invariants(&req);
            let bytes = req.encode();
            let again = SpawnRequest::decode(&bytes).expect("own encoding decodes");
            assert_eq!(again, req);
            assert_eq!(again.encode(), bytes, "encoding is not canonical");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// What the shepherd reads from `stream` when it is fed in one piece,
/// according to the decoder alone: every frame as a message, then the
/// framing error or the hang-up, cut after the first error (where the
/// shepherd stops listening).
pub fn expected_inputs(stream: &[u8]) -> Vec<Input> {
    let decoded = decode_chunks(&[stream]);
    let mut inputs: Vec<Input> = decoded
        .frames
        .iter()
        .map(|f| Some(ToShepherd::decode(f)))
        .collect();
    inputs.push(decoded.error.map(Err));
    until_first_stop(inputs)
}

/// Cuts after the first error or hang-up.
pub fn until_first_stop(mut inputs: Vec<Input>) -> Vec<Input> {
    if let Some(i) = inputs.iter().position(|i| !matches!(i, Some(Ok(_)))) {
        inputs.truncate(i + 1);
    }
    inputs
}

/// How the shepherd's handshake ends (mirrors `read_spawn_request` in
/// `crates/shepherd/src/main.rs`: `Hello` with our version, then `Spawn`).
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The owner hung up first.
    OwnerLeft,
    /// Refused: a protocol error, a version mismatch, or a message out of
    /// order.
    Refused,
    /// The child would be started; this many inputs follow the `Spawn`.
    Spawn(Box<SpawnRequest>, usize),
}

/// Runs the handshake rules over `inputs`.
pub fn handshake(inputs: &[Input]) -> Handshake {
    let mut hello = false;
    for (i, input) in inputs.iter().enumerate() {
        match input {
            None => return Handshake::OwnerLeft,
            Some(Err(_)) => return Handshake::Refused,
            Some(Ok(ToShepherd::Hello { version })) if !hello => {
                if check_version(*version).is_err() {
                    return Handshake::Refused;
                }
                hello = true;
            }
            Some(Ok(ToShepherd::Spawn(req))) if hello => {
                return Handshake::Spawn(Box::new(req.clone()), inputs.len() - i - 1)
            }
            Some(Ok(_)) => return Handshake::Refused,
        }
    }
    Handshake::OwnerLeft
}

/// Target `shepherd_input`: what the shepherd's own reader made of the
/// stream (`actual`, read from a socket in the fuzzer's chunks) is what the
/// decoder alone makes of it in one piece; a `Spawn` is reached only
/// through a valid `Hello`; every message round-trips.
pub fn shepherd_session(stream: &[u8], actual: &[Input]) {
    let expected = expected_inputs(stream);
    assert_eq!(actual, &expected[..], "the shepherd's reader disagrees");
    if let Handshake::Spawn(req, _) = handshake(actual) {
        spawn_request_invariants(&req);
        assert!(matches!(
            actual.first(),
            Some(Some(Ok(ToShepherd::Hello { .. })))
        ));
    }
    for input in actual.iter().flatten().flatten() {
        let mut wire = Vec::new();
        input.encode(&mut wire);
        let frame = single_frame(&wire);
        assert_eq!(&to_shepherd(&frame).unwrap(), input);
    }
}
