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
use std::hash::{BuildHasherDefault, Hasher};

use cairn_policy_sdk::types::{AllocationRequest, MetricColumn, MetricEntry};
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

    /// The candidates that carry every `allocate_by` metric. A peer listed twice keeps its
    /// first usable entry; a metric given twice for one peer keeps its first value.
    fn usable_peers<'a>(&self, req: &'a AllocationRequest) -> Usable<'a> {
        let (n, k) = (req.candidates.len(), self.allocate_by.len());
        let mut usable =
            Usable { ids: Vec::new(), metrics: Vec::new(), columns: Vec::new(), index: FastMap::default(), k };
        // IPFS Cluster keys the metric sets by name but requires each peer to hold
        // `len(allocate_by)` of them, so a name listed twice makes every peer fall short.
        let distinct: HashSet<&str> = self.allocate_by.iter().map(String::as_str).collect();
        if distinct.len() != k {
            return usable;
        }
        // One column per metric name; a name no candidate has leaves no peer usable.
        let columns: Option<Vec<&'a MetricColumn>> =
            self.allocate_by.iter().map(|name| req.metrics.iter().find(|c| c.name == *name)).collect();
        let Some(columns) = columns else { return usable };
        // table[peer * k + depth]: the peer's entry for metric allocate_by[depth].
        let mut table: Vec<Option<&'a MetricEntry>> = vec![None; n * k];
        for (depth, column) in columns.iter().enumerate() {
            let distinct = column.distinct_values.len();
            for entry in &column.entries {
                let peer = usize::try_from(entry.peer).unwrap_or(usize::MAX);
                if peer < n && (entry.value as usize) < distinct {
                    table[peer * k + depth].get_or_insert(entry);
                }
            }
        }
        usable.columns = columns;
        usable.ids.reserve(n);
        usable.metrics.reserve(n * k);
        usable.index.reserve(n);
        for (peer, id) in req.candidates.iter().enumerate() {
            let row = &table[peer * k..(peer + 1) * k];
            if usable.index.contains_key(id.as_str()) || row.iter().any(Option::is_none) {
                continue;
            }
            usable.metrics.extend(row.iter().flatten());
            usable.index.insert(id.as_str(), usable.ids.len());
            usable.ids.push(id.as_str());
        }
        usable
    }

    /// The first `take` of `peers` (indexes into `usable`) in the balanced allocator's order.
    fn order(&self, peers: &[usize], usable: &Usable<'_>, take: usize) -> Vec<usize> {
        if take == 0 || peers.is_empty() {
            return Vec::new();
        }
        let mut root = Level::build(usable, peers, 0);
        std::iter::from_fn(|| root.next_peer()).take(take).collect()
    }
}

/// Peers that carry every `allocate_by` metric, by index: `ids[i]` and its entries
/// `metrics[i*k..(i+1)*k]` in `allocate_by` order, from `columns[0..k]`.
struct Usable<'a> {
    ids: Vec<&'a str>,
    metrics: Vec<&'a MetricEntry>,
    columns: Vec<&'a MetricColumn>,
    index: FastMap<&'a str, usize>,
    k: usize,
}

impl<'a> Usable<'a> {
    fn metric(&self, peer: usize, depth: usize) -> &'a MetricEntry {
        self.metrics[peer * self.k + depth]
    }

    /// The value string of an entry of metric `depth` (its index was checked on the way in).
    fn value(&self, entry: &MetricEntry, depth: usize) -> &'a str {
        self.columns[depth].distinct_values.get(entry.value as usize).map_or("", String::as_str)
    }

    /// Indexes of the usable `peers` not yet `placed`, in order, each once; they become placed.
    fn claim<'p>(&self, peers: impl Iterator<Item = &'p str>, placed: &mut [bool]) -> Vec<usize> {
        peers.filter_map(|p| self.index.get(p).copied()).filter(|&i| !std::mem::replace(&mut placed[i], true)).collect()
    }
}

/// A HashMap with a fast non-cryptographic hash: peer ids and tag values come from the
/// host and cannot be chosen by an attacker to collide here.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The Fx hash (as in rustc): one multiply per word.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(SEED);
        }
    }
    fn finish(&self) -> u64 {
        self.0
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

        let usable = self.usable_peers(req);
        // A peer belongs to the first of current / priority / candidate that lists it, and
        // only once; request order is kept so results are deterministic (IPFS Cluster's
        // map iteration leaves these ties in random order).
        let mut placed = vec![false; usable.ids.len()];
        let current = usable.claim(req.current.iter().map(String::as_str), &mut placed);
        let priority = usable.claim(req.priority.iter().map(String::as_str), &mut placed);
        let candidates = usable.claim(req.candidates.iter().map(String::as_str), &mut placed);

        let n_current = current.len() as i64;
        let needed = min - n_current;
        let wanted = max - n_current;

        if wanted < 0 {
            // Over-allocated: drop the last current peers.
            let keep = usize::try_from(n_current + wanted).unwrap_or(0);
            return Ok(current[..keep].iter().map(|&p| usable.ids[p].to_owned()).collect());
        }
        if needed <= 0 {
            // Enough replicas already: IPFS Cluster returns the pin's allocations as they
            // were, without topping up towards max.
            return Ok(req.current.clone());
        }

        let available = priority.len() + candidates.len();
        if (available as i64) < needed {
            let ids: Vec<&str> = priority.iter().chain(&candidates).map(|&p| usable.ids[p]).collect();
            return Err(not_enough_peers(&req.pin.cid, needed, wanted, &ids));
        }

        // Only `wanted` peers are needed, so the ordering stops there.
        let extra = usize::try_from(wanted).unwrap_or(0);
        let mut ordered = self.order(&priority, &usable, extra);
        let rest = extra - ordered.len();
        ordered.extend(self.order(&candidates, &usable, rest));
        Ok(current.iter().chain(&ordered).map(|&p| usable.ids[p].to_owned()).collect())
    }
}

