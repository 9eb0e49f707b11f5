//! `cairn id`, `cairn version`, `cairn peers ls`: ask the local peer. Until the REST API
//! exists they go over the cluster swarm: a throwaway client identity with the cluster
//! secret dials the peer's listen address and calls its RPC, which the peer authorizes
//! like any other caller's (ID and Version are open to every peer).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_swarm::{AllowList, ClusterSecret, Keypair, Multiaddr, PeerId, RpcHandler, SwarmConfig};
use futures::future::BoxFuture;

use crate::cluster::{PeerInfo, Version};
use crate::config::{ConfigDir, Identity, load_service, process_env};

/// `cairn peers ...`.
#[derive(clap::Subcommand)]
pub enum PeersCommand {
    /// The peers of the cluster as the local peer sees them.
    Ls,
}

/// Which question to ask the local peer.
pub enum Ask {
    Id,
    Version,
    Peers,
}

/// Ask the local peer and print the answer.
pub async fn run(dir: ConfigDir, ask: Ask) -> anyhow::Result<ExitCode> {
    let (method, json) = match ask {
        Ask::Version => ("Cluster.Version", call(&dir, "Cluster.Version").await?),
        Ask::Id | Ask::Peers => ("Cluster.ID", call(&dir, "Cluster.ID").await?),
    };
    match ask {
        Ask::Version => {
            let v: Version = serde_json::from_slice(&json).with_context(|| format!("decode the {method} answer"))?;
            println!("{}", v.version);
        }
        Ask::Id => {
            let id: PeerInfo = serde_json::from_slice(&json).with_context(|| format!("decode the {method} answer"))?;
            println!("{} | {} | Sees {} other peers", id.id, id.peername, id.cluster_peers.len().saturating_sub(1));
            println!("  > Addresses:");
            for addr in &id.addresses {
                println!("    - {addr}");
            }
        }
        Ask::Peers => {
            let id: PeerInfo = serde_json::from_slice(&json).with_context(|| format!("decode the {method} answer"))?;
            for peer in &id.cluster_peers {
                println!("{peer}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses every call: the throwaway client serves nothing.
pub(crate) struct ServesNothing;

impl RpcHandler for ServesNothing {
    fn handle<'a>(&'a self, _: PeerId, method: &'a str, _: Vec<u8>) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(std::future::ready(Err(format!("a cairn client serves no RPC ({method})"))))
    }
}

/// Call `method` on the peer whose config folder is `dir`, from a throwaway identity.
async fn call(dir: &ConfigDir, method: &str) -> anyhow::Result<Vec<u8>> {
    call_with(dir, method, Vec::new()).await
}

/// [`call`] with a payload.
pub(crate) async fn call_with(dir: &ConfigDir, method: &str, payload: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let loaded = load_service(&dir.service(), &process_env)?;
    let identity = Identity::load(&dir.identity(), &process_env)?;
    let target =
        local_address(&loaded.config.cluster().listen_multiaddress.0, identity.peer_id).with_context(|| {
            format!("{}: cluster.listen_multiaddress has no TCP address to dial", dir.service().display())
        })?;
    let secret = cluster_secret(dir, &loaded.config.cluster().secret)?;
    call_peer(secret, Keypair::generate_ed25519(), target, method, payload).await
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

/// The first TCP listen address, with an unspecified IP replaced by loopback, ending in
/// `/p2p/<peer id>`.
fn local_address(listen: &[String], peer: PeerId) -> anyhow::Result<Multiaddr> {
    for addr in listen.iter().filter(|a| a.contains("/tcp/")) {
        let addr = addr.replace("/ip4/0.0.0.0/", "/ip4/127.0.0.1/").replace("/ip6/::/", "/ip6/::1/");
        let Ok(addr) = format!("{addr}/p2p/{peer}").parse() else { continue };
        return Ok(addr);
    }
    bail!("no TCP address")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dials_loopback_instead_of_the_unspecified_address() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let addr = local_address(&["/ip4/0.0.0.0/udp/9096/quic".into(), "/ip4/0.0.0.0/tcp/9096".into()], peer)
            .expect("address");
        assert_eq!(addr.to_string(), format!("/ip4/127.0.0.1/tcp/9096/p2p/{peer}"));
        assert!(local_address(&["/ip4/0.0.0.0/udp/9096/quic".into()], peer).is_err());
    }
}
