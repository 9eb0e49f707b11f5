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

/// The IPFS Cluster keys of a section that configure a decision point's default builtin
/// plugin: one source for the config the plugin gets, with or without an explicit `config`.
struct SectionKeys {
    /// The section's dotted path (e.g. `api.restapi`), to name its keys in errors.
    section: String,
    /// The keys the section sets, with the values the plugin reads.
    set: Map<String, Value>,
    /// What the plugin gets for a key that neither the section nor an explicit config sets.
    fallback: Map<String, Value>,
}

impl SectionKeys {
    fn new(section: impl Into<String>) -> Self {
        SectionKeys { section: section.into(), set: Map::new(), fallback: Map::new() }
    }

    /// `key` as the section sets it, or `fallback` when the section leaves it out.
    fn key(mut self, key: &str, value: Option<Value>, fallback: Value) -> Self {
        match value {
            Some(v) => self.set.insert(key.to_owned(), v),
            None => self.fallback.insert(key.to_owned(), fallback),
        };
        self
    }

    /// Keys the section always sets (values `cors_keys` found present).
    fn keys(mut self, set: Map<String, Value>) -> Self {
        self.set.extend(set);
        self
    }

    /// A key the section cannot set, with the value the plugin gets unless told otherwise.
    fn fixed(mut self, key: &str, value: Value) -> Self {
        self.fallback.insert(key.to_owned(), value);
        self
    }

    /// `explicit` (the operator's `config` object) completed with the section's keys; a key
    /// both set to different values is refused, so the plugin and the section never disagree.
    fn merge_into(&self, explicit: Map<String, Value>, point: &str) -> Result<Value, PluginKeyError> {
        let mut merged = explicit;
        for (key, value) in &self.set {
            match merged.get(key) {
                None => {
                    merged.insert(key.clone(), value.clone());
                }
                Some(own) if own == value => {}
                Some(_) => {
                    // No values in the message: they may be passwords.
                    return Err(PluginKeyError {
                        key: format!("{point}.config.{key}"),
                        problem: format!(
                            "conflicts with {}.{key}: both are set, to different values, and the section's key \
                             is this plugin's config too; set it in one place only",
                            self.section
                        ),
                    });
                }
            }
        }
        for (key, value) in &self.fallback {
            merged.entry(key.clone()).or_insert_with(|| value.clone());
        }
        Ok(Value::Object(merged))
    }

    /// The config of the plugin when no explicit `config` is given.
    fn config(&self) -> Value {
        let mut config = self.set.clone();
        for (key, value) in &self.fallback {
            config.entry(key.clone()).or_insert_with(|| value.clone());
        }
        Value::Object(config)
    }
}

/// `basic_auth_credentials` as the plugin reads it, `None` when the section leaves it out.
fn credentials(creds: Option<&std::collections::BTreeMap<String, String>>) -> Option<Value> {
    creds.map(|c| json!(c))
}

