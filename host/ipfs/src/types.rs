//! The values the connector hands back, independent of how a daemon spells them on the wire.

use cid::Cid;
use tokio::sync::watch;

/// The daemon's identity, from `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpfsId {
    /// The daemon's libp2p peer id as the daemon printed it.
    pub peer_id: String,
    /// The daemon's swarm multiaddrs (empty for an offline daemon).
    pub addresses: Vec<String>,
    /// The daemon's agent string (`kubo/0.x`, `js-ipfs/0.18.1`), when sent.
    pub agent_version: Option<String>,
}

/// How deep a pin holds its DAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinMode {
    /// The root and everything below it.
    Recursive,
    /// Only the root block.
    Direct,
}

impl PinMode {
    /// The name Kubo uses in `type=` and in pin listings.
    pub fn as_str(self) -> &'static str {
        match self {
            PinMode::Recursive => "recursive",
            PinMode::Direct => "direct",
        }
    }
}

/// How a daemon holds a CID, from `pin/ls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinStatus {
    /// Pinned with its whole DAG.
    Recursive,
    /// Pinned alone.
    Direct,
    /// Kept only because a recursive pin covers it (IPFS Cluster counts this as not pinned).
    Indirect,
    /// Not pinned.
    Unpinned,
}

impl PinStatus {
    /// True when the daemon holds the CID the way `mode` asks (what IPFS Cluster's `IsPinned` checks).
    pub fn satisfies(self, mode: PinMode) -> bool {
        matches!((self, mode), (PinStatus::Recursive, PinMode::Recursive) | (PinStatus::Direct, PinMode::Direct))
    }

    /// True for direct and recursive pins (what the tracker reports as `pinned`).
    pub fn is_pinned(self) -> bool {
        matches!(self, PinStatus::Recursive | PinStatus::Direct)
    }

    /// Parses a pin type as daemons print it; Kubo says `indirect through <cid>` for indirect pins.
    pub(crate) fn from_wire(s: &str) -> Option<PinStatus> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "recursive" => Some(PinStatus::Recursive),
            "direct" => Some(PinStatus::Direct),
            _ if s.starts_with("indirect") => Some(PinStatus::Indirect),
            _ => None,
        }
    }
}

/// One entry of a full pin listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedCid {
    /// The pinned CID, as the daemon printed it (any multibase, normalised by parsing).
    pub cid: Cid,
    /// Recursive or direct.
    pub status: PinStatus,
}

/// A request to pin one CID.
#[derive(Debug)]
pub struct PinRequest {
    /// What to pin.
    pub cid: Cid,
    /// Recursive or direct.
    pub mode: PinMode,
    /// For recursive pins, the depth limit (`max-depth`); None = unlimited.
    pub max_depth: Option<u32>,
    /// Swarm addresses of peers that have the content; up to 10 are dialled before pinning.
    pub origins: Vec<String>,
    /// Pin by updating this recursive pin (`pin/update`) when the daemon holds it.
    pub update_from: Option<Cid>,
    /// Receives the daemon's progress (blocks fetched so far) when it reports any.
    pub progress: Option<watch::Sender<u64>>,
}

impl PinRequest {
    /// A pin request with no options.
    pub fn new(cid: Cid, mode: PinMode) -> Self {
        PinRequest { cid, mode, max_depth: None, origins: Vec::new(), update_from: None, progress: None }
    }
}

/// What a successful pin did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutcome {
    /// The daemon already held the CID this way; nothing was sent.
    AlreadyPinned,
    /// `pin/add` finished.
    Pinned,
    /// `pin/update` from the request's `update_from` finished.
    Updated,
}

/// What a successful unpin did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnpinOutcome {
    /// The pin was removed.
    Unpinned,
    /// The daemon said it was not pinned (counts as success, as in IPFS Cluster).
    NotPinned,
}

/// Repository size and capacity, from `repo/stat?size-only=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepoStat {
    /// Bytes used.
    pub repo_size: u64,
    /// Configured capacity in bytes.
    pub storage_max: u64,
    /// Number of objects, when the daemon reports it (size-only answers may leave it out).
    pub num_objects: Option<u64>,
}

impl RepoStat {
    /// `StorageMax − RepoSize`, floored at zero (the `freespace` metric; zero makes it invalid).
    pub fn free_space(&self) -> u64 {
        self.storage_max.saturating_sub(self.repo_size)
    }
}

/// The result of `repo/gc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blocks removed.
    pub removed: Vec<Cid>,
    /// Errors the daemon reported per block (`stream-errors=true`).
    pub errors: Vec<String>,
}

/// A block's CID and size, from `block/put` or `block/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// The block's CID.
    pub cid: Cid,
    /// Its size in bytes.
    pub size: u64,
}

/// How `block/put` should address a block. All unset = the daemon's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockPutOptions {
    /// `cid-codec` (Kubo ≥ 0.13), e.g. `raw`, `dag-pb`, `dag-cbor`.
    pub cid_codec: Option<String>,
    /// `mhtype`, e.g. `sha2-256`.
    pub mhtype: Option<String>,
    /// `mhlen`, the digest length.
    pub mhlen: Option<u32>,
    /// Legacy `format` (`v0`, `raw`, `cbor`); the only one js-ipfs honours. Kubo refuses it together
    /// with `cid_codec`, so set one or the other.
    pub format: Option<String>,
}

impl BlockPutOptions {
    /// Options that reproduce `cid`'s codec and hash (what IPFS Cluster takes from the first block).
    /// Codecs and hashes without a known name are left to the daemon's defaults.
    pub fn for_cid(cid: &Cid) -> Self {
        let codec = match cid.codec() {
            0x55 => Some("raw"),
            0x70 => Some("dag-pb"),
            0x71 => Some("dag-cbor"),
            0x0129 => Some("dag-json"),
            0x0200 => Some("json"),
            _ => None,
        };
        let hash = cid.hash();
        let mhtype = match hash.code() {
            0x12 => Some("sha2-256"),
            0x13 => Some("sha2-512"),
            0x16 => Some("sha3-256"),
            0x1e => Some("blake3"),
            0xb220 => Some("blake2b-256"),
            _ => None,
        };
        BlockPutOptions {
            cid_codec: codec.map(str::to_owned),
            mhlen: mhtype.map(|_| u32::from(hash.size())),
            mhtype: mhtype.map(str::to_owned),
            format: None,
        }
    }
}
