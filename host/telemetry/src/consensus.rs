//! Consensus families: commits of either engine, the crdt engine's broadcast and
//! anti-entropy figures, and raft's leadership and log positions.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::call_buckets;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommitLabels {
    engine: &'static str,
    /// `pin` or `unpin`.
    op: &'static str,
    /// `ok` or `error`.
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommitOp {
    engine: &'static str,
    op: &'static str,
}

/// Commits of the pinset, whichever the engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConsensusMetrics {
    engine: &'static str,
    commits: Family<CommitLabels, Counter>,
    duration: Family<CommitOp, Histogram, fn() -> Histogram>,
}

impl ConsensusMetrics {
    /// Unregistered instruments for `engine` (`crdt` or `raft`).
    pub fn new(engine: &'static str) -> ConsensusMetrics {
        ConsensusMetrics {
            engine,
            commits: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(call_buckets())),
        }
    }

    /// Adds the families to `registry` (once).
    pub fn register(&self, registry: &mut Registry) {
        for op in ["pin", "unpin"] {
            for outcome in ["ok", "error"] {
                let _ = self.commits.get_or_create(&CommitLabels { engine: self.engine, op, outcome });
            }
        }
        registry.register(
            "cairn_consensus_commits",
            "Pinset commits made on this peer, by engine, op (pin, unpin) and outcome (ok, error)",
            self.commits.clone(),
        );
        registry.register(
            "cairn_consensus_commit_duration_seconds",
            "Time until a commit was acknowledged (crdt: durable here; raft: committed by a quorum), by \
             engine and op",
            self.duration.clone(),
        );
    }

    /// Records a commit (`op`: `pin` or `unpin`).
    pub fn commit(&self, op: &'static str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.commits.get_or_create(&CommitLabels { engine: self.engine, op, outcome }).inc();
        self.duration.get_or_create(&CommitOp { engine: self.engine, op }).observe(elapsed.as_secs_f64());
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    /// `delta` (broadcast) or `sync` (anti-entropy).
    source: &'static str,
}

/// The crdt engine's figures. Cheap to clone; `Default` records into unregistered instruments.
#[derive(Debug, Clone)]
pub struct CrdtMetrics {
    /// Deltas published on the cluster topic.
    pub broadcasts: Counter,
    /// Deltas that could not be published (anti-entropy delivers their records later).
    pub broadcast_errors: Counter,
    /// Records carried by published deltas.
    pub records_broadcast: Counter,
    deltas_received: Family<OutcomeLabel, Counter>,
    records_applied: Family<SourceLabel, Counter>,
    /// Records pulled by anti-entropy and refused (their author may not write).
    pub sync_records_refused: Counter,
    sync_rounds: Family<OutcomeLabel, Counter>,
    /// Buckets pulled by anti-entropy (differing after the grace period).
    pub buckets_pulled: Counter,
    store_commit: Histogram,
}

impl Default for CrdtMetrics {
    fn default() -> Self {
        CrdtMetrics {
            broadcasts: Counter::default(),
            broadcast_errors: Counter::default(),
            records_broadcast: Counter::default(),
            deltas_received: Family::default(),
            records_applied: Family::default(),
            sync_records_refused: Counter::default(),
            sync_rounds: Family::default(),
            buckets_pulled: Counter::default(),
            // 100 µs to about 1.6 s: one group commit (fsync) of the store.
            store_commit: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
        }
    }
}

impl CrdtMetrics {
    /// Adds the families to `registry` (once).
    pub fn register(&self, registry: &mut Registry) {
        for outcome in ["queued", "refused", "dropped", "invalid"] {
            let _ = self.deltas_received.get_or_create(&OutcomeLabel { outcome });
        }
        for source in ["delta", "sync"] {
            let _ = self.records_applied.get_or_create(&SourceLabel { source });
        }
        for outcome in ["ok", "error"] {
            let _ = self.sync_rounds.get_or_create(&OutcomeLabel { outcome });
        }
        registry.register("cairn_crdt_broadcasts", "Deltas published on the cluster's topic", self.broadcasts.clone());
        registry.register(
            "cairn_crdt_broadcast_errors",
            "Deltas that could not be published (anti-entropy delivers their records later)",
            self.broadcast_errors.clone(),
        );
        registry.register(
            "cairn_crdt_records_broadcast",
            "Pinset records carried by published deltas",
            self.records_broadcast.clone(),
        );
        registry.register(
            "cairn_crdt_deltas_received",
            "Deltas received from other peers, by outcome (queued for the store, refused: the author may not \
             write the pinset, dropped: the apply queue was full, invalid: undecodable)",
            self.deltas_received.clone(),
        );
        registry.register(
            "cairn_crdt_records_applied",
            "Pinset records received and applied (newer than this peer's), by source (delta, sync)",
            self.records_applied.clone(),
        );
        registry.register(
            "cairn_crdt_sync_records_refused",
            "Records pulled by anti-entropy and refused because their author may not write the pinset",
            self.sync_records_refused.clone(),
        );
        registry.register(
            "cairn_crdt_sync_rounds",
            "Anti-entropy rounds (fingerprint comparisons with a trusted peer), by outcome (ok, error)",
            self.sync_rounds.clone(),
        );
        registry.register(
            "cairn_crdt_sync_buckets_pulled",
            "Buckets of the pinset pulled from another peer by anti-entropy",
            self.buckets_pulled.clone(),
        );
        registry.register(
            "cairn_crdt_store_commit_duration_seconds",
            "Time of one group commit of the pinset store (local writes and received records)",
            self.store_commit.clone(),
        );
    }

