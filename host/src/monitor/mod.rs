//! Peer monitoring, as IPFS Cluster's pubsub monitor: informers publish this peer's metrics
//! on the gossipsub topic [`TOPIC`] (every TTL/2; `ping` every `cluster.monitor_ping_interval`
//! with a TTL of twice that), every peer keeps the latest valid metric per (peer, name), and a
//! checker running every `monitor.pubsubmon.check_interval` raises an [`Alert`] when one
//! expires. Unlike IPFS Cluster, alerts keep being recorded whether or not repinning is
//! enabled.
//!
//! Payloads are JSON [`Metric`]s (IPFS Cluster sends msgpack; wire compatibility with Go peers
//! is not a goal yet). The logic lives in [`store::MetricStore`], which takes the time as an
//! argument; this module only drives it from the network and the clock.

mod informer;
mod metric;
mod store;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cairn_swarm::{NetworkEvent, SwarmError, SwarmHandle};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use informer::Informer;
pub use informer::PeerFigures;
pub use metric::{Alert, Metric, now_nanos, rfc3339_nanos};
pub use store::{DEFAULT_MAX_TTL, MetricStore};

use crate::config::ServiceConfig;

/// The gossipsub topic metrics travel on (IPFS Cluster's name).
pub const TOPIC: &str = "monitor.metrics";

/// RPC methods the monitor serves (see [`Monitor::handle_rpc`]).
pub const RPC_METHODS: &[&str] = &["PeerMonitor.LatestMetrics", "PeerMonitor.MetricNames", "Cluster.Alerts"];

/// What can go wrong starting the monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Subscribing to [`TOPIC`] failed.
    #[error("subscribe to {TOPIC}: {0}")]
    Subscribe(#[from] SwarmError),
    /// `monitor.pubsubmon.check_interval` is zero, which would check in a busy loop.
    #[error("monitor.pubsubmon.check_interval: must be more than 0")]
    ZeroCheckInterval,
}

