//! The peer's HTTP endpoints, each started only when its section is present (removing a
//! section closes its port): the REST API (`api.restapi`, also over libp2p-http on its own
//! libp2p host when `libp2p_listen_multiaddress`, `id` and `private_key` are set, else on the
//! cluster host in raft mode), the Pinning Service API
//! (`api.pinsvcapi`) and the IPFS proxy (`api.ipfsproxy`). Every one of them asks its section's
//! authorizer and CORS plugins.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_api::{ApiFuture, ApiServer, IncomingStream, RequestPolicy};
use cairn_ipfsproxy::{ProxyCluster, ProxyConfig, ProxyServer, RepoStat};
use cairn_libp2p_http::{HttpStream, Libp2pHttpHost, PeerId};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::info;

use crate::cluster::ClusterRpc;
use crate::config::{ConfigDir, HttpApiConfig, IpfsProxyConfig, ServiceConfig};
use crate::daemon::{Policies, Slot};
use crate::facade::Facade;

/// The RPC that answers this peer's IPFS `repo/stat` (for the proxy's cluster-wide sum).
pub const REPO_STAT: &str = "IPFSConnector.RepoStat";

/// The running endpoints.
#[derive(Default)]
pub struct Apis {
    servers: Vec<(&'static str, ApiServer)>,
    proxy: Option<ProxyServer>,
    /// The REST API's own libp2p host, when configured.
    libp2p: Option<Arc<Libp2pHttpHost>>,
    /// Feeds libp2p-http streams to the REST API.
    pump: Option<JoinHandle<()>>,
}

impl Apis {
    /// Starts every configured endpoint; an error names the section and key. `cluster_streams`
    /// are the cluster host's `/libp2p-http` streams (raft mode, see
    /// [`ServiceConfig::restapi_on_cluster_host`]).
    pub async fn start(
        dir: &ConfigDir,
        config: &ServiceConfig,
        policies: &Policies,
        rpc: Arc<ClusterRpc>,
        metrics: Option<cairn_telemetry::ApiMetrics>,
        cluster_streams: Option<mpsc::Receiver<(PeerId, HttpStream)>>,
    ) -> anyhow::Result<Apis> {
        let mut apis = Apis::default();
        let observer =
            cairn_api::Observer(metrics.map(|m| Arc::new(ApiRequestMetrics(m)) as Arc<dyn cairn_api::RequestObserver>));
        let facade = Arc::new(Facade(rpc.clone()));
        let file = dir.service();
        match &config.api.restapi {
            None => info!("api.restapi is not configured: the REST API is off"),
            Some(section) => {
                let mut server = crate::restapi::server_config(dir, "api.restapi", cairn_api::Api::Restapi, section)?;
                server.observer = observer.clone();
                let policy = policy(policies, "api.restapi")?;
                let api = cairn_api::serve(server.clone(), facade.clone(), policy.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: api.restapi: {e}", file.display()))?;
                for addr in api.local_addrs() {
                    info!(%addr, "REST API listening");
                }
                apis.servers.push(("restapi", api));
                let streams = match libp2p_host(dir, section).await? {
                    Some(host) => {
                        apis.libp2p = Some(host.clone());
                        Some(pump(futures::stream::unfold(host, |h| async move { h.accept().await.map(|s| (s, h)) })))
                    }
                    None => cluster_streams.map(|rx| {
                        info!("REST API listening (libp2p-http on the cluster host)");
                        pump(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|s| (s, rx)) }))
                    }),
                };
                if let Some((task, incoming)) = streams {
                    apis.pump = Some(task);
                    let api = cairn_api::serve_streams(server, facade.clone(), policy, incoming)
                        .await
                        .map_err(|e| anyhow::anyhow!("{}: api.restapi: {e}", file.display()))?;
                    apis.servers.push(("restapi (libp2p-http)", api));
                }
            }
        }
        match &config.api.pinsvcapi {
            None => info!("api.pinsvcapi is not configured: the Pinning Service API is off"),
            Some(section) => {
                let mut server =
                    crate::restapi::server_config(dir, "api.pinsvcapi", cairn_api::Api::Pinsvcapi, section)?;
                server.observer = observer.clone();
                let api = cairn_api::serve_pinsvc(server, facade.clone(), policy(policies, "api.pinsvcapi")?)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: api.pinsvcapi: {e}", file.display()))?;
                for addr in api.local_addrs() {
                    info!(%addr, "Pinning Service API listening");
                }
                apis.servers.push(("pinsvcapi", api));
            }
        }
        match &config.api.ipfsproxy {
            None => info!("api.ipfsproxy is not configured: the IPFS proxy is off"),
            Some(section) => {
                let mut settings = proxy_config(dir, section)?;
                settings.observer = observer;
                let extras = Arc::new(ClusterRepoStat(rpc));
                let proxy = cairn_ipfsproxy::serve(settings, facade, extras, policy(policies, "api.ipfsproxy")?)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: api.ipfsproxy: {e}", file.display()))?;
                for addr in proxy.local_addrs() {
                    info!(%addr, "IPFS proxy listening");
                }
                apis.proxy = Some(proxy);
            }
        }
        Ok(apis)
    }

    /// Stops taking requests and lets the running ones finish.
    pub async fn stop(self) {
        for (_, server) in self.servers {
            server.shutdown().await;
        }
        if let Some(proxy) = self.proxy {
            proxy.shutdown().await;
        }
        if let Some(pump) = self.pump {
            pump.abort();
        }
        if let Some(host) = self.libp2p {
            host.shutdown().await;
        }
    }
}

