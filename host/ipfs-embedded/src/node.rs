//! `EmbeddedIpfs`: a rust-ipfs node in the cairn process, behind the `IpfsConnector` trait.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use cairn_ipfs::{
    BlockInfo, BlockPutOptions, GcReport, IpfsConnector, IpfsError, IpfsId, PinMode, PinOutcome, PinRequest, PinStatus,
    PinnedCid, RepoStat, Result, UnpinOutcome,
};
use cid::{Cid, Version};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use libp2p::pnet::PreSharedKey;
use multihash_codetable::{Code, MultihashDigest};
use rust_ipfs::builder::DefaultIpfsBuilder;
use rust_ipfs::dag::ResolvedNode;
use rust_ipfs::p2p::{AddressBookConfig, IdentifyConfiguration};
use rust_ipfs::{
    AddPeerOpt, Block, DialOpts, Ipfs, IpfsPath, Keypair, Multiaddr, PeerCondition, PeerId, PinKind, Protocol,
};
use serde_json::{Value, json};
use tokio::sync::{RwLock, watch};
use tokio::task::JoinHandle;

use crate::config::{EmbeddedIpfsConfig, ParsedAddresses, format_size, peer_of};
use crate::error::EmbeddedError;
use crate::fetch::{FetchError, fetch_dag};

/// The node's private key, protobuf-encoded (libp2p's key format), inside the data folder.
pub const IDENTITY_FILE: &str = "identity.key";
/// The agent string sent in identify and returned by `id`.
pub const AGENT_VERSION: &str = concat!("cairn/", env!("CARGO_PKG_VERSION"), " (embedded rust-ipfs 0.16)");
/// rust-ipfs's repository lock inside the data folder.
const LOCK_FILE: &str = "repo_lock";
/// How long `start` waits for a just-stopped node to release the data folder.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// Deadline of one dial (`swarm_connect`, origins, bootstrap peers).
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many pin origins are dialled before a pin (IPFS Cluster: 10).
const MAX_ORIGINS: usize = 10;

/// An IPFS node running inside this process: a filesystem repository, bitswap over TCP with
/// noise, yamux and (by default) the cluster secret as pnet key; no DHT, mDNS, relay or UPnP.
pub struct EmbeddedIpfs {
    /// None once shut down.
    ipfs: Mutex<Option<Ipfs>>,
    config: EmbeddedIpfsConfig,
    data_folder: PathBuf,
    /// How errors name this node.
    daemon: String,
    peer_id: PeerId,
    addresses: ParsedAddresses,
    /// Pins hold it shared while fetching and recording, GC exclusively, so GC never removes a
    /// block a running pin has fetched but not yet recorded.
    gc_lock: RwLock<()>,
    /// Pins, unpins and block puts since start, for `informer_trigger_interval`.
    operations: AtomicU64,
    trigger: watch::Sender<u64>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for EmbeddedIpfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedIpfs")
            .field("peer_id", &self.peer_id)
            .field("data_folder", &self.data_folder)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for EmbeddedIpfs {
    fn drop(&mut self) {
        // Without `shutdown`, stop the node in the background so its swarm task does not linger.
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        if let Some(ipfs) = lock(&self.ipfs).take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(ipfs.exit_daemon());
        }
    }
}

