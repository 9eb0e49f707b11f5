//! Command-line interface: argument parsing and dispatch to one module per command group.

mod cases;
mod plugin;
mod plugin_bench;
mod plugin_test;
mod scaffold;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// An IPFS Cluster peer whose policy decisions are sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect policy plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Run the parsed command; the exit code says whether it succeeded.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Plugin(cmd) => tokio.block_on(plugin::run(cmd)),
    }
}
