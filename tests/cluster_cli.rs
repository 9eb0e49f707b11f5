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
        let (ok, out, err) = run(dir, &["peers", "ls", "--enc", "json"]);
        // One JSON `ID` object per line (the REST API's stream).
        let mut got: Vec<String> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|id| id["id"].as_str().map(str::to_string))
            .collect();
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

/// Run `cairn <args>` until `accept` holds for its stdout (bounded); returns that stdout.
fn wait_for_output(dir: &Path, args: &[&str], within: Duration, accept: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        let (ok, out, err) = run(dir, args);
        if ok && accept(&out) {
            return out;
        }
        last = format!("{out}{err}");
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("`cairn {}` on {} never gave the expected answer; last:\n{last}", args.join(" "), dir.display());
}

#[test]
fn every_peer_sees_every_ping_and_a_stopped_peer_raises_an_alert() {
    // ping every 1s, so its TTL is 2s; tags live 2s; check every 500ms.
    const PING_TTL: Duration = Duration::from_secs(2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs = three_peers(tmp.path());
    for dir in &dirs {
        edit(dir, |v| {
            v["cluster"]["monitor_ping_interval"] = "1s".into();
            v["informer"]["tags"]["metric_ttl"] = "2s".into();
            v["monitor"]["pubsubmon"]["check_interval"] = "500ms".into();
        });
    }
    let ids: Vec<String> = dirs.iter().map(|d| peer_id(d)).collect();
    let mut daemons: Vec<Daemon> = dirs.iter().map(|d| Daemon::start(d)).collect();
    for d in &mut daemons {
        d.wait_for(&["cairn daemon ready"], START);
    }

    // Every peer lists a live ping metric of all three peers.
    for dir in &dirs {
        let out = wait_for_output(dir, &["health", "metrics", "ping"], Duration::from_secs(60), |out| {
            ids.iter().all(|id| out.lines().any(|l| l.starts_with(&format!("{id} | ping: "))))
        });
        assert_eq!(out.lines().count(), 3, "{out}");
        let (ok, names, _) = run(dir, &["health", "metrics"]);
        assert!(ok && names.lines().any(|l| l == "ping") && names.lines().any(|l| l == "tag:group"), "{names}");
    }
    let (ok, out, _) = run(&dirs[0], &["health", "alerts"]);
    assert!(ok && !out.contains(&ids[2]), "no alert for a live peer:\n{out}");

    // Stop C: within 2×TTL (plus the CLI's own latency on a loaded machine) A and B alert.
    let c = daemons.pop().expect("C");
    let stopped = Instant::now();
    drop(c);
    for dir in &dirs[..2] {
        let out = wait_for_output(dir, &["health", "alerts"], 2 * PING_TTL + Duration::from_secs(8), |out| {
            out.lines().any(|l| l.starts_with(&format!("{}: ping.", ids[2])))
        });
        assert!(!out.contains(&format!("{}: ping.", ids[0])), "A is alive:\n{out}");
        // C's ping is no longer among the latest metrics.
        let (ok, out, _) = run(dir, &["health", "metrics", "ping"]);
        assert!(ok && !out.contains(&ids[2]) && out.lines().count() == 2, "{out}");
    }
    eprintln!("alerts seen on A and B {:?} after stopping C", stopped.elapsed());
    for d in &mut daemons {
        d.wait_for(&["metric alert", &ids[2]], Duration::from_secs(5));
    }
}

/// `GET /metrics` from a peer's Prometheus endpoint.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("response");
    body
}

