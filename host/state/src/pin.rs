//! The IPFS Cluster `Pin` record and its JSON form (reference §1.4, §1.5).
//!
//! The JSON is IPFS Cluster's byte for byte where it matters for interoperability: field names,
//! field order (Go writes the embedded `PinOptions` first), CIDs as plain strings, times as
//! RFC 3339 with nanoseconds (zero time `"0001-01-01T00:00:00Z"`), `pin_update` and `reference`
//! always present (`null` when unset), and `mode` derived from `max_depth`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ::cid::Cid as RawCid;
use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A CID as IPFS Cluster writes it: validated by the `cid` crate (any multibase is accepted on
/// input) and kept in its canonical string form (CIDv0 base58btc, CIDv1 base32), which is what
/// Go's `Cid.String()` prints, so an export is byte-identical to IPFS Cluster's.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid {
    // The canonical text is kept next to the parsed value because the text is what every JSON
    // encode writes, and re-encoding the multibase on each write would be wasted work.
    text: String,
    raw: RawCid,
}

/// A string that is not a CID.
#[derive(Debug, thiserror::Error)]
#[error("invalid CID {input:?}: {source}")]
pub struct CidError {
    /// The string that was given.
    pub input: String,
    /// Why the `cid` crate refused it.
    #[source]
    pub source: ::cid::Error,
}

impl Cid {
    /// Parses a CID string in any multibase; the canonical form is kept.
    pub fn parse(input: &str) -> Result<Self, CidError> {
        let raw = RawCid::try_from(input).map_err(|source| CidError { input: input.to_owned(), source })?;
        Ok(Self::from_raw(raw))
    }

    /// Decodes a CID from its binary form (the store's key).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ::cid::Error> {
        RawCid::try_from(bytes).map(Self::from_raw)
    }

    /// Wraps an already parsed CID.
    pub fn from_raw(raw: RawCid) -> Self {
        Self { text: raw.to_string(), raw }
    }

    /// The canonical string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The binary form (version, codec, multihash), used as the store's key.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.raw.to_bytes()
    }

    /// The parsed CID.
    pub fn raw(&self) -> &RawCid {
        &self.raw
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({})", self.text)
    }
}

impl FromStr for Cid {
    type Err = CidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Cid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Cid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Cid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CID string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cid, E> {
                Cid::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A point in time as Go's `time.Time` encodes it in JSON: RFC 3339 with up to nine fractional
/// digits (trailing zeros dropped) and the writer's UTC offset, which is kept so a record
/// round-trips unchanged. The default is Go's zero time, `0001-01-01T00:00:00Z`, meaning "unset".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub OffsetDateTime);

impl Timestamp {
    /// Go's zero `time.Time`, which IPFS Cluster writes for an unset time.
    pub const ZERO: Timestamp = Timestamp(time::macros::datetime!(0001-01-01 00:00 UTC));
    /// The Unix epoch, which IPFS Cluster also treats as "unset" for `expire_at`.
    pub const UNIX_EPOCH: Timestamp = Timestamp(OffsetDateTime::UNIX_EPOCH);

    /// The current time in UTC.
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }

    /// True for Go's zero time and for the Unix epoch (IPFS Cluster's `ExpiredAt` treats both as
    /// "no expiry").
    pub fn is_unset(&self) -> bool {
        *self == Self::ZERO || *self == Self::UNIX_EPOCH
    }

    /// Parses RFC 3339.
    pub fn parse(input: &str) -> Result<Self, time::error::Parse> {
        OffsetDateTime::parse(input, &Rfc3339).map(Self)
    }

    /// `self` plus `d`, or `None` when that is past the years a timestamp can hold (9999): for
    /// durations that come from a request, where `+` would panic.
    pub fn checked_add(&self, d: std::time::Duration) -> Option<Self> {
        let d = time::Duration::try_from(d).ok()?;
        self.0.checked_add(d).map(Self)
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Self::ZERO
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Go refuses to marshal years outside 0..=9999 too; so does RFC 3339.
        let s = self.0.format(&Rfc3339).map_err(|e| serde::ser::Error::custom(format!("time {:?}: {e}", self.0)))?;
        serializer.serialize_str(&s)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Go's time.UnmarshalJSON treats `null` as "leave unset".
        let s: Option<std::borrow::Cow<'de, str>> = Option::deserialize(deserializer)?;
        match s {
            None => Ok(Self::ZERO),
            Some(s) => Self::parse(&s).map_err(|e| de::Error::custom(format!("invalid RFC 3339 time {s:?}: {e}"))),
        }
    }
}

/// How deep a pin goes, in IPFS Cluster's `mode` option.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinMode {
    /// The whole DAG (`max_depth` -1).
    #[default]
    Recursive,
    /// The root block only (`max_depth` 0).
    Direct,
}

