//! The REST API's JSON objects other than pins (reference §1.4), with IPFS Cluster's field names
//! and order. Pins are `cairn_state::Pin` and `PinOptions`, re-exported by the crate root.
//!
//! Encoding choices, where Go's output depends on how a value was built:
//! - lists and maps are written as `[]` / `{}` when empty (Go writes `null` for a nil slice, `[]`
//!   for an empty one; clients treat both alike), and `null` is accepted for them on input;
//! - `omitempty` fields are left out exactly where IPFS Cluster's tags say so; struct-typed
//!   fields (`ipfs`, `key`, `cid`) are never omitted, as Go never omits structs;
//! - peer ids and multiaddrs are strings (validated where they enter the API).

use std::collections::BTreeMap;

use cairn_state::{Cid, PinType, Timestamp};
pub use cairn_state::{TrackerFilter, TrackerStatus};
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

/// `null` or a value: Go decodes `null` into a slice or map as "empty".
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The error body of every failed request: `{"code":404,"message":"not found"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The HTTP status, repeated in the body.
    pub code: u16,
    /// What went wrong.
    pub message: String,
}

/// `GET /version`: `{"version":"1.1.6"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The peer's version string.
    pub version: String,
}

/// `POST /token`: `{"token":"<jwt>"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The issued token.
    pub token: String,
}

/// The IPFS daemon part of [`Id`] (Go's `IPFSID`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpfsId {
    /// The IPFS daemon's peer id; left out when unknown (`omitempty`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The IPFS daemon's addresses.
    #[serde(deserialize_with = "null_as_default")]
    pub addresses: Vec<String>,
    /// Why the daemon could not be asked, if it could not.
    pub error: String,
}

/// `GET /id` and the items of `GET /peers` (Go's `ID`). An unreachable peer is an `Id` with only
/// `id` and `error` set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Id {
    /// Cluster peer id.
    pub id: String,
    /// Cluster swarm addresses, each ending in `/p2p/<id>`.
    #[serde(deserialize_with = "null_as_default")]
    pub addresses: Vec<String>,
    /// The current peerset.
    #[serde(deserialize_with = "null_as_default")]
    pub cluster_peers: Vec<String>,
    /// Known addresses of those peers.
    #[serde(deserialize_with = "null_as_default")]
    pub cluster_peers_addresses: Vec<String>,
    /// Peer version, e.g. `1.1.6`.
    pub version: String,
    /// Build commit (empty in practice).
    pub commit: String,
    /// Peer RPC protocol id.
    pub rpc_protocol_version: String,
    /// Why this peer's information is incomplete, if it is.
    pub error: String,
    /// The peer's IPFS daemon.
    pub ipfs: IpfsId,
    /// Human-readable peer name.
    pub peername: String,
}

/// A `filter=` of `GET /allocations`: a set of pin types. The empty filter (and `all`) matches
/// every type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PinTypeFilter(u8);

impl PinTypeFilter {
    /// Matches every pin type.
    pub const ALL: PinTypeFilter = PinTypeFilter(0b1111);

    fn bit(t: PinType) -> u8 {
        match t {
            PinType::Data => 1,
            PinType::Meta => 2,
            PinType::ClusterDag => 4,
            PinType::Shard => 8,
        }
    }

    /// Parses a comma-separated list of `pin`, `meta-pin`, `clusterdag-pin`, `shard-pin`, `all`
    /// (an empty element means `all`, as in IPFS Cluster). `None` when every element is
    /// unknown, which the API answers with 400 `invalid filter value`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut bits = 0u8;
        for name in text.split(',') {
            bits |= match name {
                "pin" => Self::bit(PinType::Data),
                "meta-pin" => Self::bit(PinType::Meta),
                "clusterdag-pin" => Self::bit(PinType::ClusterDag),
                "shard-pin" => Self::bit(PinType::Shard),
                "all" | "" => Self::ALL.0,
                _ => 0,
            };
        }
        (bits != 0).then_some(PinTypeFilter(bits))
    }

    /// A filter of exactly these types.
    pub fn of(types: &[PinType]) -> Self {
        PinTypeFilter(types.iter().fold(0, |bits, t| bits | Self::bit(*t)))
    }

    /// Whether a pin of this type passes.
    pub fn matches(self, pin_type: PinType) -> bool {
        self.0 & Self::bit(pin_type) != 0
    }
}

