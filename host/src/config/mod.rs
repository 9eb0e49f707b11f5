//! Configuration: service.json and identity.json in the config folder, with IPFS Cluster's
//! section names, keys and defaults (so an operator's IPFS Cluster config loads), Cairn's
//! plugin keys, environment overrides, and validation whose errors name the file, the key
//! and the problem.
//!
//! - [`load_service`] reads, overrides from the environment and validates service.json.
//! - [`Identity`] reads and writes identity.json.
//! - [`ServiceConfig::decision_points`] says which plugin each decision point loads.

mod duration;
mod env;
mod identity;
mod model;
mod plugins;

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use duration::GoDuration;
pub use identity::{IDENTITY_FILE, Identity};
pub use model::*;
pub use plugins::{DecisionPoint, PluginsSection};

/// service.json's name inside the config folder.
pub const SERVICE_FILE: &str = "service.json";
/// The lock file a running daemon holds (IPFS Cluster's name).
pub const LOCK_FILE: &str = "cluster.lock";

/// Reads an environment variable; tests pass their own instead of the process's.
pub type EnvLookup = dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// What went wrong with a config file. Every variant names the file (or the variable).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{}: cannot write: {source}", file.display())]
    Write { file: PathBuf, source: std::io::Error },
    /// Malformed JSON or a value of the wrong type; `message` carries serde's line/column.
    #[error("{}: {}{message}", file.display(), key_prefix(key))]
    Json { file: PathBuf, key: String, message: String },
    /// A value that parses but is not acceptable.
    #[error("{}: {}{problem}", file.display(), key_prefix(key))]
    Invalid { file: PathBuf, key: String, problem: String },
    /// An environment override that cannot be applied.
    #[error("environment variable {var}: {problem}")]
    Env { var: String, problem: String },
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() { String::new() } else { format!("{key}: ") }
}

impl ConfigError {
    pub(crate) fn invalid(file: &Path, key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Invalid { file: file.into(), key: key.into(), problem: problem.into() }
    }

    pub(crate) fn json(file: &Path, key: &str, e: &serde_json::Error) -> Self {
        let message = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => format!("invalid JSON: {e}"),
            _ => e.to_string(),
        };
        ConfigError::Json { file: file.into(), key: key.into(), message }
    }

    /// The dotted key the error is about (empty when it is about the whole file).
    #[cfg_attr(not(test), allow(dead_code))] // for callers that branch on the key; tests do
    pub fn key(&self) -> &str {
        match self {
            ConfigError::Json { key, .. } | ConfigError::Invalid { key, .. } => key,
            _ => "",
        }
    }
}

/// The config folder and the files in it.
#[derive(Debug, Clone)]
pub struct ConfigDir(pub PathBuf);

impl ConfigDir {
    /// service.json.
    pub fn service(&self) -> PathBuf {
        self.0.join(SERVICE_FILE)
    }
    /// identity.json.
    pub fn identity(&self) -> PathBuf {
        self.0.join(IDENTITY_FILE)
    }
    /// cluster.lock.
    pub fn lock(&self) -> PathBuf {
        self.0.join(LOCK_FILE)
    }
    /// `--config`, else `$CAIRN_PATH` (clap reads it into the flag), else `~/.cairn`.
    pub fn resolve(flag: Option<PathBuf>) -> Option<ConfigDir> {
        flag.or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cairn"))).map(ConfigDir)
    }
}

/// Which consensus the config selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsensusKind {
    Crdt,
    Raft,
}

impl std::fmt::Display for ConsensusKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConsensusKind::Crdt => "crdt",
            ConsensusKind::Raft => "raft",
        })
    }
}

/// A loaded, validated service.json.
#[derive(Debug, Clone)]
pub struct LoadedService {
    pub config: ServiceConfig,
    /// What was ignored (unknown sections) or not used; the caller logs these.
    pub warnings: Vec<String>,
    /// The environment variables that overrode the file.
    pub env_applied: Vec<String>,
}

/// Read service.json at `path`, apply environment overrides through `env`, and validate.
/// `config_dir` resolves relative plugin paths.
pub fn load_service(path: &Path, env: &EnvLookup) -> Result<LoadedService, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: path.into(), source })?;
    let config_dir = path.parent().unwrap_or(Path::new("."));
    parse_service(&text, path, config_dir, env)
}

