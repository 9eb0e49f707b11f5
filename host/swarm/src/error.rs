//! Typed errors of the swarm crate.

use libp2p::{Multiaddr, PeerId};

/// Everything that can go wrong when building, driving or calling through the swarm.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The cluster secret in the configuration is unusable.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The libp2p transport or a behaviour could not be built.
    #[error("cannot build the cluster swarm: {0}")]
    Build(String),
    /// A listen address was refused by the transport.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address that was refused.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A bootstrap or peerstore address has no `/p2p/<peer id>` suffix.
    #[error("address {0} has no /p2p/<peer id> component; bootstrap addresses must name the peer")]
    MissingPeerId(Multiaddr),
    /// Dialing an address failed (includes handshake failures such as a secret mismatch).
    #[error("cannot connect to {addr}: {reason}")]
    Dial {
        /// The dialed address.
        addr: Multiaddr,
        /// Why, as reported by libp2p.
        reason: String,
    },
    /// A gossipsub operation failed.
    #[error("pubsub: {0}")]
    Pubsub(String),
    /// An outgoing RPC did not get an answer (dial failure, timeout, closed connection, ...).
    #[error("rpc {method} to {peer}: {reason}")]
    RpcTransport {
        /// The called peer.
        peer: PeerId,
        /// The called method.
        method: String,
        /// Why no answer arrived.
        reason: String,
    },
    /// The remote peer's authorizer refused the call.
    #[error("rpc {method} to {peer} denied: {reason}")]
    RpcDenied {
        /// The called peer.
        peer: PeerId,
        /// The called method.
        method: String,
        /// The reason the remote gave.
        reason: String,
    },
    /// The remote peer accepted the call but its handler returned an error.
    #[error("rpc {method} to {peer} failed: {reason}")]
    RpcFailed {
        /// The called peer.
        peer: PeerId,
        /// The called method.
        method: String,
        /// The remote handler's error.
        reason: String,
    },
    /// Reading or writing the peerstore file failed.
    #[error("peerstore {path}: {reason}")]
    Peerstore {
        /// The peerstore file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The swarm task has stopped, so the handle can no longer reach it.
    #[error("the swarm task has stopped")]
    Stopped,
}

/// Why a `cluster.secret` value was refused. Messages name the config key so an operator
/// knows where to look; they never contain the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The value is not hexadecimal.
    #[error("cluster.secret: not valid hex ({0}); expected 64 hex characters (32 bytes)")]
    InvalidHex(String),
    /// The value decodes to the wrong number of bytes (same wording as IPFS Cluster).
    #[error("cluster.secret: input secret is {0} bytes, cluster secret should be 32")]
    WrongLength(usize),
}
