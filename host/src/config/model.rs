//! The service.json model: IPFS Cluster's sections, keys and defaults (reference §5), plus
//! Cairn's plugin keys. Every section struct reads with `#[serde(default)]`, so a missing key
//! takes the default listed here, and unknown keys are ignored as Go's decoder ignores them.
//!
//! Where a key's *absence* means something different from its default (the CORS keys, the
//! credentials, `trusted_peers`), the field is an `Option` with a field-level `default`, so
//! it stays `None` when absent while `init` still writes IPFS Cluster's value.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::duration::GoDuration;
use super::plugins::{PluginRef, PluginsSection};

/// A multiaddress key that accepts a string or a list of strings, as IPFS Cluster does;
/// written as a string when it holds one address, as a list otherwise (as Go writes them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiaddrList(pub Vec<String>);

impl MultiaddrList {
    fn one(addr: &str) -> Self {
        MultiaddrList(vec![addr.to_string()])
    }
}

impl Serialize for MultiaddrList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for MultiaddrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a multiaddress string or a list of them")]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(s) if s.is_empty() => MultiaddrList(Vec::new()),
            OneOrMany::One(s) => MultiaddrList(vec![s]),
            OneOrMany::Many(v) => MultiaddrList(v),
        })
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The `POST /add` limits of an API section's byte counts (0: no limit, as Go's byte counts).
fn add_limits(max_body_bytes: u64, max_part_bytes: u64) -> cairn_api::AddLimits {
    cairn_api::AddLimits {
        max_body_bytes: (max_body_bytes > 0).then_some(max_body_bytes),
        max_part_bytes: (max_part_bytes > 0).then_some(max_part_bytes),
    }
}

/// The whole service.json. Section presence matters (an absent API section is an API that
/// does not start), so optional sections are `Option`s.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ServiceConfig {
    /// IPFS Cluster's remote-config URL. Not supported; refused by validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The `cluster` section; required (IPFS Cluster fails validation without it).
    pub cluster: Option<ClusterConfig>,
    pub consensus: ConsensusSection,
    pub api: ApiSection,
    pub ipfs_connector: IpfsConnectorSection,
    /// IPFS Cluster's `state` section (no documented keys); kept as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
    pub pin_tracker: PinTrackerSection,
    pub monitor: MonitorSection,
    pub allocator: AllocatorSection,
    pub informer: InformerSection,
    pub observations: ObservationsSection,
    #[serde(skip_serializing_if = "DatastoreSection::is_empty")]
    pub datastore: DatastoreSection,
    /// Cairn: the plugin runtime's limits.
    pub plugins: PluginsSection,
}

/// Section → the sub-section names Cairn knows; anything else is warned about and ignored.
pub(crate) const KNOWN_SECTIONS: &[(&str, Option<&[&str]>)] = &[
    ("source", None),
    ("cluster", None),
    ("consensus", Some(&["crdt", "raft"])),
    ("api", Some(&["restapi", "pinsvcapi", "ipfsproxy"])),
    ("ipfs_connector", Some(&["ipfshttp", "embedded"])),
    ("state", None),
    ("pin_tracker", Some(&["stateless"])),
    ("monitor", Some(&["pubsubmon"])),
    ("allocator", Some(&["balanced", "plugin"])),
    ("informer", Some(&["disk", "tags", "pinqueue", "numpin"])),
    ("observations", Some(&["metrics", "tracing"])),
    ("datastore", Some(&["pebble", "badger3", "badger", "leveldb"])),
    ("plugins", None),
];

/// `cluster` (reference §5.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// Human name of this peer; IPFS Cluster defaults it to the hostname.
    pub peername: String,
    /// 64 hex characters (32 bytes), the libp2p private-network key; `""` = no PSK.
    pub secret: String,
    pub leave_on_shutdown: bool,
    pub listen_multiaddress: MultiaddrList,
    pub announce_multiaddress: Vec<String>,
    pub no_announce_multiaddress: Vec<String>,
    pub enable_relay_hop: bool,
    pub connection_manager: ConnectionManager,
    pub resource_manager: ResourceManager,
    pub pubsub: PubsubConfig,
    pub dial_peer_timeout: GoDuration,
    pub state_sync_interval: GoDuration,
    pub pin_recover_interval: GoDuration,
    pub replication_factor_min: i32,
    pub replication_factor_max: i32,
    pub monitor_ping_interval: GoDuration,
    pub peer_watch_interval: GoDuration,
    /// `"0s"` disables mDNS (Cairn's default; IPFS Cluster's is `"10s"`).
    pub mdns_interval: GoDuration,
    pub pin_only_on_trusted_peers: bool,
    pub pin_only_on_untrusted_peers: bool,
    pub disable_repinning: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub follower_mode: bool,
    #[serde(skip_serializing_if = "is_default_peerstore")]
    pub peerstore_file: String,
    pub peer_addresses: Vec<String>,
    /// Legacy identity in service.json, used when identity.json is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Legacy identity in service.json, used when identity.json is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

