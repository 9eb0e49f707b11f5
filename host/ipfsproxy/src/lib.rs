//! Cairn's IPFS proxy (IPFS Cluster's `ipfsproxy`, reference §3): a Kubo RPC endpoint that
//! answers pins, adds and repo calls with cluster operations and forwards everything else to
//! the IPFS daemon.
//!
//! ```no_run
//! # async fn run(cluster: std::sync::Arc<dyn cairn_api::ClusterApi>, extras: std::sync::Arc<dyn cairn_ipfsproxy::ProxyCluster>) -> Result<(), cairn_ipfsproxy::ProxyError> {
//! use std::sync::Arc;
//! use cairn_api::{ListenAddr, OpenPolicy};
//! use cairn_ipfsproxy::{ProxyConfig, serve};
//!
//! let node = cairn_ipfs::DaemonAddr::parse("/ip4/127.0.0.1/tcp/5001").expect("multiaddr");
//! let config = ProxyConfig::new(vec![ListenAddr::Tcp("127.0.0.1:9095".parse().unwrap())], node);
//! let proxy = serve(config, cluster, extras, Arc::new(OpenPolicy)).await?;
//! println!("proxy on {:?}", proxy.local_addrs());
//! proxy.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Hijacked (`POST`/`GET`/`PUT` only): `pin/add`, `pin/rm`, `pin/ls` (also `/{arg}`),
//! `pin/update`, `add`, `repo/stat`, `repo/gc`, and `block/put` / `dag/put` with `pin=true`.
//! Their answers carry the daemon's CORS headers (§3.3). Everything else, and every `OPTIONS`
//! and `HEAD`, is streamed to the daemon and back, trailers included.
//!
//! Deliberate differences from IPFS Cluster v1.1.6:
//! - every request passes the [`cairn_api::RequestPolicy`] first (`api: ipfsproxy`), `OPTIONS`
//!   included; a denial is a Kubo-style error with the denial's status and headers;
//! - `Server: cairn/ipfsproxy/<version>` on hijacked answers;
//! - `pin/add` / `pin/rm` without an argument: 400 `argument "ipfs-path" is required` (Kubo's
//!   answer; IPFS Cluster answers 500 with a path parse error); a bad argument names the path;
//! - `add?only-hash=true` is refused and nothing is added (IPFS Cluster writes the error and
//!   adds anyway); a body that is not multipart keeps IPFS Cluster's 500, a malformed first part
//!   or a body over `add_limits` is 400;
//! - `pin/ls?arg=`: only a missing pin is "not pinned"; other cluster errors keep their message;
//! - `repo/stat` answers `{"RepoSize","StorageMax","NumObjects"}`: IPFS Cluster leaves
//!   `NumObjects` out, and kubo-rpc-client's `repo.stat()` then fails (`BigInt(undefined)`);
//! - `repo/gc` also reports peers that could not collect at all (IPFS Cluster drops them);
//!   lines come in peer id order;
//! - a daemon that cannot be reached on a forwarded call is 502 with a Kubo-style body (Go's
//!   reverse proxy sends an empty 502);
//! - forwarded calls always send `TE: trailers` to the daemon (hyper-based daemons send trailers
//!   only when asked), and trailers reach every HTTP/1.1 client, asked or not;
//! - a failed extract-headers request is not cached (IPFS Cluster caches the empty result for
//!   one TTL);
//! - no `log_file`: requests are logged with `tracing` (target `cairn_ipfsproxy::access`).

#![warn(missing_docs)]

mod body;
mod config;
// Connection timeouts and trailers work as in the REST API server: one implementation.
use cairn_api::{conn, trailers};
mod error;
mod forward;
mod handlers;
mod headers;
mod server;
mod service;
mod upstream;

pub use cairn_api::ApiFuture;
pub use config::{DEFAULT_EXTRACT_HEADERS_PATH, DEFAULT_EXTRACT_HEADERS_TTL, ProxyConfig};
pub use error::ProxyError;
pub use server::{ProxyServer, serve};

/// The daemons' repository sizes, summed over peers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepoStat {
    /// Bytes used (`RepoSize`).
    pub repo_size: u64,
    /// Bytes allowed (`StorageMax`).
    pub storage_max: u64,
    /// Blocks stored (`NumObjects`); 0 when the peers were asked `size-only`, as IPFS Cluster
    /// asks them.
    pub num_objects: u64,
}

/// What the proxy needs from the cluster beyond [`cairn_api::ClusterApi`].
pub trait ProxyCluster: Send + Sync {
    /// `repo/stat` (`size-only`) of every consensus peer's IPFS daemon, summed; peers that
    /// refuse (authorization) or fail are skipped, as IPFS Cluster does.
    fn repo_stat_all(&self) -> ApiFuture<'_, RepoStat>;
}
