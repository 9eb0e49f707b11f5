//! The peer RPC protocol: wire types, the authorization hook and the dispatch trait.

use std::collections::HashSet;

use futures::future::BoxFuture;
use libp2p::{PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};

/// The request/response protocol id. The version is part of the id so that a future
/// incompatible wire format is negotiated away instead of misparsed.
pub const RPC_PROTOCOL: StreamProtocol = StreamProtocol::new("/cairn/rpc/0.1.0");

/// One RPC call on the wire (cbor). `payload` is opaque to the swarm: the method's handler
/// decides its encoding (cbor or JSON bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcRequest {
    /// Method name, IPFS Cluster style (`Cluster.ID`, `PinTracker.Status`, ...).
    pub method: String,
    /// Encoded arguments (a CBOR byte string, not an array of small integers).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The caller's W3C `traceparent`, so the served call's span joins the caller's trace.
    /// Absent when the caller does not trace; peers without the field ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// The answer to an [`RpcRequest`] on the wire. Denial is distinct from failure so the
/// caller can tell "not allowed" from "tried and failed".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RpcResponse {
    /// The handler's encoded result.
    Ok(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The authorizer refused the call; the reason is shown to the caller.
    Denied(String),
    /// The handler returned an error.
    Failed(String),
}

/// Decides whether `peer` may call `method`. Called for every request arriving from a remote
/// peer, before dispatch. The host implements it with its authorizer plugin; an `Err` carries
/// the reason that is sent back to the caller and logged.
pub trait RpcAuthorizer: Send + Sync + 'static {
    /// `Ok(())` allows the call; `Err(reason)` denies it.
    fn authorize<'a>(&'a self, peer: PeerId, method: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// Executes an authorized RPC call.
pub trait RpcHandler: Send + Sync + 'static {
    /// Returns the encoded result, or an error message that is sent back to the caller.
    fn handle<'a>(&'a self, peer: PeerId, method: &'a str, payload: Vec<u8>) -> BoxFuture<'a, Result<Vec<u8>, String>>;
}

/// A simple authorizer: methods open to every peer, plus methods open only to trusted peers.
/// Anything else is denied. Useful for tests and as a fallback; the daemon uses its plugin.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    open: HashSet<String>,
    trusted_methods: HashSet<String>,
    trusted_peers: HashSet<PeerId>,
}

impl AllowList {
    /// An allow-list that lets every peer call `methods`.
    pub fn open<I, S>(methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { open: methods.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// Additionally lets `peers` call `methods`.
    pub fn with_trusted<I, S, P>(mut self, methods: I, peers: P) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        P: IntoIterator<Item = PeerId>,
    {
        self.trusted_methods.extend(methods.into_iter().map(Into::into));
        self.trusted_peers.extend(peers);
        self
    }
}

impl RpcAuthorizer for AllowList {
    fn authorize<'a>(&'a self, peer: PeerId, method: &'a str) -> BoxFuture<'a, Result<(), String>> {
        let verdict = if self.open.contains(method)
            || (self.trusted_methods.contains(method) && self.trusted_peers.contains(&peer))
        {
            Ok(())
        } else {
            Err(format!("method {method} is not allowed for peer {peer}"))
        };
        Box::pin(std::future::ready(verdict))
    }
}
