//! Listeners and connections: [`serve`] opens one listener per address (TCP or unix socket,
//! optionally TLS) and runs HTTP/1.1 on each accepted connection; [`ApiServer`] reports the
//! bound addresses and shuts everything down.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::cluster::ClusterApi;
use crate::config::{ListenAddr, ServerConfig};
use crate::conn::{Activity, ConnIo, Io, Limits, Phase, watchdog};
use crate::error::ServeError;
use crate::policy::{Api, RequestPolicy};
use crate::response::Common;
use crate::service::{App, ConnInfo, Shared, handle};
use crate::tls;
use crate::trailers::Sentinel;

/// Go's `bufio` slack on top of `max_header_bytes` (`http.Server.initialReadLimitSize`).
const HEADER_SLACK: usize = 4096;
/// hyper's default limit on the number of request headers is 100; Go has none, so allow more.
const MAX_HEADERS: usize = 256;

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    local_addrs: Vec<ListenAddr>,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    unix_paths: Vec<PathBuf>,
}

impl ApiServer {
    /// The bound addresses, in configuration order (TCP ports resolved).
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.local_addrs
    }

    /// Stops accepting, lets in-flight requests finish (up to the configured
    /// `shutdown_timeout`, after which their connections are closed), and removes unix socket
    /// files.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for listener in self.listeners.drain(..) {
            if let Err(e) = listener.await
                && e.is_panic()
            {
                tracing::error!("API listener task panicked: {e}");
            }
        }
        self.remove_unix_sockets();
    }

    fn remove_unix_sockets(&mut self) {
        for path in self.unix_paths.drain(..) {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), "removing API socket: {e}");
            }
        }
    }
}

impl Drop for ApiServer {
    /// A server dropped without [`ApiServer::shutdown`] stops too, without waiting.
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        self.remove_unix_sockets();
    }
}

/// A byte stream accepted by someone else (a libp2p stream), for [`serve_streams`].
pub trait StreamIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> StreamIo for T {}

/// A connection handed to [`serve_streams`].
pub struct IncomingStream {
    /// The stream.
    pub io: Box<dyn StreamIo>,
    /// The remote address as the policy sees it (e.g. the peer's multiaddress).
    pub remote_addr: String,
    /// The authenticated libp2p peer id of the other side.
    pub peer_id: Option<String>,
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
    Streams(mpsc::Receiver<IncomingStream>),
}

/// An accepted connection: the stream, the remote address, the remote peer id.
type Accepted = (Box<dyn Io>, String, Option<String>);

impl Listener {
    /// The next connection; `None` when the listener can give no more (the stream source closed).
    async fn accept(&mut self) -> Option<io::Result<Accepted>> {
        match self {
            Listener::Tcp(l) => Some(l.accept().await.map(|(stream, peer)| {
                // Small NDJSON lines should not wait for Nagle.
                let _ = stream.set_nodelay(true);
                (Box::new(stream) as Box<dyn Io>, peer.to_string(), None)
            })),
            // Go reports a unix socket client as "@".
            Listener::Unix(l) => {
                Some(l.accept().await.map(|(stream, _)| (Box::new(stream) as Box<dyn Io>, "@".to_owned(), None)))
            }
            Listener::Streams(rx) => {
                rx.recv().await.map(|s| Ok((Box::new(s.io) as Box<dyn Io>, s.remote_addr, s.peer_id)))
            }
        }
    }
}

/// Serves the REST API on connections accepted elsewhere (the libp2p-http host), as
/// [`Api::Libp2pHttp`]: the same routes, auth and CORS as [`serve`], with the remote peer id
/// given to the policy. `config.listen` and `config.tls` are ignored (libp2p encrypts).
pub async fn serve_streams(
    mut config: ServerConfig,
    api: Arc<dyn ClusterApi>,
    policy: Arc<dyn RequestPolicy>,
    incoming: mpsc::Receiver<IncomingStream>,
) -> Result<ApiServer, ServeError> {
    config.api = Api::Libp2pHttp;
    config.tls = None;
    let common = Common { headers: configured_headers(&config)? };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared { config, api, policy, common, sentinel: Sentinel::new(), app: App::Rest });
    let listener = tokio::spawn(accept_loop(Listener::Streams(incoming), shared, None, shutdown_rx));
    Ok(ApiServer { local_addrs: Vec::new(), shutdown, listeners: vec![listener], unix_paths: Vec::new() })
}

