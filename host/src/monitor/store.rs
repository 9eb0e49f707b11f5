//! The monitor's state, without a network or a clock: the latest metric per (name, peer),
//! the expiry checker and the alert list. Every operation takes `now` (Unix ns), so the
//! behaviour is tested by passing times rather than by waiting.

use std::collections::BTreeMap;
use std::time::Duration;

use super::metric::{Alert, Metric, rfc3339_nanos};

/// Alerts kept at most; the list is cleared when it would grow past this (IPFS Cluster's
/// `maxAlerts`).
pub const MAX_ALERTS: usize = 1000;

/// Checks after which an expired metric is forgotten (IPFS Cluster's failure threshold),
/// so a peer that left for good stops being reported by the checker.
pub const FORGET_AFTER_CHECKS: u32 = 300;

/// Distinct metric names kept per peer: IPFS Cluster's informers publish a handful, plus one
/// per tag, so a peer sending more is making the store grow.
pub const MAX_NAMES_PER_PEER: usize = 64;

/// Peers whose metrics are kept at most (a metric names its sender, so each identity
/// holding the cluster secret would otherwise add entries without bound).
pub const MAX_PEERS: usize = 4096;

/// Longest metric name kept.
pub const MAX_NAME_BYTES: usize = 256;

/// Largest metric value kept (the largest real one, `ping`, carries the IPFS daemon's
/// addresses: a few KiB at most).
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

/// How long a metric lives after it is received at most, unless this peer's own informers
/// use a longer TTL (see [`MetricStore::with_max_ttl`]): the expiry is the sender's choice,
/// and a peer that left must not stay in the peerset, unalerted, for ever.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(5 * 60);

/// Why a metric was not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("the metric name has {0} bytes, more than {MAX_NAME_BYTES}")]
    NameTooLong(usize),
    /// The value is larger than [`MAX_VALUE_BYTES`].
    #[error("the metric value has {0} bytes, more than {MAX_VALUE_BYTES}")]
    ValueTooLarge(usize),
    /// The peer already has [`MAX_NAMES_PER_PEER`] names.
    #[error("peer {0} already has {MAX_NAMES_PER_PEER} metric names")]
    TooManyNames(String),
    /// [`MAX_PEERS`] peers are tracked already.
    #[error("metrics of {MAX_PEERS} peers are kept already")]
    TooManyPeers,
}

#[derive(Debug, Clone)]
struct Entry {
    metric: Metric,
    /// How many checks have found this metric expired; the first one alerts.
    failed_checks: u32,
}

/// The latest metrics and the alerts they raised.
#[derive(Debug)]
pub struct MetricStore {
    /// name → peer → latest metric.
    latest: BTreeMap<String, BTreeMap<String, Entry>>,
    /// peer → how many names it has in `latest` (for [`MAX_NAMES_PER_PEER`], [`MAX_PEERS`]).
    names_per_peer: BTreeMap<String, usize>,
    /// A metric expires at most this long (ns) after it is received.
    max_ttl_ns: i64,
    /// Newest first.
    alerts: Vec<Alert>,
}

impl Default for MetricStore {
    fn default() -> Self {
        MetricStore::with_max_ttl(DEFAULT_MAX_TTL)
    }
}

impl MetricStore {
    /// An empty store whose metrics expire at most `max_ttl` after they are received.
    pub fn with_max_ttl(max_ttl: Duration) -> Self {
        MetricStore {
            latest: BTreeMap::new(),
            names_per_peer: BTreeMap::new(),
            max_ttl_ns: i64::try_from(max_ttl.as_nanos()).unwrap_or(i64::MAX),
            alerts: Vec::new(),
        }
    }