/// [`load_service`] on text already read; `file` names it in errors.
pub fn parse_service(
    text: &str,
    file: &Path,
    config_dir: &Path,
    env: &EnvLookup,
) -> Result<LoadedService, ConfigError> {
    // Syntax first, on the untyped tree, to report unknown sections before type errors.
    let tree: Value = serde_json::from_str(text).map_err(|e| ConfigError::json(file, "", &e))?;
    let Value::Object(top) = &tree else {
        return Err(ConfigError::invalid(file, "", "expected a JSON object at the top level"));
    };
    let mut warnings = unknown_sections(top);

    // Typed, from the text itself so that type errors keep their line and column.
    let mut de = serde_json::Deserializer::from_str(text);
    let mut config: ServiceConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::json(file, if key == "." { "" } else { &key }, e.inner())
    })?;

    if config.source.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ConfigError::invalid(
            file,
            "source",
            "remote configuration is not supported by Cairn; save the fetched service.json in the config folder",
        ));
    }
    if config.consensus.crdt.is_none() && config.consensus.raft.is_none() {
        // Name what was there, since the unknown-section warnings are not shown on errors.
        let found: Vec<&str> = match top.get("consensus") {
            Some(Value::Object(map)) => map.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let found = if found.is_empty() { "none".to_string() } else { found.join(", ") };
        return Err(ConfigError::invalid(
            file,
            "consensus",
            format!(
                "no known consensus configured (found: {found}): exactly one of consensus.crdt or consensus.raft must be present"
            ),
        ));
    }
    fill_empty_durations(&mut config, file)?;
    let env_applied = env::apply(&mut config, env, file)?;
    config.apply_zero_defaults();
    config.validate(file, config_dir)?;

    if config.datastore.pebble.is_some()
        || config.datastore.badger3.is_some()
        || config.datastore.badger.is_some()
        || config.datastore.leveldb.is_some()
    {
        warnings.push("datastore: Cairn keeps its state in its own store; the datastore section is not used".into());
    }
    if config.api.pinsvcapi.as_ref().is_some_and(|api| api.libp2p_listen_multiaddress.is_some()) {
        warnings.push(
            "api.pinsvcapi.libp2p_listen_multiaddress: ignored; the Pinning Service API is served over HTTP only \
             (libp2p-http serves the REST API)"
                .into(),
        );
    }
    Ok(LoadedService { config, warnings, env_applied })
}

/// Warnings for top-level sections and sub-sections Cairn does not know.
fn unknown_sections(top: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut warnings = Vec::new();
    for (name, value) in top {
        match KNOWN_SECTIONS.iter().find(|(known, _)| known == name) {
            None => warnings.push(format!("{name}: unknown section, ignored")),
            Some((_, Some(subs))) => {
                if let Value::Object(map) = value {
                    for sub in map.keys().filter(|k| !subs.contains(&k.as_str())) {
                        warnings.push(format!("{name}.{sub}: unknown {name} component, ignored"));
                    }
                }
            }
            Some((_, None)) => {}
        }
    }
    warnings
}

/// Replace every `""` duration (read as [`GoDuration::EMPTY`]) with its key's default, as
/// IPFS Cluster does.
fn fill_empty_durations(config: &mut ServiceConfig, file: &Path) -> Result<(), ConfigError> {
    let marker = Value::from(GoDuration::EMPTY.to_string());
    let mut tree = serde_json::to_value(&*config).map_err(|e| ConfigError::invalid(file, "", e.to_string()))?;
    let defaults = serde_json::to_value(ServiceConfig::all_defaults()).unwrap_or(Value::Null);
    fn walk(v: &mut Value, d: Option<&Value>, marker: &Value, changed: &mut bool) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    walk(child, d.and_then(|d| d.get(k)), marker, changed);
                }
            }
            s if *s == *marker => {
                *s = d.cloned().unwrap_or_else(|| Value::from("0s"));
                *changed = true;
            }
            _ => {}
        }
    }
    let mut changed = false;
    walk(&mut tree, Some(&defaults), &marker, &mut changed);
    if changed {
        *config = serde_json::from_value(tree).map_err(|e| ConfigError::invalid(file, "", e.to_string()))?;
    }
    Ok(())
}

