//! The tracker against a fake IPFS whose pins can be made to fail, stall or succeed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_state::{Cid, Pin, PinMode, PinOptions};
use cairn_tracker::{IpfsPinType, IpfsPins, PinTracker, TrackerFilter, TrackerSettings, TrackerStatus};
use futures::future::BoxFuture;

fn cid(n: u64) -> Cid {
    let mh = cid::multihash::Multihash::<64>::wrap(0x00, &n.to_be_bytes()).expect("identity hash");
    Cid::from_raw(cid::Cid::new_v1(0x55, mh))
}

#[derive(Default)]
struct FakeIpfs {
    pinned: Mutex<HashMap<Cid, IpfsPinType>>,
    /// Pins of these CIDs fail with this error.
    failing: Mutex<HashMap<Cid, String>>,
    /// Pins of these CIDs never finish.
    stalled: Mutex<Vec<Cid>>,
    down: Mutex<bool>,
}

impl IpfsPins for FakeIpfs {
    fn pin(&self, cid: &Cid, mode: PinMode) -> BoxFuture<'_, Result<(), String>> {
        let cid = cid.clone();
        Box::pin(async move {
            if *self.down.lock().expect("lock") {
                return Err("connection refused".into());
            }
            if self.stalled.lock().expect("lock").contains(&cid) {
                futures::future::pending::<()>().await;
            }
            if let Some(e) = self.failing.lock().expect("lock").get(&cid) {
                return Err(e.clone());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            let kind = if mode == PinMode::Direct { IpfsPinType::Direct } else { IpfsPinType::Recursive };
            self.pinned.lock().expect("lock").insert(cid, kind);
            Ok(())
        })
    }
    fn unpin(&self, cid: &Cid) -> BoxFuture<'_, Result<(), String>> {
        let cid = cid.clone();
        Box::pin(async move {
            if *self.down.lock().expect("lock") {
                return Err("connection refused".into());
            }
            self.pinned.lock().expect("lock").remove(&cid);
            Ok(())
        })
    }
    fn pin_ls(&self, cid: &Cid) -> BoxFuture<'_, Result<Option<IpfsPinType>, String>> {
        let found = self.pinned.lock().expect("lock").get(cid).copied();
        Box::pin(std::future::ready(Ok(found)))
    }
    fn pin_ls_all(&self) -> BoxFuture<'_, Result<HashMap<Vec<u8>, IpfsPinType>, String>> {
        let all = self.pinned.lock().expect("lock").iter().map(|(c, t)| (cairn_tracker::multihash_of(c), *t)).collect();
        Box::pin(std::future::ready(Ok(all)))
    }
}

fn pin(n: u64, allocations: &[&str]) -> Pin {
    let mut p = Pin::with_options(cid(n), PinOptions::default());
    p.allocations = allocations.iter().map(|s| s.to_string()).collect();
    p.timestamp = cairn_state::Timestamp::now();
    p
}

fn tracker(ipfs: &Arc<FakeIpfs>, settings: TrackerSettings) -> PinTracker {
    PinTracker::start(TrackerSettings { peer: "me".into(), ..settings }, ipfs.clone())
}

async fn wait_status(t: &PinTracker, p: &Pin, want: TrackerStatus) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = t.status(&p.cid, Some(p)).await;
        if s.status == want {
            return;
        }
        assert!(Instant::now() < deadline, "{} stayed {:?} ({}) instead of {want:?}", p.cid, s.status, s.error);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn allocated_pins_are_pinned_and_others_are_remote() {
    let ipfs = Arc::new(FakeIpfs::default());
    let t = tracker(&ipfs, TrackerSettings::default());
    let mine = pin(1, &["me", "other"]);
    let everywhere = pin(2, &[]);
    let remote = pin(3, &["other"]);
    for p in [&mine, &everywhere, &remote] {
        t.track(p);
    }
    wait_status(&t, &mine, TrackerStatus::Pinned).await;
    wait_status(&t, &everywhere, TrackerStatus::Pinned).await;
    wait_status(&t, &remote, TrackerStatus::Remote).await;
    assert!(!ipfs.pinned.lock().expect("lock").contains_key(&remote.cid));
    // Not in the pinset at all: unpinned.
    assert_eq!(t.status(&cid(99), None).await.status, TrackerStatus::Unpinned);
    // Unpin.
    t.untrack(&mine.cid);
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.status(&mine.cid, None).await.status != TrackerStatus::Unpinned {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!ipfs.pinned.lock().expect("lock").contains_key(&mine.cid));
    t.shutdown().await;
}

