//! `cairn init`: a new config folder with service.json (IPFS Cluster's sections and defaults,
//! a random secret) and identity.json (a fresh Ed25519 key).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::config::{
    ConfigDir, ConsensusSection, CrdtConfig, Identity, IpfsConnectorSection, RaftConfig, ServiceConfig, peer_id_of,
    random_secret,
};

/// Which consensus the new config uses.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ConsensusChoice {
    /// Any number of peers; trust decided by the peer authorizer.
    Crdt,
    /// Small fixed clusters; every peer holding the secret is trusted.
    Raft,
}

/// Which IPFS backend the new config uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum IpfsChoice {
    /// An IPFS daemon over its Kubo RPC API (IPFS Cluster's default; 127.0.0.1:5001).
    #[default]
    Ipfshttp,
    /// An IPFS node inside the peer, data in the config folder: nothing else to install.
    Embedded,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The IPFS backend: ipfshttp (an IPFS daemon, the default) or embedded (a node inside
    /// the peer).
    #[arg(long, value_enum, default_value = "ipfshttp")]
    pub ipfs: IpfsChoice,
    /// The consensus: crdt (default) or raft.
    #[arg(long, value_enum, default_value = "crdt")]
    consensus: ConsensusChoice,
    /// Peers to bootstrap from, `/ip4/…/tcp/…/p2p/<id>` (comma-separated). For crdt they
    /// become the trusted peers (instead of `"*"`), for raft the initial peerset.
    #[arg(long, value_delimiter = ',', value_name = "MULTIADDR,...")]
    peers: Vec<String>,
    /// Overwrite existing service.json and identity.json.
    #[arg(long)]
    force: bool,
}

impl Default for InitArgs {
    /// What `cairn init` with no flags does (used by `cairn daemon --init`).
    fn default() -> Self {
        InitArgs { ipfs: IpfsChoice::Ipfshttp, consensus: ConsensusChoice::Crdt, peers: Vec::new(), force: false }
    }
}

pub fn run(dir: ConfigDir, args: InitArgs) -> anyhow::Result<ExitCode> {
    let (service_path, identity_path) = (dir.service(), dir.identity());
    if !args.force {
        for path in [&service_path, &identity_path] {
            if path.exists() {
                bail!("{} already exists; use --force to overwrite it (the peer's identity changes)", path.display());
            }
        }
    }
    let mut peer_ids = Vec::new();
    for addr in args.peers.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
        let id = peer_id_of(addr)
            .with_context(|| format!("--peers: {addr:?} is not a multiaddress ending in /p2p/<peer id>"))?;
        peer_ids.push(id.to_string());
    }

    let identity = Identity::generate();
    let consensus = match args.consensus {
        ConsensusChoice::Crdt => {
            let mut crdt = CrdtConfig::default();
            if !peer_ids.is_empty() {
                crdt.trusted_peers = Some(peer_ids.clone());
            }
            ConsensusSection { crdt: Some(crdt), raft: None }
        }
        ConsensusChoice::Raft => {
            let mut raft = RaftConfig::default();
            if !peer_ids.is_empty() {
                // Raft needs the whole initial membership, this peer included.
                raft.init_peerset = peer_ids.iter().cloned().chain([identity.peer_id.to_string()]).collect();
            }
            ConsensusSection { crdt: None, raft: Some(raft) }
        }
    };
    let mut config = ServiceConfig::for_init(consensus);
    if args.ipfs == IpfsChoice::Embedded {
        config.ipfs_connector = IpfsConnectorSection::embedded();
        // The proxy forwards to a Kubo RPC API, which an embedded node does not serve.
        config.api.ipfsproxy = None;
    }
    if let Some(cluster) = config.cluster.as_mut() {
        cluster.secret = random_secret().context("generate the cluster secret")?;
        cluster.peer_addresses = args.peers.iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
    }

    create_private_dir(&dir)?;
    config.save(&service_path)?;
    identity.save(&identity_path)?;
    println!("configuration written to {}", dir.0.display());
    println!("peer id: {}", identity.peer_id);
    println!("consensus: {}", if config.consensus.crdt.is_some() { "crdt" } else { "raft" });
    println!(
        "ipfs: {}",
        if config.ipfs_connector.embedded.is_some() { "embedded node" } else { "ipfshttp (an IPFS daemon)" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Create the folder owner-only (0700). An existing folder is left as it is (it may be
/// shared, e.g. a --config pointing somewhere unusual), with a warning if others can read it.
fn create_private_dir(dir: &ConfigDir) -> anyhow::Result<()> {
    let path = &dir.0;
    if path.is_dir() {
        let mode = std::fs::metadata(path).with_context(|| format!("read {}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "{} is accessible to other users (mode {:o}); consider chmod 700",
                path.display(),
                mode & 0o777
            );
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("create the config folder {}", path.display()))?;
    // The mode above is filtered by the umask; the folder holds the secret and the key.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("set the mode of {}", path.display()))?;
    Ok(())
}
