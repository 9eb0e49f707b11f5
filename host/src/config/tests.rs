//! service.json: defaults, loading IPFS Cluster's files, errors, environment overrides.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::*;

const FILE: &str = "/cfg/service.json";

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<LoadedService, ConfigError> {
    parse_service(text, Path::new(FILE), Path::new("/cfg"), &no_env)
}

fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<LoadedService, ConfigError> {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    parse_service(text, Path::new(FILE), Path::new("/cfg"), &move |name| vars.get(name).cloned())
}

fn init_json(consensus: ConsensusSection) -> String {
    let mut cfg = ServiceConfig::for_init(consensus);
    if let Some(c) = cfg.cluster.as_mut() {
        c.secret = "ab".repeat(32);
        c.peername = "peer0".into();
    }
    cfg.to_json()
}

fn crdt() -> ConsensusSection {
    ConsensusSection { crdt: Some(CrdtConfig::default()), raft: None }
}

/// A service.json as IPFS Cluster 1.1.x's `ipfs-cluster-service init` writes it (keys and
/// defaults of reference §5, pebble datastore, the `"2s"` reporting interval of the
/// website's sample, the QUIC listen address), plus a section Cairn does not know.
const IPFS_CLUSTER_1_1: &str = r#"{
  "cluster": {
    "peername": "jupiter",
    "secret": "2588b80d5cb05374fa142aed6cbb047d1f4ef8ef15e37eba68c65b9d30df67ed",
    "leave_on_shutdown": false,
    "listen_multiaddress": [
      "/ip4/0.0.0.0/tcp/9096",
      "/ip4/0.0.0.0/udp/9096/quic"
    ],
    "announce_multiaddress": [],
    "no_announce_multiaddress": [],
    "enable_relay_hop": true,
    "connection_manager": {
      "high_water": 400,
      "low_water": 100,
      "grace_period": "2m0s"
    },
    "resource_manager": {
      "enabled": true,
      "memory_limit_bytes": 0,
      "file_descriptors_limit": 0
    },
    "pubsub": {
      "seen_messages_ttl": "30m0s",
      "heartbeat_interval": "10s",
      "d_factor": 4,
      "history_gossip": 2,
      "history_length": 6,
      "flood_publish": false
    },
    "dial_peer_timeout": "3s",
    "state_sync_interval": "5m0s",
    "pin_recover_interval": "12m0s",
    "replication_factor_min": -1,
    "replication_factor_max": -1,
    "monitor_ping_interval": "15s",
    "peer_watch_interval": "5s",
    "mdns_interval": "10s",
    "pin_only_on_trusted_peers": false,
    "pin_only_on_untrusted_peers": false,
    "disable_repinning": true,
    "peer_addresses": []
  },
  "consensus": {
    "crdt": {
      "cluster_name": "ipfs-cluster",
      "trusted_peers": ["*"],
      "batching": {
        "max_batch_size": 0,
        "max_batch_age": "0s"
      },
      "repair_interval": "1h0m0s"
    }
  },
  "api": {
    "ipfsproxy": {
      "listen_multiaddress": "/ip4/127.0.0.1/tcp/9095",
      "node_multiaddress": "/ip4/127.0.0.1/tcp/5001",
      "log_file": "",
      "read_timeout": "0s",
      "read_header_timeout": "5s",
      "write_timeout": "0s",
      "idle_timeout": "1m0s",
      "max_header_bytes": 4096
    },
    "pinsvcapi": {
      "http_listen_multiaddress": "/ip4/127.0.0.1/tcp/9097",
      "read_timeout": "0s",
      "read_header_timeout": "5s",
      "write_timeout": "0s",
      "idle_timeout": "2m0s",
      "max_header_bytes": 4096,
      "basic_auth_credentials": null,
      "http_log_file": "",
      "headers": {},
      "cors_allowed_origins": ["*"],
      "cors_allowed_methods": ["GET"],
      "cors_allowed_headers": [],
      "cors_exposed_headers": ["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length"],
      "cors_allow_credentials": true,
      "cors_max_age": "0s"
    },
    "restapi": {
      "http_listen_multiaddress": "/ip4/127.0.0.1/tcp/9094",
      "read_timeout": "0s",
      "read_header_timeout": "5s",
      "write_timeout": "0s",
      "idle_timeout": "2m0s",
      "max_header_bytes": 4096,
      "basic_auth_credentials": {"admin": "s3cret"},
      "http_log_file": "",
      "headers": {},
      "cors_allowed_origins": ["*"],
      "cors_allowed_methods": ["GET"],
      "cors_allowed_headers": [],
      "cors_exposed_headers": ["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length"],
      "cors_allow_credentials": true,
      "cors_max_age": "0s"
    }
  },
  "ipfs_connector": {
    "ipfshttp": {
      "node_multiaddress": "/ip4/127.0.0.1/tcp/5001",
      "connect_swarms_delay": "30s",
      "ipfs_request_timeout": "5m0s",
      "pin_timeout": "2m0s",
      "unpin_timeout": "3h0m0s",
      "repogc_timeout": "24h0m0s",
      "informer_trigger_interval": 0
    }
  },
  "pin_tracker": {
    "stateless": {
      "concurrent_pins": 10,
      "priority_pin_max_age": "24h0m0s",
      "priority_pin_max_retries": 5
    }
  },
  "monitor": {
    "pubsubmon": {
      "check_interval": "15s"
    }
  },
  "allocator": {
    "balanced": {
      "allocate_by": ["tag:group", "freespace"]
    }
  },
  "informer": {
    "disk": {
      "metric_ttl": "30s",
      "metric_type": "freespace"
    },
    "pinqueue": {
      "metric_ttl": "30s",
      "weight_bucket_size": 100000
    },
    "tags": {
      "metric_ttl": "30s",
      "tags": {"group": "default"}
    }
  },
  "observations": {
    "metrics": {
      "enable_stats": false,
      "prometheus_endpoint": "/ip4/127.0.0.1/tcp/8888",
      "reporting_interval": "2s"
    },
    "tracing": {
      "enable_tracing": false,
      "jaeger_agent_endpoint": "/ip4/0.0.0.0/udp/6831",
      "sampling_prob": 0.3,
      "service_name": "cluster-daemon"
    }
  },
  "datastore": {
    "pebble": {
      "pebble_options": {
        "cache_size_bytes": 1073741824,
        "bytes_per_sync": 1048576,
        "max_open_files": 1000,
        "mem_table_stop_writes_threshold": 20
      }
    }
  },
  "future_section": {"anything": true}
}"#;

