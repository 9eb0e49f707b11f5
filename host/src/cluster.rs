//! The peer's RPC surface on the swarm: the methods it serves, the peer action each one is
//! for (what the peer-authorizer plugin decides), and their handlers. Every incoming call is
//! authorized by the plugin before dispatch; calls a peer makes to itself are not.

use std::sync::{Arc, OnceLock};

use cairn_consensus::Consensus;
use cairn_policy::types::{PeerAction, PeerDecision, PeerRequest};
use cairn_policy::{AuthorizerPlugin, PluginSlot};
use cairn_state::{Cid, Pin, PinMode, Timestamp};
use cairn_swarm::{PeerId, RpcAuthorizer, RpcHandler, SwarmHandle};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// This peer's version, as `Cluster.Version` and `/version` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The peer action an RPC method is for. Method names follow IPFS Cluster's RPC services
/// (`Service.Method`); anything unlisted is `other(<method>)`, which the default
/// trusted-peers policy allows only to trusted peers.
pub fn peer_action(method: &str) -> PeerAction {
    match method {
        "Cluster.ID" => PeerAction::Id,
        "Cluster.Version" => PeerAction::Version,
        "Consensus.LogPin" | "Consensus.LogUnpin" | "Consensus.AddPeer" | "Consensus.RmPeer" | "Cluster.Pin"
        | "Cluster.Unpin" => PeerAction::PinsetWrite,
        m if m.starts_with("Raft.") => PeerAction::PinsetWrite,
        "PinTracker.Status"
        | "PinTracker.StatusAll"
        | "PinTracker.Recover"
        | "Cluster.RecoverLocal"
        | "Cluster.RecoverAllLocal"
        | "Cluster.PinGet"
        | "Cluster.Pins"
        | "Cluster.PinsetFingerprints"
        | "Cluster.Links"
        | "Crdt.Fingerprints"
        | "Crdt.Records" => PeerAction::StatusSync,
        "IPFSConnector.BlockStream" => PeerAction::AddContent,
        other => PeerAction::Other(other.to_string()),
    }
}

/// Authorizes incoming RPC calls with the peer-authorizer plugin of service.json. The slot
/// is read per call, so a reloaded plugin applies to the next call.
pub struct PluginRpcAuthorizer(pub Arc<PluginSlot<AuthorizerPlugin>>);

impl RpcAuthorizer for PluginRpcAuthorizer {
    fn authorize<'a>(&'a self, peer: PeerId, method: &'a str) -> BoxFuture<'a, Result<(), String>> {
        let plugin = self.0.current();
        let request = PeerRequest { peer_id: peer.to_string(), action: peer_action(method) };
        Box::pin(async move {
            match plugin.authorize_peer(&request).await {
                PeerDecision::Allow => Ok(()),
                PeerDecision::Deny(reason) => Err(reason),
            }
        })
    }
}

/// IPFS Cluster's error for a CID that is not in the pinset (its API maps this text to 404).
pub const NOT_IN_PINSET: &str = "pin is not part of the pinset";

/// `Cluster.Pins` arguments.
#[derive(Debug, Deserialize, Serialize, Default)]
pub struct PinsPage {
    /// Continue after this CID.
    pub after: Option<String>,
    /// Page size (capped by the store).
    pub limit: Option<usize>,
}

/// `{"cid": "..."}`, the argument of the single-CID methods.
#[derive(Debug, Deserialize, Serialize)]
pub struct CidArg {
    /// The CID.
    pub cid: String,
}

fn cid_arg(method: &str, payload: &[u8]) -> Result<Cid, String> {
    let arg: CidArg = serde_json::from_slice(payload).map_err(|e| format!("{method}: {e}"))?;
    Cid::parse(&arg.cid).map_err(|e| format!("{method}: {e}"))
}

/// Runs a store call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, cairn_state::StoreError> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| format!("store task failed: {e}"))?.map_err(|e| e.to_string())
}

/// IPFS Cluster's `ID` object.
pub type PeerInfo = cairn_api::Id;

/// `{"version": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Version {
    pub version: String,
}