impl PinMode {
    /// `max_depth` for this mode (IPFS Cluster's `PinMode.ToPinDepth`).
    pub fn to_max_depth(self) -> i32 {
        match self {
            PinMode::Recursive => -1,
            PinMode::Direct => 0,
        }
    }

    /// The mode for a `max_depth` (IPFS Cluster's `PinDepth.ToPinMode`: 0 is direct, anything
    /// else — -1, or 1 for shards — is recursive).
    pub fn from_max_depth(depth: i32) -> Self {
        if depth == 0 { PinMode::Direct } else { PinMode::Recursive }
    }

    /// IPFS Cluster's `PinModeFromString`: `direct` is direct; anything else, including an empty
    /// or unknown value, is recursive.
    pub fn from_str_lenient(s: &str) -> Self {
        if s == "direct" { PinMode::Direct } else { PinMode::Recursive }
    }
}

/// IPFS Cluster's pin types. The internal `bad-type` and `all` are not representable: a record
/// carrying them is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PinType {
    /// Ordinary data pin.
    #[default]
    #[serde(rename = "pin")]
    Data,
    /// Sharded-DAG meta pin (tracked, never pinned in IPFS).
    #[serde(rename = "meta-pin")]
    Meta,
    /// The cluster DAG of a sharded add.
    #[serde(rename = "clusterdag-pin")]
    ClusterDag,
    /// One shard of a sharded add (`max_depth` 1).
    #[serde(rename = "shard-pin")]
    Shard,
}

/// IPFS Cluster's `PinOptions`, flattened into [`Pin`] in JSON.
///
/// Peer IDs and multiaddrs are kept as strings for now (this crate does not depend on libp2p);
/// the daemon validates them where they enter (API, `state import`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PinOptions {
    /// Minimum number of peers; -1 everywhere, 0 "use the cluster default".
    pub replication_factor_min: i32,
    /// Maximum number of peers; -1 everywhere, 0 "use the cluster default".
    pub replication_factor_max: i32,
    /// Free-form pin name.
    pub name: String,
    /// Recursive or direct. In a [`Pin`] this always agrees with [`Pin::max_depth`], which is
    /// the stored truth (IPFS Cluster does not store the mode either).
    pub mode: PinMode,
    /// Shard size for sharded adds, in bytes.
    pub shard_size: u64,
    /// Peers the user asked for (peer ID strings).
    pub user_allocations: Vec<String>,
    /// When the pin expires; [`Timestamp::ZERO`] for never.
    pub expire_at: Timestamp,
    /// User metadata. Sorted, as Go writes maps and as IPFS Cluster stores it.
    pub metadata: BTreeMap<String, String>,
    /// CID of an existing pin this one updates from.
    pub pin_update: Option<Cid>,
    /// Multiaddrs (each with `/p2p/<id>`) that hold the content.
    pub origins: Vec<String>,
}

/// An IPFS Cluster pin: the record the pinset holds, keyed by [`Pin::cid`].
///
/// Equality ignores `options.mode`: in a pin, `max_depth` is the truth and the mode is derived
/// from it (on encode and on decode), so a stale `options.mode` is not a difference.
#[derive(Clone, Debug, Eq)]
pub struct Pin {
    /// Options (flattened into the JSON object).
    pub options: PinOptions,
    /// The pinned CID.
    pub cid: Cid,
    /// Pin type.
    pub pin_type: PinType,
    /// Peers the pin is allocated to; empty when pinned everywhere.
    pub allocations: Vec<String>,
    /// -1 recursive, 0 direct, 1 for shards; never below -1.
    pub max_depth: i32,
    /// meta ↔ clusterdag ↔ shard link.
    pub reference: Option<Cid>,
    /// Set by the peer when the pin is committed.
    pub timestamp: Timestamp,
}

