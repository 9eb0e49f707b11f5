//! Swapping a plugin while the peer runs: a [`PluginSlot`] holds the active plugin of one
//! decision point. A reload compiles and checks the new plugin first and swaps it in
//! atomically; a plugin that fails to load leaves the old one active. Callers take the
//! current plugin once per request, so in-flight requests finish on the plugin they
//! started with.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::error::PolicyError;
use crate::runtime::{PluginSource, PluginSpec, PolicyRuntime};
use crate::{AllocatorPlugin, AuthorizerPlugin, CorsPlugin};

/// A plugin kind the runtime can load.
pub trait Loadable: Send + Sync + Sized + 'static {
    /// Load (compile, check, start) a plugin of this kind.
    fn load(runtime: &PolicyRuntime, spec: &PluginSpec) -> impl Future<Output = Result<Self, PolicyError>> + Send;
}

impl Loadable for AuthorizerPlugin {
    async fn load(runtime: &PolicyRuntime, spec: &PluginSpec) -> Result<Self, PolicyError> {
        runtime.load_authorizer(spec).await
    }
}

impl Loadable for CorsPlugin {
    async fn load(runtime: &PolicyRuntime, spec: &PluginSpec) -> Result<Self, PolicyError> {
        runtime.load_cors(spec).await
    }
}

impl Loadable for AllocatorPlugin {
    async fn load(runtime: &PolicyRuntime, spec: &PluginSpec) -> Result<Self, PolicyError> {
        runtime.load_allocator(spec).await
    }
}

/// What was loaded: the spec and, for a file, what its content looked like then.
struct Loaded {
    spec: PluginSpec,
    file: Option<FileStamp>,
}

/// Enough of a file's state to notice a change cheaply (metadata) and surely (content).
#[derive(Clone)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    sha256: [u8; 32],
}

impl FileStamp {
    fn read(path: &PathBuf) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        let bytes = std::fs::read(path).ok()?;
        Some(FileStamp { modified: meta.modified().ok(), len: meta.len(), sha256: Sha256::digest(&bytes).into() })
    }

    /// Whether the file may have changed, by metadata only.
    fn metadata_differs(&self, path: &PathBuf) -> bool {
        match std::fs::metadata(path) {
            Ok(meta) => meta.len() != self.len || meta.modified().ok() != self.modified,
            Err(_) => true,
        }
    }
}

fn file_of(spec: &PluginSpec) -> Option<&PathBuf> {
    match &spec.source {
        PluginSource::File { path, .. } => Some(path),
        PluginSource::Builtin(_) => None,
    }
}

/// How a slot's reloads went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadStats {
    /// Reloads that swapped a new plugin in.
    pub reloads: u64,
    /// Reloads that failed (the active plugin stayed).
    pub failures: u64,
}

/// The active plugin of one decision point, replaceable while in use.
pub struct PluginSlot<P> {
    runtime: PolicyRuntime,
    current: RwLock<Arc<P>>,
    loaded: Mutex<Loaded>,
    /// Serializes reloads so two never race to swap.
    reloading: tokio::sync::Mutex<()>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl<P: Loadable> PluginSlot<P> {
    /// Load the first plugin; an error here refuses to start the decision point.
    pub async fn load(runtime: PolicyRuntime, spec: PluginSpec) -> Result<Self, PolicyError> {
        let file = file_of(&spec).and_then(FileStamp::read);
        let plugin = P::load(&runtime, &spec).await?;
        Ok(PluginSlot {
            runtime,
            current: RwLock::new(Arc::new(plugin)),
            loaded: Mutex::new(Loaded { spec, file }),
            reloading: tokio::sync::Mutex::new(()),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        })
    }

    /// How many reloads swapped a plugin in, and how many failed.
    pub fn reload_stats(&self) -> ReloadStats {
        ReloadStats {
            reloads: self.reloads.load(Ordering::Relaxed),
            failures: self.reload_failures.load(Ordering::Relaxed),
        }
    }

    /// The active plugin. Take it once per request and use it for the whole request.
    pub fn current(&self) -> Arc<P> {
        match self.current.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The spec of the active plugin.
    pub fn spec(&self) -> PluginSpec {
        self.with_loaded(|l| l.spec.clone())
    }

    /// Load the plugin again from its spec (e.g. on SIGHUP), and swap it in if it loads.
    pub async fn reload(&self) -> Result<(), PolicyError> {
        self.reload_with(self.spec()).await
    }

    /// Load a plugin from a new spec (a changed config or path) and swap it in if it
    /// loads. On error the active plugin stays, and the error says why.
    pub async fn reload_with(&self, spec: PluginSpec) -> Result<(), PolicyError> {
        let _one_at_a_time = self.reloading.lock().await;
        let file = file_of(&spec).and_then(FileStamp::read);
        match P::load(&self.runtime, &spec).await {
            Ok(plugin) => {
                self.swap(plugin);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                self.with_loaded(|l| *l = Loaded { spec: spec.clone(), file });
                tracing::info!(plugin = %spec.source, "plugin reloaded");
                Ok(())
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                // Remember the broken file so the watcher does not retry it every tick.
                if file.is_some() && self.with_loaded(|l| file_of(&l.spec) == file_of(&spec)) {
                    self.with_loaded(|l| l.file = file);
                }
                tracing::error!(plugin = %spec.source, "plugin reload failed, keeping the active plugin: {e}");
                Err(e)
            }
        }
    }

    /// Reload when the plugin's file changed since it was last loaded (or tried).
    /// Returns whether a reload was attempted.
    pub async fn reload_if_changed(&self) -> (bool, Result<(), PolicyError>) {
        let (spec, stamp) = self.with_loaded(|l| (l.spec.clone(), l.file.clone()));
        let Some(path) = file_of(&spec) else { return (false, Ok(())) };
        if stamp.as_ref().is_some_and(|s| !s.metadata_differs(path)) {
            return (false, Ok(()));
        }
        // Metadata moved (or no stamp yet): compare content, since a touch is no change.
        let Some(now) = FileStamp::read(path) else { return (false, Ok(())) };
        if stamp.as_ref().is_some_and(|s| s.sha256 == now.sha256) {
            self.with_loaded(|l| l.file = Some(now));
            return (false, Ok(()));
        }
        (true, self.reload_with(spec).await)
    }

    /// Watch the plugin's file every `every` and reload it when its content changes, until
    /// the slot is dropped.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let slot = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(slot) = slot.upgrade() else { break };
                let _ = slot.reload_if_changed().await;
            }
        })
    }

    fn swap(&self, plugin: P) {
        let plugin = Arc::new(plugin);
        match self.current.write() {
            Ok(mut current) => *current = plugin,
            Err(poisoned) => *poisoned.into_inner() = plugin,
        }
    }

    fn with_loaded<R>(&self, f: impl FnOnce(&mut Loaded) -> R) -> R {
        match self.loaded.lock() {
            Ok(mut l) => f(&mut l),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}
