//! The peer's periodic jobs: measuring what the informers publish, `pin_recover_interval`'s
//! recover of failed pins, `state_sync_interval`'s unpinning of expired pins, and connecting the
//! IPFS daemons of the cluster to each other.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_consensus::Consensus;
use cairn_ipfs::IpfsConnector;
use cairn_state::{Cid, Timestamp};
use cairn_tracker::PinTracker;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::cluster::ClusterRpc;
use crate::config::ServiceConfig;

/// Starts the jobs; each runs until aborted.
pub fn start(
    config: &ServiceConfig,
    rpc: Arc<ClusterRpc>,
    consensus: Arc<dyn Consensus>,
    tracker: PinTracker,
    ipfs: Arc<dyn IpfsConnector>,
) -> Vec<JoinHandle<()>> {
    let cluster = config.cluster();
    let disk_every = config
        .informer
        .disk
        .as_ref()
        .map_or(Duration::from_secs(15), |d| (d.metric_ttl.0 / 2).max(Duration::from_secs(1)));
    let mut jobs = vec![tokio::spawn(measure(rpc.clone(), consensus.clone(), tracker, ipfs.clone(), disk_every))];
    if !cluster.pin_recover_interval.0.is_zero() {
        jobs.push(tokio::spawn(recover(rpc.clone(), cluster.pin_recover_interval.0)));
    }
    if !cluster.state_sync_interval.0.is_zero() {
        jobs.push(tokio::spawn(expire(rpc.clone(), consensus.clone(), cluster.state_sync_interval.0)));
    }
    if !cluster.disable_repinning {
        jobs.push(tokio::spawn(repin(rpc.clone(), consensus.clone())));
    }
    let delay = config.ipfs_connector.connect_swarms_delay();
    if !delay.is_zero() {
        // An embedded node finds the other peers' nodes only this way (no DHT, no bootstrap),
        // so it retries often; a Kubo daemon has its own discovery, so every 5 minutes will do.
        let every = if config.ipfs_connector.embedded.is_some() { 10 } else { 300 };
        jobs.push(tokio::spawn(connect_swarms(rpc, ipfs, delay, Duration::from_secs(every))));
    }
    jobs
}

/// Keeps the informers' figures current: queue length and pinset size every few seconds, the
/// IPFS repo every `disk_every`, the IPFS identity until known (then every minute).
async fn measure(
    rpc: Arc<ClusterRpc>,
    consensus: Arc<dyn Consensus>,
    tracker: PinTracker,
    ipfs: Arc<dyn IpfsConnector>,
    disk_every: Duration,
) {
    let figures = rpc.figures().clone();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut last_disk: Option<tokio::time::Instant> = None;
    let mut last_id: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        figures.pin_queue.store(tracker.queued() as u64, Ordering::Relaxed);
        if let Ok(n) = consensus.state().len() {
            figures.num_pins.store(n, Ordering::Relaxed);
        }
        if last_disk.is_none_or(|t| t.elapsed() >= disk_every) {
            match ipfs.repo_stat().await {
                Ok(stat) => {
                    *figures.repo.lock().unwrap_or_else(|p| p.into_inner()) = Some((stat.free_space(), stat.repo_size));
                }
                Err(e) => debug!("repo/stat failed: {e}"),
            }
            last_disk = Some(tokio::time::Instant::now());
        }
        let known = figures.ipfs.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        if last_id.is_none_or(|t| t.elapsed() >= Duration::from_secs(if known { 60 } else { 5 })) {
            match ipfs.id().await {
                Ok(id) => {
                    let addrs = id.addresses.clone();
                    *figures.ipfs.lock().unwrap_or_else(|p| p.into_inner()) = Some((id.peer_id, addrs));
                }
                Err(e) => debug!("IPFS id failed: {e}"),
            }
            last_id = Some(tokio::time::Instant::now());
        }
    }
}

/// `pin_recover_interval`: re-queue this peer's failed pins and unpins.
async fn recover(rpc: Arc<ClusterRpc>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // not at start: the pinset sync just did that work
    loop {
        tick.tick().await;
        match rpc.local_status_all(cairn_api::TrackerFilter::ALL, true).await {
            Ok(items) if !items.is_empty() => info!(items = items.len(), "periodic recover re-queued failed items"),
            Ok(_) => {}
            Err(e) => warn!("periodic recover failed: {e}"),
        }
    }
}

