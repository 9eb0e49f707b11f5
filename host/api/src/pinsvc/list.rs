//! `GET /pins`: the filters of the spec's query, and the newest `limit` matches kept in a
//! bounded heap while the cluster's status stream goes by, so memory does not grow with the
//! pinset.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

use cairn_state::{Cid, Timestamp};

use super::requestid;
use super::types::Status;
use crate::error::ApiError;
use crate::query::{self, Query};
use crate::types::GlobalPinInfo;

/// The spec's bounds.
pub(crate) const MAX_CIDS: usize = 10;
pub(crate) const MAX_NAME_CHARS: usize = 255;
pub(crate) const DEFAULT_LIMIT: usize = 10;
pub(crate) const MAX_LIMIT: usize = 1000;

/// How `name` is compared (the spec's `TextMatchingStrategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Match {
    /// Whole name, case-sensitive.
    #[default]
    Exact,
    /// Whole name, case-insensitive.
    Iexact,
    /// Substring, case-sensitive.
    Partial,
    /// Substring, case-insensitive.
    Ipartial,
}

/// The filters of one `GET /pins`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListQuery {
    /// Only these CIDs (1–10), asked one by one instead of listing the whole pinset.
    pub(crate) cids: Option<Vec<Cid>>,
    /// The name to match, already lower-cased for the case-insensitive modes.
    name: Option<String>,
    matching: Match,
    /// The wanted statuses; `pinned` alone when the query names none (the spec's default).
    statuses: Vec<Status>,
    /// Exclusive bounds on `created`, Unix nanoseconds.
    before: Option<i128>,
    after: Option<i128>,
    /// How many results to return.
    pub(crate) limit: usize,
    /// Entries the pin's metadata must contain.
    meta: BTreeMap<String, String>,
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request(message)
}

/// A parameter's value; an empty value counts as absent, so `?name=&status=` is no filter.
fn param<'a>(q: &'a Query, key: &str) -> Option<&'a str> {
    Some(q.get(key)).filter(|v| !v.is_empty())
}

fn time_param(q: &Query, key: &str) -> Result<Option<i128>, ApiError> {
    param(q, key)
        .map(|v| {
            Timestamp::parse(v)
                .map(requestid::nanos)
                .map_err(|e| bad(format!("{key}: {v:?} is not an RFC 3339 timestamp: {e}")))
        })
        .transpose()
}

impl ListQuery {
    /// Reads and checks the query; unknown keys are ignored.
    pub(crate) fn parse(q: &Query) -> Result<Self, ApiError> {
        let cids = match param(q, "cid") {
            None => None,
            Some(list) => {
                let mut cids: Vec<Cid> = Vec::new();
                for item in list.split(',') {
                    let cid = query::parse_cid(item.trim()).map_err(|e| bad(format!("cid: {}", e.message())))?;
                    // uniqueItems: a repeated CID is asked once.
                    if !cids.contains(&cid) {
                        cids.push(cid);
                    }
                }
                if cids.len() > MAX_CIDS {
                    return Err(bad(format!("cid: at most {MAX_CIDS} CIDs may be given, got {}", cids.len())));
                }
                Some(cids)
            }
        };

        let matching = match param(q, "match") {
            None | Some("exact") => Match::Exact,
            Some("iexact") => Match::Iexact,
            Some("partial") => Match::Partial,
            Some("ipartial") => Match::Ipartial,
            Some(other) => {
                return Err(bad(format!("match: {other:?} is not one of exact, iexact, partial, ipartial")));
            }
        };
        let name = match param(q, "name") {
            Some(n) if n.chars().count() > MAX_NAME_CHARS => {
                return Err(bad(format!("name: longer than {MAX_NAME_CHARS} characters")));
            }
            Some(n) if matches!(matching, Match::Iexact | Match::Ipartial) => Some(n.to_lowercase()),
            other => other.map(str::to_owned),
        };

        let statuses = match param(q, "status") {
            None => vec![Status::Pinned],
            Some(list) => {
                let mut statuses = Vec::new();
                for item in list.split(',') {
                    let status = Status::from_name(item.trim()).ok_or_else(|| {
                        bad(format!("status: {item:?} is not one of queued, pinning, pinned, failed"))
                    })?;
                    if !statuses.contains(&status) {
                        statuses.push(status);
                    }
                }
                statuses
            }
        };

        let before = time_param(q, "before")?;
        let after = time_param(q, "after")?;

        let limit = match param(q, "limit") {
            None => DEFAULT_LIMIT,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => return Err(bad(format!("limit: {v:?} is not an integer from 1 to {MAX_LIMIT}"))),
            },
        };