    /// A delta arrived: `outcome` is `queued`, `refused`, `dropped` or `invalid`.
    pub fn delta_received(&self, outcome: &'static str) {
        self.deltas_received.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// `n` received records were applied; `synced`: pulled by anti-entropy.
    pub fn records_applied(&self, synced: bool, n: u64) {
        let source = if synced { "sync" } else { "delta" };
        self.records_applied.get_or_create(&SourceLabel { source }).inc_by(n);
    }

    /// An anti-entropy round ended.
    pub fn sync_round(&self, ok: bool) {
        self.sync_rounds.get_or_create(&OutcomeLabel { outcome: if ok { "ok" } else { "error" } }).inc();
    }

    /// A group commit of the store took `elapsed`.
    pub fn store_commit(&self, elapsed: Duration) {
        self.store_commit.observe(elapsed.as_secs_f64());
    }
}

/// The raft engine's own counters (commits are [`ConsensusMetrics`]; leadership and log
/// positions are read at scrape time by [`RaftCollector`]).
#[derive(Debug, Clone, Default)]
pub struct RaftMetrics {
    /// Commit attempts retried (leader changed, call failed, no leader yet).
    pub commit_retries: Counter,
}

impl RaftMetrics {
    /// Adds the families to `registry` (once).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cairn_raft_commit_retries",
            "Raft commit attempts retried (leader changed, call failed, no leader yet)",
            self.commit_retries.clone(),
        );
    }
}

/// Raft's state at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftFigures {
    /// The current term.
    pub term: u64,
    /// Whether this peer is the leader.
    pub is_leader: bool,
    /// The leader's peer id, when one is known.
    pub leader: Option<String>,
    /// The last log index this peer has.
    pub last_log_index: u64,
    /// The last log index applied to the pinset.
    pub last_applied_index: u64,
    /// The log index the last snapshot covers.
    pub snapshot_index: u64,
    /// Voters in the membership.
    pub voters: u64,
}

/// The `cairn_raft_*` gauges, read from raft's live metrics at scrape time.
pub struct RaftCollector {
    read: Box<dyn Fn() -> RaftFigures + Send + Sync>,
}

impl RaftCollector {
    /// A collector answering with `read()`.
    pub fn new(read: impl Fn() -> RaftFigures + Send + Sync + 'static) -> RaftCollector {
        RaftCollector { read: Box::new(read) }
    }
}

impl std::fmt::Debug for RaftCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftCollector").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

impl Collector for RaftCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let f = (self.read)();
        let mut gauge = |name: &str, help: &str, value: u64| -> Result<(), std::fmt::Error> {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
        };
        gauge("cairn_raft_term", "The current raft term (it grows with every election)", f.term)?;
        gauge("cairn_raft_is_leader", "1 when this peer is the raft leader", u64::from(f.is_leader))?;
        gauge("cairn_raft_last_log_index", "The last raft log index this peer holds", f.last_log_index)?;
        gauge("cairn_raft_last_applied_index", "The last raft log index applied to the pinset", f.last_applied_index)?;
        gauge("cairn_raft_snapshot_index", "The raft log index the last snapshot covers", f.snapshot_index)?;
        gauge("cairn_raft_voters", "Voters in the raft membership", f.voters)?;
        let leader = ConstGauge::new(1i64);
        let mut family = encoder.encode_descriptor(
            "cairn_raft_leader",
            "1 for the raft leader this peer knows of (no sample while there is none)",
            None,
            leader.metric_type(),
        )?;
        if let Some(peer) = f.leader {
            leader.encode(family.encode_family(&PeerLabel { peer })?)?;
        }
        Ok(())
    }
}