cairn_policy_sdk::export_allocator!(Balanced);

/// `allocate_by` from the plugin's JSON config: `None` when the config is `null` (or blank)
/// or the key is absent or `null`.
fn parse_allocate_by(config: &str) -> Result<Option<Vec<String>>, String> {
    if config.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(config).map_err(|e| format!("invalid balanced allocator config: {e}"))?;
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
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("`allocate_by` must be a list of metric names, found {}", json_kind(item)))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(format!("`allocate_by` must be a list of metric names, got {}", json_kind(other))),
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
    partitions: Vec<Partition<'a>>,
    /// Indexes of `partitions`, best first.
    rank: Vec<u32>,
    /// The position in `rank` of the partition the next peer is taken from.
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
    peers: Members,
    /// At the last level, how many of `peers` were emitted.
    taken: usize,
    /// The split by the next metric, if any.
    sub: Option<Level<'a>>,
}

impl<'a> Level<'a> {
    /// Partition `members` (indexes into `usable`) by metric `depth`, recursing into the
    /// following metrics.
    fn build(usable: &Usable<'a>, members: &[usize], depth: usize) -> Self {
        let mut partitions: Vec<Partition<'a>> = Vec::with_capacity(members.len().min(64));
        // Partitionable metrics group peers by value; others give one partition per peer,
        // so that equal free space never adds up into one heavier bucket. Values are
        // indexes into the column's distinct values, so grouping needs no hashing.
        let mut group_of: Vec<usize> = Vec::new();
        for &peer in members {
            let metric = usable.metric(peer, depth);
            let value = metric.value as usize;
            if metric.partitionable {
                if group_of.is_empty() {
                    group_of = vec![usize::MAX; usable.columns[depth].distinct_values.len()];
                }
                let index = group_of[value];
                if index != usize::MAX {
                    let partition = &mut partitions[index];
                    partition.peers.push(peer);
                    // Go's int64 sums wrap; do the same rather than panic on absurd weights.
                    partition.weight = partition.weight.wrapping_add(metric.weight);
                    partition.aggregated = partition.aggregated.wrapping_add(metric.weight);
                    continue;
                }
                group_of[value] = partitions.len();
            }
            partitions.push(Partition {
                value: usable.value(metric, depth),
                weight: metric.weight,
                aggregated: metric.weight,
                peers: Members::One(peer),
                taken: 0,
                sub: None,
            });
        }

        if depth + 1 < usable.k {
            for partition in &mut partitions {
                let sub = Level::build(usable, partition.peers.as_slice(), depth + 1);
                partition.aggregated =
                    sub.partitions.iter().fold(partition.aggregated, |sum, p| sum.wrapping_add(p.aggregated));
                partition.sub = Some(sub);
            }
        }

        // Heaviest first, then heaviest sub-partitions, then by value. The sort is stable,
        // so remaining ties keep request order. Indexes are sorted, not the (large)
        // partitions themselves.
        let mut rank: Vec<u32> = (0..partitions.len() as u32).collect();
        rank.sort_by(|&a, &b| {
            let (a, b) = (&partitions[a as usize], &partitions[b as usize]);
            // `then_with`: compare the value strings only on a tie.
            b.weight.cmp(&a.weight).then_with(|| b.aggregated.cmp(&a.aggregated)).then_with(|| a.value.cmp(b.value))
        });
        Level { partitions, rank, cursor: 0, exhausted: false }
    }

    /// The next peer: taken from the partition under the cursor, skipping exhausted ones,
    /// and the cursor moves on, so no partition gives twice while another still has peers.
    fn next_peer(&mut self) -> Option<usize> {
        let count = self.partitions.len();
        if count == 0 || self.exhausted {
            return None;
        }
        for _ in 0..count {
            let partition = &mut self.partitions[self.rank[self.cursor] as usize];
            let peer = match &mut partition.sub {
                Some(sub) => sub.next_peer(),
                None => {
                    let peer = partition.peers.as_slice().get(partition.taken).copied();
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

/// A partition's peers; most partitions hold one peer, which needs no allocation.
enum Members {
    One(usize),
    Many(Vec<usize>),
}

impl Members {
    fn push(&mut self, peer: usize) {
        match self {
            Members::One(first) => *self = Members::Many(vec![*first, peer]),
            Members::Many(peers) => peers.push(peer),
        }
    }

    fn as_slice(&self) -> &[usize] {
        match self {
            Members::One(peer) => std::slice::from_ref(peer),
            Members::Many(peers) => peers,
        }
    }
}

#[cfg(test)]
mod tests;