/// The running monitor: cheap to clone; [`Monitor::stop`] ends its tasks.
#[derive(Clone)]
pub struct Monitor {
    store: Arc<Mutex<MetricStore>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Monitor {
    /// Subscribe to [`TOPIC`] and start the informers of `config`, the receiver and the
    /// checker.
    pub async fn start(
        swarm: SwarmHandle,
        config: &ServiceConfig,
        figures: &PeerFigures,
    ) -> Result<Monitor, MonitorError> {
        let check_every = config.monitor.pubsubmon.check_interval.0;
        if check_every.is_zero() {
            return Err(MonitorError::ZeroCheckInterval);
        }
        let informers = informer::from_config(config, figures);
        // Other peers' metrics may live as long as this peer's own (a cluster shares its
        // configuration), and at least a few minutes; never the sender's choice alone.
        let own_ttl = informers.iter().map(|i| i.interval().saturating_mul(2)).max().unwrap_or_default();
        let store = MetricStore::with_max_ttl(own_ttl.max(DEFAULT_MAX_TTL));
        let monitor = Monitor { store: Arc::new(Mutex::new(store)), tasks: Arc::default() };
        // Subscribe to events before the topic, so no early message is missed.
        let events = swarm.events();
        swarm.subscribe(TOPIC).await?;
        let mut tasks = vec![tokio::spawn(receive(swarm.local_peer_id(), events, monitor.store.clone()))];
        for informer in informers {
            tasks.push(tokio::spawn(publish(swarm.clone(), informer, monitor.store.clone())));
        }
        tasks.push(tokio::spawn(check(check_every, monitor.store.clone())));
        *lock(&monitor.tasks) = tasks;
        info!(topic = TOPIC, check_interval = ?check_every, "peer monitor started");
        Ok(monitor)
    }

    /// A monitor with no tasks over `store` (for tests of the RPC surface).
    #[cfg(test)]
    pub fn from_store(store: MetricStore) -> Monitor {
        Monitor { store: Arc::new(Mutex::new(store)), tasks: Arc::default() }
    }

    /// Stop publishing, receiving and checking.
    pub fn stop(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    /// The latest valid metric of every peer for `name`.
    pub fn latest_metrics(&self, name: &str) -> Vec<Metric> {
        lock(&self.store).latest_metrics(name, now_nanos())
    }

    /// The names of the metrics with at least one valid value.
    pub fn metric_names(&self) -> Vec<String> {
        lock(&self.store).metric_names(now_nanos())
    }

    /// The alerts, newest first.
    pub fn alerts(&self) -> Vec<Alert> {
        lock(&self.store).alerts().to_vec()
    }

    /// Answer one of [`RPC_METHODS`] as JSON; `None` for any other method.
    /// `PeerMonitor.LatestMetrics` takes the metric name, as a JSON string or as raw UTF-8.
    pub fn handle_rpc(&self, method: &str, payload: &[u8]) -> Option<Result<Vec<u8>, String>> {
        let json = match method {
            "PeerMonitor.LatestMetrics" => {
                let name = match metric_name(payload) {
                    Ok(name) => name,
                    Err(e) => return Some(Err(e)),
                };
                serde_json::to_vec(&self.latest_metrics(&name))
            }
            "PeerMonitor.MetricNames" => serde_json::to_vec(&self.metric_names()),
            "Cluster.Alerts" => serde_json::to_vec(&self.alerts()),
            _ => return None,
        };
        Some(json.map_err(|e| e.to_string()))
    }
}

/// The metric name of a `PeerMonitor.LatestMetrics` payload. A name never starts with a
/// quote, so a JSON string and raw text cannot be confused.
fn metric_name(payload: &[u8]) -> Result<String, String> {
    let name = if payload.first() == Some(&b'"') {
        serde_json::from_slice::<String>(payload).map_err(|e| format!("the metric name is not a JSON string: {e}"))?
    } else {
        String::from_utf8(payload.to_vec()).map_err(|_| "the metric name is not UTF-8".to_string())?
    };
    if name.is_empty() {
        return Err("no metric name given".into());
    }
    Ok(name)
}

/// The store lock. A panic while holding it cannot leave the maps half-updated in a way that
/// matters (each update is one insert), so a poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Publish `informer`'s metrics every interval (every half interval after a failure, as IPFS
/// Cluster retries at TTL/4), recording them locally too: gossipsub does not deliver a peer's
/// own messages back to it.
async fn publish(swarm: SwarmHandle, informer: Box<dyn Informer>, store: Arc<Mutex<MetricStore>>) {
    let me = swarm.local_peer_id().to_string();
    loop {
        let mut failed = false;
        for metric in informer.metrics(&me, now_nanos()) {
            if !metric.valid {
                continue; // Invalid metrics are never published (IPFS Cluster).
            }
            if let Err(e) = lock(&store).log(metric.clone(), now_nanos()) {
                warn!(metric = %metric.name, "this peer's own metric was not kept: {e}");
            }
            let Ok(data) = serde_json::to_vec(&metric) else { continue };
            match swarm.publish(TOPIC, data).await {
                Ok(()) => {}
                // Nobody to tell yet (no peer, or none subscribed so far): not a failure.
                Err(SwarmError::Pubsub(e)) if e.contains("NoPeersSubscribedToTopic") => {
                    debug!(metric = %metric.name, "no peer subscribed to {TOPIC} yet")
                }
                Err(SwarmError::Stopped) => return,
                Err(e) => {
                    failed = true;
                    warn!(metric = %metric.name, "publishing the metric failed: {e}");
                }
            }
        }
        let every = informer.interval();
        tokio::time::sleep(if failed { every / 2 } else { every }).await;
    }
}

/// Record every metric that arrives on [`TOPIC`]. A metric is only accepted from the peer it
/// is about (the message's verified author), so no peer can keep another alive or fake its
/// tags.
async fn receive(
    me: cairn_swarm::PeerId,
    mut events: tokio::sync::broadcast::Receiver<NetworkEvent>,
    store: Arc<Mutex<MetricStore>>,
) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(n)) => {
                warn!("the monitor fell behind the swarm and lost {n} events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let NetworkEvent::Message { source, topic, data } = event else { continue };
        if topic != TOPIC {
            continue;
        }
        let metric: Metric = match serde_json::from_slice(&data) {
            Ok(m) => m,
            Err(e) => {
                debug!(?source, "dropping an undecodable metric: {e}");
                continue;
            }
        };
        match source {
            Some(author) if author.to_string() == metric.peer && author != me => {
                let name = metric.name.clone();
                if let Err(e) = lock(&store).log(metric, now_nanos()) {
                    debug!(peer = %author, "dropping metric {name:?}: {e}");
                }
            }
            _ => debug!(?source, peer = %metric.peer, name = %metric.name, "dropping a metric not sent by its peer"),
        }
    }
}

/// Check for expired metrics every `every`, logging each new alert.
async fn check(every: Duration, store: Arc<Mutex<MetricStore>>) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let alerts = lock(&store).check(now_nanos());
        for alert in alerts {
            warn!(peer = %alert.metric.peer, metric = %alert.metric.name, "metric alert: the metric expired");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_answers_from_the_store() {
        let now = now_nanos();
        let mut store = MetricStore::default();
        store.log(Metric::new("ping", "A", "{}", Duration::from_secs(60), now), now).expect("kept");
        store.log(Metric::new("ping", "B", "{}", Duration::from_secs(1), now - 5_000_000_000), now).expect("kept");
        store.check(now);
        let monitor = Monitor::from_store(store);

        let answer = monitor.handle_rpc("PeerMonitor.LatestMetrics", br#""ping""#).expect("served").expect("ok");
        let metrics: Vec<Metric> = serde_json::from_slice(&answer).expect("json");
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].peer, "A");
        let raw = monitor.handle_rpc("PeerMonitor.LatestMetrics", b"ping").expect("served").expect("ok");
        assert_eq!(raw, answer);
        assert!(monitor.handle_rpc("PeerMonitor.LatestMetrics", b"").expect("served").is_err());

        let names = monitor.handle_rpc("PeerMonitor.MetricNames", b"").expect("served").expect("ok");
        assert_eq!(serde_json::from_slice::<Vec<String>>(&names).expect("json"), ["ping"]);
        let alerts = monitor.handle_rpc("Cluster.Alerts", b"").expect("served").expect("ok");
        let alerts: Vec<Alert> = serde_json::from_slice(&alerts).expect("json");
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].metric.peer, "B");
        assert!(monitor.handle_rpc("Cluster.ID", b"").is_none());
    }
}
