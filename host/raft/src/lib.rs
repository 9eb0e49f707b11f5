//! Cairn's raft consensus engine: [`RaftConsensus`] implements [`Consensus`] on openraft 0.9,
//! for small fixed clusters whose peers share the cluster secret.
//!
//! - The raft log, vote and applied state live in the pinset's own redb file next to the pins
//!   ([`storage`]); applied pins and the `last_applied` mark that covers them commit in one
//!   transaction.
//! - Pins and unpins committed concurrently on a peer are batched into one log entry
//!   ([`PinBatch`], at most 64 operations, at most 4 batches in flight per peer), so they share
//!   the leader's log flush and the replication round trip.
//! - Peers talk through [`PeerNetwork::call`] with the methods of [`RPC_METHODS`]: the raft
//!   protocol (`Raft.AppendEntries`, `Raft.Vote`, `Raft.InstallSnapshot`) and `Raft.Forward`,
//!   by which a follower hands a commit or a membership change to the leader.
//! - Snapshots are files (a header line, then IPFS Cluster's `state export` NDJSON), streamed
//!   to lagging peers in chunks and installed into the pinset in bounded transactions.
//! - Settings are IPFS Cluster's `consensus.raft` keys ([`RaftSettings`], which documents how
//!   they map onto openraft).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cairn_consensus::{CHANGE_BUFFER, Consensus, ConsensusError, PeerNetwork, PinChange};
use cairn_state::{Cid, Pin, PinStore};
use cairn_telemetry::{ConsensusMetrics, RaftCollector, RaftFigures, Telemetry};
use futures::future::BoxFuture;
use openraft::error::{InitializeError, RaftError};
use openraft::{Raft, RaftMetrics, ServerState};
use tokio::sync::broadcast;
use tracing::Instrument as _;

mod commit;
mod network;
mod settings;
pub mod storage;
mod types;

use commit::{AttemptError, Batcher, ForwardRequest, Shared};
pub use network::{APPEND_ENTRIES, FORWARD, INSTALL_SNAPSHOT, VOTE};
pub use settings::RaftSettings;
pub use storage::RaftStoreError;
pub use types::{PeerNode, PinBatch, PinOp, TypeConfig, node_id};

/// The peer RPC methods the raft engine serves (route them to [`Consensus::handle_rpc`]).
pub const RPC_METHODS: &[&str] = &[APPEND_ENTRIES, VOTE, INSTALL_SNAPSHOT, FORWARD];

/// The raft consensus engine of one peer.
pub struct RaftConsensus {
    shared: Arc<Shared>,
    store: Arc<PinStore>,
    batcher: Batcher,
    changes: broadcast::Sender<PinChange>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    stopped: AtomicBool,
    commits: ConsensusMetrics,
    metrics: cairn_telemetry::RaftMetrics,
}

impl std::fmt::Debug for RaftConsensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftConsensus").field("peer", &self.shared.local_peer).field("store", &self.store).finish()
    }
}

impl RaftConsensus {
    /// Starts the engine on `store` (resuming whatever raft state the file holds) and, on a
    /// fresh store, bootstraps: the peers of `init_peerset` (or this peer alone when it is
    /// empty) form the first membership, and only the lowest peer id of that set initializes
    /// it, so peers started together never create two clusters. Refuses to start without a
    /// cluster secret.
    pub async fn start(
        settings: RaftSettings,
        store: Arc<PinStore>,
        network: Arc<dyn PeerNetwork>,
    ) -> Result<RaftConsensus, ConsensusError> {
        if !settings.secret_present {
            return Err(ConsensusError::Refused(
                "raft consensus needs `cluster.secret`: raft trusts every peer that can connect, so without \
                 a secret anyone who reaches the cluster port could rewrite the pinset; set a 32-byte hex \
                 secret, or use the crdt consensus"
                    .into(),
            ));
        }
        let config = settings
            .openraft_config()
            .map_err(|e| ConsensusError::Refused(format!("invalid `consensus.raft` settings: {e}")))?;
        let local_peer = network.local_peer();
        let local_id = node_id(&local_peer);
        let dir = settings
            .data_folder
            .clone()
            .unwrap_or_else(|| store.path().parent().unwrap_or_else(|| Path::new(".")).join("raft-snapshots"));
        let changes = broadcast::channel(CHANGE_BUFFER).0;
        let (log, state_machine) = storage::open(store.clone(), dir, changes.clone()).await.map_err(store_error)?;
        let raft = Raft::new(
            local_id,
            Arc::new(config),
            network::Network::new(network.clone(), settings.network_timeout),
            log,
            state_machine,
        )
        .await
        .map_err(|e| ConsensusError::Refused(format!("cannot start raft: {e}")))?;
        let shared = Arc::new(Shared { raft, network, settings, local_peer, local_id });
        let (batcher, batching) = Batcher::spawn(shared.clone());
        let engine = RaftConsensus {
            shared,
            store,
            batcher,
            changes,
            tasks: Mutex::new(vec![batching]),
            stopped: AtomicBool::new(false),
            commits: ConsensusMetrics::new("raft"),
            metrics: cairn_telemetry::RaftMetrics::default(),
        };
        engine.bootstrap().await?;
        engine.spawn_snapshot_timer();
        Ok(engine)
    }

