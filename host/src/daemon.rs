//! `cairn daemon`: the peer's wiring, in one place. Today: load and validate the config and
//! identity, lock the config folder, load every decision point's plugin, reload them on
//! SIGHUP and when their files change, stop on SIGINT/SIGTERM. The swarm, consensus and
//! APIs plug in here (see [`Peer`]) as they are built.

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use cairn_policy::{
    AllocatorPlugin, AuthorizerPlugin, CorsPlugin, PluginKind, PluginSlot, PluginSpec, PolicyError, PolicyRuntime,
    RuntimeSettings,
};
use sha2::{Digest, Sha256};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use cairn_consensus::Consensus;
use cairn_swarm::{ClusterSecret, Multiaddr, SwarmConfig, SwarmHandle};

use crate::cluster::{ClusterRpc, PluginRpcAuthorizer, VERSION};
use crate::config::{
    ConfigDir, ConsensusKind, DecisionPoint, Identity, LoadedService, ServiceConfig, load_service, process_env,
    secret_fingerprint,
};

/// `cairn daemon`'s options.
#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    /// Peers to join, as multiaddrs ending in /p2p/<peer id>, comma-separated (IPFS
    /// Cluster's `-j`); dialled besides `cluster.peer_addresses`.
    #[arg(long, short = 'j', value_delimiter = ',')]
    pub bootstrap: Vec<String>,
    /// Run `cairn init` first when the config folder has no service.json.
    #[arg(long)]
    pub init: bool,
    /// With --init: the IPFS backend of the new config (ipfshttp or embedded).
    #[arg(long, value_enum, default_value = "ipfshttp", requires = "init")]
    pub ipfs: crate::cli::init::IpfsChoice,
    /// Take part in consensus and serve the APIs, but run no IPFS connector and no pin
    /// tracker: this peer pins nothing (a consensus witness; `cairn bench consensus` uses it
    /// to measure consensus alone).
    #[arg(long)]
    pub consensus_only: bool,
    /// Do not trust the `--bootstrap` peers (by default, in crdt mode, they join
    /// `trusted_peers` for this run, as IPFS Cluster's `--bootstrap` does; nothing is saved).
    #[arg(long)]
    pub no_trust: bool,
    /// Serve Prometheus metrics on `observations.metrics.prometheus_endpoint`, whatever
    /// `enable_stats` says (IPFS Cluster's `--stats`).
    #[arg(long)]
    pub stats: bool,
    /// Export OpenTelemetry spans over OTLP, whatever `observations.tracing.enable_tracing`
    /// says (IPFS Cluster's `--tracing`; see the README's "Tracing").
    #[arg(long)]
    pub tracing: bool,
}

impl DaemonArgs {
    /// The peer ids that `--bootstrap` adds to the trusted peers for this run.
    fn bootstrap_trust(&self) -> Vec<String> {
        if self.no_trust {
            return Vec::new();
        }
        self.bootstrap.iter().filter_map(|a| crate::config::peer_id_of(a)).map(|id| id.to_string()).collect()
    }
}

/// Add `extra` to `consensus.crdt.trusted_peers` in memory (the default peer authorizer's
/// config comes from that key).
fn add_trusted(config: &mut ServiceConfig, extra: &[String]) {
    if extra.is_empty() {
        return;
    }
    let Some(crdt) = config.consensus.crdt.as_mut() else { return };
    let add = |trusted: &mut Vec<String>| {
        for id in extra {
            if !trusted.contains(id) {
                trusted.push(id.clone());
            }
        }
    };
    // An explicit trusted-peers config that lists peers gets them too: adding them only to
    // the section would make the two lists differ, which the config refuses as a conflict.
    let explicit = crdt
        .peer_authorizer_plugin
        .as_mut()
        .filter(|p| p.plugin == "builtin:trusted-peers")
        .and_then(|p| p.config.as_mut())
        .and_then(|c| c.get_mut("trusted_peers"))
        .and_then(|list| list.as_array_mut());
    match explicit {
        Some(list) => {
            let mut ids: Vec<String> = list.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
            add(&mut ids);
            *list = ids.into_iter().map(serde_json::Value::String).collect();
            // The section's list, if any, equals the explicit one (else the config is refused): keep it so.
            if let Some(trusted) = crdt.trusted_peers.as_mut() {
                add(trusted);
            }
        }
        None => add(crdt.trusted_peers.get_or_insert_with(Vec::new)),
    }
}

