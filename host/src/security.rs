//! The security summary `cairn daemon` prints at start: every listener, its address, who may
//! use it and whether traffic is encrypted, with a warning for an endpoint anyone can use on a
//! non-loopback address and for a cluster without a secret (IPFS Cluster's security page
//! rules, reference §6.4).

use std::fmt;
use std::path::Path;

use cairn_policy::PluginSource;
use serde_json::Value;

use crate::config::{DecisionPoint, HttpApiConfig, ServiceConfig};

/// Who may use a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can connect.
    Open,
    /// Basic credentials (or tokens issued for them) checked by the default authorizer.
    Credentials,
    /// An operator-chosen authorizer plugin decides.
    Plugin(String),
    /// Peers holding the cluster secret, each identified by its key.
    SwarmKey,
    /// Any libp2p peer, identified by its key (no private network).
    PeerKeys,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Open => f.write_str("OPEN (no authentication)"),
            Access::Credentials => f.write_str("basic auth / tokens (builtin:basic-auth)"),
            Access::Plugin(p) => write!(f, "decided by plugin {p}"),
            Access::SwarmKey => f.write_str("cluster secret (pnet) + peer keys"),
            Access::PeerKeys => f.write_str("peer keys only (no cluster secret)"),
        }
    }
}

/// One listener of the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// What it serves, e.g. `restapi`.
    pub name: &'static str,
    /// The configured multiaddress.
    pub address: String,
    /// Who may use it.
    pub access: Access,
    /// How traffic is protected, e.g. `TLS`, `noise`, `none`.
    pub encryption: &'static str,
}

impl Listener {
    /// Whether anyone on the network can use it: open and not bound to loopback or a socket.
    pub fn exposed(&self) -> bool {
        self.access == Access::Open && !is_local(&self.address)
    }
}

/// True for loopback IPs and unix sockets, which only this machine reaches.
fn is_local(multiaddr: &str) -> bool {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    match parts.as_slice() {
        ["", "unix", ..] => true,
        ["", "ip4", ip, ..] => ip.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback()),
        ["", "ip6", ip, ..] => ip.parse::<std::net::Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()),
        _ => false,
    }
}

/// Who may use an HTTP API section (`api.restapi`, …): read from the plugin its authorizer
/// decision point runs with and that plugin's effective config, the very value the plugin is
/// loaded with, so the summary cannot disagree with what is enforced. A point missing from
/// `points` (an invalid config) counts as open, so it is warned about rather than trusted.
fn api_access(points: &[DecisionPoint], section: &str) -> Access {
    let key = format!("{section}.authorizer_plugin");
    let Some(point) = points.iter().find(|p| p.key == key) else { return Access::Open };
    match &point.spec.source {
        // builtin:basic-auth leaves the API open unless it has at least one user.
        PluginSource::Builtin(name) if name == "basic-auth" => match point.spec.config.get("basic_auth_credentials") {
            Some(Value::Object(users)) if !users.is_empty() => Access::Credentials,
            _ => Access::Open,
        },
        other => Access::Plugin(other.to_string()),
    }
}

/// The HTTP listeners of an API section.
fn http_api(out: &mut Vec<Listener>, name: &'static str, api: &HttpApiConfig, access: Access) {
    let encryption = if api.ssl_cert_file.is_empty() { "none" } else { "TLS" };
    for address in &api.http_listen_multiaddress.0 {
        out.push(Listener { name, address: address.clone(), access: access.clone(), encryption });
    }
}

