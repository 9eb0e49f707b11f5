//! Calling a peer's RPC over the cluster swarm from a one-shot command (`cairn rpc`,
//! `cairn bench`): a client identity with the cluster secret dials the peer and calls it, and
//! the peer authorizes the call like any other caller's.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_swarm::{AllowList, ClusterSecret, Keypair, Multiaddr, PeerId, RpcHandler, SwarmConfig};
use futures::future::BoxFuture;

use crate::config::ConfigDir;

/// Refuses every call: the throwaway client serves nothing.
pub(crate) struct ServesNothing;

impl RpcHandler for ServesNothing {
    fn handle<'a>(&'a self, _: PeerId, method: &'a str, _: Vec<u8>) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(std::future::ready(Err(format!("a cairn client serves no RPC ({method})"))))
    }
}

/// The cluster secret of the config in `dir`, for dialling its swarm.
pub(crate) fn cluster_secret(dir: &ConfigDir, secret: &str) -> anyhow::Result<Option<ClusterSecret>> {
    ClusterSecret::parse(secret).map_err(|e| anyhow::anyhow!("{}: {e}", dir.service().display()))
}

/// Dial `target` (a multiaddr ending in `/p2p/<id>`) with `keypair` over the cluster swarm
/// protected by `secret`, and call `method` with `payload`.
pub async fn call_peer(
    secret: Option<ClusterSecret>,
    keypair: Keypair,
    target: Multiaddr,
    method: &str,
    payload: Vec<u8>,
) -> anyhow::Result<Vec<u8>> {
    let mut client = SwarmConfig::new(keypair);
    client.listen_addrs = Vec::new();
    client.secret = secret;
    client.handshake_timeout = Duration::from_secs(5);
    client.rpc_timeout = Duration::from_secs(10);
    let swarm = cairn_swarm::start(client, Arc::new(AllowList::default()), Arc::new(ServesNothing))
        .await
        .context("start the client")?;
    let answer = async {
        let peer = swarm
            .connect(target.clone())
            .await
            .with_context(|| format!("cannot reach the peer at {target}: is its `cairn daemon` running?"))?;
        swarm.rpc(peer, method, payload).await.with_context(|| format!("{method} on {peer}"))
    }
    .await;
    let _ = swarm.shutdown().await;
    answer
}
