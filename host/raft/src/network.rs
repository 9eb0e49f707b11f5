//! Raft RPCs over [`PeerNetwork::call`]: the client side openraft uses to reach peers, and the
//! server side [`RaftConsensus::handle_rpc`](crate::RaftConsensus) hands incoming calls to.
//!
//! Bodies are JSON (`serde_json`) of openraft's request types, and answers are JSON of
//! `Result<response, RaftError>`, so a remote refusal reaches openraft as a typed error. A
//! snapshot chunk is framed instead (`u32` BE length ‖ JSON of the request without its data ‖
//! the raw bytes): JSON would spell each byte as a number.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cairn_consensus::PeerNetwork;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{Raft, RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::{PeerNode, TypeConfig};

/// Appends entries to a follower's log (and heartbeats).
pub const APPEND_ENTRIES: &str = "Raft.AppendEntries";
/// Asks for a vote.
pub const VOTE: &str = "Raft.Vote";
/// Sends one chunk of a snapshot.
pub const INSTALL_SNAPSHOT: &str = "Raft.InstallSnapshot";
/// Hands a commit or a membership change to the leader.
pub const FORWARD: &str = "Raft.Forward";

type NodeId = u64;

/// A failed call, as an error type openraft can carry.
#[derive(Debug)]
struct CallFailed(String);

impl fmt::Display for CallFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for CallFailed {}

/// openraft's network factory: one client per target peer, all over the same [`PeerNetwork`].
pub(crate) struct Network {
    net: Arc<dyn PeerNetwork>,
    timeout: Duration,
}

impl Network {
    /// Calls go through `net`, each bounded by `timeout` (`network_timeout`).
    pub(crate) fn new(net: Arc<dyn PeerNetwork>, timeout: Duration) -> Self {
        Network { net, timeout }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> PeerClient {
        PeerClient { net: self.net.clone(), peer: node.peer_id.clone(), target, timeout: self.timeout }
    }
}

/// Sends raft RPCs to one peer.
pub(crate) struct PeerClient {
    net: Arc<dyn PeerNetwork>,
    peer: String,
    target: NodeId,
    timeout: Duration,
}

impl PeerClient {
    async fn call<T, E>(&self, method: &str, payload: Vec<u8>) -> Result<T, RPCError<NodeId, PeerNode, E>>
    where
        T: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        let answer = match tokio::time::timeout(self.timeout, self.net.call(&self.peer, method, payload)).await {
            Err(_) => {
                let why = CallFailed(format!("{method} to {} got no answer within {:?}", self.peer, self.timeout));
                return Err(RPCError::Network(NetworkError::new(&why)));
            }
            // Unreachable (not a plain network error) so that openraft backs off from a peer
            // that is down instead of retrying at full speed.
            Ok(Err(reason)) => return Err(RPCError::Unreachable(Unreachable::new(&CallFailed(reason)))),
            Ok(Ok(answer)) => answer,
        };
        let decoded: Result<T, E> = serde_json::from_slice(&answer).map_err(|e| {
            RPCError::Network(NetworkError::new(&CallFailed(format!(
                "undecodable {method} answer from {}: {e}",
                self.peer
            ))))
        })?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        self.call(APPEND_ENTRIES, to_json(&rpc)).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(INSTALL_SNAPSHOT, encode_snapshot_chunk(rpc)).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        self.call(VOTE, to_json(&rpc)).await
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // openraft's messages are plain structs; pins were encoded once already by the store.
    serde_json::to_vec(value).unwrap_or_default()
}

fn encode_snapshot_chunk(mut rpc: InstallSnapshotRequest<TypeConfig>) -> Vec<u8> {
    let data = std::mem::take(&mut rpc.data);
    let header = to_json(&rpc);
    let mut out = Vec::with_capacity(4 + header.len() + data.len());
    out.extend_from_slice(&u32::try_from(header.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    out
}

fn decode_snapshot_chunk(payload: &[u8]) -> Result<InstallSnapshotRequest<TypeConfig>, String> {
    let (len, rest) = payload.split_first_chunk::<4>().ok_or("snapshot chunk shorter than its frame")?;
    let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|e| e.to_string())?;
    if rest.len() < len {
        return Err("snapshot chunk shorter than its header".into());
    }
    let (header, data) = rest.split_at(len);
    let mut rpc: InstallSnapshotRequest<TypeConfig> =
        serde_json::from_slice(header).map_err(|e| format!("snapshot chunk header: {e}"))?;
    rpc.data = data.to_vec();
    Ok(rpc)
}

fn decode<T: DeserializeOwned>(method: &str, payload: &[u8]) -> Result<T, String> {
    serde_json::from_slice(payload).map_err(|e| format!("malformed {method} request: {e}"))
}

/// Serves an incoming raft protocol call (not `Raft.Forward`, which the engine serves).
pub(crate) async fn serve(raft: &Raft<TypeConfig>, method: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
    match method {
        APPEND_ENTRIES => Ok(to_json(&raft.append_entries(decode(method, payload)?).await)),
        VOTE => Ok(to_json(&raft.vote(decode(method, payload)?).await)),
        INSTALL_SNAPSHOT => Ok(to_json(&raft.install_snapshot(decode_snapshot_chunk(payload)?).await)),
        other => Err(format!("unknown raft method {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_chunk_frame_round_trips_and_rejects_short_input() {
        assert!(decode_snapshot_chunk(&[0, 0]).is_err());
        assert!(decode_snapshot_chunk(&[0, 0, 0, 9, b'{']).is_err());
        assert!(decode_snapshot_chunk(&[0, 0, 0, 2, b'{', b'}']).is_err());
        let rpc = InstallSnapshotRequest::<TypeConfig> {
            vote: openraft::Vote::new(3, 7),
            meta: Default::default(),
            offset: 10,
            data: vec![0, 1, 2, 255],
            done: true,
        };
        let back = decode_snapshot_chunk(&encode_snapshot_chunk(rpc.clone())).expect("decodes");
        assert_eq!(back, rpc);
    }
}