/// One peer's view of a pin, as it sits in [`GlobalPinInfo::peer_map`] (Go's `PinInfoShort`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PinInfoShort {
    /// The peer's name.
    pub peername: String,
    /// The peer's IPFS daemon id; left out when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ipfs_peer_id: String,
    /// The peer's IPFS daemon addresses; left out when empty.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub ipfs_peer_addresses: Vec<String>,
    /// The tracker status.
    pub status: TrackerStatus,
    /// When the status was last set.
    pub timestamp: Timestamp,
    /// The last error, if the status is an error.
    pub error: String,
    /// How many times the operation was tried.
    pub attempt_count: u32,
    /// Whether the pin is in the priority queue.
    pub priority_pin: bool,
}

/// A pin's state on one peer with the pin's identity (Go's `PinInfo`). The REST API turns it into
/// a one-peer [`GlobalPinInfo`] before answering ([`PinInfo::to_global`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinInfo {
    /// The pin's CID.
    pub cid: Cid,
    /// The pin's name.
    #[serde(default)]
    pub name: String,
    /// The cluster peer that reports.
    #[serde(default)]
    pub peer: String,
    /// The pin's allocations.
    #[serde(default, deserialize_with = "null_as_default")]
    pub allocations: Vec<String>,
    /// The pin's origins.
    #[serde(default, deserialize_with = "null_as_default")]
    pub origins: Vec<String>,
    /// When the pin was created.
    #[serde(default)]
    pub created: Timestamp,
    /// The pin's metadata.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
    /// The per-peer part, flattened into this object as Go embeds it.
    #[serde(flatten)]
    pub info: PinInfoShort,
}

impl PinInfo {
    /// A [`GlobalPinInfo`] with this peer only (Go's `ToGlobal`).
    pub fn to_global(&self) -> GlobalPinInfo {
        let mut gpi = GlobalPinInfo::new(self.cid.clone());
        gpi.add(self.clone());
        gpi
    }
}

/// A pin's state across the cluster (`GET /pins`, `GET /pins/{cid}`, recover).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalPinInfo {
    /// The pin's CID.
    pub cid: Cid,
    /// The pin's name.
    #[serde(default)]
    pub name: String,
    /// The pin's allocations.
    #[serde(default, deserialize_with = "null_as_default")]
    pub allocations: Vec<String>,
    /// The pin's origins.
    #[serde(default, deserialize_with = "null_as_default")]
    pub origins: Vec<String>,
    /// When the pin was created.
    #[serde(default)]
    pub created: Timestamp,
    /// The pin's metadata.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
    /// Cluster peer id → that peer's view.
    #[serde(default, deserialize_with = "null_as_default")]
    pub peer_map: BTreeMap<String, PinInfoShort>,
}

impl GlobalPinInfo {
    /// An object for `cid` with no peers yet.
    pub fn new(cid: Cid) -> Self {
        Self {
            cid,
            name: String::new(),
            allocations: Vec::new(),
            origins: Vec::new(),
            created: Timestamp::ZERO,
            metadata: BTreeMap::new(),
            peer_map: BTreeMap::new(),
        }
    }

    /// Merges one peer's answer (Go's `Add`): the pin-level fields come from the first answer, or
    /// from any answer that is not a `cluster_error`.
    pub fn add(&mut self, info: PinInfo) {
        let first = self.peer_map.is_empty();
        if first || !matches!(info.info.status, TrackerStatus::ClusterError | TrackerStatus::Undefined) {
            self.cid = info.cid;
            self.name = info.name;
            self.allocations = info.allocations;
            self.origins = info.origins;
            self.created = info.created;
            self.metadata = info.metadata;
        }
        self.peer_map.insert(info.peer, info.info);
    }

    /// Whether any peer's status passes the filter.
    pub fn matches(&self, filter: TrackerFilter) -> bool {
        self.peer_map.values().any(|p| filter.matches(p.status))
    }
}

