//! The connector against a real IPFS daemon (js-ipfs 0.66.1 from tests/ipfs). These tests fail,
//! never skip, when the daemon cannot be installed or started.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_ipfs::cid::Cid;
use cairn_ipfs::cid::multihash::Multihash;
use cairn_ipfs::testing::IpfsDaemon;
use cairn_ipfs::{
    BlockPutOptions, IpfsConnector, IpfsError, IpfsHttp, IpfsHttpConfig, PinMode, PinOutcome, PinRequest, PinStatus,
    PinnedCid, UnpinOutcome,
};
use futures::TryStreamExt;

async fn daemon() -> IpfsDaemon {
    match IpfsDaemon::start().await {
        Ok(daemon) => daemon,
        Err(e) => panic!("the real-daemon tests need js-ipfs (tests/ipfs/install.sh): {e}"),
    }
}

/// Distinct content per test and call: js-ipfs keys blocks and pins by multihash, so two tests
/// putting the same bytes would share pins.
fn content(tag: &str) -> Bytes {
    Bytes::from(format!("cairn-ipfs real daemon test {tag} {:?}", Instant::now()))
}

fn raw() -> BlockPutOptions {
    // js-ipfs honours only the legacy `format` (it ignores cid-codec and answers with a CIDv0).
    BlockPutOptions { format: Some("raw".into()), ..Default::default() }
}

async fn pins(ipfs: &IpfsHttp) -> Vec<PinnedCid> {
    ipfs.pin_ls().try_collect().await.expect("pin/ls")
}

#[tokio::test]
async fn blocks_pins_listing_unpin_repo_stat_and_gc() {
    let daemon = daemon().await;
    let ipfs = daemon.connector();

    let id = ipfs.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(id.peer_id, daemon.peer_id());
    assert_eq!(id.agent_version.as_deref(), Some("js-ipfs/0.18.1"));
    assert_eq!(ipfs.config_key("Identity.PeerID").await.unwrap(), daemon.peer_id());

    let (data_r, data_d) = (content("recursive"), content("direct"));
    let rec = ipfs.block_put(data_r.clone(), raw()).await.unwrap();
    assert_eq!((rec.cid.codec(), rec.size), (0x55, data_r.len() as u64));
    let dir = ipfs.block_put(data_d.clone(), BlockPutOptions::default()).await.unwrap();
    assert_eq!(ipfs.block_get(rec.cid).await.unwrap(), data_r);
    assert_eq!(ipfs.block_stat(dir.cid).await.unwrap().size, data_d.len() as u64);
    assert_eq!(ipfs.resolve(&format!("/ipfs/{}", rec.cid)).await.unwrap(), rec.cid);

    assert_eq!(ipfs.pin_ls_cid(rec.cid, Some(PinMode::Recursive)).await.unwrap(), PinStatus::Unpinned);
    assert_eq!(ipfs.pin(PinRequest::new(rec.cid, PinMode::Recursive)).await.unwrap(), PinOutcome::Pinned);
    assert_eq!(ipfs.pin(PinRequest::new(rec.cid, PinMode::Recursive)).await.unwrap(), PinOutcome::AlreadyPinned);
    assert_eq!(ipfs.pin(PinRequest::new(dir.cid, PinMode::Direct)).await.unwrap(), PinOutcome::Pinned);
    assert_eq!(ipfs.pin_ls_cid(rec.cid, Some(PinMode::Recursive)).await.unwrap(), PinStatus::Recursive);
    assert_eq!(ipfs.pin_ls_cid(dir.cid, None).await.unwrap(), PinStatus::Direct);
    assert_eq!(ipfs.pin_ls_cid(dir.cid, Some(PinMode::Recursive)).await.unwrap(), PinStatus::Unpinned);

    // Both types are listed (IPFS Cluster's loop would have stopped after the recursive ones).
    let listed = pins(&ipfs).await;
    assert!(listed.contains(&PinnedCid { cid: rec.cid, status: PinStatus::Recursive }), "{listed:?}");
    assert!(listed.contains(&PinnedCid { cid: dir.cid, status: PinStatus::Direct }), "{listed:?}");

    let stat = ipfs.repo_stat().await.unwrap();
    assert!(stat.repo_size > 0 && stat.storage_max > stat.repo_size, "{stat:?}");
    assert!(stat.free_space() > 0);

    assert_eq!(ipfs.unpin(dir.cid).await.unwrap(), UnpinOutcome::Unpinned);
    assert_eq!(ipfs.unpin(dir.cid).await.unwrap(), UnpinOutcome::NotPinned);
    assert!(!pins(&ipfs).await.iter().any(|p| p.cid == dir.cid));

    // GC removes the unpinned block and keeps the pinned one.
    let report = ipfs.repo_gc().await.unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(report.removed.iter().any(|c| c.hash() == dir.cid.hash()), "{report:?}");
    assert!(!report.removed.iter().any(|c| c.hash() == rec.cid.hash()), "{report:?}");
    assert_eq!(ipfs.block_get(rec.cid).await.unwrap(), data_r);
}