#[test]
fn an_ipfs_cluster_1_1_service_json_loads() {
    let loaded = parse(IPFS_CLUSTER_1_1).expect("IPFS Cluster's service.json loads");
    let cfg = &loaded.config;
    let c = cfg.cluster();
    assert_eq!(c.peername, "jupiter");
    assert_eq!(cfg.secret_bytes().map(|s| s[0]), Some(0x25));
    assert_eq!(c.listen_multiaddress.0.len(), 2);
    assert_eq!(c.mdns_interval, GoDuration::secs(10));
    assert_eq!(cfg.consensus_kind(), Some(ConsensusKind::Crdt));
    assert_eq!(cfg.observations.metrics.reporting_interval, GoDuration::secs(2));
    let restapi = cfg.api.restapi.as_ref().expect("restapi");
    assert_eq!(
        restapi.basic_auth_credentials.as_ref().and_then(|c| c.get("admin")).map(String::as_str),
        Some("s3cret")
    );
    // The unknown section and the unused datastore are reported, not refused.
    assert!(loaded.warnings.iter().any(|w| w.contains("future_section: unknown section")), "{:?}", loaded.warnings);
    assert!(loaded.warnings.iter().any(|w| w.starts_with("datastore:")), "{:?}", loaded.warnings);

    // The default plugins get the file's own keys.
    let points = cfg.decision_points(Path::new("/cfg")).expect("points");
    let auth = points.iter().find(|p| p.key == "api.restapi.authorizer_plugin").expect("restapi authorizer");
    assert_eq!(auth.spec.config, json!({"basic_auth_credentials": {"admin": "s3cret"}}));
}