/// Serves the RPC methods that exist so far.
pub struct ClusterRpc {
    peername: String,
    /// Set once the swarm is up; the handler answers from it.
    swarm: OnceLock<SwarmHandle>,
    /// Set once the monitor is up; `PeerMonitor.*` and `Cluster.Alerts` answer from it.
    monitor: OnceLock<crate::monitor::Monitor>,
    /// Set once consensus is up; the pinset methods and the engine's own RPCs go to it.
    consensus: OnceLock<Arc<dyn Consensus>>,
    /// Set once the monitor is up: chooses the peers of new pins.
    allocator: OnceLock<crate::allocate::Allocator>,
    /// Set once the tracker runs: local pin status and recover.
    tracker: OnceLock<cairn_tracker::PinTracker>,
    /// Set once the IPFS connector exists.
    ipfs: OnceLock<Arc<dyn cairn_ipfs::IpfsConnector>>,
    /// Figures the informers publish (the IPFS identity is read from here).
    figures: crate::monitor::PeerFigures,
    /// Whether the consensus is raft (the peerset is then the voters, not the ping metrics).
    raft: std::sync::atomic::AtomicBool,
    /// The raft engine, when raft is the consensus.
    raft_engine: OnceLock<Arc<cairn_raft::RaftConsensus>>,
    /// The peer authorizer.
    peer_authorizer: OnceLock<Arc<PluginSlot<AuthorizerPlugin>>>,
}

impl ClusterRpc {
    /// A handler for a peer called `peername`.
    pub fn new(peername: String) -> Self {
        ClusterRpc {
            peername,
            swarm: OnceLock::new(),
            monitor: OnceLock::new(),
            consensus: OnceLock::new(),
            allocator: OnceLock::new(),
            tracker: OnceLock::new(),
            ipfs: OnceLock::new(),
            figures: crate::monitor::PeerFigures::default(),
            raft: std::sync::atomic::AtomicBool::new(false),
            raft_engine: OnceLock::new(),
            peer_authorizer: OnceLock::new(),
        }
    }

    /// The figures the informers publish (shared with the monitor).
    pub fn figures(&self) -> &crate::monitor::PeerFigures {
        &self.figures
    }

    /// Attach the pin tracker and the IPFS connector.
    pub fn attach_ipfs(&self, tracker: cairn_tracker::PinTracker, ipfs: Arc<dyn cairn_ipfs::IpfsConnector>) {
        let _ = self.tracker.set(tracker);
        let _ = self.ipfs.set(ipfs);
    }

