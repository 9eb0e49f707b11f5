//! Compiles the guest crates in `plugins/` to wasm32-wasip2 components and puts them in
//! OUT_DIR: the default policies are embedded in the binary (`builtin.rs`), the hostile
//! fixtures are used by this crate's tests. A nested cargo with its own target dir keeps
//! the host and guest builds apart.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("../..").canonicalize().expect("workspace root");
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.lock").display());
    // Fixtures are members by glob, so a new one changes no manifest: watch the folder.
    println!("cargo:rerun-if-changed={}", plugins.join("fixtures").display());
    // Host crates the guests build from (the one Go-duration parser).
    println!("cargo:rerun-if-changed={}", root.join("host/go-duration").display());
    for dir in guest_dirs(&plugins) {
        println!("cargo:rerun-if-changed={}", dir.display());
    }

    ensure_target();

    let target_dir = guest_target_dir(&out_dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--workspace", "--target", TARGET, "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir);
    // The outer build's flags and wrappers are for the host target, not the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for the guest plugins");
    if !status.success() {
        panic!("building the guest plugins in {} for {TARGET} failed", plugins.display());
    }

    let built = target_dir.join(TARGET).join("release");
    let wasm_dir = out_dir.join("plugins");
    std::fs::create_dir_all(&wasm_dir).expect("create OUT_DIR/plugins");
    for entry in std::fs::read_dir(&built).expect("read guest output dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let dest = wasm_dir.join(path.file_name().expect("file name"));
            std::fs::copy(&path, &dest).expect("copy guest component");
        }
    }
    println!("cargo:rustc-env=CAIRN_PLUGIN_WASM_DIR={}", wasm_dir.display());
}

/// Every guest crate folder directly under `plugins/` (skipping build output), so an edit
/// to any of them rebuilds.
fn guest_dirs(plugins: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(plugins) else { return Vec::new() };
    entries.flatten().map(|e| e.path()).filter(|p| p.join("Cargo.toml").exists()).collect()
}

/// `<target>/wasm-plugins`, shared by every profile of the host build.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out (or <target>/<triple>/<profile>/...).
    out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map(|t| t.join("wasm-plugins"))
        .unwrap_or_else(|| out_dir.join("wasm-plugins"))
}

/// Install the wasm32-wasip2 target through rustup when it is missing, so a fresh clone
/// builds without a manual step (rust-toolchain.toml lists it too).
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let installed =
        |root: &Option<String>| root.as_ref().is_some_and(|r| Path::new(r).join("lib/rustlib").join(TARGET).exists());
    if installed(&sysroot) {
        return;
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Ok(tc) = std::env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &tc]);
    }
    let ok = cmd.status().is_ok_and(|s| s.success());
    if !ok || !installed(&sysroot) {
        panic!("the Rust target {TARGET} is missing and `rustup target add {TARGET}` failed; install it and rebuild");
    }
}
