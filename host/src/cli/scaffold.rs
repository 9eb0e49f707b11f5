//! `cairn plugin new`: create a policy plugin crate that builds on its own, anywhere.
//!
//! The guest SDK is not published on crates.io, so a new crate carries a copy of it: the
//! SDK's sources and the WIT contract are embedded in this binary (so the scaffold always
//! matches the contract this binary speaks) and written beside the new crate, with what a
//! standalone copy cannot inherit from Cairn's guest workspace filled in.

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail, ensure};
use cairn_policy::PluginKind;

/// The SDK as it is in this repository, and the guest workspace manifest it inherits from.
const SDK_MANIFEST: &str = include_str!("../../../plugins/sdk/Cargo.toml");
const SDK_LIB: &str = include_str!("../../../plugins/sdk/src/lib.rs");
const GUEST_WORKSPACE: &str = include_str!("../../../plugins/Cargo.toml");

/// Every file of the WIT contract (a unit test keeps this list in step with `wit/`).
const WIT: &[(&str, &str)] = &[
    ("allocator.wit", include_str!("../../../wit/allocator.wit")),
    ("authorizer.wit", include_str!("../../../wit/authorizer.wit")),
    ("cors.wit", include_str!("../../../wit/cors.wit")),
    ("host.wit", include_str!("../../../wit/host.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

/// How the SDK's `generate!` calls find the contract in this repository, and in the copy
/// (wit-bindgen resolves the path from the SDK crate's own folder).
const SDK_WIT_PATH: &str = r#"path: "../../wit""#;
const VENDORED_WIT_PATH: &str = r#"path: "wit""#;

/// The folder of the SDK copy inside a new crate.
const SDK_DIR: &str = "cairn-policy-sdk";

/// Templates shared by every kind.
const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const README: &str = include_str!("templates/README.md.tmpl");
const GITIGNORE: &str = include_str!("templates/gitignore");
const TOOLCHAIN: &str = include_str!("templates/rust-toolchain.toml");
/// Cairn's own formatting, so that `cargo fmt` in a new crate leaves the SDK copy as it is.
const RUSTFMT: &str = include_str!("../../../rustfmt.toml");

/// What differs between the kinds: the example policy, its cases and its description.
struct KindTemplates {
    lib: &'static str,
    cases: &'static str,
    about: &'static str,
    /// The SDK trait the policy implements.
    trait_name: &'static str,
    /// What a plugin of this kind does, completing "runs in its sandbox to ...".
    decides: &'static str,
}

fn kind_templates(kind: PluginKind) -> KindTemplates {
    match kind {
        PluginKind::Authorizer => KindTemplates {
            lib: include_str!("templates/authorizer/lib.rs.tmpl"),
            cases: include_str!("templates/authorizer/cases.toml"),
            about: include_str!("templates/authorizer/about.md"),
            trait_name: "Authorizer",
            decides: "decide who may call Cairn's APIs and what cluster peers may do",
        },
        PluginKind::Cors => KindTemplates {
            lib: include_str!("templates/cors/lib.rs.tmpl"),
            cases: include_str!("templates/cors/cases.toml"),
            about: include_str!("templates/cors/about.md"),
            trait_name: "Cors",
            decides: "decide which CORS headers a browser gets",
        },
        PluginKind::Allocator => KindTemplates {
            lib: include_str!("templates/allocator/lib.rs.tmpl"),
            cases: include_str!("templates/allocator/cases.toml"),
            about: include_str!("templates/allocator/about.md"),
            trait_name: "Allocator",
            decides: "choose the peers a pin is allocated to",
        },
    }
}

/// Parse the `<kind>` argument: `authorizer`, `cors` or `allocator`.
pub fn parse_kind(kind: &str) -> Result<PluginKind, String> {
    PluginKind::ALL.into_iter().find(|k| k.to_string() == kind).ok_or_else(|| {
        let kinds: Vec<String> = PluginKind::ALL.iter().map(ToString::to_string).collect();
        format!("unknown plugin kind `{kind}`: expected one of {}", kinds.join(", "))
    })
}

/// Names a new crate may not take although they are well-formed: the standard library's
/// crates, Cargo's reserved folder names, the SDK copy's own name, and Windows device names
/// (the crate's folder has the same name).
const RESERVED: &[&str] = &[
    "std",
    "core",
    "alloc",
    "proc_macro",
    "test",
    "build",
    "deps",
    "examples",
    "incremental",
    "cairn_policy_sdk",
    "con",
    "prn",
    "aux",
    "nul",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
];

/// Rust's keywords, strict and reserved: a crate with such a name cannot be named in code.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate", "do", "dyn", "else",
    "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod",
    "move", "mut", "override", "priv", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true",
    "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Longest name accepted (crates.io's limit).
const MAX_NAME: usize = 64;

/// Check the `<name>` argument: it becomes the crate's name and its folder's, so it must be
/// a valid crate name (ASCII letters, digits, `-`, `_`, starting with a letter).
pub fn parse_name(name: &str) -> Result<String, String> {
    const RULE: &str = "a crate name starts with a letter and has only letters, digits, `-` and `_`";
    let Some(first) = name.chars().next() else {
        return Err(format!("the name is empty; {RULE}"));
    };
    if !first.is_ascii_alphabetic() {
        return Err(format!("`{name}` does not start with an ASCII letter; {RULE}"));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(format!("`{name}` contains {bad:?}; {RULE}"));
    }
    if name.len() > MAX_NAME {
        return Err(format!("`{name}` is {} characters long, over the limit of {MAX_NAME}", name.len()));
    }
    // Code names the crate with `-` as `_`; Windows compares file names case-insensitively.
    let ident = name.replace('-', "_").to_ascii_lowercase();
    if KEYWORDS.contains(&ident.as_str()) {
        return Err(format!("`{name}` is a Rust keyword; choose another name"));
    }
    if RESERVED.contains(&ident.as_str()) {
        return Err(format!("`{name}` is reserved (a standard crate, a Cargo folder, the SDK or a device name)"));
    }
    Ok(name.to_string())
}

/// `cairn plugin new <kind> <name> --dir <parent>`: write the crate to `<parent>/<name>`,
/// which must not exist yet.
pub fn run(kind: PluginKind, name: &str, parent: &Path) -> anyhow::Result<ExitCode> {
    let name = parse_name(name).map_err(|e| anyhow!("invalid plugin name: {e}"))?;
    let files = files(kind, &name)?;
    let dir = parent.join(&name);
    create(&dir, &files)?;

    let wasm = format!("target/wasm32-wasip2/release/{}.wasm", crate_ident(&name));
    println!("Created {kind} plugin `{name}` in {}", dir.display());
    println!();
    println!("Next:");
    println!("  cd {}", dir.display());
    println!("  cargo build --target wasm32-wasip2 --release");
    println!("  cairn plugin check {wasm}");
    println!("  cairn plugin test {wasm} cases.toml");
    Ok(ExitCode::SUCCESS)
}

/// The crate's name as Rust code and the compiled artifact spell it.
fn crate_ident(name: &str) -> String {
    name.replace('-', "_")
}

/// Every file of a new `kind` plugin crate named `name`: its path inside the crate's folder
/// and its contents.
pub fn files(kind: PluginKind, name: &str) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let templates = kind_templates(kind);
    let kind_name = kind.to_string();
    let crate_name = crate_ident(name);
    let edition = workspace_value("workspace.package", "edition")?;
    let rust_version = workspace_value("workspace.package", "rust-version")?;
    let serde = workspace_value("workspace.dependencies", "serde")?;
    let serde_json = workspace_value("workspace.dependencies", "serde_json")?;
    let vars: [(&str, &str); 10] = [
        ("name", name),
        ("crate", &crate_name),
        ("kind", &kind_name),
        ("trait", templates.trait_name),
        ("decides", templates.decides),
        ("about", templates.about.trim_end()),
        ("edition", edition),
        ("rust_version", rust_version),
        ("dep:serde", serde),
        ("dep:serde_json", serde_json),
    ];

    let mut files = vec![
        (PathBuf::from("Cargo.toml"), render(CARGO_TOML, &vars)?),
        (PathBuf::from("README.md"), render(README, &vars)?),
        (PathBuf::from("src/lib.rs"), render(templates.lib, &vars)?),
        (PathBuf::from("cases.toml"), templates.cases.to_string()),
        (PathBuf::from(".gitignore"), GITIGNORE.to_string()),
        (PathBuf::from("rust-toolchain.toml"), TOOLCHAIN.to_string()),
        (PathBuf::from("rustfmt.toml"), RUSTFMT.to_string()),
        (Path::new(SDK_DIR).join("Cargo.toml"), vendored_sdk_manifest()?),
        (Path::new(SDK_DIR).join("src/lib.rs"), vendored_sdk_lib()?),
    ];
    for (file, contents) in WIT {
        files.push((Path::new(SDK_DIR).join("wit").join(file), (*contents).to_string()));
    }
    Ok(files)
}

/// Fill a template's `{{key}}` placeholders.
fn render(template: &str, vars: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut out = template.to_string();
    for (key, value) in vars {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    // A placeholder left over is a bug in the templates: fail rather than write it out.
    if let Some(at) = out.find("{{") {
        let rest: String = out[at..].chars().take(40).collect();
        bail!("internal error: unfilled template placeholder at `{rest}`");
    }
    Ok(out)
}

/// A value of the guest workspace's manifest (`plugins/Cargo.toml`) as written there, e.g.
/// `"2024"` or `{ version = "1", features = ["derive"] }`, from table `section`.
fn workspace_value(section: &str, key: &str) -> anyhow::Result<&'static str> {
    let mut current = "";
    for line in GUEST_WORKSPACE.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = header.trim();
            continue;
        }
        if current != section || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Ok(v.trim());
        }
    }
    bail!("internal error: plugins/Cargo.toml has no `{key}` in [{section}]")
}

