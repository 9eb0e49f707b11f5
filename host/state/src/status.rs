//! IPFS Cluster's pin tracker statuses (reference §9): JSON names, bit values and filters.

use std::fmt;

use serde::de::Deserializer;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// A pin's state on one peer, as the pin tracker reports it (reference §9). The JSON form is the
/// status name; a name this version does not know reads as [`TrackerStatus::Undefined`], as Go's
/// `TrackerStatusFromString` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TrackerStatus {
    /// No status (as a filter: everything).
    #[default]
    Undefined,
    /// The peer did not answer.
    ClusterError,
    /// Pinning failed.
    PinError,
    /// Unpinning failed.
    UnpinError,
    /// Pinned in IPFS.
    Pinned,
    /// Being pinned.
    Pinning,
    /// Being unpinned.
    Unpinning,
    /// Not pinned (not in the pinset, or unpinned).
    Unpinned,
    /// In the pinset, allocated elsewhere.
    Remote,
    /// Waiting in the pin queue.
    PinQueued,
    /// Waiting in the unpin queue.
    UnpinQueued,
    /// Meta pin of a sharded DAG.
    Sharded,
    /// Allocated here and not pinned in IPFS, with no operation running.
    UnexpectedlyUnpinned,
}

impl TrackerStatus {
    /// Every status, in bit order.
    pub const ALL: [TrackerStatus; 13] = [
        TrackerStatus::Undefined,
        TrackerStatus::ClusterError,
        TrackerStatus::PinError,
        TrackerStatus::UnpinError,
        TrackerStatus::Pinned,
        TrackerStatus::Pinning,
        TrackerStatus::Unpinning,
        TrackerStatus::Unpinned,
        TrackerStatus::Remote,
        TrackerStatus::PinQueued,
        TrackerStatus::UnpinQueued,
        TrackerStatus::Sharded,
        TrackerStatus::UnexpectedlyUnpinned,
    ];

    /// The JSON name (`pin_error`, `unexpectedly_unpinned`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TrackerStatus::Undefined => "undefined",
            TrackerStatus::ClusterError => "cluster_error",
            TrackerStatus::PinError => "pin_error",
            TrackerStatus::UnpinError => "unpin_error",
            TrackerStatus::Pinned => "pinned",
            TrackerStatus::Pinning => "pinning",
            TrackerStatus::Unpinning => "unpinning",
            TrackerStatus::Unpinned => "unpinned",
            TrackerStatus::Remote => "remote",
            TrackerStatus::PinQueued => "pin_queued",
            TrackerStatus::UnpinQueued => "unpin_queued",
            TrackerStatus::Sharded => "sharded",
            TrackerStatus::UnexpectedlyUnpinned => "unexpectedly_unpinned",
        }
    }

    /// IPFS Cluster's bit value (0 for undefined); used by [`TrackerFilter`].
    pub fn bit(self) -> u32 {
        match self {
            TrackerStatus::Undefined => 0,
            TrackerStatus::ClusterError => 1 << 1,
            TrackerStatus::PinError => 1 << 2,
            TrackerStatus::UnpinError => 1 << 3,
            TrackerStatus::Pinned => 1 << 4,
            TrackerStatus::Pinning => 1 << 5,
            TrackerStatus::Unpinning => 1 << 6,
            TrackerStatus::Unpinned => 1 << 7,
            TrackerStatus::Remote => 1 << 8,
            TrackerStatus::PinQueued => 1 << 9,
            TrackerStatus::UnpinQueued => 1 << 10,
            TrackerStatus::Sharded => 1 << 11,
            TrackerStatus::UnexpectedlyUnpinned => 1 << 12,
        }
    }

    /// The status with this JSON name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for TrackerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for TrackerStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TrackerStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from_name(&name).unwrap_or_default())
    }
}

/// A `filter=` of `GET /pins`: a set of tracker statuses (IPFS Cluster's bit mask). The empty
/// filter matches everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TrackerFilter(u32);

impl TrackerFilter {
    /// Matches every status.
    pub const ALL: TrackerFilter = TrackerFilter(0);

    /// Parses a comma-separated list of status names (spaces are ignored; so are unknown names,
    /// and the composite names `error` and `queued`). `None` when the text is not empty but
    /// names no known status, which the API answers with 400 `invalid filter value`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut bits = 0u32;
        for name in text.split(',') {
            let name: String = name.chars().filter(|c| *c != ' ').collect();
            bits |= match name.as_str() {
                "error" => {
                    TrackerStatus::ClusterError.bit() | TrackerStatus::PinError.bit() | TrackerStatus::UnpinError.bit()
                }
                "queued" => TrackerStatus::PinQueued.bit() | TrackerStatus::UnpinQueued.bit(),
                other => TrackerStatus::from_name(other).map_or(0, TrackerStatus::bit),
            };
        }
        if bits == 0 && !text.is_empty() { None } else { Some(TrackerFilter(bits)) }
    }

    /// A filter of exactly these statuses.
    pub fn of(statuses: &[TrackerStatus]) -> Self {
        TrackerFilter(statuses.iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// IPFS Cluster's `Match`: the empty filter and the undefined status match everything.
    pub fn matches(self, status: TrackerStatus) -> bool {
        self.0 == 0 || status == TrackerStatus::Undefined || self.0 & status.bit() != 0
    }

    /// True for the filter that matches everything.
    pub fn is_all(self) -> bool {
        self.0 == 0
    }

    /// Whether answering needs the pinset and IPFS: IPFS Cluster lists only the operations in
    /// flight when the filter names none of pinned, unexpectedly_unpinned, sharded or remote.
    pub fn needs_state(self) -> bool {
        let state = TrackerStatus::Pinned.bit()
            | TrackerStatus::UnexpectedlyUnpinned.bit()
            | TrackerStatus::Sharded.bit()
            | TrackerStatus::Remote.bit();
        self.0 == 0 || self.0 & state != 0
    }

    /// The statuses in the filter (empty for [`TrackerFilter::ALL`]).
    pub fn statuses(self) -> Vec<TrackerStatus> {
        TrackerStatus::ALL.into_iter().filter(|s| s.bit() & self.0 != 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_when_they_need_the_state() {
        let f = TrackerFilter::parse("pinned, error").expect("filter");
        assert!(f.matches(TrackerStatus::Pinned) && f.matches(TrackerStatus::UnpinError));
        assert!(!f.matches(TrackerStatus::Remote));
        assert!(f.needs_state());
        let q = TrackerFilter::parse("queued,bogus").expect("one known name is enough");
        assert!(q.matches(TrackerStatus::UnpinQueued) && !q.needs_state());
        assert!(TrackerFilter::parse("bogus,nonsense").is_none());
        assert!(TrackerFilter::parse("").expect("empty").matches(TrackerStatus::Remote));
        assert_eq!(
            serde_json::to_string(&TrackerStatus::UnexpectedlyUnpinned).expect("json"),
            "\"unexpectedly_unpinned\""
        );
        assert_eq!(TrackerStatus::UnexpectedlyUnpinned.bit(), 4096);
    }
}