/// Run the peer until SIGINT/SIGTERM.
pub async fn run(dir: ConfigDir, args: DaemonArgs) -> anyhow::Result<ExitCode> {
    // Handlers first: a SIGHUP during startup must not kill the process (its default action).
    let mut hup = signal(SignalKind::hangup()).context("install the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;

    if args.init && !dir.service().exists() {
        let mut init = crate::cli::init::InitArgs::default();
        init.ipfs = args.ipfs;
        crate::cli::init::run(dir.clone(), init)?;
    }
    // Everything that can be wrong with the files is found before anything is written.
    let loaded = load_config(&dir)?;
    let config = &loaded.config;
    let identity = load_identity(&dir, config)?;
    let consensus = config.consensus_kind().context("no consensus configured")?;
    check_secret(&dir, config, consensus)?;
    let _lock = lock_config_dir(&dir)?;
    crate::security::log(config, args.stats);

    let peer = Peer::start(&dir, config, &identity, &args).await?;
    let listening = peer.swarm.listen_addrs().await.unwrap_or_default();
    info!(
        peer_id = %identity.peer_id,
        listen = %listening.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        peername = %config.cluster().peername,
        consensus = %consensus,
        decision_points = peer.policies.slots.len(),
        "cairn daemon ready"
    );

    loop {
        tokio::select! {
            _ = hup.recv() => {
                info!("SIGHUP: reloading service.json and the plugins");
                peer.policies.reload(&dir).await;
            }
            _ = term.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { info!("SIGINT: shutting down"); break; }
        }
    }
    peer.stop().await;
    info!("cairn daemon stopped");
    Ok(ExitCode::SUCCESS)
}

/// `/libp2p-http` streams the cluster host queues for the REST API; beyond this, new ones are
/// reset (the swarm task never waits on the API).
const LIBP2P_HTTP_QUEUE: usize = 1024;

/// The running peer's components. New components (consensus, APIs) are started in
/// [`Peer::start`] and stopped in [`Peer::stop`], in reverse order.
struct Peer {
    policies: Policies,
    swarm: SwarmHandle,
    monitor: crate::monitor::Monitor,
    consensus: Arc<dyn Consensus>,
    /// Feeds the consensus topics' messages to the engine.
    broadcasts: tokio::task::JoinHandle<()>,
    /// The pin tracker (none with `--consensus-only`).
    tracker: Option<cairn_tracker::PinTracker>,
    /// Background jobs: pinset sync, figures, periodic recover and expiry.
    jobs: Vec<tokio::task::JoinHandle<()>>,
    /// The IPFS node inside this process, with `ipfs_connector.embedded`.
    embedded_ipfs: Option<Arc<cairn_ipfs_embedded::EmbeddedIpfs>>,
    /// The HTTP endpoints of the configured `api` sections.
    apis: crate::apis::Apis,
    /// The Prometheus endpoint's task, when `observations.metrics.enable_stats` is on.
    metrics: Option<tokio::task::JoinHandle<()>>,
    /// The OpenTelemetry span export, when `observations.tracing.enable_tracing` is on.
    tracing: Option<crate::telemetry::Tracing>,
}

impl Peer {
    async fn start(
        dir: &ConfigDir,
        config: &ServiceConfig,
        identity: &Identity,
        args: &DaemonArgs,
    ) -> anyhow::Result<Peer> {
        let tracing = crate::telemetry::start(config, &identity.peer_id.to_string(), args.tracing)?;
        // The peer's metrics registry; components register into it when stats are on.
        let telemetry = cairn_telemetry::Telemetry::new();
        let policies = Policies::load(dir, config, args.bootstrap_trust()).await?;
        let peer_authorizer = policies
            .slots
            .iter()
            .find_map(|(key, slot)| match slot {
                Slot::Authorizer(s) if key.ends_with(".peer_authorizer_plugin") => Some(s.clone()),
                _ => None,
            })
            .context("service.json: no consensus section, so no peer authorizer")?;
        let rpc = Arc::new(ClusterRpc::new(config.cluster().peername.clone()));
        let mut swarm_config = swarm_config(dir, config, identity, args)?;
        // Raft serves the REST API on the cluster host too (IPFS Cluster's rule).
        let cluster_streams = config.restapi_on_cluster_host().then(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(LIBP2P_HTTP_QUEUE);
            swarm_config.libp2p_http = Some(tx);
            rx
        });
        let swarm =
            cairn_swarm::start(swarm_config, Arc::new(PluginRpcAuthorizer(peer_authorizer.clone())), rpc.clone())
                .await
                .context("start the cluster swarm")?;
        rpc.attach(swarm.clone());
        rpc.attach_peer_authorizer(peer_authorizer.clone());
        let consensus: Arc<dyn Consensus> = match (&config.consensus.crdt, &config.consensus.raft) {
            (Some(crdt), _) => crate::consensus::start_crdt(dir, crdt, &swarm, peer_authorizer.clone())?,
            (None, Some(raft)) => {
                let engine = crate::consensus::start_raft(dir, raft, &swarm, config.secret_bytes().is_some()).await?;
                rpc.attach_raft(engine.clone());
                engine
            }
            (None, None) => bail!("{}: no consensus section", dir.service().display()),
        };
        let broadcasts = crate::consensus::pump_broadcasts(&swarm, consensus.clone()).await?;
        {
            // Raft may need the other peers to elect a leader; the peer serves (commits wait
            // or fail with a clear error) meanwhile, and says when consensus is ready.
            let consensus = consensus.clone();
            tokio::spawn(async move {
                match consensus.ready().await {
                    Ok(()) => info!("consensus ready"),
                    Err(e) => warn!("consensus not ready yet: {e}"),
                }
            });
        }
        rpc.attach_consensus(consensus.clone());
        let monitor = crate::monitor::Monitor::start(swarm.clone(), config, rpc.figures())
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.service().display()))?;
        rpc.attach_monitor(monitor.clone());
        rpc.attach_allocator(allocator(config, &policies, &monitor, swarm.local_peer_id().to_string())?);
        let mut embedded_ipfs = None;
        let (tracker, jobs) = if args.consensus_only {
            info!("--consensus-only: no IPFS connector and no pin tracker; this peer pins nothing");
            (None, Vec::new())
        } else {
            let backend = crate::ipfs::connector(dir, config).await?;
            embedded_ipfs = backend.embedded;
            let ipfs = backend.connector;
            let stateless = &config.pin_tracker.stateless;
            let tracker = cairn_tracker::PinTracker::start(
                cairn_tracker::TrackerSettings {
                    peer: swarm.local_peer_id().to_string(),
                    concurrent_pins: stateless.concurrent_pins as usize,
                    priority_pin_max_age: stateless.priority_pin_max_age.0,
                    priority_pin_max_retries: stateless.priority_pin_max_retries,
                    max_pin_queue_size: usize::try_from(stateless.max_pin_queue_size).unwrap_or(usize::MAX),
                },
                Arc::new(crate::ipfs::TrackerIpfs(ipfs.clone())),
            );
            rpc.attach_ipfs(tracker.clone(), ipfs.clone());
            let mut jobs = vec![crate::pinsync::start(consensus.clone(), tracker.clone())];
            jobs.extend(crate::jobs::start(config, rpc.clone(), consensus.clone(), tracker.clone(), ipfs));
            (Some(tracker), jobs)
        };
        // Request metrics only when someone can scrape them: no per-request work otherwise.
        let api_metrics = (config.observations.metrics.enable_stats || args.stats).then(|| telemetry.api());
        let apis = crate::apis::Apis::start(dir, config, &policies, rpc.clone(), api_metrics, cluster_streams).await?;
        let metrics =
            start_metrics(dir, config, args, &telemetry, &swarm, &policies, &consensus, tracker.as_ref()).await?;
        Ok(Peer {
            policies,
            swarm,
            monitor,
            consensus,
            broadcasts,
            tracker,
            jobs,
            embedded_ipfs,
            apis,
            metrics,
            tracing,
        })
    }

    async fn stop(self) {
        // Stop taking requests first, then the work behind them.
        self.apis.stop().await;
        if let Some(metrics) = self.metrics {
            metrics.abort();
        }
        for job in self.jobs {
            job.abort();
        }
        if let Some(tracker) = self.tracker {
            tracker.shutdown().await;
        }
        if let Some(node) = self.embedded_ipfs {
            node.shutdown().await;
        }
        self.monitor.stop();
        // Pending consensus work (queued writes, a pending batch) is flushed while the swarm
        // can still broadcast it.
        if let Err(e) = self.consensus.shutdown().await {
            warn!("consensus shutdown: {e}");
        }
        self.broadcasts.abort();
        if let Err(e) = self.swarm.shutdown().await {
            warn!("swarm shutdown: {e}");
        }
        self.policies.stop();
        // Last, so the spans of the shutdown are sent too.
        if let Some(tracing) = self.tracing {
            tracing.stop().await;
        }
    }
}

