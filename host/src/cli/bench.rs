//! `cairn bench consensus`: drives a local cluster of `cairn daemon` processes through the peer
//! RPC and reports ingest rate, convergence, crash safety (kill -9 cycles), catch-up after a
//! freeze (SIGSTOP), join time, pinset streaming rate, memory and disk use.
//!
//! Every peer is a separate process on 127.0.0.1 ports chosen free, with its own config folder
//! under a temporary work folder; the client is a throwaway swarm identity holding the secret
//! (the configs trust every peer, `trusted_peers: ["*"]`, as `cairn init` writes them).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_state::{Cid, Pin, PinOptions, PinStore};
use cairn_swarm::{AllowList, ClusterSecret, Keypair, Multiaddr, PeerId, SwarmConfig, SwarmHandle};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// `cairn bench ...`.
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// A local multi-process cluster: ingest, convergence, crash safety, join, streaming.
    Consensus(ConsensusBench),
    /// Pins/s the pin tracker completes against one IPFS daemon, vs direct pin/add calls.
    Tracker(super::bench_tracker::TrackerBench),
}

/// `cairn bench consensus` options.
#[derive(clap::Args, Debug)]
pub struct ConsensusBench {
    /// The consensus engine.
    #[arg(long, default_value = "crdt", value_parser = ["crdt", "raft"])]
    consensus: String,
    /// Number of peers (processes).
    #[arg(long, default_value_t = 3)]
    peers: usize,
    /// Pins to send, round-robin to the peers.
    #[arg(long, default_value_t = 100_000)]
    pins: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// `kill -9` a random peer (and restart it) this many times during the ingest.
    #[arg(long, default_value_t = 0)]
    kill_cycles: u32,
    /// Freeze (SIGSTOP) the last peer for this many seconds while `--freeze-pins` arrive.
    #[arg(long, default_value_t = 0)]
    freeze_secs: u64,
    /// Pins sent to the other peers while one is frozen.
    #[arg(long, default_value_t = 10_000)]
    freeze_pins: u64,
    /// Import this many pins into the first peer before start; the others join from it.
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// crdt broadcast batching as `SIZE,AGE` (e.g. `500,100ms`).
    #[arg(long)]
    batching: Option<String>,
    /// Work folder (default: a new temporary folder, removed afterwards).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

struct PeerProc {
    dir: PathBuf,
    id: PeerId,
    addr: Multiaddr,
    child: Option<Child>,
    bootstrap: Option<String>,
}

impl PeerProc {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .context("open the peer's log")?;
        let mut cmd = Command::new(std::env::current_exe().context("find the cairn binary")?);
        // Consensus alone is measured: no IPFS daemon, no tracker.
        cmd.arg("--config").arg(&self.dir).arg("daemon").arg("--consensus-only");
        if let Some(b) = &self.bootstrap {
            cmd.arg("--bootstrap").arg(b);
        }
        cmd.env("CAIRN_LOG", "info").stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        for var in ["CLUSTER_SECRET", "CLUSTER_SECRET_FILE", "CAIRN_PATH"] {
            cmd.env_remove(var);
        }
        self.child = Some(cmd.spawn().context("start a cairn daemon")?);
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        self.signal("TERM");
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for PeerProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The bench's client: one swarm connected to every peer.
struct Client {
    swarm: SwarmHandle,
    peers: Vec<(PeerId, Multiaddr)>,
}

impl Client {
    async fn call(&self, peer: usize, method: &str, payload: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let (id, addr) = &self.peers[peer];
        match self.swarm.rpc(*id, method, payload.clone()).await {
            Ok(answer) => Ok(answer),
            Err(first) => {
                // The peer may have restarted: dial again once.
                self.swarm.connect(addr.clone()).await.with_context(|| format!("{method}: {first}"))?;
                Ok(self.swarm.rpc(*id, method, payload).await?)
            }
        }
    }

    async fn fingerprints(&self, peer: usize) -> anyhow::Result<Vec<u8>> {
        self.call(peer, "Cluster.PinsetFingerprints", Vec::new()).await
    }

