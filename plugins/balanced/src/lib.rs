//! The `balanced` allocator plugin: IPFS Cluster v1.1.6's `allocator.balanced`, together
//! with the replication bookkeeping of its `allocate.go`, as a Cairn allocator component.
//!
//! Given the pin's replication factors, the peers that already hold it and every eligible
//! peer's metrics, it keeps the still-valid current allocations and tops them up with peers
//! ordered by the metrics named in `allocate_by`: peers are partitioned by the first metric,
//! each partition by the next one, and so on; partitions are ranked by weight and peers are
//! taken round-robin across partitions, so that with the default `["tag:group", "freespace"]`
//! replicas spread over groups and prefer the peers with the most free space.
//!
//! The crate is also an `rlib`, so the same code runs natively in unit tests and benchmarks.

use std::collections::{HashMap, HashSet};

use cairn_policy_sdk::types::{AllocationRequest, Candidate, Metric};
use cairn_policy_sdk::{Allocator, LogLevel, log};
use serde_json::Value;

/// IPFS Cluster's default `allocator.balanced.allocate_by`.
pub const DEFAULT_ALLOCATE_BY: [&str; 2] = ["tag:group", "freespace"];

/// IPFS Cluster's balanced allocator, configured with the metric names it partitions by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balanced {
    allocate_by: Vec<String>,
}

impl Default for Balanced {
    fn default() -> Self {
        Self { allocate_by: DEFAULT_ALLOCATE_BY.iter().map(|name| (*name).to_owned()).collect() }
    }
}

impl Balanced {
    /// An allocator partitioning by `allocate_by`, outermost metric first. An empty list keeps
    /// the default, as IPFS Cluster does.
    pub fn new(allocate_by: Vec<String>) -> Self {
        if allocate_by.is_empty() { Self::default() } else { Self { allocate_by } }
    }

    /// The metric names peers are partitioned by, outermost first.
    pub fn allocate_by(&self) -> &[String] {
        &self.allocate_by
    }

    /// The candidates that carry every `allocate_by` metric, with those metrics in
    /// `allocate_by` order. A peer listed twice keeps its first entry.
    fn usable_peers<'a>(&self, candidates: &'a [Candidate]) -> HashMap<&'a str, Vec<&'a Metric>> {
        let mut usable = HashMap::new();
        // IPFS Cluster keys the metric sets by name but requires each peer to hold
        // `len(allocate_by)` of them, so a name listed twice makes every peer fall short.
        let distinct: HashSet<&str> = self.allocate_by.iter().map(String::as_str).collect();
        if distinct.len() != self.allocate_by.len() {
            return usable;
        }
        for candidate in candidates {
            let metrics: Option<Vec<&Metric>> = self
                .allocate_by
                .iter()
                .map(|name| candidate.metrics.iter().find(|m| m.name == *name))
                .collect();
            if let Some(metrics) = metrics {
                usable.entry(candidate.peer_id.as_str()).or_insert(metrics);
            }
        }
        usable
    }

    /// `peers` (all usable) in the balanced allocator's order.
    fn order<'a>(
        &self,
        peers: &[&'a str],
        usable: &HashMap<&'a str, Vec<&'a Metric>>,
    ) -> Vec<&'a str> {
        let metrics: Vec<&[&Metric]> =
            peers.iter().map(|p| usable.get(p).map(Vec::as_slice).unwrap_or_default()).collect();
        let members: Vec<usize> = (0..peers.len()).collect();
        let mut root = Level::build(&metrics, &members, 0);
        std::iter::from_fn(|| root.next_peer()).map(|i| peers[i]).collect()
    }
}

impl Allocator for Balanced {
    fn from_config(config: &str) -> Result<Self, String> {
        Ok(Self::new(parse_allocate_by(config)?.unwrap_or_default()))
    }