#[tokio::test]
async fn swarm_connect_and_pin_origins_dial_other_daemons() {
    let (a, b) = tokio::join!(daemon(), daemon());
    let (ipfs_a, ipfs_b) = (a.connector(), b.connector());
    assert!(ipfs_a.swarm_peers().await.unwrap().is_empty(), "an isolated daemon knows no peers");

    // A pin's origins are dialled in the background before pinning.
    let block = ipfs_a.block_put(content("origin"), raw()).await.unwrap();
    let mut request = PinRequest::new(block.cid, PinMode::Recursive);
    request.origins = vec![b.swarm_addr()];
    assert_eq!(ipfs_a.pin(request).await.unwrap(), PinOutcome::Pinned);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ipfs_a.swarm_peers().await.unwrap().iter().any(|p| p == b.peer_id()) {
        assert!(Instant::now() < deadline, "a never connected to its pin origin b");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    ipfs_b.swarm_connect(&a.swarm_addr()).await.unwrap();
    assert!(ipfs_b.swarm_peers().await.unwrap().iter().any(|p| p == a.peer_id()));
    let err =
        ipfs_b.swarm_connect("/ip4/127.0.0.1/tcp/1/p2p/12D3KooWBZKU1Si3FrXmAWgcE9DaWt5F3biiuybgZLv4zFUHcxKC").await;
    assert!(err.is_err(), "dialling a closed port fails");
}

#[tokio::test]
async fn pin_of_content_nobody_has_fails_after_pin_timeout_without_progress() {
    let daemon = daemon().await;
    let pin_timeout = Duration::from_secs(3);
    let ipfs = IpfsHttp::new(IpfsHttpConfig { pin_timeout, ..daemon.connector_config() }).unwrap();
    let nobody_has = Cid::new_v1(0x55, Multihash::wrap(0x12, &[0x5a; 32]).unwrap());

    let started = Instant::now();
    let err = ipfs.pin(PinRequest::new(nobody_has, PinMode::Recursive)).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, IpfsError::PinStalled { progress: 0, .. }), "{err}");
    assert!(err.to_string().contains(&daemon.api_multiaddr()), "{err}");
    assert!(took >= pin_timeout && took < pin_timeout + Duration::from_secs(10), "{took:?}");
    // The daemon is fine afterwards and did not pin it.
    assert_eq!(ipfs.pin_ls_cid(nobody_has, None).await.unwrap(), PinStatus::Unpinned);
}

#[tokio::test]
async fn a_stopped_daemon_gives_a_clear_error_and_a_restarted_one_works() {
    let mut daemon = daemon().await;
    let ipfs = daemon.connector();
    let block = ipfs.block_put(content("restart"), raw()).await.unwrap();
    ipfs.pin(PinRequest::new(block.cid, PinMode::Recursive)).await.unwrap();

    daemon.stop().await;
    let err = ipfs.id().await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    let text = err.to_string();
    assert!(text.starts_with(&format!("ipfs id at {}: cannot reach the daemon", daemon.api_multiaddr())), "{text}");
    let err = ipfs.wait_ready(Duration::from_millis(1500)).await.unwrap_err();
    assert!(matches!(err, IpfsError::Timeout { call: "id", .. }), "{err}");

    let started = Instant::now();
    daemon.start_again().await.unwrap();
    eprintln!("restart took {:?}", started.elapsed());
    // The same connector recovers (its throttling ends with the first answer).
    ipfs.wait_ready(Duration::from_secs(30)).await.unwrap();
    assert_eq!(ipfs.pin_ls_cid(block.cid, None).await.unwrap(), PinStatus::Recursive);
}