/// The allocator: the allocator plugin with the monitor's metrics and the cluster's
/// replication defaults.
fn allocator(
    config: &ServiceConfig,
    policies: &Policies,
    monitor: &crate::monitor::Monitor,
    local: String,
) -> anyhow::Result<crate::allocate::Allocator> {
    let plugin = policies
        .slots
        .values()
        .find_map(|slot| match slot {
            Slot::Allocator(s) => Some(s.clone()),
            _ => None,
        })
        .context("service.json: no allocator decision point")?;
    let cluster = config.cluster();
    let allocate_by = match &config.allocator.balanced {
        Some(b) if !b.allocate_by.is_empty() => b.allocate_by.clone(),
        Some(_) => crate::config::default_allocate_by(),
        // IPFS Cluster's legacy behaviour for a missing allocator section (§10.13).
        None => vec!["freespace".to_string()],
    };
    let trusted_only = match (cluster.pin_only_on_trusted_peers, cluster.pin_only_on_untrusted_peers) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    };
    // IPFS Cluster's IsTrustedPeer for the pin_only_on_* filters: crdt's trusted_peers ("*"
    // trusts all), and every peer in raft.
    let trusted_peers: Option<Vec<String>> =
        config.consensus.crdt.as_ref().map(|crdt| crdt.trusted_peers.clone().unwrap_or_default());
    let trusted: crate::allocate::TrustCheck = Arc::new(move |peer: &str| match &trusted_peers {
        Some(list) => peer == local || list.iter().any(|t| t == "*" || t == peer),
        None => true,
    });
    Ok(crate::allocate::Allocator {
        plugin,
        monitor: monitor.clone(),
        settings: crate::allocate::AllocationSettings {
            replication_factor_min: cluster.replication_factor_min,
            replication_factor_max: cluster.replication_factor_max,
            allocate_by,
            trusted_only,
        },
        trusted,
    })
}

