//! The engine, its epoch ticker, and compilation with an on-disk cache.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::error::PolicyError;
use crate::instance::HostState;

/// How often the engine's epoch advances. A call's deadline is counted in ticks during
/// which the call was running, so this is the deadline's granularity.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The ticker's own count of epochs, readable without the engine (wasmtime does not expose
/// the current epoch), so a call can tell which ticks passed while it was running.
#[derive(Clone, Default)]
pub(crate) struct TickClock(Arc<AtomicU64>);

impl TickClock {
    /// Ticks since the runtime started.
    pub(crate) fn now(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// The engine plus everything compiled with it.
pub(crate) struct Compiler {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    /// Compiled components by content hash, so reloading an unchanged plugin is free.
    compiled: Mutex<HashMap<[u8; 32], Component>>,
    clock: TickClock,
    ticker_stop: Arc<AtomicBool>,
}

impl Compiler {
    pub(crate) fn new(cache_dir: Option<PathBuf>) -> Result<Self, PolicyError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
        let engine = Engine::new(&config).map_err(|e| PolicyError::Runtime(format!("engine: {e:#}")))?;
        let linker = crate::instance::linker(&engine).map_err(|e| PolicyError::Runtime(format!("linker: {e:#}")))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let clock = TickClock::default();
        let (weak_engine, stop, ticks) = (engine.weak(), ticker_stop.clone(), clock.0.clone());
        std::thread::Builder::new()
            .name("cairn-policy-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    let Some(engine) = weak_engine.upgrade() else { break };
                    // Our count first: a call interrupted by this epoch must already see it.
                    ticks.fetch_add(1, Ordering::AcqRel);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| PolicyError::Runtime(format!("epoch ticker: {e}")))?;

        Ok(Compiler { engine, linker, cache_dir, compiled: Mutex::new(HashMap::new()), clock, ticker_stop })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn clock(&self) -> &TickClock {
        &self.clock
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    /// Compile `bytes`, or reuse the in-memory or on-disk artifact for the same content
    /// and engine settings.
    pub(crate) fn compile(&self, name: &str, bytes: &[u8]) -> Result<Component, PolicyError> {
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(c) = self.compiled.lock().ok().and_then(|m| m.get(&hash).cloned()) {
            return Ok(c);
        }
        let cache_file = self.cache_dir.as_ref().map(|dir| dir.join(self.cache_name(&hash)));
        let from_disk = cache_file.as_ref().and_then(|path| std::fs::read(path).ok().map(|bytes| (path, bytes)));
        let from_disk = from_disk.and_then(|(path, bytes)| {
            // Read into memory rather than mmap the file: a cache file truncated under a
            // running peer must not crash it (SIGBUS).
            // SAFETY: the cache folder is written only by this runtime (under the
            // operator's config folder); wasmtime checks the engine settings and version
            // recorded in the artifact and errors out on a mismatch.
            match unsafe { Component::deserialize(&self.engine, &bytes) } {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(plugin = name, path = %path.display(), "ignoring unusable compile cache entry: {e:#}");
                    None
                }
            }
        });
        let component = match from_disk {
            Some(c) => c,
            None => {
                let c = Component::new(&self.engine, bytes)
                    .map_err(|e| PolicyError::Invalid { source_name: name.to_string(), reason: format!("{e:#}") })?;
                if let Some(path) = &cache_file
                    && let Err(e) = write_cache(path, &c)
                {
                    tracing::warn!(plugin = name, path = %path.display(), "cannot write compile cache: {e}");
                }
                c
            }
        };
        if let Ok(mut m) = self.compiled.lock() {
            m.insert(hash, component.clone());
        }
        Ok(component)
    }

    /// `<sha256 of the wasm>-<hash of wasmtime version and engine settings>.cwasm`.
    fn cache_name(&self, hash: &[u8; 32]) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{}-{:016x}.cwasm", hex::encode(hash), h.finish())
    }
}

impl Drop for Compiler {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Write atomically (temp file + rename) so a crash never leaves a torn artifact.
fn write_cache(path: &std::path::Path, component: &Component) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