#[tokio::test]
async fn failures_are_kept_with_attempts_and_recover_repins() {
    let ipfs = Arc::new(FakeIpfs::default());
    let t = tracker(&ipfs, TrackerSettings::default());
    let p = pin(1, &["me"]);
    ipfs.failing.lock().expect("lock").insert(p.cid.clone(), "context deadline exceeded".into());
    t.track(&p);
    wait_status(&t, &p, TrackerStatus::PinError).await;
    let s = t.status(&p.cid, Some(&p)).await;
    assert_eq!((s.error.as_str(), s.attempt_count), ("context deadline exceeded", 1));
    // Recover while still failing counts another attempt.
    t.recover(&p.cid, Some(&p)).await;
    wait_status(&t, &p, TrackerStatus::PinError).await;
    assert_eq!(t.status(&p.cid, Some(&p)).await.attempt_count, 2);
    ipfs.failing.lock().expect("lock").clear();
    t.recover(&p.cid, Some(&p)).await;
    wait_status(&t, &p, TrackerStatus::Pinned).await;

    // Removed behind the tracker's back: unexpectedly_unpinned, and recover fixes it.
    ipfs.pinned.lock().expect("lock").clear();
    wait_status(&t, &p, TrackerStatus::UnexpectedlyUnpinned).await;
    t.recover(&p.cid, Some(&p)).await;
    wait_status(&t, &p, TrackerStatus::Pinned).await;
    t.shutdown().await;
}

#[tokio::test]
async fn a_stalled_pin_does_not_block_the_others_and_a_full_queue_fails_pins() {
    let ipfs = Arc::new(FakeIpfs::default());
    let t = tracker(&ipfs, TrackerSettings { concurrent_pins: 2, max_pin_queue_size: 5, ..TrackerSettings::default() });
    let stalled = pin(1000, &["me"]);
    ipfs.stalled.lock().expect("lock").push(stalled.cid.clone());
    t.track(&stalled);
    wait_status(&t, &stalled, TrackerStatus::Pinning).await;
    let others: Vec<Pin> = (0..4).map(|n| pin(n, &["me"])).collect();
    for p in &others {
        t.track(p);
    }
    for p in &others {
        wait_status(&t, p, TrackerStatus::Pinned).await;
    }
    // Fill the queue while both workers are stuck: the overflow is a pin_error.
    let stalled2 = pin(1001, &["me"]);
    ipfs.stalled.lock().expect("lock").push(stalled2.cid.clone());
    t.track(&stalled2);
    wait_status(&t, &stalled2, TrackerStatus::Pinning).await;
    let queued: Vec<Pin> = (10..16).map(|n| pin(n, &["me"])).collect();
    for p in &queued {
        t.track(p);
    }
    assert_eq!(t.queued(), 5);
    let last = t.status(&queued[5].cid, Some(&queued[5])).await;
    assert_eq!((last.status, last.error.as_str()), (TrackerStatus::PinError, "queue is full"));
    t.shutdown().await;
}

#[tokio::test]
async fn status_all_streams_the_pinset_with_filters() {
    let ipfs = Arc::new(FakeIpfs::default());
    let t = tracker(&ipfs, TrackerSettings::default());
    let pins: Vec<Pin> = (0..20).map(|n| pin(n, if n % 2 == 0 { &["me"] } else { &["other"] })).collect();
    ipfs.failing.lock().expect("lock").insert(cid(4), "boom".into());
    for p in &pins {
        t.track(p);
    }
    wait_status(&t, &pins[2], TrackerStatus::Pinned).await;
    wait_status(&t, &pins[4], TrackerStatus::PinError).await;
    let mut all = Vec::new();
    t.status_all(
        TrackerFilter::ALL,
        |visit| {
            for p in &pins {
                visit(p.clone());
            }
            Ok(())
        },
        |s, _| all.push(s.status),
    )
    .await
    .expect("status all");
    assert_eq!(all.len(), 20);
    assert_eq!(all.iter().filter(|s| **s == TrackerStatus::Remote).count(), 10);
    let mut errors = Vec::new();
    let filter = TrackerFilter::parse("error").expect("filter");
    t.status_all(filter, |_| panic!("an error filter must not walk the pinset"), |s, _| errors.push(s.cid))
        .await
        .expect("status all");
    assert_eq!(errors, vec![cid(4)]);
    t.shutdown().await;
}