#[test]
fn trusted_peers_decide_what_a_peer_may_call() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs = three_peers(tmp.path());
    let ids: Vec<String> = dirs.iter().map(|d| peer_id(d)).collect();
    let metrics_port = free_port();
    let (a, b) = (ids[0].clone(), ids[1].clone());
    edit(&dirs[0], |v| {
        v["consensus"]["crdt"]["trusted_peers"] = vec![a, b].into();
        v["observations"]["metrics"]["enable_stats"] = true.into();
        v["observations"]["metrics"]["prometheus_endpoint"] = format!("/ip4/127.0.0.1/tcp/{metrics_port}").into();
    });
    let mut daemons: Vec<Daemon> = dirs.iter().map(|d| Daemon::start(d)).collect();
    for d in &mut daemons {
        d.wait_for(&["cairn daemon ready"], START);
    }
    wait_for_peers(&dirs[0], &ids, Duration::from_secs(60));
    let a_addr = format!("{}/p2p/{}", listen(&dirs[0]), ids[0]);

    // C is not trusted by A: ID and Version are open, a pinset write is refused.
    let (ok, out, err) = run(&dirs[2], &["rpc", &a_addr, "Cluster.ID"]);
    assert!(ok && out.contains(&ids[0]), "{out}{err}");
    let (ok, out, err) = run(&dirs[2], &["rpc", &a_addr, "Cluster.Version"]);
    assert!(ok && out.contains(env!("CARGO_PKG_VERSION")), "{out}{err}");
    let (ok, out, err) = run(&dirs[2], &["rpc", &a_addr, "Consensus.LogPin"]);
    assert!(!ok, "{out}{err}");
    assert!(err.contains(&format!("peer {} is not trusted for pinset-write", ids[2])), "{err}");

    // B is trusted: the authorizer lets the call through (the method itself comes later).
    let (ok, out, err) = run(&dirs[1], &["rpc", &a_addr, "Consensus.LogPin"]);
    assert!(!ok && err.contains("unknown RPC method Consensus.LogPin") && !err.contains("not trusted"), "{out}{err}");

    // The refusal is in A's log and in its metrics.
    daemons[0].wait_for(&["peer rpc denied", &ids[2], "Consensus.LogPin"], Duration::from_secs(10));
    let metrics = scrape(metrics_port);
    // At least that refusal (C's consensus sync calls to A are refused and counted too).
    let denied: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cairn_rpc_denied_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(denied >= 1, "{metrics}");
    assert!(metrics.contains("cairn_plugin_calls_total{point=\"consensus.crdt.peer_authorizer_plugin\"}"), "{metrics}");
}

#[test]
fn bootstrap_peers_are_trusted_for_the_run_unless_no_trust() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs = three_peers(tmp.path());
    let ids: Vec<String> = dirs.iter().map(|d| peer_id(d)).collect();
    let addr = |i: usize| format!("{}/p2p/{}", listen(&dirs[i]), ids[i]);
    // A trusts only itself in service.json; it is started with `--bootstrap <B>`.
    let only_a = ids[0].clone();
    edit(&dirs[0], |v| v["consensus"]["crdt"]["trusted_peers"] = vec![only_a].into());
    let mut cmd = cairn(&dirs[0]);
    cmd.args(["daemon", "--bootstrap", &addr(1)]);
    let mut daemons = vec![Daemon::spawn(cmd), Daemon::start(&dirs[1]), Daemon::start(&dirs[2])];
    for d in &mut daemons {
        d.wait_for(&["cairn daemon ready"], START);
    }
    let (ok, out, err) = run(&dirs[1], &["rpc", &addr(0), "PeerMonitor.MetricNames"]);
    assert!(ok, "B came in with --bootstrap, so A trusts it:\n{out}{err}");
    let (ok, out, err) = run(&dirs[2], &["rpc", &addr(0), "PeerMonitor.MetricNames"]);
    assert!(!ok && err.contains("is not trusted"), "C is not trusted by A:\n{out}{err}");
    // Nothing was saved: A's service.json still trusts only A.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dirs[0].join("service.json")).expect("read")).expect("json");
    assert_eq!(saved["consensus"]["crdt"]["trusted_peers"], serde_json::json!([ids[0]]));

    // With --no-trust, B is just another peer.
    daemons[0].signal("TERM");
    assert!(daemons[0].wait_exit(STOP).success());
    let mut cmd = cairn(&dirs[0]);
    cmd.args(["daemon", "--no-trust", "--bootstrap", &addr(1)]);
    let mut again = Daemon::spawn(cmd);
    again.wait_for(&["cairn daemon ready"], START);
    let (ok, out, err) = run(&dirs[1], &["rpc", &addr(0), "PeerMonitor.MetricNames"]);
    assert!(!ok && err.contains("is not trusted"), "{out}{err}");
}
