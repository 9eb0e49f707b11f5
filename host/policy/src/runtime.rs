//! The runtime: settings, plugin sources, and loading a plugin of each kind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::compile::Compiler;
use crate::error::PolicyError;
use crate::instance::{Kind, Loaded};
use crate::{AllocatorPlugin, AuthorizerPlugin, ComponentInfo, CorsPlugin, builtin, sandbox};

/// The kinds of decision a plugin can make; one WIT world each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    Authorizer,
    Cors,
    Allocator,
}

impl PluginKind {
    /// Every kind.
    pub const ALL: [PluginKind; 3] = [PluginKind::Authorizer, PluginKind::Cors, PluginKind::Allocator];

    /// The interface a plugin of this kind exports.
    pub fn export_name(self) -> &'static str {
        match self {
            PluginKind::Authorizer => "cairn:policy/authorizer@0.1.0",
            PluginKind::Cors => "cairn:policy/cors@0.1.0",
            PluginKind::Allocator => "cairn:policy/allocator@0.1.0",
        }
    }

    /// The world a plugin of this kind implements.
    pub fn world_name(self) -> &'static str {
        match self {
            PluginKind::Authorizer => "cairn:policy/authorizer-plugin@0.1.0",
            PluginKind::Cors => "cairn:policy/cors-plugin@0.1.0",
            PluginKind::Allocator => "cairn:policy/allocator-plugin@0.1.0",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Authorizer => "authorizer",
            PluginKind::Cors => "cors",
            PluginKind::Allocator => "allocator",
        })
    }
}

/// Sandbox limits applied to every plugin instance and call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CPU budget of one call: time the call runs, counted in 1 ms epoch ticks (time it
    /// waits for a thread does not count). Default 10 ms.
    pub call_deadline: Duration,
    /// The same budget for starting an instance (instantiation plus the plugin's `init`,
    /// which parses its config). Default 250 ms.
    pub start_deadline: Duration,
    /// Linear-memory cap of one instance. Default 64 MiB.
    pub memory_bytes: usize,
    /// Instances of one plugin that may run at once; more callers wait. Default 64.
    pub max_instances: usize,
    /// Calls after which an instance is replaced, bounding what a leaky plugin can keep.
    /// Default 100 000.
    pub max_calls_per_instance: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_deadline: Duration::from_millis(10),
            start_deadline: Duration::from_millis(250),
            memory_bytes: 64 << 20,
            max_instances: 64,
            max_calls_per_instance: 100_000,
        }
    }
}

/// How the runtime is set up.
#[derive(Debug, Clone, Default)]
pub struct RuntimeSettings {
    /// Where compiled plugins are cached, keyed by content hash and engine settings, so a
    /// restart does not recompile. `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Sandbox limits.
    pub limits: Limits,
}

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// One of the plugins embedded in the binary (`builtin:<name>`).
    Builtin(String),
    /// A component file, optionally pinned by its sha256 (hex).
    File { path: PathBuf, sha256: Option<String> },
}

impl PluginSource {
    /// Parse `builtin:<name>` or a file path.
    pub fn parse(s: &str, sha256: Option<String>) -> PluginSource {
        match s.strip_prefix("builtin:") {
            Some(name) => PluginSource::Builtin(name.to_string()),
            None => PluginSource::File { path: PathBuf::from(s), sha256 },
        }
    }
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::Builtin(name) => write!(f, "builtin:{name}"),
            PluginSource::File { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

/// A plugin to load: where it comes from and the config object passed to it.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub source: PluginSource,
    /// The operator's config object for this plugin (`null` when there is none).
    pub config: serde_json::Value,
}

impl PluginSpec {
    /// A builtin plugin with the given config.
    pub fn builtin(name: &str, config: serde_json::Value) -> Self {
        PluginSpec { source: PluginSource::Builtin(name.to_string()), config }
    }

