//! Consensus across `cairn daemon` processes: the `cairn bench consensus` driver (3 crdt or raft
//! peers, a join from a preloaded peer, ingest with kill -9 cycles, a SIGSTOP freeze), and trust
//! between real peers.

mod common;

use std::time::Duration;

use common::{Daemon, START, cairn, edit, free_port, init_named, run};

/// Runs `cairn bench consensus <args> --json` in a fresh folder; returns its JSON report after
/// checking what every run must show: converged, identical records, nothing acknowledged lost,
/// every kill cycle done and the frozen peer caught up.
fn bench(args: &[&str], kill_cycles: u32) -> serde_json::Value {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = cairn(tmp.path())
        .args(["bench", "consensus", "--concurrency", "16", "--kill-cycles", &kill_cycles.to_string()])
        .args(args)
        .args(["--json", "--workdir"])
        .arg(tmp.path().join("work"))
        .env("CAIRN_LOG", "error")
        .output()
        .expect("run the bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    for key in ["converged", "identical", "freeze_caught_up"] {
        assert_eq!(report[key], true, "{key}: {report}");
    }
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["kill_cycles"], kill_cycles, "{report}");
    report
}

#[test]
fn crdt_peers_join_converge_survive_kill_9_and_catch_up_after_a_freeze() {
    let report = bench(&["--preload", "5000", "--pins", "3000", "--freeze-secs", "3", "--freeze-pins", "1000"], 3);
    assert_eq!(report["join_converged"], true, "{report}");
    assert_eq!(report["pins_per_peer"], 5000 + 3000 + 1000, "{report}");
}

#[test]
fn raft_peers_converge_survive_kill_9_and_catch_up_after_a_freeze() {
    let report = bench(&["--consensus", "raft", "--pins", "2000", "--freeze-secs", "3", "--freeze-pins", "500"], 3);
    assert_eq!(report["pins_per_peer"], 2500, "{report}");
}

/// A peer outside `trusted_peers` holds the secret and connects, but its pinset writes never
/// reach the trusted peers.
#[test]
fn writes_of_an_untrusted_peer_are_not_applied() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = init_named(tmp.path(), "a", &[]);
    let evil = init_named(tmp.path(), "evil", &[]);
    // b never runs: its identity is a trusted client of a.
    let b = init_named(tmp.path(), "b", &[]);
    let secret = std::fs::read_to_string(a.join("service.json")).expect("read");
    let secret: serde_json::Value = serde_json::from_str(&secret).expect("json");
    let secret = secret["cluster"]["secret"].clone();
    let id_of = |dir: &std::path::Path| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).expect("read")).expect("json");
        v["id"].as_str().expect("id").to_string()
    };
    let (a_id, evil_id, b_id) = (id_of(&a), id_of(&evil), id_of(&b));
    let a_port = free_port();
    edit(&a, |v| {
        v["cluster"]["listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{a_port}").into();
        v["consensus"]["crdt"]["trusted_peers"] = serde_json::json!([a_id, b_id]);
        v["consensus"]["crdt"]["sync_interval"] = "1s".into();
    });
    let a_addr = format!("/ip4/127.0.0.1/tcp/{a_port}/p2p/{a_id}");
    let evil_port = free_port();
    edit(&evil, |v| {
        v["cluster"]["secret"] = secret.clone();
        v["cluster"]["listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{evil_port}").into();
        v["cluster"]["peer_addresses"] = serde_json::json!([a_addr]);
        v["consensus"]["crdt"]["sync_interval"] = "1s".into();
    });
    let evil_addr = format!("/ip4/127.0.0.1/tcp/{evil_port}/p2p/{evil_id}");
    edit(&b, |v| v["cluster"]["secret"] = secret.clone());
    let mut da = Daemon::start(&a);
    da.wait_for(&["cairn daemon ready"], START);
    let mut de = Daemon::start(&evil);
    de.wait_for(&["cairn daemon ready"], START);
    da.wait_for(&["peer connected", &evil_id], Duration::from_secs(30));

    let cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    let pin = format!(r#"{{"cid":"{cid}","name":"from an untrusted peer"}}"#);
    // evil trusts everyone, so a's identity may ask it to pin: evil commits and broadcasts.
    let (ok, out, err) = run(&a, &["rpc", &evil_addr, "Cluster.Pin", "--payload", &pin]);
    assert!(ok, "{out}{err}");
    let get = format!(r#"{{"cid":"{cid}"}}"#);
    let (ok, out, err) = run(&a, &["rpc", &evil_addr, "Cluster.PinGet", "--payload", &get]);
    assert!(ok && out.contains("from an untrusted peer"), "{out}{err}");
    // Several sync intervals later, a still refuses it: neither the delta nor anti-entropy
    // (a never pulls from an untrusted peer) brought it in.
    std::thread::sleep(Duration::from_secs(4));
    let (ok, out, err) = run(&b, &["rpc", &a_addr, "Cluster.PinGet", "--payload", &get]);
    assert!(!ok && err.contains("pin is not part of the pinset"), "{out}{err}");
    da.wait_for(&["refused crdt delta", "may not write the pinset"], Duration::from_secs(10));
    // Nor does a's GET /pins list it: a asks only peers it trusts, and keeps only CIDs of its
    // own pinset (evil's answer used to be merged as given).
    let (ok, out, err) = run(&a, &["status", "--enc", "json"]);
    assert!(ok && !out.contains(cid) && !out.contains(&evil_id), "a lists the untrusted peer's pin: {ok} {out}{err}");
}