/// Starts the REST API server: checks the configuration (TLS files, headers), binds every
/// address, and serves until [`ApiServer::shutdown`].
pub async fn serve(
    config: ServerConfig,
    api: Arc<dyn ClusterApi>,
    policy: Arc<dyn RequestPolicy>,
) -> Result<ApiServer, ServeError> {
    start(config, api, policy, App::Rest).await
}

/// Starts the Pinning Service API server (`api.pinsvcapi`) on the same machinery as [`serve`]:
/// listeners, TLS, timeouts, the policy's auth and CORS, `POST /token` and `GET /health`.
/// `config.api` is set to [`Api::Pinsvcapi`], so the policy always sees which API is asked.
pub async fn serve_pinsvc(
    mut config: ServerConfig,
    api: Arc<dyn ClusterApi>,
    policy: Arc<dyn RequestPolicy>,
) -> Result<ApiServer, ServeError> {
    config.api = Api::Pinsvcapi;
    start(config, api, policy, App::PinSvc).await
}

async fn start(
    config: ServerConfig,
    api: Arc<dyn ClusterApi>,
    policy: Arc<dyn RequestPolicy>,
    app: App,
) -> Result<ApiServer, ServeError> {
    if config.listen.is_empty() {
        return Err(ServeError::NoListenAddress);
    }
    let tls = config.tls.as_ref().map(tls::server_config).transpose()?.map(TlsAcceptor::from);
    let common = Common { headers: configured_headers(&config)? };

    let mut bound = Vec::new();
    let mut local_addrs = Vec::new();
    let mut unix_paths = Vec::new();
    for addr in &config.listen {
        let bind_error = |source| ServeError::Bind { addr: addr.clone(), source };
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
    let shared = Arc::new(Shared { config, api, policy, common, sentinel: Sentinel::new(), app });
    let listeners = bound
        .into_iter()
        .zip(&local_addrs)
        .map(|(listener, addr)| {
            tracing::info!(api = shared.config.api.name(), tls = tls.is_some(), "API listening on {addr}");
            tokio::spawn(accept_loop(listener, shared.clone(), tls.clone(), shutdown_rx.clone()))
        })
        .collect();
    Ok(ApiServer { local_addrs, shutdown, listeners, unix_paths })
}

fn configured_headers(config: &ServerConfig) -> Result<HeaderMap, ServeError> {
    let mut headers = HeaderMap::new();
    for (name, values) in &config.headers {
        let invalid = |reason: String| ServeError::InvalidHeader { name: name.clone(), reason };
        let header = HeaderName::try_from(name.as_str()).map_err(|e| invalid(e.to_string()))?;
        for value in values {
            headers.append(&header, HeaderValue::try_from(value.as_str()).map_err(|e| invalid(e.to_string()))?);
        }
    }
    Ok(headers)
}

/// Resolves once shutdown is signalled (or the server is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn accept_loop(
    mut listener: Listener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let for_connections = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Some(Ok((stream, remote, peer_id))) => {
                    let conn = connection(stream, remote, peer_id, shared.clone(), tls.clone(), for_connections.clone());
                    connections.spawn(conn);
                }
                None => break,
                Some(Err(e)) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!("API accept failed: {e}");
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
                tracing::warn!(open = connections.len(), "API shutdown timeout; closing connections");
                connections.abort_all();
                while connections.join_next().await.is_some() {}
            }
        }
    }
}

async fn connection(
    stream: Box<dyn Io>,
    remote_addr: String,
    peer_id: Option<String>,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let header_timeout = config.effective_header_timeout();
    let (stream, client_cert_subject): (Box<dyn Io>, Option<String>) = match tls {
        None => (stream, None),
        Some(acceptor) => {
            let handshake = acceptor.accept(stream);
            let result = match header_timeout {
                Some(limit) => match tokio::time::timeout(limit, handshake).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::debug!(remote = %remote_addr, "TLS handshake timeout");
                        return;
                    }
                },
                None => handshake.await,
            };
            match result {
                Ok(stream) => {
                    let subject =
                        stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| tls::subject_of(c));
                    (Box::new(stream), subject)
                }
                Err(e) => {
                    tracing::debug!(remote = %remote_addr, "TLS handshake failed: {e}");
                    return;
                }
            }
        }
    };

    let activity = Activity::new();
    let info = Arc::new(ConnInfo {
        remote_addr,
        peer_id,
        tls: config.tls.is_some(),
        client_cert_subject,
        activity: activity.clone(),
    });
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
        header: header_timeout,
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
                    tracing::debug!("API connection ended: {e}");
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
                    tracing::debug!(?phase, "API connection timed out");
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