    /// Mark the consensus as raft.
    pub fn set_raft(&self, raft: bool) {
        self.raft.store(raft, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn tracker(&self) -> Result<&cairn_tracker::PinTracker, String> {
        self.tracker.get().ok_or_else(|| "the pin tracker is not running yet".to_string())
    }

    pub(crate) fn ipfs(&self) -> Result<&Arc<dyn cairn_ipfs::IpfsConnector>, String> {
        self.ipfs.get().ok_or_else(|| "the IPFS connector is not running yet".to_string())
    }

    pub(crate) fn state(&self) -> Result<Arc<cairn_state::PinStore>, String> {
        Ok(self.consensus()?.state().clone())
    }

    pub(crate) fn peername(&self) -> &str {
        &self.peername
    }

    pub(crate) fn local_peer(&self) -> String {
        self.swarm.get().map(|s| s.local_peer_id().to_string()).unwrap_or_default()
    }

    /// The IPFS daemon's id and addresses, as last measured.
    pub(crate) fn ipfs_identity(&self) -> (String, Vec<String>) {
        self.figures.ipfs.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
    }

    /// IPFS Cluster's peerset: raft's voters; in crdt this peer plus every peer with a fresh
    /// `ping` metric.
    pub(crate) async fn peerset(&self) -> Vec<String> {
        let mut peers = Vec::new();
        if self.raft.load(std::sync::atomic::Ordering::Relaxed)
            && let Some(consensus) = self.consensus.get()
        {
            peers = consensus.peers().await.unwrap_or_default();
        } else if let Some(monitor) = self.monitor.get() {
            peers = monitor.latest_metrics("ping").into_iter().map(|m| m.peer).collect();
        }
        peers.push(self.local_peer());
        peers.sort();
        peers.dedup();
        peers
    }

    /// Calls `method` on `peer` over the swarm.
    pub(crate) async fn call(&self, peer: PeerId, method: &str, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        let swarm = self.swarm.get().ok_or("the swarm is not running yet")?;
        swarm.rpc(peer, method, payload).await.map_err(|e| e.to_string())
    }

    /// Serves `method` for this peer itself (no authorization: it is this peer asking).
    pub(crate) async fn handle_local(&self, method: &str, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        let me = self.swarm.get().map(|s| s.local_peer_id()).ok_or("the swarm is not running yet")?;
        self.handle(me, method, payload).await
    }

    /// This peer's `ID` with its IPFS daemon's identity.
    pub(crate) async fn api_id(&self) -> Result<cairn_api::Id, String> {
        let mut id = self.id(None).await?;
        // The peers' addresses, as far as the swarm knows them.
        if let Some(swarm) = self.swarm.get()
            && let Ok(known) = swarm.known_peers().await
        {
            for peer in &id.cluster_peers {
                if let Ok(pid) = peer.parse::<PeerId>()
                    && let Some(addrs) = known.get(&pid)
                {
                    id.cluster_peers_addresses.extend(addrs.iter().map(|a| format!("{a}/p2p/{pid}")));
                }
            }
        }
        let (ipfs_id, addresses) = self.ipfs_identity();
        id.ipfs = cairn_api::IpfsId { id: ipfs_id, addresses, error: String::new() };
        if id.ipfs.id.is_empty() {
            id.ipfs.error = "the IPFS daemon has not answered yet".to_string();
        }
        Ok(id)
    }

    /// Resolves an `/ipfs/...` (or `/ipns/`, `/ipld/`) path to a CID with the IPFS daemon.
    pub(crate) async fn resolve(&self, path: &str) -> Result<Cid, String> {
        let cid = self.ipfs()?.resolve(path).await.map_err(|e| e.to_string())?;
        Ok(Cid::from_raw(cid))
    }

    /// Removes `cid` from the pinset; returns the pin removed.
    pub(crate) async fn unpin(&self, cid: Cid) -> Result<Pin, String> {
        let payload = serde_json::to_vec(&CidArg { cid: cid.to_string() }).map_err(|e| e.to_string())?;
        let raw = self.unpin_rpc(&payload).await?;
        serde_json::from_slice(&raw).map_err(|e| e.to_string())
    }

    /// `POST /peers`: raft adds the peer as a voter; crdt has no membership to change.
    pub(crate) async fn add_peer(&self, peer: &str) -> Result<(), String> {
        peer.parse::<PeerId>().map_err(|e| format!("{peer:?} is not a peer id: {e}"))?;
        if !self.raft.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("crdt mode has no membership to change: a peer joins by connecting to the cluster \
                        (`cairn daemon --bootstrap <multiaddr>`)"
                .to_string());
        }
        self.call_consensus_add(peer).await
    }

    /// `DELETE /peers/{peer}`: raft removes the voter; crdt refuses, as IPFS Cluster does.
    pub(crate) async fn remove_peer(&self, peer: &str) -> Result<(), String> {
        peer.parse::<PeerId>().map_err(|e| format!("{peer:?} is not a peer id: {e}"))?;
        if !self.raft.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("crdt mode has no membership to change: a crdt peer leaves the peerset when its metrics \
                        expire"
                .to_string());
        }
        self.consensus()?.rm_peer(peer.to_string()).await.map_err(|e| e.to_string())
    }

    async fn call_consensus_add(&self, peer: &str) -> Result<(), String> {
        let raft = self.raft_engine.get().ok_or("the raft engine is not running")?;
        raft.add_peer(peer.to_string()).await.map_err(|e| e.to_string())
    }

    /// Whether `peer` may write the pinset (for `/health/graph`'s trust links).
    pub(crate) async fn trusts(&self, peer: &str) -> bool {
        if self.raft.load(std::sync::atomic::Ordering::Relaxed) || peer == self.local_peer() {
            return true;
        }
        let Some(authorizer) = self.peer_authorizer.get() else { return false };
        let request = PeerRequest { peer_id: peer.to_string(), action: PeerAction::PinsetWrite };
        matches!(authorizer.current().authorize_peer(&request).await, PeerDecision::Allow)
    }

