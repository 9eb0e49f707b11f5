//! The crdt engine with several peers in one process, connected by an in-memory network that
//! can partition peers; every peer has its own store file.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_consensus::crdt::{Batching, CrdtConsensus, CrdtSettings, WriteAuthorizer};
use cairn_consensus::{Consensus, ConsensusError, PeerNetwork};
use cairn_state::{BUCKETS, Cid, Pin, PinOptions, PinStore, Record, Version};
use futures::future::BoxFuture;

/// A distinct CIDv1 (raw codec, identity multihash of `n`).
fn cid(n: u64) -> Cid {
    let mh = cid::multihash::Multihash::<64>::wrap(0x00, &n.to_be_bytes()).expect("identity hash");
    Cid::from_raw(cid::Cid::new_v1(0x55, mh))
}

fn pin(n: u64) -> Pin {
    Pin::with_options(cid(n), PinOptions { name: format!("pin {n}"), ..PinOptions::default() })
}

#[derive(Default)]
struct Hub {
    nodes: Mutex<HashMap<String, Arc<CrdtConsensus>>>,
    cut: Mutex<HashSet<String>>,
}

impl Hub {
    fn linked(&self, a: &str, b: &str) -> bool {
        let cut = self.cut.lock().expect("lock");
        !cut.contains(a) && !cut.contains(b)
    }
    fn node(&self, id: &str) -> Option<Arc<CrdtConsensus>> {
        self.nodes.lock().expect("lock").get(id).cloned()
    }
}

struct MemNet {
    hub: Arc<Hub>,
    me: String,
}

impl PeerNetwork for MemNet {
    fn local_peer(&self) -> String {
        self.me.clone()
    }
    fn call(&self, peer: &str, method: &str, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        let target = if self.hub.linked(&self.me, peer) { self.hub.node(peer) } else { None };
        let (me, method) = (self.me.clone(), method.to_string());
        Box::pin(async move {
            let target = target.ok_or("unreachable")?;
            target.handle_rpc(me, method, payload).await
        })
    }
    fn publish(&self, _topic: &str, data: Vec<u8>) -> BoxFuture<'_, Result<(), String>> {
        let targets: Vec<_> = {
            let nodes = self.hub.nodes.lock().expect("lock");
            nodes
                .iter()
                .filter(|(id, _)| **id != self.me && self.hub.linked(&self.me, id))
                .map(|(_, n)| n.clone())
                .collect()
        };
        let me = self.me.clone();
        Box::pin(async move {
            for t in targets {
                let (me, data) = (me.clone(), data.clone());
                tokio::spawn(async move { t.handle_broadcast(me, data).await });
            }
            Ok(())
        })
    }
    fn connected_peers(&self) -> BoxFuture<'_, Vec<String>> {
        let peers = self
            .hub
            .nodes
            .lock()
            .expect("lock")
            .keys()
            .filter(|id| **id != self.me && self.hub.linked(&self.me, id))
            .cloned()
            .collect();
        Box::pin(std::future::ready(peers))
    }
}

/// Trusts the listed peers (and itself).
struct Trust(HashSet<String>);

impl WriteAuthorizer for Trust {
    fn may_write(&self, peer: &str) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(self.0.contains(peer)))
    }
}

fn settings() -> CrdtSettings {
    CrdtSettings {
        sync_interval: Duration::from_millis(500),
        sync_grace: Duration::from_millis(300),
        ..CrdtSettings::default()
    }
}

struct Cluster {
    hub: Arc<Hub>,
    dir: tempfile::TempDir,
    trusted: HashSet<String>,
}

