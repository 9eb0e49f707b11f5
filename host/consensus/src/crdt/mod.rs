//! The crdt engine: a last-writer-wins map from CID to pin record, replicated by broadcast
//! deltas and repaired by set reconciliation.
//!
//! - Every write is a [`Record`] versioned by a hybrid logical clock and its author. A removal
//!   is a tombstone record, so a late, older add cannot resurrect it, and a re-add after a
//!   removal (on any peer) carries a newer clock and wins: the states converge whatever the
//!   delivery order (IPFS Cluster's v1.1.2 bug cannot happen).
//! - A write is acknowledged once it is durable in the local store (group-committed with the
//!   writes queued at the same time), then broadcast as a delta on the cluster's topic;
//!   `batching` groups broadcasts, it never delays durability.
//! - A delta is applied only if its signed publisher is the author of every record in it and
//!   the authorizer lets that peer write the pinset. Relayed copies keep the original
//!   signature, so relaying cannot launder an untrusted author.
//! - Anti-entropy: peers compare the store's 4096 bucket fingerprints with a trusted peer and
//!   pull only the buckets that differ (and still differ after a grace period, so deltas in
//!   flight are not fetched twice). A fresh or long-offline peer therefore joins by copying
//!   the pinset in pages instead of replaying history, and there is no history to compact:
//!   the store holds one record per CID.

mod hlc;
mod wire;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_state::{BUCKETS, Cid, Pin, PinStore, Record, Version};
use cairn_telemetry::{ConsensusMetrics, CrdtMetrics, Telemetry};
use futures::future::BoxFuture;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::{CHANGE_BUFFER, Consensus, ConsensusError, PeerNetwork, PinChange};
pub use hlc::{ClockError, Hlc, MAX_AHEAD};
use wire::{Delta, RecordsPage, RecordsRequest, WireRecord};

/// RPC: this peer's bucket fingerprints (4096 × 16 raw bytes).
pub const RPC_FINGERPRINTS: &str = "Crdt.Fingerprints";
/// RPC: a page of records of a bucket range.
pub const RPC_RECORDS: &str = "Crdt.Records";
const RPC_METHODS: &[&str] = &[RPC_FINGERPRINTS, RPC_RECORDS];

/// Records per anti-entropy page: about 2 MB of JSON, well under the swarm's answer limit.
const PAGE_RECORDS: usize = 5_000;
/// Writes gathered into one store transaction at most.
const MAX_GROUP: usize = 8_192;
/// Serialized size a broadcast delta is split at (under the swarm's pubsub limit).
const MAX_DELTA_BYTES: usize = 1024 * 1024;
/// Deltas received but not yet applied; beyond this, deltas are dropped and anti-entropy
/// repairs the gap (the swarm's event loop must never block on the store).
const REMOTE_QUEUE: usize = 256;
/// When more buckets than this differ, the peer is far behind (fresh or long offline): pull
/// at once instead of waiting for deltas in flight.
const FAR_BEHIND_BUCKETS: usize = BUCKETS / 8;

/// How long a peer whose reconciliation failed is left alone.
const FAILED_PEER_BACKOFF: Duration = Duration::from_secs(10);

/// The pubsub topic of a cluster's deltas (versioned, so a future format gets a new topic).
pub fn topic_for(cluster_name: &str) -> String {
    format!("/cairn/crdt/1/{cluster_name}")
}

/// Decides whether a peer may write the pinset (the authorizer plugin's `pinset-write`).
pub trait WriteAuthorizer: Send + Sync + 'static {
    /// True when `peer` (base58) may write.
    fn may_write(&self, peer: &str) -> BoxFuture<'_, bool>;
}

/// Broadcast batching (IPFS Cluster's `batching`): on when both limits are non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Broadcast once this many updates are pending.
    pub max_batch_size: usize,
    /// ...or once the oldest pending update is this old.
    pub max_batch_age: Duration,
}

/// The crdt engine's settings (the `consensus.crdt` section, in Rust types).
#[derive(Debug, Clone)]
pub struct CrdtSettings {
    /// `cluster_name`: names the delta topic.
    pub cluster_name: String,
    /// `batching` when enabled.
    pub batching: Option<Batching>,
    /// `batching.max_queue_size`: writes waiting for the store beyond this are refused.
    pub max_queue_size: usize,
    /// How often to reconcile with trusted peers (Cairn's `sync_interval`).
    pub sync_interval: Duration,
    /// `repair_interval`: how often to reconcile with every trusted peer, not just a few.
    pub repair_interval: Duration,
    /// How long a differing bucket may wait for deltas in flight before it is pulled.
    pub sync_grace: Duration,
}