    pub(crate) fn monitor_alerts(&self) -> Vec<crate::monitor::Alert> {
        self.monitor.get().map(|m| m.alerts()).unwrap_or_default()
    }

    pub(crate) fn monitor_metric_names(&self) -> Vec<String> {
        self.monitor.get().map(|m| m.metric_names()).unwrap_or_default()
    }

    pub(crate) fn monitor_metrics(&self, name: &str) -> Vec<crate::monitor::Metric> {
        self.monitor.get().map(|m| m.latest_metrics(name)).unwrap_or_default()
    }

    /// Attach the raft engine (for `peers add`).
    pub fn attach_raft(&self, raft: Arc<cairn_raft::RaftConsensus>) {
        let _ = self.raft_engine.set(raft);
        self.set_raft(true);
    }

    /// Attach the peer authorizer (for trust links).
    pub fn attach_peer_authorizer(&self, slot: Arc<PluginSlot<AuthorizerPlugin>>) {
        let _ = self.peer_authorizer.set(slot);
    }

    /// Attach the running swarm.
    pub fn attach(&self, swarm: SwarmHandle) {
        let _ = self.swarm.set(swarm);
    }

    /// Attach the running peer monitor.
    pub fn attach_monitor(&self, monitor: crate::monitor::Monitor) {
        let _ = self.monitor.set(monitor);
    }

    /// Attach the running consensus engine.
    pub fn attach_consensus(&self, consensus: Arc<dyn Consensus>) {
        let _ = self.consensus.set(consensus);
    }

    /// The allocator, once attached.
    pub(crate) fn allocator(&self) -> Option<&crate::allocate::Allocator> {
        self.allocator.get()
    }

    /// Attach the allocator.
    pub fn attach_allocator(&self, allocator: crate::allocate::Allocator) {
        let _ = self.allocator.set(allocator);
    }

    pub(crate) fn consensus(&self) -> Result<&Arc<dyn Consensus>, String> {
        self.consensus.get().ok_or_else(|| "consensus is not running yet".to_string())
    }

    /// `Cluster.Pin`: commits a pin and returns it as stored.
    async fn pin_rpc(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let pin: Pin = serde_json::from_slice(payload).map_err(|e| format!("Cluster.Pin: not a pin: {e}"))?;
        let pin = self.pin(pin).await?;
        serde_json::to_vec(&pin).map_err(|e| e.to_string())
    }

    /// IPFS Cluster's `Cluster.Pin`: normalize and check the options, inherit the options and
    /// allocations of a `pin_update` source, allocate (unless the pin carries allocations
    /// already, as an add presets them), stamp the time, commit.
    pub async fn pin(&self, mut pin: Pin) -> Result<Pin, String> {
        let consensus = self.consensus()?;
        if let Some(from) = pin.options.pin_update.clone() {
            let store = consensus.state().clone();
            let source = blocking(move || store.get(&from)).await?;
            let source = source.ok_or_else(|| "pin_update: the source pin is not part of the pinset".to_string())?;
            // The update takes the old pin's options and allocations unless it sets its own.
            if pin.allocations.is_empty() {
                pin.allocations = source.allocations.clone();
            }
            if pin.options.replication_factor_min == 0 && pin.options.replication_factor_max == 0 {
                pin.options.replication_factor_min = source.options.replication_factor_min;
                pin.options.replication_factor_max = source.options.replication_factor_max;
            }
        }
        let existing = {
            let store = consensus.state().clone();
            let cid = pin.cid.clone();
            blocking(move || store.get(&cid)).await?
        };
        if let Some(existing) = &existing {
            if existing.pin_type != pin.pin_type {
                return Err(format!(
                    "cannot re-pin {} with another pin type ({:?} → {:?})",
                    pin.cid, existing.pin_type, pin.pin_type
                ));
            }
            if existing.mode() == PinMode::Recursive && pin.mode() == PinMode::Direct {
                return Err(format!("cannot re-pin {} directly: it is already pinned recursively", pin.cid));
            }
        }
        if let Some(allocator) = self.allocator.get() {
            crate::allocate::normalize(&mut pin, &allocator.settings)?;
            if pin.allocations.is_empty() {
                let current = existing.as_ref().map(|p| p.allocations.clone()).unwrap_or_default();
                pin.allocations = allocator.allocate(&pin, &current, &[]).await?;
            }
        }
        pin.timestamp = Timestamp::now();
        consensus.commit_pin(pin.clone()).await.map_err(|e| e.to_string())?;
        Ok(pin)
    }

