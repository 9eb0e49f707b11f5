//! What a plugin may import. The contract's own host interface is the only capability;
//! clocks and random numbers are allowed; the inert part of WASI that Rust's standard
//! library always imports (stdio, exit, an empty environment, io streams) is linked to
//! a deny-all context. Everything else — filesystem, sockets, HTTP, unknown packages —
//! refuses the plugin at load, naming the import.

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::runtime::PluginKind;

/// What a component is and what it asks for, as `cairn plugin check` reports it.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    /// The plugin kind whose interface it exports, if any.
    pub kind: Option<PluginKind>,
    /// Every export name (e.g. `cairn:policy/authorizer@0.1.0`).
    pub exports: Vec<String>,
    /// Every import name with the sandbox's verdict: `Ok(why allowed)` or `Err(why refused)`.
    pub imports: Vec<(String, Result<&'static str, &'static str>)>,
}

impl ComponentInfo {
    /// The first refused import, if any.
    pub fn refused(&self) -> Option<(&str, &'static str)> {
        self.imports.iter().find_map(|(name, verdict)| verdict.err().map(|why| (name.as_str(), why)))
    }
}

/// Inspect a compiled component's exports and imports.
pub(crate) fn inspect(engine: &Engine, component: &Component) -> ComponentInfo {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    let kind = PluginKind::ALL.into_iter().find(|k| exports.iter().any(|e| e == k.export_name()));
    let imports = ty.imports(engine).map(|(name, _)| (name.to_string(), verdict(name))).collect();
    ComponentInfo { kind, exports, imports }
}

/// Split `ns:pkg/iface@version` into (`ns:pkg`, `iface`, `version`).
fn parse(name: &str) -> Option<(&str, &str, &str)> {
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    let (package, iface) = path.split_once('/')?;
    Some((package, iface, version))
}

/// Whether the sandbox links `import`, and why.
pub(crate) fn verdict(import: &str) -> Result<&'static str, &'static str> {
    let Some((package, iface, version)) = parse(import) else {
        return Err("only interface imports of the cairn:policy contract are allowed");
    };
    match package {
        "cairn:policy" if version.starts_with("0.1.") && matches!(iface, "host" | "types") => Ok("the plugin contract"),
        "cairn:policy" => Err("not part of cairn:policy@0.1 (this host speaks 0.1.x)"),
        "wasi:clocks" if is_p2(version) && matches!(iface, "wall-clock" | "monotonic-clock") => {
            Ok("clocks are allowed")
        }
        "wasi:random" if is_p2(version) && matches!(iface, "random" | "insecure" | "insecure-seed") => {
            Ok("random numbers are allowed")
        }
        "wasi:io" if is_p2(version) && matches!(iface, "error" | "poll" | "streams") => {
            Ok("stream plumbing used by the standard library; no stream reaches the host")
        }
        "wasi:cli" if is_p2(version) && matches!(iface, "stdout" | "stderr") => {
            Ok("output kept only for diagnostics (e.g. a panic message)")
        }
        "wasi:cli" if is_p2(version) && iface == "stdin" => Ok("stdin is always empty"),
        "wasi:cli" if is_p2(version) && iface == "environment" => {
            Ok("the environment is always empty: no host variable, argument or directory is visible")
        }
        "wasi:cli" if is_p2(version) && iface == "exit" => Ok("exit ends the call as a failure"),
        "wasi:cli" if is_p2(version) && iface.starts_with("terminal-") => Ok("never a terminal"),
        "wasi:filesystem" => Err("filesystem access is not allowed"),
        "wasi:sockets" => Err("network access is not allowed"),
        "wasi:http" => Err("network access is not allowed"),
        _ => Err("not part of the plugin sandbox (allowed: cairn:policy host, clocks, random)"),
    }
}

fn is_p2(version: &str) -> bool {
    version.starts_with("0.2.")
}

#[cfg(test)]
mod tests {
    use super::verdict;

    #[test]
    fn allows_the_contract_clocks_and_random() {
        for ok in [
            "cairn:policy/host@0.1.0",
            "cairn:policy/types@0.1.0",
            "wasi:clocks/wall-clock@0.2.6",
            "wasi:random/insecure-seed@0.2.0",
            "wasi:cli/environment@0.2.6",
            "wasi:io/streams@0.2.6",
        ] {
            assert!(verdict(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "wasi:filesystem/types@0.2.6",
            "wasi:filesystem/preopens@0.2.6",
            "wasi:sockets/tcp@0.2.6",
            "wasi:sockets/ip-name-lookup@0.2.6",
            "wasi:http/outgoing-handler@0.2.6",
            "wasi:clocks/wall-clock@0.3.0",
            "cairn:policy/host@0.2.0",
            "evil:pkg/thing@1.0.0",
            "bare-function",
        ] {
            assert!(verdict(bad).is_err(), "{bad}");
        }
    }
}
