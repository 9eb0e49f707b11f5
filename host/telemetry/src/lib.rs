//! Cairn's observability.
//!
//! - [`Telemetry`]: the peer's one Prometheus registry (`prometheus-client` 0.23.1, the version
//!   libp2p-metrics 0.17 uses, so libp2p's own families live in the same registry). Cheap to
//!   clone; the daemon makes one and serves it on `observations.metrics.prometheus_endpoint`.
//! - The metric families of every component, defined here so that names, help texts and labels
//!   are in one place: [`SwarmMetrics`], [`TrackerMetrics`] (+ [`PinStates`]),
//!   [`ConsensusMetrics`], [`CrdtMetrics`], [`RaftMetrics`] (+ [`RaftFigures`]),
//!   [`IpfsMetrics`], [`ApiMetrics`] and the plugin figures ([`PluginFigures`]).
//!
//! Each component owns its metrics struct from construction: `Default` gives working
//! instruments that no registry reads, so a component is testable (and costs nothing more than
//! a few atomic adds) without a registry. The daemon registers the component's families into
//! its [`Telemetry`] when `enable_stats` is on (`register` methods). Families computed at
//! scrape time (pin states, raft leadership, plugin counters) are [`Collector`]s that read the
//! component through a closure.
//!
//! The IPFS connector's families are the one exception: they are process-wide
//! ([`IpfsMetrics::global`]), because the connector is built from the config by code that does
//! not know about telemetry, and its public API is used by other crates that should not have
//! to pass a registry.
//!
//! With the `otlp` feature, [`otlp`] builds the OpenTelemetry trace pipeline (OTLP/HTTP);
//! [`propagation`] carries trace context across peer RPCs once that pipeline is on.

use std::sync::{Arc, Mutex, MutexGuard};

pub use prometheus_client;
use prometheus_client::collector::Collector;
use prometheus_client::registry::Registry;

mod api;
mod consensus;
pub mod exposition;
mod ipfs;
pub mod log_throttle;
#[cfg(feature = "otlp")]
pub mod otlp;
mod plugin;
pub mod propagation;
mod swarm;
mod tracker;

pub use api::{ApiMetrics, ApiTimer};
pub use consensus::{ConsensusMetrics, CrdtMetrics, RaftCollector, RaftFigures, RaftMetrics};
pub use exposition::Format;
pub use ipfs::IpfsMetrics;
pub use log_throttle::LogThrottle;
pub use plugin::{PluginCollector, PluginFigures, PluginSource};
pub use swarm::SwarmMetrics;
pub use tracker::{PinStates, TrackerMetrics};

/// The peer's metrics registry. Cheap to clone (one shared registry).
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<Registry>,
    api: ApiMetrics,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    /// A registry holding the process-wide families (IPFS requests) and the API families;
    /// components add theirs with their `register` methods.
    pub fn new() -> Telemetry {
        let mut registry = Registry::default();
        IpfsMetrics::global().register(&mut registry);
        let api = ApiMetrics::default();
        api.register(&mut registry);
        Telemetry { inner: Arc::new(Inner { registry: Mutex::new(registry), api }) }
    }

    /// The REST API / Pinning Service API / IPFS proxy request families (already registered).
    pub fn api(&self) -> ApiMetrics {
        self.inner.api.clone()
    }

    /// Registers families with `f`. Register each family once: the registry does not check.
    pub fn register<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.registry())
    }

    /// Registers a family computed at scrape time.
    pub fn register_collector(&self, collector: impl Collector) {
        self.registry().register_collector(Box::new(collector));
    }

    /// The exposition of every registered family in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut open_metrics = String::new();
        // Writing into a String cannot fail; a collector's error would only cut the text short.
        let _ = prometheus_client::encoding::text::encode(&mut open_metrics, &self.registry());
        match format {
            Format::OpenMetrics => open_metrics,
            Format::Prometheus => exposition::to_prometheus_text(&open_metrics),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner.registry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Latency buckets for network calls and commits: 0.5 ms to about 16 s, doubling.
pub(crate) fn call_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16)
}
