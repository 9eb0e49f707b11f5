//! The whole registry a peer serves — every Cairn family plus libp2p's — renders as valid
//! OpenMetrics and as Prometheus text that `promtool check metrics` accepts.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_telemetry::{
    ConsensusMetrics, CrdtMetrics, Format, IpfsMetrics, PinStates, PluginCollector, PluginFigures, PluginSource,
    RaftCollector, RaftFigures, RaftMetrics, SwarmMetrics, Telemetry, TrackerMetrics,
};

/// A registry with every family registered and a sample in each.
fn full_registry() -> Telemetry {
    let telemetry = Telemetry::new();
    let ms = Duration::from_millis(3);

    let swarm = SwarmMetrics::default();
    telemetry.register(|r| swarm.register(r));
    swarm.connected_peers.set(2);
    swarm.rpc_served.inc();
    swarm.rpc_denied.inc();
    swarm.rpc_failed.inc();
    swarm.handshake_failures.inc();
    swarm.served(ms);
    swarm.sent("Cluster.ID", "ok", ms);
    // libp2p's own families, as the swarm registers them.
    telemetry.register(libp2p::metrics::Metrics::new);

    let tracker = TrackerMetrics::default();
    telemetry.register(|r| tracker.register(r));
    tracker.finished("pin", true, ms);
    tracker.finished("unpin", false, ms);
    tracker.queue_full();
    telemetry.register_collector(PinStates::new(|| vec![("pinned", 3), ("pin_queued", 1), ("remote", 0)]));

    let crdt_commits = ConsensusMetrics::new("crdt");
    telemetry.register(|r| crdt_commits.register(r));
    crdt_commits.commit("pin", true, ms);
    let crdt = CrdtMetrics::default();
    telemetry.register(|r| crdt.register(r));
    crdt.broadcasts.inc();
    crdt.delta_received("queued");
    crdt.records_applied(true, 5);
    crdt.sync_round(true);
    crdt.store_commit(ms);
    let raft = RaftMetrics::default();
    telemetry.register(|r| raft.register(r));
    raft.commit_retries.inc();
    telemetry.register_collector(RaftCollector::new(|| RaftFigures {
        term: 3,
        is_leader: true,
        leader: Some("12D3KooWLeader".into()),
        last_log_index: 10,
        last_applied_index: 9,
        snapshot_index: 5,
        voters: 3,
    }));

    IpfsMetrics::global().request("pin/add", "ok", ms);
    telemetry.api().observe("restapi", "/pins/{cid}", 200, ms);

    telemetry.register_collector(PluginCollector::new(vec![
        PluginSource::new("api.restapi.authorizer_plugin", || PluginFigures {
            plugin: "builtin:basic-auth".into(),
            kind: "authorizer".into(),
            calls: 4,
            denials: 1,
            latency_buckets: vec![(0.0001, 3), (0.001, 1), (f64::INFINITY, 0)],
            latency_sum: 0.0012,
            reloads: 1,
            ..PluginFigures::default()
        }),
        PluginSource::new("consensus.crdt.peer_authorizer_plugin", PluginFigures::default),
    ]));
    telemetry
}

#[test]
fn every_family_renders_in_both_formats() {
    let telemetry = full_registry();
    let open = telemetry.encode(Format::OpenMetrics);
    assert!(open.ends_with("# EOF\n"), "{open}");
    let text = telemetry.encode(Format::Prometheus);
    if std::env::var_os("CAIRN_PRINT_METRICS").is_some() {
        println!("{text}");
    }
    for expected in [
        "cairn_rpc_denied_total 1\n",
        "# TYPE cairn_rpc_served_total counter\n",
        "cairn_rpc_sent_total{method=\"Cluster.ID\",outcome=\"ok\"} 1\n",
        "cairn_swarm_connected_peers 2\n",
        "cairn_pins{status=\"pinned\"} 3\n",
        "cairn_tracker_operations_total{op=\"pin\",outcome=\"done\"} 1\n",
        "cairn_consensus_commits_total{engine=\"crdt\",op=\"pin\",outcome=\"ok\"} 1\n",
        "cairn_crdt_records_applied_total{source=\"sync\"} 5\n",
        "cairn_raft_term 3\n",
        "cairn_raft_leader{peer=\"12D3KooWLeader\"} 1\n",
        "cairn_ipfs_requests_total{endpoint=\"pin/add\",outcome=\"ok\"} 1\n",
        "cairn_api_requests_total{api=\"restapi\",route=\"/pins/{cid}\",status=\"200\"} 1\n",
        "cairn_plugin_calls_total{point=\"api.restapi.authorizer_plugin\"} 4\n",
        "cairn_plugin_calls_total{point=\"consensus.crdt.peer_authorizer_plugin\"} 0\n",
        "cairn_plugin_denials_total{point=\"api.restapi.authorizer_plugin\"} 1\n",
        "cairn_plugin_call_duration_seconds_bucket{le=\"+Inf\",point=\"api.restapi.authorizer_plugin\"} 4\n",
        "cairn_plugin_reloads_total{point=\"api.restapi.authorizer_plugin\",outcome=\"ok\"} 1\n",
        "cairn_plugin_info{point=\"api.restapi.authorizer_plugin\",plugin=\"builtin:basic-auth\",kind=\"authorizer\"} 1\n",
        "# TYPE libp2p_swarm_connections_incoming_total counter\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");

    match Command::new("promtool").arg("--version").output() {
        Err(e) => {
            // .ci/run installs promtool and sets CAIRN_REQUIRE_PROMTOOL: there the check must run.
            assert!(
                std::env::var_os("CAIRN_REQUIRE_PROMTOOL").is_none(),
                "promtool is not on PATH ({e}) but CAIRN_REQUIRE_PROMTOOL is set (apt-get install prometheus)"
            );
            println!("promtool is not on PATH: skipping `promtool check metrics` (apt-get install prometheus)");
        }
        Ok(_) => {
            let mut child = Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run promtool");
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
            let out = child.wait_with_output().expect("promtool");
            assert!(
                out.status.success(),
                "promtool check metrics failed ({}):\n{}{}\n--- input:\n{text}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