/// Serve `/metrics` when `observations.metrics.enable_stats` (or `--stats`) is on: the
/// components' families are registered into `telemetry` here, with libp2p's, the plugins'
/// and the pin statuses (scanned every `reporting_interval`).
#[allow(clippy::too_many_arguments)]
async fn start_metrics(
    dir: &ConfigDir,
    config: &ServiceConfig,
    args: &DaemonArgs,
    telemetry: &cairn_telemetry::Telemetry,
    swarm: &SwarmHandle,
    policies: &Policies,
    consensus: &Arc<dyn Consensus>,
    tracker: Option<&cairn_tracker::PinTracker>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let settings = &config.observations.metrics;
    if !(settings.enable_stats || args.stats) {
        return Ok(None);
    }
    let addr = crate::metrics::socket_addr(&settings.prometheus_endpoint)
        .map_err(|e| anyhow::anyhow!("{}: observations.metrics.prometheus_endpoint: {e}", dir.service().display()))?;
    swarm.register_metrics(telemetry).await.context("register the swarm's metrics")?;
    consensus.register_metrics(telemetry);
    if let Some(tracker) = tracker {
        tracker.register_metrics(telemetry);
    }
    let points = policies
        .slots
        .iter()
        .map(|(key, slot)| {
            let (kind, stats) = (slot.kind(), slot.stats_reader());
            let about: Box<dyn Fn() -> (String, cairn_policy::ReloadStats) + Send + Sync> = match slot.clone() {
                Slot::Authorizer(s) => Box::new(move || (s.current().name().to_owned(), s.reload_stats())),
                Slot::Cors(s) => Box::new(move || (s.current().name().to_owned(), s.reload_stats())),
                Slot::Allocator(s) => Box::new(move || (s.current().name().to_owned(), s.reload_stats())),
            };
            cairn_telemetry::PluginSource::new(key.clone(), move || {
                let (plugin, reloads) = about();
                crate::metrics::plugin_figures(&plugin, kind, stats(), reloads)
            })
        })
        .collect();
    telemetry.register_collector(cairn_telemetry::PluginCollector::new(points));
    let scan = tracker.map(|tracker| crate::metrics::PinScan {
        tracker: tracker.clone(),
        consensus: consensus.clone(),
        every: settings.reporting_interval.0.max(std::time::Duration::from_secs(10)),
    });
    let (bound, task) =
        crate::metrics::serve(addr, telemetry.clone(), scan).await.context("start the metrics endpoint")?;
    info!(endpoint = %format!("http://{bound}/metrics"), "metrics endpoint listening");
    Ok(Some(task))
}