fn is_default_peerstore(s: &String) -> bool {
    s == "peerstore"
}

/// The default listen address. IPFS Cluster also lists `/ip4/0.0.0.0/udp/9096/quic`, which
/// has no transport under a private network; Cairn leaves it out (a config listing it loads).
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/9096";

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            peername: hostname(),
            secret: String::new(),
            leave_on_shutdown: false,
            listen_multiaddress: MultiaddrList::one(DEFAULT_LISTEN),
            announce_multiaddress: Vec::new(),
            no_announce_multiaddress: Vec::new(),
            enable_relay_hop: true,
            connection_manager: ConnectionManager::default(),
            resource_manager: ResourceManager::default(),
            pubsub: PubsubConfig::default(),
            dial_peer_timeout: GoDuration::secs(3),
            state_sync_interval: GoDuration::secs(5 * 60),
            pin_recover_interval: GoDuration::secs(12 * 60),
            replication_factor_min: -1,
            replication_factor_max: -1,
            monitor_ping_interval: GoDuration::secs(15),
            peer_watch_interval: GoDuration::secs(5),
            mdns_interval: GoDuration::secs(0),
            pin_only_on_trusted_peers: false,
            pin_only_on_untrusted_peers: false,
            disable_repinning: true,
            follower_mode: false,
            peerstore_file: "peerstore".into(),
            peer_addresses: Vec::new(),
            id: None,
            private_key: None,
        }
    }
}

/// This machine's hostname, IPFS Cluster's default peername.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "cairn".into())
}

/// `cluster.connection_manager`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionManager {
    pub high_water: u32,
    pub low_water: u32,
    pub grace_period: GoDuration,
}

impl Default for ConnectionManager {
    fn default() -> Self {
        ConnectionManager { high_water: 400, low_water: 100, grace_period: GoDuration::secs(120) }
    }
}

/// `cluster.resource_manager`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceManager {
    pub enabled: bool,
    /// 0 = 25% of RAM, at least 1 GiB.
    pub memory_limit_bytes: u64,
    /// 0 = half the process's file descriptors.
    pub file_descriptors_limit: u64,
}

impl Default for ResourceManager {
    fn default() -> Self {
        ResourceManager { enabled: true, memory_limit_bytes: 0, file_descriptors_limit: 0 }
    }
}

/// `cluster.pubsub`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PubsubConfig {
    pub seen_messages_ttl: GoDuration,
    pub heartbeat_interval: GoDuration,
    pub d_factor: u32,
    pub history_gossip: u32,
    pub history_length: u32,
    pub flood_publish: bool,
}

impl Default for PubsubConfig {
    fn default() -> Self {
        PubsubConfig {
            seen_messages_ttl: GoDuration::secs(30 * 60),
            heartbeat_interval: GoDuration::secs(10),
            d_factor: 4,
            history_gossip: 2,
            history_length: 6,
            flood_publish: false,
        }
    }
}

/// `consensus`: exactly one of `crdt` / `raft` must be present.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ConsensusSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crdt: Option<CrdtConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft: Option<RaftConfig>,
}

/// `consensus.crdt` (reference §5.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CrdtConfig {
    pub cluster_name: String,
    /// `"*"` anywhere trusts all; absent or `[]` trusts nobody but self. `init` writes `["*"]`.
    #[serde(default)]
    pub trusted_peers: Option<Vec<String>>,
    pub batching: CrdtBatching,
    pub repair_interval: GoDuration,
    #[serde(skip_serializing_if = "is_default_rebroadcast")]
    pub rebroadcast_interval: GoDuration,
    #[serde(skip_serializing_if = "is_default_peerset_metric")]
    pub peerset_metric: String,
    #[serde(skip_serializing_if = "is_default_crdt_namespace")]
    pub datastore_namespace: String,
    /// Cairn: the peer authorizer (default `builtin:trusted-peers` fed `trusted_peers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_authorizer_plugin: Option<PluginRef>,
    /// Cairn: how often to reconcile the pinset with trusted peers (default 5s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_interval: Option<GoDuration>,
}