/// `state_sync_interval`: unpin the pins whose `expire_at` passed. Only the trusted peer
/// XOR-closest to a CID does it (as IPFS Cluster), so the peers do not all commit the same
/// unpin.
async fn expire(rpc: Arc<ClusterRpc>, consensus: Arc<dyn Consensus>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = Timestamp::now();
        let store = consensus.state().clone();
        let expired: Vec<Cid> = tokio::task::spawn_blocking(move || {
            let mut expired = Vec::new();
            let _ = store.for_each(|pin| {
                if !pin.options.expire_at.is_unset() && pin.options.expire_at.0 <= now.0 {
                    expired.push(pin.cid);
                }
                ControlFlow::Continue(())
            });
            expired
        })
        .await
        .unwrap_or_default();
        if expired.is_empty() {
            continue;
        }
        let mut trusted = Vec::new();
        for peer in rpc.peerset().await {
            if rpc.trusts(&peer).await {
                trusted.push(peer);
            }
        }
        let me = rpc.local_peer();
        for cid in expired {
            if closest(&trusted, &cid).as_deref() != Some(me.as_str()) {
                continue;
            }
            match consensus.commit_unpin(cid.clone()).await {
                Ok(()) => info!(%cid, "unpinned: its expire_at has passed"),
                Err(e) => warn!(%cid, "expired pin not unpinned: {e}"),
            }
        }
    }
}

/// Repinning (`disable_repinning: false`): when a peer's `ping` metric expires, every pin
/// allocated to it is re-allocated without it, by the trusted peer XOR-closest to the CID
/// (the dead peer excluded), so each pin has its minimum replication again. Other pins are left
/// alone. Alerts are watched, never consumed, so `/health/alerts` keeps updating.
async fn repin(rpc: Arc<ClusterRpc>, consensus: Arc<dyn Consensus>) {
    let mut handled: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let dead: Vec<(String, String)> = rpc
            .monitor_alerts()
            .into_iter()
            .filter(|a| a.metric.name == "ping")
            .map(|a| (a.metric.peer, a.triggered_at))
            .filter(|key| !handled.contains(key))
            .collect();
        for (peer, triggered_at) in dead {
            handled.insert((peer.clone(), triggered_at));
            let store = consensus.state().clone();
            let victim = peer.clone();
            let affected: Vec<cairn_state::Pin> = tokio::task::spawn_blocking(move || {
                let mut pins = Vec::new();
                let _ = store.for_each(|pin| {
                    if pin.allocations.contains(&victim) {
                        pins.push(pin);
                    }
                    ControlFlow::Continue(())
                });
                pins
            })
            .await
            .unwrap_or_default();
            if affected.is_empty() {
                continue;
            }
            let mut trusted = Vec::new();
            for p in rpc.peerset().await {
                if p != peer && rpc.trusts(&p).await {
                    trusted.push(p);
                }
            }
            let me = rpc.local_peer();
            let mut moved = 0usize;
            for pin in affected {
                if closest(&trusted, &pin.cid).as_deref() != Some(me.as_str()) {
                    continue;
                }
                match rpc.repin_without(pin, &peer).await {
                    Ok(()) => moved += 1,
                    Err(e) => warn!(%peer, "repin failed: {e}"),
                }
            }
            if moved > 0 {
                info!(%peer, pins = moved, "re-allocated the pins of a peer whose ping expired");
            }
        }
    }
}

/// The peer whose id hash is XOR-closest to the CID's hash.
fn closest(peers: &[String], cid: &Cid) -> Option<String> {
    let target = Sha256::digest(cid.to_bytes());
    peers
        .iter()
        .min_by_key(|peer| {
            let h = Sha256::digest(peer.as_bytes());
            h.iter().zip(target.iter()).map(|(a, b)| a ^ b).collect::<Vec<u8>>()
        })
        .cloned()
}

/// `connect_swarms_delay`: after the delay, and then every few minutes, ask this peer's IPFS
/// daemon to connect to the other peers' IPFS daemons (their addresses travel in the `ping`
/// metrics), so content moves between them.
async fn connect_swarms(rpc: Arc<ClusterRpc>, ipfs: Arc<dyn IpfsConnector>, delay: Duration, every: Duration) {
    tokio::time::sleep(delay).await;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let (me, _) = rpc.ipfs_identity();
        for metric in rpc.monitor_metrics("ping") {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&metric.value) else { continue };
            let id = value["ipfs_id"].as_str().unwrap_or_default();
            if id.is_empty() || id == me {
                continue;
            }
            for addr in value["ipfs_addresses"].as_array().into_iter().flatten().filter_map(|a| a.as_str()) {
                let full = if addr.contains("/p2p/") { addr.to_string() } else { format!("{addr}/p2p/{id}") };
                match ipfs.swarm_connect(&full).await {
                    Ok(()) => break,
                    Err(e) => debug!(%full, "IPFS swarm connect failed: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_closest_peer_per_cid() {
        let peers: Vec<String> = (0..5).map(|i| format!("peer{i}")).collect();
        let cid = Cid::parse("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy").expect("cid");
        let a = closest(&peers, &cid).expect("some");
        let mut reversed = peers.clone();
        reversed.reverse();
        assert_eq!(closest(&reversed, &cid), Some(a));
        assert_eq!(closest(&[], &cid), None);
    }
}