/// The section's authorizer and CORS plugins as the servers' request policy.
fn policy(policies: &Policies, section: &str) -> anyhow::Result<Arc<dyn RequestPolicy>> {
    let authorizer = match policies.slots.get(&format!("{section}.authorizer_plugin")) {
        Some(Slot::Authorizer(s)) => s.clone(),
        _ => bail!("{section}: no authorizer plugin loaded"),
    };
    let cors = match policies.slots.get(&format!("{section}.cors_plugin")) {
        Some(Slot::Cors(s)) => s.clone(),
        _ => bail!("{section}: no CORS plugin loaded"),
    };
    Ok(Arc::new(crate::restapi::PluginPolicy { authorizer, cors }))
}

/// The separate libp2p host of `api.restapi` (no private-network key, as IPFS Cluster's: its
/// requests need the API's credentials).
async fn libp2p_host(dir: &ConfigDir, section: &HttpApiConfig) -> anyhow::Result<Option<Arc<Libp2pHttpHost>>> {
    let file = dir.service();
    let (Some(listen), Some(id), Some(key)) = (&section.libp2p_listen_multiaddress, &section.id, &section.private_key)
    else {
        return Ok(None);
    };
    let keypair = cairn_libp2p_http::host_identity(id, key)
        .map_err(|e| anyhow::anyhow!("{}: api.restapi.id / private_key: {e}", file.display()))?;
    let mut addrs = Vec::new();
    for addr in &listen.0 {
        addrs.push(
            addr.parse()
                .with_context(|| format!("{}: api.restapi.libp2p_listen_multiaddress {addr:?}", file.display()))?,
        );
    }
    let host = Libp2pHttpHost::start(keypair, addrs, None)
        .await
        .map_err(|e| anyhow::anyhow!("{}: api.restapi.libp2p_listen_multiaddress: {e}", file.display()))?;
    for addr in host.dial_addrs() {
        info!(%addr, "REST API listening (libp2p-http)");
    }
    Ok(Some(Arc::new(host)))
}

/// Feeds `/libp2p-http` streams, from whichever host accepts them, to the API server with the
/// remote peer id the policy sees.
fn pump(
    streams: impl Stream<Item = (PeerId, HttpStream)> + Send + 'static,
) -> (JoinHandle<()>, mpsc::Receiver<IncomingStream>) {
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(async move {
        let mut streams = std::pin::pin!(streams);
        while let Some((peer, stream)) = streams.next().await {
            let incoming = IncomingStream {
                io: Box::new(stream),
                remote_addr: format!("/p2p/{peer}"),
                peer_id: Some(peer.to_string()),
            };
            if tx.send(incoming).await.is_err() {
                break;
            }
        }
    });
    (task, rx)
}

