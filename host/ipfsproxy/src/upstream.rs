//! The HTTP client to the IPFS daemon (`node_multiaddress`): TCP or a unix socket, optionally
//! HTTPS (`node_https`), with pooled keep-alive connections. Every request the proxy sends to the
//! daemon goes through [`Upstream`]: forwarded calls, the CORS and extract-headers probes, the
//! replayed `block/put` and `dag/put`, and `resolve` for `pin/update`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cairn_api::Cid;
use cairn_ipfs::DaemonAddr;
use futures::future::BoxFuture;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

use crate::config::ProxyConfig;
use crate::conn::Io;
use crate::error::ProxyError;

/// Error type of bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of requests to the daemon.
pub(crate) type ReqBody = UnsyncBoxBody<Bytes, BoxError>;

/// Go's `net.Dialer` timeout in `http.DefaultTransport`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Kubo and js-ipfs close idle keep-alive connections after a few seconds; reusing one just as
/// the daemon closes it fails the request, so idle ones are dropped sooner.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Error bodies (of `resolve`) are read up to this size.
const MAX_SMALL_BODY: usize = 1 << 20;

/// The daemon behind the proxy.
pub(crate) struct Upstream {
    client: Client<Connector, ReqBody>,
    /// `http://host:port` (or a nominal host for a unix socket); TLS is the connector's business.
    base: String,
    /// The daemon as configured, for messages.
    pub(crate) node: String,
}

impl Upstream {
    /// Builds the client (and the TLS configuration for `node_https`).
    pub(crate) fn new(config: &ProxyConfig) -> Result<Self, ProxyError> {
        let (base, node, server_name) = match &config.node {
            DaemonAddr::Tcp { host, port } if host.contains(':') => {
                (format!("http://[{host}]:{port}"), format!("[{host}]:{port}"), host.clone())
            }
            DaemonAddr::Tcp { host, port } => (format!("http://{host}:{port}"), format!("{host}:{port}"), host.clone()),
            DaemonAddr::Unix(path) => {
                ("http://localhost".to_owned(), format!("unix:{}", path.display()), "localhost".to_owned())
            }
        };
        let tls = if config.node_https {
            let name = ServerName::try_from(server_name.clone())
                .map_err(|e| ProxyError::Config(format!("node_multiaddress host {server_name:?}: {e}")))?;
            Some((tls_connector(config)?, name))
        } else {
            None
        };
        let scheme = if config.node_https { "https" } else { "http" };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(Connector { addr: Arc::new(config.node.clone()), tls });
        Ok(Self { client, base, node: format!("{scheme}://{node}") })
    }

    /// The daemon URI of a path (with its query), as the client was given it.
    pub(crate) fn uri(&self, path_and_query: &str) -> Result<Uri, String> {
        format!("{}{path_and_query}", self.base).parse().map_err(|e| format!("invalid request URL: {e}"))
    }

    /// Sends a request; the error is a readable reason.
    pub(crate) async fn send(&self, request: Request<ReqBody>) -> Result<Response<Incoming>, String> {
        self.client
            .request(request)
            .await
            .map_err(|e| format!("cannot reach the IPFS daemon at {}: {}", self.node, error_chain(&e)))
    }

    /// Sends a request without a body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
    ) -> Result<Response<Incoming>, String> {
        let mut request = Request::new(empty_body());
        *request.method_mut() = method;
        *request.uri_mut() = self.uri(path_and_query)?;
        *request.headers_mut() = headers;
        self.send(request).await
    }

    /// Resolves an IPFS path to its CID, as IPFS Cluster's connector does: `/ipfs/<cid>` with no
    /// sub-path is taken as it is, anything else is asked of the daemon's `resolve`, whose answer
    /// must be an immutable `/ipfs/<cid>` path.
    pub(crate) async fn resolve(&self, path: &str) -> Result<Cid, String> {
        if let Some(rest) = path.strip_prefix("/ipfs/")
            && !rest.contains('/')
            && let Ok(cid) = Cid::parse(rest)
        {
            return Ok(cid);
        }
        let query = format!("/api/v0/resolve?arg={}", query_escape(path));
        let response = self.call(Method::POST, &query, HeaderMap::new()).await?;
        let status = response.status();
        let body = read_small(response.into_body()).await.map_err(|e| format!("resolve {path}: {e}"))?;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let message = value
                .get("Message")
                .and_then(|m| m.as_str())
                .map_or_else(|| String::from_utf8_lossy(&body).trim().chars().take(512).collect(), str::to_owned);
            return Err(message);
        }
        let resolved = value
            .get("Path")
            .and_then(|p| p.as_str())
            .ok_or_else(|| format!("resolve {path}: the daemon's answer has no Path"))?;
        let root = resolved
            .strip_prefix("/ipfs/")
            .map(|rest| rest.split('/').next().unwrap_or(""))
            .ok_or_else(|| format!("resolve {path}: {resolved:?} is not an immutable path"))?;
        Cid::parse(root).map_err(|e| format!("resolve {path}: invalid CID in {resolved:?}: {}", e.source))
    }
}