/// The SDK's manifest for a standalone copy: every key it inherits from the guest workspace
/// (`key.workspace = true` or `key = { workspace = true }`) gets the workspace's value.
fn vendored_sdk_manifest() -> anyhow::Result<String> {
    let mut out = format!(
        "# Cairn's guest SDK, copied by `cairn plugin new` (cairn {}) with the WIT contract in wit/.\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut section = "";
    for line in SDK_MANIFEST.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed;
        } else if let Some((key, value)) = trimmed.split_once('=') {
            let (key, value) = (key.trim(), value.trim());
            let inherited = match key.strip_suffix(".workspace") {
                Some(key) if value == "true" => Some(key),
                _ if value.replace(' ', "") == "{workspace=true}" => Some(key),
                _ => None,
            };
            if let Some(key) = inherited {
                let from = if section == "[package]" {
                    "workspace.package"
                } else if section.ends_with("dependencies]") {
                    "workspace.dependencies"
                } else {
                    bail!("internal error: the SDK inherits `{key}` in {section}, which cannot be copied")
                };
                writeln!(out, "{key} = {}", workspace_value(from, key)?)?;
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    // Anything still inherited (say, `{ workspace = true, features = [...] }`) would not build.
    ensure!(!out.contains("workspace"), "internal error: the SDK manifest inherits a key that cannot be copied");
    Ok(out)
}

/// The SDK's source for a standalone copy: its `generate!` calls read the copied contract.
fn vendored_sdk_lib() -> anyhow::Result<String> {
    ensure!(SDK_LIB.contains(SDK_WIT_PATH), "internal error: the SDK no longer reads the contract from {SDK_WIT_PATH}");
    let lib = SDK_LIB.replace(SDK_WIT_PATH, VENDORED_WIT_PATH);
    ensure!(!lib.contains("../"), "internal error: the SDK refers to a file outside its crate");
    Ok(format!(
        "// Copied by `cairn plugin new` (cairn {}); the contract is read from ./wit.\n{lib}",
        env!("CARGO_PKG_VERSION")
    ))
}

/// Create `dir` (refusing one that exists) and write `files` into it.
fn create(dir: &Path, files: &[(PathBuf, String)]) -> anyhow::Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // create_dir, not a check then create: it fails atomically when the path exists.
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!("{} already exists; not overwriting it (choose another name or --dir)", dir.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    let written = files.iter().try_for_each(|(path, contents)| {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
    });
    if written.is_err() {
        // The folder is new and ours: remove the half-written crate so that a retry starts clean.
        let _ = std::fs::remove_dir_all(dir);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_accepted() {
        for name in ["my-policy", "p", "read_only2", "Scoped-Tokens", "a-b_c-9"] {
            assert_eq!(parse_name(name).as_deref(), Ok(name));
        }
        assert!(parse_name(&"a".repeat(MAX_NAME)).is_ok());
    }

    #[test]
    fn malformed_names_are_refused_with_the_rule() {
        for (name, why) in [
            ("", "empty"),
            ("9lives", "does not start with an ASCII letter"),
            ("-x", "does not start with an ASCII letter"),
            ("_x", "does not start with an ASCII letter"),
            ("my policy", "contains ' '"),
            ("my.policy", "contains '.'"),
            ("../escape", "does not start"),
            ("a/b", "contains '/'"),
            ("über", "does not start"),
            ("naïve", "contains 'ï'"),
        ] {
            let err = parse_name(name).expect_err(name);
            assert!(err.contains(why), "{name}: {err}");
        }
        let err = parse_name(&"a".repeat(MAX_NAME + 1)).expect_err("too long");
        assert!(err.contains("over the limit of 64"), "{err}");
    }

    #[test]
    fn keywords_and_reserved_names_are_refused() {
        for name in ["fn", "self", "type", "async", "gen"] {
            assert!(parse_name(name).expect_err(name).contains("Rust keyword"), "{name}");
        }
        for name in ["std", "core", "test", "proc-macro", "deps", "cairn-policy-sdk", "cairn_policy_sdk", "CON", "nul"]
        {
            assert!(parse_name(name).expect_err(name).contains("reserved"), "{name}");
        }
    }

    #[test]
    fn kinds_parse_and_unknown_kinds_list_the_choices() {
        assert_eq!(parse_kind("authorizer"), Ok(PluginKind::Authorizer));
        assert_eq!(parse_kind("cors"), Ok(PluginKind::Cors));
        assert_eq!(parse_kind("allocator"), Ok(PluginKind::Allocator));
        let err = parse_kind("firewall").expect_err("unknown kind");
        assert_eq!(err, "unknown plugin kind `firewall`: expected one of authorizer, cors, allocator");
    }

    #[test]
    fn every_wit_file_is_embedded() {
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(&wit)
            .expect("read wit/")
            .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = WIT.iter().map(|(name, _)| *name).collect();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn the_sdk_copy_inherits_nothing() {
        let manifest = vendored_sdk_manifest().expect("manifest");
        assert!(!manifest.contains("workspace"), "{manifest}");
        for (section, key) in [
            ("workspace.package", "version"),
            ("workspace.package", "edition"),
            ("workspace.package", "rust-version"),
            ("workspace.package", "license"),
            ("workspace.dependencies", "wit-bindgen"),
        ] {
            let line = format!("\n{key} = {}\n", workspace_value(section, key).expect(key));
            assert!(manifest.contains(&line), "{line:?} missing from {manifest}");
        }
        assert!(manifest.contains("name = \"cairn-policy-sdk\""), "{manifest}");

        let lib = vendored_sdk_lib().expect("lib");
        assert!(!lib.contains("../../wit"));
        assert_eq!(lib.matches(VENDORED_WIT_PATH).count(), SDK_LIB.matches(SDK_WIT_PATH).count());
    }

    #[test]
    fn every_kind_gets_a_complete_crate() {
        for kind in PluginKind::ALL {
            let files = files(kind, "my-policy").expect("files");
            let get =
                |path: &str| files.iter().find(|(p, _)| p == Path::new(path)).map(|(_, c)| c.as_str()).expect(path);
            let manifest = get("Cargo.toml");
            for line in [
                "name = \"my-policy\"",
                "crate-type = [\"cdylib\", \"rlib\"]",
                "\n[workspace]\n",
                "cairn-policy-sdk = { path = \"cairn-policy-sdk\" }",
                "edition = \"2024\"",
                "lto = true",
                "panic = \"abort\"",
            ] {
                assert!(manifest.contains(line), "{kind}: {line:?} missing from {manifest}");
            }
            let trait_name = kind_templates(kind).trait_name;
            assert!(get("src/lib.rs").contains(&format!("impl {trait_name} for Policy")), "{kind}");
            assert!(get("README.md").contains("target/wasm32-wasip2/release/my_policy.wasm"), "{kind}");
            assert!(get("cases.toml").contains("[[case]]"), "{kind}");
            get("cairn-policy-sdk/Cargo.toml");
            get("cairn-policy-sdk/src/lib.rs");
            get("cairn-policy-sdk/wit/worlds.wit");
        }
    }

    #[test]
    fn an_existing_folder_is_never_overwritten() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = files(PluginKind::Allocator, "spread").expect("files");
        let dir = tmp.path().join("nested/spread");
        create(&dir, &files).expect("first scaffold");
        assert!(dir.join("cairn-policy-sdk/wit/types.wit").is_file());

        std::fs::write(dir.join("src/lib.rs"), "// mine").expect("edit");
        let err = create(&dir, &files).expect_err("second scaffold");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.join("src/lib.rs")).expect("read"), "// mine");

        let file = tmp.path().join("a-file");
        std::fs::write(&file, "x").expect("write");
        assert!(create(&file, &files).is_err());
    }
}