impl ServiceConfig {
    /// What `cairn init` writes: every section IPFS Cluster's `init` writes, with its
    /// defaults, the given consensus, and an empty secret (init fills in a random one).
    pub fn for_init(consensus: ConsensusSection) -> Self {
        ServiceConfig {
            source: None,
            cluster: Some(ClusterConfig::default()),
            consensus,
            api: ApiSection {
                restapi: Some(HttpApiConfig::with_listen(RESTAPI_LISTEN)),
                pinsvcapi: Some(HttpApiConfig::with_listen(PINSVCAPI_LISTEN)),
                ipfsproxy: Some(IpfsProxyConfig::default()),
            },
            ipfs_connector: IpfsConnectorSection::default(),
            state: None,
            pin_tracker: PinTrackerSection::default(),
            monitor: MonitorSection::default(),
            allocator: AllocatorSection { balanced: Some(BalancedConfig::default()), plugin: None },
            informer: InformerSection {
                disk: Some(DiskInformerConfig::default()),
                tags: Some(TagsInformerConfig::default()),
                pinqueue: Some(PinQueueInformerConfig::default()),
                numpin: None,
            },
            observations: ObservationsSection::default(),
            datastore: DatastoreSection::default(),
            plugins: PluginsSection::default(),
        }
    }

    /// Every section present with its defaults: where an empty value or an environment
    /// override looks up a key's default.
    pub(crate) fn all_defaults() -> Self {
        let mut all = ServiceConfig::for_init(ConsensusSection {
            crdt: Some(CrdtConfig::default()),
            raft: Some(RaftConfig::default()),
        });
        all.informer.numpin = Some(NumPinInformerConfig::default());
        all
    }

    /// The `cluster` section (validation guarantees it is present).
    pub fn cluster(&self) -> &ClusterConfig {
        static DEFAULT: std::sync::OnceLock<ClusterConfig> = std::sync::OnceLock::new();
        self.cluster.as_ref().unwrap_or_else(|| DEFAULT.get_or_init(ClusterConfig::default))
    }

    /// The consensus in use (validation guarantees exactly one).
    pub fn consensus_kind(&self) -> Option<ConsensusKind> {
        match (&self.consensus.crdt, &self.consensus.raft) {
            (Some(_), None) => Some(ConsensusKind::Crdt),
            (None, Some(_)) => Some(ConsensusKind::Raft),
            _ => None,
        }
    }

    /// Whether the REST API is also served over `/libp2p-http` on the cluster host, as IPFS
    /// Cluster does in raft mode when `api.restapi` has no libp2p host of its own.
    pub fn restapi_on_cluster_host(&self) -> bool {
        self.consensus_kind() == Some(ConsensusKind::Raft)
            && self.api.restapi.as_ref().is_some_and(|api| api.libp2p_listen_multiaddress.is_none())
    }

    /// The 32-byte private-network key, `None` when the secret is empty.
    pub fn secret_bytes(&self) -> Option<[u8; 32]> {
        decode_secret(&self.cluster().secret).ok().flatten()
    }

    /// IPFS Cluster's "zero value keeps the default" rules for the keys where it applies.
    fn apply_zero_defaults(&mut self) {
        if let Some(c) = self.cluster.as_mut() {
            if c.replication_factor_min == 0 {
                c.replication_factor_min = -1;
            }
            if c.replication_factor_max == 0 {
                c.replication_factor_max = -1;
            }
            if c.peerstore_file.is_empty() {
                c.peerstore_file = "peerstore".into();
            }
        }
        // An empty listen address keeps the API's default (reference §10.6).
        for (api, default) in [(&mut self.api.restapi, RESTAPI_LISTEN), (&mut self.api.pinsvcapi, PINSVCAPI_LISTEN)] {
            if let Some(api) = api.as_mut() {
                api.http_listen_multiaddress.0.retain(|a| !a.is_empty());
                if api.http_listen_multiaddress.0.is_empty() {
                    api.http_listen_multiaddress = MultiaddrList(vec![default.to_string()]);
                }
                if api.max_header_bytes == 0 {
                    api.max_header_bytes = 4096;
                }
            }
        }
        if let Some(proxy) = self.api.ipfsproxy.as_mut() {
            if proxy.listen_multiaddress.0.is_empty() {
                proxy.listen_multiaddress = IpfsProxyConfig::default().listen_multiaddress;
            }
            if proxy.max_header_bytes == 0 {
                proxy.max_header_bytes = 4096;
            }
        }
        if let Some(b) = self.allocator.balanced.as_mut()
            && b.allocate_by.is_empty()
        {
            b.allocate_by = default_allocate_by();
        }
    }