        let meta = match param(q, "meta") {
            None => BTreeMap::new(),
            Some(json) => serde_json::from_str::<BTreeMap<String, String>>(json)
                .map_err(|e| bad(format!("meta: not a JSON object of string values: {e}")))?,
        };

        Ok(Self { cids, name, matching, statuses, before, after, limit, meta })
    }

    /// Whether a pin passes the filters other than status.
    pub(crate) fn matches(&self, gpi: &GlobalPinInfo) -> bool {
        let created = requestid::nanos(gpi.created);
        if self.before.is_some_and(|b| created >= b) || self.after.is_some_and(|a| created <= a) {
            return false;
        }
        if let Some(wanted) = &self.name {
            let ok = match self.matching {
                Match::Exact => gpi.name == *wanted,
                Match::Iexact => gpi.name.to_lowercase() == *wanted,
                Match::Partial => gpi.name.contains(wanted.as_str()),
                Match::Ipartial => gpi.name.to_lowercase().contains(wanted.as_str()),
            };
            if !ok {
                return false;
            }
        }
        self.meta.iter().all(|(k, v)| gpi.metadata.get(k) == Some(v))
    }

    /// Whether a pin with this status is wanted.
    pub(crate) fn wants(&self, status: Status) -> bool {
        self.statuses.contains(&status)
    }
}

/// A match in the heap: ordered by `created`, then CID, so the order is total and stable.
pub(crate) struct Entry {
    pub(crate) created: i128,
    pub(crate) status: Status,
    pub(crate) gpi: GlobalPinInfo,
}

impl Entry {
    fn key(&self) -> (i128, &Cid) {
        (self.created, &self.gpi.cid)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// The newest `limit` matches seen and how many matched in all.
pub(crate) struct Newest {
    limit: usize,
    // A min-heap: its top is the oldest kept entry, the one a newer match replaces.
    heap: BinaryHeap<Reverse<Entry>>,
    pub(crate) count: u64,
}

impl Newest {
    /// An empty selection of at most `limit` entries.
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, heap: BinaryHeap::with_capacity(limit.min(MAX_LIMIT) + 1), count: 0 }
    }

    /// Counts a match and keeps it if it is among the newest.
    pub(crate) fn push(&mut self, entry: Entry) {
        self.count += 1;
        if self.heap.len() < self.limit {
            self.heap.push(Reverse(entry));
        } else if let Some(mut oldest) = self.heap.peek_mut()
            && entry > oldest.0
        {
            oldest.0 = entry;
        }
    }

    /// The kept entries, newest first.
    pub(crate) fn into_newest_first(self) -> Vec<Entry> {
        // Sorting `Reverse`s ascending puts the newest first.
        self.heap.into_sorted_vec().into_iter().map(|Reverse(e)| e).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";

    fn parse(q: &str) -> Result<ListQuery, String> {
        ListQuery::parse(&Query::parse(q)).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn defaults_and_bounds() {
        let q = parse("").expect("empty");
        assert_eq!((q.limit, q.statuses.clone(), q.cids.clone()), (10, vec![Status::Pinned], None));
        assert_eq!(parse("limit=1000&unknown=x").expect("max").limit, 1000);
        for bad in ["limit=0", "limit=1001", "limit=ten", "limit=-1", "match=fuzzy", "status=done", "status=pinned,"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse(&format!("name={}", "n".repeat(256))).is_err());
        assert!(parse(&format!("name={}", "é".repeat(255))).is_ok(), "255 characters, more bytes");
        assert!(parse(&format!("cid={}", [CID; 11].join(","))).is_ok(), "duplicates are asked once");
        assert!(parse("before=yesterday").is_err());
        assert!(parse("meta=%7B%22a%22%3A1%7D").is_err(), "meta values are strings");
        assert!(parse("meta=nope").is_err());
        let q = parse("meta=%7B%22a%22%3A%22b%22%7D&name=AbC&match=ipartial").expect("meta");
        assert_eq!(q.meta.get("a").map(String::as_str), Some("b"));
        assert_eq!(q.name.as_deref(), Some("abc"));
    }

    #[test]
    fn newest_keeps_the_top_and_counts_all() {
        let cid = Cid::parse(CID).expect("cid");
        let mut newest = Newest::new(3);
        for created in [5, 1, 9, 7, 3, 8] {
            newest.push(Entry { created, status: Status::Pinned, gpi: GlobalPinInfo::new(cid.clone()) });
        }
        assert_eq!(newest.count, 6);
        let kept: Vec<i128> = newest.into_newest_first().iter().map(|e| e.created).collect();
        assert_eq!(kept, [9, 8, 7]);
    }
}
