//! Cairn's embedded IPFS node: a rust-ipfs 0.16 node inside the cairn process that implements
//! [`cairn_ipfs::IpfsConnector`], so a cluster peer needs no separate Kubo daemon.
//!
//! The node keeps blocks, pins and its key in a data folder; it speaks bitswap over TCP, noise
//! and yamux, by default inside a private network keyed with the cluster secret, and it never
//! joins the public IPFS network (no DHT, mDNS, relay, AutoNAT, UPnP, default bootstrap peers).
//! Pins fetch the whole DAG from connected peers and fail when no new block arrives for
//! `pin_timeout`, as IPFS Cluster's `ipfshttp` connector does with Kubo.

mod config;
mod error;
mod fetch;
mod node;

pub use config::{DEFAULT_STORAGE_MAX, EmbeddedIpfsConfig};
pub use error::EmbeddedError;
pub use node::{AGENT_VERSION, EmbeddedIpfs, IDENTITY_FILE};
