//! Three (or four) raft peers in one runtime, each on its own pinset file, talking through an
//! in-process `PeerNetwork`.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_consensus::{Consensus, ConsensusError, PeerNetwork, PinChange};
use cairn_raft::{RaftConsensus, RaftSettings};
use cairn_state::{Cid, Pin, PinStore};
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

const PEERS: [&str; 4] = ["12D3KooWAlpha", "12D3KooWBravo", "12D3KooWCharlie", "12D3KooWDelta"];

/// Which engines are up, by peer id: a call to a peer that is not here fails like a closed
/// connection.
#[derive(Default)]
struct Registry {
    engines: Mutex<HashMap<String, Arc<RaftConsensus>>>,
}

impl Registry {
    fn get(&self, peer: &str) -> Option<Arc<RaftConsensus>> {
        self.engines.lock().unwrap().get(peer).cloned()
    }
}

struct TestNet {
    me: String,
    registry: Arc<Registry>,
}

impl PeerNetwork for TestNet {
    fn local_peer(&self) -> String {
        self.me.clone()
    }

    fn call(&self, peer: &str, method: &str, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        let target = self.registry.get(peer);
        let (me, peer, method) = (self.me.clone(), peer.to_string(), method.to_string());
        Box::pin(async move {
            let target = target.ok_or_else(|| format!("{peer} is not connected"))?;
            // The callee works in its own task, as it would behind a real connection: a caller
            // giving up does not cancel it.
            tokio::spawn(async move { target.handle_rpc(me, method, payload).await })
                .await
                .map_err(|e| e.to_string())?
        })
    }

    fn publish(&self, _topic: &str, _data: Vec<u8>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn connected_peers(&self) -> BoxFuture<'_, Vec<String>> {
        let peers = self.registry.engines.lock().unwrap().keys().cloned().collect();
        Box::pin(async move { peers })
    }
}

fn fast_settings(init: &[&str]) -> RaftSettings {
    RaftSettings {
        init_peerset: init.iter().map(|p| p.to_string()).collect(),
        wait_for_leader_timeout: Duration::from_secs(15),
        network_timeout: Duration::from_secs(5),
        commit_retries: 5,
        commit_retry_delay: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_millis(500),
        election_timeout: Duration::from_millis(500),
        secret_present: true,
        ..RaftSettings::default()
    }
}

struct Cluster {
    registry: Arc<Registry>,
    _dir: tempfile::TempDir,
    paths: Vec<PathBuf>,
    stores: Vec<Option<Arc<PinStore>>>,
    settings: RaftSettings,
}

impl Cluster {
    fn new(settings: RaftSettings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = PEERS
            .iter()
            .map(|p| {
                let folder = dir.path().join(p);
                std::fs::create_dir_all(&folder).unwrap();
                folder.join("pinset.redb")
            })
            .collect();
        Cluster { registry: Arc::default(), _dir: dir, stores: vec![None; paths.len()], paths, settings }
    }

    fn store(&mut self, i: usize) -> Arc<PinStore> {
        self.stores[i].get_or_insert_with(|| Arc::new(PinStore::open(&self.paths[i]).unwrap())).clone()
    }

    async fn start(&mut self, i: usize) -> Arc<RaftConsensus> {
        let store = self.store(i);
        let net = Arc::new(TestNet { me: PEERS[i].into(), registry: self.registry.clone() });
        let engine = Arc::new(RaftConsensus::start(self.settings.clone(), store, net).await.unwrap());
        self.registry.engines.lock().unwrap().insert(PEERS[i].into(), engine.clone());
        engine
    }

    fn engine(&self, i: usize) -> Arc<RaftConsensus> {
        self.registry.get(PEERS[i]).unwrap()
    }

    /// Stops peer `i` (it becomes unreachable) and, with `close_store`, closes its pinset file
    /// so the next start reopens it from disk.
    async fn stop(&mut self, i: usize, close_store: bool) {
        let engine = self.registry.engines.lock().unwrap().remove(PEERS[i]).unwrap();
        engine.shutdown().await.unwrap();
        drop(engine);
        if close_store {
            let store = self.stores[i].take().unwrap();
            // The engine's background tasks and its store thread let go of the file shortly
            // after shutdown.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut store = Some(store);
            while let Some(s) = store.take() {
                match Arc::try_unwrap(s) {
                    Ok(owned) => drop(owned),
                    Err(shared) => {
                        assert!(Instant::now() < deadline, "the pinset file of {} is still held", PEERS[i]);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        store = Some(shared);
                    }
                }
            }
        }
    }