impl Default for CrdtSettings {
    fn default() -> Self {
        CrdtSettings {
            cluster_name: "ipfs-cluster".into(),
            batching: None,
            max_queue_size: 50_000,
            sync_interval: Duration::from_secs(5),
            repair_interval: Duration::from_secs(3600),
            sync_grace: Duration::from_secs(2),
        }
    }
}

/// Counters of the engine's work, for metrics and tests.
#[derive(Debug, Default)]
pub struct CrdtStats {
    /// Local writes made durable.
    pub local_writes: AtomicU64,
    /// Records received in deltas and applied (newer than the store's).
    pub delta_records_applied: AtomicU64,
    /// Deltas refused because their author may not write the pinset.
    pub deltas_refused: AtomicU64,
    /// Deltas dropped because the apply queue was full.
    pub deltas_dropped: AtomicU64,
    /// Records pulled by anti-entropy and applied.
    pub synced_records_applied: AtomicU64,
    /// Records pulled by anti-entropy and refused (untrusted author).
    pub synced_records_refused: AtomicU64,
    /// Reconciliation rounds run.
    pub sync_rounds: AtomicU64,
}

enum Op {
    Local { record: Box<Record>, done: oneshot::Sender<Result<(), ConsensusError>> },
    Remote { records: Vec<Record>, synced: bool, done: Option<oneshot::Sender<()>> },
}

struct Inner {
    store: Arc<PinStore>,
    network: Arc<dyn PeerNetwork>,
    auth: Arc<dyn WriteAuthorizer>,
    settings: CrdtSettings,
    local: String,
    topic: String,
    hlc: Hlc,
    stats: CrdtStats,
    commits: ConsensusMetrics,
    metrics: CrdtMetrics,
    /// Writes and merges for the store writer; bounded by `max_queue_size`.
    ops: mpsc::Sender<Op>,
    /// Deltas waiting for the store writer, bounded separately so gossip never blocks writes.
    remote: mpsc::Sender<Op>,
    /// Peers reconciled with at least once since they connected.
    synced_peers: Mutex<HashSet<String>>,
    /// Applied changes, for the tracker.
    changes: broadcast::Sender<PinChange>,
}

impl Inner {
    fn announce(&self, record: &Record) {
        if self.changes.receiver_count() == 0 {
            return;
        }
        let change = match &record.pin {
            Some(pin) => PinChange::Pinned(Box::new(pin.clone())),
            None => PinChange::Unpinned(record.cid.clone()),
        };
        let _ = self.changes.send(change);
    }
}

/// The crdt consensus engine.
pub struct CrdtConsensus {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl CrdtConsensus {
    /// Starts the engine on `store`. The daemon must subscribe to [`Consensus::topics`] and
    /// hand their messages to [`Consensus::handle_broadcast`], and route
    /// [`Consensus::rpc_methods`] to [`Consensus::handle_rpc`].
    pub fn start(
        settings: CrdtSettings,
        store: Arc<PinStore>,
        network: Arc<dyn PeerNetwork>,
        auth: Arc<dyn WriteAuthorizer>,
    ) -> Result<Self, ConsensusError> {
        let hlc = Hlc::new(store.max_clock()?);
        let (ops_tx, ops_rx) = mpsc::channel(settings.max_queue_size.max(1));
        let (remote_tx, remote_rx) = mpsc::channel(REMOTE_QUEUE);
        let (stop, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            local: network.local_peer(),
            topic: topic_for(&settings.cluster_name),
            store,
            network,
            auth,
            settings,
            hlc,
            stats: CrdtStats::default(),
            commits: ConsensusMetrics::new("crdt"),
            metrics: CrdtMetrics::default(),
            ops: ops_tx,
            remote: remote_tx,
            synced_peers: Mutex::new(HashSet::new()),
            changes: broadcast::channel(CHANGE_BUFFER).0,
        });
        let writer = tokio::spawn(writer_loop(inner.clone(), ops_rx, remote_rx, stop_rx.clone()));
        let syncer = tokio::spawn(sync_loop(inner.clone(), stop_rx));
        Ok(CrdtConsensus { inner, stop, tasks: Mutex::new(vec![writer, syncer]) })
    }