/// Locks a std mutex, ignoring poisoning (the guarded values stay consistent on panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EmbeddedIpfs {
    /// Opens (or creates) the repository in the data folder, loads (or creates) the node's key and
    /// starts listening; `cluster_secret` is the pnet key when `private_network` is set.
    pub async fn start(
        config: &EmbeddedIpfsConfig,
        config_dir: &Path,
        cluster_secret: Option<[u8; 32]>,
    ) -> Result<Arc<EmbeddedIpfs>, EmbeddedError> {
        let addresses = config.parsed()?;
        let psk = match (config.private_network, cluster_secret) {
            (true, Some(secret)) => Some(PreSharedKey::new(secret)),
            (true, None) => return Err(EmbeddedError::NoClusterSecret),
            (false, _) => None,
        };
        let folder = config.data_path(config_dir);
        prepare_folder(&folder).await?;
        let keypair = load_or_create_identity(&folder).await?;
        let peer_id = keypair.public().to_peer_id();

        let identify = IdentifyConfiguration { agent_version: AGENT_VERSION.to_owned(), ..Default::default() };
        let mut builder = DefaultIpfsBuilder::with_keypair(&keypair)
            .map_err(|e| EmbeddedError::Identity { file: folder.join(IDENTITY_FILE), reason: e.to_string() })?
            .set_path(&folder)
            .with_identify(identify)
            .with_ping(Default::default())
            .with_bitswap()
            // Cluster peers stay connected once dialled, as under Kubo's connection manager.
            .set_addrbook_configuration(AddressBookConfig { store_on_connection: true, keep_connection_alive: true })
            .enable_tcp()
            .enable_dns();
        if let Some(psk) = psk {
            builder = builder.enable_pnet(psk);
        }
        let ipfs = builder.start().await.map_err(|e| EmbeddedError::DataFolder {
            folder: folder.clone(),
            reason: format!("cannot open the IPFS repository: {e:#}"),
        })?;
        ipfs.repo().set_max_storage_size(usize::try_from(config.storage_max).unwrap_or(usize::MAX));

        for (text, addr) in config.listen_multiaddress.iter().zip(&addresses.listen) {
            if let Err(reason) = check_port_free(addr) {
                ipfs.exit_daemon().await;
                wait_for_lock(&folder).await.ok();
                return Err(EmbeddedError::Listen { address: text.clone(), reason });
            }
            let listening = async {
                let id = ipfs.add_listening_address(addr.clone()).await?;
                ipfs.get_listening_address(id).await
            };
            match listening.await {
                Ok(bound) => tracing::info!(address = %text, ?bound, %peer_id, "embedded IPFS node listening"),
                Err(e) => {
                    ipfs.exit_daemon().await;
                    wait_for_lock(&folder).await.ok();
                    return Err(EmbeddedError::Listen { address: text.clone(), reason: format!("{e:#}") });
                }
            }
        }
        for addr in &addresses.announce {
            if let Err(e) = ipfs.add_external_address(addr.clone()).await {
                tracing::warn!(%addr, error = %e, "embedded IPFS node cannot announce an address");
            }
        }

        let mut tasks = Vec::new();
        if !addresses.bootstrap.is_empty() {
            let ipfs = ipfs.clone();
            let peers = addresses.bootstrap.clone();
            tasks.push(tokio::spawn(async move {
                for (peer, addr) in peers {
                    match tokio::time::timeout(DIAL_TIMEOUT, dial(&ipfs, peer, addr.clone())).await {
                        Ok(Ok(())) => tracing::info!(%addr, "embedded IPFS node connected to a bootstrap peer"),
                        Ok(Err(e)) => {
                            tracing::warn!(%addr, error = %e, "embedded IPFS node cannot reach a bootstrap peer")
                        }
                        Err(_) => tracing::warn!(%addr, "embedded IPFS node: dialling a bootstrap peer timed out"),
                    }
                }
            }));
        }

        let (trigger, _) = watch::channel(0);
        Ok(Arc::new(EmbeddedIpfs {
            ipfs: Mutex::new(Some(ipfs)),
            config: config.clone(),
            daemon: format!("embedded ipfs node at {}", folder.display()),
            data_folder: folder,
            peer_id,
            addresses,
            gc_lock: RwLock::new(()),
            operations: AtomicU64::new(0),
            trigger,
            tasks: Mutex::new(tasks),
        }))
    }

    /// Stops the node and waits until its data folder is free for another start; idempotent.
    pub async fn shutdown(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        let ipfs = lock(&self.ipfs).take();
        if let Some(ipfs) = ipfs {
            ipfs.exit_daemon().await;
            if let Err(e) = wait_for_lock(&self.data_folder).await {
                tracing::warn!(error = %e, "embedded IPFS node: the repository lock is still held after shutdown");
            }
        }
    }

    /// The node's libp2p peer id.
    pub fn peer_id(&self) -> String {
        self.peer_id.to_string()
    }

    /// The data folder holding the repository and the key.
    pub fn data_folder(&self) -> &Path {
        &self.data_folder
    }

    /// The configuration the node was started with.
    pub fn config(&self) -> &EmbeddedIpfsConfig {
        &self.config
    }

    /// Adds `data` as a UnixFS file (256 KiB chunks, CIDv1) without pinning it; returns its CID.
    pub async fn add_bytes(&self, data: Bytes) -> Result<Cid> {
        self.add_file(None, data).await
    }

    /// Like [`add_bytes`](Self::add_bytes); with a name, the file is wrapped in a directory
    /// (`ipfs add -w`) and the directory's CID is returned, so `/ipfs/<dir>/<name>` resolves.
    pub async fn add_file(&self, name: Option<&str>, data: Bytes) -> Result<Cid> {
        const CALL: &str = "add";
        let ipfs = self.node(CALL)?;
        let add = match name {
            Some(name) => ipfs.add_unixfs((name.to_owned(), data)).wrap(),
            None => ipfs.add_unixfs(data),
        };
        let path = add.pin(false).await.map_err(|e| self.fail(CALL, format!("cannot add the file: {e:#}")))?;
        path.root().cid().copied().ok_or_else(|| self.fail(CALL, "the added file has no CID root".to_owned()))
    }

    /// The running node, or an error naming `call` once shut down.
    fn node(&self, call: &'static str) -> Result<Ipfs> {
        lock(&self.ipfs).clone().ok_or_else(|| IpfsError::Unreachable {
            call,
            daemon: self.daemon.clone(),
            reason: "the embedded node has been shut down".to_owned(),
        })
    }

    fn fail(&self, call: &'static str, message: impl Into<String>) -> IpfsError {
        IpfsError::Node { call, daemon: self.daemon.clone(), message: message.into() }
    }

    fn timeout(&self, call: &'static str, timeout: Duration) -> IpfsError {
        IpfsError::Timeout { call, daemon: self.daemon.clone(), timeout }
    }

    /// Counts an operation for the informer trigger.
    fn count_operation(&self) {
        let every = self.config.informer_trigger_interval;
        let n = self.operations.fetch_add(1, Ordering::Relaxed) + 1;
        if every > 0 && n.is_multiple_of(every) {
            self.trigger.send_modify(|ticks| *ticks += 1);
        }
    }

    async fn id(&self) -> Result<IpfsId> {
        const CALL: &str = "id";
        let ipfs = self.node(CALL)?;
        let addrs = if self.addresses.announce.is_empty() {
            ipfs.listening_addresses()
                .await
                .map_err(|e| self.fail(CALL, format!("cannot list the listening addresses: {e:#}")))?
        } else {
            self.addresses.announce.clone()
        };
        let addresses = addrs.into_iter().map(|addr| with_peer(addr, self.peer_id).to_string()).collect();
        Ok(IpfsId { peer_id: self.peer_id.to_string(), addresses, agent_version: Some(AGENT_VERSION.to_owned()) })
    }

    /// How `cid` is pinned, under either CID version, and the CID the pin is recorded under.
    async fn pin_status(&self, ipfs: &Ipfs, cid: Cid) -> Result<(PinStatus, Cid)> {
        let mut best = (PinStatus::Unpinned, cid);
        for candidate in cid_versions(cid) {
            match ipfs.query_pins(vec![candidate], None).await {
                Ok(found) => {
                    for (_, kind) in found {
                        let status = match kind {
                            PinKind::Recursive(_) | PinKind::RecursiveIntention => PinStatus::Recursive,
                            PinKind::Direct => PinStatus::Direct,
                            PinKind::IndirectFrom(_) => PinStatus::Indirect,
                        };
                        if rank(status) > rank(best.0) {
                            best = (status, candidate);
                        }
                    }
                }
                // rust-ipfs answers "<cid> is not pinned" when it holds no pin of the CID.
                Err(e) if e.to_string().contains("not pinned") => {}
                Err(e) => return Err(self.fail("pin/ls", format!("cannot read the pin of {candidate}: {e:#}"))),
            }
        }
        Ok(best)
    }

    async fn pin_ls_cid(&self, cid: Cid, mode: Option<PinMode>) -> Result<PinStatus> {
        let ipfs = self.node("pin/ls")?;
        let (status, _) = self.pin_status(&ipfs, cid).await?;
        Ok(match mode {
            None => status,
            Some(mode) if status.satisfies(mode) => status,
            Some(_) => PinStatus::Unpinned,
        })
    }

    async fn pin(&self, request: PinRequest) -> Result<PinOutcome> {
        const CALL: &str = "pin/add";
        let ipfs = self.node(CALL)?;
        let cid = request.cid;
        let (status, _) = self.pin_status(&ipfs, cid).await?;
        if status.satisfies(request.mode) {
            tracing::debug!(%cid, "already pinned in the embedded IPFS node");
            return Ok(PinOutcome::AlreadyPinned);
        }
        self.count_operation();
        // A pin update only has to fetch what `from` lacks, which a plain pin does anyway: blocks
        // already in the repository are not fetched again.
        let updating = match (request.update_from, request.mode) {
            (Some(from), PinMode::Recursive) => self.pin_status(&ipfs, from).await?.0 == PinStatus::Recursive,
            _ => false,
        };
        for origin in request.origins.iter().take(MAX_ORIGINS) {
            // Fired in the background, as in IPFS Cluster: the pin does not wait for the dials.
            let Some((peer, addr)) = origin.parse::<Multiaddr>().ok().and_then(|a| Some((peer_of(&a)?, a))) else {
                tracing::debug!(%origin, "pin origin is not a multiaddr with /p2p; ignored");
                continue;
            };
            if peer == self.peer_id {
                continue;
            }
            let ipfs = ipfs.clone();
            tokio::spawn(async move {
                if let Ok(Err(e)) = tokio::time::timeout(DIAL_TIMEOUT, dial(&ipfs, peer, addr.clone())).await {
                    tracing::debug!(%addr, error = %e, "could not connect to pin origin");
                }
            });
        }
        let depth = match request.mode {
            PinMode::Direct => Some(0),
            PinMode::Recursive => request.max_depth,
        };
        self.fetch_and_pin(&ipfs, cid, request.mode, depth, request.progress.as_ref()).await?;
        Ok(if updating { PinOutcome::Updated } else { PinOutcome::Pinned })
    }

    /// Fetches the DAG (failing on a stall of `pin_timeout`) and records the pin.
    async fn fetch_and_pin(
        &self,
        ipfs: &Ipfs,
        cid: Cid,
        mode: PinMode,
        depth: Option<u32>,
        progress: Option<&watch::Sender<u64>>,
    ) -> Result<()> {
        const CALL: &str = "pin/add";
        let stall = self.config.pin_timeout;
        let _no_gc = self.gc_lock.read().await;
        let report = |n: u64| {
            if let Some(tx) = progress {
                tx.send_replace(n);
            }
        };
        let fetched = fetch_dag(ipfs.repo(), cid, depth, stall, report).await.map_err(|e| match e {
            FetchError::Stalled { progress } => {
                IpfsError::PinStalled { cid: cid.to_string(), daemon: self.daemon.clone(), timeout: stall, progress }
            }
            FetchError::Decode { cid: block, reason } => {
                self.fail(CALL, format!("cannot pin {cid}: the links of block {block} cannot be read: {reason}"))
            }
            FetchError::Repo { reason } => self.fail(CALL, format!("cannot fetch {cid}: {reason}")),
        })?;
        tracing::debug!(%cid, blocks = fetched, "embedded IPFS node fetched a DAG");
        let mut insert = ipfs.insert_pin(cid).local();
        if mode == PinMode::Recursive {
            insert = insert.recursive().exit_on_error();
            if let Some(depth) = depth {
                insert = insert.depth(u64::from(depth));
            }
        }
        insert.await.map_err(|e| self.fail(CALL, format!("cannot record the pin of {cid}: {e:#}")))
    }

    async fn unpin(&self, cid: Cid) -> Result<UnpinOutcome> {
        const CALL: &str = "pin/rm";
        let ipfs = self.node(CALL)?;
        self.count_operation();
        let work = async {
            let (status, held) = self.pin_status(&ipfs, cid).await?;
            let removed = match status {
                PinStatus::Recursive => ipfs.remove_pin(held).recursive().await,
                PinStatus::Direct => ipfs.remove_pin(held).await,
                PinStatus::Indirect | PinStatus::Unpinned => return Ok(UnpinOutcome::NotPinned),
            };
            match removed {
                Ok(()) => Ok(UnpinOutcome::Unpinned),
                // Removed meanwhile by a concurrent unpin.
                Err(e) if e.to_string().contains("not pinned") => Ok(UnpinOutcome::NotPinned),
                Err(e) => Err(self.fail(CALL, format!("cannot unpin {cid}: {e:#}"))),
            }
        };
        let timeout = self.config.unpin_timeout;
        tokio::time::timeout(timeout, work).await.map_err(|_| self.timeout(CALL, timeout))?
    }

    async fn pin_update(&self, from: Cid, to: Cid) -> Result<()> {
        const CALL: &str = "pin/update";
        let ipfs = self.node(CALL)?;
        if self.pin_status(&ipfs, from).await?.0 != PinStatus::Recursive {
            return Err(self.fail(CALL, format!("{from} is not pinned recursively, so there is no pin to update")));
        }
        if self.pin_status(&ipfs, to).await?.0 == PinStatus::Recursive {
            return Ok(());
        }
        let timeout = self.config.unpin_timeout;
        tokio::time::timeout(timeout, self.fetch_and_pin(&ipfs, to, PinMode::Recursive, None, None))
            .await
            .map_err(|_| self.timeout(CALL, timeout))?
    }

    async fn swarm_connect(&self, multiaddr: &str) -> Result<()> {
        const CALL: &str = "swarm/connect";
        let ipfs = self.node(CALL)?;
        let addr: Multiaddr =
            multiaddr.trim().parse().map_err(|e| self.fail(CALL, format!("{multiaddr:?} is not a multiaddr: {e}")))?;
        let peer =
            peer_of(&addr).ok_or_else(|| self.fail(CALL, format!("{multiaddr} does not end with /p2p/<peer id>")))?;
        if peer == self.peer_id {
            return Err(self.fail(CALL, format!("{multiaddr} is this node itself")));
        }
        match tokio::time::timeout(DIAL_TIMEOUT, dial(&ipfs, peer, addr)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if self.config.private_network => Err(self.fail(
                CALL,
                format!("cannot connect to {multiaddr}: {e} (this node is in a private network: the peer must use the same cluster secret)"),
            )),
            Ok(Err(e)) => Err(self.fail(CALL, format!("cannot connect to {multiaddr}: {e}"))),
            Err(_) => Err(self.fail(CALL, format!("cannot connect to {multiaddr}: no connection within {DIAL_TIMEOUT:?}"))),
        }
    }

    async fn swarm_peers(&self) -> Result<Vec<String>> {
        const CALL: &str = "swarm/peers";
        let ipfs = self.node(CALL)?;
        let peers = ipfs.connected().await.map_err(|e| self.fail(CALL, format!("{e:#}")))?;
        Ok(peers.into_iter().map(|p| p.to_string()).collect())
    }

    async fn repo_stat(&self) -> Result<RepoStat> {
        const CALL: &str = "repo/stat";
        let ipfs = self.node(CALL)?;
        let size = ipfs.repo().get_total_size().await.map_err(|e| self.fail(CALL, format!("{e:#}")))?;
        Ok(RepoStat {
            repo_size: u64::try_from(size).unwrap_or(u64::MAX),
            storage_max: self.config.storage_max,
            num_objects: None,
        })
    }

    async fn repo_gc(&self) -> Result<GcReport> {
        const CALL: &str = "repo/gc";
        let ipfs = self.node(CALL)?;
        let timeout = self.config.repogc_timeout;
        let gc = async {
            // Waits for running pins, so blocks they fetched are recorded before GC looks.
            let _exclusive = self.gc_lock.write().await;
            ipfs.gc().await
        };
        match tokio::time::timeout(timeout, gc).await {
            Err(_) => Err(self.timeout(CALL, timeout)),
            Ok(Err(e)) => Err(self.fail(CALL, format!("{e:#}"))),
            Ok(Ok(removed)) => Ok(GcReport { removed, errors: Vec::new() }),
        }
    }

    async fn block_put(&self, data: Bytes, options: BlockPutOptions) -> Result<BlockInfo> {
        const CALL: &str = "block/put";
        let ipfs = self.node(CALL)?;
        self.count_operation();
        let cid = block_cid(&data, &options).map_err(|e| self.fail(CALL, e))?;
        let size = data.len() as u64;
        let block = Block::new_unchecked(cid, data);
        ipfs.put_block(&block).await.map_err(|e| self.fail(CALL, format!("cannot store {cid}: {e:#}")))?;
        Ok(BlockInfo { cid, size })
    }

    /// A block from the repository, or from connected peers within `pin_timeout`.
    async fn get_block(&self, call: &'static str, cid: Cid) -> Result<Block> {
        let ipfs = self.node(call)?;
        let timeout = self.config.pin_timeout;
        let get = ipfs.get_block(cid).timeout(timeout + Duration::from_secs(1));
        match tokio::time::timeout(timeout, get).await {
            Err(_) => Err(self.timeout(call, timeout)),
            Ok(Err(e)) => Err(self.fail(call, format!("cannot get {cid}: {e:#}"))),
            Ok(Ok(block)) => Ok(block),
        }
    }

    async fn block_get(&self, cid: Cid) -> Result<Bytes> {
        let block = self.get_block("block/get", cid).await?;
        Ok(block.into_inner().1)
    }

    async fn block_stat(&self, cid: Cid) -> Result<BlockInfo> {
        let block = self.get_block("block/stat", cid).await?;
        Ok(BlockInfo { cid, size: block.data().len() as u64 })
    }

    async fn resolve(&self, path: &str) -> Result<Cid> {
        const CALL: &str = "resolve";
        let trimmed = path.trim().trim_end_matches('/');
        // As IPFS Cluster: /ipfs/<cid> with no sub-path is its own answer.
        let bare = trimmed.strip_prefix("/ipfs/").unwrap_or(trimmed);
        if !bare.contains('/')
            && let Ok(cid) = Cid::try_from(bare)
        {
            return Ok(cid);
        }
        let ipfs = self.node(CALL)?;
        let parsed: IpfsPath =
            trimmed.parse().map_err(|e| self.fail(CALL, format!("{path:?} is not an IPFS path: {e}")))?;
        let timeout = self.config.pin_timeout;
        let dag = ipfs.dag();
        let resolved = tokio::time::timeout(timeout, dag.resolve(parsed, true, &[], false))
            .await
            .map_err(|_| self.timeout(CALL, timeout))?
            .map_err(|e| self.fail(CALL, format!("cannot resolve {path:?}: {e}")))?;
        match resolved {
            (ResolvedNode::Block(block), rest) if rest.is_empty() => Ok(*block.cid()),
            (ResolvedNode::Link(_, dest), rest) if rest.is_empty() => Ok(dest),
            (node, rest) => Err(self.fail(
                CALL,
                format!("{path:?} does not end at a block (it ends inside {} at {rest:?})", node.source()),
            )),
        }
    }

    /// The Kubo-style config this node would have, for `config_key`.
    fn config_json(&self) -> Value {
        json!({
            "Identity": { "PeerID": self.peer_id.to_string() },
            "Addresses": {
                "Swarm": self.config.listen_multiaddress,
                "Announce": self.config.announce_multiaddress,
            },
            "Bootstrap": self.config.bootstrap,
            "Datastore": {
                "StorageMax": format_size(self.config.storage_max),
                "Path": self.data_folder.display().to_string(),
            },
        })
    }

    async fn config_key(&self, key: &str) -> Result<Value> {
        const CALL: &str = "config/show";
        self.node(CALL)?;
        let config = self.config_json();
        let mut value = &config;
        for part in key.split('.') {
            value = value
                .get(part)
                .ok_or_else(|| self.fail(CALL, format!("the embedded node's config has no key {key:?}")))?;
        }
        Ok(value.clone())
    }
}

