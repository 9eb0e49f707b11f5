//! `cairn plugin new` and the example plugins, through the real binary: every scaffold kind
//! and both examples in `examples/plugins/` are built for wasm32-wasip2 with a nested cargo,
//! then `cairn plugin check` must accept the component and `cairn plugin test` must pass
//! every case of the crate's `cases.toml`.
//!
//! The nested builds share one target dir under the outer one, so repeated runs only rebuild
//! the small plugin crates. A scaffold resolves its dependencies from crates.io on its first
//! build, like any new crate.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;

const TARGET: &str = "wasm32-wasip2";

/// Run `cairn` and return whether it succeeded, and its stdout and stderr.
fn cairn<S: AsRef<OsStr>>(args: &[S]) -> (bool, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).env("CAIRN_LOG", "warn").output().expect("run cairn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The target dir of the nested guest builds: beside the outer build's output (found from
/// this test binary, `<target>/<profile>/deps/...`, or `CARGO_TARGET_DIR`), else in the
/// system temp dir.
fn guest_target_dir() -> PathBuf {
    let outer = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().find(|p| p.join("CACHEDIR.TAG").is_file()).map(Path::to_path_buf))
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).filter(|p| p.is_absolute()));
    match outer {
        Some(target) => target.join("plugin-scaffold"),
        None => std::env::temp_dir().join("cairn-plugin-scaffold-target"),
    }
}

/// Build the guest crate of `manifest` as a release wasm32-wasip2 component; returns the
/// component's path.
fn build(manifest: &Path, crate_name: &str) -> PathBuf {
    let target_dir = guest_target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(manifest)
        .env("CARGO_TARGET_DIR", &target_dir);
    // The outer build's flags and wrappers are for the host, not for the guest target.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build of {} failed:\n{}",
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = target_dir.join(TARGET).join("release").join(format!("{crate_name}.wasm"));
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    wasm
}

/// `cairn plugin check` accepts `wasm` as a plugin of `kind`, and `cairn plugin test` passes
/// every case of `cases`.
fn check_and_test(wasm: &Path, cases: &Path, kind: &str) {
    let (ok, out, err) = cairn(&[OsStr::new("plugin"), OsStr::new("check"), wasm.as_os_str()]);
    assert!(ok, "check refused {}:\n{out}{err}", wasm.display());
    assert!(out.contains(&format!("kind:     {kind} (world cairn:policy/{kind}-plugin@0.1.0")), "{out}");
    assert!(out.contains("verdict:  accepted by the sandbox"), "{out}");

    let (ok, out, err) =
        cairn(&[OsStr::new("plugin"), OsStr::new("test"), wasm.as_os_str(), cases.as_os_str(), OsStr::new("--json")]);
    let report: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("plugin test --json printed no JSON ({e}):\n{out}{err}"));
    let text = std::fs::read_to_string(cases).expect("read cases file");
    let written = text.lines().filter(|l| l.trim() == "[[case]]").count();
    assert!(ok && report["failed"] == 0, "cases failed for {}:\n{report:#}\n{err}", wasm.display());
    assert_eq!(report["passed"], written, "every case of {} runs: {report:#}", cases.display());
}

