//! The pin tracker's families: operations and their errors, and the pins per status.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    /// `pin` or `unpin`.
    op: &'static str,
    /// `done` or `error`.
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

/// The tracker's operation figures. Cheap to clone; `Default` records into unregistered
/// instruments.
#[derive(Debug, Clone)]
pub struct TrackerMetrics {
    operations: Family<OperationLabels, Counter>,
    duration: Family<OpLabel, Histogram, fn() -> Histogram>,
    queue_full: Counter,
}

impl Default for TrackerMetrics {
    fn default() -> Self {
        TrackerMetrics {
            operations: Family::default(),
            // 10 ms to about 30 minutes: a pin fetches a whole DAG.
            duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 3.0, 12))),
            queue_full: Counter::default(),
        }
    }
}

impl TrackerMetrics {
    /// Adds the families to `registry` (once).
    pub fn register(&self, registry: &mut Registry) {
        // Both outcomes of both operations exist from the start, so rates work from zero.
        for op in ["pin", "unpin"] {
            for outcome in ["done", "error"] {
                let _ = self.operations.get_or_create(&OperationLabels { op, outcome });
            }
        }
        registry.register(
            "cairn_tracker_operations",
            "Pin and unpin operations the tracker finished on this peer's IPFS daemon, by op (pin, unpin) \
             and outcome (done, error: the attempt failed and the pin is in pin_error/unpin_error)",
            self.operations.clone(),
        );
        registry.register(
            "cairn_tracker_operation_duration_seconds",
            "Time an IPFS pin or unpin operation took, by op",
            self.duration.clone(),
        );
        registry.register(
            "cairn_tracker_queue_full",
            "Pins set to pin_error at once because max_pin_queue_size pins were already queued",
            self.queue_full.clone(),
        );
    }

    /// Records a finished operation (`op`: `pin` or `unpin`).
    pub fn finished(&self, op: &'static str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "done" } else { "error" };
        self.operations.get_or_create(&OperationLabels { op, outcome }).inc();
        self.duration.get_or_create(&OpLabel { op }).observe(elapsed.as_secs_f64());
    }

    /// Records a pin refused because the queue was full.
    pub fn queue_full(&self) {
        self.queue_full.inc();
    }
}

/// `cairn_pins{status}`: this peer's pins per tracker status, read at scrape time.
pub struct PinStates {
    read: Box<dyn Fn() -> Vec<(&'static str, i64)> + Send + Sync>,
}

impl PinStates {
    /// A collector answering with `read()`'s (status name, count) pairs.
    pub fn new(read: impl Fn() -> Vec<(&'static str, i64)> + Send + Sync + 'static) -> PinStates {
        PinStates { read: Box::new(read) }
    }
}

impl std::fmt::Debug for PinStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinStates").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

impl Collector for PinStates {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = (self.read)();
        let gauge = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "cairn_pins",
            "Pins of this peer by tracker status. Statuses of operations in flight (pin_queued, pinning, \
             pin_error, unpin_queued, unpinning, unpin_error) are live; pinned, remote, \
             unexpectedly_unpinned and sharded come from the last status scan of the pinset \
             (every observations.metrics.reporting_interval)",
            None,
            gauge.metric_type(),
        )?;
        for (status, count) in counts {
            ConstGauge::new(count).encode(family.encode_family(&StatusLabel { status })?)?;
        }
        Ok(())
    }
}