    /// Record a metric received at `now`. It replaces the peer's previous metric of that name,
    /// and a valid one resets the expiry alert, so the next expiry alerts again. Its expiry is
    /// cut to the store's maximum TTL; a new name or peer beyond the caps is refused.
    pub fn log(&mut self, mut metric: Metric, now: i64) -> Result<(), Refused> {
        if metric.name.len() > MAX_NAME_BYTES {
            return Err(Refused::NameTooLong(metric.name.len()));
        }
        if metric.value.len() > MAX_VALUE_BYTES {
            return Err(Refused::ValueTooLarge(metric.value.len()));
        }
        metric.received_at = now;
        metric.expire = metric.expire.min(now.saturating_add(self.max_ttl_ns));
        let known = self.latest.get(&metric.name).is_some_and(|peers| peers.contains_key(&metric.peer));
        if !known {
            match self.names_per_peer.get(&metric.peer) {
                Some(&n) if n >= MAX_NAMES_PER_PEER => return Err(Refused::TooManyNames(metric.peer)),
                None if self.names_per_peer.len() >= MAX_PEERS => return Err(Refused::TooManyPeers),
                _ => {}
            }
            *self.names_per_peer.entry(metric.peer.clone()).or_default() += 1;
        }
        let peers = self.latest.entry(metric.name.clone()).or_default();
        peers.insert(metric.peer.clone(), Entry { metric, failed_checks: 0 });
        Ok(())
    }

    /// The latest valid, unexpired metric of every peer for `name`, ordered by peer.
    pub fn latest_metrics(&self, name: &str, now: i64) -> Vec<Metric> {
        self.latest
            .get(name)
            .map(|peers| peers.values().filter(|e| !e.metric.discard(now)).map(|e| e.metric.clone()).collect())
            .unwrap_or_default()
    }

    /// The names of the metrics that have at least one valid, unexpired value.
    pub fn metric_names(&self, now: i64) -> Vec<String> {
        self.latest
            .iter()
            .filter(|(_, peers)| peers.values().any(|e| !e.metric.discard(now)))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// One checker pass at `now`: every metric that has expired raises an alert the first time
    /// it is found expired (not again until a fresh metric replaced it), and is forgotten after
    /// [`FORGET_AFTER_CHECKS`] passes. Returns the new alerts, which are also kept.
    pub fn check(&mut self, now: i64) -> Vec<Alert> {
        let mut raised = Vec::new();
        let mut forgotten: Vec<String> = Vec::new();
        for peers in self.latest.values_mut() {
            peers.retain(|peer, entry| {
                if !entry.metric.expired(now) {
                    return true;
                }
                entry.failed_checks = entry.failed_checks.saturating_add(1);
                if entry.failed_checks == 1 {
                    raised.push(Alert { metric: entry.metric.clone(), triggered_at: rfc3339_nanos(now) });
                }
                let keep = entry.failed_checks < FORGET_AFTER_CHECKS;
                if !keep {
                    forgotten.push(peer.clone());
                }
                keep
            });
        }
        self.latest.retain(|_, peers| !peers.is_empty());
        for peer in forgotten {
            if let Some(n) = self.names_per_peer.get_mut(&peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.names_per_peer.remove(&peer);
                }
            }
        }
        for alert in &raised {
            self.push_alert(alert.clone());
        }
        raised
    }

    /// Keep `alert` as the newest. Repinning has no say here: unlike IPFS Cluster, whose
    /// alert handler stops consuming after the first `ping` alert when repinning is disabled,
    /// every alert is recorded.
    pub fn push_alert(&mut self, alert: Alert) {
        if self.alerts.len() >= MAX_ALERTS {
            self.alerts.clear();
        }
        self.alerts.insert(0, alert);
    }

