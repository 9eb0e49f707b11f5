//! `cairn rpc <peer> <method>`: call another peer's RPC as this peer (its identity and
//! secret), to see what that peer's authorizer lets this one do.

use std::process::ExitCode;

use anyhow::Context;
use cairn_swarm::Multiaddr;

use crate::cli::ctl::{call_peer, cluster_secret};
use crate::config::{ConfigDir, Identity, load_service, process_env};

/// `cairn rpc`'s arguments.
#[derive(clap::Args, Debug)]
pub struct RpcArgs {
    /// The peer to call: a multiaddr ending in /p2p/<peer id>.
    peer: String,
    /// The method, e.g. `Cluster.ID` or `Consensus.LogPin`.
    method: String,
    /// The request payload (text), if the method takes one.
    #[arg(long, default_value = "")]
    payload: String,
}

/// Call the method and print the answer; exit 1 when the peer refused or failed it.
pub async fn run(dir: ConfigDir, args: RpcArgs) -> anyhow::Result<ExitCode> {
    let target: Multiaddr = args.peer.parse().with_context(|| format!("{:?} is not a multiaddr", args.peer))?;
    let identity = Identity::load(&dir.identity(), &process_env)?;
    let loaded = load_service(&dir.service(), &process_env)?;
    let secret = cluster_secret(&dir, &loaded.config.cluster().secret)?;
    match call_peer(secret, identity.keypair, target, &args.method, args.payload.into_bytes()).await {
        Ok(answer) => {
            println!("{}", String::from_utf8_lossy(&answer));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}
