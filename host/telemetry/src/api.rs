//! The HTTP APIs' request families (REST API, Pinning Service API, IPFS proxy).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::call_buckets;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api: String,
    route: String,
    status: u16,
}

/// API requests. Cheap to clone; get the registered one from [`crate::Telemetry::api`].
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(call_buckets())),
        }
    }
}

impl ApiMetrics {
    /// Adds the families to `registry` (once; [`crate::Telemetry::new`] does it).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cairn_api_requests",
            "HTTP API requests answered, by api (restapi, pinsvcapi, ipfsproxy), route and status",
            self.requests.clone(),
        );
        registry.register(
            "cairn_api_request_duration_seconds",
            "Time to answer an HTTP API request (until the response head; streamed bodies continue), by api, \
             route and status",
            self.duration.clone(),
        );
    }

    /// Records one answered request. `route` must be the route's pattern (`/pins/{cid}`), never
    /// the request path, so the number of series stays bounded; use `other` for unmatched paths.
    pub fn observe(&self, api: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels { api: api.to_owned(), route: route.to_owned(), status };
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// Starts timing a request; [`ApiTimer::finish`] records it.
    pub fn start(&self, api: &'static str) -> ApiTimer {
        ApiTimer { metrics: self.clone(), api, started: std::time::Instant::now() }
    }
}

/// A request being timed (see [`ApiMetrics::start`]).
#[derive(Debug)]
pub struct ApiTimer {
    metrics: ApiMetrics,
    api: &'static str,
    started: std::time::Instant,
}

impl ApiTimer {
    /// Records the request with its route pattern and status.
    pub fn finish(self, route: &str, status: u16) {
        self.metrics.observe(self.api, route, status, self.started.elapsed());
    }
}
