//! Cairn's plugin keys: which plugin each decision point uses, with what config, and the
//! runtime limits they all run under.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_policy::{Limits, PluginKind, PluginSource, PluginSpec, RuntimeSettings, builtin};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::duration::GoDuration;
use super::model::{HttpApiConfig, ServiceConfig, default_allocate_by};

/// A decision point's plugin: `{ "plugin": "builtin:<name>" | "<path.wasm>", "sha256": "…",
/// "config": {…} }`. Without `config`, the default plugins get IPFS Cluster's own keys of
/// the section they sit in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// `builtin:<name>` or a component file; a relative path is relative to the config folder.
    pub plugin: String,
    /// Expected sha256 (hex) of the file, checked at every load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The config object given to the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

/// `plugins`: the sandbox limits of every plugin (see `cairn_policy::Limits`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginsSection {
    /// Budget of one call.
    pub call_deadline: GoDuration,
    /// Budget of starting an instance (including the plugin's `init`).
    pub start_deadline: GoDuration,
    /// Linear-memory cap of one instance.
    pub memory_limit_bytes: u64,
    /// Instances of one plugin running at once.
    pub max_instances: u32,
    /// Calls after which an instance is replaced.
    pub max_calls_per_instance: u64,
    /// Compiled-plugin cache; relative to the config folder; `""` disables the cache.
    pub cache_folder: String,
    /// How often watched plugin files are checked for changes; `"0s"` disables watching.
    pub watch_interval: GoDuration,
}

impl Default for PluginsSection {
    fn default() -> Self {
        let limits = Limits::default();
        PluginsSection {
            call_deadline: GoDuration(limits.call_deadline),
            start_deadline: GoDuration(limits.start_deadline),
            memory_limit_bytes: limits.memory_bytes as u64,
            max_instances: limits.max_instances as u32,
            max_calls_per_instance: limits.max_calls_per_instance,
            cache_folder: "plugin-cache".into(),
            watch_interval: GoDuration::secs(2),
        }
    }
}

impl PluginsSection {
    /// The runtime settings, with the cache folder resolved against `config_dir`.
    pub fn runtime_settings(&self, config_dir: &Path) -> RuntimeSettings {
        RuntimeSettings {
            cache_dir: (!self.cache_folder.is_empty()).then(|| config_dir.join(&self.cache_folder)),
            limits: Limits {
                call_deadline: self.call_deadline.into(),
                start_deadline: self.start_deadline.into(),
                memory_bytes: usize::try_from(self.memory_limit_bytes).unwrap_or(usize::MAX),
                max_instances: self.max_instances as usize,
                max_calls_per_instance: self.max_calls_per_instance,
            },
        }
    }

    /// How often to check plugin files, `None` when watching is off.
    pub fn watch_every(&self) -> Option<Duration> {
        (!self.watch_interval.is_zero()).then_some(self.watch_interval.0)
    }
}

/// One place where a plugin decides, with the plugin it uses.
#[derive(Debug, Clone)]
pub struct DecisionPoint {
    /// The dotted key naming it in service.json, e.g. `api.restapi.authorizer_plugin`.
    pub key: String,
    /// The kind of plugin it needs.
    pub kind: PluginKind,
    /// What to load.
    pub spec: PluginSpec,
}

/// A problem with a plugin key, reported by the caller with the file's name.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginKeyError {
    pub key: String,
    pub problem: String,
}

