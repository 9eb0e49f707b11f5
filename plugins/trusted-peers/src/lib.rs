//! `trusted-peers`: IPFS Cluster's crdt trust model as a peer authorizer.
//!
//! Config: `{"trusted_peers": [...]}` (the `consensus.crdt` key). `"*"` anywhere trusts
//! every peer; a missing, `null` or empty list trusts nobody (the host never asks about
//! itself). Trusted peers may do everything. Untrusted peers get what IPFS Cluster's RPC
//! policy leaves open: ID and Version, plus `Cluster.IDStream` and `Cluster.PeerAdd`
//! (the code opens these too, though its docs list only ID and Version).

use std::collections::HashSet;

use cairn_policy_sdk::types::{ApiRequest, PeerAction, PeerDecision, PeerRequest, RequestDecision};
use cairn_policy_sdk::{Authorizer, denial};
use serde::Deserialize;

/// RPC methods IPFS Cluster's policy opens to untrusted peers besides ID and Version.
const OPEN_METHODS: [&str; 2] = ["Cluster.IDStream", "Cluster.PeerAdd"];

#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    trusted_peers: Option<Vec<String>>,
}

/// The trust list.
pub struct TrustedPeers {
    trust_all: bool,
    trusted: HashSet<String>,
}

impl TrustedPeers {
    fn is_trusted(&self, peer: &str) -> bool {
        self.trust_all || self.trusted.contains(peer)
    }
}

impl Authorizer for TrustedPeers {
    fn from_config(config: &str) -> Result<Self, String> {
        let config: Option<Config> =
            serde_json::from_str(config).map_err(|e| format!("trusted_peers: expected a list of peer ids: {e}"))?;
        let peers = config.unwrap_or_default().trusted_peers.unwrap_or_default();
        if let Some(bad) = peers.iter().find(|p| p.trim().is_empty()) {
            return Err(format!("trusted_peers: {bad:?} is not a peer id"));
        }
        Ok(TrustedPeers { trust_all: peers.iter().any(|p| p == "*"), trusted: peers.into_iter().collect() })
    }

    fn authorize_request(&self, _req: &ApiRequest) -> RequestDecision {
        RequestDecision::Deny(denial(403, "trusted-peers authorizes peer actions only"))
    }

    fn authorize_peer(&self, req: &PeerRequest) -> PeerDecision {
        if self.is_trusted(&req.peer_id) {
            return PeerDecision::Allow;
        }
        match &req.action {
            PeerAction::Id | PeerAction::Version => PeerDecision::Allow,
            PeerAction::Other(method) if OPEN_METHODS.contains(&method.as_str()) => PeerDecision::Allow,
            action => PeerDecision::Deny(format!("peer {} is not trusted for {}", req.peer_id, describe(action))),
        }
    }
}

fn describe(action: &PeerAction) -> String {
    match action {
        PeerAction::Id => "id".into(),
        PeerAction::Version => "version".into(),
        PeerAction::PinsetWrite => "pinset-write".into(),
        PeerAction::StatusSync => "status-sync".into(),
        PeerAction::AddContent => "add-content".into(),
        PeerAction::Other(name) => name.clone(),
    }
}

cairn_policy_sdk::export_authorizer!(TrustedPeers);
