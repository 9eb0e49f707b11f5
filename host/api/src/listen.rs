//! What every HTTP server of the peer shares (the REST API, the Pinning Service API, the IPFS
//! proxy): listeners on TCP ports, unix sockets or streams accepted elsewhere ([`bind`],
//! [`Listener`]), the accept loop with its graceful shutdown ([`ApiServer::start`]), and one
//! HTTP/1.1 connection driven under Go's server timeouts ([`http1`], [`drive`]).

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::ListenAddr;
use crate::conn::{Activity, Io, Limits, Phase, watchdog};

/// Go's `bufio` slack on top of `max_header_bytes` (`http.Server.initialReadLimitSize`).
const HEADER_SLACK: usize = 4096;
/// hyper's default limit on the number of request headers is 100; Go has none, so allow more.
const MAX_HEADERS: usize = 256;

/// A byte stream accepted by someone else (a libp2p stream), for [`crate::serve_streams`].
pub trait StreamIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> StreamIo for T {}

/// A connection handed to [`crate::serve_streams`].
pub struct IncomingStream {
    /// The stream.
    pub io: Box<dyn StreamIo>,
    /// The remote address as the policy sees it (e.g. the peer's multiaddress).
    pub remote_addr: String,
    /// The authenticated libp2p peer id of the other side.
    pub peer_id: Option<String>,
}

/// Where a server's connections come from.
pub enum Listener {
    /// A bound TCP port.
    Tcp(TcpListener),
    /// A bound unix socket.
    Unix(UnixListener),
    /// Streams accepted elsewhere; the listener ends when their sender is dropped.
    Streams(mpsc::Receiver<IncomingStream>),
}

/// One accepted connection.
pub struct Accepted {
    /// The byte stream.
    pub io: Box<dyn Io>,
    /// `ip:port`, `@` on a unix socket (as Go reports it), or the stream's remote address.
    pub remote_addr: String,
    /// The client's IP, on TCP.
    pub client_ip: Option<IpAddr>,
    /// The authenticated libp2p peer id, for a libp2p stream.
    pub peer_id: Option<String>,
}

impl Listener {
    /// The next connection; `None` when the listener can give no more (the stream source closed).
    async fn accept(&mut self) -> Option<io::Result<Accepted>> {
        match self {
            Listener::Tcp(l) => Some(l.accept().await.map(|(stream, peer)| {
                // Small NDJSON lines should not wait for Nagle.
                let _ = stream.set_nodelay(true);
                Accepted {
                    io: Box::new(stream),
                    remote_addr: peer.to_string(),
                    client_ip: Some(peer.ip()),
                    peer_id: None,
                }
            })),
            Listener::Unix(l) => Some(l.accept().await.map(|(stream, _)| Accepted {
                io: Box::new(stream),
                remote_addr: "@".to_owned(),
                client_ip: None,
                peer_id: None,
            })),
            Listener::Streams(rx) => rx.recv().await.map(|s| {
                Ok(Accepted { io: Box::new(s.io), remote_addr: s.remote_addr, client_ip: None, peer_id: s.peer_id })
            }),
        }
    }
}

/// Listeners bound to their addresses, not yet serving.
pub struct Bound {
    listeners: Vec<Listener>,
    local_addrs: Vec<ListenAddr>,
    unix_paths: Vec<PathBuf>,
}

impl Bound {
    /// Connections handed over on a channel (no address of its own).
    pub fn streams(incoming: mpsc::Receiver<IncomingStream>) -> Bound {
        Bound { listeners: vec![Listener::Streams(incoming)], local_addrs: Vec::new(), unix_paths: Vec::new() }
    }

    /// The bound addresses, in the given order (TCP ports resolved).
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.local_addrs
    }
}

