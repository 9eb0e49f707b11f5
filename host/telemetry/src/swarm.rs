//! The cluster swarm's peer RPC and connection families (libp2p's own come from
//! `libp2p::metrics`, registered by the swarm next to these).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::call_buckets;

/// An outgoing RPC: the method (one of the peer's own, a bounded set) and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SentLabels {
    method: String,
    /// `ok`, `denied` (the callee's authorizer refused), `failed` (its handler failed) or
    /// `error` (no answer: unreachable, timeout, stream error).
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The swarm's figures. Cheap to clone; `Default` records into unregistered instruments.
#[derive(Debug, Clone)]
pub struct SwarmMetrics {
    /// Peers with at least one open connection.
    pub connected_peers: Gauge,
    /// Incoming RPCs answered successfully.
    pub rpc_served: Counter,
    /// Incoming RPCs refused by the peer authorizer.
    pub rpc_denied: Counter,
    /// Incoming RPCs whose handler failed.
    pub rpc_failed: Counter,
    /// Time to authorize and handle an incoming RPC.
    rpc_served_duration: Histogram,
    rpc_sent: Family<SentLabels, Counter>,
    rpc_sent_duration: HistogramFamily<MethodLabel>,
    /// Connections that failed during the handshake.
    pub handshake_failures: Counter,
}

impl Default for SwarmMetrics {
    fn default() -> Self {
        SwarmMetrics {
            connected_peers: Gauge::default(),
            rpc_served: Counter::default(),
            rpc_denied: Counter::default(),
            rpc_failed: Counter::default(),
            rpc_served_duration: Histogram::new(call_buckets()),
            rpc_sent: Family::default(),
            rpc_sent_duration: Family::new_with_constructor(|| Histogram::new(call_buckets())),
            handshake_failures: Counter::default(),
        }
    }
}

impl SwarmMetrics {
    /// Adds the families to `registry` (once).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cairn_swarm_connected_peers",
            "Peers connected to the cluster swarm",
            self.connected_peers.clone(),
        );
        registry.register("cairn_rpc_served", "Peer RPC calls served", self.rpc_served.clone());
        registry.register("cairn_rpc_denied", "Peer RPC calls refused by the peer authorizer", self.rpc_denied.clone());
        registry.register("cairn_rpc_failed", "Peer RPC calls whose handler failed", self.rpc_failed.clone());
        registry.register(
            "cairn_rpc_served_duration_seconds",
            "Time to authorize and handle an incoming peer RPC call",
            self.rpc_served_duration.clone(),
        );
        registry.register(
            "cairn_rpc_sent",
            "Peer RPC calls made to other peers, by method and outcome (ok, denied, failed, error)",
            self.rpc_sent.clone(),
        );
        registry.register(
            "cairn_rpc_sent_duration_seconds",
            "Time until another peer answered a peer RPC call, by method",
            self.rpc_sent_duration.clone(),
        );
        registry.register(
            "cairn_swarm_handshake_failures",
            "Connections that failed their handshake (often a cluster secret mismatch)",
            self.handshake_failures.clone(),
        );
    }

    /// Records an incoming RPC's handling time.
    pub fn served(&self, elapsed: Duration) {
        self.rpc_served_duration.observe(elapsed.as_secs_f64());
    }

    /// Records an outgoing RPC: `outcome` is `ok`, `denied`, `failed` or `error`.
    pub fn sent(&self, method: &str, outcome: &'static str, elapsed: Duration) {
        self.rpc_sent.get_or_create(&SentLabels { method: method.to_owned(), outcome }).inc();
        self.rpc_sent_duration.get_or_create(&MethodLabel { method: method.to_owned() }).observe(elapsed.as_secs_f64());
    }
}
