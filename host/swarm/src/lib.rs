//! Cairn's cluster swarm: the libp2p host a Cairn peer uses to talk to the other cluster peers.
//!
//! - Transport: TCP, then the libp2p private network keyed by the cluster secret (when one is
//!   set), then noise and yamux — the stack go-libp2p uses for IPFS Cluster.
//! - Behaviours: identify, ping, gossipsub (signed, strict), the peer RPC
//!   ([`RPC_PROTOCOL`], cbor), mDNS (off unless configured) and `/libp2p-http` (only when
//!   [`SwarmConfig::libp2p_http`] is set: the REST API of a raft peer).
//! - Every incoming RPC passes the host's [`RpcAuthorizer`] before the [`RpcHandler`] sees it.
//! - Bootstrap and remembered peers are redialed with exponential backoff; their addresses are
//!   kept in a peerstore file across restarts.
//!
//! Start one with [`start`] and use the returned [`SwarmHandle`].

// SwarmError carries a PeerId and strings so callers see who and why; it is returned only on
// cold paths (failed dials and calls), so its size does not matter.
#![allow(clippy::result_large_err)]

mod error;
mod node;
pub mod peerstore;
mod rpc;
mod secret;

pub use cairn_libp2p_http::HttpStream;
pub use error::{SecretError, SwarmError};
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};
pub use node::{
    IDENTIFY_PROTOCOL, MAX_PUBSUB_MESSAGE, MAX_RPC_REQUEST, MAX_RPC_RESPONSE, NetworkEvent, SwarmConfig, SwarmHandle,
    SwarmStats, start,
};
pub use rpc::{AllowList, RPC_PROTOCOL, RpcAuthorizer, RpcHandler, RpcRequest, RpcResponse};
pub use secret::ClusterSecret;
