//! `cairn init`, run as a separate process: the files, their modes, the identity.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn cairn(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--config")
        .arg(dir)
        .args(args)
        .env("CAIRN_LOG", "warn")
        .env("NO_COLOR", "1")
        .output()
        .expect("run cairn");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("valid JSON")
}

#[test]
fn init_writes_private_files_with_a_fresh_identity_and_secret() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cfg");
    let (ok, out) = cairn(&dir, &["init"]);
    assert!(ok, "{out}");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("service.json")), 0o600);
    assert_eq!(mode(&dir.join("identity.json")), 0o600);

    let service = json(&dir.join("service.json"));
    let secret = service["cluster"]["secret"].as_str().expect("secret");
    assert_eq!(secret.len(), 64, "{secret}");
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()), "{secret}");
    assert_eq!(service["consensus"]["crdt"]["trusted_peers"], serde_json::json!(["*"]));
    assert!(service["consensus"].get("raft").is_none());

    let identity = json(&dir.join("identity.json"));
    let id = identity["id"].as_str().expect("id");
    assert!(id.starts_with("12D3KooW"), "an Ed25519 peer id: {id}");
    assert!(out.contains(id), "init prints the peer id: {out}");
    assert!(identity["private_key"].as_str().is_some_and(|k| !k.is_empty()));

    // Two inits make two identities and two secrets.
    let other = tmp.path().join("other");
    let (ok, out) = cairn(&other, &["init"]);
    assert!(ok, "{out}");
    assert_ne!(json(&other.join("identity.json"))["id"], identity["id"]);
    assert_ne!(json(&other.join("service.json"))["cluster"]["secret"], service["cluster"]["secret"]);
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cfg");
    assert!(cairn(&dir, &["init"]).0);
    let before = std::fs::read(dir.join("identity.json")).expect("read");
    let (ok, out) = cairn(&dir, &["init"]);
    assert!(!ok, "{out}");
    assert!(out.contains("already exists; use --force"), "{out}");
    assert_eq!(std::fs::read(dir.join("identity.json")).expect("read"), before, "nothing overwritten");

    let (ok, out) = cairn(&dir, &["init", "--force"]);
    assert!(ok, "{out}");
    assert_ne!(std::fs::read(dir.join("identity.json")).expect("read"), before, "--force overwrites");
}

#[test]
fn init_raft_and_peers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    assert!(cairn(&seed, &["init"]).0);
    let seed_id = json(&seed.join("identity.json"))["id"].as_str().expect("id").to_string();
    let addr = format!("/ip4/127.0.0.1/tcp/9096/p2p/{seed_id}");

    let crdt = tmp.path().join("crdt");
    let (ok, out) = cairn(&crdt, &["init", "--peers", &addr]);
    assert!(ok, "{out}");
    let service = json(&crdt.join("service.json"));
    assert_eq!(service["consensus"]["crdt"]["trusted_peers"], serde_json::json!([seed_id]));
    assert_eq!(service["cluster"]["peer_addresses"], serde_json::json!([addr]));

    let raft = tmp.path().join("raft");
    let (ok, out) = cairn(&raft, &["init", "--consensus", "raft", "--peers", &addr]);
    assert!(ok, "{out}");
    let service = json(&raft.join("service.json"));
    assert!(service["consensus"].get("crdt").is_none());
    let own = json(&raft.join("identity.json"))["id"].clone();
    assert_eq!(service["consensus"]["raft"]["init_peerset"], serde_json::json!([seed_id, own]));

    let (ok, out) = cairn(&tmp.path().join("bad"), &["init", "--peers", "/ip4/1.2.3.4/tcp/1"]);
    assert!(!ok, "{out}");
    assert!(out.contains("--peers"), "{out}");
}

#[test]
fn cairn_path_selects_the_folder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("from-env");
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("init")
        .env("CAIRN_PATH", &dir)
        .env("CAIRN_LOG", "warn")
        .output()
        .expect("run cairn");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("service.json").exists());
}