    /// The engine's counters.
    pub fn stats(&self) -> &CrdtStats {
        &self.inner.stats
    }

    /// Reconciles with `peer` now (pulls every bucket that differs, without a grace period);
    /// returns how many records were applied.
    pub async fn sync_with(&self, peer: &str) -> Result<u64, ConsensusError> {
        sync_round(&self.inner, peer, false).await
    }

    /// Commits `record`, timed and traced as `op` (`pin` or `unpin`).
    async fn timed_commit(&self, op: &'static str, record: Record) -> Result<(), ConsensusError> {
        let span = tracing::info_span!("consensus.commit", engine = "crdt", op, cid = %record.cid);
        let started = Instant::now();
        let result = self.commit(record).instrument(span).await;
        self.inner.commits.commit(op, result.is_ok(), started.elapsed());
        result
    }

    async fn commit(&self, record: Record) -> Result<(), ConsensusError> {
        let (done, wait) = oneshot::channel();
        self.inner.ops.try_send(Op::Local { record: Box::new(record), done }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                ConsensusError::QueueFull { max: self.inner.settings.max_queue_size as u64 }
            }
            mpsc::error::TrySendError::Closed(_) => ConsensusError::ShuttingDown,
        })?;
        wait.await.map_err(|_| ConsensusError::ShuttingDown)?
    }

    fn version(&self) -> Result<Version, ConsensusError> {
        Ok(Version { clock: self.inner.hlc.next()?, author: self.inner.local.as_bytes().to_vec() })
    }
}