fn is_default_rebroadcast(d: &GoDuration) -> bool {
    *d == GoDuration::secs(60)
}
fn is_default_peerset_metric(s: &String) -> bool {
    s == "ping"
}
fn is_default_crdt_namespace(s: &String) -> bool {
    s == "/c"
}

impl Default for CrdtConfig {
    fn default() -> Self {
        CrdtConfig {
            cluster_name: "ipfs-cluster".into(),
            trusted_peers: Some(vec!["*".into()]),
            batching: CrdtBatching::default(),
            repair_interval: GoDuration::secs(3600),
            rebroadcast_interval: GoDuration::secs(60),
            peerset_metric: "ping".into(),
            datastore_namespace: "/c".into(),
            peer_authorizer_plugin: None,
            sync_interval: None,
        }
    }
}

/// `consensus.crdt.batching`: batching happens only when both size and age are > 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CrdtBatching {
    pub max_batch_size: u64,
    pub max_batch_age: GoDuration,
    #[serde(skip_serializing_if = "is_default_queue")]
    pub max_queue_size: u64,
}

fn is_default_queue(n: &u64) -> bool {
    *n == 50_000
}

impl Default for CrdtBatching {
    fn default() -> Self {
        CrdtBatching { max_batch_size: 0, max_batch_age: GoDuration::secs(0), max_queue_size: 50_000 }
    }
}

/// `consensus.raft` (reference §5.5; the timing values are hashicorp/raft's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RaftConfig {
    pub init_peerset: Vec<String>,
    pub wait_for_leader_timeout: GoDuration,
    pub network_timeout: GoDuration,
    pub commit_retries: u32,
    pub commit_retry_delay: GoDuration,
    pub backups_rotate: u32,
    pub heartbeat_timeout: GoDuration,
    pub election_timeout: GoDuration,
    pub commit_timeout: GoDuration,
    pub max_append_entries: u32,
    pub trailing_logs: u64,
    pub snapshot_interval: GoDuration,
    pub snapshot_threshold: u64,
    pub leader_lease_timeout: GoDuration,
    /// Default `<config dir>/raft`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_folder: Option<String>,
    #[serde(skip_serializing_if = "is_default_raft_namespace")]
    pub datastore_namespace: String,
    /// Cairn: the peer authorizer (default `builtin:trusted-peers` trusting every peer, as
    /// IPFS Cluster's raft does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_authorizer_plugin: Option<PluginRef>,
}

fn is_default_raft_namespace(s: &String) -> bool {
    s == "/r"
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            init_peerset: Vec::new(),
            wait_for_leader_timeout: GoDuration::secs(15),
            network_timeout: GoDuration::secs(10),
            commit_retries: 1,
            commit_retry_delay: GoDuration::millis(200),
            backups_rotate: 6,
            heartbeat_timeout: GoDuration::secs(1),
            election_timeout: GoDuration::secs(1),
            commit_timeout: GoDuration::millis(50),
            max_append_entries: 64,
            trailing_logs: 10240,
            snapshot_interval: GoDuration::secs(120),
            snapshot_threshold: 8192,
            leader_lease_timeout: GoDuration::millis(500),
            data_folder: None,
            datastore_namespace: "/r".into(),
            peer_authorizer_plugin: None,
        }
    }
}

/// `api`: an absent sub-section is an API that does not start.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ApiSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restapi: Option<HttpApiConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinsvcapi: Option<HttpApiConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipfsproxy: Option<IpfsProxyConfig>,
}

