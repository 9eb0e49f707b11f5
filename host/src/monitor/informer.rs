//! Informers: the metrics this peer publishes about itself, each on its own period.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::metric::Metric;
use crate::config::ServiceConfig;

/// A source of metrics about this peer.
pub trait Informer: Send + Sync {
    /// The informer's name, for logs (`tags` yields several `tag:<name>` metrics).
    fn name(&self) -> &str;

    /// How often its metrics are published: half their TTL, so one lost message does not
    /// expire a live peer.
    fn interval(&self) -> Duration;

    /// The current metrics about `peer` at `now` (Unix ns), each expiring after its TTL.
    fn metrics(&self, peer: &str, now: i64) -> Vec<Metric>;
}

/// The IPFS daemon's peer id and addresses.
pub type IpfsIdentity = (String, Vec<String>);

/// Figures about this peer that other components measure and the informers publish: the
/// tracker's queue, the pinset's size, the IPFS repo and the IPFS daemon's identity. Each is
/// updated by whoever measures it; an informer whose figure is unknown publishes nothing
/// (IPFS Cluster does not publish invalid metrics).
#[derive(Clone, Default)]
pub struct PeerFigures {
    /// Pins waiting in the tracker's queues.
    pub pin_queue: Arc<AtomicU64>,
    /// Pins in the pinset.
    pub num_pins: Arc<AtomicU64>,
    /// `(StorageMax - RepoSize, RepoSize)` from the last good `repo/stat`.
    pub repo: Arc<Mutex<Option<(u64, u64)>>>,
    /// The IPFS daemon's peer id and addresses, from the last good `id`.
    pub ipfs: Arc<Mutex<Option<IpfsIdentity>>>,
}