/// A metric as the monitor holds it (`GET /monitor/metrics/{name}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metric {
    /// Metric name (`ping`, `freespace`, `tag:group`, ...).
    pub name: String,
    /// The peer it describes.
    pub peer: String,
    /// The value, as a string.
    pub value: String,
    /// Expiry, Unix nanoseconds.
    pub expire: i64,
    /// Whether the value is usable.
    pub valid: bool,
    /// Allocation weight.
    pub weight: i64,
    /// Whether the allocator partitions peers by this metric.
    pub partitionable: bool,
    /// When this peer received it, Unix nanoseconds.
    pub received_at: i64,
}

impl Metric {
    /// A valid metric about `peer` that expires `ttl` after `now` (Unix ns).
    pub fn new(
        name: impl Into<String>,
        peer: impl Into<String>,
        value: impl Into<String>,
        ttl: std::time::Duration,
        now: i64,
    ) -> Self {
        Metric {
            name: name.into(),
            peer: peer.into(),
            value: value.into(),
            expire: now.saturating_add(i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX)),
            valid: true,
            ..Metric::default()
        }
    }

    /// Whether it has expired at `now` (Unix ns).
    pub fn expired(&self, now: i64) -> bool {
        now >= self.expire
    }

    /// Whether it should be ignored at `now`: invalid or expired (Go's `Metric.Discard`).
    pub fn discard(&self, now: i64) -> bool {
        !self.valid || self.expired(now)
    }
}

/// An expired metric (`GET /health/alerts`): the metric's fields plus `triggered_at`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The metric that expired (flattened, as Go embeds it).
    #[serde(flatten)]
    pub metric: Metric,
    /// When the alert was raised.
    #[serde(default)]
    pub triggered_at: Timestamp,
}

/// libp2p bandwidth counters of one protocol (`GET /health/bandwidth`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bandwidth {
    /// Bytes received.
    pub total_in: i64,
    /// Bytes sent.
    pub total_out: i64,
    /// Receive rate, bytes per second.
    pub rate_in: f64,
    /// Send rate, bytes per second.
    pub rate_out: f64,
}

/// The cluster's connectivity (`GET /health/graph`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectGraph {
    /// The peer that built the graph.
    pub cluster_id: String,
    /// Cluster peer id → peer name.
    #[serde(deserialize_with = "null_as_default")]
    pub id_to_peername: BTreeMap<String, String>,
    /// IPFS daemon id → the IPFS daemons it is connected to.
    #[serde(deserialize_with = "null_as_default")]
    pub ipfs_links: BTreeMap<String, Vec<String>>,
    /// Cluster peer id → the cluster peers it is connected to.
    #[serde(deserialize_with = "null_as_default")]
    pub cluster_links: BTreeMap<String, Vec<String>>,
    /// Cluster peer id → whether this peer trusts it.
    #[serde(deserialize_with = "null_as_default")]
    pub cluster_trust_links: BTreeMap<String, bool>,
    /// Cluster peer id → its IPFS daemon id.
    #[serde(deserialize_with = "null_as_default")]
    pub cluster_to_ipfs: BTreeMap<String, String>,
}

/// One entry of an IPFS `repo gc` answer (Go's `IPFSRepoGC`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpfsRepoGc {
    /// The removed block; `null` on an error entry (Go never omits this struct-typed field).
    #[serde(default)]
    pub key: Option<Cid>,
    /// The error, if this entry is one; left out when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// One peer's garbage collection (Go's `RepoGC`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RepoGc {
    /// Cluster peer id.
    pub peer: String,
    /// Peer name.
    pub peername: String,
    /// What was removed.
    #[serde(deserialize_with = "null_as_default")]
    pub keys: Vec<IpfsRepoGc>,
    /// Why the peer could not collect, if it could not; left out when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `POST /ipfs/gc`: every peer's collection, by peer id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GlobalRepoGc {
    /// Cluster peer id → that peer's collection.
    #[serde(deserialize_with = "null_as_default")]
    pub peer_map: BTreeMap<String, RepoGc>,
}

impl GlobalRepoGc {
    /// A one-peer answer, as `POST /ipfs/gc?local=true` returns.
    pub fn from_local(gc: RepoGc) -> Self {
        Self { peer_map: BTreeMap::from([(gc.peer.clone(), gc)]) }
    }
}

