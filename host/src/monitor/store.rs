//! The monitor's state, without a network or a clock: the latest metric per (name, peer),
//! the expiry checker and the alert list. Every operation takes `now` (Unix ns), so the
//! behaviour is tested by passing times rather than by waiting.

use std::collections::BTreeMap;

use super::metric::{Alert, Metric, rfc3339_nanos};

/// Alerts kept at most; the list is cleared when it would grow past this (IPFS Cluster's
/// `maxAlerts`).
pub const MAX_ALERTS: usize = 1000;

/// Checks after which an expired metric is forgotten (IPFS Cluster's failure threshold),
/// so a peer that left for good stops being reported by the checker.
pub const FORGET_AFTER_CHECKS: u32 = 300;

#[derive(Debug, Clone)]
struct Entry {
    metric: Metric,
    /// How many checks have found this metric expired; the first one alerts.
    failed_checks: u32,
}

/// The latest metrics and the alerts they raised.
#[derive(Debug, Default)]
pub struct MetricStore {
    /// name → peer → latest metric.
    latest: BTreeMap<String, BTreeMap<String, Entry>>,
    /// Newest first.
    alerts: Vec<Alert>,
}

impl MetricStore {
    /// Record a metric received at `now`. It replaces the peer's previous metric of that name,
    /// and a valid one resets the expiry alert, so the next expiry alerts again.
    pub fn log(&mut self, mut metric: Metric, now: i64) {
        metric.received_at = now;
        let peers = self.latest.entry(metric.name.clone()).or_default();
        peers.insert(metric.peer.clone(), Entry { metric, failed_checks: 0 });
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
        for peers in self.latest.values_mut() {
            peers.retain(|_, entry| {
                if !entry.metric.expired(now) {
                    return true;
                }
                entry.failed_checks += 1;
                if entry.failed_checks == 1 {
                    raised.push(Alert { metric: entry.metric.clone(), triggered_at: rfc3339_nanos(now) });
                }
                entry.failed_checks < FORGET_AFTER_CHECKS
            });
        }
        self.latest.retain(|_, peers| !peers.is_empty());
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
        store.log(metric("ping", "A", "1", 10, 0), 0);
        store.log(metric("ping", "B", "1", 10, 0), 0);
        store.log(metric("ping", "A", "2", 10, S), S);
        store.log(metric("tag:group", "A", "default", 10, 0), 0);
        let mut invalid = metric("freespace", "B", "0", 10, 0);
        invalid.valid = false;
        store.log(invalid, 0);

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
        store.log(metric("ping", "C", "x", 2, 0), 0);
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
        store.log(metric("ping", "C", "y", 2, 5 * S), 5 * S);
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
        store.log(metric("ping", "A", "", 1, 0), 0);
        store.log(metric("ping", "B", "", 3, 0), 0);
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
    fn a_long_expired_metric_is_forgotten() {
        let mut store = MetricStore::default();
        store.log(metric("ping", "gone", "", 1, 0), 0);
        for i in 0..FORGET_AFTER_CHECKS {
            store.check(S + i as i64);
        }
        assert!(store.latest.is_empty());
        assert_eq!(store.alerts().len(), 1);
    }
}