/// Scaffold a `kind` plugin into a temp dir, build it, check it and run its cases.
fn scaffold_round_trip(kind: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let name = format!("scaffold-{kind}");
    let (ok, out, err) = cairn(&[
        OsStr::new("plugin"),
        OsStr::new("new"),
        OsStr::new(kind),
        OsStr::new(&name),
        OsStr::new("--dir"),
        tmp.path().as_os_str(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("Created {kind} plugin `{name}`")), "{out}");
    let dir = tmp.path().join(&name);
    for file in [
        "Cargo.toml",
        "README.md",
        "src/lib.rs",
        "cases.toml",
        "cairn-policy-sdk/Cargo.toml",
        "cairn-policy-sdk/src/lib.rs",
        "cairn-policy-sdk/wit/worlds.wit",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing from the scaffold");
    }
    let wasm = build(&dir.join("Cargo.toml"), &name.replace('-', "_"));
    check_and_test(&wasm, &dir.join("cases.toml"), kind);
}

#[test]
fn an_authorizer_scaffold_builds_checks_and_passes_its_cases() {
    scaffold_round_trip("authorizer");
}

#[test]
fn a_cors_scaffold_builds_checks_and_passes_its_cases() {
    scaffold_round_trip("cors");
}

#[test]
fn an_allocator_scaffold_builds_checks_and_passes_its_cases() {
    scaffold_round_trip("allocator");
}

/// Build an example of `examples/plugins/`, check it and run its cases.
fn example(name: &str, kind: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins").join(name);
    let wasm = build(&dir.join("Cargo.toml"), &name.replace('-', "_"));
    check_and_test(&wasm, &dir.join("cases.toml"), kind);
}

#[test]
fn the_scoped_tokens_example_builds_checks_and_passes_its_cases() {
    example("scoped-tokens", "authorizer");
}

#[test]
fn the_region_spread_example_builds_checks_and_passes_its_cases() {
    example("region-spread", "allocator");
}

#[test]
fn new_refuses_an_existing_folder_a_bad_name_and_an_unknown_kind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().as_os_str();
    let new = |kind: &str, name: &str| {
        cairn(&[OsStr::new("plugin"), OsStr::new("new"), OsStr::new(kind), OsStr::new(name), OsStr::new("--dir"), dir])
    };

    let (ok, out, err) = new("cors", "twice");
    assert!(ok, "{out}{err}");
    let lib = tmp.path().join("twice/src/lib.rs");
    std::fs::write(&lib, "// my edits").expect("edit the scaffold");
    let (ok, _, err) = new("cors", "twice");
    assert!(!ok);
    assert!(err.contains("already exists; not overwriting it"), "{err}");
    assert_eq!(std::fs::read_to_string(&lib).expect("read"), "// my edits");

    let (ok, _, err) = new("cors", "9lives");
    assert!(!ok);
    assert!(err.contains("`9lives` does not start with an ASCII letter"), "{err}");
    let (ok, _, err) = new("cors", "my.policy");
    assert!(!ok);
    assert!(err.contains("contains '.'"), "{err}");
    let (ok, _, err) = new("firewall", "fw");
    assert!(!ok);
    assert!(err.contains("unknown plugin kind `firewall`: expected one of authorizer, cors, allocator"), "{err}");
    assert!(!tmp.path().join("fw").exists() && !tmp.path().join("9lives").exists());
}

/// A plugin author adds one line that reaches for the host (a file, a socket): the component
/// still builds, but `cairn plugin check` refuses it, naming the import, with a non-zero exit.
fn check_refuses_a_scaffold_that(name: &str, reach: &str, refused_prefix: &str, why: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ok, out, err) = cairn(&[
        OsStr::new("plugin"),
        OsStr::new("new"),
        OsStr::new("authorizer"),
        OsStr::new(name),
        OsStr::new("--dir"),
        tmp.path().as_os_str(),
    ]);
    assert!(ok, "{out}{err}");
    let dir = tmp.path().join(name);
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).expect("read lib.rs");
    let hook = "    fn authorize_request(&self, req: &ApiRequest) -> RequestDecision {\n";
    assert!(source.contains(hook), "the authorizer template changed; update this test");
    std::fs::write(&lib, source.replacen(hook, &format!("{hook}        {reach}\n"), 1)).expect("edit lib.rs");

    let wasm = build(&dir.join("Cargo.toml"), &name.replace('-', "_"));
    let (ok, out, err) = cairn(&[OsStr::new("plugin"), OsStr::new("check"), wasm.as_os_str()]);
    assert!(!ok, "check accepted a plugin that reaches for the host:\n{out}{err}");
    // std's socket support also pulls in filesystem imports; each refused import is named.
    let named = out
        .lines()
        .any(|l| l.trim_start().starts_with(&format!("REFUSED  {refused_prefix}")) && l.ends_with(&format!("({why})")));
    assert!(named, "{out}");
    assert!(out.contains("verdict:  REFUSED: import `wasi:"), "{out}");
}

