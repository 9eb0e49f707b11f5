//! What every HTTP server of the peer shares (the REST API, the Pinning Service API, the IPFS
//! proxy): listeners on TCP ports, unix sockets or streams accepted elsewhere ([`bind`],
//! [`Listener`]), the accept loop with its back-off and graceful shutdown ([`ApiServer::start`]),
//! and one HTTP/1.1 connection driven under Go's server timeouts ([`http1`], [`drive`]);
//! [`serve_plain`] puts them together for a plain endpoint (the metrics).

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
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::{ListenAddr, ServerConfig};
use crate::conn::{Activity, ConnIo, Io, Limits, Phase, TrackedBody, watchdog};
use crate::trailers::Sentinel;

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

/// Where [`accept_loop`] takes connections from: a [`Listener`] (or a fake, in tests).
trait Accept: Send {
    /// The next connection; `None` when the source can give no more.
    fn next(&mut self) -> impl Future<Output = Option<io::Result<Accepted>>> + Send;
}

impl Accept for Listener {
    fn next(&mut self) -> impl Future<Output = Option<io::Result<Accepted>>> + Send {
        self.accept()
    }
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

/// Serves `handler` on `bound` with what every API server has: the accept loop (with its
/// back-off and graceful shutdown), the HTTP/1.1 settings and Go's timeouts of `config`
/// (header, idle, write, `max_header_bytes`, `shutdown_timeout`; its other fields are not
/// used). For plain-HTTP endpoints that answer at once, such as the Prometheus metrics.
pub fn serve_plain<H, B>(bound: Bound, name: &'static str, config: &ServerConfig, handler: H) -> ApiServer
where
    H: Fn(Request<Incoming>) -> Response<B> + Send + Sync + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let handler = Arc::new(handler);
    let max_header_bytes = config.effective_max_header_bytes();
    let limits = Limits {
        header: config.effective_header_timeout(),
        idle: config.effective_idle_timeout(),
        write: (!config.write_timeout.is_zero()).then_some(config.write_timeout),
    };
    // No response here carries trailers; the connection's writer still needs a nonce.
    let sentinel = Sentinel::new();
    ApiServer::start(bound, name, config.shutdown_timeout, move |accepted, shutdown| {
        let activity = Activity::new();
        let io = ConnIo::new(accepted.io, activity.clone(), sentinel.rewriter());
        let handler = handler.clone();
        let busy = activity.clone();
        let service = hyper::service::service_fn(move |req| {
            // Busy until the body is out, so the write limit (not the header one) applies.
            let guard = busy.request_started();
            let response = handler(req).map(|body| TrackedBody::new(body, guard));
            std::future::ready(Ok::<_, std::convert::Infallible>(response))
        });
        let conn = http1(max_header_bytes).serve_connection(TokioIo::new(io), service);
        drive(conn, activity, limits, shutdown, name)
    })
}

/// Resolves once shutdown is signalled (or the server is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn accept_loop<L, F, Fut>(
    mut listener: L,
    name: &'static str,
    shutdown_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    serve_conn: F,
) where
    L: Accept,
    F: Fn(Accepted, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    let for_connections = shutdown.clone();
    let mut backoff = AcceptBackoff::default();
    // A failed accept pauses accepting only: finished connections and shutdown are still seen.
    let pause = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(pause);
    let mut paused = false;
    loop {
        tokio::select! {
            accepted = listener.next(), if !paused => match accepted {
                Some(Ok(accepted)) => {
                    backoff.reset();
                    connections.spawn(serve_conn(accepted, for_connections.clone()));
                }
                None => break,
                Some(Err(e)) => {
                    // Usually EMFILE/ENFILE: retrying at once would spin until a descriptor frees.
                    let delay = backoff.next_delay();
                    tracing::warn!("{name} accept failed: {e}; retrying in {delay:?}");
                    pause.as_mut().reset(tokio::time::Instant::now() + delay);
                    paused = true;
                }
            },
            () = &mut pause, if paused => paused = false,
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

/// The pause after a failed accept, as Go's `http.Server.Serve`: 5ms, doubling up to 1s, back
/// to 5ms after a successful accept.
#[derive(Debug, Default)]
struct AcceptBackoff {
    last: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// The pause before the next attempt, after one more failure.
    fn next_delay(&mut self) -> Duration {
        let delay = match self.last {
            None => Self::FIRST,
            Some(last) => last.saturating_mul(2).min(Self::MAX),
        };
        self.last = Some(delay);
        delay
    }

    /// An accept succeeded.
    fn reset(&mut self) {
        self.last = None;
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;

    /// What the fake listener does at each accept.
    #[derive(Clone, Copy)]
    enum Step {
        /// Fails as `accept(2)` does when the process is out of file descriptors.
        OutOfFds,
        /// Hands over a connection.
        Connect,
    }

    /// Plays `script`, then ends; records when it was asked.
    struct Scripted {
        script: VecDeque<Step>,
        calls: Arc<Mutex<Vec<Instant>>>,
    }

    impl Accept for Scripted {
        // Recorded when polled (an async fn's body runs then): select! may create a disabled
        // branch's future without polling it.
        async fn next(&mut self) -> Option<io::Result<Accepted>> {
            self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(Instant::now());
            self.script.pop_front().map(|step| match step {
                // EMFILE on Linux.
                Step::OutOfFds => Err(io::Error::from_raw_os_error(24)),
                Step::Connect => Ok(Accepted {
                    io: Box::new(tokio::io::duplex(64).0),
                    remote_addr: "fake".into(),
                    client_ip: None,
                    peer_id: None,
                }),
            })
        }
    }

    fn scripted(script: impl IntoIterator<Item = Step>) -> (Scripted, Arc<Mutex<Vec<Instant>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        (Scripted { script: script.into_iter().collect(), calls: calls.clone() }, calls)
    }

    /// Milliseconds between consecutive accepts.
    fn gaps(calls: &Mutex<Vec<Instant>>) -> Vec<u128> {
        let calls = calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_exponentially_and_a_success_resets_it() {
        use Step::*;
        let (listener, calls) = scripted([OutOfFds; 10].into_iter().chain([Connect, OutOfFds, OutOfFds]));
        let (_stop, shutdown) = watch::channel(false);
        accept_loop(listener, "test", Duration::ZERO, shutdown, |_, _| async {}).await;
        // As Go's http.Server: 5ms doubling up to 1s; an accepted connection starts over.
        assert_eq!(gaps(&calls), [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 0, 5, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_is_not_held_up_by_a_back_off_pause() {
        let (listener, _calls) = scripted(std::iter::repeat_with(|| Step::OutOfFds).take(100));
        let (stop, shutdown) = watch::channel(false);
        let start = Instant::now();
        let looping = tokio::spawn(accept_loop(listener, "test", Duration::ZERO, shutdown, |_, _| async {}));
        // 1550ms falls inside the 1s pause that starts at 1275ms.
        tokio::time::sleep(Duration::from_millis(1550)).await;
        stop.send_replace(true);
        looping.await.expect("accept loop");
        assert_eq!(start.elapsed().as_millis(), 1550);
    }
}
