//! Reloading a plugin while in use: the new one is checked before the swap, a broken one
//! leaves the old one active, in-flight callers keep the plugin they started with, and a
//! watcher picks up a changed file.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn_policy::types::*;
use cairn_policy::{AuthorizerPlugin, PluginSlot, PluginSource, PluginSpec, PolicyError, ReloadStats, builtin};
use common::{basic, request, runtime, wasm};
use serde_json::json;

const USERS: &str = r#"{"basic_auth_credentials":{"u":"p"}}"#;

fn spec(path: &std::path::Path) -> PluginSpec {
    PluginSpec {
        source: PluginSource::File { path: path.into(), sha256: None },
        config: serde_json::from_str(USERS).expect("json"),
    }
}

/// basic-auth allows u:p; trusted-peers answers every API request with 403.
async fn answers_like_basic_auth(p: &AuthorizerPlugin) -> bool {
    p.authorize_request(&request("GET", "/id", basic("u", "p"))).await == RequestDecision::Allow("u".into())
}

fn write(path: &std::path::Path, bytes: &[u8]) {
    // Write then rename, as a deploy would, so a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn reload_swaps_and_in_flight_callers_keep_the_old_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("auth.wasm");
    write(&path, builtin::get("basic-auth").expect("builtin"));
    let slot = PluginSlot::<AuthorizerPlugin>::load(runtime(), spec(&path)).await.expect("load");

    let in_flight = slot.current();
    write(&path, builtin::get("trusted-peers").expect("builtin"));
    slot.reload().await.expect("reload");

    assert!(
        answers_like_basic_auth(&in_flight).await,
        "a request that started before the swap finishes on the old plugin"
    );
    let d = slot.current().authorize_request(&request("GET", "/id", basic("u", "p"))).await;
    assert!(matches!(d, RequestDecision::Deny(Denial { status: 403, .. })), "{d:?}");
    assert_eq!(slot.reload_stats(), ReloadStats { reloads: 1, failures: 0 });
    assert_eq!(slot.current().stats().denials, 1);
}

#[tokio::test]
async fn a_broken_new_file_leaves_the_old_plugin_active() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("auth.wasm");
    write(&path, builtin::get("basic-auth").expect("builtin"));
    let slot = PluginSlot::<AuthorizerPlugin>::load(runtime(), spec(&path)).await.expect("load");

    write(&path, b"\0asm garbage");
    assert!(matches!(slot.reload().await, Err(PolicyError::Invalid { .. })));
    assert!(answers_like_basic_auth(&slot.current()).await);

    // A plugin of the wrong kind, or one importing the filesystem, is refused the same way.
    write(&path, builtin::get("cors-config").expect("builtin"));
    assert!(matches!(slot.reload().await, Err(PolicyError::WrongWorld { .. })));
    write(&path, &std::fs::read(wasm("hostile_fs")).expect("fixture"));
    assert!(matches!(slot.reload().await, Err(PolicyError::ForbiddenImport { .. })));
    assert!(answers_like_basic_auth(&slot.current()).await);

    // A config the plugin refuses is a failed reload too.
    let mut bad = spec(&path);
    write(&path, builtin::get("basic-auth").expect("builtin"));
    bad.config = json!({"basic_auth_credentials": {}});
    assert!(matches!(slot.reload_with(bad).await, Err(PolicyError::Config { .. })));
    assert!(answers_like_basic_auth(&slot.current()).await);
    assert_eq!(slot.reload_stats(), ReloadStats { reloads: 0, failures: 4 });
}

#[tokio::test]
async fn watcher_reloads_a_changed_file_and_ignores_a_touch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("auth.wasm");
    write(&path, builtin::get("basic-auth").expect("builtin"));
    let slot = Arc::new(PluginSlot::<AuthorizerPlugin>::load(runtime(), spec(&path)).await.expect("load"));

    // Same content, new mtime: not a change.
    write(&path, builtin::get("basic-auth").expect("builtin"));
    let (attempted, result) = slot.reload_if_changed().await;
    assert!(!attempted && result.is_ok());

    let watcher = slot.watch(Duration::from_millis(20));
    write(&path, builtin::get("trusted-peers").expect("builtin"));
    let mut swapped = false;
    for _ in 0..250 {
        if !answers_like_basic_auth(&slot.current()).await {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.abort();
    assert!(swapped, "the watcher did not pick up the new plugin within 5 s");
}
