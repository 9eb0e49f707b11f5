//! Several embedded nodes in one process, talking bitswap over 127.0.0.1 only.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use cairn_ipfs::{
    BlockPutOptions, IpfsConnector, IpfsError, PinMode, PinOutcome, PinRequest, PinStatus, PinnedCid, UnpinOutcome,
};
use cairn_ipfs_embedded::{EmbeddedError, EmbeddedIpfs, EmbeddedIpfsConfig, IDENTITY_FILE};
use cid::Cid;
use futures::StreamExt;
use multihash_codetable::{Code, MultihashDigest};
use tokio::sync::watch;

const SECRET: [u8; 32] = [7; 32];
const OTHER_SECRET: [u8; 32] = [9; 32];

fn config(pin_timeout: Duration) -> EmbeddedIpfsConfig {
    EmbeddedIpfsConfig {
        listen_multiaddress: vec!["/ip4/127.0.0.1/tcp/0".to_owned()],
        pin_timeout,
        ..Default::default()
    }
}

async fn start(dir: &Path, pin_timeout: Duration, secret: [u8; 32]) -> Result<Arc<EmbeddedIpfs>> {
    Ok(EmbeddedIpfs::start(&config(pin_timeout), dir, Some(secret)).await?)
}

/// Deterministic pseudo-random bytes (xorshift), so no two chunks deduplicate.
fn content(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// `a` dials `b` at the first address `b`'s `id` reports.
async fn connect(a: &EmbeddedIpfs, b: &EmbeddedIpfs) -> Result<()> {
    let id = b.id().await?;
    let addr = id.addresses.first().context("node has no address")?;
    ensure!(addr.starts_with("/ip4/127.0.0.1/tcp/"), "unexpected address {addr}");
    ensure!(addr.ends_with(&format!("/p2p/{}", id.peer_id)), "address without /p2p: {addr}");
    a.swarm_connect(addr).await?;
    Ok(())
}

async fn pins(node: &EmbeddedIpfs) -> Result<Vec<PinnedCid>> {
    let mut out = Vec::new();
    let mut stream = node.pin_ls();
    while let Some(entry) = stream.next().await {
        out.push(entry?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_pin_unpin_and_gc() -> Result<()> {
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?];
    let timeout = Duration::from_secs(20);
    let a = start(dirs[0].path(), timeout, SECRET).await?;
    let b = start(dirs[1].path(), timeout, SECRET).await?;
    let c = start(dirs[2].path(), timeout, SECRET).await?;

    let data = content(600 * 1024, 1);
    let root = a.add_bytes(data.clone()).await?;
    connect(&b, &a).await?;
    connect(&c, &a).await?;
    // The listening side registers a connection a moment after the dialer does.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let peers = a.swarm_peers().await?;
        if peers.contains(&b.peer_id()) && peers.contains(&c.peer_id()) {
            break;
        }
        ensure!(Instant::now() < deadline, "A's peers: {peers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let before = b.repo_stat().await?;
    let (tx, rx) = watch::channel(0u64);
    let mut request = PinRequest::new(root, PinMode::Recursive);
    request.progress = Some(tx);
    let started = Instant::now();
    ensure!(b.pin(request).await? == PinOutcome::Pinned);
    let blocks = *rx.borrow();
    // 600 KB in 256 KiB chunks: three leaves and a root.
    ensure!(blocks >= 4, "progress reported {blocks} blocks");
    println!("B pinned {root} ({blocks} blocks) in {:?}", started.elapsed());
    ensure!(c.pin(PinRequest::new(root, PinMode::Recursive)).await? == PinOutcome::Pinned);

    let listed = pins(&b).await?;
    ensure!(listed.contains(&PinnedCid { cid: root, status: PinStatus::Recursive }), "B's pins: {listed:?}");
    ensure!(b.pin_ls_cid(root, None).await? == PinStatus::Recursive);
    ensure!(c.pin_ls_cid(root, Some(PinMode::Recursive)).await? == PinStatus::Recursive);
    ensure!(c.pin_ls_cid(root, Some(PinMode::Direct)).await? == PinStatus::Unpinned);
    ensure!(b.pin(PinRequest::new(root, PinMode::Recursive)).await? == PinOutcome::AlreadyPinned);
    let after = b.repo_stat().await?;
    ensure!(after.repo_size >= before.repo_size + data.len() as u64, "repo size {before:?} -> {after:?}");
    ensure!(after.storage_max == 10_000_000_000);
    ensure!(b.block_stat(root).await?.cid == root);

    // Unpin, then GC removes the DAG from B (C still has it).
    ensure!(b.unpin(root).await? == UnpinOutcome::Unpinned);
    ensure!(b.pin_ls_cid(root, None).await? == PinStatus::Unpinned);
    ensure!(b.unpin(root).await? == UnpinOutcome::NotPinned);
    let report = b.repo_gc().await?;
    ensure!(report.removed.len() >= 4, "gc removed {:?}", report.removed);
    let gc_done = b.repo_stat().await?;
    ensure!(gc_done.repo_size + data.len() as u64 <= after.repo_size, "after gc {gc_done:?}");
    ensure!(c.pin_ls_cid(root, None).await? == PinStatus::Recursive);
    // Connections between cluster nodes are kept alive.
    ensure!(b.swarm_peers().await?.contains(&a.peer_id()), "B lost its connection to A");

    for node in [a, b, c] {
        node.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_pin_fails_while_a_parallel_pin_succeeds() -> Result<()> {
    let (da, db) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = start(da.path(), Duration::from_secs(20), SECRET).await?;
    let b = start(db.path(), Duration::from_secs(2), SECRET).await?;
    let available = a.add_bytes(content(300 * 1024, 2)).await?;
    let missing = Cid::new_v1(0x55, Code::Sha2_256.digest(b"a block nobody has"));
    connect(&b, &a).await?;

    let started = Instant::now();
    let (stalled, pinned) = tokio::join!(
        b.pin(PinRequest::new(missing, PinMode::Recursive)),
        b.pin(PinRequest::new(available, PinMode::Recursive)),
    );
    let elapsed = started.elapsed();
    ensure!(pinned? == PinOutcome::Pinned);
    match stalled {
        Err(IpfsError::PinStalled { cid, timeout, progress: 0, .. }) => {
            ensure!(cid == missing.to_string() && timeout == Duration::from_secs(2));
        }
        other => anyhow::bail!("expected a stalled pin, got {other:?}"),
    }
    ensure!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(10), "took {elapsed:?}");
    ensure!(b.pin_ls_cid(missing, None).await? == PinStatus::Unpinned);
    ensure!(b.unpin(missing).await? == UnpinOutcome::NotPinned);
    // block/get of a block nobody has is bounded by pin_timeout too.
    let err = b.block_get(missing).await.expect_err("nobody has it");
    ensure!(matches!(err, IpfsError::Timeout { call: "block/get", .. }), "{err}");

    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_blocks_pins_and_peer_id() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = start(dir.path(), Duration::from_secs(2), SECRET).await?;
    let peer_id = node.peer_id();
    ensure!(node.config_key("Identity.PeerID").await? == serde_json::json!(peer_id));
    let file = node.add_bytes(content(400 * 1024, 3)).await?;
    ensure!(node.pin(PinRequest::new(file, PinMode::Recursive)).await? == PinOutcome::Pinned);
    let block = node.block_put(Bytes::from_static(b"a direct block"), BlockPutOptions::default()).await?;
    ensure!(node.pin(PinRequest::new(block.cid, PinMode::Direct)).await? == PinOutcome::Pinned);
    let loose = node.block_put(Bytes::from_static(b"an unpinned block"), BlockPutOptions::default()).await?;
    let size = node.repo_stat().await?.repo_size;
    node.shutdown().await;
    drop(node);

    let node = start(dir.path(), Duration::from_secs(2), SECRET).await?;
    ensure!(node.peer_id() == peer_id, "peer id changed across restart");
    let listed = pins(&node).await?;
    ensure!(listed.contains(&PinnedCid { cid: file, status: PinStatus::Recursive }), "{listed:?}");
    ensure!(listed.contains(&PinnedCid { cid: block.cid, status: PinStatus::Direct }), "{listed:?}");
    ensure!(node.block_get(block.cid).await? == Bytes::from_static(b"a direct block"));
    ensure!(node.block_get(loose.cid).await? == Bytes::from_static(b"an unpinned block"));
    ensure!(node.repo_stat().await?.repo_size == size);
    // GC keeps pinned blocks and removes the loose one.
    let report = node.repo_gc().await?;
    ensure!(report.removed == vec![loose.cid], "gc removed {:?}", report.removed);
    ensure!(node.block_stat(file).await?.size > 0);
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_key_cannot_connect_or_fetch() -> Result<()> {
    let (da, dd) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = start(da.path(), Duration::from_secs(2), SECRET).await?;
    let d = start(dd.path(), Duration::from_secs(2), OTHER_SECRET).await?;
    let file = a.add_bytes(content(10 * 1024, 4)).await?;
    let err = connect(&d, &a).await.expect_err("different pre-shared keys");
    println!("connect with another key: {err:#}");
    ensure!(d.swarm_peers().await?.is_empty() && a.swarm_peers().await?.is_empty());
    let err = d.pin(PinRequest::new(file, PinMode::Recursive)).await.expect_err("cannot fetch");
    ensure!(matches!(err, IpfsError::PinStalled { .. }), "{err}");
    a.shutdown().await;
    d.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_resolve_config_and_informer_trigger() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = EmbeddedIpfsConfig { informer_trigger_interval: 2, ..config(Duration::from_secs(2)) };
    let node = EmbeddedIpfs::start(&cfg, dir.path(), Some(SECRET)).await?;
    let mut trigger = node.informer_trigger();

    let data = Bytes::from_static(b"{\"hello\": 1}");
    let options = BlockPutOptions { cid_codec: Some("dag-cbor".to_owned()), ..Default::default() };
    let cbor = node.block_put(data.clone(), options).await;
    // Not valid dag-cbor, but block/put stores bytes as given, like Kubo without validation.
    let info = cbor?;
    ensure!(info.cid.codec() == 0x71 && info.size == data.len() as u64);
    ensure!(node.block_get(info.cid).await? == data);
    let raw = node.block_put(Bytes::from_static(b"raw"), BlockPutOptions::default()).await?;
    ensure!(raw.cid.codec() == 0x55);
    ensure!(*trigger.borrow_and_update() == 1, "two block puts with interval 2 tick once");

    let file = node.add_bytes(Bytes::from_static(b"inside a directory")).await?;
    let dir_cid = node.add_file(Some("note.txt"), Bytes::from_static(b"inside a directory")).await?;
    ensure!(dir_cid != file);
    ensure!(node.resolve(&format!("/ipfs/{file}")).await? == file);
    ensure!(node.resolve(&format!("/ipfs/{dir_cid}/note.txt")).await? == file);
    ensure!(node.resolve(&format!("{dir_cid}/note.txt")).await? == file);
    let err = node.resolve(&format!("/ipfs/{dir_cid}/missing.txt")).await.expect_err("no such entry");
    ensure!(err.to_string().contains("missing.txt"), "{err}");

    ensure!(node.config_key("Datastore.StorageMax").await? == serde_json::json!("10GB"));
    ensure!(node.config_key("Identity.PrivKey").await.is_err(), "the key must not be exposed");
    let id = node.wait_ready(Duration::from_secs(5)).await?;
    ensure!(id.peer_id == node.peer_id() && id.agent_version.is_some_and(|a| a.contains("cairn")));

    let err = node.swarm_connect("/ip4/127.0.0.1/tcp/1").await.expect_err("no /p2p");
    ensure!(err.to_string().contains("/ip4/127.0.0.1/tcp/1"), "{err}");
    node.shutdown().await;
    let err = node.id().await.expect_err("shut down");
    ensure!(err.is_unreachable(), "{err}");
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_errors_name_what_failed() -> Result<()> {
    let dir = tempfile::tempdir()?;

    // The data folder is a file.
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"x")?;
    let cfg = EmbeddedIpfsConfig { data_folder: file.clone(), ..config(Duration::from_secs(2)) };
    let err = EmbeddedIpfs::start(&cfg, dir.path(), Some(SECRET)).await.expect_err("file as folder");
    ensure!(matches!(err, EmbeddedError::DataFolder { .. }), "{err}");
    ensure!(err.to_string().contains(&file.display().to_string()), "{err}");

    // A corrupt repository: the blockstore is a file.
    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir_all(&corrupt)?;
    std::fs::write(corrupt.join("blockstore"), b"garbage")?;
    let cfg = EmbeddedIpfsConfig { data_folder: "corrupt".into(), ..config(Duration::from_secs(2)) };
    let err = EmbeddedIpfs::start(&cfg, dir.path(), Some(SECRET)).await.expect_err("corrupt repo");
    println!("corrupt repository: {err}");
    ensure!(err.to_string().contains(&corrupt.display().to_string()), "{err}");

    // A corrupt key file.
    let bad_key = dir.path().join("badkey");
    std::fs::create_dir_all(&bad_key)?;
    std::fs::write(bad_key.join(IDENTITY_FILE), b"not a key")?;
    let cfg = EmbeddedIpfsConfig { data_folder: "badkey".into(), ..config(Duration::from_secs(2)) };
    let err = EmbeddedIpfs::start(&cfg, dir.path(), Some(SECRET)).await.expect_err("bad key");
    ensure!(matches!(err, EmbeddedError::Identity { .. }), "{err}");
    ensure!(err.to_string().contains(IDENTITY_FILE), "{err}");

    // private_network without a secret.
    let cfg = EmbeddedIpfsConfig { data_folder: "nosecret".into(), ..config(Duration::from_secs(2)) };
    let err = EmbeddedIpfs::start(&cfg, dir.path(), None).await.expect_err("no secret");
    ensure!(matches!(err, EmbeddedError::NoClusterSecret), "{err}");

    // A folder in use, and a port in use.
    let cfg = EmbeddedIpfsConfig { data_folder: "one".into(), ..config(Duration::from_secs(2)) };
    let one = EmbeddedIpfs::start(&cfg, dir.path(), Some(SECRET)).await?;
    let err = EmbeddedIpfs::start(&cfg, dir.path(), Some(SECRET)).await.expect_err("in use");
    ensure!(matches!(err, EmbeddedError::DataFolderInUse { .. }), "{err}");
    let addr = one.id().await?.addresses.first().context("an address")?.clone();
    let port_addr = addr.split("/p2p/").next().context("address")?.to_owned();
    let cfg = EmbeddedIpfsConfig {
        data_folder: "two".into(),
        listen_multiaddress: vec![port_addr.clone()],
        ..config(Duration::from_secs(2))
    };
    let err = EmbeddedIpfs::start(&cfg, dir.path(), Some(SECRET)).await.expect_err("port in use");
    ensure!(matches!(err, EmbeddedError::Listen { .. }), "{err}");
    ensure!(err.to_string().contains(&port_addr), "{err}");
    one.shutdown().await;
    // Both folders are free again.
    let two = EmbeddedIpfs::start(&cfg, dir.path(), Some(SECRET)).await?;
    two.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_dials_its_origins() -> Result<()> {
    let (da, db) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = start(da.path(), Duration::from_secs(10), SECRET).await?;
    let b = start(db.path(), Duration::from_secs(10), SECRET).await?;
    let file = a.add_bytes(content(300 * 1024, 5)).await?;
    ensure!(b.swarm_peers().await?.is_empty());
    // Not connected: the pin's origins are dialled in the background while the want is out.
    let mut request = PinRequest::new(file, PinMode::Recursive);
    request.origins = a.id().await?.addresses;
    ensure!(b.pin(request).await? == PinOutcome::Pinned);
    ensure!(b.swarm_peers().await?.contains(&a.peer_id()));
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}