    /// Every pin of a peer, by paging `Cluster.Pins`.
    async fn all_pins(&self, peer: usize) -> anyhow::Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let req = serde_json::to_vec(&json!({"after": after, "limit": 10_000}))?;
            let raw = self.call(peer, "Cluster.Pins", req).await?;
            let page: serde_json::Value = serde_json::from_slice(&raw)?;
            for pin in page["pins"].as_array().into_iter().flatten() {
                let cid = pin["cid"].as_str().unwrap_or_default().to_string();
                out.insert(cid, pin.to_string());
            }
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => return Ok(out),
            }
        }
    }
}

/// A distinct, realistic CID (v1, raw, sha2-256) for pin `n` of this run.
fn bench_cid(run: &str, n: u64) -> Cid {
    let digest = Sha256::digest(format!("{run}/{n}").as_bytes());
    let mh = cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap_or_default();
    Cid::from_raw(cid::Cid::new_v1(0x55, mh))
}

fn bench_pin(run: &str, n: u64) -> Pin {
    let mut pin = Pin::with_options(
        bench_cid(run, n),
        PinOptions {
            name: format!("bench pin {n}"),
            replication_factor_min: -1,
            replication_factor_max: -1,
            ..PinOptions::default()
        },
    );
    pin.timestamp = cairn_state::Timestamp::now();
    pin
}