#[test]
fn init_defaults_equal_the_reference() {
    let cfg = ServiceConfig::for_init(crdt());
    let v = serde_json::to_value(&cfg).expect("serializes");
    let c = &v["cluster"];
    // Reference §5.3 (Cairn differs on listen_multiaddress — no QUIC — and mdns_interval — off).
    assert_eq!(c["listen_multiaddress"], json!("/ip4/0.0.0.0/tcp/9096"));
    assert_eq!(c["mdns_interval"], json!("0s"));
    assert_eq!(c["leave_on_shutdown"], json!(false));
    assert_eq!(c["enable_relay_hop"], json!(true));
    assert_eq!(c["connection_manager"], json!({"high_water": 400, "low_water": 100, "grace_period": "2m0s"}));
    assert_eq!(c["resource_manager"], json!({"enabled": true, "memory_limit_bytes": 0, "file_descriptors_limit": 0}));
    assert_eq!(
        c["pubsub"],
        json!({"seen_messages_ttl": "30m0s", "heartbeat_interval": "10s", "d_factor": 4,
               "history_gossip": 2, "history_length": 6, "flood_publish": false})
    );
    for (key, want) in [
        ("dial_peer_timeout", json!("3s")),
        ("state_sync_interval", json!("5m0s")),
        ("pin_recover_interval", json!("12m0s")),
        ("replication_factor_min", json!(-1)),
        ("replication_factor_max", json!(-1)),
        ("monitor_ping_interval", json!("15s")),
        ("peer_watch_interval", json!("5s")),
        ("pin_only_on_trusted_peers", json!(false)),
        ("pin_only_on_untrusted_peers", json!(false)),
        ("disable_repinning", json!(true)),
        ("peer_addresses", json!([])),
    ] {
        assert_eq!(c[key], want, "cluster.{key}");
    }
    // Omitted when default, as IPFS Cluster writes them.
    assert!(c.get("follower_mode").is_none() && c.get("peerstore_file").is_none());

    // §5.4.
    assert_eq!(
        v["consensus"]["crdt"],
        json!({"cluster_name": "ipfs-cluster", "trusted_peers": ["*"],
               "batching": {"max_batch_size": 0, "max_batch_age": "0s"}, "repair_interval": "1h0m0s"})
    );
    // §1.8.
    let r = &v["api"]["restapi"];
    assert_eq!(r["http_listen_multiaddress"], json!("/ip4/127.0.0.1/tcp/9094"));
    assert_eq!(v["api"]["pinsvcapi"]["http_listen_multiaddress"], json!("/ip4/127.0.0.1/tcp/9097"));
    for (key, want) in [
        ("read_timeout", json!("0s")),
        ("read_header_timeout", json!("5s")),
        ("write_timeout", json!("0s")),
        ("idle_timeout", json!("2m0s")),
        ("max_header_bytes", json!(4096)),
        ("basic_auth_credentials", json!(null)),
        ("http_log_file", json!("")),
        ("headers", json!({})),
        ("cors_allowed_origins", json!(["*"])),
        ("cors_allowed_methods", json!(["GET"])),
        ("cors_allowed_headers", json!([])),
        ("cors_exposed_headers", json!(["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length"])),
        ("cors_allow_credentials", json!(true)),
        ("cors_max_age", json!("0s")),
    ] {
        assert_eq!(r[key], want, "api.restapi.{key}");
    }
    // §3.4.
    assert_eq!(
        v["api"]["ipfsproxy"],
        json!({"listen_multiaddress": "/ip4/127.0.0.1/tcp/9095", "node_multiaddress": "/ip4/127.0.0.1/tcp/5001",
               "log_file": "", "read_timeout": "0s", "read_header_timeout": "5s", "write_timeout": "0s",
               "idle_timeout": "1m0s", "max_header_bytes": 4096})
    );
    // §4 and §5.6.
    assert_eq!(
        v["ipfs_connector"]["ipfshttp"],
        json!({"node_multiaddress": "/ip4/127.0.0.1/tcp/5001", "connect_swarms_delay": "30s",
               "ipfs_request_timeout": "5m0s", "pin_timeout": "2m0s", "unpin_timeout": "3h0m0s",
               "repogc_timeout": "24h0m0s", "informer_trigger_interval": 0})
    );
    assert_eq!(
        v["pin_tracker"]["stateless"],
        json!({"concurrent_pins": 10, "priority_pin_max_age": "24h0m0s", "priority_pin_max_retries": 5})
    );
    assert_eq!(v["monitor"]["pubsubmon"], json!({"check_interval": "15s"}));
    assert_eq!(v["allocator"]["balanced"], json!({"allocate_by": ["tag:group", "freespace"]}));
    assert_eq!(v["informer"]["disk"], json!({"metric_ttl": "30s", "metric_type": "freespace"}));
    assert_eq!(v["informer"]["tags"], json!({"metric_ttl": "30s", "tags": {"group": "default"}}));
    assert_eq!(v["informer"]["pinqueue"], json!({"metric_ttl": "30s", "weight_bucket_size": 100000}));
    assert_eq!(
        v["observations"],
        json!({"metrics": {"enable_stats": false, "prometheus_endpoint": "/ip4/127.0.0.1/tcp/8888", "reporting_interval": "30s"},
               "tracing": {"enable_tracing": false, "jaeger_agent_endpoint": "/ip4/0.0.0.0/udp/6831",
                           "sampling_prob": 0.3, "service_name": "cluster-daemon"}})
    );

    // §5.5.
    let raft = serde_json::to_value(RaftConfig::default()).expect("serializes");
    assert_eq!(
        raft,
        json!({"init_peerset": [], "wait_for_leader_timeout": "15s", "network_timeout": "10s", "commit_retries": 1,
               "commit_retry_delay": "200ms", "backups_rotate": 6, "heartbeat_timeout": "1s", "election_timeout": "1s",
               "commit_timeout": "50ms", "max_append_entries": 64, "trailing_logs": 10240, "snapshot_interval": "2m0s",
               "snapshot_threshold": 8192, "leader_lease_timeout": "500ms"})
    );
}