    /// Check what IPFS Cluster checks (and what Cairn's additions need).
    fn validate(&self, file: &Path, config_dir: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, problem: String| Err(ConfigError::invalid(file, key, problem));
        let Some(c) = &self.cluster else {
            return bad("cluster", "section is missing (cluster.listen_multiaddress is undefined)".into());
        };
        if let Err(problem) = decode_secret(&c.secret) {
            return bad("cluster.secret", problem);
        }
        if c.listen_multiaddress.0.is_empty() {
            return bad("cluster.listen_multiaddress", "is empty; at least one address is needed".into());
        }
        check_multiaddrs(file, "cluster.listen_multiaddress", &c.listen_multiaddress.0)?;
        check_multiaddrs(file, "cluster.announce_multiaddress", &c.announce_multiaddress)?;
        check_multiaddrs(file, "cluster.peer_addresses", &c.peer_addresses)?;
        for (i, addr) in c.peer_addresses.iter().enumerate() {
            if peer_id_of(addr).is_none() {
                return bad(&format!("cluster.peer_addresses[{i}]"), format!("{addr:?} has no /p2p/<peer id> part"));
            }
        }
        let cm = &c.connection_manager;
        if cm.low_water == 0 || cm.high_water == 0 || cm.low_water > cm.high_water {
            return bad(
                "cluster.connection_manager",
                format!("low_water ({}) and high_water ({}) must be > 0 with low ≤ high", cm.low_water, cm.high_water),
            );
        }
        let (min, max) = (c.replication_factor_min, c.replication_factor_max);
        if (min < 0) != (max < 0) {
            return bad(
                "cluster.replication_factor_min",
                format!(
                    "replication_factor_min ({min}) and replication_factor_max ({max}) must both be -1 or both positive"
                ),
            );
        }
        if max >= 0 && max < min {
            return bad(
                "cluster.replication_factor_max",
                format!("{max} is lower than replication_factor_min ({min})"),
            );
        }
        if c.pin_only_on_trusted_peers && c.pin_only_on_untrusted_peers {
            return bad(
                "cluster.pin_only_on_trusted_peers",
                "pin_only_on_trusted_peers and pin_only_on_untrusted_peers are mutually exclusive".into(),
            );
        }
        for (key, d) in [
            ("cluster.monitor_ping_interval", c.monitor_ping_interval),
            ("cluster.state_sync_interval", c.state_sync_interval),
            ("cluster.pin_recover_interval", c.pin_recover_interval),
            ("cluster.dial_peer_timeout", c.dial_peer_timeout),
        ] {
            if d.is_zero() {
                return bad(key, "must be greater than 0s".into());
            }
        }

        match (&self.consensus.crdt, &self.consensus.raft) {
            (Some(_), Some(_)) => {
                return bad("consensus", "both crdt and raft are configured; keep exactly one".into());
            }
            (None, None) => {
                return bad(
                    "consensus",
                    "no known consensus configured: exactly one of consensus.crdt or consensus.raft must be present"
                        .into(),
                );
            }
            (Some(crdt), None) => {
                if crdt.cluster_name.is_empty() {
                    return bad("consensus.crdt.cluster_name", "is empty".into());
                }
                for (i, p) in crdt.trusted_peers.iter().flatten().enumerate() {
                    if p != "*" && p.parse::<libp2p_identity::PeerId>().is_err() {
                        return bad(
                            &format!("consensus.crdt.trusted_peers[{i}]"),
                            format!("{p:?} is not a peer id or \"*\""),
                        );
                    }
                }
            }
            (None, Some(raft)) => {
                for (i, p) in raft.init_peerset.iter().enumerate() {
                    if p.parse::<libp2p_identity::PeerId>().is_err() {
                        return bad(&format!("consensus.raft.init_peerset[{i}]"), format!("{p:?} is not a peer id"));
                    }
                }
            }
        }

        for (name, api) in [("restapi", &self.api.restapi), ("pinsvcapi", &self.api.pinsvcapi)] {
            let Some(api) = api else { continue };
            check_multiaddrs(file, &format!("api.{name}.http_listen_multiaddress"), &api.http_listen_multiaddress.0)?;
            if api.ssl_cert_file.is_empty() != api.ssl_key_file.is_empty() {
                return bad(
                    &format!("api.{name}.ssl_cert_file"),
                    "ssl_cert_file and ssl_key_file must be set together".into(),
                );
            }
            if api.basic_auth_credentials.as_ref().is_some_and(|c| c.is_empty()) {
                return bad(
                    &format!("api.{name}.basic_auth_credentials"),
                    "is empty; use null for no authentication or add at least one user".into(),
                );
            }
            let libp2p = [api.libp2p_listen_multiaddress.is_some(), api.id.is_some(), api.private_key.is_some()];
            if libp2p.iter().any(|b| *b) && !libp2p.iter().all(|b| *b) {
                return bad(
                    &format!("api.{name}.libp2p_listen_multiaddress"),
                    "libp2p_listen_multiaddress, id and private_key must be set together".into(),
                );
            }
        }
        if let Some(proxy) = &self.api.ipfsproxy {
            check_multiaddrs(file, "api.ipfsproxy.listen_multiaddress", &proxy.listen_multiaddress.0)?;
            check_multiaddrs(file, "api.ipfsproxy.node_multiaddress", std::slice::from_ref(&proxy.node_multiaddress))?;
        }
        match (&self.ipfs_connector.ipfshttp, &self.ipfs_connector.embedded) {
            (Some(http), None) => check_multiaddrs(
                file,
                "ipfs_connector.ipfshttp.node_multiaddress",
                std::slice::from_ref(&http.node_multiaddress),
            )?,
            (None, Some(embedded)) => {
                if let Err(e) = embedded.validate() {
                    return bad("ipfs_connector.embedded", e.to_string());
                }
            }
            (Some(_), Some(_)) => {
                return bad("ipfs_connector", "has both ipfshttp and embedded; keep one of them".into());
            }
            (None, None) => {
                return bad("ipfs_connector", "has no IPFS backend; add an ipfshttp or an embedded section".into());
            }
        }
        if let Some(disk) = &self.informer.disk
            && !["freespace", "reposize"].contains(&disk.metric_type.as_str())
        {
            return bad("informer.disk.metric_type", format!("{:?} is not freespace or reposize", disk.metric_type));
        }
        let prob = self.observations.tracing.sampling_prob;
        if !(0.0..=1.0).contains(&prob) {
            return bad("observations.tracing.sampling_prob", format!("{prob} is not between 0 and 1"));
        }

        let p = &self.plugins;
        if p.call_deadline.is_zero() {
            return bad("plugins.call_deadline", "must be greater than 0s".into());
        }
        if p.start_deadline.is_zero() {
            return bad("plugins.start_deadline", "must be greater than 0s".into());
        }
        if p.memory_limit_bytes < 1 << 20 {
            return bad("plugins.memory_limit_bytes", format!("{} is below the 1 MiB minimum", p.memory_limit_bytes));
        }
        if p.max_instances == 0 {
            return bad("plugins.max_instances", "must be at least 1".into());
        }
        if p.max_calls_per_instance == 0 {
            return bad("plugins.max_calls_per_instance", "must be at least 1".into());
        }
        self.decision_points(config_dir).map_err(|e| ConfigError::invalid(file, e.key, e.problem))?;
        Ok(())
    }