#[tokio::test]
async fn ipfs_down_gives_pin_error_with_its_error_and_recover_after_it_returns() {
    let ipfs = Arc::new(FakeIpfs::default());
    let t = tracker(&ipfs, TrackerSettings::default());
    *ipfs.down.lock().expect("lock") = true;
    let p = pin(1, &["me"]);
    t.track(&p);
    wait_status(&t, &p, TrackerStatus::PinError).await;
    assert!(t.status(&p.cid, Some(&p)).await.error.contains("connection refused"));
    *ipfs.down.lock().expect("lock") = false;
    t.recover(&p.cid, Some(&p)).await;
    wait_status(&t, &p, TrackerStatus::Pinned).await;
    t.shutdown().await;
}

#[tokio::test]
async fn metrics_count_operations_and_pins_per_status() {
    let ipfs = Arc::new(FakeIpfs::default());
    let t = tracker(&ipfs, TrackerSettings::default());
    let telemetry = cairn_telemetry::Telemetry::new();
    t.register_metrics(&telemetry);
    let pins: Vec<Pin> = (0..20).map(|n| pin(n, if n % 2 == 0 { &["me"] } else { &["other"] })).collect();
    ipfs.failing.lock().expect("lock").insert(cid(4), "boom".into());
    let stalled = pin(100, &["me"]);
    ipfs.stalled.lock().expect("lock").push(stalled.cid.clone());
    t.track(&stalled);
    for p in &pins {
        t.track(p);
    }
    for p in pins.iter().step_by(2) {
        let want = if p.cid == cid(4) { TrackerStatus::PinError } else { TrackerStatus::Pinned };
        wait_status(&t, p, want).await;
    }
    wait_status(&t, &stalled, TrackerStatus::Pinning).await;
    let ops = t.operation_counts();
    assert!(ops.contains(&(TrackerStatus::PinError, 1)) && ops.contains(&(TrackerStatus::Pinning, 1)), "{ops:?}");
    assert_eq!(ops.iter().map(|(_, n)| n).sum::<u64>(), 2, "{ops:?}");

    // Settled statuses appear once a scan has counted them.
    let before = telemetry.encode(cairn_telemetry::Format::Prometheus);
    assert!(before.contains("cairn_pins{status=\"pin_error\"} 1\n"), "{before}");
    assert!(!before.contains("cairn_pins{status=\"pinned\"}"), "{before}");
    let mut all = pins.clone();
    all.push(stalled.clone());
    t.scan_statuses(|visit| {
        all.iter().cloned().for_each(&mut *visit);
        Ok(())
    })
    .await
    .expect("scan");
    let text = telemetry.encode(cairn_telemetry::Format::Prometheus);
    for expected in [
        "cairn_pins{status=\"pinned\"} 9\n",
        "cairn_pins{status=\"remote\"} 10\n",
        "cairn_pins{status=\"pin_error\"} 1\n",
        "cairn_pins{status=\"pinning\"} 1\n",
        "cairn_pins{status=\"pin_queued\"} 0\n",
        "cairn_tracker_operations_total{op=\"pin\",outcome=\"done\"} 9\n",
        "cairn_tracker_operations_total{op=\"pin\",outcome=\"error\"} 1\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    // An unpin moves the counts.
    t.untrack(&pins[0].cid);
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.status(&pins[0].cid, None).await.status != TrackerStatus::Unpinned {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = telemetry.encode(cairn_telemetry::Format::Prometheus);
    assert!(text.contains("cairn_tracker_operations_total{op=\"unpin\",outcome=\"done\"} 1\n"), "{text}");
    assert_eq!(t.operation_counts().iter().map(|(_, n)| n).sum::<u64>(), 2);
    t.shutdown().await;
}
