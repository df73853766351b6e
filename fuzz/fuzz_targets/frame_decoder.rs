//! The frame decoder and both directions' message decoders, on arbitrary
//! bytes cut at arbitrary points.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netrunner_fuzz::frame_stream(data));