    async fn leader(&self, among: &[usize]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for &i in among {
                let engine = self.engine(i);
                if engine.leader().as_deref() == Some(PEERS[i]) {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no leader among {among:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn cid(n: u64) -> Cid {
    // CIDv1, raw codec, sha2-256 multihash of the number.
    let mut bytes = vec![0x01, 0x55, 0x12, 0x20];
    bytes.extend_from_slice(&Sha256::digest(n.to_be_bytes()));
    Cid::from_bytes(&bytes).unwrap()
}

fn pin(n: u64) -> Pin {
    let mut pin = Pin::new(cid(n));
    pin.options.name = format!("pin-{n}");
    pin
}

/// Every pin of a store, as IPFS Cluster JSON, in key order.
fn contents(store: &PinStore) -> Vec<String> {
    let mut all = Vec::new();
    store
        .for_each(|p| {
            all.push(serde_json::to_string(&p).unwrap());
            ControlFlow::Continue(())
        })
        .unwrap();
    all
}

/// Waits until the stores of `peers` hold the same pins, `expected` of them.
async fn converge(cluster: &mut Cluster, peers: &[usize], expected: u64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stores: Vec<Arc<PinStore>> = peers.iter().map(|&i| cluster.store(i)).collect();
        if stores.iter().all(|s| s.len().unwrap() == expected) {
            let first = contents(&stores[0]);
            if stores[1..].iter().all(|s| contents(s) == first) {
                return first;
            }
        }
        let lens: Vec<u64> = stores.iter().map(|s| s.len().unwrap()).collect();
        assert!(Instant::now() < deadline, "stores did not converge to {expected} pins: {lens:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_three(cluster: &mut Cluster) -> usize {
    for i in 0..3 {
        cluster.start(i).await;
    }
    for i in 0..3 {
        cluster.engine(i).ready().await.unwrap();
    }
    cluster.leader(&[0, 1, 2]).await
}

#[tokio::test]
async fn refuses_to_start_without_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(PinStore::open(dir.path().join("pinset.redb")).unwrap());
    let net = Arc::new(TestNet { me: PEERS[0].into(), registry: Arc::default() });
    let settings = RaftSettings { secret_present: false, ..fast_settings(&[]) };
    let err = RaftConsensus::start(settings, store, net).await.unwrap_err();
    let ConsensusError::Refused(reason) = err else { panic!("expected a refusal, got {err:?}") };
    assert!(reason.contains("cluster.secret"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_times_out_without_a_quorum() {
    let settings = RaftSettings { wait_for_leader_timeout: Duration::from_secs(2), ..fast_settings(&PEERS[..3]) };
    let mut cluster = Cluster::new(settings);
    // The lowest peer initializes and campaigns, but alone it never wins.
    let alone = cluster.start(0).await;
    let started = Instant::now();
    let err = alone.ready().await.unwrap_err();
    assert!(matches!(err, ConsensusError::NoLeader { waited_ms: 2000 }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    alone.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_peer_without_init_peerset_leads_itself() {
    let mut cluster = Cluster::new(fast_settings(&[]));
    let engine = cluster.start(0).await;
    let telemetry = cairn_telemetry::Telemetry::new();
    engine.register_metrics(&telemetry);
    engine.ready().await.unwrap();
    engine.commit_pin(pin(1)).await.unwrap();
    assert_eq!(engine.state().get(&cid(1)).unwrap(), Some(pin(1)));
    assert_eq!(engine.peers().await.unwrap(), vec![PEERS[0].to_string()]);
    // Its metrics: one commit, and itself as the leader of a one-voter membership.
    let text = telemetry.encode(cairn_telemetry::Format::Prometheus);
    for expected in [
        "cairn_consensus_commits_total{engine=\"raft\",op=\"pin\",outcome=\"ok\"} 1\n".to_owned(),
        "cairn_raft_is_leader 1\n".to_owned(),
        "cairn_raft_voters 1\n".to_owned(),
        format!("cairn_raft_leader{{peer=\"{}\"}} 1\n", PEERS[0]),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("cairn_raft_term 0\n"), "{text}");
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elects_and_replicates_commits_made_on_any_peer() {
    let mut cluster = Cluster::new(fast_settings(&PEERS[..3]));
    let leader = start_three(&mut cluster).await;
    for i in 0..3 {
        let mut peers = cluster.engine(i).peers().await.unwrap();
        peers.sort();
        assert_eq!(peers, PEERS[..3].iter().map(|p| p.to_string()).collect::<Vec<_>>());
        assert_eq!(cluster.engine(i).leader().as_deref(), Some(PEERS[leader]));
    }
    let mut changes = cluster.engine((leader + 1) % 3).changes();
    // Followers forward to the leader.
    for n in 0..30 {
        cluster.engine(n as usize % 3).commit_pin(pin(n)).await.unwrap();
    }
    cluster.engine((leader + 1) % 3).commit_unpin(cid(7)).await.unwrap();
    cluster.engine(leader).commit_unpin(cid(8)).await.unwrap();
    // Updating a pin replaces it.
    let mut renamed = pin(9);
    renamed.options.name = "renamed".into();
    cluster.engine((leader + 2) % 3).commit_pin(renamed.clone()).await.unwrap();
    let all = converge(&mut cluster, &[0, 1, 2], 28).await;
    assert_eq!(all.len(), 28);
    for i in 0..3 {
        let store = cluster.store(i);
        assert_eq!(store.get(&cid(7)).unwrap(), None);
        assert_eq!(store.get(&cid(9)).unwrap(), Some(renamed.clone()));
    }
    // A follower announces what it applied, in order.
    let mut seen = Vec::new();
    while let Ok(change) = changes.try_recv() {
        seen.push(change);
    }
    assert_eq!(seen.len(), 33, "{seen:?}");
    assert_eq!(seen.iter().filter(|c| matches!(c, PinChange::Pinned(_))).count(), 31);
    let last_of_7 = seen
        .iter()
        .rev()
        .find(|c| matches!(c, PinChange::Pinned(p) if p.cid == cid(7)) || **c == PinChange::Unpinned(cid(7)));
    assert_eq!(last_of_7, Some(&PinChange::Unpinned(cid(7))));
    assert_eq!(seen.last(), Some(&PinChange::Pinned(Box::new(renamed.clone()))));
    for i in 0..3 {
        cluster.engine(i).shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_pins_converge() {
    const PINS: u64 = 10_000;
    const CLIENTS: u64 = 100;
    let mut cluster = Cluster::new(fast_settings(&PEERS[..3]));
    start_three(&mut cluster).await;
    let engines: Vec<Arc<RaftConsensus>> = (0..3).map(|i| cluster.engine(i)).collect();
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let engines = engines.clone();
        clients.push(tokio::spawn(async move {
            let mut n = client;
            while n < PINS {
                // Round-robin over the peers: two thirds of the commits are forwarded.
                engines[(n % 3) as usize].commit_pin(pin(n)).await.unwrap();
                n += CLIENTS;
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "throughput: {PINS} acknowledged pins in {:.2} s = {:.0} pins/s (3 in-process peers, {CLIENTS} clients, debug build)",
        elapsed.as_secs_f64(),
        PINS as f64 / elapsed.as_secs_f64()
    );
    converge(&mut cluster, &[0, 1, 2], PINS).await;
    for engine in engines {
        engine.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_follower_catches_up_from_its_store() {
    let mut cluster = Cluster::new(fast_settings(&PEERS[..3]));
    let leader = start_three(&mut cluster).await;
    for n in 0..50 {
        cluster.engine(leader).commit_pin(pin(n)).await.unwrap();
    }
    let follower = (leader + 1) % 3;
    converge(&mut cluster, &[0, 1, 2], 50).await;
    cluster.stop(follower, true).await;
    for n in 50..250 {
        cluster.engine(leader).commit_pin(pin(n)).await.unwrap();
    }
    // Same pinset file, reopened: the engine resumes from it (no re-initialization).
    let restarted = cluster.start(follower).await;
    restarted.ready().await.unwrap();
    converge(&mut cluster, &[0, 1, 2], 250).await;
    restarted.commit_pin(pin(1000)).await.unwrap();
    converge(&mut cluster, &[0, 1, 2], 251).await;
    for i in 0..3 {
        cluster.engine(i).shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_stop_elects_a_new_leader_and_commits_continue() {
    let mut cluster = Cluster::new(fast_settings(&PEERS[..3]));
    let old = start_three(&mut cluster).await;
    for n in 0..20 {
        cluster.engine(n as usize % 3).commit_pin(pin(n)).await.unwrap();
    }
    cluster.stop(old, false).await;
    let rest: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let new = cluster.leader(&rest).await;
    assert_ne!(new, old);
    // Commits go on from both survivors (the follower's forwarded to the new leader).
    for n in 20..60 {
        cluster.engine(rest[n as usize % 2]).commit_pin(pin(n)).await.unwrap();
    }
    converge(&mut cluster, &rest, 60).await;
    // The old leader comes back as a follower and catches up.
    cluster.start(old).await.ready().await.unwrap();
    converge(&mut cluster, &[0, 1, 2], 60).await;
    for i in 0..3 {
        cluster.engine(i).shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_bring_lagging_and_new_peers_up() {
    let settings = RaftSettings {
        snapshot_threshold: 100,
        trailing_logs: 20,
        snapshot_interval: Duration::from_millis(500),
        ..fast_settings(&PEERS[..3])
    };
    let mut cluster = Cluster::new(settings);
    let leader = start_three(&mut cluster).await;
    let lagging = (leader + 1) % 3;
    cluster.stop(lagging, true).await;
    for n in 0..400 {
        cluster.engine(leader).commit_pin(pin(n)).await.unwrap();
    }
    for n in 0..50 {
        cluster.engine(leader).commit_unpin(cid(n)).await.unwrap();
    }
    // The leader snapshotted and purged past the lagging peer's log.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = cluster.engine(leader).metrics();
        let purged = m.purged.map_or(0, |l| l.index);
        if m.snapshot.is_some() && purged > 100 {
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot/purge on the leader: {:?} {:?}", m.snapshot, m.purged);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the lagging peer a stale pin the snapshot does not have: installing must drop it.
    cluster.store(lagging).put(&pin(99_999)).unwrap();
    let back = cluster.start(lagging).await;
    back.ready().await.unwrap();
    converge(&mut cluster, &[0, 1, 2], 350).await;
    assert!(back.metrics().snapshot.is_some(), "the lagging peer should have installed a snapshot");

    // A brand-new peer joins through a follower (forwarded to the leader) and gets the snapshot.
    let fresh = cluster.start(3).await;
    let mut fresh_changes = fresh.changes();
    let follower = (leader + 2) % 3;
    cluster.engine(follower).add_peer(PEERS[3].into()).await.unwrap();
    converge(&mut cluster, &[0, 1, 2, 3], 350).await;
    assert!(fresh.metrics().snapshot.is_some(), "the new peer should have installed a snapshot");
    // Replaying what it announced (the install's pins, then entries after the snapshot) gives
    // its pinset.
    let mut announced = std::collections::BTreeSet::new();
    while let Ok(change) = fresh_changes.try_recv() {
        match change {
            PinChange::Pinned(p) => announced.insert(p.cid),
            PinChange::Unpinned(c) => announced.remove(&c),
        };
    }
    let expected: std::collections::BTreeSet<Cid> = (50..400).map(cid).collect();
    assert!(announced == expected, "announced {} pins, {} expected", announced.len(), expected.len());
    let mut peers = cluster.engine(leader).peers().await.unwrap();
    peers.sort();
    assert_eq!(peers, PEERS.iter().map(|p| p.to_string()).collect::<Vec<_>>());
    for i in 0..4 {
        cluster.engine(i).shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm_peer_removes_it_from_the_voters() {
    let mut cluster = Cluster::new(fast_settings(&PEERS[..3]));
    let leader = start_three(&mut cluster).await;
    let follower = (leader + 1) % 3;
    let removed = (leader + 2) % 3;
    // Asked on a follower: forwarded to the leader.
    cluster.engine(follower).rm_peer(PEERS[removed].into()).await.unwrap();
    let mut expected: Vec<String> = [leader, follower].iter().map(|&i| PEERS[i].to_string()).collect();
    expected.sort();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let views = [cluster.engine(leader).peers().await.unwrap(), cluster.engine(follower).peers().await.unwrap()];
        if views.iter().all(|v| *v == expected) {
            break;
        }
        assert!(Instant::now() < deadline, "peers after rm: {views:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Removing an unknown peer is a no-op; commits keep working with two voters.
    cluster.engine(leader).rm_peer("12D3KooWNobody".into()).await.unwrap();
    cluster.engine(follower).commit_pin(pin(1)).await.unwrap();
    converge(&mut cluster, &[leader, follower], 1).await;
    for i in 0..3 {
        cluster.engine(i).shutdown().await.unwrap();
    }
}
