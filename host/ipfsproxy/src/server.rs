//! Listeners and connections: [`crate::serve`] opens one listener per address (TCP or unix
//! socket) and runs HTTP/1.1 on each accepted connection with Go's server timeouts;
//! [`ProxyServer`] reports the bound addresses and shuts everything down.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_api::{ClusterApi, ListenAddr, RequestPolicy};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::ProxyCluster;
use crate::config::ProxyConfig;
use crate::conn::{Activity, ConnIo, Io, Limits, Phase, watchdog};
use crate::error::ProxyError;
use crate::headers::HijackHeaders;
use crate::service::{ConnInfo, Shared, handle};
use crate::trailers::Sentinel;
use crate::upstream::Upstream;

/// Go's `bufio` slack on top of `max_header_bytes` (`http.Server.initialReadLimitSize`).
const HEADER_SLACK: usize = 4096;
/// hyper's default limit on the number of request headers is 100; Go has none, so allow more.
const MAX_HEADERS: usize = 256;

/// A running IPFS proxy.
#[derive(Debug)]
pub struct ProxyServer {
    local_addrs: Vec<ListenAddr>,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    unix_paths: Vec<PathBuf>,
}

impl ProxyServer {
    /// The bound addresses, in configuration order (TCP ports resolved).
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.local_addrs
    }

    /// Stops accepting, lets in-flight requests finish (up to `shutdown_timeout`, then their
    /// connections are closed), and removes unix socket files.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for listener in self.listeners.drain(..) {
            if let Err(e) = listener.await
                && e.is_panic()
            {
                tracing::error!("ipfsproxy listener task panicked: {e}");
            }
        }
        self.remove_unix_sockets();
    }

    fn remove_unix_sockets(&mut self) {
        for path in self.unix_paths.drain(..) {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), "removing ipfsproxy socket: {e}");
            }
        }
    }
}

impl Drop for ProxyServer {
    /// A server dropped without [`ProxyServer::shutdown`] stops too, without waiting.
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        self.remove_unix_sockets();
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    async fn accept(&self) -> io::Result<(Box<dyn Io>, String, Option<std::net::IpAddr>)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                // Small NDJSON lines should not wait for Nagle.
                let _ = stream.set_nodelay(true);
                Ok((Box::new(stream), peer.to_string(), Some(peer.ip())))
            }
            // Go reports a unix socket client as "@".
            Listener::Unix(l) => {
                l.accept().await.map(|(stream, _)| (Box::new(stream) as Box<dyn Io>, "@".to_owned(), None))
            }
        }
    }
}

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

    let mut bound = Vec::new();
    let mut local_addrs = Vec::new();
    let mut unix_paths = Vec::new();
    for addr in &config.listen {
        let bind_error = |source| ProxyError::Bind { addr: addr.clone(), source };
        match addr {
            ListenAddr::Tcp(socket) => {
                let listener = TcpListener::bind(socket).await.map_err(bind_error)?;
                local_addrs.push(ListenAddr::Tcp(listener.local_addr().map_err(bind_error)?));
                bound.push(Listener::Tcp(listener));
            }
            ListenAddr::Unix(path) => {
                let listener = UnixListener::bind(path).map_err(bind_error)?;
                local_addrs.push(addr.clone());
                unix_paths.push(path.clone());
                bound.push(Listener::Unix(listener));
            }
        }
    }

    let (shutdown, shutdown_rx) = watch::channel(false);
    let node = upstream.node.clone();
    let shared = Arc::new(Shared { config, cluster, extras, policy, upstream, headers, sentinel: Sentinel::new() });
    let listeners = bound
        .into_iter()
        .zip(&local_addrs)
        .map(|(listener, addr)| {
            tracing::info!("IPFS Proxy: {addr} -> {node}");
            tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx.clone()))
        })
        .collect();
    Ok(ProxyServer { local_addrs, shutdown, listeners, unix_paths })
}

/// Resolves once shutdown is signalled (or the server is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn accept_loop(listener: Listener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let for_connections = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote, ip)) => {
                    connections.spawn(connection(stream, remote, ip, shared.clone(), for_connections.clone()));
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!("ipfsproxy accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    // Connections saw the same signal and close once their current response is out.
    let deadline = tokio::time::sleep(shared.config.shutdown_timeout);
    tokio::pin!(deadline);
    while !connections.is_empty() {
        tokio::select! {
            _ = connections.join_next() => {}
            _ = &mut deadline => {
                tracing::warn!(open = connections.len(), "ipfsproxy shutdown timeout; closing connections");
                connections.abort_all();
                while connections.join_next().await.is_some() {}
            }
        }
    }
}

async fn connection(
    stream: Box<dyn Io>,
    remote_addr: String,
    client_ip: Option<std::net::IpAddr>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let activity = Activity::new();
    let info = Arc::new(ConnInfo { remote_addr, client_ip, activity: activity.clone() });
    let io = ConnIo::new(stream, activity.clone(), shared.sentinel.rewriter());
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let info = info.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(shared, info, req).await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        // Our watchdog applies Go's header and idle timeouts; hyper's would cut idle connections.
        .header_read_timeout(None)
        .max_header_size(config.effective_max_header_bytes() + HEADER_SLACK)
        .max_headers(MAX_HEADERS)
        // Flat writes are what the trailer rewriting relies on (see trailers.rs).
        .writev(false);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);

    let limits = Limits {
        header: config.effective_header_timeout(),
        idle: config.effective_idle_timeout(),
        write: (!config.write_timeout.is_zero()).then_some(config.write_timeout),
    };
    let dog = watchdog(activity, limits);
    tokio::pin!(dog);
    let mut closing = *shutdown.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("ipfsproxy connection ended: {e}");
                }
                return;
            }
            phase = &mut dog, if !closing => match phase {
                // Idle keep-alive connection: close it politely.
                Phase::Idle => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                // A head or a response that takes too long: drop the connection, as Go's
                // deadlines do.
                Phase::ReadingHead | Phase::Busy => {
                    tracing::debug!(?phase, "ipfsproxy connection timed out");
                    return;
                }
            },
            _ = stopped(&mut shutdown), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