/// The swarm's settings from `cluster.*` and `--bootstrap`.
fn swarm_config(
    dir: &ConfigDir,
    config: &ServiceConfig,
    identity: &Identity,
    args: &DaemonArgs,
) -> anyhow::Result<SwarmConfig> {
    let cluster = config.cluster();
    let file = dir.service();
    let parse = |key: &str, addr: &str| -> anyhow::Result<Multiaddr> {
        addr.parse().with_context(|| format!("{}: {key}: {addr:?} is not a multiaddr", file.display()))
    };
    let mut swarm = SwarmConfig::new(identity.keypair.clone());
    swarm.listen_addrs = Vec::new();
    for addr in &cluster.listen_multiaddress.0 {
        // A private network cannot protect QUIC, so IPFS Cluster never listens on it either.
        if addr.contains("/quic") {
            info!("cluster.listen_multiaddress: not listening on {addr} (QUIC cannot use the cluster secret)");
            continue;
        }
        swarm.listen_addrs.push(parse("cluster.listen_multiaddress", addr)?);
    }
    swarm.secret = ClusterSecret::parse(&cluster.secret).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    for addr in &cluster.peer_addresses {
        swarm.bootstrap.push(parse("cluster.peer_addresses", addr)?);
    }
    for addr in &args.bootstrap {
        swarm.bootstrap.push(parse("--bootstrap", addr)?);
    }
    if !cluster.peerstore_file.is_empty() {
        swarm.peerstore_path = Some(dir.0.join(&cluster.peerstore_file));
    }
    swarm.mdns = !cluster.mdns_interval.0.is_zero();
    swarm.agent_version = format!("cairn/{VERSION}");
    Ok(swarm)
}