    /// service.json's text, as Go's `MarshalIndent(cfg, "", "  ")` lays it out.
    pub fn to_json(&self) -> String {
        // Every field serializes (strings, numbers, maps with string keys).
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Write service.json to `path` (mode 0600).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        write_private_file(path, self.to_json().as_bytes())
    }
}

/// Decode the hex secret: `Ok(None)` when empty, the 32 bytes, or IPFS Cluster's error.
pub fn decode_secret(secret: &str) -> Result<Option<[u8; 32]>, String> {
    if secret.is_empty() {
        return Ok(None);
    }
    let bytes = hex::decode(secret).map_err(|e| format!("not a hexadecimal string: {e}"))?;
    let n = bytes.len();
    <[u8; 32]>::try_from(bytes).map(Some).map_err(|_| format!("input secret is {n} bytes, cluster secret should be 32"))
}

/// A short fingerprint of the secret for logs (never the secret itself).
pub fn secret_fingerprint(secret: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(secret)[..4])
}

/// A new random secret, hex-encoded (64 characters).
pub fn random_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The peer id in a `/p2p/<id>` multiaddress.
pub fn peer_id_of(addr: &str) -> Option<libp2p_identity::PeerId> {
    let addr: multiaddr::Multiaddr = addr.parse().ok()?;
    addr.iter().find_map(|p| match p {
        multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

fn check_multiaddrs(file: &Path, key: &str, addrs: &[String]) -> Result<(), ConfigError> {
    for (i, addr) in addrs.iter().enumerate() {
        if let Err(e) = addr.parse::<multiaddr::Multiaddr>() {
            let key = if addrs.len() == 1 { key.to_string() } else { format!("{key}[{i}]") };
            return Err(ConfigError::invalid(file, key, format!("{addr:?} is not a multiaddress: {e}")));
        }
    }
    Ok(())
}

/// Write `bytes` to `path` readable by the owner only (0600), atomically: a crash leaves
/// the old file or the new one, never half of one.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |source| ConfigError::Write { file: path.into(), source };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(err)?;
    // A leftover temp file may have other permissions; the mode above applies only on creation.
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests;
