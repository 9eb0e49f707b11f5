#![no_main]
//! libFuzzer entry for cairn_fuzz_targets::peer_rpc.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_targets::peer_rpc(data));