    /// The alerts, newest first.
    pub fn alerts(&self) -> &[Alert] {
        &self.alerts
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const S: i64 = 1_000_000_000;

    fn metric(name: &str, peer: &str, value: &str, ttl_s: u64, now: i64) -> Metric {
        Metric::new(name, peer, value, Duration::from_secs(ttl_s), now)
    }

    #[test]
    fn keeps_the_latest_valid_metric_per_peer() {
        let mut store = MetricStore::default();
        store.log(metric("ping", "A", "1", 10, 0), 0).expect("kept");
        store.log(metric("ping", "B", "1", 10, 0), 0).expect("kept");
        store.log(metric("ping", "A", "2", 10, S), S).expect("kept");
        store.log(metric("tag:group", "A", "default", 10, 0), 0).expect("kept");
        let mut invalid = metric("freespace", "B", "0", 10, 0);
        invalid.valid = false;
        store.log(invalid, 0).expect("kept");

        let latest = store.latest_metrics("ping", 2 * S);
        assert_eq!(
            latest.iter().map(|m| (m.peer.as_str(), m.value.as_str())).collect::<Vec<_>>(),
            [("A", "2"), ("B", "1")]
        );
        assert_eq!(latest[0].received_at, S);
        assert_eq!(store.metric_names(2 * S), ["ping", "tag:group"]);
        assert!(store.latest_metrics("freespace", 0).is_empty());
        assert!(store.latest_metrics("nope", 0).is_empty());
        // B's ping expires at 10s, A's at 11s: only A is left at 10.5s.
        let latest = store.latest_metrics("ping", 10 * S + S / 2);
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].peer, "A");
    }

    #[test]
    fn an_expired_metric_raises_one_alert_until_a_fresh_one_resets_it() {
        let mut store = MetricStore::default();
        store.log(metric("ping", "C", "x", 2, 0), 0).expect("kept");
        assert!(store.check(S).is_empty());
        let alerts = store.check(2 * S);
        assert_eq!(alerts.len(), 1);
        assert_eq!((alerts[0].metric.name.as_str(), alerts[0].metric.peer.as_str()), ("ping", "C"));
        assert_eq!(alerts[0].triggered_at, "1970-01-01T00:00:02Z");
        // Still expired: no second alert.
        assert!(store.check(3 * S).is_empty());
        assert!(store.check(4 * S).is_empty());
        assert_eq!(store.alerts().len(), 1);
        assert!(store.latest_metrics("ping", 4 * S).is_empty());

        // A fresh metric resets it; its expiry alerts again.
        store.log(metric("ping", "C", "y", 2, 5 * S), 5 * S).expect("kept");
        assert!(store.check(6 * S).is_empty());
        assert_eq!(store.latest_metrics("ping", 6 * S).len(), 1);
        let alerts = store.check(7 * S);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].metric.value, "y");
        assert_eq!(store.alerts().len(), 2);
    }

    #[test]
    fn alerts_are_newest_first() {
        let mut store = MetricStore::default();
        store.log(metric("ping", "A", "", 1, 0), 0).expect("kept");
        store.log(metric("ping", "B", "", 3, 0), 0).expect("kept");
        store.check(S);
        store.check(3 * S);
        let peers: Vec<&str> = store.alerts().iter().map(|a| a.metric.peer.as_str()).collect();
        assert_eq!(peers, ["B", "A"]);
    }

    #[test]
    fn the_alert_list_is_cleared_when_it_would_exceed_the_cap() {
        let mut store = MetricStore::default();
        for i in 0..MAX_ALERTS {
            store.push_alert(Alert { metric: metric("ping", &i.to_string(), "", 1, 0), triggered_at: String::new() });
        }
        assert_eq!(store.alerts().len(), MAX_ALERTS);
        assert_eq!(store.alerts()[0].metric.peer, (MAX_ALERTS - 1).to_string());
        store.push_alert(Alert { metric: metric("ping", "last", "", 1, 0), triggered_at: String::new() });
        assert_eq!(store.alerts().len(), 1);
        assert_eq!(store.alerts()[0].metric.peer, "last");
    }

    #[test]
    fn a_sender_chosen_expiry_is_clamped() {
        // A peer that says its metric never expires is still gone 5 minutes after it stopped.
        assert_eq!(DEFAULT_MAX_TTL, Duration::from_secs(300));
        let mut store = MetricStore::default();
        let mut forever = metric("ping", "A", "", 1, 0);
        forever.expire = i64::MAX;
        store.log(forever, 0).expect("kept");
        assert_eq!(store.latest_metrics("ping", 299 * S).len(), 1);
        assert!(store.latest_metrics("ping", 300 * S).is_empty());
        assert_eq!(store.check(300 * S).len(), 1);
        // A metric whose TTL is under the cap keeps its own expiry.
        store.log(metric("freespace", "B", "", 10, 0), 0).expect("kept");
        assert_eq!(store.latest_metrics("freespace", 10 * S - 1).len(), 1);
        assert!(store.latest_metrics("freespace", 10 * S).is_empty());
    }

    #[test]
    fn metric_names_per_peer_are_capped() {
        let mut store = MetricStore::default();
        for i in 0..MAX_NAMES_PER_PEER {
            store.log(metric(&format!("tag:{i}"), "A", "x", 60, 0), 0).expect("kept");
        }
        for i in MAX_NAMES_PER_PEER..100 {
            let refused = store.log(metric(&format!("tag:{i}"), "A", "x", 60, 0), 0);
            assert_eq!(refused, Err(Refused::TooManyNames("A".into())));
        }
        assert_eq!(store.metric_names(0).len(), MAX_NAMES_PER_PEER);
        // The names already kept still update, and other peers are not affected.
        store.log(metric("tag:0", "A", "y", 60, 0), 0).expect("kept");
        assert_eq!(store.latest_metrics("tag:0", 0)[0].value, "y");
        store.log(metric("tag:99", "B", "x", 60, 0), 0).expect("kept");
        assert_eq!(store.latest_metrics("tag:99", 0).len(), 1);
        // Once a peer's names expire and are forgotten, it has room again.
        for i in 0..FORGET_AFTER_CHECKS {
            store.check(61 * S + i as i64);
        }
        store.log(metric("tag:98", "A", "x", 60, 100 * S), 100 * S).expect("kept");
        assert_eq!(store.latest_metrics("tag:98", 100 * S).len(), 1);
    }

    #[test]
    fn peers_tracked_are_capped() {
        let mut store = MetricStore::default();
        for i in 0..MAX_PEERS {
            store.log(metric("ping", &format!("peer{i}"), "", 60, 0), 0).expect("kept");
        }
        for i in MAX_PEERS..MAX_PEERS + 10 {
            let refused = store.log(metric("ping", &format!("peer{i}"), "", 60, 0), 0);
            assert_eq!(refused, Err(Refused::TooManyPeers));
        }
        assert_eq!(store.latest_metrics("ping", 0).len(), MAX_PEERS);
        // A tracked peer still updates.
        store.log(metric("ping", "peer0", "again", 60, 0), 0).expect("kept");
        assert_eq!(store.latest_metrics("ping", 0)[0].value, "again");
    }

    #[test]
    fn oversized_names_and_values_are_refused() {
        let mut store = MetricStore::default();
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(store.log(metric(&long, "A", "", 60, 0), 0), Err(Refused::NameTooLong(MAX_NAME_BYTES + 1)));
        let big = "v".repeat(MAX_VALUE_BYTES + 1);
        assert_eq!(store.log(metric("big", "A", &big, 60, 0), 0), Err(Refused::ValueTooLarge(MAX_VALUE_BYTES + 1)));
        store.log(metric("fits", "A", &"v".repeat(MAX_VALUE_BYTES), 60, 0), 0).expect("kept");
        assert_eq!(store.metric_names(0), ["fits"]);
    }

    #[test]
    fn a_long_expired_metric_is_forgotten() {
        let mut store = MetricStore::default();
        store.log(metric("ping", "gone", "", 1, 0), 0).expect("kept");
        for i in 0..FORGET_AFTER_CHECKS {
            store.check(S + i as i64);
        }
        assert!(store.latest.is_empty());
        assert!(store.names_per_peer.is_empty(), "a forgotten peer still counts");
        assert_eq!(store.alerts().len(), 1);
    }
}