impl Consensus for CrdtConsensus {
    fn commit_pin(&self, pin: Pin) -> BoxFuture<'_, Result<(), ConsensusError>> {
        let version = self.version();
        Box::pin(async move { self.timed_commit("pin", Record::pin(pin, version?)).await })
    }

    fn commit_unpin(&self, cid: Cid) -> BoxFuture<'_, Result<(), ConsensusError>> {
        let version = self.version();
        Box::pin(async move { self.timed_commit("unpin", Record::tombstone(cid, version?)).await })
    }

    fn state(&self) -> &Arc<PinStore> {
        &self.inner.store
    }

    fn peers(&self) -> BoxFuture<'_, Result<Vec<String>, ConsensusError>> {
        Box::pin(async move {
            let mut peers = self.inner.network.connected_peers().await;
            peers.push(self.inner.local.clone());
            peers.sort();
            peers.dedup();
            Ok(peers)
        })
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), ConsensusError>> {
        // Any number of peers, no leader: a crdt peer serves writes from the start.
        Box::pin(std::future::ready(Ok(())))
    }

    fn rm_peer(&self, _peer: String) -> BoxFuture<'_, Result<(), ConsensusError>> {
        // crdt has no membership: a peer leaves the peerset when its metrics expire.
        Box::pin(std::future::ready(Ok(())))
    }

    fn handle_rpc(&self, _peer: String, method: String, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        let store = self.inner.store.clone();
        Box::pin(async move {
            match method.as_str() {
                RPC_FINGERPRINTS => {
                    blocking(move || {
                        let fps = store.fingerprints().map_err(|e| e.to_string())?;
                        Ok(fps.concat())
                    })
                    .await
                }
                RPC_RECORDS => {
                    let req: RecordsRequest =
                        serde_json::from_slice(&payload).map_err(|e| format!("bad {RPC_RECORDS} request: {e}"))?;
                    if req.first > req.last || usize::from(req.last) >= BUCKETS {
                        return Err(format!(
                            "bad {RPC_RECORDS} request: bucket range {}..={} is not an ascending range of 0..{BUCKETS}",
                            req.first, req.last
                        ));
                    }
                    blocking(move || {
                        let after = req.after.as_deref().map(Cid::parse).transpose().map_err(|e| e.to_string())?;
                        let page = store
                            .bucket_records(req.first, req.last, after.as_ref(), req.limit.min(PAGE_RECORDS))
                            .map_err(|e| e.to_string())?;
                        let answer = RecordsPage {
                            records: page.records.iter().map(WireRecord::from_record).collect(),
                            next: page.next.map(|c| c.to_string()),
                        };
                        serde_json::to_vec(&answer).map_err(|e| e.to_string())
                    })
                    .await
                }
                other => Err(format!("unknown crdt method {other}")),
            }
        })
    }

    fn rpc_methods(&self) -> &'static [&'static str] {
        RPC_METHODS
    }

    fn changes(&self) -> broadcast::Receiver<PinChange> {
        self.inner.changes.subscribe()
    }

    fn topics(&self) -> Vec<String> {
        vec![self.inner.topic.clone()]
    }

    fn handle_broadcast(&self, source: String, data: Vec<u8>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let inner = &self.inner;
            if source == inner.local {
                return;
            }
            let delta: Delta = match serde_json::from_slice(&data) {
                Ok(d) => d,
                Err(e) => {
                    inner.metrics.delta_received("invalid");
                    tracing::warn!(%source, "undecodable crdt delta: {e}");
                    return;
                }
            };
            let records = match delta.into_records(&source) {
                Ok(r) => r,
                Err(why) => {
                    inner.stats.deltas_refused.fetch_add(1, Ordering::Relaxed);
                    inner.metrics.delta_received("refused");
                    tracing::warn!(%source, "refused crdt delta: {why}");
                    return;
                }
            };
            if !inner.auth.may_write(&source).await {
                inner.stats.deltas_refused.fetch_add(1, Ordering::Relaxed);
                inner.metrics.delta_received("refused");
                tracing::warn!(%source, records = records.len(), "refused crdt delta: the author may not write the pinset");
                return;
            }
            // A clock from the far future would win every later write and exhaust this
            // peer's clock: the whole delta is refused, as for a foreign author.
            if let Some(Err(why)) = records.iter().map(|r| Hlc::admit(r.version.clock)).find(Result::is_err) {
                inner.stats.deltas_refused.fetch_add(1, Ordering::Relaxed);
                inner.metrics.delta_received("refused");
                tracing::warn!(%source, "refused crdt delta: {why}");
                return;
            }
            if let Some(max) = records.iter().map(|r| r.version.clock).max() {
                inner.hlc.observe(max);
            }
            if inner.remote.try_send(Op::Remote { records, synced: false, done: None }).is_err() {
                inner.stats.deltas_dropped.fetch_add(1, Ordering::Relaxed);
                inner.metrics.delta_received("dropped");
                tracing::debug!(%source, "crdt apply queue full; anti-entropy will catch up");
            } else {
                inner.metrics.delta_received("queued");
            }
        })
    }

    fn register_metrics(&self, telemetry: &Telemetry) {
        telemetry.register(|registry| {
            self.inner.commits.register(registry);
            self.inner.metrics.register(registry);
        });
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async move {
            let _ = self.stop.send(true);
            let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
            for task in tasks {
                let _ = task.await;
            }
            Ok(())
        })
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| format!("store task failed: {e}"))?
}