    /// A component file with the given config.
    pub fn file(path: impl AsRef<Path>, config: serde_json::Value) -> Self {
        PluginSpec { source: PluginSource::File { path: path.as_ref().to_path_buf(), sha256: None }, config }
    }
}

/// The plugin runtime: one engine, its epoch ticker and compile cache, shared by every
/// loaded plugin. Cheap to clone.
#[derive(Clone)]
pub struct PolicyRuntime {
    compiler: Arc<Compiler>,
    limits: Limits,
}

impl PolicyRuntime {
    /// Create the engine and start its epoch ticker.
    pub fn new(settings: RuntimeSettings) -> Result<Self, PolicyError> {
        let compiler = Compiler::new(settings.cache_dir)?;
        Ok(PolicyRuntime { compiler: Arc::new(compiler), limits: settings.limits })
    }

    /// The limits every plugin loaded by this runtime gets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Load an authorizer plugin.
    pub async fn load_authorizer(&self, spec: &PluginSpec) -> Result<AuthorizerPlugin, PolicyError> {
        Ok(AuthorizerPlugin::new(self.load(spec).await?))
    }

    /// Load a CORS plugin.
    pub async fn load_cors(&self, spec: &PluginSpec) -> Result<CorsPlugin, PolicyError> {
        Ok(CorsPlugin::new(self.load(spec).await?))
    }

    /// Load an allocator plugin.
    pub async fn load_allocator(&self, spec: &PluginSpec) -> Result<AllocatorPlugin, PolicyError> {
        Ok(AllocatorPlugin::new(self.load(spec).await?))
    }

    /// Compile (or fetch from cache) and inspect a component without loading it.
    pub fn inspect(&self, source: &PluginSource) -> Result<ComponentInfo, PolicyError> {
        let (name, bytes) = read_source(source)?;
        let component = self.compiler.compile(&name, &bytes)?;
        Ok(sandbox::inspect(self.compiler.engine(), &component))
    }

    async fn load<K: Kind>(&self, spec: &PluginSpec) -> Result<Loaded<K>, PolicyError> {
        let (name, bytes) = read_source(&spec.source)?;
        let component = self.compiler.compile(&name, &bytes)?;
        let info = sandbox::inspect(self.compiler.engine(), &component);
        if let Some((import, why)) = info.refused() {
            return Err(PolicyError::ForbiddenImport { source_name: name, import: import.to_string(), why });
        }
        if info.kind != Some(K::KIND) {
            return Err(PolicyError::WrongWorld {
                source_name: name,
                expected: K::KIND.world_name().to_string(),
                exports: if info.exports.is_empty() { "nothing".into() } else { info.exports.join(", ") },
            });
        }
        let config = serde_json::to_string(&spec.config).map_err(|e| PolicyError::Runtime(e.to_string()))?;
        Loaded::<K>::new(name, &self.compiler, &component, config, self.limits.clone()).await
    }
}

/// The plugin's display name and its bytes, checked against the configured sha256.
fn read_source(source: &PluginSource) -> Result<(String, Arc<[u8]>), PolicyError> {
    let name = source.to_string();
    match source {
        PluginSource::Builtin(builtin_name) => {
            let bytes = builtin::get(builtin_name)
                .ok_or_else(|| PolicyError::UnknownBuiltin(builtin_name.clone(), builtin::NAMES.join(", ")))?;
            Ok((name, Arc::from(bytes)))
        }
        PluginSource::File { path, sha256 } => {
            let bytes = std::fs::read(path).map_err(|error| PolicyError::Read {
                source_name: name.clone(),
                path: path.clone(),
                error,
            })?;
            if let Some(expected) = sha256 {
                let expected = expected.trim().to_ascii_lowercase();
                if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(PolicyError::BadSha256 { source_name: name, value: expected });
                }
                let actual = hex::encode(Sha256::digest(&bytes));
                if actual != expected {
                    return Err(PolicyError::Sha256Mismatch { source_name: name, expected, actual });
                }
            }
            Ok((name, Arc::from(bytes)))
        }
    }
}
