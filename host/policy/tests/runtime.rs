//! The runtime's loading rules: sha256 pinning, the on-disk compile cache, config errors,
//! and many concurrent callers.

mod common;

use std::sync::Arc;

use cairn_policy::types::*;
use cairn_policy::{Limits, PluginSource, PluginSpec, PolicyError, PolicyRuntime, RuntimeSettings, builtin};
use common::{basic, request, runtime, wasm};
use serde_json::json;
use sha2::{Digest, Sha256};

fn file_spec(path: &std::path::Path, sha256: Option<String>) -> PluginSpec {
    PluginSpec {
        source: PluginSource::File { path: path.to_path_buf(), sha256 },
        config: json!({"basic_auth_credentials": {"u": "p"}}),
    }
}

fn basic_auth_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("basic-auth.wasm");
    std::fs::write(&path, builtin::get("basic-auth").expect("builtin")).expect("write");
    path
}

#[tokio::test]
async fn sha256_pin_is_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = basic_auth_file(dir.path());
    let good = hex::encode(Sha256::digest(std::fs::read(&path).expect("read")));
    let rt = runtime();
    let p = rt.load_authorizer(&file_spec(&path, Some(good.to_uppercase()))).await.expect("pinned load");
    assert_eq!(p.authorize_request(&request("GET", "/id", basic("u", "p"))).await, RequestDecision::Allow("u".into()));

    let wrong = "0".repeat(64);
    let err = rt.load_authorizer(&file_spec(&path, Some(wrong.clone()))).await.err().expect("mismatch");
    let PolicyError::Sha256Mismatch { expected, actual, .. } = &err else { panic!("{err}") };
    assert_eq!((expected, actual), (&wrong, &good));

    let err = rt.load_authorizer(&file_spec(&path, Some("abc".into()))).await.err().expect("bad sha");
    assert!(matches!(err, PolicyError::BadSha256 { .. }), "{err}");
}

#[tokio::test]
async fn compiled_artifacts_are_cached_on_disk_and_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let path = basic_auth_file(dir.path());
    let settings = RuntimeSettings { cache_dir: Some(cache.clone()), limits: Limits::default() };

    let first = PolicyRuntime::new(settings.clone()).expect("runtime");
    first.load_authorizer(&file_spec(&path, None)).await.expect("load");
    let entries: Vec<_> = std::fs::read_dir(&cache).expect("cache dir").flatten().map(|e| e.path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let artifact = &entries[0];
    let name = artifact.file_name().and_then(|n| n.to_str()).expect("name").to_string();
    let wasm_hash = hex::encode(Sha256::digest(std::fs::read(&path).expect("read")));
    assert!(name.starts_with(&wasm_hash) && name.ends_with(".cwasm"), "{name}");
    let written = std::fs::metadata(artifact).and_then(|m| m.modified()).expect("mtime");

    // A new runtime (a restart) loads from the artifact instead of compiling again.
    let second = PolicyRuntime::new(settings.clone()).expect("runtime");
    let p = second.load_authorizer(&file_spec(&path, None)).await.expect("load from cache");
    assert_eq!(std::fs::metadata(artifact).and_then(|m| m.modified()).expect("mtime"), written);
    assert_eq!(p.authorize_request(&request("GET", "/id", basic("u", "p"))).await, RequestDecision::Allow("u".into()));

    // A corrupt artifact is ignored and replaced, never trusted.
    std::fs::write(artifact, b"corrupt").expect("corrupt");
    let third = PolicyRuntime::new(settings).expect("runtime");
    third.load_authorizer(&file_spec(&path, None)).await.expect("recompiles");
    assert!(std::fs::metadata(artifact).expect("artifact").len() > 1000);
}

/// The only entry of a cache folder.
fn only_artifact(cache: &std::path::Path) -> std::path::PathBuf {
    let entries: Vec<_> = std::fs::read_dir(cache).expect("cache dir").flatten().map(|e| e.path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().expect("one entry")
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[tokio::test]
async fn a_flipped_byte_in_a_cached_artifact_is_recompiled_not_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let path = basic_auth_file(dir.path());
    let settings = RuntimeSettings { cache_dir: Some(cache.clone()), limits: Limits::default() };
    PolicyRuntime::new(settings.clone())
        .expect("runtime")
        .load_authorizer(&file_spec(&path, None))
        .await
        .expect("load");
    let artifact = only_artifact(&cache);
    let mut bytes = std::fs::read(&artifact).expect("read");
    // Flip a byte in the middle of the longest run of zeros (section padding), a change the
    // artifact's own format does not notice, so only an integrity check can.
    let (mut best, mut run_start, mut best_len) = (0, 0, 0);
    for (i, b) in bytes.iter().enumerate() {
        if *b != 0 {
            run_start = i + 1;
        } else if i + 1 - run_start > best_len {
            (best, best_len) = (run_start, i + 1 - run_start);
        }
    }
    assert!(best_len >= 16, "no padding found in {} bytes", bytes.len());
    bytes[best + best_len / 2] ^= 0x01;
    std::fs::write(&artifact, &bytes).expect("tamper");

    let p = PolicyRuntime::new(settings)
        .expect("runtime")
        .load_authorizer(&file_spec(&path, None))
        .await
        .expect("recompiles");
    assert!(std::fs::read(&artifact).expect("read") != bytes, "the tampered artifact was loaded, not replaced");
    assert_eq!(p.authorize_request(&request("GET", "/id", basic("u", "p"))).await, RequestDecision::Allow("u".into()));
}

#[tokio::test]
async fn a_cache_folder_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("open-cache");
    std::fs::create_dir(&cache).expect("mkdir");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let settings = RuntimeSettings { cache_dir: Some(cache.clone()), limits: Limits::default() };
    let err = PolicyRuntime::new(settings.clone()).err().expect("a world-writable cache folder is refused");
    assert!(err.to_string().contains(&cache.display().to_string()), "{err}");
    assert!(err.to_string().contains("777"), "{err}");

    // Made writable after start: refused at the next load, naming the folder.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let rt = PolicyRuntime::new(settings).expect("an owner-only folder is fine");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o770)).expect("chmod");
    let path = basic_auth_file(dir.path());
    let err = rt.load_authorizer(&file_spec(&path, None)).await.err().expect("refused at load");
    assert!(err.to_string().contains(&cache.display().to_string()), "{err}");
}

