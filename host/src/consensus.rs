//! The daemon's side of consensus: the engines run over the cluster swarm (RPC and gossipsub)
//! and ask the peer-authorizer plugin who may write the pinset.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_consensus::crdt::{Batching, CrdtConsensus, CrdtSettings, WriteAuthorizer};
use cairn_consensus::{Consensus, PeerNetwork};
use cairn_policy::types::{PeerAction, PeerDecision, PeerRequest};
use cairn_policy::{AuthorizerPlugin, PluginSlot};
use cairn_state::PinStore;
use cairn_swarm::{NetworkEvent, PeerId, SwarmHandle};
use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::config::{ConfigDir, CrdtConfig, RaftConfig};

/// The pinset's file name inside the config folder.
pub const PINSET_FILE: &str = "pinset.redb";

/// How often a crdt peer reconciles with its trusted peers (Cairn's addition to
/// `consensus.crdt`; IPFS Cluster re-broadcasts heads every `rebroadcast_interval` instead).
const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// [`PeerNetwork`] over the cluster swarm.
pub struct SwarmNetwork(pub SwarmHandle);

impl PeerNetwork for SwarmNetwork {
    fn local_peer(&self) -> String {
        self.0.local_peer_id().to_string()
    }

    fn call(&self, peer: &str, method: &str, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        let peer = peer.parse::<PeerId>().map_err(|e| format!("{peer:?} is not a peer id: {e}"));
        let method = method.to_string();
        Box::pin(async move { self.0.rpc(peer?, &method, payload).await.map_err(|e| e.to_string()) })
    }

    fn publish(&self, topic: &str, data: Vec<u8>) -> BoxFuture<'_, Result<(), String>> {
        let topic = topic.to_string();
        Box::pin(async move { self.0.publish(&topic, data).await.map_err(|e| e.to_string()) })
    }

    fn connected_peers(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            self.0.connected_peers().await.map(|p| p.iter().map(PeerId::to_string).collect()).unwrap_or_default()
        })
    }
}

/// Asks the peer-authorizer plugin for `pinset-write` (the default plugin: `trusted_peers`).
/// This peer may always write its own pinset.
pub struct PluginWriteAuthorizer {
    /// The peer authorizer's slot (read per call, so a reload applies at once).
    pub slot: Arc<PluginSlot<AuthorizerPlugin>>,
    /// This peer.
    pub local: String,
}

impl WriteAuthorizer for PluginWriteAuthorizer {
    fn may_write(&self, peer: &str) -> BoxFuture<'_, bool> {
        let request = PeerRequest { peer_id: peer.to_string(), action: PeerAction::PinsetWrite };
        Box::pin(async move {
            if request.peer_id == self.local {
                return true;
            }
            matches!(self.slot.current().authorize_peer(&request).await, PeerDecision::Allow)
        })
    }
}

/// Opens the pinset and starts the configured engine (only crdt so far).
pub fn start_crdt(
    dir: &ConfigDir,
    config: &CrdtConfig,
    swarm: &SwarmHandle,
    authorizer: Arc<PluginSlot<AuthorizerPlugin>>,
) -> anyhow::Result<Arc<CrdtConsensus>> {
    let store = Arc::new(open_pinset(dir)?);
    let settings = crdt_settings(config);
    let auth = PluginWriteAuthorizer { slot: authorizer, local: swarm.local_peer_id().to_string() };
    let engine = CrdtConsensus::start(settings, store, Arc::new(SwarmNetwork(swarm.clone())), Arc::new(auth))
        .context("start the crdt consensus")?;
    Ok(Arc::new(engine))
}

/// Opens the pinset and starts the raft engine; `secret_present` is whether the swarm runs
/// a private network (raft refuses to run without one).
pub async fn start_raft(
    dir: &ConfigDir,
    config: &RaftConfig,
    swarm: &SwarmHandle,
    secret_present: bool,
) -> anyhow::Result<Arc<cairn_raft::RaftConsensus>> {
    let store = Arc::new(open_pinset(dir)?);
    let settings = cairn_raft::RaftSettings {
        init_peerset: config.init_peerset.clone(),
        wait_for_leader_timeout: config.wait_for_leader_timeout.0,
        network_timeout: config.network_timeout.0,
        commit_retries: config.commit_retries,
        commit_retry_delay: config.commit_retry_delay.0,
        heartbeat_timeout: config.heartbeat_timeout.0,
        election_timeout: config.election_timeout.0,
        commit_timeout: config.commit_timeout.0,
        max_append_entries: u64::from(config.max_append_entries),
        trailing_logs: config.trailing_logs,
        snapshot_interval: config.snapshot_interval.0,
        snapshot_threshold: config.snapshot_threshold,
        leader_lease_timeout: config.leader_lease_timeout.0,
        // Relative to the config folder, as IPFS Cluster's `<config dir>/raft`.
        data_folder: Some(dir.0.join(config.data_folder.as_deref().unwrap_or("raft"))),
        secret_present,
    };
    let engine = cairn_raft::RaftConsensus::start(settings, store, Arc::new(SwarmNetwork(swarm.clone())))
        .await
        .context("start the raft consensus")?;
    Ok(Arc::new(engine))
}

/// Opens `<config folder>/pinset.redb`.
pub fn open_pinset(dir: &ConfigDir) -> anyhow::Result<PinStore> {
    let path = dir.0.join(PINSET_FILE);
    PinStore::open(&path).with_context(|| format!("open the pinset {}", path.display()))
}

fn crdt_settings(config: &CrdtConfig) -> CrdtSettings {
    let b = &config.batching;
    let batching = (b.max_batch_size > 0 && !b.max_batch_age.0.is_zero())
        .then_some(Batching { max_batch_size: b.max_batch_size as usize, max_batch_age: b.max_batch_age.0 });
    CrdtSettings {
        cluster_name: config.cluster_name.clone(),
        batching,
        max_queue_size: usize::try_from(b.max_queue_size).unwrap_or(usize::MAX).max(1),
        sync_interval: config.sync_interval.map_or(DEFAULT_SYNC_INTERVAL, |d| d.0),
        repair_interval: config.repair_interval.0,
        sync_grace: Duration::from_secs(2),
    }
}

/// Subscribes to the engine's topics and feeds their messages to it. Subscribes to the swarm's
/// events first, so no message published after the subscription is missed.
pub async fn pump_broadcasts(swarm: &SwarmHandle, engine: Arc<dyn Consensus>) -> anyhow::Result<JoinHandle<()>> {
    let mut events = swarm.events();
    let topics = engine.topics();
    for topic in &topics {
        swarm.subscribe(topic).await.with_context(|| format!("subscribe to {topic}"))?;
    }
    Ok(tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(NetworkEvent::Message { source, topic, data }) if topics.contains(&topic) => {
                    let Some(source) = source else {
                        debug!(%topic, "unsigned consensus message dropped");
                        continue;
                    };
                    engine.handle_broadcast(source.to_string(), data).await;
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    // Anti-entropy repairs whatever these carried.
                    warn!("consensus fell behind the swarm and missed {n} events");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }))
}
