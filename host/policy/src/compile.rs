//! The engine, its epoch ticker, and compilation with an on-disk cache.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
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
        if let Some(dir) = &cache_dir {
            prepare_cache_dir(dir)?;
        }
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
        let cache_file = match &self.cache_dir {
            Some(dir) => {
                // Checked at every use, not only at start: the folder is the guard of what
                // is loaded as native code (and it may have been removed meanwhile).
                prepare_cache_dir(dir)?;
                Some(dir.join(self.cache_name(&hash)))
            }
            None => None,
        };
        let from_disk = cache_file.as_ref().and_then(|path| match read_cache(path) {
            Ok(artifact) => artifact.map(|artifact| (path, artifact)),
            Err(why) => {
                tracing::warn!(plugin = name, path = %path.display(), "ignoring compile cache entry: {why}");
                None
            }
        });
        let from_disk = from_disk.and_then(|(path, artifact)| {
            // SAFETY: the artifact is native code. It is loaded only from a folder that
            // only this user can write (`check_cache_dir`), from a file only this user can
            // write, and only when its embedded sha256 matches (a torn or corrupted file is
            // recompiled). wasmtime also checks the engine settings and version recorded in
            // the artifact. The bytes are copied into memory rather than mmapped, so a file
            // truncated under a running peer cannot crash it (SIGBUS).
            match unsafe { Component::deserialize(&self.engine, &artifact) } {
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

/// First bytes of a cache file; the sha256 of the artifact and the artifact follow.
const CACHE_MAGIC: &[u8; 8] = b"cairncw1";

/// Create the cache folder (owner-only) if missing, and refuse one that another user
/// could write to: whoever can write there chooses the native code this peer runs.
pub(crate) fn prepare_cache_dir(dir: &Path) -> Result<(), PolicyError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| PolicyError::UnsafeCache { path: dir.to_path_buf(), why: format!("cannot create it: {e}") })?;
    }
    check_cache_dir(dir)
}

/// The cache folder must be a directory owned by this user and not writable by group or
/// others.
///
/// This is the real guard of the cache. The sha256 embedded in each file only catches
/// corruption and torn writes: anyone able to replace a file could write a matching
/// digest too, and a keyed digest would need a secret kept somewhere else.
fn check_cache_dir(dir: &Path) -> Result<(), PolicyError> {
    let unsafe_cache = |why: String| PolicyError::UnsafeCache { path: dir.to_path_buf(), why };
    let meta = std::fs::metadata(dir).map_err(|e| unsafe_cache(format!("cannot read it: {e}")))?;
    if !meta.is_dir() {
        return Err(unsafe_cache("not a directory".into()));
    }
    owner_only(&meta).map_err(unsafe_cache)
}

/// Whether a cache file or folder is owned by this user and writable by nobody else.
fn owner_only(meta: &std::fs::Metadata) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        return Err(format!(
            "owned by uid {}, not by this user (uid {euid}); compiled plugins are native code",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "mode {mode:o} lets group or others write it; compiled plugins are native code (fix: chmod go-w)"
        ));
    }
    Ok(())
}

/// The verified artifact of a cache file; `None` when there is none yet, an error saying
/// why the file must not be used otherwise.
fn read_cache(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    // Of the opened file, so a swap after the check cannot slip in.
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    owner_only(&meta)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    let (magic, rest) = bytes.split_at_checked(CACHE_MAGIC.len()).ok_or("truncated header")?;
    let (digest, artifact) = rest.split_at_checked(32).ok_or("truncated header")?;
    if magic != CACHE_MAGIC {
        return Err("not a cairn compile cache file".into());
    }
    if Sha256::digest(artifact).as_slice() != digest {
        return Err("sha256 mismatch: the file is corrupted".into());
    }
    Ok(Some(artifact.to_vec()))
}

/// Write atomically (temp file + rename) so a crash never leaves a torn artifact; the
/// file is owner-only and carries the artifact's sha256.
fn write_cache(path: &Path, component: &Component) -> std::io::Result<()> {
    let artifact = component.serialize().map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(CACHE_MAGIC)?;
    file.write_all(&Sha256::digest(&artifact))?;
    file.write_all(&artifact)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}