    fn allocate(&self, req: &AllocationRequest) -> Result<Vec<String>, String> {
        let min = i64::from(req.pin.replication_factor_min);
        let max = i64::from(req.pin.replication_factor_max);
        if min + max == 0 {
            return Err(format!("bad replication factors: {min}/{max}"));
        }
        if min < 0 && max < 0 {
            // "Everywhere": no allocations, every peer pins.
            return Ok(Vec::new());
        }

        let usable = self.usable_peers(&req.candidates);
        // A peer belongs to the first of current / priority / candidate that lists it, and
        // only once; request order is kept so results are deterministic (IPFS Cluster's
        // map iteration leaves these ties in random order).
        let mut placed = HashSet::new();
        let current = claim(req.current.iter().map(String::as_str), &usable, &mut placed);
        let priority = claim(req.priority.iter().map(String::as_str), &usable, &mut placed);
        let candidates =
            claim(req.candidates.iter().map(|c| c.peer_id.as_str()), &usable, &mut placed);

        let n_current = current.len() as i64;
        let needed = min - n_current;
        let wanted = max - n_current;

        if wanted < 0 {
            // Over-allocated: drop the last current peers.
            let keep = usize::try_from(n_current + wanted).unwrap_or(0);
            return Ok(current[..keep].iter().map(|p| (*p).to_owned()).collect());
        }
        if needed <= 0 {
            // Enough replicas already: IPFS Cluster returns the pin's allocations as they
            // were, without topping up towards max.
            return Ok(req.current.clone());
        }

        let available: Vec<&str> = priority.iter().chain(&candidates).copied().collect();
        if (available.len() as i64) < needed {
            return Err(not_enough_peers(&req.pin.cid, needed, wanted, &available));
        }

        let mut ordered = self.order(&priority, &usable);
        ordered.extend(self.order(&candidates, &usable));
        // The ordering keeps every peer, but IPFS Cluster re-checks what the allocator
        // returned; keep that guard so a future ordering that vetoes peers stays correct.
        if (ordered.len() as i64) < needed {
            return Err(not_enough_peers(&req.pin.cid, needed, wanted, &ordered));
        }
        let extra = usize::try_from(wanted).unwrap_or(0).min(ordered.len());
        Ok(current.iter().chain(&ordered[..extra]).map(|p| (*p).to_owned()).collect())
    }
}

cairn_policy_sdk::export_allocator!(Balanced);

/// The usable `peers` not yet in `placed`, in order, each once; they join `placed`.
fn claim<'a, M>(
    peers: impl Iterator<Item = &'a str>,
    usable: &HashMap<&'a str, M>,
    placed: &mut HashSet<&'a str>,
) -> Vec<&'a str> {
    peers.filter(|p| usable.contains_key(p) && placed.insert(*p)).collect()
}

/// `allocate_by` from the plugin's JSON config: `None` when the config is `null` (or blank)
/// or the key is absent or `null`.
fn parse_allocate_by(config: &str) -> Result<Option<Vec<String>>, String> {
    if config.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(config)
        .map_err(|e| format!("invalid balanced allocator config: {e}"))?;
    let object = match value {
        Value::Null => return Ok(None),
        Value::Object(object) => object,
        other => {
            return Err(format!(
                "balanced allocator config must be an object with an `allocate_by` list, got {}",
                json_kind(&other)
            ));
        }
    };
    match object.get("allocate_by") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| {
                    format!(
                        "`allocate_by` must be a list of metric names, found {}",
                        json_kind(item)
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => {
            Err(format!("`allocate_by` must be a list of metric names, got {}", json_kind(other)))
        }
    }
}

/// A JSON value's type, for config errors.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// IPFS Cluster's allocation error: the details go to the log, the message says so.
fn not_enough_peers(cid: &str, needed: i64, wanted: i64, available: &[&str]) -> String {
    let count = available.len();
    let mut details = format!(
        "not enough candidates to allocate {cid}: needed {needed}, wanted {wanted}, \
         available candidates {count}"
    );
    for peer in available {
        details.push_str("\n  - ");
        details.push_str(peer);
    }
    log(LogLevel::Error, &details);
    format!(
        "not enough peers to allocate CID. Needed at least: {needed}. Wanted at most: {wanted}. \
         Available candidates: {count}. See logs for more info."
    )
}

/// One level of the partition tree: a set of peers split by one `allocate_by` metric, with
/// the round-robin state of IPFS Cluster's `partitionedMetric`.
struct Level<'a> {
    /// Ranked best first.
    partitions: Vec<Partition<'a>>,
    /// The partition the next peer is taken from.
    cursor: usize,
    /// Set once a full turn found no peer, so later calls return at once.
    exhausted: bool,
}