/// Binds every address; the error names the one that failed.
pub async fn bind(addrs: &[ListenAddr]) -> Result<Bound, (ListenAddr, io::Error)> {
    let mut bound = Bound { listeners: Vec::new(), local_addrs: Vec::new(), unix_paths: Vec::new() };
    for addr in addrs {
        let failed = |e| (addr.clone(), e);
        match addr {
            ListenAddr::Tcp(socket) => {
                let listener = TcpListener::bind(socket).await.map_err(failed)?;
                bound.local_addrs.push(ListenAddr::Tcp(listener.local_addr().map_err(failed)?));
                bound.listeners.push(Listener::Tcp(listener));
            }
            ListenAddr::Unix(path) => {
                let listener = UnixListener::bind(path).map_err(failed)?;
                bound.local_addrs.push(addr.clone());
                bound.unix_paths.push(path.clone());
                bound.listeners.push(Listener::Unix(listener));
            }
        }
    }
    Ok(bound)
}

/// A running HTTP server (the REST API, the Pinning Service API or the IPFS proxy).
#[derive(Debug)]
pub struct ApiServer {
    /// Names the server in logs (`API`, `ipfsproxy`).
    name: &'static str,
    local_addrs: Vec<ListenAddr>,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    unix_paths: Vec<PathBuf>,
}

impl ApiServer {
    /// Serves every listener of `bound`: each accepted connection goes to `serve_conn` with
    /// the shutdown signal. On shutdown, connections get `shutdown_timeout` to finish.
    pub fn start<F, Fut>(bound: Bound, name: &'static str, shutdown_timeout: Duration, serve_conn: F) -> ApiServer
    where
        F: Fn(Accepted, watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let serve_conn = Arc::new(serve_conn);
        let listeners = bound
            .listeners
            .into_iter()
            .map(|listener| {
                let serve = serve_conn.clone();
                tokio::spawn(accept_loop(listener, name, shutdown_timeout, shutdown_rx.clone(), move |a, s| {
                    serve(a, s)
                }))
            })
            .collect();
        ApiServer { name, local_addrs: bound.local_addrs, shutdown, listeners, unix_paths: bound.unix_paths }
    }

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
                tracing::error!("{} listener task panicked: {e}", self.name);
            }
        }
        self.remove_unix_sockets();
    }

    fn remove_unix_sockets(&mut self) {
        for path in self.unix_paths.drain(..) {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), "removing {} socket: {e}", self.name);
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

/// Resolves once shutdown is signalled (or the server is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn accept_loop<F, Fut>(
    mut listener: Listener,
    name: &'static str,
    shutdown_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    serve_conn: F,
) where
    F: Fn(Accepted, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    let for_connections = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Some(Ok(accepted)) => {
                    connections.spawn(serve_conn(accepted, for_connections.clone()));
                }
                None => break,
                Some(Err(e)) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!("{name} accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    // Connections saw the same signal and close once their current response is out.
    let deadline = tokio::time::sleep(shutdown_timeout);
    tokio::pin!(deadline);
    while !connections.is_empty() {
        tokio::select! {
            _ = connections.join_next() => {}
            _ = &mut deadline => {
                tracing::warn!(open = connections.len(), "{name} shutdown timeout; closing connections");
                connections.abort_all();
                while connections.join_next().await.is_some() {}
            }
        }
    }
}

/// The HTTP/1.1 connection settings every server uses, with Go's header size limit.
pub fn http1(max_header_bytes: usize) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        // The watchdog applies Go's header and idle timeouts; hyper's would cut idle connections.
        .header_read_timeout(None)
        .max_header_size(max_header_bytes + HEADER_SLACK)
        .max_headers(MAX_HEADERS)
        // Flat writes are what the trailer rewriting relies on (see trailers.rs).
        .writev(false);
    builder
}

/// Runs one connection to its end: an idle keep-alive connection and a shutdown close it
/// politely (after the current response); a head or response over its time limit drops it,
/// as Go's deadlines do. `name` labels the debug logs.
pub async fn drive<I, S, B>(
    conn: http1::Connection<I, S>,
    activity: Arc<Activity>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    name: &str,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    tokio::pin!(conn);
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
                    tracing::debug!("{name} connection ended: {e}");
                }
                return;
            }
            phase = &mut dog, if !closing => match phase {
                Phase::Idle => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Phase::ReadingHead | Phase::Busy => {
                    tracing::debug!(?phase, "{name} connection timed out");
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