impl PartialEq for Pin {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.options, &other.options);
        a.replication_factor_min == b.replication_factor_min
            && a.replication_factor_max == b.replication_factor_max
            && a.name == b.name
            && a.shard_size == b.shard_size
            && a.user_allocations == b.user_allocations
            && a.expire_at == b.expire_at
            && a.metadata == b.metadata
            && a.pin_update == b.pin_update
            && a.origins == b.origins
            && self.cid == other.cid
            && self.pin_type == other.pin_type
            && self.allocations == other.allocations
            && self.max_depth == other.max_depth
            && self.reference == other.reference
            && self.timestamp == other.timestamp
    }
}

impl Pin {
    /// A data pin with default options (recursive), like IPFS Cluster's `PinCid`.
    pub fn new(cid: Cid) -> Self {
        Self::with_options(cid, PinOptions::default())
    }

    /// Like IPFS Cluster's `PinWithOpts`: `max_depth` follows `options.mode`; the timestamp is
    /// left unset (the committing peer sets it).
    pub fn with_options(cid: Cid, options: PinOptions) -> Self {
        let max_depth = options.mode.to_max_depth();
        Self {
            options,
            cid,
            pin_type: PinType::Data,
            allocations: Vec::new(),
            max_depth,
            reference: None,
            timestamp: Timestamp::ZERO,
        }
    }

    /// The mode, derived from `max_depth` as IPFS Cluster does.
    pub fn mode(&self) -> PinMode {
        PinMode::from_max_depth(self.max_depth)
    }
}

/// The JSON object as IPFS Cluster writes it, borrowed from a [`Pin`]. Field order is Go's:
/// the embedded `PinOptions` first.
#[derive(Serialize)]
struct PinOut<'a> {
    replication_factor_min: i32,
    replication_factor_max: i32,
    name: &'a str,
    mode: PinMode,
    shard_size: u64,
    user_allocations: Option<&'a [String]>,
    expire_at: &'a Timestamp,
    metadata: Option<&'a BTreeMap<String, String>>,
    pin_update: Option<&'a Cid>,
    origins: &'a [String],
    cid: &'a Cid,
    #[serde(rename = "type")]
    pin_type: PinType,
    allocations: &'a [String],
    max_depth: i32,
    reference: Option<&'a Cid>,
    timestamp: &'a Timestamp,
}

impl Serialize for Pin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let o = &self.options;
        // Empty-collection encodings follow what IPFS Cluster emits for a pin read back from its
        // state (`ProtoUnmarshal`): allocations and origins are made with `make` (`[]`), while
        // user_allocations (not stored) and metadata (a nil proto map) come back nil (`null`).
        PinOut {
            replication_factor_min: o.replication_factor_min,
            replication_factor_max: o.replication_factor_max,
            name: &o.name,
            mode: self.mode(),
            shard_size: o.shard_size,
            user_allocations: (!o.user_allocations.is_empty()).then_some(&o.user_allocations[..]),
            expire_at: &o.expire_at,
            metadata: (!o.metadata.is_empty()).then_some(&o.metadata),
            pin_update: o.pin_update.as_ref(),
            origins: &o.origins,
            cid: &self.cid,
            pin_type: self.pin_type,
            allocations: &self.allocations,
            max_depth: self.max_depth,
            reference: self.reference.as_ref(),
            timestamp: &self.timestamp,
        }
        .serialize(serializer)
    }
}

