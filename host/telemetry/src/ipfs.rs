//! The IPFS connector's families (Kubo RPC requests), process-wide.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::call_buckets;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The Kubo RPC endpoint (`pin/add`, `id`, ...).
    endpoint: &'static str,
    /// `ok`, `http_error` (the daemon answered with an error), `unreachable` or `error` (the
    /// request could not be built).
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

/// Requests to the IPFS daemon's RPC API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct IpfsMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<EndpointLabel, Histogram, fn() -> Histogram>,
}

impl Default for IpfsMetrics {
    fn default() -> Self {
        IpfsMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(call_buckets())),
        }
    }
}

impl IpfsMetrics {
    /// The process-wide instance the Kubo RPC client records into. A static because the
    /// connector is built from the config by code that knows nothing of telemetry, and its
    /// public API (used by other crates) takes no registry; [`crate::Telemetry::new`]
    /// registers it, so every registry shows the same figures.
    pub fn global() -> &'static IpfsMetrics {
        static GLOBAL: OnceLock<IpfsMetrics> = OnceLock::new();
        GLOBAL.get_or_init(IpfsMetrics::default)
    }

    /// Adds the families to `registry` (once per registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cairn_ipfs_requests",
            "Requests to the IPFS daemon's RPC API, by endpoint and outcome (ok, http_error, unreachable, error)",
            self.requests.clone(),
        );
        registry.register(
            "cairn_ipfs_request_duration_seconds",
            "Time from sending an IPFS RPC request until its response headers (or its failure), by endpoint",
            self.duration.clone(),
        );
    }

    /// Records a request to `endpoint`: `outcome` is `ok`, `http_error`, `unreachable` or `error`.
    pub fn request(&self, endpoint: &'static str, outcome: &'static str, elapsed: Duration) {
        self.requests.get_or_create(&RequestLabels { endpoint, outcome }).inc();
        self.duration.get_or_create(&EndpointLabel { endpoint }).observe(elapsed.as_secs_f64());
    }
}
