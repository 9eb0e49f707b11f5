//! `cairn`: an IPFS Cluster peer whose policy decisions are sandboxed WebAssembly plugins.

mod allocate;
mod cli;
mod cluster;
mod config;
mod consensus;
mod daemon;
mod facade;
mod ipfs;
mod jobs;
mod metrics;
mod monitor;
mod pinsync;
mod restapi;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(|| LogSink)
        .log_internal_errors(false)
        .init();
    let args = cli::Cli::parse();
    if !args.is_daemon() {
        // Rust ignores SIGPIPE, so `println!` into a closed pipe (`cairn plugin check … | head`)
        // panics. A one-shot command should end quietly as Unix tools do; the daemon keeps
        // ignoring it (its writes fail and are dropped instead).
        // SAFETY: restoring the default disposition of a signal, before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The log's stderr, ignoring write errors: a closed log pipe (a supervisor restarting its
/// logger, `| head`) must not take a peer down, and `eprintln!` would panic there.
struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}
