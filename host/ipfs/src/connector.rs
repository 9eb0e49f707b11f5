//! The connector trait the tracker, informers and APIs talk to; `IpfsHttp` is the Kubo RPC
//! implementation, and an embedded node can implement it later.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Result;
use crate::types::{
    BlockInfo, BlockPutOptions, GcReport, IpfsId, PinMode, PinOutcome, PinRequest, PinStatus, PinnedCid, RepoStat,
    UnpinOutcome,
};

/// Everything a cluster peer asks of its IPFS daemon (IPFS Cluster's `IPFSConnector`).
pub trait IpfsConnector: Send + Sync {
    /// The daemon's peer id and swarm addresses (`id`).
    fn id(&self) -> BoxFuture<'_, Result<IpfsId>>;

    /// Polls `id` every second until the daemon answers or `timeout` passes.
    fn wait_ready(&self, timeout: Duration) -> BoxFuture<'_, Result<IpfsId>>;

    /// Pins unless already pinned that way; fails when the pin's progress stalls for `pin_timeout`.
    fn pin(&self, request: PinRequest) -> BoxFuture<'_, Result<PinOutcome>>;

    /// Unpins (`pin/rm`); "not pinned" counts as success; refused when `unpin_disable` is set.
    fn unpin(&self, cid: Cid) -> BoxFuture<'_, Result<UnpinOutcome>>;

    /// How the daemon holds one CID; `mode` asks about that pin type only, None about any.
    fn pin_ls_cid(&self, cid: Cid, mode: Option<PinMode>) -> BoxFuture<'_, Result<PinStatus>>;

    /// Every recursive, then every direct pin, streamed (IPFS Cluster lists only recursive ones, §10.9).
    fn pin_ls(&self) -> BoxStream<'static, Result<PinnedCid>>;

    /// Moves a recursive pin from `from` to `to`, keeping `from` pinned (`pin/update?unpin=false`).
    fn pin_update(&self, from: Cid, to: Cid) -> BoxFuture<'_, Result<()>>;

    /// Dials another IPFS daemon (`swarm/connect`).
    fn swarm_connect<'a>(&'a self, multiaddr: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Peer ids the daemon is connected to (`swarm/peers`).
    fn swarm_peers(&self) -> BoxFuture<'_, Result<Vec<String>>>;

    /// Repository size and capacity (`repo/stat?size-only=true`).
    fn repo_stat(&self) -> BoxFuture<'_, Result<RepoStat>>;

    /// Garbage-collects the repository (`repo/gc`), bounded by `repogc_timeout`.
    fn repo_gc(&self) -> BoxFuture<'_, Result<GcReport>>;

    /// Stores one block without pinning it (`block/put`).
    fn block_put(&self, data: Bytes, options: BlockPutOptions) -> BoxFuture<'_, Result<BlockInfo>>;

    /// A block's bytes (`block/get`).
    fn block_get(&self, cid: Cid) -> BoxFuture<'_, Result<Bytes>>;

    /// A block's size (`block/stat`).
    fn block_stat(&self, cid: Cid) -> BoxFuture<'_, Result<BlockInfo>>;

    /// Resolves an `/ipfs/`, `/ipns/` or `/ipld/` path to the CID it ends at (`resolve`).
    fn resolve<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Cid>>;

    /// One value of the daemon's config by dotted key, e.g. `Identity.PeerID` (`config/show`).
    fn config_key<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<serde_json::Value>>;

    /// Ticks every `informer_trigger_interval` pins, unpins and block puts (never when it is 0),
    /// so the informers can republish their metrics.
    fn informer_trigger(&self) -> watch::Receiver<u64>;
}

/// After `delay`, dials every address `addresses` yields (IPFS Cluster's `connect_swarms_delay`:
/// the other peers' IPFS daemons); None when `delay` is zero (disabled). Failures are logged.
pub fn spawn_connect_swarms<F>(
    connector: Arc<dyn IpfsConnector>,
    delay: Duration,
    addresses: F,
) -> Option<JoinHandle<()>>
where
    F: Future<Output = Vec<String>> + Send + 'static,
{
    if delay.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        for addr in addresses.await {
            match connector.swarm_connect(&addr).await {
                Ok(()) => tracing::debug!(%addr, "connected IPFS daemon to a peer's daemon"),
                Err(e) => tracing::debug!(%addr, error = %e, "could not connect IPFS daemon to a peer's daemon"),
            }
        }
    }))
}