/// The single store writer: group-commits queued local writes and received records, acks the
/// local ones once durable, and broadcasts them (batched when configured).
async fn writer_loop(
    inner: Arc<Inner>,
    mut ops: mpsc::Receiver<Op>,
    mut remote: mpsc::Receiver<Op>,
    mut stop: watch::Receiver<bool>,
) {
    let mut outgoing: Vec<Record> = Vec::new();
    let mut oldest: Option<Instant> = None;
    loop {
        let deadline = match (inner.settings.batching, oldest) {
            (Some(b), Some(t)) => Some(t + b.max_batch_age),
            _ => None,
        };
        let first = tokio::select! {
            biased;
            op = ops.recv() => op,
            op = remote.recv() => op,
            _ = sleep_until(deadline) => {
                broadcast(&inner, std::mem::take(&mut outgoing)).await;
                oldest = None;
                continue;
            }
            _ = stop.changed() => None,
        };
        let Some(first) = first else { break };
        let mut group = vec![first];
        // Alternate between the queues so a stream of local writes cannot starve deltas.
        while group.len() < MAX_GROUP {
            let mut progress = false;
            if let Ok(op) = ops.try_recv() {
                group.push(op);
                progress = true;
            }
            if let Ok(op) = remote.try_recv() {
                group.push(op);
                progress = true;
            }
            if !progress {
                break;
            }
        }
        let written = apply_group(&inner, group).await;
        if !written.is_empty() {
            oldest.get_or_insert_with(Instant::now);
            outgoing.extend(written);
        }
        let flush = match inner.settings.batching {
            None => true,
            Some(b) => outgoing.len() >= b.max_batch_size,
        };
        if flush && !outgoing.is_empty() {
            broadcast(&inner, std::mem::take(&mut outgoing)).await;
            oldest = None;
        }
    }
    // Clean shutdown: everything queued is written and acknowledged, and the pending batch is
    // broadcast, as IPFS Cluster commits its pending batch.
    ops.close();
    remote.close();
    let mut group = Vec::new();
    while let Ok(op) = ops.try_recv() {
        group.push(op);
    }
    while let Ok(op) = remote.try_recv() {
        group.push(op);
    }
    outgoing.extend(apply_group(&inner, group).await);
    broadcast(&inner, outgoing).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Writes one group in one transaction; returns the local records written (to broadcast).
async fn apply_group(inner: &Arc<Inner>, group: Vec<Op>) -> Vec<Record> {
    if group.is_empty() {
        return Vec::new();
    }
    let store = inner.store.clone();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        let outcome = (|| {
            let mut w = store.begin()?;
            let mut applied = Vec::with_capacity(group.len());
            for op in &group {
                match op {
                    Op::Local { record, .. } => applied.push(vec![w.merge(record)?]),
                    Op::Remote { records, .. } => {
                        applied.push(records.iter().map(|r| w.merge(r)).collect::<Result<Vec<_>, _>>()?)
                    }
                }
            }
            w.commit()?;
            Ok::<_, cairn_state::StoreError>(applied)
        })();
        (group, outcome)
    })
    .await;
    let (group, outcome) = match result {
        Ok(r) => r,
        Err(e) => {
            // The closure owned the group; its acks were dropped, so waiters see ShuttingDown.
            tracing::error!("crdt store writer panicked: {e}");
            return Vec::new();
        }
    };
    let mut written = Vec::new();
    match outcome {
        Ok(applied) => {
            inner.metrics.store_commit(started.elapsed());
            for (op, applied) in group.into_iter().zip(applied) {
                match op {
                    Op::Local { record, done } => {
                        inner.stats.local_writes.fetch_add(1, Ordering::Relaxed);
                        inner.announce(&record);
                        let _ = done.send(Ok(()));
                        written.push(*record);
                    }
                    Op::Remote { records, synced, done } => {
                        for (record, _) in records.iter().zip(&applied).filter(|(_, a)| **a) {
                            inner.announce(record);
                        }
                        let n = applied.iter().filter(|a| **a).count() as u64;
                        let counter = if synced {
                            &inner.stats.synced_records_applied
                        } else {
                            &inner.stats.delta_records_applied
                        };
                        counter.fetch_add(n, Ordering::Relaxed);
                        inner.metrics.records_applied(synced, n);
                        if let Some(done) = done {
                            let _ = done.send(());
                        }
                    }
                }
            }
        }
        Err(e) => {
            tracing::error!("crdt store write failed: {e}");
            let reason = e.to_string();
            for op in group {
                if let Op::Local { done, .. } = op {
                    let _ = done.send(Err(ConsensusError::Refused(format!("pinset write failed: {reason}"))));
                }
            }
        }
    }
    written
}

async fn broadcast(inner: &Arc<Inner>, records: Vec<Record>) {
    if records.is_empty() {
        return;
    }
    inner.metrics.records_broadcast.inc_by(records.len() as u64);
    for data in Delta::encode_chunks(&records, MAX_DELTA_BYTES) {
        match inner.network.publish(&inner.topic, data).await {
            Ok(()) => {
                inner.metrics.broadcasts.inc();
            }
            Err(e) => {
                inner.metrics.broadcast_errors.inc();
                // No subscribed peer yet, or a transient error: anti-entropy delivers it later.
                tracing::debug!("crdt delta not broadcast: {e}");
            }
        }
    }
}

