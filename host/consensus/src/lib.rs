//! Cairn's consensus: how the peers agree on the pinset.
//!
//! [`Consensus`] is what the rest of the peer sees (commit a pin or an unpin, read the
//! pinset, the peer set, readiness); two engines implement it: [`crdt`] (the default; any
//! number of peers, writes merged by last-writer-wins, trust decided by the authorizer
//! plugin) and raft (crate `cairn-raft`). Engines talk to other peers only through
//! [`PeerNetwork`], so they run over the libp2p swarm in the daemon and over channels in tests.

use std::sync::Arc;

use cairn_state::{Cid, Pin, PinStore, StoreError};
use futures::future::BoxFuture;
use tokio::sync::broadcast;

pub mod crdt;

/// Why a consensus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// The durable store failed; the operation was not acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many updates are waiting to be written or broadcast (back-pressure).
    #[error("consensus queue is full ({max} pending updates, `max_queue_size`); retry later")]
    QueueFull {
        /// The configured limit.
        max: u64,
    },
    /// No leader was elected in time (raft).
    #[error("no raft leader after {waited_ms} ms (`wait_for_leader_timeout`)")]
    NoLeader {
        /// How long this peer waited.
        waited_ms: u64,
    },
    /// A call to another peer failed.
    #[error("consensus call to peer {peer} failed: {reason}")]
    Network {
        /// The peer called.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The engine refused the operation (with the reason).
    #[error("{0}")]
    Refused(String),
    /// The engine is shutting down.
    #[error("consensus is shutting down")]
    ShuttingDown,
    /// No clock value can version the write (crdt).
    #[error(transparent)]
    Clock(#[from] crdt::ClockError),
}

/// A change the engine applied to the pinset, in apply order per CID.
#[derive(Debug, Clone, PartialEq)]
pub enum PinChange {
    /// The pinset has this pin (new, or an update of its CID).
    Pinned(Box<Pin>),
    /// The CID left the pinset.
    Unpinned(Cid),
}

/// How many changes may wait for a slow subscriber before it lags (and must resync from
/// [`Consensus::state`]).
pub const CHANGE_BUFFER: usize = 65_536;

/// How the engines reach other peers. The daemon implements it on the swarm (request/response
/// RPC and gossipsub); tests implement it on channels.
pub trait PeerNetwork: Send + Sync + 'static {
    /// This peer's id (base58).
    fn local_peer(&self) -> String;
    /// Calls `method` on `peer` and returns its answer.
    fn call(&self, peer: &str, method: &str, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>>;
    /// Broadcasts `data` on `topic` (best effort; crdt only).
    fn publish(&self, topic: &str, data: Vec<u8>) -> BoxFuture<'_, Result<(), String>>;
    /// The peers currently reachable (for anti-entropy partners).
    fn connected_peers(&self) -> BoxFuture<'_, Vec<String>>;
}

/// The pinset agreement every engine provides.
pub trait Consensus: Send + Sync + 'static {
    /// Commits `pin` (a new pin or an update of the same CID). Returns once the pin is durable
    /// on this peer (crdt) or committed by a quorum (raft): an acknowledged pin survives
    /// `kill -9` of any peer.
    fn commit_pin(&self, pin: Pin) -> BoxFuture<'_, Result<(), ConsensusError>>;
    /// Commits the removal of `cid` from the pinset, with the same guarantee.
    fn commit_unpin(&self, cid: Cid) -> BoxFuture<'_, Result<(), ConsensusError>>;
    /// The local copy of the pinset; read it with [`PinStore::get`], [`PinStore::for_each`] or
    /// [`PinStore::page`] (streaming, never a full load).
    fn state(&self) -> &Arc<PinStore>;
    /// The peers taking part in consensus, this peer included (raft: the voters; crdt: the
    /// peers it currently syncs with).
    fn peers(&self) -> BoxFuture<'_, Result<Vec<String>, ConsensusError>>;
    /// Resolves when the engine can serve commits (raft: a leader is known).
    fn ready(&self) -> BoxFuture<'_, Result<(), ConsensusError>>;
    /// Removes `peer` from the consensus peer set (raft membership; crdt: nothing to do).
    fn rm_peer(&self, peer: String) -> BoxFuture<'_, Result<(), ConsensusError>>;
    /// Serves an incoming consensus RPC (`method` is one of the engine's methods, which the
    /// daemon routes here after the authorizer allowed the caller).
    fn handle_rpc(&self, peer: String, method: String, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>>;
    /// The RPC methods [`handle_rpc`](Self::handle_rpc) serves, for routing.
    fn rpc_methods(&self) -> &'static [&'static str];
    /// Changes applied to the pinset from now on (local commits and other peers' updates).
    /// A receiver that lags has missed changes and should re-read the whole state.
    fn changes(&self) -> broadcast::Receiver<PinChange> {
        broadcast::channel(1).1
    }
    /// The pubsub topics whose messages the daemon hands to [`handle_broadcast`](Self::handle_broadcast).
    fn topics(&self) -> Vec<String> {
        Vec::new()
    }
    /// Handles a pubsub message on one of [`topics`](Self::topics), published by `source`
    /// (the message's signed author, not the relaying peer).
    fn handle_broadcast(&self, source: String, data: Vec<u8>) -> BoxFuture<'_, ()> {
        let _ = (source, data);
        Box::pin(std::future::ready(()))
    }
    /// Flushes pending work (batched updates) and stops background tasks.
    fn shutdown(&self) -> BoxFuture<'_, Result<(), ConsensusError>>;
    /// Adds the engine's metric families (commits, and the engine's own figures) to
    /// `telemetry`. Call once. The engine records them from its start either way.
    fn register_metrics(&self, telemetry: &cairn_telemetry::Telemetry) {
        let _ = telemetry;
    }
}
