//! Cairn's IPFS connector: what a cluster peer asks of its IPFS daemon ([`IpfsConnector`]) and
//! the Kubo RPC client that does it over HTTP ([`IpfsHttp`], IPFS Cluster's `ipfshttp`).
//!
//! Beyond IPFS Cluster: unix-socket daemons, extra headers and Basic credentials for a daemon
//! behind an authenticating proxy, both recursive and direct pins in full listings, and tolerant
//! parsing of non-Kubo daemons (js-ipfs: numbers as strings, CIDs in any multibase, no progress
//! lines, no `pin/update`). With the `test-daemon` feature, [`testing::IpfsDaemon`] runs a real
//! js-ipfs daemon for integration tests.

mod config;
mod connector;
mod error;
pub mod go_duration;
mod ipfshttp;
mod parse;
mod transport;
mod types;

#[cfg(feature = "test-daemon")]
pub mod testing;

pub use config::{BasicAuth, DaemonAddr, IpfsHttpConfig};
pub use connector::{IpfsConnector, spawn_connect_swarms};
pub use error::{IpfsError, Result};
pub use ipfshttp::IpfsHttp;
pub use types::{
    BlockInfo, BlockPutOptions, GcReport, IpfsId, PinMode, PinOutcome, PinRequest, PinStatus, PinnedCid, RepoStat,
    UnpinOutcome,
};

/// The `cid` crate this API speaks, re-exported so callers use the same version.
pub use cid;

#[cfg(test)]
mod tests;