/// One line of `POST /add` (Go's `AddedOutput`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedOutput {
    /// File or directory name.
    #[serde(default)]
    pub name: String,
    /// Its CID; `null` in progress-only lines.
    #[serde(default)]
    pub cid: Option<Cid>,
    /// Bytes processed so far (progress lines); left out when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
    /// Size of the node; left out when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Where the root was allocated (last line only); left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub allocations: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const V0: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";
    const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().expect("object").keys().map(String::as_str).collect()
    }

    #[test]
    fn id_has_go_field_names_and_order() {
        let id = Id {
            id: PEER.into(),
            addresses: vec![format!("/ip4/127.0.0.1/tcp/9096/p2p/{PEER}")],
            version: "1.1.6".into(),
            rpc_protocol_version: "/ipfscluster/1.0/rpc".into(),
            peername: "peer0".into(),
            ..Id::default()
        };
        let v = serde_json::to_value(&id).expect("encode");
        assert_eq!(
            keys(&v),
            [
                "id",
                "addresses",
                "cluster_peers",
                "cluster_peers_addresses",
                "version",
                "commit",
                "rpc_protocol_version",
                "error",
                "ipfs",
                "peername"
            ]
        );
        // The IPFS id is omitempty; the struct itself is always there.
        assert_eq!(v["ipfs"], json!({"addresses": [], "error": ""}));

        // An ID as IPFS Cluster writes it, with Go's nulls, reads back.
        let go = format!(
            r#"{{"id":"{PEER}","addresses":null,"cluster_peers":["{PEER}"],"cluster_peers_addresses":null,"version":"1.1.6","commit":"","rpc_protocol_version":"/ipfscluster/1.0/rpc","error":"","ipfs":{{"id":"{PEER}","addresses":["/ip4/127.0.0.1/tcp/4001"],"error":""}},"peername":"p"}}"#
        );
        let back: Id = serde_json::from_str(&go).expect("decode go ID");
        assert_eq!(back.cluster_peers, [PEER]);
        assert_eq!(back.ipfs.id, PEER);
        assert!(back.addresses.is_empty());
    }

    #[test]
    fn global_pin_info_matches_cluster_json() {
        // A GlobalPinInfo as `ipfs-cluster-ctl --enc=json status` prints it.
        let go = format!(
            r#"{{"cid":"{V0}","name":"n","allocations":[],"origins":[],"created":"2024-03-05T10:11:12Z","metadata":null,"peer_map":{{"{PEER}":{{"peername":"p0","ipfs_peer_id":"{PEER}","status":"pin_error","timestamp":"2024-03-05T10:11:13.5Z","error":"boom","attempt_count":2,"priority_pin":false}}}}}}"#
        );
        let gpi: GlobalPinInfo = serde_json::from_str(&go).expect("decode");
        let peer = &gpi.peer_map[PEER];
        assert_eq!(peer.status, TrackerStatus::PinError);
        assert_eq!(peer.attempt_count, 2);
        let out = serde_json::to_value(&gpi).expect("encode");
        assert_eq!(keys(&out), ["cid", "name", "allocations", "origins", "created", "metadata", "peer_map"]);
        let p = &out["peer_map"][PEER];
        assert_eq!(
            keys(p),
            ["peername", "ipfs_peer_id", "status", "timestamp", "error", "attempt_count", "priority_pin"]
        );
        assert_eq!(p["timestamp"], "2024-03-05T10:11:13.5Z");
        // ipfs_peer_addresses is omitempty.
        assert!(p.get("ipfs_peer_addresses").is_none());
    }

    #[test]
    fn pin_info_flattens_the_short_part_after_its_own_fields() {
        let info = PinInfo {
            cid: Cid::parse(V0).expect("cid"),
            name: String::new(),
            peer: PEER.into(),
            allocations: vec![],
            origins: vec![],
            created: Timestamp::ZERO,
            metadata: BTreeMap::new(),
            info: PinInfoShort { status: TrackerStatus::Pinned, ..PinInfoShort::default() },
        };
        let v = serde_json::to_value(&info).expect("encode");
        assert_eq!(
            keys(&v),
            [
                "cid",
                "name",
                "peer",
                "allocations",
                "origins",
                "created",
                "metadata",
                "peername",
                "status",
                "timestamp",
                "error",
                "attempt_count",
                "priority_pin"
            ]
        );
        let gpi = info.to_global();
        assert_eq!(gpi.peer_map[PEER].status, TrackerStatus::Pinned);
    }

    #[test]
    fn tracker_status_names_and_filters() {
        for s in TrackerStatus::ALL {
            assert_eq!(TrackerStatus::from_name(s.name()), Some(s));
            assert_eq!(serde_json::to_value(s).expect("encode"), s.name());
        }
        let unknown: TrackerStatus = serde_json::from_str(r#""bug""#).expect("decode");
        assert_eq!(unknown, TrackerStatus::Undefined);

        assert_eq!(TrackerFilter::parse(""), Some(TrackerFilter::ALL));
        assert_eq!(TrackerFilter::parse("nonsense"), None);
        let f = TrackerFilter::parse("pinned, nonsense").expect("one known name");
        assert!(f.matches(TrackerStatus::Pinned) && !f.matches(TrackerStatus::Pinning));
        let errors = TrackerFilter::parse("error").expect("composite");
        assert_eq!(
            errors.statuses(),
            [TrackerStatus::ClusterError, TrackerStatus::PinError, TrackerStatus::UnpinError]
        );
        let queued = TrackerFilter::parse("queued").expect("composite");
        assert!(queued.matches(TrackerStatus::UnpinQueued));
        // Undefined matches any filter, as in IPFS Cluster.
        assert!(f.matches(TrackerStatus::Undefined));
    }

    #[test]
    fn pin_type_filter_follows_cluster_rules() {
        assert_eq!(PinTypeFilter::parse(""), Some(PinTypeFilter::ALL));
        assert_eq!(PinTypeFilter::parse("bogus"), None);
        let f = PinTypeFilter::parse("pin,bogus").expect("pin is known");
        assert!(f.matches(PinType::Data) && !f.matches(PinType::Shard));
        assert!(PinTypeFilter::parse("all").expect("all").matches(PinType::Meta));
    }

    #[test]
    fn metric_alert_gc_and_added_output_shapes() {
        let alert = Alert {
            metric: Metric { name: "ping".into(), peer: PEER.into(), expire: 5, valid: true, ..Metric::default() },
            triggered_at: Timestamp::ZERO,
        };
        let v = serde_json::to_value(&alert).expect("encode");
        assert_eq!(
            keys(&v),
            ["name", "peer", "value", "expire", "valid", "weight", "partitionable", "received_at", "triggered_at"]
        );

        let gc = GlobalRepoGc::from_local(RepoGc {
            peer: PEER.into(),
            peername: "p".into(),
            keys: vec![IpfsRepoGc { key: Some(Cid::parse(V0).expect("cid")), error: String::new() }],
            error: String::new(),
        });
        assert_eq!(
            serde_json::to_value(&gc).expect("encode"),
            json!({"peer_map": {PEER: {"peer": PEER, "peername": "p", "keys": [{"key": V0}]}}})
        );

        let added =
            AddedOutput { name: "f".into(), cid: Some(Cid::parse(V0).expect("cid")), size: 7, ..Default::default() };
        assert_eq!(serde_json::to_string(&added).expect("encode"), format!(r#"{{"name":"f","cid":"{V0}","size":7}}"#));
        let progress = AddedOutput { name: "f".into(), bytes: 3, ..Default::default() };
        assert_eq!(serde_json::to_string(&progress).expect("encode"), r#"{"name":"f","cid":null,"bytes":3}"#);

        let graph = ConnectGraph { cluster_id: PEER.into(), ..Default::default() };
        assert_eq!(
            keys(&serde_json::to_value(&graph).expect("encode")),
            ["cluster_id", "id_to_peername", "ipfs_links", "cluster_links", "cluster_trust_links", "cluster_to_ipfs"]
        );
        assert_eq!(
            serde_json::to_string(&ErrorBody { code: 404, message: "not found".into() }).expect("encode"),
            r#"{"code":404,"message":"not found"}"#
        );
    }
}
