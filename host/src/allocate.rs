//! Allocation (reference §8.2): the host validates the replication factors, gathers the
//! candidates (peers with fresh metrics, minus blacklisted and trust-filtered peers) and asks
//! the allocator plugin for the ordered allocation; the plugin applies IPFS Cluster's
//! current/priority/candidate bookkeeping and its "not enough peers" error.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use cairn_policy::types::{AllocationRequest, PinInfo as PluginPin, PinMode as PluginMode};
use cairn_policy::{AllocatorPlugin, PeerMetric, PluginSlot};
use cairn_state::{Pin, PinMode, Timestamp};

use crate::monitor::Monitor;

/// What allocation needs from the configuration.
#[derive(Debug, Clone)]
pub struct AllocationSettings {
    /// `cluster.replication_factor_min` (what 0 means).
    pub replication_factor_min: i32,
    /// `cluster.replication_factor_max`.
    pub replication_factor_max: i32,
    /// `allocator.balanced.allocate_by`: the metrics a candidate must publish.
    pub allocate_by: Vec<String>,
    /// `pin_only_on_trusted_peers` / `pin_only_on_untrusted_peers` as a filter on candidates:
    /// `Some(true)` keeps trusted peers only, `Some(false)` untrusted only.
    pub trusted_only: Option<bool>,
}

/// Decides who is trusted, for the `pin_only_on_*` filters.
pub type TrustCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Allocates pins with the allocator plugin and the monitor's metrics.
#[derive(Clone)]
pub struct Allocator {
    /// The allocator plugin's slot (read per call: a reload applies at once).
    pub plugin: Arc<PluginSlot<AllocatorPlugin>>,
    /// Where the latest metrics come from.
    pub monitor: Monitor,
    /// Settings from service.json.
    pub settings: AllocationSettings,
    /// Who is trusted.
    pub trusted: TrustCheck,
}

/// Applies the cluster defaults to a pin's replication factors and checks them (§1.5):
/// 0 becomes the default, each is ≥ -1, -1 on one side means -1 on both, min ≤ max; and an
/// `expire_at` must lie in the future.
pub fn normalize(pin: &mut Pin, settings: &AllocationSettings) -> Result<(), String> {
    let o = &mut pin.options;
    if o.replication_factor_min == 0 {
        o.replication_factor_min = settings.replication_factor_min;
    }
    if o.replication_factor_max == 0 {
        o.replication_factor_max = settings.replication_factor_max;
    }
    let (min, max) = (o.replication_factor_min, o.replication_factor_max);
    if min < -1 || max < -1 {
        return Err(format!("bad replication factors: min {min} and max {max} must each be -1 or more"));
    }
    if (min == -1) != (max == -1) {
        return Err(format!(
            "bad replication factors: min {min}, max {max}: when one is -1 (everywhere) both must be -1"
        ));
    }
    if max != -1 && min > max {
        return Err(format!("bad replication factors: min {min} is larger than max {max}"));
    }
    if !o.expire_at.is_unset() && o.expire_at.0 <= Timestamp::now().0 {
        return Err(format!("expire_at {} is not in the future", o.expire_at));
    }
    Ok(())
}

impl Allocator {
    /// The allocations for `pin` (factors already normalized): empty for "everywhere",
    /// otherwise the plugin's choice among fresh peers. `current` are allocations to keep if
    /// still usable (an update or a repin); `blacklist` peers are never chosen.
    pub async fn allocate(&self, pin: &Pin, current: &[String], blacklist: &[String]) -> Result<Vec<String>, String> {
        let (min, max) = (pin.options.replication_factor_min, pin.options.replication_factor_max);
        if min == -1 && max == -1 {
            return Ok(Vec::new());
        }
        let blacklist: HashSet<&str> = blacklist.iter().map(String::as_str).collect();
        // Every peer with at least one fresh allocate_by metric; the plugin drops those
        // lacking any of them, as IPFS Cluster does.
        let mut rows: BTreeMap<String, Vec<PeerMetric>> = BTreeMap::new();
        for name in &self.settings.allocate_by {
            for m in self.monitor.latest_metrics(name) {
                if blacklist.contains(m.peer.as_str()) {
                    continue;
                }
                if let Some(want_trusted) = self.settings.trusted_only
                    && (self.trusted)(&m.peer) != want_trusted
                {
                    continue;
                }
                rows.entry(m.peer.clone()).or_default().push(PeerMetric {
                    name: m.name.clone(),
                    value: m.value.clone(),
                    weight: m.weight,
                    partitionable: m.partitionable,
                    expire: m.expire,
                });
            }
        }
        let current: Vec<String> = current.iter().filter(|p| !blacklist.contains(p.as_str())).cloned().collect();
        let priority: Vec<String> =
            pin.options.user_allocations.iter().filter(|p| !blacklist.contains(p.as_str())).cloned().collect();
        let request = AllocationRequest::from_rows(plugin_pin(pin), current, priority, rows.into_iter().collect());
        self.plugin.current().allocate(&request).await
    }
}

/// The pin as the allocator plugin sees it.
fn plugin_pin(pin: &Pin) -> PluginPin {
    let o = &pin.options;
    PluginPin {
        cid: pin.cid.to_string(),
        name: o.name.clone(),
        mode: match pin.mode() {
            PinMode::Recursive => PluginMode::Recursive,
            PinMode::Direct => PluginMode::Direct,
        },
        replication_factor_min: o.replication_factor_min,
        replication_factor_max: o.replication_factor_max,
        shard_size: o.shard_size,
        user_allocations: o.user_allocations.clone(),
        expire_at: (!o.expire_at.is_unset()).then(|| (o.expire_at.0.unix_timestamp_nanos()) as i64),
        metadata: o.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        origins: o.origins.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_state::{Cid, PinOptions};

    fn settings() -> AllocationSettings {
        AllocationSettings {
            replication_factor_min: 2,
            replication_factor_max: 3,
            allocate_by: vec!["freespace".into()],
            trusted_only: None,
        }
    }

    fn pin(min: i32, max: i32) -> Pin {
        let cid = Cid::parse("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy").expect("cid");
        Pin::with_options(
            cid,
            PinOptions { replication_factor_min: min, replication_factor_max: max, ..PinOptions::default() },
        )
    }

    #[test]
    fn zero_takes_the_defaults_and_bad_factors_are_named() {
        let mut p = pin(0, 0);
        normalize(&mut p, &settings()).expect("defaults");
        assert_eq!((p.options.replication_factor_min, p.options.replication_factor_max), (2, 3));
        let mut p = pin(-1, -1);
        normalize(&mut p, &settings()).expect("everywhere");
        for (min, max, needle) in
            [(3, 2, "min 3 is larger than max 2"), (-1, 2, "both must be -1"), (-2, 1, "-1 or more")]
        {
            let err = normalize(&mut pin(min, max), &settings()).expect_err("bad");
            assert!(err.contains(needle), "{err}");
        }
    }
}