/// Adds `peer`'s address to the address book (kept connected) and dials it unless connected.
async fn dial(ipfs: &Ipfs, peer: PeerId, addr: Multiaddr) -> std::result::Result<(), String> {
    let mut plain = addr;
    if matches!(plain.iter().last(), Some(Protocol::P2p(_))) {
        plain.pop();
    }
    ipfs.add_peer(AddPeerOpt::with_peer_id(peer).add_address(plain.clone()).keepalive())
        .await
        .map_err(|e| format!("{e:#}"))?;
    if ipfs.is_connected(peer).await.unwrap_or(false) {
        return Ok(());
    }
    let opts = DialOpts::peer_id(peer).addresses(vec![plain]).condition(PeerCondition::Always).build();
    match ipfs.connect(opts).await {
        Ok(_) => Ok(()),
        Err(_) if ipfs.is_connected(peer).await.unwrap_or(false) => Ok(()),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Refuses a fixed TCP port another socket listens on. libp2p listens with SO_REUSEPORT, so
/// without this check a second node (or a Kubo daemon) on the same port would silently share
/// its incoming connections.
fn check_port_free(addr: &Multiaddr) -> std::result::Result<(), String> {
    let mut parts = addr.iter();
    let ip: std::net::IpAddr = match parts.next() {
        Some(Protocol::Ip4(ip)) => ip.into(),
        Some(Protocol::Ip6(ip)) => ip.into(),
        _ => return Ok(()),
    };
    match parts.next() {
        Some(Protocol::Tcp(port)) if port != 0 => {
            std::net::TcpListener::bind((ip, port)).map(drop).map_err(|e| format!("TCP port {port} is not free: {e}"))
        }
        _ => Ok(()),
    }
}

/// `addr` ending in `/p2p/<peer>`.
fn with_peer(mut addr: Multiaddr, peer: PeerId) -> Multiaddr {
    if !matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.push(Protocol::P2p(peer));
    }
    addr
}

/// Pin strength, for picking the strongest of several answers.
fn rank(status: PinStatus) -> u8 {
    match status {
        PinStatus::Unpinned => 0,
        PinStatus::Indirect => 1,
        PinStatus::Direct => 2,
        PinStatus::Recursive => 3,
    }
}

/// `cid` and, for dag-pb sha2-256 CIDs, the same block under the other CID version (pins are
/// recorded under the exact CID, but Kubo and IPFS Cluster treat both versions as one).
fn cid_versions(cid: Cid) -> Vec<Cid> {
    let mut out = vec![cid];
    let hash = *cid.hash();
    match cid.version() {
        Version::V0 => out.push(Cid::new_v1(0x70, hash)),
        Version::V1 if cid.codec() == 0x70 && hash.code() == 0x12 && hash.size() == 32 => {
            if let Ok(v0) = Cid::new_v0(hash) {
                out.push(v0);
            }
        }
        Version::V1 => {}
    }
    out
}

/// The CID `block/put` gives `data` under `options` (Kubo's defaults: raw, sha2-256, CIDv1;
/// the legacy `format=v0` gives a dag-pb CIDv0).
fn block_cid(data: &[u8], options: &BlockPutOptions) -> std::result::Result<Cid, String> {
    let (mut codec, mut v0) = (0x55u64, false);
    if let Some(format) = &options.format {
        (codec, v0) = match format.as_str() {
            "v0" => (0x70, true),
            "protobuf" => (0x70, false),
            "raw" => (0x55, false),
            "cbor" => (0x71, false),
            other => return Err(format!("unknown block format {other:?}")),
        };
    }
    if let Some(name) = &options.cid_codec {
        codec = match name.as_str() {
            "raw" => 0x55,
            "dag-pb" => 0x70,
            "dag-cbor" => 0x71,
            "dag-json" => 0x0129,
            "json" => 0x0200,
            "cbor" => 0x51,
            other => return Err(format!("unsupported cid-codec {other:?}")),
        };
        v0 = false;
    }
    let code = match options.mhtype.as_deref().unwrap_or("sha2-256") {
        "sha2-256" => Code::Sha2_256,
        "sha2-512" => Code::Sha2_512,
        "sha3-256" => Code::Sha3_256,
        "sha3-512" => Code::Sha3_512,
        "blake2b-256" => Code::Blake2b256,
        "blake3" => Code::Blake3_256,
        other => return Err(format!("unsupported mhtype {other:?}")),
    };
    let hash = code.digest(data);
    if let Some(len) = options.mhlen
        && len != u32::from(hash.size())
    {
        return Err(format!("mhlen {len} does not match the {}-byte digest of the hash", hash.size()));
    }
    if v0 {
        if code != Code::Sha2_256 {
            return Err("format v0 needs sha2-256".to_owned());
        }
        return Cid::new_v0(hash).map_err(|e| e.to_string());
    }
    Ok(Cid::new_v1(codec, hash))
}

/// Creates the data folder, checks it is writable and that no other node holds it.
async fn prepare_folder(folder: &Path) -> Result<(), EmbeddedError> {
    let bad = |reason: String| EmbeddedError::DataFolder { folder: folder.to_path_buf(), reason };
    tokio::fs::create_dir_all(folder).await.map_err(|e| bad(format!("cannot create it: {e}")))?;
    let probe = folder.join(".cairn-write-probe");
    tokio::fs::write(&probe, b"").await.map_err(|e| bad(format!("not writable: {e}")))?;
    tokio::fs::remove_file(&probe).await.map_err(|e| bad(format!("not writable: {e}")))?;
    wait_for_lock(folder).await
}

/// Waits up to [`LOCK_WAIT`] until nobody holds the repository lock (a node of this process
/// that was just shut down releases it a moment later).
async fn wait_for_lock(folder: &Path) -> Result<(), EmbeddedError> {
    let path = folder.join(LOCK_FILE);
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(
                |e| EmbeddedError::DataFolder {
                    folder: folder.to_path_buf(),
                    reason: format!("cannot open {}: {e}", path.display()),
                },
            )?;
        match file.try_lock() {
            // Dropping the file releases the lock again; rust-ipfs takes it for good.
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(EmbeddedError::DataFolderInUse { folder: folder.to_path_buf() });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(EmbeddedError::DataFolder {
                    folder: folder.to_path_buf(),
                    reason: format!("cannot lock {}: {e}", path.display()),
                });
            }
        }
    }
}

