//! Listeners and connections: [`crate::serve`] opens one listener per address (TCP or unix
//! socket) and runs HTTP/1.1 on each accepted connection with Go's server timeouts, on the
//! machinery the API servers use ([`cairn_api::listen`]); [`ProxyServer`] reports the bound
//! addresses and shuts everything down.

use std::sync::Arc;

use cairn_api::listen::{self, Accepted};
use cairn_api::{ClusterApi, RequestPolicy};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::ProxyCluster;
use crate::config::ProxyConfig;
use crate::conn::{Activity, ConnIo, Limits};
use crate::error::ProxyError;
use crate::headers::HijackHeaders;
use crate::service::{ConnInfo, Shared, handle};
use crate::trailers::Sentinel;
use crate::upstream::Upstream;

/// A running IPFS proxy.
pub type ProxyServer = cairn_api::ApiServer;

/// Starts the proxy: checks the configuration, binds every address, and serves until
/// [`ProxyServer::shutdown`]. `cluster` answers the hijacked calls, `extras` what
/// [`ClusterApi`] lacks, and `policy` decides every request.
pub async fn serve(
    config: ProxyConfig,
    cluster: Arc<dyn ClusterApi>,
    extras: Arc<dyn ProxyCluster>,
    policy: Arc<dyn RequestPolicy>,
) -> Result<ProxyServer, ProxyError> {
    if config.listen.is_empty() {
        return Err(ProxyError::NoListenAddress);
    }
    let upstream = Upstream::new(&config)?;
    let headers =
        HijackHeaders::new(&config.extract_headers_extra, &config.extract_headers_path, config.extract_headers_ttl)?;
    let bound = listen::bind(&config.listen).await.map_err(|(addr, source)| ProxyError::Bind { addr, source })?;
    for addr in bound.local_addrs() {
        tracing::info!("IPFS Proxy: {addr} -> {}", upstream.node);
    }
    let timeout = config.shutdown_timeout;
    let shared = Arc::new(Shared { config, cluster, extras, policy, upstream, headers, sentinel: Sentinel::new() });
    Ok(ProxyServer::start(bound, "ipfsproxy", timeout, move |accepted, shutdown| {
        connection(accepted, shared.clone(), shutdown)
    }))
}

async fn connection(accepted: Accepted, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let config = &shared.config;
    let activity = Activity::new();
    let info = Arc::new(ConnInfo {
        remote_addr: accepted.remote_addr,
        client_ip: accepted.client_ip,
        activity: activity.clone(),
    });
    let io = ConnIo::new(accepted.io, activity.clone(), shared.sentinel.rewriter());
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let info = info.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(shared, info, req).await) }
        })
    };
    let conn = listen::http1(config.effective_max_header_bytes()).serve_connection(TokioIo::new(io), service);
    let limits = Limits {
        header: config.effective_header_timeout(),
        idle: config.effective_idle_timeout(),
        write: (!config.write_timeout.is_zero()).then_some(config.write_timeout),
    };
    listen::drive(conn, activity, limits, shutdown, "ipfsproxy").await;
}