impl PeerFigures {
    fn repo(&self) -> Option<(u64, u64)> {
        *self.repo.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ipfs(&self) -> Option<IpfsIdentity> {
        self.ipfs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `freespace` (or `reposize`, per `informer.disk.metric_type`) from the IPFS repo's stats.
/// A full disk (free space 0) makes the metric invalid, so it is not published and the peer
/// drops out of the allocation candidates, as in IPFS Cluster.
pub struct DiskInformer {
    /// `informer.disk.metric_ttl`.
    pub ttl: Duration,
    /// `freespace` or `reposize`.
    pub metric_type: String,
    /// Where the repo stats come from.
    pub figures: PeerFigures,
}

impl Informer for DiskInformer {
    fn name(&self) -> &str {
        "disk"
    }

    fn interval(&self) -> Duration {
        self.ttl / 2
    }

    fn metrics(&self, peer: &str, now: i64) -> Vec<Metric> {
        let Some((free, used)) = self.figures.repo() else { return Vec::new() };
        if self.metric_type == "reposize" {
            let mut m = Metric::new("reposize", peer, used.to_string(), self.ttl, now);
            m.weight = -i64::try_from(used).unwrap_or(i64::MAX);
            return vec![m];
        }
        if free == 0 {
            return Vec::new();
        }
        let mut m = Metric::new("freespace", peer, free.to_string(), self.ttl, now);
        m.weight = i64::try_from(free).unwrap_or(i64::MAX);
        vec![m]
    }
}

/// `tag:<name>` for each entry of `informer.tags.tags`: partitionable, weight 0.
pub struct TagsInformer {
    /// The metrics' TTL (`informer.tags.metric_ttl`).
    pub ttl: Duration,
    /// Tag name → value.
    pub tags: BTreeMap<String, String>,
}

impl Informer for TagsInformer {
    fn name(&self) -> &str {
        "tags"
    }

    fn interval(&self) -> Duration {
        self.ttl / 2
    }

    fn metrics(&self, peer: &str, now: i64) -> Vec<Metric> {
        self.tags
            .iter()
            .map(|(tag, value)| {
                let mut m = Metric::new(format!("tag:{tag}"), peer, value.clone(), self.ttl, now);
                m.partitionable = true;
                m
            })
            .collect()
    }
}

/// The value of IPFS Cluster's `ping` metric. The IPFS fields stay empty (and are omitted,
/// as Go's `omitempty` does) until an IPFS connector exists.
#[derive(Debug, Serialize)]
struct PingValue<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    peer_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    ipfs_id: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    ipfs_addresses: &'a [String],
}

/// `ping`: published every `cluster.monitor_ping_interval` with a TTL of twice that; its
/// expiry is how the other peers learn that this one is gone.
pub struct PingInformer {
    /// The IPFS daemon's identity for the value.
    pub figures: PeerFigures,
    /// `cluster.monitor_ping_interval`.
    pub every: Duration,
    /// `cluster.peername`.
    pub peername: String,
}

impl Informer for PingInformer {
    fn name(&self) -> &str {
        "ping"
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn metrics(&self, peer: &str, now: i64) -> Vec<Metric> {
        let ipfs = self.figures.ipfs();
        let (ipfs_id, ipfs_addresses) = match &ipfs {
            Some((id, addrs)) => (id.as_str(), addrs.as_slice()),
            None => ("", &[][..]),
        };
        let value = PingValue { peer_name: &self.peername, ipfs_id, ipfs_addresses };
        let value = serde_json::to_string(&value).unwrap_or_default();
        vec![Metric::new("ping", peer, value, self.every * 2, now)]
    }
}

/// `pinqueue`: the local pin queue's length, weight `-length / weight_bucket_size`.
pub struct PinQueueInformer {
    /// The tracker's queue length.
    pub figures: PeerFigures,
    /// `informer.pinqueue.metric_ttl`.
    pub ttl: Duration,
    /// `informer.pinqueue.weight_bucket_size`.
    pub weight_bucket_size: u64,
}

impl Informer for PinQueueInformer {
    fn name(&self) -> &str {
        "pinqueue"
    }

    fn interval(&self) -> Duration {
        self.ttl / 2
    }

    fn metrics(&self, peer: &str, now: i64) -> Vec<Metric> {
        let queued = self.figures.pin_queue.load(Ordering::Relaxed);
        let mut m = Metric::new("pinqueue", peer, queued.to_string(), self.ttl, now);
        let bucket = self.weight_bucket_size.max(1);
        m.weight = -i64::try_from(queued / bucket).unwrap_or(i64::MAX);
        vec![m]
    }
}

/// `numpin`: how many pins the pinset holds.
pub struct NumPinInformer {
    /// The pinset's size.
    pub figures: PeerFigures,
    /// `informer.numpin.metric_ttl`.
    pub ttl: Duration,
}

impl Informer for NumPinInformer {
    fn name(&self) -> &str {
        "numpin"
    }

    fn interval(&self) -> Duration {
        self.ttl / 2
    }

    fn metrics(&self, peer: &str, now: i64) -> Vec<Metric> {
        let pins = self.figures.num_pins.load(Ordering::Relaxed);
        vec![Metric::new("numpin", peer, pins.to_string(), self.ttl, now)]
    }
}

/// The informers `config` enables. An absent `informer.*` section is not run (as IPFS
/// Cluster); `ping` always runs. A zero TTL would publish in a busy loop, so such an
/// informer is skipped with a warning.
pub fn from_config(config: &ServiceConfig, figures: &PeerFigures) -> Vec<Box<dyn Informer>> {
    let cluster = config.cluster();
    let mut informers: Vec<Box<dyn Informer>> = Vec::new();
    let mut add = |informer: Box<dyn Informer>| {
        if informer.interval().is_zero() {
            tracing::warn!(informer = informer.name(), "metric TTL is zero: the informer is not run");
        } else {
            informers.push(informer);
        }
    };
    add(Box::new(PingInformer {
        every: cluster.monitor_ping_interval.0,
        peername: cluster.peername.clone(),
        figures: figures.clone(),
    }));
    if let Some(tags) = &config.informer.tags {
        add(Box::new(TagsInformer { ttl: tags.metric_ttl.0, tags: tags.tags.clone() }));
    }
    if let Some(q) = &config.informer.pinqueue {
        add(Box::new(PinQueueInformer {
            ttl: q.metric_ttl.0,
            weight_bucket_size: q.weight_bucket_size,
            figures: figures.clone(),
        }));
    }
    if let Some(n) = &config.informer.numpin {
        add(Box::new(NumPinInformer { ttl: n.metric_ttl.0, figures: figures.clone() }));
    }
    if let Some(disk) = &config.informer.disk {
        add(Box::new(DiskInformer {
            ttl: disk.metric_ttl.0,
            metric_type: disk.metric_type.clone(),
            figures: figures.clone(),
        }));
    }
    informers
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn tags_are_partitionable_with_weight_zero() {
        let informer = TagsInformer {
            ttl: Duration::from_secs(30),
            tags: BTreeMap::from([("group".into(), "default".into()), ("region".into(), "eu".into())]),
        };
        assert_eq!(informer.interval(), Duration::from_secs(15));
        let metrics = informer.metrics("P", 0);
        assert_eq!(metrics.len(), 2);
        assert_eq!((metrics[0].name.as_str(), metrics[0].value.as_str()), ("tag:group", "default"));
        assert!(metrics.iter().all(|m| m.partitionable && m.weight == 0 && m.valid && m.expire == 30 * S));
    }

    #[test]
    fn ping_lives_twice_its_interval_and_names_the_peer() {
        let informer =
            PingInformer { every: Duration::from_secs(15), peername: "alpha".into(), figures: PeerFigures::default() };
        let m = &informer.metrics("P", S)[0];
        assert_eq!(informer.interval(), Duration::from_secs(15));
        assert_eq!(m.expire, 31 * S);
        assert_eq!(m.value, r#"{"peer_name":"alpha"}"#);
        assert!(!m.partitionable);
    }

    #[test]
    fn counters_are_real_metrics_with_ttls() {
        let figures = PeerFigures::default();
        figures.pin_queue.store(250_000, Ordering::Relaxed);
        figures.num_pins.store(7, Ordering::Relaxed);
        let q =
            PinQueueInformer { ttl: Duration::from_secs(30), weight_bucket_size: 100_000, figures: figures.clone() };
        let m = &q.metrics("P", 0)[0];
        assert_eq!((m.name.as_str(), m.value.as_str(), m.weight, m.expire), ("pinqueue", "250000", -2, 30 * S));
        let n = NumPinInformer { ttl: Duration::from_secs(10), figures: figures.clone() };
        let m = &n.metrics("P", 0)[0];
        assert_eq!((m.name.as_str(), m.value.as_str(), m.expire), ("numpin", "7", 10 * S));
        // freespace: nothing until the repo was measured, nothing when the disk is full.
        let d =
            DiskInformer { ttl: Duration::from_secs(30), metric_type: "freespace".into(), figures: figures.clone() };
        assert!(d.metrics("P", 0).is_empty());
        *figures.repo.lock().expect("lock") = Some((0, 10));
        assert!(d.metrics("P", 0).is_empty());
        *figures.repo.lock().expect("lock") = Some((5_000, 10));
        let m = &d.metrics("P", 0)[0];
        assert_eq!((m.name.as_str(), m.value.as_str(), m.weight), ("freespace", "5000", 5_000));
    }

    #[test]
    fn the_init_config_runs_ping_tags_and_pinqueue() {
        let config = ServiceConfig::for_init(Default::default());
        let names: Vec<String> =
            from_config(&config, &PeerFigures::default()).iter().map(|i| i.name().to_string()).collect();
        assert_eq!(names, ["ping", "tags", "pinqueue", "disk"]);
    }
}
