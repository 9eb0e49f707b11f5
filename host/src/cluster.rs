//! The peer's RPC surface on the swarm: the methods it serves, the peer action each one is
//! for (what the peer-authorizer plugin decides), and their handlers. Every incoming call is
//! authorized by the plugin before dispatch; calls a peer makes to itself are not.

use std::sync::{Arc, OnceLock};

use cairn_policy::types::{PeerAction, PeerDecision, PeerRequest};
use cairn_policy::{AuthorizerPlugin, PluginSlot};
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
        "Consensus.LogPin" | "Consensus.LogUnpin" | "Consensus.AddPeer" | "Consensus.RmPeer" => PeerAction::PinsetWrite,
        "PinTracker.Status"
        | "PinTracker.StatusAll"
        | "PinTracker.Recover"
        | "Cluster.RecoverLocal"
        | "Cluster.RecoverAllLocal" => PeerAction::StatusSync,
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
}

impl ClusterRpc {
    /// A handler for a peer called `peername`.
    pub fn new(peername: String) -> Self {
        ClusterRpc { peername, swarm: OnceLock::new(), monitor: OnceLock::new() }
    }

    /// Attach the running swarm.
    pub fn attach(&self, swarm: SwarmHandle) {
        let _ = self.swarm.set(swarm);
    }

    /// Attach the running peer monitor.
    pub fn attach_monitor(&self, monitor: crate::monitor::Monitor) {
        let _ = self.monitor.set(monitor);
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
