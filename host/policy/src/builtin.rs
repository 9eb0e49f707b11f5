//! The default policies, compiled from `plugins/` by the build script and embedded.

use crate::runtime::PluginKind;

macro_rules! wasm {
    ($file:literal) => {
        include_bytes!(concat!(env!("CAIRN_PLUGIN_WASM_DIR"), "/", $file))
    };
}

/// Names of the embedded plugins, as written after `builtin:`.
pub const NAMES: [&str; 4] = ["basic-auth", "trusted-peers", "cors-config", "balanced"];

/// The component bytes of builtin `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    Some(match name {
        "basic-auth" => wasm!("basic_auth.wasm"),
        "trusted-peers" => wasm!("trusted_peers.wasm"),
        "cors-config" => wasm!("cors_config.wasm"),
        "balanced" => wasm!("balanced.wasm"),
        _ => return None,
    })
}

/// The kind of builtin `name`.
pub fn kind(name: &str) -> Option<PluginKind> {
    Some(match name {
        "basic-auth" | "trusted-peers" => PluginKind::Authorizer,
        "cors-config" => PluginKind::Cors,
        "balanced" => PluginKind::Allocator,
        _ => return None,
    })
}
