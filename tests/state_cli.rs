//! `cairn state export|import|cleanup` as processes, on folders made by `cairn init`.

mod common;

use std::path::Path;

use common::{Daemon, START, init, run};

/// Three pins exactly as IPFS Cluster's `state export` writes them (one NDJSON line each).
const PINS: [&str; 3] = [
    r#"{"replication_factor_min":2,"replication_factor_max":3,"name":"my pin","mode":"recursive","shard_size":104857600,"user_allocations":null,"expire_at":"0001-01-01T00:00:00Z","metadata":{"a":"1","b":"two"},"pin_update":null,"origins":["/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"],"cid":"QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco","type":"pin","allocations":["12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA","QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"],"max_depth":-1,"reference":null,"timestamp":"2024-03-05T10:11:12.123456789+01:00"}"#,
    r#"{"replication_factor_min":-1,"replication_factor_max":-1,"name":"","mode":"direct","shard_size":0,"user_allocations":["12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"],"expire_at":"2030-01-02T03:04:05.5Z","metadata":null,"pin_update":"QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco","origins":[],"cid":"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi","type":"clusterdag-pin","allocations":[],"max_depth":0,"reference":"QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco","timestamp":"2024-03-05T09:11:12Z"}"#,
    r#"{"replication_factor_min":1,"replication_factor_max":1,"name":"third","mode":"recursive","shard_size":104857600,"user_allocations":null,"expire_at":"0001-01-01T00:00:00Z","metadata":null,"pin_update":null,"origins":[],"cid":"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG","type":"pin","allocations":["12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"],"max_depth":-1,"reference":null,"timestamp":"2024-03-05T09:11:12Z"}"#,
];

fn write_pins(path: &Path, lines: &[&str]) {
    std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("write ndjson");
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn expected() -> Vec<String> {
    let mut lines: Vec<String> = PINS.iter().map(|l| (*l).to_owned()).collect();
    lines.sort();
    lines
}

#[test]
fn export_of_an_empty_store_prints_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let (ok, out, err) = run(&dir, &["state", "export"]);
    assert!(ok, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("exported 0 pins"), "{err}");
}