/// Every listener the configuration opens (with `stats`, the `--stats` flag, the metrics
/// endpoint whatever `enable_stats` says), and the warnings about them.
pub fn summary(config: &ServiceConfig, stats: bool) -> (Vec<Listener>, Vec<String>) {
    let mut listeners = Vec::new();
    let mut warnings = Vec::new();
    // Plugin paths are shown as written, so no config folder is needed.
    let points = match config.decision_points(Path::new("")) {
        Ok(points) => points,
        Err(e) => {
            warnings.push(format!("{}: {}; the access shown below assumes no authentication", e.key, e.problem));
            Vec::new()
        }
    };
    let secret_set = config.secret_bytes().is_some();
    if let Some(cluster) = &config.cluster {
        let access = if secret_set { Access::SwarmKey } else { Access::PeerKeys };
        for address in &cluster.listen_multiaddress.0 {
            listeners.push(Listener {
                name: "cluster swarm",
                address: address.clone(),
                access: access.clone(),
                encryption: "noise",
            });
        }
    }
    if !secret_set {
        warnings.push(
            "cluster.secret is empty: any libp2p node can connect to the cluster swarm (set a 32-byte hex secret)"
                .to_string(),
        );
    }
    if let Some(api) = &config.api.restapi {
        let access = api_access(&points, "api.restapi");
        http_api(&mut listeners, "restapi", api, access.clone());
        // Its own libp2p host has no private network, as IPFS Cluster's.
        for address in api.libp2p_listen_multiaddress.iter().flat_map(|l| l.0.iter()) {
            let access = access.clone();
            listeners.push(Listener {
                name: "restapi (libp2p-http)",
                address: address.clone(),
                access,
                encryption: "noise",
            });
        }
        if config.restapi_on_cluster_host() {
            // The cluster host's private network keeps out whoever lacks the secret.
            let access = match access {
                Access::Open if secret_set => Access::SwarmKey,
                other => other,
            };
            for address in &config.cluster().listen_multiaddress.0 {
                let access = access.clone();
                listeners.push(Listener {
                    name: "restapi (libp2p-http, cluster host)",
                    address: address.clone(),
                    access,
                    encryption: "noise",
                });
            }
        }
    }
    if let Some(api) = &config.api.pinsvcapi {
        http_api(&mut listeners, "pinsvcapi", api, api_access(&points, "api.pinsvcapi"));
    }
    if let Some(proxy) = &config.api.ipfsproxy {
        let access = api_access(&points, "api.ipfsproxy");
        for address in &proxy.listen_multiaddress.0 {
            listeners.push(Listener {
                name: "ipfsproxy",
                address: address.clone(),
                access: access.clone(),
                encryption: "none",
            });
        }
    }
    if let Some(node) = &config.ipfs_connector.embedded {
        // The embedded node's bitswap serves any block it holds to whoever can connect.
        let access = if node.private_network { Access::SwarmKey } else { Access::Open };
        for address in &node.listen_multiaddress {
            listeners.push(Listener {
                name: "ipfs (embedded node)",
                address: address.clone(),
                access: access.clone(),
                encryption: "noise",
            });
        }
    }
    let metrics = &config.observations.metrics;
    if metrics.enable_stats || stats {
        listeners.push(Listener {
            name: "prometheus",
            address: metrics.prometheus_endpoint.clone(),
            access: Access::Open,
            encryption: "none",
        });
    }
    for listener in &listeners {
        if listener.exposed() {
            warnings.push(format!(
                "{} on {} has no authentication and is not bound to loopback: anyone who reaches this address can use it",
                listener.name, listener.address
            ));
        }
    }
    (listeners, warnings)
}

