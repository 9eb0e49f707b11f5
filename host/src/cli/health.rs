//! `cairn health metrics [<name>]` and `cairn health alerts`: the local peer's monitor, asked
//! over the same client path as `cairn peers ls` (the RPC until the REST API exists).

use std::process::ExitCode;

use anyhow::Context;

use super::ctl::call_with;
use crate::config::ConfigDir;
use crate::monitor::{Alert, Metric, now_nanos, rfc3339_nanos};

/// `cairn health ...`.
#[derive(clap::Subcommand)]
pub enum HealthCommand {
    /// Without a name: the names of the metrics the peer knows. With one: each peer's latest
    /// valid value of that metric and when it expires.
    Metrics {
        /// A metric name, such as `ping`, `tag:group` or `pinqueue`.
        name: Option<String>,
    },
    /// The alerts raised for expired metrics, newest first.
    Alerts,
}

/// Ask the local peer and print the answer.
pub async fn run(dir: ConfigDir, cmd: HealthCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        HealthCommand::Metrics { name: None } => {
            let names: Vec<String> = decode(call_with(&dir, "PeerMonitor.MetricNames", Vec::new()).await?, "names")?;
            for name in names {
                println!("{name}");
            }
        }
        HealthCommand::Metrics { name: Some(name) } => {
            let payload = serde_json::to_vec(&name).context("encode the metric name")?;
            let metrics: Vec<Metric> = decode(call_with(&dir, "PeerMonitor.LatestMetrics", payload).await?, "metrics")?;
            let now = now_nanos();
            for m in metrics {
                println!("{}", metric_line(&m, now));
            }
        }
        HealthCommand::Alerts => {
            let alerts: Vec<Alert> = decode(call_with(&dir, "Cluster.Alerts", Vec::new()).await?, "alerts")?;
            for a in alerts {
                println!("{}", alert_line(&a));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn decode<T: serde::de::DeserializeOwned>(json: Vec<u8>, what: &str) -> anyhow::Result<T> {
    serde_json::from_slice(&json).with_context(|| format!("decode the peer's {what}"))
}

/// `<peer> | <name>: <value> | expires <time> (in <n>s)`.
fn metric_line(m: &Metric, now: i64) -> String {
    let left = (m.expire - now).max(0) as f64 / 1e9;
    format!("{} | {}: {} | expires {} (in {left:.1}s)", m.peer, m.name, m.value, rfc3339_nanos(m.expire))
}

/// `<peer>: <name>. Expired at: <time>. Triggered at: <time>` (as `ipfs-cluster-ctl health alerts`).
fn alert_line(a: &Alert) -> String {
    format!(
        "{}: {}. Expired at: {}. Triggered at: {}",
        a.metric.peer,
        a.metric.name,
        rfc3339_nanos(a.metric.expire),
        a.triggered_at
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lines_name_the_peer_value_and_times() {
        let m = Metric::new("ping", "12D3KooWA", "{}", Duration::from_millis(2500), 0);
        assert_eq!(metric_line(&m, 0), "12D3KooWA | ping: {} | expires 1970-01-01T00:00:02.5Z (in 2.5s)");
        let a = Alert { metric: m, triggered_at: "1970-01-01T00:00:03Z".into() };
        assert_eq!(
            alert_line(&a),
            "12D3KooWA: ping. Expired at: 1970-01-01T00:00:02.5Z. Triggered at: 1970-01-01T00:00:03Z"
        );
    }
}