#[test]
fn import_then_export_reproduces_cluster_pins() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let file = tmp.path().join("pins.ndjson");
    write_pins(&file, &PINS);

    let (ok, _, err) = run(&dir, &["state", "import", file.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    assert!(err.contains("imported 3 pins"), "{err}");
    assert!(dir.join("pinset.redb").is_file());
    assert!(!dir.join("pinset.redb.import").exists(), "staging file left behind");

    let (ok, out, err) = run(&dir, &["state", "export"]);
    assert!(ok, "{err}");
    assert_eq!(sorted_lines(&out), expected(), "export must be byte-for-byte IPFS Cluster's form");

    // -f writes the same to a file.
    let exported = tmp.path().join("out.ndjson");
    let (ok, out, err) = run(&dir, &["state", "export", "-f", exported.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    assert_eq!(out, "");
    assert_eq!(sorted_lines(&std::fs::read_to_string(&exported).expect("read export")), expected());
}

#[test]
fn a_bad_line_is_named_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let file = tmp.path().join("bad.ndjson");
    write_pins(&file, &[PINS[0], PINS[1], r#"{"cid":"not a cid"}"#, PINS[2]]);

    let (ok, _, err) = run(&dir, &["state", "import", file.to_str().expect("utf-8")]);
    assert!(!ok, "a bad line must fail the import");
    assert!(err.contains("line 3"), "the error names the line: {err}");
    assert!(err.contains("bad.ndjson"), "the error names the file: {err}");

    let (ok, out, err) = run(&dir, &["state", "export"]);
    assert!(ok, "{err}");
    assert_eq!(out, "", "nothing from the failed import is stored");
}

#[test]
fn import_into_a_non_empty_store_needs_force_which_replaces_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let first = tmp.path().join("first.ndjson");
    write_pins(&first, &PINS[..2]);
    let second = tmp.path().join("second.ndjson");
    write_pins(&second, &PINS[2..]);

    let (ok, _, err) = run(&dir, &["state", "import", first.to_str().expect("utf-8")]);
    assert!(ok, "{err}");

    let (ok, _, err) = run(&dir, &["state", "import", second.to_str().expect("utf-8")]);
    assert!(!ok, "import into a non-empty pinset must refuse without --force");
    assert!(err.contains("already has 2 pins") && err.contains("--force"), "{err}");
    let (_, out, _) = run(&dir, &["state", "export"]);
    assert_eq!(out.lines().count(), 2, "the refused import changed nothing");

    let (ok, _, err) = run(&dir, &["state", "import", "--force", second.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    let (_, out, _) = run(&dir, &["state", "export"]);
    assert_eq!(out, format!("{}\n", PINS[2]), "--force replaces the pinset, as IPFS Cluster's import wipes it");
}

#[test]
fn cleanup_force_removes_the_pinset_and_without_it_asks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let file = tmp.path().join("pins.ndjson");
    write_pins(&file, &PINS);
    let (ok, _, err) = run(&dir, &["state", "import", file.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    let pinset = dir.join("pinset.redb");
    assert!(pinset.is_file());

    // Without --force it asks; anything but yes (here: end of input) keeps the file.
    let out = common::cairn(&dir)
        .args(["state", "cleanup"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run cleanup");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("aborted"));
    assert!(pinset.is_file(), "an unconfirmed cleanup keeps the pinset");

    let (ok, _, err) = run(&dir, &["state", "cleanup", "--force"]);
    assert!(ok, "{err}");
    assert!(!pinset.exists(), "cleanup --force removes the pinset file");
    let (ok, out, err) = run(&dir, &["state", "export"]);
    assert!(ok, "{err}");
    assert_eq!(out, "");
}

#[test]
fn state_commands_refuse_while_the_folder_is_locked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let file = tmp.path().join("pins.ndjson");
    write_pins(&file, &PINS);

    // Hold the lock exactly as a running daemon does.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("cluster.lock"))
        .expect("open lock");
    lock.try_lock().expect("take lock");
    for args in [
        vec!["state", "export"],
        vec!["state", "import", file.to_str().expect("utf-8")],
        vec!["state", "cleanup", "--force"],
    ] {
        let (ok, out, err) = run(&dir, &args);
        assert!(!ok, "{args:?} must refuse while the folder is locked");
        assert_eq!(out, "");
        assert!(err.contains("stop the daemon first") && err.contains("already running"), "{args:?}: {err}");
    }
    assert!(!dir.join("pinset.redb").exists(), "nothing was written while locked");
    drop(lock);

    let (ok, _, err) = run(&dir, &["state", "import", file.to_str().expect("utf-8")]);
    assert!(ok, "once the lock is released the import runs: {err}");
}

#[test]
fn state_commands_refuse_while_a_daemon_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let mut daemon = Daemon::start(&dir);
    daemon.wait_for(&["cairn daemon ready"], START);
    let (ok, _, err) = run(&dir, &["state", "export"]);
    assert!(!ok, "export must refuse while a daemon runs");
    assert!(err.contains("another cairn daemon is already running"), "{err}");
}

#[test]
fn progress_lines_are_plain_off_a_terminal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    // 10 001 distinct pins: one plain progress line, then the total.
    let file = tmp.path().join("many.ndjson");
    let mut text = String::new();
    for i in 0..10_001u32 {
        // Distinct CIDv1 raw sha2-256 CIDs are costly to make here; identity-hash CIDs are
        // valid and unique per payload (base32 of 0x01 0x55 0x00 len payload).
        let payload = format!("pin-{i:05}");
        let mut bytes = vec![0x01u8, 0x55, 0x00, payload.len() as u8];
        bytes.extend_from_slice(payload.as_bytes());
        text.push_str(&format!(r#"{{"cid":"b{}","type":"pin","max_depth":-1}}"#, base32(&bytes)));
        text.push('\n');
    }
    std::fs::write(&file, text).expect("write");
    let (ok, _, err) = run(&dir, &["state", "import", file.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    assert!(!err.contains('\r'), "no carriage returns off a terminal: {err:?}");
    assert!(err.contains("imported 10000 pins…"), "{err}");
    assert!(err.contains("imported 10001 pins"), "{err}");

    let (ok, out, err) = run(&dir, &["state", "export"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 10_001);
    assert!(err.contains("exported 10000 pins…") && err.contains("exported 10001 pins"), "{err}");
}

/// RFC 4648 base32, lower case, no padding (multibase `b`).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[test]
fn import_overrides_replication_and_allocations() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let file = tmp.path().join("pins.ndjson");
    write_pins(&file, &PINS);
    let peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
    let path = file.to_str().expect("utf-8");
    let (ok, _, err) = run(&dir, &["state", "import", path, "--rmin", "-1", "--rmax", "-1", "--allocs", peer]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&dir, &["state", "export"]);
    assert!(ok, "{err}");
    let pins: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(pins.len(), 3);
    for pin in pins {
        assert_eq!(pin["replication_factor_min"], -1, "{pin}");
        assert_eq!(pin["replication_factor_max"], -1, "{pin}");
        assert_eq!(pin["allocations"], serde_json::json!([peer]), "{pin}");
    }
    // Bad overrides are refused before anything is read, naming the flag.
    let (ok, _, err) = run(&dir, &["state", "import", "--force", path, "--rmin", "3", "--rmax", "2"]);
    assert!(!ok && err.contains("--rmin 3 is larger than --rmax 2"), "{err}");
    let (ok, _, err) = run(&dir, &["state", "import", "--force", path, "--allocs", "not-a-peer"]);
    assert!(!ok && err.contains("--allocs") && err.contains("not-a-peer"), "{err}");
}

#[test]
fn a_corrupt_pinset_is_refused_naming_the_file_without_a_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let file = tmp.path().join("pins.ndjson");
    write_pins(&file, &PINS);
    let (ok, _, err) = run(&dir, &["state", "import", file.to_str().expect("utf-8")]);
    assert!(ok, "{err}");

    // A valid redb header (the first page) followed by garbage.
    let pinset = dir.join("pinset.redb");
    let mut bytes = std::fs::read(&pinset).expect("read pinset");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in bytes.iter_mut().skip(4096) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed.to_le_bytes()[0];
    }
    std::fs::write(&pinset, &bytes).expect("corrupt pinset");

    let out = common::cairn(&dir).args(["state", "export"]).env("CAIRN_LOG", "warn").output().expect("run cairn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "export of a corrupt pinset must fail:\n{err}");
    assert_ne!(out.status.code(), Some(101), "cairn panicked:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(&pinset.display().to_string()) && err.contains("is corrupt"), "{err}");
    assert!(out.stdout.is_empty(), "nothing is exported");

    let mut daemon = Daemon::start(&dir);
    let status = daemon.wait_exit(START);
    let log = daemon.drain_log();
    assert!(!status.success(), "the daemon must refuse a corrupt pinset:\n{log}");
    assert_ne!(status.code(), Some(101), "the daemon panicked:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains(&pinset.display().to_string()) && log.contains("is corrupt"), "{log}");
}
