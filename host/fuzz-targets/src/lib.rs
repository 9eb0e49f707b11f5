//! Cairn's fuzz targets: one `pub fn <name>(data: &[u8])` per parser of untrusted bytes. Each
//! feeds the bytes to the parser's public entry point and asserts what must hold for every input
//! (no panic, and where it is cheap a round trip or a streaming invariant); a failed assertion is
//! a finding like a panic.
//!
//! Two drivers call them: [`runner`] (stable toolchain, `cargo test -p cairn-fuzz-targets`,
//! bounded by `CAIRN_FUZZ_SECS`) and libFuzzer through the cargo-fuzz crate in `fuzz/`.
//! Seed corpora live in `corpus/<target>/`; `corpus/<target>/crashes/` holds known findings
//! in code owned elsewhere, which the runner does not replay.
//!
//! Not covered here (see fuzz/README.md): service.json (its parser is in the `cairn` binary
//! crate, which has no library target) and JWTs (the basic-auth guest plugin's workspace).

pub mod runner;
mod targets;

pub use targets::{car, car_v1, crdt, dag_pb, go_duration, multipart_add, peer_rpc, pin_query, pinsvc_json, teardown};

/// A fuzz target: feeds one input to a parser and panics on a finding.
pub type Target = fn(&[u8]);

/// Every target by name, in the order the runner's tests list them.
pub const TARGETS: &[(&str, Target)] = &[
    ("car", car),
    ("crdt", crdt),
    ("dag_pb", dag_pb),
    ("go_duration", go_duration),
    ("multipart_add", multipart_add),
    ("peer_rpc", peer_rpc),
    ("pin_query", pin_query),
    ("pinsvc_json", pinsvc_json),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