/// Peers sharing one value of a partitionable metric, or a single peer for a
/// non-partitionable one.
struct Partition<'a> {
    value: &'a str,
    /// Sum of this metric's weights over the partition's peers.
    weight: i64,
    /// `weight` plus the aggregated weights of the sub-partitions: the tie-breaker.
    aggregated: i64,
    /// Indexes of the peers, in request order.
    peers: Vec<usize>,
    /// At the last level, how many of `peers` were emitted.
    taken: usize,
    /// The split by the next metric, if any.
    sub: Option<Level<'a>>,
}

impl<'a> Level<'a> {
    /// Partition `members` (indexes into `metrics`, which holds each peer's metrics in
    /// `allocate_by` order) by metric `depth`, recursing into the following metrics.
    fn build(metrics: &[&[&'a Metric]], members: &[usize], depth: usize) -> Self {
        let mut partitions: Vec<Partition<'a>> = Vec::new();
        // Partitionable metrics group peers by value; others give one partition per peer,
        // so that equal free space never adds up into one heavier bucket.
        let mut by_value: HashMap<&str, usize> = HashMap::new();
        for &peer in members {
            let Some(metric) = metrics[peer].get(depth) else { continue };
            if metric.partitionable
                && let Some(&index) = by_value.get(metric.value.as_str())
            {
                let partition = &mut partitions[index];
                partition.peers.push(peer);
                // Go's int64 sums wrap; do the same rather than panic on absurd weights.
                partition.weight = partition.weight.wrapping_add(metric.weight);
                partition.aggregated = partition.aggregated.wrapping_add(metric.weight);
                continue;
            }
            if metric.partitionable {
                by_value.insert(metric.value.as_str(), partitions.len());
            }
            partitions.push(Partition {
                value: metric.value.as_str(),
                weight: metric.weight,
                aggregated: metric.weight,
                peers: vec![peer],
                taken: 0,
                sub: None,
            });
        }

        let has_next_metric = members.first().is_some_and(|&p| metrics[p].len() > depth + 1);
        if has_next_metric {
            for partition in &mut partitions {
                let sub = Level::build(metrics, &partition.peers, depth + 1);
                partition.aggregated = sub
                    .partitions
                    .iter()
                    .fold(partition.aggregated, |sum, p| sum.wrapping_add(p.aggregated));
                partition.sub = Some(sub);
            }
        }

        // Heaviest first, then heaviest sub-partitions, then by value. The sort is stable,
        // so remaining ties keep request order.
        partitions.sort_by(|a, b| {
            b.weight.cmp(&a.weight).then(b.aggregated.cmp(&a.aggregated)).then(a.value.cmp(b.value))
        });
        Level { partitions, cursor: 0, exhausted: false }
    }

    /// The next peer: taken from the partition under the cursor, skipping exhausted ones,
    /// and the cursor moves on, so no partition gives twice while another still has peers.
    fn next_peer(&mut self) -> Option<usize> {
        let count = self.partitions.len();
        if count == 0 || self.exhausted {
            return None;
        }
        for _ in 0..count {
            let partition = &mut self.partitions[self.cursor];
            let peer = match &mut partition.sub {
                Some(sub) => sub.next_peer(),
                None => {
                    let peer = partition.peers.get(partition.taken).copied();
                    partition.taken += usize::from(peer.is_some());
                    peer
                }
            };
            self.cursor = (self.cursor + 1) % count;
            if peer.is_some() {
                return peer;
            }
        }
        self.exhausted = true;
        None
    }
}

#[cfg(test)]
mod tests;