    /// `Cluster.Unpin`: removes a pin from the pinset; an unknown CID is IPFS Cluster's error.
    async fn unpin_rpc(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let cid = cid_arg("Cluster.Unpin", payload)?;
        let consensus = self.consensus()?;
        let store = consensus.state().clone();
        let existing = blocking(move || store.get(&cid).map(|p| (cid, p))).await?;
        let (cid, Some(pin)) = existing else { return Err(NOT_IN_PINSET.to_string()) };
        consensus.commit_unpin(cid).await.map_err(|e| e.to_string())?;
        serde_json::to_vec(&pin).map_err(|e| e.to_string())
    }

    /// `Cluster.PinGet`: one pin of the pinset.
    async fn pin_get(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let cid = cid_arg("Cluster.PinGet", payload)?;
        let store = self.consensus()?.state().clone();
        match blocking(move || store.get(&cid)).await? {
            Some(pin) => serde_json::to_vec(&pin).map_err(|e| e.to_string()),
            None => Err(NOT_IN_PINSET.to_string()),
        }
    }

    /// `Cluster.Pins`: one page of the pinset (`{"after": cid?, "limit": n}`).
    async fn pins(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let req: PinsPage = serde_json::from_slice(payload).map_err(|e| format!("Cluster.Pins: {e}"))?;
        let after = req.after.as_deref().map(Cid::parse).transpose().map_err(|e| e.to_string())?;
        let store = self.consensus()?.state().clone();
        let page = blocking(move || store.page(after.as_ref(), req.limit.unwrap_or(1_000))).await?;
        let answer = serde_json::json!({"pins": page.pins, "next": page.next.map(|c| c.to_string())});
        serde_json::to_vec(&answer).map_err(|e| e.to_string())
    }

    /// Re-allocates `pin` without `dead` (kept allocations count as current) and commits it.
    pub(crate) async fn repin_without(&self, mut pin: Pin, dead: &str) -> Result<(), String> {
        let allocator = self.allocator.get().ok_or("the allocator is not running")?;
        let current: Vec<String> = pin.allocations.iter().filter(|p| *p != dead).cloned().collect();
        let allocations = allocator.allocate(&pin, &current, &[dead.to_string()]).await?;
        pin.allocations = allocations;
        pin.timestamp = Timestamp::now();
        self.consensus()?.commit_pin(pin).await.map_err(|e| e.to_string())
    }

    /// This peer's `ID`. Its `cluster_peers` is the peerset as IPFS Cluster's crdt mode
    /// defines it: this peer plus every peer with a valid `ping` metric. (Before the monitor
    /// runs, the connected peers except `caller`, since a `cairn` client is not a peer.)
    pub async fn id(&self, caller: Option<PeerId>) -> Result<PeerInfo, String> {
        let swarm = self.swarm.get().ok_or("the swarm is not running yet")?;
        let me = swarm.local_peer_id();
        let addresses = swarm.listen_addrs().await.map_err(|e| e.to_string())?;
        let peers: Vec<String> = if self.monitor.get().is_some() || self.raft.load(std::sync::atomic::Ordering::Relaxed)
        {
            self.peerset().await
        } else {
            let connected = swarm.connected_peers().await.map_err(|e| e.to_string())?;
            let mut peers: Vec<String> =
                connected.iter().filter(|p| Some(**p) != caller).map(PeerId::to_string).collect();
            peers.push(me.to_string());
            peers.sort();
            peers
        };
        Ok(PeerInfo {
            id: me.to_string(),
            addresses: addresses.iter().map(|a| format!("{a}/p2p/{me}")).collect(),
            cluster_peers: peers,
            version: VERSION.to_string(),
            commit: String::new(),
            rpc_protocol_version: cairn_swarm::RPC_PROTOCOL.to_string(),
            error: String::new(),
            peername: self.peername.clone(),
            ..PeerInfo::default()
        })
    }
}

