//! The Pinning Service API's JSON objects (spec `components.schemas`), with the spec's field
//! names. Public so that Rust clients (and tests) can read and write them.

use std::collections::BTreeMap;

use cairn_state::{Cid, Timestamp};
use serde::{Deserialize, Serialize};

/// The spec's `Status` of a pin request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting in a queue (also: committed, no peer working on it yet).
    Queued,
    /// Being fetched and pinned.
    Pinning,
    /// Pinned.
    Pinned,
    /// Some allocated peer failed to pin it.
    Failed,
}

impl Status {
    /// Every status, in the spec's order.
    pub const ALL: [Status; 4] = [Status::Queued, Status::Pinning, Status::Pinned, Status::Failed];

    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Pinning => "pinning",
            Status::Pinned => "pinned",
            Status::Failed => "failed",
        }
    }

    /// The status with this JSON name (exact, as the spec's enum).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The spec's `Pin`: what a client asks to pin, and how a pin request is described back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinObject {
    /// The CID, pinned recursively.
    pub cid: Cid,
    /// Optional name (at most 255 characters); `""` when none.
    #[serde(default)]
    pub name: String,
    /// Multiaddrs (each ending in `/p2p/<peer id>`) that provide the data; at most 20.
    #[serde(default)]
    pub origins: Vec<String>,
    /// String metadata, stored as the cluster pin's metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

/// The spec's `PinStatus`: a pin request and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinStatus {
    /// The opaque request id (the pin's CID and commit time; see the module docs).
    pub requestid: String,
    /// Where the request stands.
    pub status: Status,
    /// When the pin was committed (RFC 3339); the key of `before`/`after` paging.
    pub created: Timestamp,
    /// The pin request.
    pub pin: PinObject,
    /// IPFS multiaddrs of peers that hold or fetch the data (1–20 when any is known).
    pub delegates: Vec<String>,
    /// Vendor information; empty.
    #[serde(default)]
    pub info: BTreeMap<String, String>,
}

/// The spec's `PinResults`: one page of `GET /pins`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinResults {
    /// How many pin requests match the filters (all pages).
    pub count: u64,
    /// The newest `limit` of them, newest first.
    pub results: Vec<PinStatus>,
}

/// The spec's `Failure`: the body of every error of this API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The error.
    pub error: FailureError,
}

/// The `error` of a [`Failure`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureError {
    /// A code-like string (`BAD_REQUEST`, `UNAUTHORIZED`, `NOT_FOUND`, ...).
    pub reason: String,
    /// What went wrong, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl Failure {
    /// A failure with a reason code and details.
    pub fn new(reason: impl Into<String>, details: impl Into<String>) -> Self {
        Failure { error: FailureError { reason: reason.into(), details: Some(details.into()) } }
    }
}

/// The `reason` code of an HTTP status: its canonical phrase in upper snake case, as the spec's
/// examples (`BAD_REQUEST`, `UNAUTHORIZED`, `NOT_FOUND`, `INTERNAL_SERVER_ERROR`).
pub fn reason_code(status: u16) -> String {
    let phrase = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason());
    match phrase {
        Some(phrase) => phrase
            .chars()
            .filter_map(|c| match c {
                ' ' | '-' => Some('_'),
                c if c.is_ascii_alphanumeric() => Some(c.to_ascii_uppercase()),
                _ => None,
            })
            .collect(),
        None => "ERROR".to_owned(),
    }
}
