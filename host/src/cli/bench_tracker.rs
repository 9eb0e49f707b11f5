//! `cairn bench tracker`: pins per second the pin tracker completes against one IPFS daemon, as
//! a ratio to the rate of direct `pin/add` calls on the same daemon and the same kind of blocks.
//! The tracker must not be the bottleneck (target ratio ≥ 0.9).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_ipfs::{BlockPutOptions, IpfsConnector, IpfsHttp, IpfsHttpConfig, PinMode, PinRequest};
use cairn_state::{Cid, Pin, PinOptions};
use cairn_tracker::{PinTracker, TrackerSettings, TrackerStatus};
use futures::StreamExt;

/// `cairn bench tracker` options.
#[derive(clap::Args, Debug)]
pub struct TrackerBench {
    /// The IPFS daemon's RPC address (start one with tests/ipfs/start.sh); never the default
    /// port unless you mean it.
    #[arg(long, required_unless_present = "embedded", conflicts_with = "embedded")]
    ipfs: Option<String>,
    /// Measure against an embedded IPFS node instead (a fresh one in a temporary folder,
    /// listening on 127.0.0.1 only).
    #[arg(long)]
    embedded: bool,
    /// Pins in each of the two runs.
    #[arg(long, default_value_t = 2_000)]
    pins: usize,
    /// Concurrent pins, for both runs (the tracker's `concurrent_pins`).
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
}

/// Puts `n` distinct raw blocks (tagged with `run`) and returns their CIDs.
async fn blocks(ipfs: &Arc<dyn IpfsConnector>, run: &str, n: usize) -> anyhow::Result<Vec<Cid>> {
    let puts = futures::stream::iter(0..n)
        .map(|i| {
            let ipfs = ipfs.clone();
            let data = bytes::Bytes::from(format!("cairn tracker bench {run} {i}"));
            async move {
                let options = BlockPutOptions {
                    format: Some("raw".into()),
                    mhtype: Some("sha2-256".into()),
                    ..Default::default()
                };
                let info = ipfs.block_put(data, options).await?;
                Ok::<_, anyhow::Error>(Cid::from_raw(cid::Cid::new_v1(0x55, *info.cid.hash())))
            }
        })
        .buffer_unordered(16);
    puts.collect::<Vec<_>>().await.into_iter().collect()
}

/// Runs both measurements and prints the rates and their ratio.
pub async fn run(args: TrackerBench) -> anyhow::Result<ExitCode> {
    if args.pins == 0 || args.concurrency == 0 {
        bail!("--pins and --concurrency must be at least 1");
    }
    // The embedded node's folder lives as long as the run.
    let mut embedded = None;
    let ipfs: Arc<dyn IpfsConnector> = match &args.ipfs {
        Some(addr) => {
            let config = IpfsHttpConfig { node_multiaddress: addr.clone(), ..IpfsHttpConfig::default() };
            let ipfs: Arc<dyn IpfsConnector> =
                Arc::new(IpfsHttp::new(config).map_err(|e| anyhow::anyhow!("--ipfs {addr}: {e}"))?);
            ipfs.wait_ready(Duration::from_secs(30)).await.with_context(|| format!("the IPFS daemon at {addr}"))?;
            ipfs
        }
        None => {
            let folder = tempfile::tempdir().context("a temporary folder for the embedded node")?;
            let config = cairn_ipfs_embedded::EmbeddedIpfsConfig {
                listen_multiaddress: vec!["/ip4/127.0.0.1/tcp/0".into()],
                private_network: false,
                ..Default::default()
            };
            let node = cairn_ipfs_embedded::EmbeddedIpfs::start(&config, folder.path(), None)
                .await
                .context("start the embedded IPFS node")?;
            embedded = Some((node.clone(), folder));
            node
        }
    };
    let run = format!("{}-{}", std::process::id(), cairn_state::Timestamp::now());

    // Direct: pin/add calls, `concurrency` at a time.
    let direct_cids = blocks(&ipfs, &format!("{run}-direct"), args.pins).await?;
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(direct_cids.iter().cloned())
        .map(|cid| {
            let ipfs = ipfs.clone();
            async move { ipfs.pin(PinRequest::new(*cid.raw(), PinMode::Recursive)).await }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let direct_secs = started.elapsed().as_secs_f64();
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        bail!("a direct pin failed: {e}");
    }
    let direct_rate = args.pins as f64 / direct_secs;

    // Through the tracker: every pin tracked at once, then wait until all are pinned.
    let tracker_cids = blocks(&ipfs, &format!("{run}-tracker"), args.pins).await?;
    let tracker = PinTracker::start(
        TrackerSettings { peer: "bench".into(), concurrent_pins: args.concurrency, ..TrackerSettings::default() },
        Arc::new(crate::ipfs::TrackerIpfs(ipfs.clone())),
    );
    let pins: Vec<Pin> = tracker_cids.iter().map(|c| Pin::with_options(c.clone(), PinOptions::default())).collect();
    let started = Instant::now();
    for pin in &pins {
        tracker.track(pin);
    }
    // Completion from the tracker's own counters: asking it for statuses would send pin/ls
    // calls to the daemon and slow down what is measured.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let stats = tracker.stats();
        let done = stats.pins_done.load(std::sync::atomic::Ordering::Relaxed) as usize;
        if stats.pin_errors.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            bail!("a tracked pin failed");
        }
        if done >= pins.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("the tracker did not finish within 10 minutes ({} pins left)", pins.len() - done);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let tracker_secs = started.elapsed().as_secs_f64();
    // Sampled: every pin counted as done must really be pinned.
    for pin in pins.iter().step_by((pins.len() / 20).max(1)) {
        let status = tracker.status(&pin.cid, Some(pin)).await.status;
        if status != TrackerStatus::Pinned {
            bail!("{} is {status} after the tracker reported it done", pin.cid);
        }
    }
    tracker.shutdown().await;
    let tracker_rate = args.pins as f64 / tracker_secs;
    let backend = if args.embedded { "embedded node" } else { "ipfshttp" };
    println!("backend: {backend}");
    println!("direct pin/add: {} pins in {direct_secs:.2} s = {direct_rate:.0} pins/s", args.pins);
    println!("pin tracker:    {} pins in {tracker_secs:.2} s = {tracker_rate:.0} pins/s", args.pins);
    println!("ratio tracker/direct: {:.2}", tracker_rate / direct_rate);
    if let Some((node, _folder)) = embedded {
        node.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}