/// `api.restapi` and `api.pinsvcapi` (reference §1.8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpApiConfig {
    pub http_listen_multiaddress: MultiaddrList,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ssl_cert_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ssl_key_file: String,
    /// Cairn: verify client certificates against this CA bundle (PEM); the verified subject
    /// reaches the authorizer. Relative to the config folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_client_ca_file: Option<String>,
    /// Cairn: with `ssl_client_ca_file`, refuse clients without a certificate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ssl_client_cert_required: bool,
    pub read_timeout: GoDuration,
    pub read_header_timeout: GoDuration,
    pub write_timeout: GoDuration,
    pub idle_timeout: GoDuration,
    pub max_header_bytes: u64,
    /// Cairn: most bytes of a `POST /add` body (0: no limit, as in IPFS Cluster). Memory stays
    /// bounded without it; it bounds what one add may store.
    #[serde(skip_serializing_if = "is_zero")]
    pub add_max_body_bytes: u64,
    /// Cairn: most bytes of one file of a `POST /add` body (0: no limit).
    #[serde(skip_serializing_if = "is_zero")]
    pub add_max_part_bytes: u64,
    /// `null`/absent = no authentication; `{}` is refused by the default authorizer.
    #[serde(default)]
    pub basic_auth_credentials: Option<BTreeMap<String, String>>,
    pub http_log_file: String,
    pub headers: BTreeMap<String, Vec<String>>,
    // The CORS keys are `None` when absent: rs/cors's defaults then apply, which differ
    // from what `init` writes (reference §1.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_allowed_origins: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_allowed_methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_allowed_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_exposed_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_allow_credentials: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_max_age: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub libp2p_listen_multiaddress: Option<MultiaddrList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Cairn: this API's authorizer (default `builtin:basic-auth`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_plugin: Option<PluginRef>,
    /// Cairn: this API's CORS policy (default `builtin:cors-config`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_plugin: Option<PluginRef>,
}

impl HttpApiConfig {
    /// The section as `init` writes it, listening on `listen`.
    pub fn with_listen(listen: &str) -> Self {
        HttpApiConfig {
            http_listen_multiaddress: MultiaddrList::one(listen),
            ssl_cert_file: String::new(),
            ssl_key_file: String::new(),
            ssl_client_ca_file: None,
            ssl_client_cert_required: false,
            read_timeout: GoDuration::secs(0),
            read_header_timeout: GoDuration::secs(5),
            write_timeout: GoDuration::secs(0),
            idle_timeout: GoDuration::secs(120),
            max_header_bytes: 4096,
            add_max_body_bytes: 0,
            add_max_part_bytes: 0,
            basic_auth_credentials: None,
            http_log_file: String::new(),
            headers: BTreeMap::new(),
            cors_allowed_origins: Some(vec!["*".into()]),
            cors_allowed_methods: Some(vec!["GET".into()]),
            cors_allowed_headers: Some(Vec::new()),
            cors_exposed_headers: Some(
                ["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length"].map(String::from).to_vec(),
            ),
            cors_allow_credentials: Some(true),
            cors_max_age: Some(GoDuration::secs(0)),
            libp2p_listen_multiaddress: None,
            id: None,
            private_key: None,
            authorizer_plugin: None,
            cors_plugin: None,
        }
    }

    /// The `POST /add` limits of `add_max_body_bytes` and `add_max_part_bytes`.
    pub fn add_limits(&self) -> cairn_api::AddLimits {
        add_limits(self.add_max_body_bytes, self.add_max_part_bytes)
    }

    /// The IPFS Cluster keys the default CORS plugin reads, as present in the section.
    pub fn cors_keys(&self) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        let mut put = |key: &str, v: Option<Value>| {
            if let Some(v) = v {
                map.insert(key.to_string(), v);
            }
        };
        put("cors_allowed_origins", self.cors_allowed_origins.clone().map(Value::from));
        put("cors_allowed_methods", self.cors_allowed_methods.clone().map(Value::from));
        put("cors_allowed_headers", self.cors_allowed_headers.clone().map(Value::from));
        put("cors_exposed_headers", self.cors_exposed_headers.clone().map(Value::from));
        put("cors_allow_credentials", self.cors_allow_credentials.map(Value::from));
        put("cors_max_age", self.cors_max_age.map(|d| Value::from(d.to_string())));
        map
    }
}

/// Default address of the REST API.
pub const RESTAPI_LISTEN: &str = "/ip4/127.0.0.1/tcp/9094";
/// Default address of the Pinning Service API.
pub const PINSVCAPI_LISTEN: &str = "/ip4/127.0.0.1/tcp/9097";