/// Read and validate service.json (with environment overrides), logging what was ignored.
fn load_config(dir: &ConfigDir) -> anyhow::Result<LoadedService> {
    let loaded = load_service(&dir.service(), &process_env)?;
    for warning in &loaded.warnings {
        warn!("{}: {warning}", dir.service().display());
    }
    if !loaded.env_applied.is_empty() {
        info!("environment overrides applied: {}", loaded.env_applied.join(", "));
    }
    Ok(loaded)
}

/// identity.json, or the legacy `cluster.id`/`cluster.private_key` of service.json.
fn load_identity(dir: &ConfigDir, config: &ServiceConfig) -> anyhow::Result<Identity> {
    let path = dir.identity();
    let cluster = config.cluster();
    if !path.exists()
        && let (Some(id), Some(key)) = (&cluster.id, &cluster.private_key)
    {
        info!("{} is missing; using the legacy identity in service.json", path.display());
        return Ok(Identity::from_fields(id, key, &dir.service(), "cluster.")?);
    }
    if !path.exists() {
        bail!("{} does not exist: run `cairn init` first", path.display());
    }
    Ok(Identity::load(&path, &process_env)?)
}

/// An empty secret means no private network: allowed (loudly) in crdt mode, refused in raft.
fn check_secret(dir: &ConfigDir, config: &ServiceConfig, consensus: ConsensusKind) -> anyhow::Result<()> {
    match (config.secret_bytes(), consensus) {
        (Some(secret), _) => {
            info!(secret_fingerprint = %secret_fingerprint(&secret), "cluster secret set: private network");
            Ok(())
        }
        (None, ConsensusKind::Crdt) => {
            warn!(
                "cluster.secret is EMPTY: the cluster will start on an UNPROTECTED network; anyone who can reach \
                 cluster.listen_multiaddress can connect. Set cluster.secret, CLUSTER_SECRET or CLUSTER_SECRET_FILE"
            );
            Ok(())
        }
        (None, ConsensusKind::Raft) => bail!(
            "{}: cluster.secret: is empty, and raft mode requires a secret: raft trusts every peer that can \
             connect, so without the private network anyone who reaches the swarm could change the pinset \
             (set cluster.secret, CLUSTER_SECRET or CLUSTER_SECRET_FILE, or use consensus.crdt)",
            dir.service().display()
        ),
    }
}

/// Hold an exclusive lock on `cluster.lock` for the daemon's lifetime, so a second daemon on
/// the same folder refuses to start. The OS releases it when the process exits, even on a
/// crash, so a stale file never blocks a start.
pub(crate) fn lock_config_dir(dir: &ConfigDir) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.lock();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => bail!(
            "another cairn daemon is already running on {} (it holds {}); stop it first or use another --config",
            dir.0.display(),
            path.display()
        ),
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("lock {}", path.display())),
    }
}

/// The active plugin of one decision point.
#[derive(Clone)]
pub(crate) enum Slot {
    Authorizer(Arc<PluginSlot<AuthorizerPlugin>>),
    Cors(Arc<PluginSlot<CorsPlugin>>),
    Allocator(Arc<PluginSlot<AllocatorPlugin>>),
}

impl Slot {
    async fn load(runtime: PolicyRuntime, kind: PluginKind, spec: PluginSpec) -> Result<Slot, PolicyError> {
        Ok(match kind {
            PluginKind::Authorizer => Slot::Authorizer(Arc::new(PluginSlot::load(runtime, spec).await?)),
            PluginKind::Cors => Slot::Cors(Arc::new(PluginSlot::load(runtime, spec).await?)),
            PluginKind::Allocator => Slot::Allocator(Arc::new(PluginSlot::load(runtime, spec).await?)),
        })
    }