impl ServiceConfig {
    /// Every decision point this config enables, with its plugin: one authorizer and one
    /// CORS plugin per API section present, the consensus's peer authorizer, the allocator.
    /// Each point's config is the one the plugin runs with: the section's IPFS Cluster keys
    /// feed the default builtin plugin, merged into an explicit `config` of that builtin (a
    /// key set in both places to different values is an error). Relative plugin paths resolve
    /// against `config_dir`.
    pub fn decision_points(&self, config_dir: &Path) -> Result<Vec<DecisionPoint>, PluginKeyError> {
        let mut points = Vec::new();
        let apis: [(&str, Option<&HttpApiConfig>); 2] =
            [("restapi", self.api.restapi.as_ref()), ("pinsvcapi", self.api.pinsvcapi.as_ref())];
        for (name, api) in apis {
            let Some(api) = api else { continue };
            let section = format!("api.{name}");
            let auth = SectionKeys::new(&section).key(
                "basic_auth_credentials",
                credentials(api.basic_auth_credentials.as_ref()),
                Value::Null,
            );
            points.push(point(
                format!("{section}.authorizer_plugin"),
                PluginKind::Authorizer,
                api.authorizer_plugin.as_ref(),
                "basic-auth",
                &auth,
                config_dir,
            )?);
            points.push(point(
                format!("{section}.cors_plugin"),
                PluginKind::Cors,
                api.cors_plugin.as_ref(),
                "cors-config",
                &SectionKeys::new(&section).keys(api.cors_keys()),
                config_dir,
            )?);
        }
        if let Some(proxy) = &self.api.ipfsproxy {
            let auth = SectionKeys::new("api.ipfsproxy").key(
                "basic_auth_credentials",
                credentials(proxy.basic_auth_credentials.as_ref()),
                Value::Null,
            );
            points.push(point(
                "api.ipfsproxy.authorizer_plugin".into(),
                PluginKind::Authorizer,
                proxy.authorizer_plugin.as_ref(),
                "basic-auth",
                &auth,
                config_dir,
            )?);
            points.push(point(
                "api.ipfsproxy.cors_plugin".into(),
                PluginKind::Cors,
                proxy.cors_plugin.as_ref(),
                "cors-config",
                &SectionKeys::new("api.ipfsproxy"),
                config_dir,
            )?);
        }
        match (&self.consensus.crdt, &self.consensus.raft) {
            (Some(crdt), _) => points.push(point(
                "consensus.crdt.peer_authorizer_plugin".into(),
                PluginKind::Authorizer,
                crdt.peer_authorizer_plugin.as_ref(),
                "trusted-peers",
                &SectionKeys::new("consensus.crdt").key(
                    "trusted_peers",
                    crdt.trusted_peers.as_ref().map(|p| json!(p)),
                    Value::Null,
                ),
                config_dir,
            )?),
            (None, Some(raft)) => points.push(point(
                "consensus.raft.peer_authorizer_plugin".into(),
                PluginKind::Authorizer,
                raft.peer_authorizer_plugin.as_ref(),
                "trusted-peers",
                // IPFS Cluster's raft trusts every peer that can connect (reference §6.2).
                &SectionKeys::new("consensus.raft").fixed("trusted_peers", json!(["*"])),
                config_dir,
            )?),
            (None, None) => {}
        }
        let allocate_by = match &self.allocator.balanced {
            Some(b) if b.allocate_by.is_empty() => {
                SectionKeys::new("allocator.balanced").fixed("allocate_by", json!(default_allocate_by()))
            }
            Some(b) => {
                SectionKeys::new("allocator.balanced").key("allocate_by", Some(json!(b.allocate_by)), Value::Null)
            }
            // IPFS Cluster's legacy behaviour without the section.
            None => SectionKeys::new("allocator.balanced").fixed("allocate_by", json!(["freespace"])),
        };
        points.push(point(
            "allocator.plugin".into(),
            PluginKind::Allocator,
            self.allocator.plugin.as_ref(),
            "balanced",
            &allocate_by,
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
    section: &SectionKeys,
    config_dir: &Path,
) -> Result<DecisionPoint, PluginKeyError> {
    let err = |sub: &str, problem: String| PluginKeyError { key: format!("{key}{sub}"), problem };
    let Some(plugin) = configured else {
        let spec = PluginSpec::builtin(default_builtin, section.config());
        return Ok(DecisionPoint { key, kind, spec });
    };
    let explicit = match &plugin.config {
        None => None,
        Some(v @ (Value::Object(_) | Value::Null)) => Some(v),
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
    let is_default = matches!(&source, PluginSource::Builtin(name) if name == default_builtin);
    let config = match explicit {
        None => section.config(),
        // The default builtin reads the section's keys: they complete its explicit config
        // (`null` configures nothing, like `{}`).
        Some(explicit) if is_default => {
            let own = match explicit {
                Value::Object(map) => map.clone(),
                _ => Map::new(),
            };
            section.merge_into(own, &key)?
        }
        // Any other plugin gets exactly what the operator wrote for it.
        Some(explicit) => explicit.clone(),
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

    /// Issue #14.4: an explicit builtin:basic-auth config must not drop the section's
    /// credentials, or the API is open while the section says it is not.
    #[test]
    fn an_explicit_basic_auth_config_gets_the_sections_credentials() {
        let cfg: ServiceConfig = serde_json::from_value(json!({
            "consensus": {"crdt": {}},
            "api": {"restapi": {
                "basic_auth_credentials": {"admin": "pw"},
                "authorizer_plugin": {"plugin": "builtin:basic-auth", "config": {"token_lifetime": "24h"}}
            }}
        }))
        .expect("config");
        let points = cfg.decision_points(Path::new("/cfg")).expect("valid");
        let auth = points.iter().find(|p| p.key == "api.restapi.authorizer_plugin").expect("authorizer");
        assert_eq!(auth.spec.config, json!({"token_lifetime": "24h", "basic_auth_credentials": {"admin": "pw"}}));
    }

    #[test]
    fn a_key_set_differently_in_the_section_and_the_explicit_config_is_refused() {
        let mut cfg = crdt_config();
        let api = cfg.api.restapi.as_mut().expect("restapi");
        api.basic_auth_credentials = Some([("admin".to_owned(), "pw".to_owned())].into());
        api.authorizer_plugin = Some(PluginRef {
            plugin: "builtin:basic-auth".into(),
            sha256: None,
            config: Some(json!({"basic_auth_credentials": {"admin": "other"}})),
        });
        let e = cfg.decision_points(Path::new("/cfg")).expect_err("conflict");
        assert_eq!(e.key, "api.restapi.authorizer_plugin.config.basic_auth_credentials");
        assert!(e.problem.contains("conflicts with api.restapi.basic_auth_credentials"), "{}", e.problem);
        assert!(!e.problem.contains("pw") && !e.problem.contains("other"), "no secrets: {}", e.problem);

        // The same value in both places agrees; CORS keys and trusted_peers merge the same way.
        let api = cfg.api.restapi.as_mut().expect("restapi");
        api.authorizer_plugin.as_mut().expect("plugin").config =
            Some(json!({"basic_auth_credentials": {"admin": "pw"}}));
        api.cors_plugin = Some(PluginRef {
            plugin: "builtin:cors-config".into(),
            sha256: None,
            config: Some(json!({"cors_allowed_origins": ["https://a.example"]})),
        });
        let e = cfg.decision_points(Path::new("/cfg")).expect_err("cors conflict");
        assert_eq!(e.key, "api.restapi.cors_plugin.config.cors_allowed_origins");
        cfg.api.restapi.as_mut().expect("restapi").cors_plugin.as_mut().expect("plugin").config = Some(json!(null));
        let crdt = cfg.consensus.crdt.as_mut().expect("crdt");
        crdt.trusted_peers = None;
        crdt.peer_authorizer_plugin =
            Some(PluginRef { plugin: "builtin:trusted-peers".into(), sha256: None, config: Some(json!({})) });
        let points = cfg.decision_points(Path::new("/cfg")).expect("valid");
        let config_of = |key: &str| points.iter().find(|p| p.key == key).map(|p| p.spec.config.clone());
        assert_eq!(
            config_of("api.restapi.authorizer_plugin"),
            Some(json!({"basic_auth_credentials": {"admin": "pw"}}))
        );
        assert_eq!(config_of("api.restapi.cors_plugin").map(|c| c["cors_allowed_origins"].clone()), Some(json!(["*"])));
        assert_eq!(config_of("consensus.crdt.peer_authorizer_plugin"), Some(json!({"trusted_peers": null})));
    }

    #[test]
    fn other_plugins_get_their_explicit_config_as_written() {
        let mut cfg = crdt_config();
        let api = cfg.api.restapi.as_mut().expect("restapi");
        api.basic_auth_credentials = Some([("admin".to_owned(), "pw".to_owned())].into());
        api.authorizer_plugin =
            Some(PluginRef { plugin: "tokens.wasm".into(), sha256: None, config: Some(json!({"issuer": "me"})) });
        let points = cfg.decision_points(Path::new("/cfg")).expect("valid");
        let auth = points.iter().find(|p| p.key == "api.restapi.authorizer_plugin").expect("authorizer");
        assert_eq!(auth.spec.config, json!({"issuer": "me"}));
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