/// Reads the node's key from the data folder, or creates one (owner-only permissions).
async fn load_or_create_identity(folder: &Path) -> Result<Keypair, EmbeddedError> {
    let file = folder.join(IDENTITY_FILE);
    let bad = |reason: String| EmbeddedError::Identity { file: file.clone(), reason };
    match tokio::fs::read(&file).await {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| bad(format!("not a libp2p private key: {e}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair.to_protobuf_encoding().map_err(|e| bad(format!("cannot encode the new key: {e}")))?;
            let target = file.clone();
            tokio::task::spawn_blocking(move || write_private(&target, &bytes))
                .await
                .map_err(|e| bad(e.to_string()))?
                .map_err(|e| bad(format!("cannot write the new key: {e}")))?;
            Ok(keypair)
        }
        Err(e) => Err(bad(format!("cannot read it: {e}"))),
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename), readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl IpfsConnector for EmbeddedIpfs {
    fn id(&self) -> BoxFuture<'_, Result<IpfsId>> {
        EmbeddedIpfs::id(self).boxed()
    }

    fn wait_ready(&self, timeout: Duration) -> BoxFuture<'_, Result<IpfsId>> {
        async move {
            // In process: the node is ready once started; this only bounds the call.
            tokio::time::timeout(timeout, EmbeddedIpfs::id(self)).await.map_err(|_| self.timeout("id", timeout))?
        }
        .boxed()
    }

    fn pin(&self, request: PinRequest) -> BoxFuture<'_, Result<PinOutcome>> {
        EmbeddedIpfs::pin(self, request).boxed()
    }

    fn unpin(&self, cid: Cid) -> BoxFuture<'_, Result<UnpinOutcome>> {
        EmbeddedIpfs::unpin(self, cid).boxed()
    }

    fn pin_ls_cid(&self, cid: Cid, mode: Option<PinMode>) -> BoxFuture<'_, Result<PinStatus>> {
        EmbeddedIpfs::pin_ls_cid(self, cid, mode).boxed()
    }

    fn pin_ls(&self) -> BoxStream<'static, Result<PinnedCid>> {
        const CALL: &str = "pin/ls";
        let ipfs = match self.node(CALL) {
            Ok(ipfs) => ipfs,
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let daemon = self.daemon.clone();
        let kinds =
            [(rust_ipfs::PinMode::Recursive, PinStatus::Recursive), (rust_ipfs::PinMode::Direct, PinStatus::Direct)];
        futures::stream::iter(kinds)
            .then(move |(mode, status)| {
                let ipfs = ipfs.clone();
                let daemon = daemon.clone();
                async move {
                    ipfs.list_pins(Some(mode)).await.map(move |entry| {
                        entry.map(|(cid, _)| PinnedCid { cid, status }).map_err(|e| IpfsError::Node {
                            call: CALL,
                            daemon: daemon.clone(),
                            message: format!("cannot list the {} pins: {e:#}", status_name(status)),
                        })
                    })
                }
            })
            .flatten()
            // The listing ends after an error, as IpfsHttp's does.
            .scan(false, |failed, item| {
                let out = if *failed { None } else { Some(item) };
                *failed = out.as_ref().is_some_and(|item| item.is_err());
                futures::future::ready(out)
            })
            .boxed()
    }

    fn pin_update(&self, from: Cid, to: Cid) -> BoxFuture<'_, Result<()>> {
        EmbeddedIpfs::pin_update(self, from, to).boxed()
    }

    fn swarm_connect<'a>(&'a self, multiaddr: &'a str) -> BoxFuture<'a, Result<()>> {
        EmbeddedIpfs::swarm_connect(self, multiaddr).boxed()
    }

    fn swarm_peers(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        EmbeddedIpfs::swarm_peers(self).boxed()
    }

    fn repo_stat(&self) -> BoxFuture<'_, Result<RepoStat>> {
        EmbeddedIpfs::repo_stat(self).boxed()
    }

    fn repo_gc(&self) -> BoxFuture<'_, Result<GcReport>> {
        EmbeddedIpfs::repo_gc(self).boxed()
    }

    fn block_put(&self, data: Bytes, options: BlockPutOptions) -> BoxFuture<'_, Result<BlockInfo>> {
        EmbeddedIpfs::block_put(self, data, options).boxed()
    }

    fn block_get(&self, cid: Cid) -> BoxFuture<'_, Result<Bytes>> {
        EmbeddedIpfs::block_get(self, cid).boxed()
    }

    fn block_stat(&self, cid: Cid) -> BoxFuture<'_, Result<BlockInfo>> {
        EmbeddedIpfs::block_stat(self, cid).boxed()
    }

    fn resolve<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Cid>> {
        EmbeddedIpfs::resolve(self, path).boxed()
    }

    fn config_key<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Value>> {
        EmbeddedIpfs::config_key(self, key).boxed()
    }

    fn informer_trigger(&self) -> watch::Receiver<u64> {
        self.trigger.subscribe()
    }
}