impl Cluster {
    fn new(trusted: &[&str]) -> Self {
        Cluster {
            hub: Arc::default(),
            dir: tempfile::tempdir().expect("tempdir"),
            trusted: trusted.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn store(&self, id: &str) -> Arc<PinStore> {
        Arc::new(PinStore::open(self.dir.path().join(format!("{id}.redb"))).expect("open store"))
    }

    fn add(&self, id: &str, settings: CrdtSettings) -> Arc<CrdtConsensus> {
        self.add_with_store(id, settings, self.store(id))
    }

    fn add_with_store(&self, id: &str, settings: CrdtSettings, store: Arc<PinStore>) -> Arc<CrdtConsensus> {
        let net = Arc::new(MemNet { hub: self.hub.clone(), me: id.to_string() });
        let node =
            Arc::new(CrdtConsensus::start(settings, store, net, Arc::new(Trust(self.trusted.clone()))).expect("start"));
        self.hub.nodes.lock().expect("lock").insert(id.to_string(), node.clone());
        node
    }

    async fn remove(&self, id: &str) {
        let node = self.hub.nodes.lock().expect("lock").remove(id);
        if let Some(node) = node {
            node.shutdown().await.expect("shutdown");
        }
    }
}

/// Every record of a store (tombstones included), in key order.
fn records(store: &PinStore) -> Vec<Record> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store.bucket_records(0, (BUCKETS - 1) as u16, after.as_ref(), 10_000).expect("page");
        out.extend(page.records);
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

async fn converged(nodes: &[&Arc<CrdtConsensus>], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let fps: Vec<_> = nodes.iter().map(|n| n.state().fingerprints().expect("fps")).collect();
        if fps.windows(2).all(|w| w[0] == w[1]) {
            let first = records(nodes[0].state());
            return nodes[1..].iter().all(|n| records(n.state()) == first);
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_converge_on_concurrent_round_robin_pins() {
    let cluster = Cluster::new(&["a", "b", "c"]);
    let nodes = [cluster.add("a", settings()), cluster.add("b", settings()), cluster.add("c", settings())];
    const N: u64 = 6_000;
    let mut tasks = Vec::new();
    for worker in 0..24u64 {
        let nodes = nodes.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            while n < N {
                nodes[(n % 3) as usize].commit_pin(pin(n)).await.expect("commit");
                n += 24;
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    // Some removals and updates too, on other peers than the original writers.
    for n in (0..N).step_by(10) {
        nodes[((n + 1) % 3) as usize].commit_unpin(cid(n)).await.expect("unpin");
    }
    assert!(converged(&[&nodes[0], &nodes[1], &nodes[2]], Duration::from_secs(10)).await, "no convergence in 10 s");
    for node in &nodes {
        assert_eq!(node.state().len().expect("len"), N - N / 10);
        assert_eq!(node.state().get(&cid(7)).expect("get"), Some(pin(7)));
        assert!(node.state().get(&cid(10)).expect("get").is_none());
    }
    for id in ["a", "b", "c"] {
        cluster.remove(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_then_re_add_on_different_peers_converges_to_pinned() {
    let cluster = Cluster::new(&["a", "b"]);
    let (a, b) = (cluster.add("a", settings()), cluster.add("b", settings()));
    a.commit_pin(pin(1)).await.expect("pin");
    assert!(converged(&[&a, &b], Duration::from_secs(5)).await);
    b.commit_unpin(cid(1)).await.expect("unpin on b");
    assert!(converged(&[&a, &b], Duration::from_secs(5)).await);
    a.commit_pin(pin(1)).await.expect("re-add on a");
    assert!(converged(&[&a, &b], Duration::from_secs(5)).await);
    assert_eq!(a.state().get(&cid(1)).expect("get"), Some(pin(1)));
    assert_eq!(b.state().get(&cid(1)).expect("get"), Some(pin(1)));
    cluster.remove("a").await;
    cluster.remove("b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_authors_are_never_applied_even_when_relayed() {
    // "evil" is connected and holds the secret, but is not trusted.
    let cluster = Cluster::new(&["a", "b"]);
    let (a, b) = (cluster.add("a", settings()), cluster.add("b", settings()));
    let evil = cluster.add("evil", settings());

    // 1. Its own deltas are refused.
    evil.commit_pin(pin(100)).await.expect("evil writes its own store");
    // 2. Relayed: a delta signed by evil reaching b through a's relay keeps evil as source.
    let relayed = serde_json::json!({"records": [{"cid": cid(101).to_string(), "clock": u64::MAX / 2, "author": "evil",
        "pin": serde_json::to_value(pin(101)).expect("json")}]});
    b.handle_broadcast("evil".into(), serde_json::to_vec(&relayed).expect("json")).await;
    // 3. A trusted peer's delta carrying an untrusted author's record is refused whole.
    b.handle_broadcast("a".into(), serde_json::to_vec(&relayed).expect("json")).await;
    // 4. Anti-entropy from a trusted peer whose store holds an untrusted author's record.
    a.state().merge_all(&[Record::pin(pin(102), Version { clock: 1, author: b"evil".to_vec() })]).expect("plant");
    b.sync_with("a").await.expect("sync");

    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in [100, 101, 102] {
        assert!(b.state().get(&cid(n)).expect("get").is_none(), "pin {n} from an untrusted author reached b");
    }
    assert!(a.state().get(&cid(100)).expect("get").is_none());
    assert!(b.stats().deltas_refused.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert!(b.stats().synced_records_refused.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    for id in ["a", "b", "evil"] {
        cluster.remove(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_peer_catches_up_without_restart() {
    let cluster = Cluster::new(&["a", "b", "c"]);
    let nodes = [cluster.add("a", settings()), cluster.add("b", settings()), cluster.add("c", settings())];
    cluster.hub.cut.lock().expect("lock").insert("c".into());
    for n in 0..3_000 {
        nodes[(n % 2) as usize].commit_pin(pin(n)).await.expect("commit");
    }
    assert_eq!(nodes[2].state().len().expect("len"), 0, "c is cut off");
    cluster.hub.cut.lock().expect("lock").clear();
    assert!(converged(&[&nodes[0], &nodes[1], &nodes[2]], Duration::from_secs(15)).await);
    assert_eq!(nodes[2].state().len().expect("len"), 3_000);
    for id in ["a", "b", "c"] {
        cluster.remove(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_peer_joins_by_copying_the_pinset() {
    let cluster = Cluster::new(&["a", "fresh"]);
    let a = cluster.add("a", settings());
    let records: Vec<Record> = (0..30_000)
        .map(|n| Record::pin(pin(n), Version { clock: n + 1, author: b"a".to_vec() }))
        .chain((30_000..30_100).map(|n| Record::tombstone(cid(n), Version { clock: n + 1, author: b"a".to_vec() })))
        .collect();
    a.state().merge_all(&records).expect("fill a");
    let started = Instant::now();
    let fresh = cluster.add("fresh", settings());
    assert!(converged(&[&a, &fresh], Duration::from_secs(30)).await, "join did not complete");
    eprintln!("joined 30 000 pins in {:?}", started.elapsed());
    assert_eq!(fresh.state().len().expect("len"), 30_000);
    cluster.remove("a").await;
    cluster.remove("fresh").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_with_a_clear_error() {
    let cluster = Cluster::new(&["a"]);
    let a = cluster.add("a", CrdtSettings { max_queue_size: 1, ..settings() });
    let results = futures::future::join_all((0..200).map(|n| a.commit_pin(pin(n)))).await;
    let full: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!full.is_empty(), "200 simultaneous commits never filled a queue of 1");
    for e in &full {
        assert!(matches!(e, ConsensusError::QueueFull { max: 1 }), "{e:?}");
        assert!(e.to_string().contains("max_queue_size"), "{e}");
    }
    // Whatever was acknowledged is stored.
    let acked = results.iter().filter(|r| r.is_ok()).count() as u64;
    assert_eq!(a.state().len().expect("len"), acked);
    cluster.remove("a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_updates_are_broadcast_by_size_age_and_on_shutdown() {
    let cluster = Cluster::new(&["a", "b"]);
    // No anti-entropy during this test: only broadcasts can move pins.
    let quiet = CrdtSettings { sync_interval: Duration::from_secs(3600), ..settings() };
    let batching = Batching { max_batch_size: 100, max_batch_age: Duration::from_millis(800) };
    let a = cluster.add("a", CrdtSettings { batching: Some(batching), ..quiet.clone() });
    let b = cluster.add("b", quiet);
    // Wait for b's first (startup) sync round with a to pass.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for n in 0..10 {
        a.commit_pin(pin(n)).await.expect("commit");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.state().len().expect("len"), 0, "a batch of 10 < 100 was broadcast before its age");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(b.state().len().expect("len"), 10, "the batch was not broadcast after max_batch_age");
    for n in 10..15 {
        a.commit_pin(pin(n)).await.expect("commit");
    }
    cluster.remove("a").await; // shutdown broadcasts the pending batch
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.state().len().expect("len"), 15, "pending batch lost on shutdown");
    cluster.remove("b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pins_survive_a_restart_and_clocks_move_forward() {
    let cluster = Cluster::new(&["a"]);
    let a = cluster.add("a", settings());
    for n in 0..100 {
        a.commit_pin(pin(n)).await.expect("commit");
    }
    let clock = a.state().max_clock().expect("clock");
    cluster.remove("a").await;
    drop(a);
    let a = cluster.add("a", settings());
    assert_eq!(a.state().len().expect("len"), 100);
    a.commit_unpin(cid(5)).await.expect("unpin");
    let record = a.state().get_record(&cid(5)).expect("record").expect("tombstone");
    assert!(record.version.clock > clock);
    cluster.remove("a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_changes_are_announced_for_local_and_remote_writes() {
    use cairn_consensus::PinChange;
    let cluster = Cluster::new(&["a", "b"]);
    let (a, b) = (cluster.add("a", settings()), cluster.add("b", settings()));
    let mut on_b = b.changes();
    a.commit_pin(pin(1)).await.expect("pin on a");
    b.commit_unpin(cid(2)).await.expect("unpin on b");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let change = tokio::time::timeout(Duration::from_secs(5), on_b.recv()).await.expect("in time").expect("open");
        seen.push(change);
    }
    assert!(seen.contains(&PinChange::Pinned(Box::new(pin(1)))), "{seen:?}");
    assert!(seen.contains(&PinChange::Unpinned(cid(2))), "{seen:?}");
    cluster.remove("a").await;
    cluster.remove("b").await;
}

/// The value of the sample `line_start` (name and labels) in a Prometheus text exposition.
fn sample(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no sample {line_start} in:\n{text}")) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_broadcasts_and_applied_records_are_counted() {
    let cluster = Cluster::new(&["a", "b"]);
    let (a, b) = (cluster.add("a", settings()), cluster.add("b", settings()));
    let (ta, tb) = (cairn_telemetry::Telemetry::new(), cairn_telemetry::Telemetry::new());
    a.register_metrics(&ta);
    b.register_metrics(&tb);
    for n in 0..10 {
        a.commit_pin(pin(n)).await.expect("commit");
    }
    a.commit_unpin(cid(0)).await.expect("unpin");
    assert!(converged(&[&a, &b], Duration::from_secs(10)).await, "no convergence in 10 s");

    let text = ta.encode(cairn_telemetry::Format::Prometheus);
    assert_eq!(sample(&text, "cairn_consensus_commits_total{engine=\"crdt\",op=\"pin\",outcome=\"ok\"}"), 10);
    assert_eq!(sample(&text, "cairn_consensus_commits_total{engine=\"crdt\",op=\"unpin\",outcome=\"ok\"}"), 1);
    assert_eq!(sample(&text, "cairn_consensus_commit_duration_seconds_count{engine=\"crdt\",op=\"pin\"}"), 10);
    assert_eq!(sample(&text, "cairn_crdt_records_broadcast_total"), 11);
    assert!(sample(&text, "cairn_crdt_broadcasts_total") >= 1, "{text}");
    assert!(sample(&text, "cairn_crdt_store_commit_duration_seconds_count") >= 1, "{text}");

    let text = tb.encode(cairn_telemetry::Format::Prometheus);
    let applied = sample(&text, "cairn_crdt_records_applied_total{source=\"delta\"}")
        + sample(&text, "cairn_crdt_records_applied_total{source=\"sync\"}");
    assert!(applied >= 10, "{text}");
    assert_eq!(sample(&text, "cairn_crdt_deltas_received_total{outcome=\"refused\"}"), 0);
    for id in ["a", "b"] {
        cluster.remove(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_clock_in_the_store_refuses_writes_with_a_clear_error() {
    // A store whose highest clock is u64::MAX (written before clocks were bounded, or
    // corrupted): the next clock cannot be issued, so the write is refused, not wrapped.
    let cluster = Cluster::new(&["a"]);
    let store = cluster.store("a");
    store.merge_all(&[Record::pin(pin(1), Version { clock: u64::MAX, author: b"a".to_vec() })]).expect("plant");
    let a = cluster.add_with_store("a", settings(), store);
    let err = a.commit_pin(pin(2)).await.expect_err("a write past u64::MAX must be refused");
    assert!(err.to_string().contains("clock"), "{err}");
    let err = a.commit_unpin(cid(1)).await.expect_err("an unpin past u64::MAX must be refused");
    assert!(err.to_string().contains("clock"), "{err}");
    assert!(a.state().get(&cid(2)).expect("get").is_none());
    assert!(a.state().get(&cid(1)).expect("get").is_some());
    cluster.remove("a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_peers_clock_far_in_the_future_is_refused() {
    let cluster = Cluster::new(&["a", "b"]);
    let (a, b) = (cluster.add("a", settings()), cluster.add("b", settings()));
    // 1. A delta from a trusted peer at u64::MAX: refused whole, the clock does not move.
    let delta = serde_json::json!({"records": [{"cid": cid(200).to_string(), "clock": u64::MAX, "author": "a",
        "pin": serde_json::to_value(pin(200)).expect("json")}]});
    b.handle_broadcast("a".into(), serde_json::to_vec(&delta).expect("json")).await;
    // 2. The same record in a trusted peer's store, pulled by anti-entropy: refused.
    a.state()
        .merge_all(&[Record::pin(pin(201), Version { clock: u64::MAX - 1, author: b"a".to_vec() })])
        .expect("plant");
    b.sync_with("a").await.expect("sync");

    // b still writes, and its writes are not beaten by the far-future records.
    b.commit_pin(pin(202)).await.expect("b writes after seeing a far-future clock");
    let clock = b.state().get_record(&cid(202)).expect("record").expect("stored").version.clock;
    assert!(clock < u64::MAX / 2, "b's clock was dragged to {clock}");
    for n in [200, 201] {
        assert!(b.state().get(&cid(n)).expect("get").is_none(), "far-future record {n} reached b");
    }
    assert!(b.stats().deltas_refused.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert!(b.stats().synced_records_refused.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    for id in ["a", "b"] {
        cluster.remove(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_request_with_a_bad_bucket_range_is_refused() {
    let cluster = Cluster::new(&["a"]);
    let a = cluster.add("a", settings());
    a.commit_pin(pin(1)).await.expect("commit");
    for (first, last) in [(5u32, 2u32), (0, 65_535), (4096, 4096)] {
        let request = serde_json::json!({"first": first, "last": last, "after": null, "limit": 10});
        let answer = a.handle_rpc("b".into(), "Crdt.Records".into(), serde_json::to_vec(&request).expect("json")).await;
        let err = answer.expect_err("a bucket range outside 0..4096 or reversed must be refused");
        assert!(err.contains("bucket"), "{err}");
    }
    cluster.remove("a").await;
}

/// A trusted peer whose record pages never end: always a `next`, never a record. It gives up
/// after 1000 pages itself, so the test ends whatever the engine does.
#[derive(Default)]
struct EndlessPages(std::sync::atomic::AtomicU64);

impl PeerNetwork for EndlessPages {
    fn local_peer(&self) -> String {
        "b".into()
    }
    fn call(&self, _peer: &str, method: &str, _payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        if self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 1000 {
            return Box::pin(std::future::ready(Err("the test peer stopped paging after 1000 pages".into())));
        }
        let answer = match method {
            "Crdt.Fingerprints" => vec![0xff; BUCKETS * 16],
            _ => serde_json::to_vec(&serde_json::json!({"records": [], "next": cid(1).to_string()})).expect("json"),
        };
        Box::pin(std::future::ready(Ok(answer)))
    }
    fn publish(&self, _topic: &str, _data: Vec<u8>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn connected_peers(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(std::future::ready(Vec::new()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_paging_without_progress_ends_the_sync_round() {
    let cluster = Cluster::new(&["a", "b"]);
    let b = CrdtConsensus::start(
        settings(),
        cluster.store("b"),
        Arc::new(EndlessPages::default()),
        Arc::new(Trust(cluster.trusted.clone())),
    )
    .expect("start");
    let round = tokio::time::timeout(Duration::from_secs(10), b.sync_with("a")).await;
    let err = round.expect("the sync round never ended").expect_err("a page without progress is an error");
    assert!(err.to_string().contains("progress"), "{err}");
    b.shutdown().await.expect("shutdown");
}