/// Run the consensus benchmark.
pub async fn consensus(args: ConsensusBench) -> anyhow::Result<ExitCode> {
    if args.peers < 1 || args.concurrency < 1 {
        bail!("--peers and --concurrency must be at least 1");
    }
    let temp = match &args.workdir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("create a work folder")?),
    };
    let work = args.workdir.clone().or_else(|| temp.as_ref().map(|t| t.path().to_path_buf())).unwrap_or_default();
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let run_id = format!("{}", std::process::id());
    let mut report = serde_json::Map::new();
    report.insert("consensus".into(), json!(args.consensus));
    report.insert("peers".into(), json!(args.peers));

    let mut peers = setup(&work, &args)?;
    if args.preload > 0 {
        preload(&peers[0].dir, &run_id, args.preload)?;
    }
    for peer in peers.iter_mut() {
        peer.spawn()?;
    }
    let secret = read_secret(&peers[0].dir)?;
    let client = Arc::new(connect_client(secret, &peers).await?);

    if args.preload > 0 {
        let started = Instant::now();
        let converged = wait_converged(&client, args.peers, Duration::from_secs(600)).await?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "join: {} peers copied {} pins from the first in {secs:.1} s (converged: {converged})",
            args.peers - 1,
            args.preload
        );
        report.insert("join_pins".into(), json!(args.preload));
        report.insert("join_seconds".into(), json!(secs));
        report.insert("join_converged".into(), json!(converged));
    }

    // Ingest, optionally with kill -9 cycles.
    let peers = Arc::new(Mutex::new(peers));
    let acked = Arc::new(Mutex::new(Vec::<u64>::with_capacity(args.pins as usize)));
    let started = Instant::now();
    let killer = (args.kill_cycles > 0).then(|| {
        let peers = peers.clone();
        let cycles = args.kill_cycles;
        tokio::spawn(async move { kill_cycles(peers, cycles).await })
    });
    ingest(&client, &run_id, 0..args.pins, (0..args.peers).collect(), args.concurrency, acked.clone()).await?;
    let ingest_secs = started.elapsed().as_secs_f64();
    let kills = match killer {
        Some(k) => k.await.context("kill task")??,
        None => 0,
    };
    let acked_count = acked.lock().await.len() as u64;
    let rate = acked_count as f64 / ingest_secs;
    eprintln!(
        "ingest: {acked_count} pins acknowledged in {ingest_secs:.2} s = {rate:.0} pins/s ({kills} kill -9 cycles)"
    );
    report.insert("ingest_pins".into(), json!(acked_count));
    report.insert("ingest_seconds".into(), json!(ingest_secs));
    report.insert("ingest_pins_per_sec".into(), json!(rate));
    report.insert("kill_cycles".into(), json!(kills));

    let last_ack = Instant::now();
    let converged = wait_converged(&client, args.peers, Duration::from_secs(300)).await?;
    let conv_secs = last_ack.elapsed().as_secs_f64();
    eprintln!("convergence: identical fingerprints {conv_secs:.2} s after the last acknowledgement ({converged})");
    report.insert("converged".into(), json!(converged));
    report.insert("convergence_seconds".into(), json!(conv_secs));

    if args.freeze_secs > 0 && args.peers > 1 {
        let frozen = args.peers - 1;
        peers.lock().await[frozen].signal("STOP");
        let range = args.pins..args.pins + args.freeze_pins;
        ingest(&client, &run_id, range, (0..frozen).collect(), args.concurrency, acked.clone()).await?;
        tokio::time::sleep(Duration::from_secs(args.freeze_secs)).await;
        peers.lock().await[frozen].signal("CONT");
        let resumed = Instant::now();
        let caught_up = wait_converged(&client, args.peers, Duration::from_secs(300)).await?;
        let secs = resumed.elapsed().as_secs_f64();
        eprintln!(
            "freeze: peer frozen {} s while {} pins arrived; identical {secs:.2} s after SIGCONT ({caught_up})",
            args.freeze_secs, args.freeze_pins
        );
        report.insert("freeze_caught_up".into(), json!(caught_up));
        report.insert("freeze_catch_up_seconds".into(), json!(secs));
    }

    // Every acknowledged pin on every peer, and identical records everywhere.
    let acked: HashSet<String> = acked.lock().await.iter().map(|n| bench_cid(&run_id, *n).to_string()).collect();
    let stream_started = Instant::now();
    let first = client.all_pins(0).await?;
    let stream_secs = stream_started.elapsed().as_secs_f64();
    let mut lost = acked.iter().filter(|c| !first.contains_key(*c)).count();
    let mut identical = true;
    for peer in 1..args.peers {
        let other = client.all_pins(peer).await?;
        lost = lost.max(acked.iter().filter(|c| !other.contains_key(*c)).count());
        identical &= other == first;
    }
    eprintln!(
        "check: {} pins per peer, records identical on all peers: {identical}, acknowledged pins lost: {lost}",
        first.len()
    );
    eprintln!(
        "stream over RPC: {} pins in {stream_secs:.2} s = {:.0} pins/s",
        first.len(),
        first.len() as f64 / stream_secs
    );
    report.insert("pins_per_peer".into(), json!(first.len()));
    report.insert("identical".into(), json!(identical));
    report.insert("lost".into(), json!(lost));
    report.insert("rpc_stream_pins_per_sec".into(), json!(first.len() as f64 / stream_secs));

    let mut peers = Arc::try_unwrap(peers).map_err(|_| anyhow::anyhow!("peers still shared"))?.into_inner();
    let rss: Vec<u64> = peers.iter().filter_map(PeerProc::rss_kib).collect();
    eprintln!("memory: resident KiB per peer {rss:?}");
    report.insert("rss_kib".into(), json!(rss));
    for peer in peers.iter_mut() {
        peer.stop();
    }
    let pinset = peers[0].dir.join(crate::consensus::PINSET_FILE);
    let bytes = std::fs::metadata(&pinset).map(|m| m.len()).unwrap_or(0);
    let store = PinStore::open(&pinset).context("open the first peer's pinset")?;
    let count = store.len()?;
    let walk = Instant::now();
    let walked = store.for_each(|_| std::ops::ControlFlow::Continue(()))?;
    let walk_secs = walk.elapsed().as_secs_f64();
    let per_pin = if count > 0 { bytes as f64 / count as f64 } else { 0.0 };
    eprintln!(
        "store: {walked} pins streamed from disk in {walk_secs:.2} s = {:.0} pins/s; {bytes} bytes on disk = {per_pin:.0} bytes/pin",
        walked as f64 / walk_secs.max(1e-9)
    );
    report.insert("store_stream_pins_per_sec".into(), json!(walked as f64 / walk_secs.max(1e-9)));
    report.insert("disk_bytes_per_pin".into(), json!(per_pin));
    if args.json {
        println!("{}", serde_json::Value::Object(report));
    }
    let ok = converged && identical && lost == 0;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `cairn init` per peer, then one secret for all, free ports, and each peer bootstrapping
