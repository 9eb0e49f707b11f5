#![no_main]
//! libFuzzer entry for cairn_fuzz_targets::go_duration.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_targets::go_duration(data));