    async fn bootstrap(&self) -> Result<(), ConsensusError> {
        let shared = &self.shared;
        let initialized = shared.raft.is_initialized().await.map_err(|_| ConsensusError::ShuttingDown)?;
        if initialized {
            tracing::info!(peer = %shared.local_peer, "raft state found in the store; resuming");
            return Ok(());
        }
        let mut members: BTreeSet<String> = shared.settings.init_peerset.iter().cloned().collect();
        if members.is_empty() {
            members.insert(shared.local_peer.clone());
        }
        if !members.contains(&shared.local_peer) {
            tracing::info!(peer = %shared.local_peer, "not in init_peerset; waiting to be added by the cluster");
            return Ok(());
        }
        if members.first() != Some(&shared.local_peer) {
            tracing::info!(peer = %shared.local_peer, "waiting for the lowest peer of init_peerset to initialize raft");
            return Ok(());
        }
        let nodes: BTreeMap<u64, PeerNode> =
            members.into_iter().map(|peer_id| (node_id(&peer_id), PeerNode { peer_id })).collect();
        match shared.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            // Someone (a previous run) initialized already: resume.
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(ConsensusError::Refused(format!("cannot initialize raft: {e}"))),
        }
    }

    /// openraft checks `snapshot_threshold` after every apply; this re-checks it every
    /// `snapshot_interval`, as hashicorp/raft does, in case a threshold crossing was missed
    /// (e.g. a snapshot build that failed).
    fn spawn_snapshot_timer(&self) {
        let raft = self.shared.raft.clone();
        let every = self.shared.settings.snapshot_interval.max(Duration::from_millis(10));
        let threshold = self.shared.settings.snapshot_threshold.max(1);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let due = {
                    let metrics = raft.metrics();
                    let m = metrics.borrow();
                    let applied = m.last_applied.map_or(0, |l| l.index);
                    let snapshot = m.snapshot.map_or(0, |l| l.index);
                    applied.saturating_sub(snapshot) >= threshold
                };
                if due && raft.trigger().snapshot().await.is_err() {
                    return;
                }
            }
        });
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner).push(task);
    }

    /// This peer's base58 id.
    pub fn local_peer(&self) -> &str {
        &self.shared.local_peer
    }

    /// openraft's live metrics (leader, term, log and snapshot positions, membership).
    pub fn metrics(&self) -> RaftMetrics<u64, PeerNode> {
        self.shared.raft.metrics().borrow().clone()
    }

    /// The leader's peer id, if one is known.
    pub fn leader(&self) -> Option<String> {
        self.shared.known_leader().map(|(_, peer)| peer)
    }

    /// Asks for a snapshot now (and the log purge that follows it), whatever the threshold.
    pub async fn trigger_snapshot(&self) -> Result<(), ConsensusError> {
        self.shared.raft.trigger().snapshot().await.map_err(|_| ConsensusError::ShuttingDown)
    }

    /// Adds `peer` to the cluster: as a learner first, which receives the log (or a snapshot),
    /// then as a voter once it has caught up. Forwarded to the leader when this peer is not it.
    pub async fn add_peer(&self, peer: String) -> Result<(), ConsensusError> {
        let request = ForwardRequest::AddPeer(peer);
        self.with_retries(|| self.shared.attempt(&request)).await
    }

    /// Runs `attempt` until it succeeds, fails for good, or `commit_retries` retries (spaced by
    /// `commit_retry_delay`) are spent. Retrying is safe: pins, unpins and membership changes
    /// are idempotent.
    async fn with_retries<F, Fut>(&self, mut attempt: F) -> Result<(), ConsensusError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), AttemptError>>,
    {
        let settings = &self.shared.settings;
        let mut tries = 0;
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return Err(ConsensusError::ShuttingDown);
            }
            match attempt().await {
                Ok(()) => return Ok(()),
                Err(e) if e.retryable() && tries < settings.commit_retries => {
                    self.metrics.commit_retries.inc();
                    tracing::debug!(attempt = tries, error = ?e, "raft commit attempt failed; retrying");
                    tries += 1;
                    tokio::time::sleep(settings.commit_retry_delay).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Commits `op`, timed and traced.
    async fn timed_commit(&self, op: PinOp) -> Result<(), ConsensusError> {
        let (name, cid) = match &op {
            PinOp::Pin(pin) => ("pin", pin.cid.to_string()),
            PinOp::Unpin(cid) => ("unpin", cid.to_string()),
        };
        let span = tracing::info_span!("consensus.commit", engine = "raft", op = name, cid = %cid);
        let started = std::time::Instant::now();
        let result = self.with_retries(|| self.batcher.attempt(op.clone())).instrument(span).await;
        self.commits.commit(name, result.is_ok(), started.elapsed());
        result
    }

    fn abort_tasks(&self) {
        for task in self.tasks.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }
}

/// What `cairn_raft_*` shows of openraft's metrics.
fn figures(m: &RaftMetrics<u64, PeerNode>) -> RaftFigures {
    let membership = m.membership_config.membership();
    RaftFigures {
        term: m.current_term,
        is_leader: m.state == ServerState::Leader,
        leader: m.current_leader.and_then(|id| membership.get_node(&id)).map(|n| n.peer_id.clone()),
        last_log_index: m.last_log_index.unwrap_or(0),
        last_applied_index: m.last_applied.map_or(0, |l| l.index),
        snapshot_index: m.snapshot.map_or(0, |l| l.index),
        voters: membership.voter_ids().count() as u64,
    }
}

fn store_error(e: RaftStoreError) -> ConsensusError {
    match e {
        RaftStoreError::Store(e) => ConsensusError::Store(e),
        other => ConsensusError::Refused(other.to_string()),
    }
}

impl Drop for RaftConsensus {
    fn drop(&mut self) {
        self.abort_tasks();
    }
}

impl Consensus for RaftConsensus {
    fn commit_pin(&self, pin: Pin) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(self.timed_commit(PinOp::Pin(pin)))
    }

    fn commit_unpin(&self, cid: Cid) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(self.timed_commit(PinOp::Unpin(cid)))
    }

    fn state(&self) -> &Arc<PinStore> {
        &self.store
    }

    fn peers(&self) -> BoxFuture<'_, Result<Vec<String>, ConsensusError>> {
        Box::pin(async move {
            let metrics = self.metrics();
            let membership = metrics.membership_config.membership();
            let mut peers: Vec<String> =
                membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|n| n.peer_id.clone())).collect();
            peers.sort();
            Ok(peers)
        })
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async move { self.shared.wait_for_leader().await.map(|_| ()).map_err(ConsensusError::from) })
    }

    fn rm_peer(&self, peer: String) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async move {
            let request = ForwardRequest::RmPeer(peer);
            self.with_retries(|| self.shared.attempt(&request)).await
        })
    }

    fn handle_rpc(&self, peer: String, method: String, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            if self.stopped.load(Ordering::Acquire) {
                return Err("raft consensus is shutting down".into());
            }
            tracing::trace!(%peer, %method, bytes = payload.len(), "raft rpc");
            if method == FORWARD {
                self.shared.serve_forward(&payload).await
            } else {
                network::serve(&self.shared.raft, &method, &payload).await
            }
        })
    }

    fn rpc_methods(&self) -> &'static [&'static str] {
        RPC_METHODS
    }

    fn changes(&self) -> broadcast::Receiver<PinChange> {
        self.changes.subscribe()
    }

    fn register_metrics(&self, telemetry: &Telemetry) {
        telemetry.register(|registry| {
            self.commits.register(registry);
            self.metrics.register(registry);
        });
        let raft = self.shared.raft.clone();
        telemetry.register_collector(RaftCollector::new(move || figures(&raft.metrics().borrow())));
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async move {
            if self.stopped.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            self.abort_tasks();
            self.shared
                .raft
                .shutdown()
                .await
                .map_err(|e| ConsensusError::Refused(format!("raft did not stop cleanly: {e}")))
        })
    }
}