/// from the first.
fn setup(work: &Path, args: &ConsensusBench) -> anyhow::Result<Vec<PeerProc>> {
    let exe = std::env::current_exe().context("find the cairn binary")?;
    let mut peers = Vec::new();
    let mut secret: Option<String> = None;
    let mut ids = Vec::new();
    for i in 0..args.peers {
        let dir = work.join(format!("peer{i}"));
        let out = Command::new(&exe)
            .arg("--config")
            .arg(&dir)
            .args(["init", "--consensus", &args.consensus])
            .env_remove("CLUSTER_SECRET")
            .env_remove("CAIRN_PATH")
            .output()
            .context("run cairn init")?;
        if !out.status.success() {
            bail!("cairn init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let identity = crate::config::Identity::load(&dir.join("identity.json"), &|_| None)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", identity.peer_id).parse()?;
        ids.push(identity.peer_id.to_string());
        peers.push(PeerProc { dir, id: identity.peer_id, addr, child: None, bootstrap: None });
    }
    let first_addr = peers[0].addr.to_string();
    let all_addrs: Vec<String> = peers.iter().map(|p| p.addr.to_string()).collect();
    for (i, peer) in peers.iter_mut().enumerate() {
        let path = peer.dir.join("service.json");
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let secret = secret.get_or_insert_with(|| v["cluster"]["secret"].as_str().unwrap_or_default().to_string());
        v["cluster"]["secret"] = json!(secret);
        let tcp = peer.addr.to_string();
        let listen = tcp.rsplit_once("/p2p/").map(|(a, _)| a.to_string()).unwrap_or(tcp);
        v["cluster"]["listen_multiaddress"] = json!(listen);
        // Free ports for the REST API; the IPFS address is never dialled (`--consensus-only`).
        let api = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        v["api"]["restapi"]["http_listen_multiaddress"] = json!(format!("/ip4/127.0.0.1/tcp/{api}"));
        let ipfs = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        v["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = json!(format!("/ip4/127.0.0.1/tcp/{ipfs}"));
        // The other endpoints are not measured; several peers on one machine cannot share ports.
        if let Some(api) = v["api"].as_object_mut() {
            api.remove("pinsvcapi");
            api.remove("ipfsproxy");
        }
        v["plugins"]["cache_folder"] = json!(work.join("plugin-cache"));
        // Every peer knows every other's address, as `cairn init --peers` writes them: raft's
        // leader must be able to dial each follower.
        let others: Vec<&String> = all_addrs.iter().filter(|a| **a != peer.addr.to_string()).collect();
        v["cluster"]["peer_addresses"] = json!(others);
        if let Some(raft) = v["consensus"].get_mut("raft") {
            raft["init_peerset"] = json!(ids);
        }
        if let Some(batching) = &args.batching {
            let (size, age) = batching.split_once(',').context("--batching is SIZE,AGE")?;
            let size: u64 = size.trim().parse().context("--batching SIZE")?;
            v["consensus"]["crdt"]["batching"] = json!({"max_batch_size": size, "max_batch_age": age.trim()});
        }
        std::fs::write(&path, serde_json::to_string_pretty(&v)?)?;
        if i > 0 {
            peer.bootstrap = Some(first_addr.clone());
        }
    }
    Ok(peers)
}

fn read_secret(dir: &Path) -> anyhow::Result<Option<ClusterSecret>> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("service.json"))?)?;
    ClusterSecret::parse(v["cluster"]["secret"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("{e}"))
}