fn status_name(status: PinStatus) -> &'static str {
    match status {
        PinStatus::Recursive => "recursive",
        PinStatus::Direct => "direct",
        PinStatus::Indirect => "indirect",
        PinStatus::Unpinned => "unpinned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_cids_follow_kubo_defaults() {
        let data = b"hello";
        let raw = block_cid(data, &BlockPutOptions::default()).expect("default");
        assert_eq!(raw.codec(), 0x55);
        assert_eq!(raw.version(), Version::V1);
        let v0 = block_cid(data, &BlockPutOptions { format: Some("v0".into()), ..Default::default() }).expect("v0");
        assert_eq!(v0.version(), Version::V0);
        let cbor = block_cid(data, &BlockPutOptions { cid_codec: Some("dag-cbor".into()), ..Default::default() })
            .expect("dag-cbor");
        assert_eq!(cbor.codec(), 0x71);
        let same = block_cid(data, &BlockPutOptions::for_cid(&cbor)).expect("for_cid");
        assert_eq!(same, cbor);
        assert!(block_cid(data, &BlockPutOptions { mhtype: Some("md5".into()), ..Default::default() }).is_err());
        assert!(
            block_cid(data, &BlockPutOptions { mhlen: Some(20), ..Default::default() })
                .expect_err("wrong mhlen")
                .contains("mhlen")
        );
    }

    #[test]
    fn cid_versions_pair_v0_and_v1() {
        let v0 = block_cid(b"x", &BlockPutOptions { format: Some("v0".into()), ..Default::default() }).expect("v0");
        let both = cid_versions(v0);
        assert_eq!(both.len(), 2);
        assert_eq!(both[1].version(), Version::V1);
        assert_eq!(cid_versions(both[1])[1], v0);
        let raw = block_cid(b"x", &BlockPutOptions::default()).expect("raw");
        assert_eq!(cid_versions(raw), vec![raw]);
    }
}
