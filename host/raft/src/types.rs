//! The openraft type configuration: what a log entry carries and how peers are named.

use std::fmt;

use cairn_state::{Cid, Pin};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

openraft::declare_raft_types!(
    /// Cairn's openraft types: pin operations in the log, libp2p peers as nodes, snapshots as files.
    pub TypeConfig:
        D = PinBatch,
        R = (),
        NodeId = u64,
        Node = PeerNode,
        Entry = openraft::Entry<TypeConfig>,
        // Set explicitly: the default (`Cursor<Vec<u8>>`) would hold a whole snapshot in memory
        // (and the macro names `Cursor` unqualified).
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// One change of the pinset, as carried by a raft log entry.
// Nearly every operation is a pin: boxing it would add an allocation per operation and save
// memory only on the rare unpin.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PinOp {
    /// Add or replace the pin of its CID.
    Pin(Pin),
    /// Remove the pin of this CID.
    Unpin(Cid),
}

/// What one raft log entry carries: the pin operations of concurrent commits, batched.
///
/// openraft 0.9 flushes the log once per client write, one at a time, so one operation per
/// entry would cap throughput at one fsync per pin; a batch shares the flush (and the
/// replication round trip) among every commit that arrived meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PinBatch(pub Vec<PinOp>);

/// A raft member: the libp2p peer id the network dials (openraft's node info).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    /// The peer's base58 id.
    pub peer_id: String,
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.peer_id)
    }
}

/// The openraft node id of a peer: the first 8 bytes of SHA-256 of its base58 id. Stable across
/// restarts and peers without any registry; a collision among a cluster's few peers has
/// probability ~n²/2⁶⁵.
pub fn node_id(peer_id: &str) -> u64 {
    let digest = Sha256::digest(peer_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}