#[tokio::test]
async fn cache_folder_and_files_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("a").join("cache");
    let settings = RuntimeSettings { cache_dir: Some(cache.clone()), limits: Limits::default() };
    let path = basic_auth_file(dir.path());
    PolicyRuntime::new(settings.clone())
        .expect("runtime")
        .load_authorizer(&file_spec(&path, None))
        .await
        .expect("load");
    assert_eq!(mode(&cache), 0o700);
    let artifact = only_artifact(&cache);
    assert_eq!(mode(&artifact) & 0o077, 0, "{:o}", mode(&artifact));

    // A cache file others could have rewritten is not loaded; it is replaced.
    std::fs::set_permissions(&artifact, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    PolicyRuntime::new(settings).expect("runtime").load_authorizer(&file_spec(&path, None)).await.expect("load");
    assert_eq!(mode(&artifact) & 0o077, 0, "{:o}", mode(&artifact));
}

#[tokio::test]
async fn unknown_builtin_lists_the_builtins() {
    let err = runtime().load_authorizer(&PluginSpec::builtin("nope", json!(null))).await.err().expect("unknown");
    assert!(err.to_string().contains("basic-auth, trusted-peers, cors-config, balanced"), "{err}");
}

#[test]
fn plugin_source_parses_builtin_and_paths() {
    assert_eq!(PluginSource::parse("builtin:basic-auth", None), PluginSource::Builtin("basic-auth".into()));
    assert_eq!(
        PluginSource::parse("/etc/cairn/auth.wasm", Some("ab".into())),
        PluginSource::File { path: "/etc/cairn/auth.wasm".into(), sha256: Some("ab".into()) }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_one_plugin() {
    let rt = runtime();
    let p = Arc::new(
        rt.load_authorizer(&PluginSpec::builtin("basic-auth", json!({"basic_auth_credentials": {"u": "p"}})))
            .await
            .expect("load"),
    );
    let mut tasks = Vec::new();
    for i in 0..200 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let (user, pass) = if i % 2 == 0 { ("u", "p") } else { ("u", "wrong") };
            (i, p.authorize_request(&request("GET", "/pins", basic(user, pass))).await)
        }));
    }
    for task in tasks {
        let (i, d) = task.await.expect("task");
        assert_eq!(matches!(d, RequestDecision::Allow(_)), i % 2 == 0, "request {i}: {d:?}");
    }
    let stats = p.stats();
    assert_eq!(stats.calls, 200, "{stats:?}");
    // Every wrong password is a denial; on a loaded machine a call may instead hit its deadline,
    // which fails closed (the allowed half all passed above, so no allowed call failed).
    assert_eq!(stats.denials + stats.failures, 100, "{stats:?}");
    assert_eq!(stats.latency.count(), 200, "{stats:?}");
    assert!(stats.latency.sum_nanos > 0, "{stats:?}");
    assert!(stats.instances_created <= rt.limits().max_instances as u64, "{stats:?}");
}

#[tokio::test]
async fn embedded_plugins_load_quickly_from_a_warm_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = RuntimeSettings { cache_dir: Some(dir.path().to_path_buf()), limits: Limits::default() };
    async fn load_all(rt: &PolicyRuntime) {
        rt.load_authorizer(&PluginSpec::builtin("basic-auth", json!(null))).await.expect("basic-auth");
        rt.load_authorizer(&PluginSpec::builtin("trusted-peers", json!({"trusted_peers": ["*"]})))
            .await
            .expect("trusted-peers");
        rt.load_cors(&PluginSpec::builtin("cors-config", json!(null))).await.expect("cors-config");
        rt.load_allocator(&PluginSpec::builtin("balanced", json!(null))).await.expect("balanced");
    }
    load_all(&PolicyRuntime::new(settings.clone()).expect("runtime")).await;
    let started = std::time::Instant::now();
    load_all(&PolicyRuntime::new(settings).expect("runtime")).await;
    // Timing is the benchmark's job; this only shows the warm path works end to end.
    println!("four default plugins loaded from a warm cache in {:?}", started.elapsed());
    let _ = wasm("basic_auth");
}
