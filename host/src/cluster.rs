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

/// IPFS Cluster's `ID` object (the fields this peer can fill so far).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerInfo {
    pub id: String,
    pub addresses: Vec<String>,
    pub cluster_peers: Vec<String>,
    pub version: String,
    pub commit: String,
    pub rpc_protocol_version: String,
    pub error: String,
    pub peername: String,
}

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
        }
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

    /// Attach the allocator.
    pub fn attach_allocator(&self, allocator: crate::allocate::Allocator) {
        let _ = self.allocator.set(allocator);
    }

    fn consensus(&self) -> Result<&Arc<dyn Consensus>, String> {
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
            let source = source.ok_or_else(|| format!("pin_update: the source pin is not part of the pinset"))?;
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
    async fn unpin(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
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

    /// This peer's `ID`. Its `cluster_peers` is the peerset as IPFS Cluster's crdt mode
    /// defines it: this peer plus every peer with a valid `ping` metric. (Before the monitor
    /// runs, the connected peers except `caller`, since a `cairn` client is not a peer.)
    pub async fn id(&self, caller: Option<PeerId>) -> Result<PeerInfo, String> {
        let swarm = self.swarm.get().ok_or("the swarm is not running yet")?;
        let me = swarm.local_peer_id();
        let addresses = swarm.listen_addrs().await.map_err(|e| e.to_string())?;
        let mut peers: Vec<String> = match self.monitor.get() {
            Some(monitor) => monitor.latest_metrics("ping").into_iter().map(|m| m.peer).collect(),
            None => {
                let connected = swarm.connected_peers().await.map_err(|e| e.to_string())?;
                connected.iter().filter(|p| Some(**p) != caller).map(PeerId::to_string).collect()
            }
        };
        peers.push(me.to_string());
        peers.sort();
        peers.dedup();
        Ok(PeerInfo {
            id: me.to_string(),
            addresses: addresses.iter().map(|a| format!("{a}/p2p/{me}")).collect(),
            cluster_peers: peers,
            version: VERSION.to_string(),
            commit: String::new(),
            rpc_protocol_version: cairn_swarm::RPC_PROTOCOL.to_string(),
            error: String::new(),
            peername: self.peername.clone(),
        })
    }
}

impl RpcHandler for ClusterRpc {
    fn handle<'a>(&'a self, peer: PeerId, method: &'a str, payload: Vec<u8>) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let json = match method {
                "Cluster.ID" => serde_json::to_vec(&self.id(Some(peer)).await?),
                "Cluster.Version" => serde_json::to_vec(&Version { version: VERSION.to_string() }),
                "Cluster.Pin" => return self.pin_rpc(&payload).await,
                "Cluster.Unpin" => return self.unpin(&payload).await,
                "Cluster.PinGet" => return self.pin_get(&payload).await,
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
