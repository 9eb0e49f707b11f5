//! `region-spread`: an example Cairn allocator that never puts two replicas of a pin in the
//! same region.
//!
//! A peer's region is its `tag:region` metric (IPFS Cluster's `informer.tags`, e.g.
//! `{"region": "eu-west"}`); peers without one are never chosen. New replicas go only to
//! peers whose `freespace` metric is at least `min_free_bytes`; among those, more free space
//! wins. Peers that already hold the pin keep it (free space no longer matters for data they
//! have), unless another kept peer is in the same region. Too few usable regions is an error
//! the user sees.
//!
//! Config: `{ "min_free_bytes": 10737418240 }` (default 0); `null` = the defaults.

use std::collections::{BTreeMap, BTreeSet};

use cairn_policy_sdk::types::AllocationRequest;
use cairn_policy_sdk::{Allocator, LogLevel, log};
use serde::Deserialize;

/// The metric that names a peer's region.
pub const REGION_METRIC: &str = "tag:region";
/// The metric with a peer's free space in bytes.
pub const FREESPACE_METRIC: &str = "freespace";

/// The plugin's config; unknown keys are refused so that a typo fails at load.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    min_free_bytes: u64,
}

/// The allocator: one replica per region, on peers with at least `min_free_bytes` free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionSpread {
    min_free_bytes: u64,
}

/// What the request says about one candidate.
#[derive(Debug, Clone, Copy)]
struct Peer<'a> {
    id: &'a str,
    region: Option<&'a str>,
    free: Option<u64>,
}

impl RegionSpread {
    /// The candidates in request order (each peer once) with their region and free space.
    fn peers<'a>(req: &'a AllocationRequest) -> Vec<Peer<'a>> {
        let mut peers: Vec<Peer<'a>> =
            req.candidates.iter().map(|id| Peer { id: id.as_str(), region: None, free: None }).collect();
        if let Some(column) = req.column(REGION_METRIC) {
            for entry in &column.entries {
                let value = column.distinct_values.get(entry.value as usize).map(String::as_str);
                if let (Some(peer), Some(region)) = (peers.get_mut(entry.peer as usize), value) {
                    // An empty tag names no region; a peer listed twice keeps its first value.
                    if !region.is_empty() && peer.region.is_none() {
                        peer.region = Some(region);
                    }
                }
            }
        }
        if let Some(column) = req.column(FREESPACE_METRIC) {
            for entry in &column.entries {
                let value = column.distinct_values.get(entry.value as usize).and_then(|v| v.parse().ok());
                if let Some(peer) = peers.get_mut(entry.peer as usize) {
                    peer.free = peer.free.or(value);
                }
            }
        }
        let mut seen = BTreeSet::new();
        peers.retain(|p| seen.insert(p.id));
        peers
    }

    fn has_room(&self, peer: &Peer<'_>) -> bool {
        peer.free.is_some_and(|free| free >= self.min_free_bytes)
    }
}

impl Allocator for RegionSpread {
    fn from_config(config: &str) -> Result<Self, String> {
        let config: Option<Config> =
            serde_json::from_str(config).map_err(|e| format!("invalid region-spread config: {e}"))?;
        Ok(RegionSpread { min_free_bytes: config.unwrap_or_default().min_free_bytes })
    }

    fn allocate(&self, req: &AllocationRequest) -> Result<Vec<String>, String> {
        let (min, max) = (req.pin.replication_factor_min, req.pin.replication_factor_max);
        if max < 0 {
            // Replication -1: every peer pins, which needs no allocation.
            return Ok(Vec::new());
        }
        if min == 0 && max == 0 {
            return Err(format!("bad replication factors: {min}/{max}"));
        }
        let min = usize::try_from(min).unwrap_or(0);
        let max = usize::try_from(max).unwrap_or(0).max(min);

        let peers = Self::peers(req);
        let by_id: BTreeMap<&str, &Peer<'_>> = peers.iter().map(|p| (p.id, p)).collect();
        let mut chosen: Vec<String> = Vec::new();
        let mut regions: BTreeSet<&str> = BTreeSet::new();

        // Peers that hold the pin keep it, one per region: moving data costs more than
        // a better spread gains, but two replicas in one region are never kept.
        for id in &req.current {
            if chosen.len() == max {
                break;
            }
            if let Some(region) = by_id.get(id.as_str()).and_then(|p| p.region)
                && regions.insert(region)
            {
                chosen.push(id.clone());
            }
        }
        if chosen.len() >= min {
            return Ok(chosen);
        }

        // New replicas: priority peers first, then the most free space (a stable sort, so
        // ties keep the request's order and answers are deterministic).
        let usable: Vec<&Peer<'_>> = peers
            .iter()
            .filter(|p| p.region.is_some() && self.has_room(p) && !chosen.iter().any(|c| c == p.id))
            .collect();
        let priority = req.priority.iter().filter_map(|id| usable.iter().find(|p| p.id == id.as_str()).copied());
        let mut rest: Vec<&Peer<'_>> =
            usable.iter().copied().filter(|p| !req.priority.iter().any(|id| id == p.id)).collect();
        rest.sort_by_key(|p| std::cmp::Reverse(p.free));
        for peer in priority.chain(rest) {
            if chosen.len() == max {
                break;
            }
            if let Some(region) = peer.region
                && !chosen.iter().any(|c| c == peer.id)
                && regions.insert(region)
            {
                chosen.push(peer.id.to_string());
            }
        }

        if chosen.len() < min {
            let no_region = peers.iter().filter(|p| p.region.is_none()).count();
            let no_room = peers.iter().filter(|p| p.region.is_some() && !self.has_room(p)).count();
            let message = format!(
                "not enough regions to allocate {}: {min} needed, {} usable \
                 (of {} candidates, {no_region} have no `{REGION_METRIC}` metric and {no_room} have \
                 less than {} bytes of `{FREESPACE_METRIC}`)",
                req.pin.cid,
                chosen.len(),
                peers.len(),
                self.min_free_bytes
            );
            log(LogLevel::Debug, &message);
            return Err(message);
        }
        Ok(chosen)
    }
}

cairn_policy_sdk::export_allocator!(RegionSpread);

#[cfg(test)]
mod tests;
