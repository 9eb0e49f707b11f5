//! Environment overrides, applied at every load as IPFS Cluster does:
//! `CLUSTER_<SECTIONKEY>_<FIELDNAMENOUNDERSCORES>` (no infix for the `cluster` section), e.g.
//! `CLUSTER_SECRET`, `CLUSTER_PEERNAME`, `CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS`,
//! `CLUSTER_CRDT_TRUSTEDPEERS='*'`. Plus `CLUSTER_SECRET_FILE`: the secret read from a file,
//! so it need not sit in the environment.
//!
//! Values are read as envconfig reads them: lists comma-separated, maps `k:v,k2:v2`, booleans
//! and numbers parsed, everything else as the string written in the JSON (durations too).

use std::path::Path;

use serde_json::{Map, Value};

use super::model::ServiceConfig;
use super::{ConfigError, EnvLookup};

/// Section prefix → where the section sits in service.json.
const SECTIONS: &[(&str, &[&str])] = &[
    ("CLUSTER_CRDT_", &["consensus", "crdt"]),
    ("CLUSTER_RAFT_", &["consensus", "raft"]),
    ("CLUSTER_RESTAPI_", &["api", "restapi"]),
    ("CLUSTER_PINSVCAPI_", &["api", "pinsvcapi"]),
    ("CLUSTER_IPFSPROXY_", &["api", "ipfsproxy"]),
    ("CLUSTER_IPFSHTTP_", &["ipfs_connector", "ipfshttp"]),
    ("CLUSTER_STATELESS_", &["pin_tracker", "stateless"]),
    ("CLUSTER_PUBSUBMON_", &["monitor", "pubsubmon"]),
    ("CLUSTER_BALANCED_", &["allocator", "balanced"]),
    ("CLUSTER_DISK_", &["informer", "disk"]),
    ("CLUSTER_TAGS_", &["informer", "tags"]),
    ("CLUSTER_PINQUEUE_", &["informer", "pinqueue"]),
    ("CLUSTER_NUMPIN_", &["informer", "numpin"]),
    ("CLUSTER_METRICS_", &["observations", "metrics"]),
    ("CLUSTER_TRACING_", &["observations", "tracing"]),
    // Last: its prefix is a prefix of all the others, but lookups are by full name, so
    // the order only matters for readability.
    ("CLUSTER_", &["cluster"]),
];

/// Keys that map to string→string maps (envconfig's `k:v,k2:v2`).
const MAP_KEYS: &[&str] = &["basic_auth_credentials", "tags"];

/// Keys written only when they differ from the default, so not visible in the serialized
/// section, that can still be overridden.
const HIDDEN_KEYS: &[(&str, &[&str])] = &[("cluster", &["follower_mode", "peerstore_file"])];

/// The boolean ones among [`HIDDEN_KEYS`] (the others are strings).
const HIDDEN_BOOLS: &[&str] = &["follower_mode"];

/// Apply the overrides found through `env`; returns the names of the variables applied.
pub(crate) fn apply(config: &mut ServiceConfig, env: &EnvLookup, file: &Path) -> Result<Vec<String>, ConfigError> {
    let mut applied = Vec::new();
    let mut root = serde_json::to_value(&*config).map_err(|e| ConfigError::invalid(file, "", e.to_string()))?;
    let defaults = serde_json::to_value(ServiceConfig::all_defaults()).unwrap_or(Value::Null);
    // (dotted key, variable) of every override, to name the variable in a type error.
    let mut sources: Vec<(String, String)> = Vec::new();

    for (prefix, path) in SECTIONS {
        let Some(Value::Object(section)) = pointer_mut(&mut root, path) else { continue };
        let default_section = pointer(&defaults, path);
        let hidden = HIDDEN_KEYS.iter().filter(|(s, _)| path == &[*s]).flat_map(|(_, keys)| keys.iter());
        let mut keys: Vec<String> = section.keys().cloned().collect();
        if let Some(Value::Object(d)) = default_section {
            keys.extend(d.keys().cloned());
        }
        keys.extend(hidden.map(|k| k.to_string()));
        keys.sort();
        keys.dedup();
        for key in keys {
            let var = format!("{prefix}{}", key.replace('_', "").to_ascii_uppercase());
            let Some(text) = env(&var) else { continue };
            let current = section.get(&key).filter(|v| !v.is_null());
            let hidden_bool = Value::Bool(false);
            let shape = current
                .or_else(|| default_section.and_then(|d| d.get(&key)))
                .or_else(|| HIDDEN_BOOLS.contains(&key.as_str()).then_some(&hidden_bool));
            let Some(value) = parse_value(&key, shape, &text) else { continue };
            section.insert(key.clone(), value);
            sources.push((format!("{}.{key}", path.join(".")), var.clone()));
            applied.push(var);
        }
    }
    if !applied.is_empty() {
        *config = serde_path_to_error::deserialize(root).map_err(|e| {
            let key = e.path().to_string();
            let var = sources
                .iter()
                .find(|(k, _)| key.starts_with(k.as_str()))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| key.clone());
            ConfigError::Env { var, problem: format!("{key}: {}", e.inner()) }
        })?;
    }

    // The secret from a file, so it need not sit in the environment.
    if let Some(secret_file) = env("CLUSTER_SECRET_FILE").filter(|s| !s.is_empty()) {
        if env("CLUSTER_SECRET").is_some() {
            return Err(ConfigError::Env {
                var: "CLUSTER_SECRET_FILE".into(),
                problem: "CLUSTER_SECRET is set too; set only one of them".into(),
            });
        }
        let secret = std::fs::read_to_string(&secret_file).map_err(|e| ConfigError::Env {
            var: "CLUSTER_SECRET_FILE".into(),
            problem: format!("cannot read {secret_file}: {e}"),
        })?;
        if let Some(cluster) = config.cluster.as_mut() {
            cluster.secret = secret.trim().to_string();
        }
        applied.push("CLUSTER_SECRET_FILE".into());
    }
    Ok(applied)
}

/// Read `text` as the JSON value of `key`, shaped like `shape` (its current or default value).
/// `None` for nested objects, which envconfig does not override with one variable either.
fn parse_value(key: &str, shape: Option<&Value>, text: &str) -> Option<Value> {
    if MAP_KEYS.contains(&key) {
        let map: Map<String, Value> = text
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once(':') {
                Some((k, v)) => (k.trim().to_string(), Value::from(v.trim())),
                None => (kv.trim().to_string(), Value::from("")),
            })
            .collect();
        return Some(Value::Object(map));
    }
    // Multiaddress lists are written as a string when they hold one address.
    let list = key.ends_with("listen_multiaddress");
    Some(match shape {
        Some(Value::Object(_)) => return None,
        _ if list => Value::Array(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Value::from).collect()),
        Some(Value::Array(_)) => {
            Value::Array(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Value::from).collect())
        }
        // Unparseable booleans and numbers stay strings, so the type error names the variable.
        Some(Value::Bool(_)) => match text.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => Value::Bool(true),
            "0" | "f" | "false" => Value::Bool(false),
            _ => Value::from(text),
        },
        Some(Value::Number(_)) => serde_json::from_str::<serde_json::Number>(text.trim())
            .map(Value::Number)
            .unwrap_or_else(|_| Value::from(text)),
        _ => Value::from(text),
    })
}

fn pointer<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, k| v.get(*k))
}

fn pointer_mut<'a>(root: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(root, |v, k| v.get_mut(*k))
}