/// An empty request body.
pub(crate) fn empty_body() -> ReqBody {
    Empty::new().map_err(|e: std::convert::Infallible| match e {}).boxed_unsync()
}

/// Reads a small body whole (up to [`MAX_SMALL_BODY`]).
pub(crate) async fn read_small(body: Incoming) -> Result<Bytes, String> {
    let limited = http_body_util::Limited::new(body, MAX_SMALL_BODY);
    limited.collect().await.map(|c| c.to_bytes()).map_err(|e| format!("reading the daemon's answer: {e}"))
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An error with its causes, `outer: inner: root` (hyper's own Display hides the root cause).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn tls_connector(config: &ProxyConfig) -> Result<TlsConnector, ProxyError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!("node_https: reading the system trust store: {e}");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = &config.node_ca_file {
        let fail = |reason: String| ProxyError::Tls { path: Some(path.clone()), reason };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| fail(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        if certs.is_empty() {
            return Err(fail("no PEM certificate found".to_owned()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| fail(e.to_string()))?;
        }
    }
    if roots.is_empty() {
        return Err(ProxyError::Tls { path: None, reason: "no trusted CA certificate found".to_owned() });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls { path: None, reason: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(tls)))
}

/// Connects every request to the configured daemon, whatever the URL says (for a unix socket
/// the URL carries a nominal host), with TLS on top for `node_https`.
#[derive(Clone)]
struct Connector {
    addr: Arc<DaemonAddr>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = NodeIo;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<NodeIo>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let connect = async {
                let stream: Box<dyn Io> = match &*this.addr {
                    DaemonAddr::Tcp { host, port } => {
                        let stream = TcpStream::connect((host.as_str(), *port)).await?;
                        // Small NDJSON lines and probes should not wait for Nagle.
                        stream.set_nodelay(true)?;
                        match &this.tls {
                            Some((tls, name)) => Box::new(tls.connect(name.clone(), stream).await?),
                            None => Box::new(stream),
                        }
                    }
                    DaemonAddr::Unix(path) => {
                        let stream = UnixStream::connect(path).await?;
                        match &this.tls {
                            Some((tls, name)) => Box::new(tls.connect(name.clone(), stream).await?),
                            None => Box::new(stream),
                        }
                    }
                };
                Ok::<_, io::Error>(stream)
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(stream) => Ok(NodeIo(TokioIo::new(stream?))),
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timeout")),
            }
        })
    }
}

/// A connection to the daemon.
struct NodeIo(TokioIo<Box<dyn Io>>);

impl Connection for NodeIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for NodeIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for NodeIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_escape_is_gos() {
        assert_eq!(query_escape("/ipfs/Qm x/a&b=c~"), "%2Fipfs%2FQm+x%2Fa%26b%3Dc~");
    }

    #[test]
    fn addresses_and_names() {
        let config = ProxyConfig { node: DaemonAddr::Tcp { host: "::1".into(), port: 5001 }, ..ProxyConfig::default() };
        let up = Upstream::new(&config).expect("client");
        assert_eq!(up.uri("/api/v0/id?x=1").expect("uri").to_string(), "http://[::1]:5001/api/v0/id?x=1");
        assert_eq!(up.node, "http://[::1]:5001");
        let config = ProxyConfig { node: DaemonAddr::Unix("/tmp/api.sock".into()), ..ProxyConfig::default() };
        assert_eq!(Upstream::new(&config).expect("client").node, "http://unix:/tmp/api.sock");
    }
}
