//! The spawn request's tagged-field decoder on arbitrary payloads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netrunner_fuzz::spawn_request(data));