    fn kind(&self) -> PluginKind {
        match self {
            Slot::Authorizer(_) => PluginKind::Authorizer,
            Slot::Cors(_) => PluginKind::Cors,
            Slot::Allocator(_) => PluginKind::Allocator,
        }
    }

    async fn reload_with(&self, spec: PluginSpec) -> Result<(), PolicyError> {
        match self {
            Slot::Authorizer(s) => s.reload_with(spec).await,
            Slot::Cors(s) => s.reload_with(spec).await,
            Slot::Allocator(s) => s.reload_with(spec).await,
        }
    }

    /// Reads the active plugin's counters (a reload starts them from zero).
    fn stats_reader(&self) -> Box<dyn Fn() -> cairn_policy::PluginStats + Send + Sync> {
        match self.clone() {
            Slot::Authorizer(s) => Box::new(move || s.current().stats()),
            Slot::Cors(s) => Box::new(move || s.current().stats()),
            Slot::Allocator(s) => Box::new(move || s.current().stats()),
        }
    }

    fn watch(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        match self {
            Slot::Authorizer(s) => s.watch(every),
            Slot::Cors(s) => s.watch(every),
            Slot::Allocator(s) => s.watch(every),
        }
    }
}

/// Every decision point's plugin, loaded through one runtime. The components that decide
/// (APIs, RPC, allocation) will take their slot from here.
pub(crate) struct Policies {
    /// Peers trusted for this run only (`--bootstrap`), re-applied on every reload.
    extra_trusted: Vec<String>,
    settings: RuntimeSettings,
    pub(crate) slots: BTreeMap<String, Slot>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

impl Policies {
    async fn load(dir: &ConfigDir, config: &ServiceConfig, extra_trusted: Vec<String>) -> anyhow::Result<Policies> {
        let mut config = config.clone();
        add_trusted(&mut config, &extra_trusted);
        let settings = config.plugins.runtime_settings(&dir.0);
        let runtime = PolicyRuntime::new(settings.clone()).context("start the plugin runtime")?;
        let points = config
            .decision_points(&dir.0)
            .map_err(|e| anyhow::anyhow!("{}: {}: {}", dir.service().display(), e.key, e.problem))?;
        // Load concurrently: each first load may compile a component.
        let mut loading = tokio::task::JoinSet::new();
        for DecisionPoint { key, kind, spec } in points {
            let runtime = runtime.clone();
            loading.spawn(async move {
                let described = describe(&spec);
                let slot = Slot::load(runtime, kind, spec).await;
                (key, described, slot)
            });
        }
        let mut slots = BTreeMap::new();
        while let Some(joined) = loading.join_next().await {
            let (key, described, slot) = joined.context("a plugin load task failed")?;
            let slot = slot.map_err(|e| anyhow::anyhow!("{}: {key}: {e}", dir.service().display()))?;
            info!(point = %key, kind = %slot.kind(), "decision point loaded {described}");
            slots.insert(key, slot);
        }
        let watchers = match config.plugins.watch_every() {
            Some(every) => slots.values().map(|s| s.watch(every)).collect(),
            None => Vec::new(),
        };
        Ok(Policies { extra_trusted, settings, slots, watchers })
    }