fn preload(dir: &Path, run: &str, n: u64) -> anyhow::Result<()> {
    let file = dir.join("preload.ndjson");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for i in 0..n {
            serde_json::to_writer(&mut out, &bench_pin(&format!("{run}-preload"), i))?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    let started = Instant::now();
    let out = Command::new(std::env::current_exe()?)
        .arg("--config")
        .arg(dir)
        .args(["state", "import"])
        .arg(&file)
        .env("CAIRN_LOG", "warn")
        .output()?;
    if !out.status.success() {
        bail!("state import failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    eprintln!("preload: imported {n} pins into the first peer in {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_file(file);
    Ok(())
}

async fn connect_client(secret: Option<ClusterSecret>, peers: &[PeerProc]) -> anyhow::Result<Client> {
    let mut config = SwarmConfig::new(Keypair::generate_ed25519());
    config.listen_addrs = Vec::new();
    config.secret = secret;
    config.rpc_timeout = Duration::from_secs(60);
    let swarm = cairn_swarm::start(config, Arc::new(AllowList::default()), Arc::new(super::ctl::ServesNothing))
        .await
        .context("start the bench client")?;
    let deadline = Instant::now() + Duration::from_secs(180);
    for peer in peers {
        loop {
            // Connected is not enough: the peer answers once its consensus is attached.
            let ready = match swarm.connect(peer.addr.clone()).await {
                Ok(id) => swarm.rpc(id, "Cluster.PinsetFingerprints", Vec::new()).await.is_ok(),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!("peer {} did not become ready; see {}", peer.id, peer.dir.join("daemon.log").display());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    Ok(Client { swarm, peers: peers.iter().map(|p| (p.id, p.addr.clone())).collect() })
}

/// Sends `range`'s pins to `targets` round-robin, `concurrency` at a time; a pin whose peer
/// fails is retried on the next peer (bounded), and recorded once acknowledged.
async fn ingest(
    client: &Arc<Client>,
    run: &str,
    range: std::ops::Range<u64>,
    targets: Vec<usize>,
    concurrency: usize,
    acked: Arc<Mutex<Vec<u64>>>,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(range.start));
    let failures = Arc::new(AtomicUsize::new(0));
    let targets = Arc::new(targets);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, acked, failures, targets) =
            (client.clone(), next.clone(), acked.clone(), failures.clone(), targets.clone());
        let (run, end) = (run.to_string(), range.end);
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= end {
                    return Ok::<_, anyhow::Error>(());
                }
                let payload = serde_json::to_vec(&bench_pin(&run, n))?;
                let mut attempt = 0usize;
                loop {
                    let target = targets[(n as usize + attempt) % targets.len()];
                    match client.call(target, "Cluster.Pin", payload.clone()).await {
                        Ok(_) => {
                            acked.lock().await.push(n);
                            break;
                        }
                        Err(_) if attempt < 50 => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => return Err(e.context(format!("pin {n} failed 50 times"))),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.context("ingest task")??;
    }
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("ingest: {failed} calls failed and were retried on another peer (not acknowledged)");
    }
    Ok(())
}

/// `kill -9` a random running peer `cycles` times (one a second), restarting it each time.
async fn kill_cycles(peers: Arc<Mutex<Vec<PeerProc>>>, cycles: u32) -> anyhow::Result<u32> {
    let mut done = 0;
    let mut seed = std::process::id() as u64;
    while done < cycles {
        tokio::time::sleep(Duration::from_millis(700)).await;
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut peers = peers.lock().await;
        let victim = (seed >> 33) as usize % peers.len();
        peers[victim].kill9();
        peers[victim].spawn()?;
        done += 1;
    }
    Ok(done)
}

/// Polls every peer's fingerprints until they are identical; false on timeout.
async fn wait_converged(client: &Client, peers: usize, within: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + within;
    loop {
        let mut fps = Vec::new();
        for peer in 0..peers {
            match client.fingerprints(peer).await {
                Ok(fp) => fps.push(fp),
                Err(_) => break,
            }
        }
        if fps.len() == peers && fps.windows(2).all(|w| w[0] == w[1]) {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