// Not derivable: the timeouts and CORS values come from `with_listen`.
#[allow(clippy::derivable_impls)]
impl Default for HttpApiConfig {
    fn default() -> Self {
        // No listen address: restapi and pinsvcapi differ, and an empty one keeps the API's
        // default in IPFS Cluster, so the loader fills it in per API.
        HttpApiConfig { http_listen_multiaddress: MultiaddrList::default(), ..HttpApiConfig::with_listen("") }
    }
}

/// `api.ipfsproxy` (reference §3.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpfsProxyConfig {
    pub listen_multiaddress: MultiaddrList,
    pub node_multiaddress: String,
    #[serde(skip_serializing_if = "is_false")]
    pub node_https: bool,
    pub log_file: String,
    pub read_timeout: GoDuration,
    pub read_header_timeout: GoDuration,
    pub write_timeout: GoDuration,
    pub idle_timeout: GoDuration,
    pub max_header_bytes: u64,
    /// Cairn: most bytes of an `/api/v0/add` body (0: no limit, as in IPFS Cluster).
    #[serde(skip_serializing_if = "is_zero")]
    pub add_max_body_bytes: u64,
    /// Cairn: most bytes of one file of an `/api/v0/add` body (0: no limit).
    #[serde(skip_serializing_if = "is_zero")]
    pub add_max_part_bytes: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extract_headers_extra: Vec<String>,
    #[serde(skip_serializing_if = "is_default_extract_path")]
    pub extract_headers_path: String,
    #[serde(skip_serializing_if = "is_default_extract_ttl")]
    pub extract_headers_ttl: GoDuration,
    /// Cairn addition (IPFS Cluster's proxy has no authentication): credentials for the
    /// default authorizer; absent = open, as in IPFS Cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_credentials: Option<BTreeMap<String, String>>,
    /// Cairn: the proxy's authorizer (default `builtin:basic-auth`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_plugin: Option<PluginRef>,
    /// Cairn: the proxy's CORS policy (default `builtin:cors-config` with rs/cors defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_plugin: Option<PluginRef>,
}

fn is_default_extract_path(s: &String) -> bool {
    s == "/api/v0/version"
}
fn is_default_extract_ttl(d: &GoDuration) -> bool {
    *d == GoDuration::secs(300)
}

impl IpfsProxyConfig {
    /// The `/api/v0/add` limits of `add_max_body_bytes` and `add_max_part_bytes`.
    pub fn add_limits(&self) -> cairn_api::AddLimits {
        add_limits(self.add_max_body_bytes, self.add_max_part_bytes)
    }
}

impl Default for IpfsProxyConfig {
    fn default() -> Self {
        IpfsProxyConfig {
            listen_multiaddress: MultiaddrList::one("/ip4/127.0.0.1/tcp/9095"),
            node_multiaddress: "/ip4/127.0.0.1/tcp/5001".into(),
            node_https: false,
            log_file: String::new(),
            read_timeout: GoDuration::secs(0),
            read_header_timeout: GoDuration::secs(5),
            write_timeout: GoDuration::secs(0),
            idle_timeout: GoDuration::secs(60),
            max_header_bytes: 4096,
            add_max_body_bytes: 0,
            add_max_part_bytes: 0,
            extract_headers_extra: Vec::new(),
            extract_headers_path: "/api/v0/version".into(),
            extract_headers_ttl: GoDuration::secs(300),
            basic_auth_credentials: None,
            authorizer_plugin: None,
            cors_plugin: None,
        }
    }
}

/// `ipfs_connector`: exactly one backend. Without the section, IPFS Cluster's default
/// (`ipfshttp` on 127.0.0.1:5001); with it, whichever sub-section is present.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IpfsConnectorSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipfshttp: Option<IpfsHttpConfig>,
    /// Cairn: an IPFS node inside the peer, so no IPFS daemon is needed (`cairn init --ipfs
    /// embedded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<cairn_ipfs_embedded::EmbeddedIpfsConfig>,
}

impl Default for IpfsConnectorSection {
    fn default() -> Self {
        IpfsConnectorSection { ipfshttp: Some(IpfsHttpConfig::default()), embedded: None }
    }
}

impl IpfsConnectorSection {
    /// An embedded node's section as `init --ipfs embedded` writes it.
    pub fn embedded() -> Self {
        IpfsConnectorSection { ipfshttp: None, embedded: Some(cairn_ipfs_embedded::EmbeddedIpfsConfig::default()) }
    }

