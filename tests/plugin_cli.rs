//! The `cairn` binary's plugin commands, run as a separate process.

use std::process::Command;

fn cairn(args: &[&str]) -> (bool, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).env("CAIRN_LOG", "warn").output().expect("run cairn");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn list_shows_the_four_default_plugins() {
    let (ok, out) = cairn(&["plugin", "list"]);
    assert!(ok, "{out}");
    for line in ["builtin:basic-auth", "builtin:trusted-peers", "builtin:cors-config", "builtin:balanced"] {
        assert!(out.contains(line), "{out}");
    }
}

#[test]
fn check_accepts_a_default_plugin() {
    let (ok, out) = cairn(&["plugin", "check", "builtin:basic-auth"]);
    assert!(ok, "{out}");
    assert!(out.contains("kind:     authorizer (world cairn:policy/authorizer-plugin@0.1.0"), "{out}");
    assert!(out.contains("allowed  cairn:policy/host@0.1.0"), "{out}");
    assert!(out.contains("verdict:  accepted by the sandbox"), "{out}");
}

#[test]
fn check_refuses_garbage_and_missing_files_with_non_zero_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").expect("write");
    let (ok, out) = cairn(&["plugin", "check", garbage.to_str().expect("utf-8 path")]);
    assert!(!ok, "{out}");
    assert!(out.contains("not a valid WebAssembly component"), "{out}");

    let (ok, out) = cairn(&["plugin", "check", "/nonexistent/policy.wasm"]);
    assert!(!ok, "{out}");
    assert!(out.contains("cannot read /nonexistent/policy.wasm"), "{out}");

    let (ok, out) = cairn(&["plugin", "check", "builtin:nope"]);
    assert!(!ok, "{out}");
    assert!(out.contains("unknown builtin plugin `nope`"), "{out}");
}

#[test]
fn check_refuses_a_sha256_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.wasm");
    std::fs::write(&path, b"\0asm\x0d\0\x01\0").expect("write");
    let (ok, out) = cairn(&["plugin", "check", path.to_str().expect("utf-8 path"), "--sha256", &"0".repeat(64)]);
    assert!(!ok, "{out}");
    assert!(out.contains("sha256 mismatch"), "{out}");
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["plugin", "check", "builtin:basic-auth"])
        .env("CAIRN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // the reader (`| head`) is gone before the first line
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "cairn panicked on a closed stdout:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
