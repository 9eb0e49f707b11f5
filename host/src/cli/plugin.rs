//! `cairn plugin ...`: list the embedded policies and check a plugin against the sandbox.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use cairn_policy::{PluginKind, PluginSource, PolicyRuntime, RuntimeSettings, builtin};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// List the policy plugins embedded in this binary.
    List,
    /// Say what a plugin is, what it imports, and whether the sandbox accepts it.
    /// Exits non-zero when it would be refused at load.
    Check {
        /// A `.wasm` component file, or `builtin:<name>`.
        plugin: String,
        /// Expected sha256 of the file (hex), checked before anything else.
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Run a cases file (docs/plugin-cases.md) against a plugin and report each case.
    /// Exits 1 when a case fails, 2 when the file or the plugin cannot be loaded.
    Test(super::plugin_test::TestArgs),
    /// Time each case of a cases file through the real runtime (p50 and p99 per case).
    Bench(super::plugin_bench::BenchArgs),
    /// Create a policy plugin crate with an example policy and cases, ready to build,
    /// check and test.
    ///
    /// The crate carries a copy of the SDK and of the WIT contract, so it builds anywhere.
    New {
        /// The plugin's kind: authorizer, cors or allocator.
        #[arg(value_parser = super::scaffold::parse_kind)]
        kind: PluginKind,
        /// The crate's name, also its folder's (letters, digits, `-`, `_`).
        #[arg(value_parser = super::scaffold::parse_name)]
        name: String,
        /// The folder to create the crate's folder in.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
    },
}

pub async fn run(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::List => {
            for name in builtin::NAMES {
                let kind = builtin::kind(name).map(|k| k.to_string()).unwrap_or_default();
                let size = builtin::get(name).map(<[u8]>::len).unwrap_or(0);
                println!("builtin:{name:<16} {kind:<11} {size:>8} bytes");
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Check { plugin, sha256 } => check(PluginSource::parse(&plugin, sha256)),
        PluginCommand::Test(args) => super::plugin_test::run(args).await,
        PluginCommand::Bench(args) => super::plugin_bench::run(args).await,
        PluginCommand::New { kind, name, dir } => super::scaffold::run(kind, &name, &dir),
    }
}

fn check(source: PluginSource) -> anyhow::Result<ExitCode> {
    let size = match &source {
        PluginSource::Builtin(name) => builtin::get(name).map(<[u8]>::len),
        PluginSource::File { path, .. } => std::fs::metadata(path).ok().map(|m| m.len() as usize),
    };
    // No compile cache: the compile time shown is what a cold load costs.
    let runtime = PolicyRuntime::new(RuntimeSettings::default()).context("start the policy runtime")?;
    let started = Instant::now();
    let info = match runtime.inspect(&source) {
        Ok(info) => info,
        Err(e) => {
            println!("plugin:   {source}");
            println!("verdict:  REFUSED: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let compile = started.elapsed();

    println!("plugin:   {source}");
    if let Some(size) = size {
        println!("size:     {size} bytes");
    }
    println!("compile:  {compile:.1?}");
    match info.kind {
        Some(kind) => println!("kind:     {kind} (world {}, exports {})", kind.world_name(), kind.export_name()),
        None => println!("kind:     none (exports: {})", info.exports.join(", ")),
    }
    println!("imports:");
    for (name, verdict) in &info.imports {
        match verdict {
            Ok(why) => println!("  allowed  {name}  ({why})"),
            Err(why) => println!("  REFUSED  {name}  ({why})"),
        }
    }
    let refusal = match (info.refused(), info.kind) {
        (Some((import, why)), _) => Some(format!("import `{import}` is not allowed: {why}")),
        (None, None) => Some(format!(
            "it implements none of the plugin worlds ({})",
            PluginKind::ALL.map(|k| k.world_name()).join(", ")
        )),
        (None, Some(_)) => None,
    };
    match refusal {
        Some(why) => {
            println!("verdict:  REFUSED: {why}");
            Ok(ExitCode::FAILURE)
        }
        None => {
            println!("verdict:  accepted by the sandbox");
            Ok(ExitCode::SUCCESS)
        }
    }
}