    /// `connect_swarms_delay` of ipfshttp; an embedded node connects at once.
    pub fn connect_swarms_delay(&self) -> std::time::Duration {
        match &self.ipfshttp {
            Some(http) => http.connect_swarms_delay.0,
            None => std::time::Duration::from_secs(1),
        }
    }
}

/// `ipfs_connector.ipfshttp` (reference §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpfsHttpConfig {
    pub node_multiaddress: String,
    pub connect_swarms_delay: GoDuration,
    pub ipfs_request_timeout: GoDuration,
    pub pin_timeout: GoDuration,
    pub unpin_timeout: GoDuration,
    pub repogc_timeout: GoDuration,
    pub informer_trigger_interval: u64,
    #[serde(skip_serializing_if = "is_false")]
    pub unpin_disable: bool,
}

impl Default for IpfsHttpConfig {
    fn default() -> Self {
        IpfsHttpConfig {
            node_multiaddress: "/ip4/127.0.0.1/tcp/5001".into(),
            connect_swarms_delay: GoDuration::secs(30),
            ipfs_request_timeout: GoDuration::secs(300),
            pin_timeout: GoDuration::secs(120),
            unpin_timeout: GoDuration::secs(3 * 3600),
            repogc_timeout: GoDuration::secs(24 * 3600),
            informer_trigger_interval: 0,
            unpin_disable: false,
        }
    }
}

/// `pin_tracker`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PinTrackerSection {
    pub stateless: StatelessTrackerConfig,
}

/// `pin_tracker.stateless`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatelessTrackerConfig {
    pub concurrent_pins: u32,
    pub priority_pin_max_age: GoDuration,
    pub priority_pin_max_retries: u32,
    #[serde(skip_serializing_if = "is_default_pin_queue")]
    pub max_pin_queue_size: u64,
}

fn is_default_pin_queue(n: &u64) -> bool {
    *n == 1_000_000
}

impl Default for StatelessTrackerConfig {
    fn default() -> Self {
        StatelessTrackerConfig {
            concurrent_pins: 10,
            priority_pin_max_age: GoDuration::secs(24 * 3600),
            priority_pin_max_retries: 5,
            max_pin_queue_size: 1_000_000,
        }
    }
}

/// `monitor`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MonitorSection {
    pub pubsubmon: PubsubMonConfig,
}

/// `monitor.pubsubmon`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PubsubMonConfig {
    pub check_interval: GoDuration,
}

impl Default for PubsubMonConfig {
    fn default() -> Self {
        PubsubMonConfig { check_interval: GoDuration::secs(15) }
    }
}

/// `allocator`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocatorSection {
    /// Absent: IPFS Cluster forces `allocate_by` to `["freespace"]` (legacy behaviour).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balanced: Option<BalancedConfig>,
    /// Cairn: the allocator plugin (default `builtin:balanced` fed `allocate_by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRef>,
}

/// `allocator.balanced`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BalancedConfig {
    /// An empty list keeps the default.
    pub allocate_by: Vec<String>,
}

/// `allocate_by`'s default.
pub fn default_allocate_by() -> Vec<String> {
    vec!["tag:group".into(), "freespace".into()]
}

impl Default for BalancedConfig {
    fn default() -> Self {
        BalancedConfig { allocate_by: default_allocate_by() }
    }
}

/// `informer`: an absent informer is not run.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct InformerSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskInformerConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagsInformerConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinqueue: Option<PinQueueInformerConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numpin: Option<NumPinInformerConfig>,
}

/// `informer.disk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskInformerConfig {
    pub metric_ttl: GoDuration,
    /// `"freespace"` or `"reposize"`.
    pub metric_type: String,
}

impl Default for DiskInformerConfig {
    fn default() -> Self {
        DiskInformerConfig { metric_ttl: GoDuration::secs(30), metric_type: "freespace".into() }
    }
}

/// `informer.tags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TagsInformerConfig {
    pub metric_ttl: GoDuration,
    pub tags: BTreeMap<String, String>,
}

impl Default for TagsInformerConfig {
    fn default() -> Self {
        TagsInformerConfig {
            metric_ttl: GoDuration::secs(30),
            tags: BTreeMap::from([("group".to_string(), "default".to_string())]),
        }
    }
}

/// `informer.pinqueue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PinQueueInformerConfig {
    pub metric_ttl: GoDuration,
    pub weight_bucket_size: u64,
}