impl ServiceConfig {
    /// Every decision point this config enables, with its plugin: one authorizer and one
    /// CORS plugin per API section present, the consensus's peer authorizer, the allocator.
    /// Relative plugin paths resolve against `config_dir`.
    pub fn decision_points(&self, config_dir: &Path) -> Result<Vec<DecisionPoint>, PluginKeyError> {
        let mut points = Vec::new();
        let apis: [(&str, Option<&HttpApiConfig>); 2] =
            [("restapi", self.api.restapi.as_ref()), ("pinsvcapi", self.api.pinsvcapi.as_ref())];
        for (name, api) in apis {
            let Some(api) = api else { continue };
            let auth_default = json!({ "basic_auth_credentials": api.basic_auth_credentials });
            points.push(point(
                format!("api.{name}.authorizer_plugin"),
                PluginKind::Authorizer,
                api.authorizer_plugin.as_ref(),
                "basic-auth",
                auth_default,
                config_dir,
            )?);
            points.push(point(
                format!("api.{name}.cors_plugin"),
                PluginKind::Cors,
                api.cors_plugin.as_ref(),
                "cors-config",
                Value::Object(api.cors_keys()),
                config_dir,
            )?);
        }
        if let Some(proxy) = &self.api.ipfsproxy {
            let auth_default = json!({ "basic_auth_credentials": proxy.basic_auth_credentials });
            points.push(point(
                "api.ipfsproxy.authorizer_plugin".into(),
                PluginKind::Authorizer,
                proxy.authorizer_plugin.as_ref(),
                "basic-auth",
                auth_default,
                config_dir,
            )?);
            points.push(point(
                "api.ipfsproxy.cors_plugin".into(),
                PluginKind::Cors,
                proxy.cors_plugin.as_ref(),
                "cors-config",
                Value::Object(Map::new()),
                config_dir,
            )?);
        }
        match (&self.consensus.crdt, &self.consensus.raft) {
            (Some(crdt), _) => points.push(point(
                "consensus.crdt.peer_authorizer_plugin".into(),
                PluginKind::Authorizer,
                crdt.peer_authorizer_plugin.as_ref(),
                "trusted-peers",
                json!({ "trusted_peers": crdt.trusted_peers }),
                config_dir,
            )?),
            (None, Some(raft)) => points.push(point(
                "consensus.raft.peer_authorizer_plugin".into(),
                PluginKind::Authorizer,
                raft.peer_authorizer_plugin.as_ref(),
                "trusted-peers",
                // IPFS Cluster's raft trusts every peer that can connect (reference §6.2).
                json!({ "trusted_peers": ["*"] }),
                config_dir,
            )?),
            (None, None) => {}
        }
        let allocate_by = match &self.allocator.balanced {
            Some(b) if b.allocate_by.is_empty() => default_allocate_by(),
            Some(b) => b.allocate_by.clone(),
            // IPFS Cluster's legacy behaviour without the section.
            None => vec!["freespace".to_string()],
        };
        points.push(point(
            "allocator.plugin".into(),
            PluginKind::Allocator,
            self.allocator.plugin.as_ref(),
            "balanced",
            json!({ "allocate_by": allocate_by }),
            config_dir,
        )?);
        Ok(points)
    }
}