#[test]
fn what_init_writes_loads_back_unchanged() {
    let text = init_json(crdt());
    let loaded = parse(&text).expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.to_json(), text);
}

#[test]
fn missing_keys_take_defaults_and_absent_cors_keys_stay_absent() {
    let loaded =
        parse(r#"{"cluster": {}, "consensus": {"crdt": {}}, "api": {"restapi": {}, "pinsvcapi": {}}}"#).expect("loads");
    let cfg = &loaded.config;
    assert_eq!(cfg.cluster().monitor_ping_interval, GoDuration::secs(15));
    assert_eq!(
        cfg.api.pinsvcapi.as_ref().map(|a| a.http_listen_multiaddress.0.clone()),
        Some(vec![PINSVCAPI_LISTEN.into()])
    );
    assert_eq!(
        cfg.api.restapi.as_ref().map(|a| a.http_listen_multiaddress.0.clone()),
        Some(vec![RESTAPI_LISTEN.into()])
    );
    // rs/cors's defaults apply to the absent keys, so the CORS plugin gets none of them.
    let points = cfg.decision_points(Path::new("/cfg")).expect("points");
    let cors = points.iter().find(|p| p.key == "api.restapi.cors_plugin").expect("cors");
    assert_eq!(cors.spec.config, json!({}));
    // Absent trusted_peers trusts nobody: the plugin gets null, not ["*"].
    let peer = points.iter().find(|p| p.key == "consensus.crdt.peer_authorizer_plugin").expect("peer");
    assert_eq!(peer.spec.config, json!({"trusted_peers": null}));
    // Absent allocator.balanced: IPFS Cluster's legacy ["freespace"].
    let alloc = points.iter().find(|p| p.key == "allocator.plugin").expect("allocator");
    assert_eq!(alloc.spec.config, json!({"allocate_by": ["freespace"]}));
    // No ipfsproxy section, no proxy decision points.
    assert!(!points.iter().any(|p| p.key.starts_with("api.ipfsproxy")));
}

#[test]
fn zero_and_empty_values_keep_ipfs_cluster_defaults() {
    let loaded = parse(
        r#"{"cluster": {"replication_factor_min": 0, "replication_factor_max": 0, "monitor_ping_interval": ""},
            "consensus": {"crdt": {}}, "api": {"restapi": {"http_listen_multiaddress": "", "max_header_bytes": 0}}}"#,
    )
    .expect("loads");
    let c = loaded.config.cluster();
    assert_eq!((c.replication_factor_min, c.replication_factor_max), (-1, -1));
    assert_eq!(c.monitor_ping_interval, GoDuration::secs(15));
    let api = loaded.config.api.restapi.as_ref().expect("restapi");
    assert_eq!(api.http_listen_multiaddress.0, vec![RESTAPI_LISTEN.to_string()]);
    assert_eq!(api.max_header_bytes, 4096);
}

