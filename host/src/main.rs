//! `cairn`: an IPFS Cluster peer whose policy decisions are sandboxed WebAssembly plugins.

mod add;
mod allocate;
mod apis;
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
mod security;
mod telemetry;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

/// glibc's `M_ARENA_MAX` (malloc.h).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const M_ARENA_MAX: libc::c_int = -8;

fn main() -> ExitCode {
    // glibc gives each thread that allocates concurrently its own arena (up to 8 per core) and
    // keeps their freed memory; with tokio's worker and blocking threads that doubled a peer's
    // resident memory (measured: 300 000 pins, 300-400 MiB with the default, ~200 MiB with 2).
    // Set before any thread exists.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(M_ARENA_MAX, 2);
    }
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        // The log filter applies to every layer: the OpenTelemetry slot (filled by the daemon
        // when tracing is on) records the spans the log lets through.
        tracing_subscriber::registry()
            .with(telemetry::subscriber_slot())
            .with(tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| "info".into()))
            .with(tracing_subscriber::fmt::layer().with_writer(|| LogSink).log_internal_errors(false))
            .init();
    }
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