/// Logs the summary: one line per listener, one warning per problem.
pub fn log(config: &ServiceConfig, stats: bool) {
    let (listeners, warnings) = summary(config, stats);
    for l in &listeners {
        tracing::info!(target: "cairn::security", "listener {:<24} {:<32} access: {}; encryption: {}", l.name, l.address, l.access, l.encryption);
    }
    for w in &warnings {
        tracing::warn!(target: "cairn::security", "{w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> ServiceConfig {
        serde_json::from_value(json).expect("config")
    }

    #[test]
    fn loopback_and_sockets_are_local() {
        assert!(is_local("/ip4/127.0.0.1/tcp/9094"));
        assert!(is_local("/ip6/::1/tcp/9094"));
        assert!(is_local("/unix/run/cairn.sock"));
        assert!(!is_local("/ip4/0.0.0.0/tcp/9094"));
        assert!(!is_local("/ip4/10.0.0.1/tcp/9094"));
        assert!(!is_local("/dns4/example.com/tcp/9094"));
    }

    #[test]
    fn open_endpoints_off_loopback_and_an_empty_secret_are_warned_about() {
        let cfg = config(serde_json::json!({
            "cluster": {"secret": "", "listen_multiaddress": "/ip4/0.0.0.0/tcp/9096"},
            "consensus": {"crdt": {}},
            "api": {
                "restapi": {"http_listen_multiaddress": "/ip4/0.0.0.0/tcp/9094"},
                "pinsvcapi": {"http_listen_multiaddress": "/ip4/0.0.0.0/tcp/9097", "basic_auth_credentials": {"u": "p"}},
                "ipfsproxy": {"listen_multiaddress": "/ip4/127.0.0.1/tcp/9095"}
            },
            "observations": {"metrics": {"enable_stats": true, "prometheus_endpoint": "/ip4/0.0.0.0/tcp/8888"}}
        }));
        let (listeners, warnings) = summary(&cfg, false);
        let names: Vec<&str> = listeners.iter().map(|l| l.name).collect();
        assert_eq!(names, ["cluster swarm", "restapi", "pinsvcapi", "ipfsproxy", "prometheus"]);
        assert_eq!(listeners[0].access, Access::PeerKeys);
        assert_eq!(listeners[2].access, Access::Credentials);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("cluster.secret is empty"));
        assert!(warnings[1].contains("restapi on /ip4/0.0.0.0/tcp/9094"));
        assert!(warnings[2].contains("prometheus on /ip4/0.0.0.0/tcp/8888"));
    }

    #[test]
    fn a_custom_authorizer_is_named_and_not_warned_about() {
        let cfg = config(serde_json::json!({
            "cluster": {"secret": "aa".repeat(32)},
            "consensus": {"crdt": {}},
            "api": {"restapi": {
                "http_listen_multiaddress": "/ip4/0.0.0.0/tcp/9094",
                "ssl_cert_file": "cert.pem", "ssl_key_file": "key.pem",
                "authorizer_plugin": {"plugin": "plugins/tokens.wasm"}
            }}
        }));
        let (listeners, warnings) = summary(&cfg, false);
        let rest = listeners.iter().find(|l| l.name == "restapi").expect("restapi");
        assert_eq!(rest.access, Access::Plugin("plugins/tokens.wasm".into()));
        assert_eq!(rest.encryption, "TLS");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    /// Issue #14.4: credentials in the section with an explicit builtin:basic-auth config.
    /// Every API line (REST, its libp2p-http host, Pinning Service API, proxy) reports what
    /// the plugin is loaded with.
    #[test]
    fn the_summary_describes_the_plugins_effective_config() {
        let explicit = serde_json::json!({"plugin": "builtin:basic-auth", "config": {"token_lifetime": "24h"}});
        let creds = serde_json::json!({"admin": "pw"});
        let cfg = config(serde_json::json!({
            "cluster": {"secret": "aa".repeat(32)},
            "consensus": {"crdt": {}},
            "api": {
                "restapi": {
                    "http_listen_multiaddress": "/ip4/0.0.0.0/tcp/9094",
                    "libp2p_listen_multiaddress": "/ip4/0.0.0.0/tcp/9099", "id": "x", "private_key": "y",
                    "basic_auth_credentials": creds, "authorizer_plugin": explicit
                },
                "pinsvcapi": {"http_listen_multiaddress": "/ip4/0.0.0.0/tcp/9097",
                              "basic_auth_credentials": creds, "authorizer_plugin": explicit},
                "ipfsproxy": {"listen_multiaddress": "/ip4/0.0.0.0/tcp/9095",
                              "basic_auth_credentials": creds, "authorizer_plugin": explicit}
            }
        }));
        let points = cfg.decision_points(Path::new("")).expect("valid");
        let (listeners, warnings) = summary(&cfg, false);
        for l in &listeners {
            if l.name == "cluster swarm" {
                continue;
            }
            let key = match l.name {
                "restapi" | "restapi (libp2p-http)" => "api.restapi.authorizer_plugin",
                "pinsvcapi" => "api.pinsvcapi.authorizer_plugin",
                "ipfsproxy" => "api.ipfsproxy.authorizer_plugin",
                other => panic!("unexpected listener {other}"),
            };
            let point = points.iter().find(|p| p.key == key).expect("point");
            // What the plugin enforces: it has users.
            assert_eq!(point.spec.config["basic_auth_credentials"], creds, "{key}");
            assert_eq!(l.access, Access::Credentials, "{l:?}");
        }
        assert_eq!(listeners.len(), 5, "{listeners:?}");
        assert!(warnings.is_empty(), "{warnings:?}");

        // An explicit config that opens the API while the section has users is refused (by the
        // load); the summary never calls it protected.
        let mut open = cfg.clone();
        if let Some(api) = open.api.restapi.as_mut() {
            api.authorizer_plugin = serde_json::from_value(
                serde_json::json!({"plugin": "builtin:basic-auth", "config": {"basic_auth_credentials": null}}),
            )
            .expect("plugin ref");
        }
        assert!(open.decision_points(Path::new("")).is_err());
        let (listeners, warnings) = summary(&open, false);
        let rest = listeners.iter().find(|l| l.name == "restapi").expect("restapi");
        assert_eq!(rest.access, Access::Open);
        assert!(warnings[0].contains("api.restapi.authorizer_plugin.config.basic_auth_credentials"), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("restapi on /ip4/0.0.0.0/tcp/9094")), "{warnings:?}");
    }

    #[test]
    fn raft_serves_the_rest_api_on_the_cluster_host_behind_the_secret() {
        let raft = |secret: &str, restapi: serde_json::Value| {
            config(serde_json::json!({
                "cluster": {"secret": secret, "listen_multiaddress": "/ip4/0.0.0.0/tcp/9096"},
                "consensus": {"raft": {}},
                "api": {"restapi": restapi, "pinsvcapi": {"libp2p_listen_multiaddress": "/ip4/0.0.0.0/tcp/9098"}}
            }))
        };
        let on_host = |cfg: &ServiceConfig| -> Vec<Listener> {
            summary(cfg, false).0.into_iter().filter(|l| l.name.contains("libp2p-http")).collect()
        };
        // With a secret, an open REST API on the cluster host is still limited to secret holders.
        let cfg = raft(&"aa".repeat(32), serde_json::json!({}));
        let found = on_host(&cfg);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].name, found[0].address.as_str(), &found[0].access),
            ("restapi (libp2p-http, cluster host)", "/ip4/0.0.0.0/tcp/9096", &Access::SwarmKey)
        );
        assert!(summary(&cfg, false).1.is_empty(), "{:?}", summary(&cfg, false).1);
        // Without one, anyone can use it: a warning names it.
        let (_, warnings) = summary(&raft("", serde_json::json!({})), false);
        assert!(
            warnings.iter().any(|w| w.contains("restapi (libp2p-http, cluster host) on /ip4/0.0.0.0/tcp/9096")),
            "{warnings:?}"
        );
        // A separate libp2p host replaces the cluster host (and has no private network).
        let key = serde_json::json!({
            "libp2p_listen_multiaddress": "/ip4/0.0.0.0/tcp/9099", "id": "x", "private_key": "y",
            "basic_auth_credentials": {"u": "p"}
        });
        let found = on_host(&raft(&"aa".repeat(32), key));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].name, &found[0].access), ("restapi (libp2p-http)", &Access::Credentials));
        // crdt never uses the cluster host.
        let mut crdt = raft(&"aa".repeat(32), serde_json::json!({}));
        crdt.consensus.crdt = crdt.consensus.raft.take().map(|_| Default::default());
        assert!(on_host(&crdt).is_empty());
    }
}
