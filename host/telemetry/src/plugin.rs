//! The decision points' plugin families, read from each point's active plugin at scrape time.
//!
//! Every family is labelled by `point` (the decision point's config key) only, so a series
//! survives a reload that swaps the plugin; `cairn_plugin_info{point,plugin,kind}` says which
//! plugin is active at each point (join on `point`). The call counters are the active
//! plugin's: a reload starts them from zero, which Prometheus treats as a counter reset.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// One decision point's figures at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginFigures {
    /// The active plugin (`builtin:<name>` or its file).
    pub plugin: String,
    /// Its kind (`authorizer`, `cors`, `allocator`).
    pub kind: String,
    /// Calls made.
    pub calls: u64,
    /// Calls that failed, all causes (the decision failed safe).
    pub failures: u64,
    /// Calls stopped at their CPU deadline.
    pub deadline: u64,
    /// Calls that hit the memory cap.
    pub out_of_memory: u64,
    /// Calls that trapped otherwise (panic, exit, failed start).
    pub traps: u64,
    /// Answers that broke the contract's limits.
    pub malformed: u64,
    /// Deny answers of an authorizer plugin.
    pub denials: u64,
    /// Instances started.
    pub instances_created: u64,
    /// Call latency: (upper bound in seconds, calls in that bucket, not cumulative); the last
    /// bound is `f64::INFINITY`.
    pub latency_buckets: Vec<(f64, u64)>,
    /// Sum of call latencies, in seconds.
    pub latency_sum: f64,
    /// Reloads that swapped a new plugin in.
    pub reloads: u64,
    /// Reloads that failed (the previous plugin stayed).
    pub reload_failures: u64,
}

/// One decision point: its key and how to read its figures.
pub struct PluginSource {
    point: String,
    read: Box<dyn Fn() -> PluginFigures + Send + Sync>,
}

impl PluginSource {
    /// `point` (e.g. `api.restapi.authorizer_plugin`) read with `read`.
    pub fn new(point: impl Into<String>, read: impl Fn() -> PluginFigures + Send + Sync + 'static) -> PluginSource {
        PluginSource { point: point.into(), read: Box::new(read) }
    }
}

/// The `cairn_plugin_*` families of every decision point.
pub struct PluginCollector {
    points: Vec<PluginSource>,
}

impl PluginCollector {
    /// A collector over `points`.
    pub fn new(points: Vec<PluginSource>) -> PluginCollector {
        PluginCollector { points }
    }
}

impl std::fmt::Debug for PluginCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginCollector").field("points", &self.points.len()).finish()
    }
}

type Read = fn(&PluginFigures) -> u64;

/// The per-point counters: (family name, help, field).
const COUNTERS: &[(&str, &str, Read)] = &[
    ("cairn_plugin_calls", "Calls into the decision point's active plugin", |f| f.calls),
    ("cairn_plugin_failures", "Plugin calls that failed and fell back to the fail-safe decision (all causes)", |f| {
        f.failures
    }),
    ("cairn_plugin_deadline", "Plugin calls stopped at their CPU deadline", |f| f.deadline),
    ("cairn_plugin_out_of_memory", "Plugin calls that hit the plugin's memory cap", |f| f.out_of_memory),
    ("cairn_plugin_traps", "Plugin calls that trapped (panic, exit, failed instance start)", |f| f.traps),
    ("cairn_plugin_malformed", "Plugin answers that broke the contract's limits", |f| f.malformed),
    ("cairn_plugin_denials", "Deny answers of an authorizer plugin (not counting failures)", |f| f.denials),
    ("cairn_plugin_instances_created", "Plugin instances started (first, replacements, recycling)", |f| {
        f.instances_created
    }),
];

impl Collector for PluginCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let figures: Vec<(&str, PluginFigures)> = self.points.iter().map(|p| (p.point.as_str(), (p.read)())).collect();
        for (name, help, read) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (point, f) in &figures {
                ConstCounter::new(read(f)).encode(family.encode_family(&[("point", *point)])?)?;
            }
        }
        let mut reloads = encoder.encode_descriptor(
            "cairn_plugin_reloads",
            "Plugin reloads (SIGHUP, file change), by outcome (ok: swapped in, failed: the previous plugin stayed)",
            None,
            MetricType::Counter,
        )?;
        for (point, f) in &figures {
            for (outcome, value) in [("ok", f.reloads), ("failed", f.reload_failures)] {
                ConstCounter::new(value).encode(reloads.encode_family(&[("point", *point), ("outcome", outcome)])?)?;
            }
        }
        let mut latency = encoder.encode_descriptor(
            "cairn_plugin_call_duration_seconds",
            "Time of a call into the decision point's active plugin (waiting for an instance included)",
            None,
            MetricType::Histogram,
        )?;
        for (point, f) in &figures {
            // prometheus-client writes the bucket bounded by f64::MAX as `+Inf`; every histogram has one.
            let mut buckets: Vec<(f64, u64)> =
                f.latency_buckets.iter().map(|&(le, n)| (if le.is_finite() { le } else { f64::MAX }, n)).collect();
            if buckets.last().is_none_or(|(le, _)| *le != f64::MAX) {
                buckets.push((f64::MAX, 0));
            }
            let count = buckets.iter().map(|(_, n)| n).sum();
            latency.encode_family(&[("point", *point)])?.encode_histogram::<NoLabelSet>(
                f.latency_sum,
                count,
                &buckets,
                None,
            )?;
        }
        let mut info = encoder.encode_descriptor(
            "cairn_plugin_info",
            "The plugin active at each decision point (always 1)",
            None,
            MetricType::Gauge,
        )?;
        for (point, f) in &figures {
            let labels = [("point", *point), ("plugin", f.plugin.as_str()), ("kind", f.kind.as_str())];
            ConstGauge::new(1i64).encode(info.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