/// Build one decision point, checking what can be checked without loading the plugin.
fn point(
    key: String,
    kind: PluginKind,
    configured: Option<&PluginRef>,
    default_builtin: &str,
    default_config: Value,
    config_dir: &Path,
) -> Result<DecisionPoint, PluginKeyError> {
    let err = |sub: &str, problem: String| PluginKeyError { key: format!("{key}{sub}"), problem };
    let Some(plugin) = configured else {
        let spec = PluginSpec::builtin(default_builtin, default_config);
        return Ok(DecisionPoint { key, kind, spec });
    };
    let config = match &plugin.config {
        None => default_config,
        Some(v @ (Value::Object(_) | Value::Null)) => v.clone(),
        Some(other) => return Err(err(".config", format!("expected an object, found {}", json_type(other)))),
    };
    if plugin.plugin.trim().is_empty() {
        return Err(err(".plugin", "is empty; expected builtin:<name> or a .wasm file".into()));
    }
    let source = match PluginSource::parse(&plugin.plugin, plugin.sha256.clone()) {
        PluginSource::Builtin(name) => {
            let Some(builtin_kind) = builtin::kind(&name) else {
                return Err(err(
                    ".plugin",
                    format!("unknown builtin plugin `{name}` (embedded: {})", builtin::NAMES.join(", ")),
                ));
            };
            if builtin_kind != kind {
                return Err(err(
                    ".plugin",
                    format!("builtin:{name} is a plugin of kind {builtin_kind}; this decision point needs kind {kind}"),
                ));
            }
            if plugin.sha256.is_some() {
                return Err(err(".sha256", "applies to plugin files only, not to builtin plugins".into()));
            }
            PluginSource::Builtin(name)
        }
        PluginSource::File { path, sha256 } => {
            if let Some(hash) = &sha256 {
                let hash = hash.trim();
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err(".sha256", format!("{hash:?} is not 64 hexadecimal characters")));
                }
            }
            let path: PathBuf = if path.is_relative() { config_dir.join(path) } else { path };
            PluginSource::File { path, sha256 }
        }
    };
    Ok(DecisionPoint { key, kind, spec: PluginSpec { source, config } })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{ConsensusSection, CrdtConfig, RaftConfig};

    fn crdt_config() -> ServiceConfig {
        ServiceConfig::for_init(ConsensusSection { crdt: Some(CrdtConfig::default()), raft: None })
    }

    #[test]
    fn defaults_feed_ipfs_cluster_keys_to_the_builtin_plugins() {
        let points = crdt_config().decision_points(Path::new("/cfg")).expect("valid");
        let keys: Vec<_> = points.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "api.restapi.authorizer_plugin",
                "api.restapi.cors_plugin",
                "api.pinsvcapi.authorizer_plugin",
                "api.pinsvcapi.cors_plugin",
                "api.ipfsproxy.authorizer_plugin",
                "api.ipfsproxy.cors_plugin",
                "consensus.crdt.peer_authorizer_plugin",
                "allocator.plugin",
            ]
        );
        assert_eq!(points[0].spec.source, PluginSource::Builtin("basic-auth".into()));
        assert_eq!(points[0].spec.config, json!({"basic_auth_credentials": null}));
        assert_eq!(points[1].spec.config["cors_allowed_methods"], json!(["GET"]));
        assert_eq!(points[1].spec.config["cors_max_age"], json!("0s"));
        assert_eq!(points[6].spec.source, PluginSource::Builtin("trusted-peers".into()));
        assert_eq!(points[6].spec.config, json!({"trusted_peers": ["*"]}));
        assert_eq!(points[7].spec.config, json!({"allocate_by": ["tag:group", "freespace"]}));
    }

    #[test]
    fn raft_trusts_everyone_and_a_missing_balanced_section_allocates_by_freespace() {
        let mut cfg = ServiceConfig::for_init(ConsensusSection { crdt: None, raft: Some(RaftConfig::default()) });
        cfg.allocator.balanced = None;
        let points = cfg.decision_points(Path::new("/cfg")).expect("valid");
        let peer = points.iter().find(|p| p.key == "consensus.raft.peer_authorizer_plugin").expect("raft point");
        assert_eq!(peer.spec.config, json!({"trusted_peers": ["*"]}));
        let alloc = points.iter().find(|p| p.key == "allocator.plugin").expect("allocator point");
        assert_eq!(alloc.spec.config, json!({"allocate_by": ["freespace"]}));
    }

    #[test]
    fn explicit_plugins_resolve_paths_and_keep_their_config() {
        let mut cfg = crdt_config();
        cfg.allocator.plugin = Some(PluginRef {
            plugin: "plugins/region.wasm".into(),
            sha256: Some("ab".repeat(32)),
            config: Some(json!({"regions": 2})),
        });
        let points = cfg.decision_points(Path::new("/cfg")).expect("valid");
        let alloc = points.iter().find(|p| p.key == "allocator.plugin").expect("allocator point");
        assert_eq!(
            alloc.spec.source,
            PluginSource::File { path: PathBuf::from("/cfg/plugins/region.wasm"), sha256: Some("ab".repeat(32)) }
        );
        assert_eq!(alloc.spec.config, json!({"regions": 2}));
    }

    #[test]
    fn wrong_kind_unknown_builtin_and_bad_sha256_name_the_key() {
        let mut cfg = crdt_config();
        cfg.allocator.plugin = Some(PluginRef { plugin: "builtin:basic-auth".into(), sha256: None, config: None });
        let e = cfg.decision_points(Path::new("/cfg")).expect_err("wrong kind");
        assert_eq!(e.key, "allocator.plugin.plugin");
        assert!(e.problem.contains("kind authorizer; this decision point needs kind allocator"), "{}", e.problem);

        cfg.allocator.plugin = Some(PluginRef { plugin: "builtin:nope".into(), sha256: None, config: None });
        let e = cfg.decision_points(Path::new("/cfg")).expect_err("unknown");
        assert!(e.problem.contains("unknown builtin plugin `nope`"), "{}", e.problem);

        cfg.allocator.plugin = Some(PluginRef { plugin: "a.wasm".into(), sha256: Some("xyz".into()), config: None });
        let e = cfg.decision_points(Path::new("/cfg")).expect_err("bad hash");
        assert_eq!(e.key, "allocator.plugin.sha256");
    }

    #[test]
    fn plugins_section_maps_onto_runtime_settings() {
        let section = PluginsSection::default();
        let settings = section.runtime_settings(Path::new("/cfg"));
        assert_eq!(settings.limits, Limits::default());
        assert_eq!(settings.cache_dir, Some(PathBuf::from("/cfg/plugin-cache")));
        assert_eq!(
            serde_json::to_value(&section).expect("serializes"),
            json!({
                "call_deadline": "10ms",
                "start_deadline": "250ms",
                "memory_limit_bytes": 67108864,
                "max_instances": 64,
                "max_calls_per_instance": 100000,
                "cache_folder": "plugin-cache",
                "watch_interval": "2s",
            })
        );
    }
}