/// `api.ipfsproxy` mapped onto the proxy's settings.
pub(crate) fn proxy_config(dir: &ConfigDir, section: &IpfsProxyConfig) -> anyhow::Result<ProxyConfig> {
    let file = dir.service();
    let mut listen = Vec::new();
    for addr in &section.listen_multiaddress.0 {
        listen.push(
            crate::restapi::listen_addr(addr)
                .with_context(|| format!("{}: api.ipfsproxy.listen_multiaddress", file.display()))?,
        );
    }
    if listen.is_empty() {
        listen.push(cairn_api::ListenAddr::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 9095))));
    }
    let node = cairn_ipfs::DaemonAddr::parse(&section.node_multiaddress)
        .map_err(|e| anyhow::anyhow!("{}: api.ipfsproxy.node_multiaddress: {e}", file.display()))?;
    let mut settings = ProxyConfig::new(listen, node);
    settings.node_https = section.node_https;
    settings.read_timeout = section.read_timeout.0;
    settings.read_header_timeout = section.read_header_timeout.0;
    settings.write_timeout = section.write_timeout.0;
    settings.idle_timeout = section.idle_timeout.0;
    settings.max_header_bytes = usize::try_from(section.max_header_bytes).unwrap_or(usize::MAX);
    settings.add_limits = section.add_limits();
    settings.extract_headers_extra = section.extract_headers_extra.clone();
    settings.extract_headers_path = section.extract_headers_path.clone();
    settings.extract_headers_ttl = section.extract_headers_ttl.0;
    Ok(settings)
}

/// API request counts and latency by route and status (`cairn_api_request*`).
struct ApiRequestMetrics(cairn_telemetry::ApiMetrics);

impl cairn_api::RequestObserver for ApiRequestMetrics {
    fn observe(&self, api: cairn_api::Api, route: &str, status: u16, elapsed: Duration) {
        self.0.observe(api.name(), route, status, elapsed);
    }
}

/// The proxy's `repo/stat`: every peer's IPFS repository, summed.
struct ClusterRepoStat(Arc<ClusterRpc>);

impl ProxyCluster for ClusterRepoStat {
    fn repo_stat_all(&self) -> ApiFuture<'_, RepoStat> {
        Box::pin(async move {
            let facade = Facade(self.0.clone());
            let mut sum = RepoStat::default();
            for (peer, answer) in facade.fan_out(REPO_STAT, Vec::new()).await {
                match answer.and_then(|raw| serde_json::from_slice::<RepoStatAnswer>(&raw).map_err(|e| e.to_string())) {
                    Ok(stat) => {
                        sum.repo_size += stat.repo_size;
                        sum.storage_max += stat.storage_max;
                        sum.num_objects += stat.num_objects;
                    }
                    // IPFS Cluster skips peers that refuse or fail.
                    Err(e) => tracing::debug!(%peer, "repo/stat skipped: {e}"),
                }
            }
            Ok(sum)
        })
    }
}

/// `IPFSConnector.RepoStat`'s answer.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RepoStatAnswer {
    /// Bytes used.
    pub repo_size: u64,
    /// Bytes allowed.
    pub storage_max: u64,
    /// Blocks stored.
    pub num_objects: u64,
}

impl ClusterRpc {
    /// `IPFSConnector.RepoStat`: this peer's IPFS repository size.
    pub(crate) async fn local_repo_stat(&self) -> Result<Vec<u8>, String> {
        let ipfs = self.ipfs()?;
        let stat = tokio::time::timeout(Duration::from_secs(60), ipfs.repo_stat())
            .await
            .map_err(|_| "repo/stat: no answer within 60s".to_string())?
            .map_err(|e| format!("repo/stat: {e}"))?;
        let answer = RepoStatAnswer {
            repo_size: stat.repo_size,
            storage_max: stat.storage_max,
            num_objects: stat.num_objects.unwrap_or(0),
        };
        serde_json::to_vec(&answer).map_err(|e| e.to_string())
    }
}