    /// Re-read service.json and reload every decision point from it. A config that does
    /// not load changes nothing; a plugin that does not load keeps its predecessor.
    async fn reload(&self, dir: &ConfigDir) {
        let mut config = match load_config(dir) {
            Ok(loaded) => loaded.config,
            Err(e) => {
                error!("reload refused, keeping the active plugins: {e:#}");
                return;
            }
        };
        add_trusted(&mut config, &self.extra_trusted);
        let points = match config.decision_points(&dir.0) {
            Ok(points) => points,
            Err(e) => {
                error!(
                    "reload refused, keeping the active plugins: {}: {}: {}",
                    dir.service().display(),
                    e.key,
                    e.problem
                );
                return;
            }
        };
        let new_settings = config.plugins.runtime_settings(&dir.0);
        if new_settings.limits != self.settings.limits || new_settings.cache_dir != self.settings.cache_dir {
            warn!("the plugins section changed; its limits apply after a restart");
        }
        let (mut reloaded, mut failed) = (0, 0);
        for DecisionPoint { key, spec, .. } in &points {
            let Some(slot) = self.slots.get(key) else {
                warn!(point = %key, "new decision point; it is enabled at the next restart");
                continue;
            };
            let described = describe(spec);
            match slot.reload_with(spec.clone()).await {
                Ok(()) => {
                    reloaded += 1;
                    info!(point = %key, "decision point reloaded {described}");
                }
                Err(e) => {
                    failed += 1;
                    error!(point = %key, "decision point reload failed, keeping the active plugin: {e}");
                }
            }
        }
        for key in self.slots.keys().filter(|k| !points.iter().any(|p| &p.key == *k)) {
            warn!(point = %key, "decision point removed from service.json; it stays active until a restart");
        }
        info!(reloaded, failed, "reload finished");
    }

    fn stop(self) {
        for watcher in self.watchers {
            watcher.abort();
        }
    }
}

/// `plugin=<source> config=<fingerprint>` for logs: the config's hash, since it may hold
/// credentials.
fn describe(spec: &PluginSpec) -> String {
    let config = serde_json::to_string(&spec.config).unwrap_or_default();
    let fingerprint = hex::encode(&Sha256::digest(config.as_bytes())[..6]);
    format!("plugin={} config={fingerprint}", spec.source)
}

#[cfg(test)]
mod bootstrap_trust_tests {
    use std::path::Path;

    use serde_json::{Value, json};

    use super::add_trusted;
    use crate::config::{ConsensusSection, CrdtConfig, ServiceConfig};

    /// What the trusted-peers plugin is given after `--bootstrap` peers are added.
    fn trusted_after_bootstrap(section: Option<&[&str]>, explicit: Option<Value>) -> Value {
        let mut config = ServiceConfig::for_init(ConsensusSection { crdt: Some(CrdtConfig::default()), raft: None });
        let crdt = config.consensus.crdt.as_mut().expect("crdt");
        crdt.trusted_peers = section.map(|l| l.iter().map(|s| s.to_string()).collect());
        crdt.peer_authorizer_plugin = explicit.map(|config| {
            serde_json::from_value(json!({"plugin": "builtin:trusted-peers", "config": config})).expect("plugin ref")
        });
        add_trusted(&mut config, &["C".to_owned()]);
        let points = config.decision_points(Path::new("/")).expect("the bootstrap peer makes no conflict");
        let point = points.iter().find(|p| p.key == "consensus.crdt.peer_authorizer_plugin").expect("point");
        point.spec.config["trusted_peers"].clone()
    }

    #[test]
    fn bootstrap_peers_are_trusted_whichever_place_lists_the_trusted_peers() {
        assert_eq!(trusted_after_bootstrap(None, None), json!(["C"]));
        assert_eq!(trusted_after_bootstrap(Some(&["A"]), None), json!(["A", "C"]));
        // An explicit list of the builtin: the bootstrap peer joins it, with no conflict.
        assert_eq!(trusted_after_bootstrap(None, Some(json!({"trusted_peers": ["A", "B"]}))), json!(["A", "B", "C"]));
        assert_eq!(
            trusted_after_bootstrap(Some(&["A", "B"]), Some(json!({"trusted_peers": ["A", "B"]}))),
            json!(["A", "B", "C"])
        );
        // An explicit config without the key takes the section's list.
        assert_eq!(trusted_after_bootstrap(None, Some(json!({}))), json!(["C"]));
    }
}