#[test]
fn check_refuses_a_plugin_that_reads_files() {
    check_refuses_a_scaffold_that(
        "reads-files",
        r#"let _ = std::fs::read("/etc/passwd");"#,
        "wasi:filesystem/",
        "filesystem access is not allowed",
    );
}

#[test]
fn check_refuses_a_plugin_that_opens_sockets() {
    check_refuses_a_scaffold_that(
        "opens-sockets",
        r#"let _ = std::net::TcpStream::connect("127.0.0.1:9");"#,
        "wasi:sockets/",
        "network access is not allowed",
    );
}

/// Issue 3's walk-through, as a new user would do it: scaffold an authorizer, build it, pass
/// its cases, point a running peer's service.json at it, and see a request the old policy
/// allowed refused after SIGHUP — without restarting the peer. The request is a peer RPC
/// (`PeerMonitor.MetricNames`, which the default `trusted-peers` with `"*"` allows and the
/// scaffold's policy refuses to peers not in its `trusted_peers`), since the peer's HTTP
/// APIs are not built yet.
#[test]
fn a_new_policy_takes_over_a_running_peer_on_sighup() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ok, out, err) = cairn(&[
        OsStr::new("plugin"),
        OsStr::new("new"),
        OsStr::new("authorizer"),
        OsStr::new("my-policy"),
        OsStr::new("--dir"),
        tmp.path().as_os_str(),
    ]);
    assert!(ok, "{out}{err}");
    let crate_dir = tmp.path().join("my-policy");
    let wasm = build(&crate_dir.join("Cargo.toml"), "my_policy");
    let (ok, out, err) =
        cairn(&[OsStr::new("plugin"), OsStr::new("test"), wasm.as_os_str(), crate_dir.join("cases.toml").as_os_str()]);
    assert!(ok, "{out}{err}");

    // Two peers on one secret; B asks A for its metric names.
    let peers = tmp.path().join("peers");
    let (a, b) = (common::init_named(&peers, "a", &[]), common::init_named(&peers, "b", &[]));
    let secret = "6a8f2c1d0e9b7a6f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2a1908f7e";
    let a_addr = {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(a.join("service.json")).expect("read")).expect("json");
        let id: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(a.join("identity.json")).expect("read")).expect("json");
        format!(
            "{}/p2p/{}",
            v["cluster"]["listen_multiaddress"].as_str().expect("listen"),
            id["id"].as_str().expect("id")
        )
    };
    common::edit(&a, |v| v["cluster"]["secret"] = secret.into());
    let bootstrap = a_addr.clone();
    common::edit(&b, |v| {
        v["cluster"]["secret"] = secret.into();
        v["cluster"]["peer_addresses"] = vec![bootstrap].into();
    });
    let mut peer_a = common::Daemon::start(&a);
    peer_a.wait_for(&["cairn daemon ready"], common::START);
    let mut peer_b = common::Daemon::start(&b);
    peer_b.wait_for(&["cairn daemon ready"], common::START);

    let ask = || common::run(&b, &["rpc", &a_addr, "PeerMonitor.MetricNames"]);
    let (ok, out, err) = ask();
    assert!(ok, "the default policy trusts every peer:\n{out}{err}");

    // Point A at the new plugin, with a config that trusts nobody, and send SIGHUP.
    let plugin = wasm.to_string_lossy().into_owned();
    common::edit(&a, |v| {
        v["consensus"]["crdt"]["peer_authorizer_plugin"] =
            serde_json::json!({ "plugin": plugin, "config": { "trusted_peers": [] } });
    });
    peer_a.signal("HUP");
    peer_a.wait_for(&["decision point reloaded", "consensus.crdt.peer_authorizer_plugin"], Duration::from_secs(60));

    let (ok, out, err) = ask();
    assert!(!ok && err.contains("is not trusted"), "the new policy refuses B:\n{out}{err}");
    // The peer never restarted: the same process answers, and ID is still open to B.
    assert!(peer_a.child_running(), "peer A restarted");
    let (ok, out, err) = common::run(&b, &["rpc", &a_addr, "Cluster.ID"]);
    assert!(ok, "{out}{err}");
}