#[test]
fn secret_of_the_wrong_length_names_the_key_and_the_sizes() {
    let text = init_json(crdt()).replace(&"ab".repeat(32), &"ab".repeat(31));
    let e = parse(&text).expect_err("31-byte secret");
    assert_eq!(e.key(), "cluster.secret");
    assert_eq!(
        e.to_string(),
        "/cfg/service.json: cluster.secret: input secret is 31 bytes, cluster secret should be 32"
    );

    let text = init_json(crdt()).replace(&"ab".repeat(32), "zz");
    let e = parse(&text).expect_err("not hex");
    assert!(e.to_string().contains("cluster.secret: not a hexadecimal string"), "{e}");

    // Empty is allowed here (the daemon warns, or refuses in raft mode).
    let text = init_json(crdt()).replace(&"ab".repeat(32), "");
    assert_eq!(parse(&text).expect("empty secret").config.secret_bytes(), None);
}

#[test]
fn syntax_and_type_errors_keep_line_and_column_and_name_the_key() {
    let e = parse("{\n  \"cluster\": {\n    \"peername\": \"a\",,\n  }\n}").expect_err("bad JSON");
    let msg = e.to_string();
    assert!(msg.starts_with("/cfg/service.json: invalid JSON: "), "{msg}");
    assert!(msg.contains("line 3 column"), "{msg}");

    let e =
        parse("{\n  \"cluster\": {\n    \"replication_factor_min\": \"two\"\n  },\n  \"consensus\": {\"crdt\": {}}\n}")
            .expect_err("wrong type");
    assert_eq!(e.key(), "cluster.replication_factor_min");
    let msg = e.to_string();
    assert!(
        msg.starts_with("/cfg/service.json: cluster.replication_factor_min: invalid type: string \"two\""),
        "{msg}"
    );
    assert!(msg.contains("line 3 column"), "{msg}");

    let e = parse(r#"{"cluster": {"monitor_ping_interval": "15 seconds"}, "consensus": {"crdt": {}}}"#)
        .expect_err("bad duration");
    assert_eq!(e.key(), "cluster.monitor_ping_interval");
}

#[test]
fn consensus_must_be_exactly_one_of_crdt_and_raft() {
    let e = parse(r#"{"cluster": {}, "consensus": {"paxos": {}}}"#).expect_err("unknown consensus");
    assert_eq!(e.key(), "consensus");
    assert!(e.to_string().contains("(found: paxos): exactly one of consensus.crdt or consensus.raft"), "{e}");

    let e = parse(r#"{"cluster": {}, "consensus": {"crdt": {}, "raft": {}}}"#).expect_err("both");
    assert!(e.to_string().contains("both crdt and raft"), "{e}");

    let raft = parse(r#"{"cluster": {}, "consensus": {"raft": {}}}"#).expect("raft");
    assert_eq!(raft.config.consensus_kind(), Some(ConsensusKind::Raft));

    let e = parse(r#"{"consensus": {"crdt": {}}}"#).expect_err("no cluster");
    assert_eq!(e.key(), "cluster");
}

#[test]
fn other_validation_errors_name_their_keys() {
    let cases = [
        (
            r#"{"cluster": {"listen_multiaddress": "not-an-addr"}, "consensus": {"crdt": {}}}"#,
            "cluster.listen_multiaddress",
        ),
        (
            r#"{"cluster": {"peer_addresses": ["/ip4/1.2.3.4/tcp/9096"]}, "consensus": {"crdt": {}}}"#,
            "cluster.peer_addresses[0]",
        ),
        (
            r#"{"cluster": {"replication_factor_min": 3, "replication_factor_max": 2}, "consensus": {"crdt": {}}}"#,
            "cluster.replication_factor_max",
        ),
        (
            r#"{"cluster": {}, "consensus": {"crdt": {"trusted_peers": ["*", "bob"]}}}"#,
            "consensus.crdt.trusted_peers[1]",
        ),
        (
            r#"{"cluster": {}, "consensus": {"crdt": {}}, "api": {"restapi": {"basic_auth_credentials": {}}}}"#,
            "api.restapi.basic_auth_credentials",
        ),
        (r#"{"cluster": {}, "consensus": {"crdt": {}}, "plugins": {"max_instances": 0}}"#, "plugins.max_instances"),
        (
            r#"{"cluster": {}, "consensus": {"crdt": {}}, "allocator": {"plugin": {"plugin": "builtin:cors-config"}}}"#,
            "allocator.plugin.plugin",
        ),
        (r#"{"cluster": {}, "consensus": {"crdt": {}}, "source": "http://example.com/cfg"}"#, "source"),
    ];
    for (text, key) in cases {
        let e = parse(text).expect_err(key);
        assert_eq!(e.key(), key, "{e}");
    }
}

#[test]
fn environment_overrides_the_file() {
    let text = init_json(crdt());
    let secret = "cd".repeat(32);
    let loaded = parse_env(
        &text,
        &[
            ("CLUSTER_SECRET", secret.as_str()),
            ("CLUSTER_PEERNAME", "from-env"),
            ("CLUSTER_LISTENMULTIADDRESS", "/ip4/127.0.0.1/tcp/1234,/ip4/127.0.0.1/tcp/1235"),
            ("CLUSTER_REPLICATIONFACTORMIN", "2"),
            ("CLUSTER_REPLICATIONFACTORMAX", "3"),
            ("CLUSTER_DISABLEREPINNING", "false"),
            ("CLUSTER_MONITORPINGINTERVAL", "2s"),
            ("CLUSTER_FOLLOWERMODE", "true"),
            ("CLUSTER_CRDT_TRUSTEDPEERS", "*"),
            ("CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS", "/ip4/127.0.0.1/tcp/19094"),
            ("CLUSTER_RESTAPI_BASICAUTHCREDENTIALS", "alice:pw1,bob:pw2"),
            ("CLUSTER_IPFSHTTP_NODEMULTIADDRESS", "/ip4/127.0.0.1/tcp/15001"),
        ],
    )
    .expect("loads");
    let cfg = &loaded.config;
    let c = cfg.cluster();
    assert_eq!(c.secret, secret);
    assert_eq!(c.peername, "from-env");
    assert_eq!(c.listen_multiaddress.0, ["/ip4/127.0.0.1/tcp/1234", "/ip4/127.0.0.1/tcp/1235"]);
    assert_eq!((c.replication_factor_min, c.replication_factor_max), (2, 3));
    assert!(!c.disable_repinning);
    assert!(c.follower_mode);
    assert_eq!(c.monitor_ping_interval.0, Duration::from_secs(2));
    let api = cfg.api.restapi.as_ref().expect("restapi");
    assert_eq!(api.http_listen_multiaddress.0, ["/ip4/127.0.0.1/tcp/19094"]);
    assert_eq!(api.basic_auth_credentials.as_ref().map(|c| c.len()), Some(2));
    assert_eq!(cfg.ipfs_connector.ipfshttp.as_ref().expect("ipfshttp").node_multiaddress, "/ip4/127.0.0.1/tcp/15001");
    assert!(loaded.env_applied.contains(&"CLUSTER_SECRET".to_string()));
}

#[test]
fn environment_errors_name_the_variable() {
    let text = init_json(crdt());
    let e = parse_env(&text, &[("CLUSTER_REPLICATIONFACTORMIN", "lots")]).expect_err("bad number");
    assert!(e.to_string().starts_with("environment variable CLUSTER_REPLICATIONFACTORMIN: "), "{e}");
    // A wrong-length secret from the environment is still reported against the key.
    let e = parse_env(&text, &[("CLUSTER_SECRET", "abcd")]).expect_err("short secret");
    assert!(e.to_string().contains("cluster.secret: input secret is 2 bytes, cluster secret should be 32"), "{e}");
}

#[test]
fn secret_file_supplies_the_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret");
    let secret = "ef".repeat(32);
    std::fs::write(&path, format!("{secret}\n")).expect("write");
    let text = init_json(crdt());
    let path_str = path.to_string_lossy().into_owned();
    let loaded = parse_env(&text, &[("CLUSTER_SECRET_FILE", path_str.as_str())]).expect("loads");
    assert_eq!(loaded.config.cluster().secret, secret);

    let e =
        parse_env(&text, &[("CLUSTER_SECRET_FILE", path_str.as_str()), ("CLUSTER_SECRET", "")]).expect_err("both set");
    assert!(e.to_string().contains("set only one"), "{e}");
    let e = parse_env(&text, &[("CLUSTER_SECRET_FILE", "/nonexistent/secret")]).expect_err("missing file");
    assert!(
        e.to_string().starts_with("environment variable CLUSTER_SECRET_FILE: cannot read /nonexistent/secret"),
        "{e}"
    );
}

#[test]
fn files_are_written_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(SERVICE_FILE);
    ServiceConfig::for_init(crdt()).save(&path).expect("save");
    let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    load_service(&path, &no_env).expect("loads back");
}

#[test]
fn raft_serves_the_rest_api_on_the_cluster_host_unless_it_has_its_own_libp2p_host() {
    let own_host = r#""libp2p_listen_multiaddress": "/ip4/127.0.0.1/tcp/9098", "id": "x", "private_key": "y""#;
    let config = |consensus: &str, restapi: &str| {
        parse(&format!(
            r#"{{"cluster": {{}}, "consensus": {{"{consensus}": {{}}}}, "api": {{"restapi": {{{restapi}}}, "pinsvcapi": {{{own_host}}}}}}}"#
        ))
        .expect("loads")
    };
    let raft = config("raft", "");
    assert!(raft.config.restapi_on_cluster_host());
    // The Pinning Service API has no libp2p endpoint: its keys are ignored, out loud.
    assert!(
        raft.warnings.iter().any(|w| w.starts_with("api.pinsvcapi.libp2p_listen_multiaddress: ignored")),
        "{:?}",
        raft.warnings
    );
    assert!(!config("raft", own_host).config.restapi_on_cluster_host());
    assert!(!config("crdt", "").config.restapi_on_cluster_host());
}

#[test]
fn add_limits_are_read_and_reach_the_servers() {
    let mut v: serde_json::Value = serde_json::from_str(&init_json(crdt())).expect("json");
    v["api"]["restapi"]["add_max_body_bytes"] = json!(1_073_741_824);
    v["api"]["restapi"]["add_max_part_bytes"] = json!(0);
    v["api"]["ipfsproxy"]["add_max_part_bytes"] = json!(1_048_576);
    let loaded = parse(&v.to_string()).expect("loads");
    let dir = ConfigDir("/cfg".into());
    let rest = loaded.config.api.restapi.as_ref().expect("restapi");
    let server = crate::restapi::server_config(&dir, "api.restapi", cairn_api::Api::Restapi, rest).expect("server");
    // 0 is no limit, as for Go's byte counts.
    assert_eq!(server.add_limits, cairn_api::AddLimits { max_body_bytes: Some(1 << 30), max_part_bytes: None });
    let proxy = loaded.config.api.ipfsproxy.as_ref().expect("ipfsproxy");
    let proxy = crate::apis::proxy_config(&dir, proxy).expect("proxy");
    assert_eq!(proxy.add_limits, cairn_api::AddLimits { max_body_bytes: None, max_part_bytes: Some(1 << 20) });

    // Absent: no limit, and `init` does not write them (IPFS Cluster has no such keys).
    let v: serde_json::Value = serde_json::from_str(&init_json(crdt())).expect("json");
    assert!(v["api"]["restapi"].get("add_max_body_bytes").is_none());
    assert!(v["api"]["ipfsproxy"].get("add_max_part_bytes").is_none());
    let loaded = parse(&init_json(crdt())).expect("loads");
    let rest = loaded.config.api.restapi.as_ref().expect("restapi");
    let server = crate::restapi::server_config(&dir, "api.restapi", cairn_api::Api::Restapi, rest).expect("server");
    assert_eq!(server.add_limits, cairn_api::AddLimits::default());
}

/// The fuzz target for service.json: any bytes are parsed (with and without environment
/// overrides) into a config or an error, never a panic; a config that loads derives its
/// decision points and security summary without a panic either.
fn service_json_target(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for loaded in [parse(text), parse_env(text, &[("CLUSTER_SECRET", "zz"), ("CLUSTER_CRDT_TRUSTEDPEERS", "*,x")])] {
        if let Ok(loaded) = loaded {
            let _ = loaded.config.decision_points(Path::new("/cfg"));
            let _ = crate::security::summary(&loaded.config, true);
        }
    }
}

/// service.json under the stable fuzz runner: the seeds in host/fuzz-targets/corpus/service_json
/// (what `cairn init` writes for crdt and raft), then mutants for `CAIRN_FUZZ_SECS`.
#[test]
fn service_json_fuzz() {
    use cairn_fuzz_targets::runner::{self, Settings};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-targets");
    let corpus = root.join("corpus").join("service_json");
    // The seeds are real configs (what `cairn init` wrote), so mutants start deep in the parser.
    for seed in runner::read_corpus(&corpus) {
        let text = String::from_utf8(seed).expect("seed is UTF-8");
        assert!(parse(&text).is_ok(), "a seed in {} does not load", corpus.display());
    }
    // Unit tests have no CARGO_TARGET_TMPDIR: crashing inputs go to the system's temp folder.
    let crashes = std::env::temp_dir().join("cairn-fuzz-crashes");
    match runner::run("service_json", service_json_target, &corpus, &crashes, &Settings::from_env()) {
        Ok(report) => println!("{report}"),
        Err(crash) => panic!("{crash}"),
    }
}
