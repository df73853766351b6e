//! The shepherd's own control-socket reader (its `control.rs` and `sys.rs`,
//! compiled in here), fed arbitrary bytes through a socket pair in
//! arbitrary chunks, checked against the decoder and the handshake rules.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/shepherd/src/sys.rs"]
mod sys;

#[allow(dead_code)]
#[path = "../../crates/shepherd/src/control.rs"]
mod control;

#[path = "../src/shepherd_control.rs"]
mod shepherd_control;

fuzz_target!(|data: &[u8]| {
    let (lens, stream) = netrunner_fuzz::split_input(data);
    let inputs = shepherd_control::through_shepherd(&netrunner_fuzz::chunks(stream, &lens));
    netrunner_fuzz::shepherd_session(stream, &inputs);
});
