//! `cairn plugin bench`: time each case of a cases file through the real runtime.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::plugin_test;

/// Arguments of `cairn plugin bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// A `.wasm` component file, or `builtin:<name>`.
    plugin: String,
    /// The cases file (TOML).
    cases: std::path::PathBuf,
    /// Timed calls per case, after the warm-up.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
}

/// Run `cairn plugin bench`: exit 0 when every case ran, 1 when one could not (another
/// kind's input, a refused config), 2 when the file or the plugin cannot be loaded.
/// Answers are not checked against the expectations; `plugin test` does that.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let (mut target, cases) = match plugin_test::open(&args.plugin, &args.cases) {
        Ok(opened) => opened,
        Err(e) => return Ok(plugin_test::load_error(&e)),
    };
    let iterations = args.iterations as usize;
    // Enough calls to start an instance and settle caches, without dominating short runs.
    let warm_up = (iterations / 10).max(10);
    let mut rows = Vec::with_capacity(cases.len());
    let mut not_run = 0;
    for case in &cases {
        let plugin = match target.prepare(case).await {
            Ok(plugin) => plugin,
            Err(why) => {
                not_run += 1;
                rows.push([case.name.clone(), "-".into(), "-".into(), format!("not run: {why}")]);
                continue;
            }
        };
        for _ in 0..warm_up {
            let _ = plugin.call(&case.input).await;
        }
        // Each call is timed on its own, so the percentiles show the spread of single
        // decisions (what a request waits for), not an average over a batch.
        let mut times = Vec::with_capacity(iterations);
        let mut failures = 0;
        for _ in 0..iterations {
            let started = Instant::now();
            let answer = plugin.call(&case.input).await;
            times.push(started.elapsed());
            failures += usize::from(answer.is_err());
        }
        times.sort_unstable();
        // A failing call is still timed (a failure costs a fresh instance), but is flagged.
        let note = if failures > 0 { format!("{failures} of {iterations} calls failed") } else { String::new() };
        rows.push([
            case.name.clone(),
            format!("{:.1?}", percentile(&times, 50)),
            format!("{:.1?}", percentile(&times, 99)),
            note,
        ]);
    }
    println!("{}: {} cases, {iterations} timed calls each after {warm_up} warm-up calls", target.source(), cases.len());
    plugin_test::print_table(["case", "p50", "p99", ""], rows);
    Ok(if not_run == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The nearest-rank `p`th percentile of sorted `times`.
fn percentile(times: &[Duration], p: usize) -> Duration {
    let rank = (times.len() * p).div_ceil(100).max(1);
    times.get(rank - 1).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let times: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&times, 50), Duration::from_micros(50));
        assert_eq!(percentile(&times, 99), Duration::from_micros(99));
        assert_eq!(percentile(&times[..1], 99), Duration::from_micros(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}
