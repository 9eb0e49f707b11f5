#![no_main]
//! libFuzzer entry for cairn_fuzz_targets::multipart_add.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_targets::multipart_add(data));