impl Default for PinQueueInformerConfig {
    fn default() -> Self {
        PinQueueInformerConfig { metric_ttl: GoDuration::secs(30), weight_bucket_size: 100_000 }
    }
}

/// `informer.numpin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NumPinInformerConfig {
    pub metric_ttl: GoDuration,
}

impl Default for NumPinInformerConfig {
    fn default() -> Self {
        NumPinInformerConfig { metric_ttl: GoDuration::secs(10) }
    }
}

/// `observations`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ObservationsSection {
    pub metrics: MetricsConfig,
    pub tracing: TracingConfig,
}

/// `observations.metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    pub enable_stats: bool,
    pub prometheus_endpoint: String,
    pub reporting_interval: GoDuration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enable_stats: false,
            prometheus_endpoint: "/ip4/127.0.0.1/tcp/8888".into(),
            reporting_interval: GoDuration::secs(30),
        }
    }
}

/// `observations.tracing`: IPFS Cluster's keys, plus Cairn's `otlp_endpoint`.
///
/// With `enable_tracing` (or `cairn daemon --tracing`), spans of API requests, peer RPC
/// calls (sent and served), consensus commits, pin tracker operations and IPFS calls are
/// exported over OTLP/HTTP (protobuf, `POST <endpoint>/v1/traces`), sampled at
/// `sampling_prob` (a child of a sampled span is always kept), as service
/// `<service_name>-<peername>` with the attribute `cluster_id` = the peer id, as IPFS Cluster
/// reports them.
///
/// IPFS Cluster sends spans to a Jaeger agent over UDP (`jaeger_agent_endpoint`,
/// `/ip4/0.0.0.0/udp/6831`). That agent protocol is deprecated (Jaeger itself now takes
/// OTLP), so Cairn exports OTLP only, to:
/// 1. `otlp_endpoint` when set: a base URL, `http://` or `https://` (verified against the
///    system's trust store; `SSL_CERT_FILE` names another), e.g. `http://127.0.0.1:4318`;
/// 2. otherwise the host of `jaeger_agent_endpoint` with the OTLP/HTTP port 4318 (Jaeger's
///    OTLP receiver): `/ip4/10.0.0.5/udp/6831` → `http://10.0.0.5:4318`, and the unspecified
///    `0.0.0.0`/`::` of the default → `127.0.0.1`, giving `http://127.0.0.1:4318`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TracingConfig {
    pub enable_tracing: bool,
    pub jaeger_agent_endpoint: String,
    pub sampling_prob: f64,
    pub service_name: String,
    /// Cairn: the OTLP/HTTP collector's base URL (see above); absent by default, so a
    /// service.json written by `cairn init` stays IPFS Cluster's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            enable_tracing: false,
            jaeger_agent_endpoint: "/ip4/0.0.0.0/udp/6831".into(),
            sampling_prob: 0.3,
            service_name: "cluster-daemon".into(),
            otlp_endpoint: None,
        }
    }
}

impl TracingConfig {
    /// The OTLP/HTTP collector spans are sent to (see the type's documentation).
    pub fn effective_otlp_endpoint(&self) -> Result<String, String> {
        if let Some(endpoint) = self.otlp_endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            return Ok(endpoint.to_owned());
        }
        let parts: Vec<&str> = self.jaeger_agent_endpoint.split('/').collect();
        let host = match parts.as_slice() {
            ["", "ip4", "0.0.0.0", ..] | ["", "ip6", "::", ..] => "127.0.0.1".to_owned(),
            ["", "ip4" | "dns" | "dns4" | "dns6", host, ..] => (*host).to_owned(),
            ["", "ip6", host, ..] => format!("[{host}]"),
            _ => {
                return Err(format!(
                    "jaeger_agent_endpoint {:?} is not a multiaddr with a host (and otlp_endpoint is not set)",
                    self.jaeger_agent_endpoint
                ));
            }
        };
        Ok(format!("http://{host}:4318"))
    }
}

/// `datastore`: IPFS Cluster's Go datastores. Cairn keeps its state in its own store, so
/// these are accepted and kept as written (an IPFS Cluster config loads) but not used.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DatastoreSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pebble: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub badger3: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub badger: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leveldb: Option<Value>,
}

impl DatastoreSection {
    fn is_empty(&self) -> bool {
        self.pebble.is_none() && self.badger3.is_none() && self.badger.is_none() && self.leveldb.is_none()
    }
}
