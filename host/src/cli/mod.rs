//! Command-line interface: argument parsing and dispatch to one module per command group.

mod bench;
mod bench_tracker;
mod cases;
mod client;
pub(crate) mod ctl;
pub(crate) mod init;
mod plugin;
mod plugin_bench;
mod plugin_test;
mod rpc;
mod scaffold;
mod state;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// An IPFS Cluster peer whose policy decisions are sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    /// The config folder (service.json, identity.json); default `~/.cairn`.
    #[arg(long, global = true, env = "CAIRN_PATH", value_name = "DIR")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect policy plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Write a new service.json and identity.json into the config folder.
    Init(init::InitArgs),
    /// Run the peer until SIGINT or SIGTERM; SIGHUP reloads the plugins.
    Daemon(crate::daemon::DaemonArgs),
    /// ipfs-cluster-ctl's commands (id, peers, pin, status, add, ...): clients of the REST API.
    #[command(flatten)]
    Client(Box<client::ClientCommand>),
    /// Call another peer's RPC as this peer (diagnostics: what does its authorizer allow us?).
    Rpc(rpc::RpcArgs),
    /// Export, import or remove the pinset on disk (only while no daemon runs on the folder).
    #[command(subcommand)]
    State(state::StateCommand),
    /// Benchmarks that drive a local multi-process cluster.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

impl Cli {
    /// Whether this runs the long-lived peer (rather than a one-shot command).
    pub fn is_daemon(&self) -> bool {
        matches!(self.command, Command::Daemon(_))
    }
}

/// Run the parsed command; the exit code says whether it succeeded.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Plugin(cmd) => tokio.block_on(plugin::run(cmd)),
        Command::Init(args) => init::run(config_dir(cli.config)?, args),
        Command::Daemon(args) => tokio.block_on(crate::daemon::run(config_dir(cli.config)?, args)),
        Command::Client(cmd) => tokio.block_on(client::run(cli.config, *cmd)),
        Command::Rpc(args) => tokio.block_on(rpc::run(config_dir(cli.config)?, args)),
        Command::State(cmd) => state::run(config_dir(cli.config)?, cmd),
        Command::Bench(bench::BenchCommand::Consensus(args)) => tokio.block_on(bench::consensus(args)),
        Command::Bench(bench::BenchCommand::Tracker(args)) => tokio.block_on(bench_tracker::run(args)),
    }
}

/// The config folder: `--config`, `$CAIRN_PATH`, or `~/.cairn`.
fn config_dir(flag: Option<std::path::PathBuf>) -> anyhow::Result<crate::config::ConfigDir> {
    crate::config::ConfigDir::resolve(flag)
        .ok_or_else(|| anyhow::anyhow!("no config folder: pass --config <dir> or set CAIRN_PATH (HOME is not set)"))
}
