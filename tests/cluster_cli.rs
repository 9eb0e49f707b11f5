//! Several `cairn daemon` processes on 127.0.0.1 forming a cluster over the private swarm:
//! peers sharing the secret find each other; a peer with another secret, or none, cannot
//! connect, and the others log a secret-mismatch hint. Every wait is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const SECRET: &str = "2588b80d5cb05374fa142aed6cbb047d1f4ef8ef15e37eba68c65b9d30df67ed";

fn peer_id(dir: &Path) -> String {
    let identity: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).expect("identity")).expect("json");
    identity["id"].as_str().expect("id").to_string()
}

fn listen(dir: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("service.json")).expect("read")).expect("json");
    v["cluster"]["listen_multiaddress"].as_str().expect("one listen address").to_string()
}

/// `cairn peers ls` until it lists exactly `want` (bounded).
fn wait_for_peers(dir: &Path, want: &[String], within: Duration) {
    let mut want = want.to_vec();
    want.sort();
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        let (ok, out, err) = run(dir, &["peers", "ls"]);
        let mut got: Vec<String> = out.lines().map(str::to_string).collect();
        got.sort();
        if ok && got == want {
            return;
        }
        last = format!("{out}{err}");
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("{} never listed {want:?}; last answer:\n{last}", dir.display());
}

/// Three peers on one secret, each told the others' addresses.
fn three_peers(tmp: &Path) -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| init_named(tmp, n, &[])).collect();
    let addrs: Vec<String> = dirs.iter().map(|d| format!("{}/p2p/{}", listen(d), peer_id(d))).collect();
    for (i, dir) in dirs.iter().enumerate() {
        let others: Vec<String> = addrs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| a.clone()).collect();
        edit(dir, |v| {
            v["cluster"]["secret"] = SECRET.into();
            v["cluster"]["peer_addresses"] = others.into();
        });
    }
    dirs
}

#[test]
fn three_peers_sharing_a_secret_see_each_other_and_outsiders_cannot_join() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs = three_peers(tmp.path());
    let ids: Vec<String> = dirs.iter().map(|d| peer_id(d)).collect();
    let mut daemons: Vec<Daemon> = dirs.iter().map(|d| Daemon::start(d)).collect();
    for d in &mut daemons {
        d.wait_for(&["cairn daemon ready"], START);
    }
    for dir in &dirs {
        wait_for_peers(dir, &ids, Duration::from_secs(60));
    }
    let (ok, out, _) = run(&dirs[0], &["id"]);
    assert!(ok && out.starts_with(&format!("{} | ", ids[0])) && out.contains("Sees 2 other peers"), "{out}");
    let (ok, out, _) = run(&dirs[0], &["version"]);
    assert!(ok && out.trim() == env!("CARGO_PKG_VERSION"), "{out}");

    // A fourth peer with another secret, and a fifth with none, both pointed at peer A.
    let a_addr = format!("{}/p2p/{}", listen(&dirs[0]), ids[0]);
    let outsiders: Vec<(PathBuf, &str)> = vec![
        (init_named(tmp.path(), "wrong-secret", &[]), "ff".repeat(32).leak()),
        (init_named(tmp.path(), "no-secret", &[]), ""),
    ];
    for (dir, secret) in &outsiders {
        let a_addr = a_addr.clone();
        edit(dir, |v| {
            v["cluster"]["secret"] = (*secret).into();
            v["cluster"]["peer_addresses"] = vec![a_addr].into();
        });
        let mut outsider = Daemon::start(dir);
        outsider.wait_for(&["cairn daemon ready"], START);
        // It keeps failing to connect: a handshake failure, and it never sees A.
        outsider.wait_for(&["connection handshake failed"], Duration::from_secs(60));
        wait_for_peers(dir, &[peer_id(dir)], Duration::from_secs(10));
        // A saw the failed handshake too, with the hint.
        daemons[0].wait_for(&["connection handshake failed", "cluster secret"], Duration::from_secs(60));
        // And A still sees only its two real peers.
        wait_for_peers(&dirs[0], &ids, Duration::from_secs(10));
    }
}