/// The JSON object as read. Every field but `cid` may be missing or `null`, as Go's decoder
/// allows; unknown fields are ignored, as Go does.
#[derive(Deserialize)]
struct PinIn {
    #[serde(default)]
    replication_factor_min: Option<i32>,
    #[serde(default)]
    replication_factor_max: Option<i32>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    shard_size: Option<u64>,
    #[serde(default)]
    user_allocations: Option<Vec<String>>,
    #[serde(default)]
    expire_at: Timestamp,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pin_update: Option<Cid>,
    #[serde(default)]
    origins: Option<Vec<String>>,
    cid: Cid,
    #[serde(rename = "type", default)]
    pin_type: Option<PinType>,
    #[serde(default)]
    allocations: Option<Vec<String>>,
    #[serde(default)]
    max_depth: Option<i32>,
    #[serde(default)]
    reference: Option<Cid>,
    #[serde(default)]
    timestamp: Timestamp,
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let p = PinIn::deserialize(deserializer)?;
        // max_depth is the truth (IPFS Cluster stores only it and derives the mode on read).
        // When it is absent we derive it from `mode` rather than take Go's zero value (0, which
        // would silently turn a "recursive" pin into a direct one).
        let max_depth = match p.max_depth {
            Some(d) => d,
            None => p.mode.as_deref().map_or(PinMode::Recursive, PinMode::from_str_lenient).to_max_depth(),
        };
        if max_depth < -1 {
            return Err(de::Error::custom(format!(
                "pin {}: max_depth {max_depth} is invalid (-1 recursive, 0 direct, >0 depth)",
                p.cid
            )));
        }
        Ok(Pin {
            options: PinOptions {
                replication_factor_min: p.replication_factor_min.unwrap_or(0),
                replication_factor_max: p.replication_factor_max.unwrap_or(0),
                name: p.name.unwrap_or_default(),
                mode: PinMode::from_max_depth(max_depth),
                shard_size: p.shard_size.unwrap_or(0),
                user_allocations: p.user_allocations.unwrap_or_default(),
                expire_at: p.expire_at,
                metadata: p.metadata.unwrap_or_default(),
                pin_update: p.pin_update,
                origins: p.origins.unwrap_or_default(),
            },
            cid: p.cid,
            pin_type: p.pin_type.unwrap_or_default(),
            allocations: p.allocations.unwrap_or_default(),
            max_depth,
            reference: p.reference,
            timestamp: p.timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const V0: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";
    const V1: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

    /// A pin as IPFS Cluster's `state export` writes it (one NDJSON line).
    const CLUSTER_PIN: &str = r#"{"replication_factor_min":2,"replication_factor_max":3,"name":"my pin","mode":"recursive","shard_size":104857600,"user_allocations":null,"expire_at":"0001-01-01T00:00:00Z","metadata":{"a":"1","b":"two"},"pin_update":null,"origins":["/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"],"cid":"QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco","type":"pin","allocations":["12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA","QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"],"max_depth":-1,"reference":null,"timestamp":"2024-03-05T10:11:12.123456789+01:00"}"#;

    /// A direct shard-linked pin with an expiry, a pin_update and an empty allocation list.
    const CLUSTER_DIRECT: &str = r#"{"replication_factor_min":-1,"replication_factor_max":-1,"name":"","mode":"direct","shard_size":0,"user_allocations":["12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"],"expire_at":"2030-01-02T03:04:05.5Z","metadata":null,"pin_update":"QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco","origins":[],"cid":"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi","type":"clusterdag-pin","allocations":[],"max_depth":0,"reference":"QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco","timestamp":"2024-03-05T09:11:12Z"}"#;

    #[test]
    fn cluster_json_round_trips_byte_for_byte() {
        for literal in [CLUSTER_PIN, CLUSTER_DIRECT] {
            let pin: Pin = serde_json::from_str(literal).expect("parse cluster pin");
            let back = serde_json::to_string(&pin).expect("encode");
            assert_eq!(back, literal);
        }
    }

    #[test]
    fn fields_decode_to_the_model() {
        let pin: Pin = serde_json::from_str(CLUSTER_DIRECT).expect("parse");
        assert_eq!(pin.cid.as_str(), V1);
        assert_eq!(pin.pin_type, PinType::ClusterDag);
        assert_eq!(pin.max_depth, 0);
        assert_eq!(pin.mode(), PinMode::Direct);
        assert_eq!(pin.options.mode, PinMode::Direct);
        assert_eq!(pin.reference.as_ref().map(Cid::as_str), Some(V0));
        assert_eq!(pin.options.pin_update.as_ref().map(Cid::as_str), Some(V0));
        assert_eq!(pin.options.replication_factor_min, -1);
        assert_eq!(pin.options.user_allocations.len(), 1);
        assert!(!pin.options.expire_at.is_unset());
        assert!(pin.options.metadata.is_empty());
        assert_eq!(pin.options.expire_at.0.nanosecond(), 500_000_000);
    }

    #[test]
    fn mode_follows_max_depth_not_the_mode_field() {
        // IPFS Cluster stores max_depth only and derives mode from it on read.
        let json = format!(r#"{{"cid":"{V0}","mode":"direct","max_depth":-1}}"#);
        let pin: Pin = serde_json::from_str(&json).expect("parse");
        assert_eq!(pin.mode(), PinMode::Recursive);
        let out: Value = serde_json::to_value(&pin).expect("encode");
        assert_eq!(out["mode"], "recursive");

        // A shard's depth 1 is recursive, as ToPinMode says.
        let json = format!(r#"{{"cid":"{V0}","type":"shard-pin","max_depth":1}}"#);
        let pin: Pin = serde_json::from_str(&json).expect("parse");
        assert_eq!(pin.mode(), PinMode::Recursive);

        // Without max_depth, the mode decides.
        let json = format!(r#"{{"cid":"{V0}","mode":"direct"}}"#);
        let pin: Pin = serde_json::from_str(&json).expect("parse");
        assert_eq!(pin.max_depth, 0);
    }

    #[test]
    fn minimal_object_gets_go_defaults_and_full_output() {
        let pin: Pin = serde_json::from_str(&format!(r#"{{"cid":"{V0}"}}"#)).expect("parse");
        assert_eq!(pin, Pin::new(Cid::parse(V0).expect("cid")));
        let out: Value = serde_json::to_value(&pin).expect("encode");
        let obj = out.as_object().expect("object");
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "replication_factor_min",
                "replication_factor_max",
                "name",
                "mode",
                "shard_size",
                "user_allocations",
                "expire_at",
                "metadata",
                "pin_update",
                "origins",
                "cid",
                "type",
                "allocations",
                "max_depth",
                "reference",
                "timestamp"
            ]
        );
        assert_eq!(out["pin_update"], Value::Null);
        assert_eq!(out["reference"], Value::Null);
        assert_eq!(out["expire_at"], "0001-01-01T00:00:00Z");
        assert_eq!(out["timestamp"], "0001-01-01T00:00:00Z");
        assert_eq!(out["type"], "pin");
        assert_eq!(out["max_depth"], -1);
    }

    #[test]
    fn any_multibase_is_accepted_and_canonicalised() {
        let canonical = Cid::parse(V1).expect("v1");
        // The same CIDv1 in base58btc ('z') and base16 ('f').
        let b58 = format!("z{}", multibase_b58(&canonical.to_bytes()));
        let parsed = Cid::parse(&b58).expect("base58 v1");
        assert_eq!(parsed.as_str(), V1);
        let hex: String = canonical.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(Cid::parse(&format!("f{hex}")).expect("base16").as_str(), V1);
        assert_eq!(Cid::from_bytes(&canonical.to_bytes()).expect("bytes"), canonical);
    }

    fn multibase_b58(bytes: &[u8]) -> String {
        // Tiny base58btc encoder for the test only.
        const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let mut digits: Vec<u8> = Vec::new();
        for &byte in bytes {
            let mut carry = byte as u32;
            for d in digits.iter_mut() {
                carry += (*d as u32) << 8;
                *d = (carry % 58) as u8;
                carry /= 58;
            }
            while carry > 0 {
                digits.push((carry % 58) as u8);
                carry /= 58;
            }
        }
        let zeros = bytes.iter().take_while(|&&b| b == 0).count();
        std::iter::repeat_n('1', zeros).chain(digits.iter().rev().map(|&d| ALPHABET[d as usize] as char)).collect()
    }

    #[test]
    fn bad_records_are_refused_with_a_reason() {
        let cases = [
            (r#"{"cid":"not-a-cid"}"#, "invalid CID"),
            (r#"{"cid":null}"#, "CID string"),
            (r#"{"name":"x"}"#, "missing field `cid`"),
            (&format!(r#"{{"cid":"{V0}","type":"bad-type"}}"#) as &str, "unknown variant"),
            (&format!(r#"{{"cid":"{V0}","max_depth":-2}}"#), "max_depth -2"),
            (&format!(r#"{{"cid":"{V0}","timestamp":"yesterday"}}"#), "RFC 3339"),
            (&format!(r#"{{"cid":"{V0}","reference":"Qm"}}"#), "invalid CID"),
        ];
        for (json, want) in cases {
            let err = serde_json::from_str::<Pin>(json).expect_err(json).to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn unset_times() {
        assert!(Timestamp::ZERO.is_unset());
        assert!(Timestamp::parse("1970-01-01T00:00:00Z").expect("epoch").is_unset());
        assert!(!Timestamp::now().is_unset());
        let t: Timestamp = serde_json::from_str("null").expect("null time");
        assert_eq!(t, Timestamp::ZERO);
    }

    #[test]
    fn adding_a_duration_is_checked() {
        let t = Timestamp::parse("2024-01-01T00:00:00Z").expect("time");
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(t.checked_add(hour), Timestamp::parse("2024-01-01T01:00:00Z").ok());
        let last = Timestamp::parse("9999-12-31T23:59:59Z").expect("time");
        assert_eq!(last.checked_add(hour), None);
        assert_eq!(t.checked_add(std::time::Duration::MAX), None);
    }
}