impl RpcHandler for ClusterRpc {
    fn handle<'a>(&'a self, peer: PeerId, method: &'a str, payload: Vec<u8>) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let json = match method {
                "Cluster.ID" => serde_json::to_vec(&self.api_id().await?),
                "Cluster.Version" => serde_json::to_vec(&Version { version: VERSION.to_string() }),
                "Cluster.Pin" => return self.pin_rpc(&payload).await,
                "Cluster.Unpin" => return self.unpin_rpc(&payload).await,
                "PinTracker.Status" | "PinTracker.Recover" => {
                    let cid = cid_arg(method, &payload)?;
                    let info = self.local_pin_info(&cid, method == "PinTracker.Recover").await?;
                    serde_json::to_vec(&info)
                }
                "PinTracker.StatusAll" | "PinTracker.RecoverAll" => {
                    let args: crate::facade::StatusAllArgs = if payload.is_empty() {
                        Default::default()
                    } else {
                        serde_json::from_slice(&payload).map_err(|e| format!("{method}: {e}"))?
                    };
                    let filter = cairn_api::TrackerFilter::parse(&args.filter).unwrap_or_default();
                    let infos = self.local_status_all(filter, method == "PinTracker.RecoverAll").await?;
                    serde_json::to_vec(&infos)
                }
                "IPFSConnector.RepoGC" => serde_json::to_vec(&self.local_repo_gc().await),
                "Cluster.Links" => {
                    let swarm = self.swarm.get().ok_or("the swarm is not running yet")?;
                    let connected = swarm.connected_peers().await.map_err(|e| e.to_string())?;
                    let (ipfs_id, _) = self.ipfs_identity();
                    let ipfs_peers = match self.ipfs.get() {
                        Some(ipfs) => ipfs.swarm_peers().await.unwrap_or_default(),
                        None => Vec::new(),
                    };
                    let peerset = self.peerset().await;
                    let links = crate::facade::Links {
                        peername: self.peername.clone(),
                        cluster_peers: connected
                            .iter()
                            .map(PeerId::to_string)
                            .filter(|p| peerset.contains(p))
                            .collect(),
                        ipfs_id,
                        ipfs_peers,
                    };
                    serde_json::to_vec(&links)
                }
                "Cluster.PinGet" => return self.pin_get(&payload).await,
                crate::add::BLOCK_STREAM => return self.block_stream(&payload).await,
                crate::apis::REPO_STAT => return self.local_repo_stat().await,
                "Cluster.Pins" => return self.pins(&payload).await,
                "Cluster.PinsetFingerprints" => {
                    // The pinset's bucket fingerprints, whatever the engine: equal answers from
                    // two peers mean identical pinsets (benchmarks and tests compare them).
                    let store = self.consensus()?.state().clone();
                    return blocking(move || store.fingerprints()).await.map(|fps| fps.concat());
                }
                other if self.consensus.get().is_some_and(|c| c.rpc_methods().contains(&other)) => {
                    return self.consensus()?.handle_rpc(peer.to_string(), other.to_string(), payload).await;
                }
                other if crate::monitor::RPC_METHODS.contains(&other) => {
                    let monitor = self.monitor.get().ok_or("the peer monitor is not running yet")?;
                    return monitor
                        .handle_rpc(other, &payload)
                        .unwrap_or_else(|| Err(format!("unknown RPC method {other}")));
                }
                other => return Err(format!("unknown RPC method {other}")),
            };
            json.map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_onto_peer_actions() {
        assert_eq!(peer_action("Cluster.ID"), PeerAction::Id);
        assert_eq!(peer_action("Cluster.Version"), PeerAction::Version);
        assert_eq!(peer_action("Consensus.LogPin"), PeerAction::PinsetWrite);
        assert_eq!(peer_action("PinTracker.StatusAll"), PeerAction::StatusSync);
        assert_eq!(peer_action("IPFSConnector.BlockStream"), PeerAction::AddContent);
        assert_eq!(peer_action("Cluster.PeerAdd"), PeerAction::Other("Cluster.PeerAdd".into()));
        // The monitor's methods are for trusted peers only (the default policy's `other`).
        for method in crate::monitor::RPC_METHODS {
            assert_eq!(peer_action(method), PeerAction::Other(method.to_string()));
        }
    }
}