/// Reconciles periodically, and at once with every newly connected trusted peer.
async fn sync_loop(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let tick = Duration::from_secs(1).min(inner.settings.sync_interval);
    let mut last_round = Instant::now();
    let mut last_repair = Instant::now();
    let mut rotation = 0usize;
    // Peers whose last round failed (down, or not a cluster peer at all, like a client that
    // serves no RPC) are skipped for a while instead of being retried every tick.
    let mut failing: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => return,
        }
        let connected = inner.network.connected_peers().await;
        // A peer that disconnected is forgotten here too: when it comes back it is fresh.
        failing.retain(|peer, until| *until > Instant::now() && connected.contains(peer));
        let mut trusted = Vec::new();
        for peer in &connected {
            if *peer != inner.local && !failing.contains_key(peer) && inner.auth.may_write(peer).await {
                trusted.push(peer.clone());
            }
        }
        // Forget peers that left, so a reconnection triggers a fresh sync.
        let fresh: Vec<String> = {
            let mut synced = inner.synced_peers.lock().unwrap_or_else(|p| p.into_inner());
            synced.retain(|p| connected.contains(p));
            trusted.iter().filter(|p| !synced.contains(*p)).cloned().collect()
        };
        let mut partners: BTreeSet<String> = fresh.into_iter().collect();
        let repair = last_repair.elapsed() >= inner.settings.repair_interval;
        if repair {
            partners.extend(trusted.iter().cloned());
            last_repair = Instant::now();
        } else if last_round.elapsed() >= inner.settings.sync_interval && !trusted.is_empty() {
            // A few partners per round, rotating, so a large cluster does not sync n².
            for i in 0..trusted.len().min(3) {
                partners.insert(trusted[(rotation + i) % trusted.len()].clone());
            }
            rotation = rotation.wrapping_add(1);
            last_round = Instant::now();
        }
        for peer in partners {
            match sync_round(&inner, &peer, true).await {
                Ok(n) => {
                    inner.synced_peers.lock().unwrap_or_else(|p| p.into_inner()).insert(peer.clone());
                    if n > 0 {
                        tracing::info!(%peer, records = n, "anti-entropy applied records");
                    }
                }
                Err(e) => {
                    tracing::debug!(%peer, "anti-entropy round failed: {e}");
                    failing.insert(peer.clone(), Instant::now() + FAILED_PEER_BACKOFF);
                }
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

async fn fingerprints_of(inner: &Inner, peer: &str) -> Result<Vec<[u8; 16]>, ConsensusError> {
    let net = |reason: String| ConsensusError::Network { peer: peer.to_string(), reason };
    let raw = inner.network.call(peer, RPC_FINGERPRINTS, Vec::new()).await.map_err(net)?;
    if raw.len() != BUCKETS * 16 {
        return Err(net(format!("fingerprints answer has {} bytes, expected {}", raw.len(), BUCKETS * 16)));
    }
    Ok(raw.chunks_exact(16).map(|c| c.try_into().unwrap_or([0; 16])).collect())
}

async fn differing(inner: &Inner, peer: &str) -> Result<Vec<u16>, ConsensusError> {
    let theirs = fingerprints_of(inner, peer).await?;
    let store = inner.store.clone();
    let ours =
        blocking(move || store.fingerprints().map_err(|e| e.to_string())).await.map_err(ConsensusError::Refused)?;
    Ok((0..BUCKETS).filter(|&b| ours[b] != theirs[b]).map(|b| b as u16).collect())
}

/// One reconciliation with `peer` (see [`reconcile`]), counted and traced.
async fn sync_round(inner: &Arc<Inner>, peer: &str, grace: bool) -> Result<u64, ConsensusError> {
    inner.stats.sync_rounds.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("crdt.sync", %peer, records = tracing::field::Empty);
    let result = reconcile(inner, peer, grace).instrument(span.clone()).await;
    inner.metrics.sync_round(result.is_ok());
    if let Ok(n) = &result {
        span.record("records", n);
    }
    result
}

/// One reconciliation with `peer`: compare fingerprints, pull the differing buckets. With
/// `grace`, buckets that differ only because deltas are in flight are left alone.
async fn reconcile(inner: &Arc<Inner>, peer: &str, grace: bool) -> Result<u64, ConsensusError> {
    let mut buckets = differing(inner, peer).await?;
    if buckets.is_empty() {
        return Ok(0);
    }
    if grace && buckets.len() <= FAR_BEHIND_BUCKETS {
        tokio::time::sleep(inner.settings.sync_grace).await;
        let again: HashSet<u16> = differing(inner, peer).await?.into_iter().collect();
        buckets.retain(|b| again.contains(b));
        if buckets.is_empty() {
            return Ok(0);
        }
    }
    inner.metrics.buckets_pulled.inc_by(buckets.len() as u64);
    let before = inner.stats.synced_records_applied.load(Ordering::Relaxed);
    let mut trusted_authors: HashMap<Vec<u8>, bool> = HashMap::new();
    for (first, last) in ranges(&buckets) {
        pull_range(inner, peer, first, last, &mut trusted_authors).await?;
    }
    Ok(inner.stats.synced_records_applied.load(Ordering::Relaxed).saturating_sub(before))
}

/// Consecutive buckets as inclusive ranges.
fn ranges(buckets: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &b in buckets {
        match out.last_mut() {
            Some((_, last)) if b > 0 && *last == b - 1 => *last = b,
            _ => out.push((b, b)),
        }
    }
    out
}

/// Pulls every record of buckets `first..=last` from `peer` in pages, fetching the next page
/// while the current one is written.
async fn pull_range(
    inner: &Arc<Inner>,
    peer: &str,
    first: u16,
    last: u16,
    trusted_authors: &mut HashMap<Vec<u8>, bool>,
) -> Result<(), ConsensusError> {
    let net = |reason: String| ConsensusError::Network { peer: peer.to_string(), reason };
    let mut after: Option<String> = None;
    let mut pending: Option<oneshot::Receiver<()>> = None;
    loop {
        let request = RecordsRequest { first, last, after: after.clone(), limit: PAGE_RECORDS };
        let payload = serde_json::to_vec(&request).map_err(|e| net(e.to_string()))?;
        let raw = inner.network.call(peer, RPC_RECORDS, payload).await.map_err(net)?;
        let page: RecordsPage = serde_json::from_slice(&raw).map_err(|e| net(format!("bad records page: {e}")))?;
        // Each page must move forward, or a peer could keep this loop (and task) busy for ever.
        if let Some(next) = &page.next
            && (page.records.is_empty() || after.as_deref() == Some(next.as_str()))
        {
            return Err(net(format!("records page makes no progress (next: {next})")));
        }
        let mut records = Vec::with_capacity(page.records.len());
        let mut too_far_ahead: Option<ClockError> = None;
        for wire in page.records {
            let record = wire.into_record().map_err(|e| net(format!("bad record: {e}")))?;
            // A record is applied only if its author may write, whoever relays it; a record
            // without an author (an unversioned local write) counts as the relaying peer's.
            let author =
                if record.version.author.is_empty() { peer.as_bytes().to_vec() } else { record.version.author.clone() };
            let allowed = match trusted_authors.get(&author) {
                Some(allowed) => *allowed,
                None => {
                    let name = String::from_utf8_lossy(&author).into_owned();
                    let allowed = inner.auth.may_write(&name).await;
                    trusted_authors.insert(author, allowed);
                    allowed
                }
            };
            let admitted = Hlc::admit(record.version.clock);
            if allowed && admitted.is_ok() {
                records.push(record);
            } else {
                if let Err(why) = admitted {
                    too_far_ahead.get_or_insert(why);
                }
                inner.stats.synced_records_refused.fetch_add(1, Ordering::Relaxed);
                inner.metrics.sync_records_refused.inc();
            }
        }
        if let Some(why) = too_far_ahead {
            tracing::warn!(%peer, "anti-entropy refused records: {why}");
        }
        if let Some(max) = records.iter().map(|r| r.version.clock).max() {
            inner.hlc.observe(max);
        }
        // One page in the writer's queue at a time bounds memory; the next fetch overlaps it.
        if let Some(previous) = pending.take() {
            let _ = previous.await;
        }
        if !records.is_empty() {
            let (done, wait) = oneshot::channel();
            inner
                .remote
                .send(Op::Remote { records, synced: true, done: Some(done) })
                .await
                .map_err(|_| ConsensusError::ShuttingDown)?;
            pending = Some(wait);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if let Some(previous) = pending {
        let _ = previous.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_group_consecutive_buckets() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), vec![(1, 3), (7, 7), (9, 10)]);
        assert_eq!(ranges(&[0]), vec![(0, 0)]);
        assert!(ranges(&[]).is_empty());
    }

    #[test]
    fn topic_is_per_cluster_name_and_versioned() {
        assert_eq!(topic_for("ipfs-cluster"), "/cairn/crdt/1/ipfs-cluster");
        assert_ne!(topic_for("a"), topic_for("b"));
    }
}
