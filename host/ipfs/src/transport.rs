//! HTTP/1.1 to one daemon over TCP or a unix socket: request building (query, extra headers, Basic
//! credentials), IPFS Cluster's throttling after repeated transport failures, Kubo error decoding
//! and an incremental reader for streamed (NDJSON) answers.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use futures::future::BoxFuture;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::config::{DaemonAddr, IpfsHttpConfig};
use crate::error::{IpfsError, Result};
use crate::parse;

/// After this many consecutive transport failures, requests are throttled (IPFS Cluster: 10).
pub(crate) const FAILED_REQUESTS_THRESHOLD: u32 = 10;
/// While throttled, at most one request per this interval (IPFS Cluster: 1 per second).
pub(crate) const THROTTLE_INTERVAL: Duration = Duration::from_secs(1);
/// Error bodies are read up to this size; the rest is dropped (a message is one line).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The HTTP side of the connector, shared by every call.
pub(crate) struct Transport {
    client: Client<DaemonConnector, Full<Bytes>>,
    base_url: String,
    /// The configured multiaddr, named in every error.
    pub(crate) daemon: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    failures: AtomicU32,
    /// When the last throttled request went out.
    throttle: Mutex<Option<Instant>>,
}

impl Transport {
    /// Builds the client; fails on an unusable address, header or credential.
    pub(crate) fn new(config: &IpfsHttpConfig) -> Result<Transport> {
        let addr = config.validate()?;
        let mut headers = Vec::with_capacity(config.headers.len() + 1);
        for (name, value) in &config.headers {
            // validate() accepted both, so these conversions only fail if it is changed carelessly.
            let name = HeaderName::try_from(name.as_str()).map_err(|e| IpfsError::Config(format!("headers: {e}")))?;
            let value =
                HeaderValue::try_from(value.as_str()).map_err(|e| IpfsError::Config(format!("headers: {e}")))?;
            headers.push((name, value));
        }
        if let Some(auth) = &config.basic_auth {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", auth.username, auth.password));
            let mut value = HeaderValue::try_from(format!("Basic {token}"))
                .map_err(|_| IpfsError::Config("basic_auth: credentials do not fit in a header".to_owned()))?;
            value.set_sensitive(true);
            headers.push((AUTHORIZATION, value));
        }
        let base_url = addr.base_url();
        let client = Client::builder(TokioExecutor::new())
            // Kubo and js-ipfs close idle keep-alive connections after a few seconds; reusing one
            // just as the server closes it fails the request, so idle ones are dropped sooner.
            .pool_idle_timeout(Duration::from_secs(4))
            .build(DaemonConnector { addr: Arc::new(addr) });
        Ok(Transport {
            client,
            base_url,
            daemon: config.node_multiaddress.clone(),
            headers,
            failures: AtomicU32::new(0),
            throttle: Mutex::new(None),
        })
    }

    /// Sends `POST /api/v0/<call>?<query>` and returns the response if it is 2xx; any other status
    /// becomes [`IpfsError::Daemon`] with the daemon's message. No timeout here: callers bound it.
    /// Each request is an `ipfs.request` span and counts in `cairn_ipfs_requests` (its time
    /// until the response head in `cairn_ipfs_request_duration_seconds`).
    pub(crate) async fn post(
        &self,
        call: &'static str,
        query: &[(&str, String)],
        body: Option<(String, Bytes)>,
    ) -> Result<Response<Incoming>> {
        let span = tracing::info_span!("ipfs.request", endpoint = call, status = tracing::field::Empty);
        let started = std::time::Instant::now();
        let result = self.send(call, query, body).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(response) => {
                span.record("status", response.status().as_u16());
                "ok"
            }
            Err(IpfsError::Daemon { status, .. }) => {
                span.record("status", status);
                "http_error"
            }
            Err(IpfsError::Unreachable { .. }) => "unreachable",
            Err(_) => "error",
        };
        cairn_telemetry::IpfsMetrics::global().request(call, outcome, started.elapsed());
        result
    }

    async fn send(
        &self,
        call: &'static str,
        query: &[(&str, String)],
        body: Option<(String, Bytes)>,
    ) -> Result<Response<Incoming>> {
        let mut url = format!("{}/api/v0/{call}", self.base_url);
        if !query.is_empty() {
            let mut ser = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                ser.append_pair(k, v);
            }
            url.push('?');
            url.push_str(&ser.finish());
        }
        let uri: Uri = url.parse().map_err(|e| self.malformed(call, format!("cannot build the request URL: {e}")))?;
        let mut builder = Request::builder().method(Method::POST).uri(uri);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let body = match body {
            Some((content_type, bytes)) => {
                builder = builder.header(CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(body).map_err(|e| self.malformed(call, format!("cannot build the request: {e}")))?;

        self.throttle_if_failing().await;
        let response = match self.client.request(request).await {
            Ok(response) => {
                self.failures.store(0, Ordering::Relaxed);
                response
            }
            Err(err) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures == FAILED_REQUESTS_THRESHOLD + 1 {
                    tracing::warn!(daemon = %self.daemon, failures, "IPFS daemon keeps failing; throttling requests to 1/s");
                }
                return Err(IpfsError::Unreachable { call, daemon: self.daemon.clone(), reason: error_chain(&err) });
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = read_limited(response.into_body(), MAX_ERROR_BODY).await.unwrap_or_default();
        let (mut message, code) = parse::error_body(&body);
        if message.is_empty() {
            message = status.canonical_reason().unwrap_or("error").to_owned();
        }
        Err(IpfsError::Daemon { call, daemon: self.daemon.clone(), status: status.as_u16(), message, code })
    }

    /// Sends a call and reads its whole answer.
    pub(crate) async fn post_bytes(
        &self,
        call: &'static str,
        query: &[(&str, String)],
        body: Option<(String, Bytes)>,
    ) -> Result<Bytes> {
        let response = self.post(call, query, body).await?;
        let trailers_error = |message: String| IpfsError::Daemon {
            call,
            daemon: self.daemon.clone(),
            status: StatusCode::OK.as_u16(),
            message,
            code: None,
        };
        let collected = response.into_body().collect().await.map_err(|e| self.broken(call, &e))?;
        if let Some(message) = collected.trailers().and_then(stream_error_trailer) {
            return Err(trailers_error(message));
        }
        Ok(collected.to_bytes())
    }

    /// Sends a call and parses its answer as one JSON value (the first, if it streams several).
    pub(crate) async fn post_json(&self, call: &'static str, query: &[(&str, String)]) -> Result<Value> {
        let bytes = self.post_bytes(call, query, None).await?;
        let mut values = serde_json::Deserializer::from_slice(&bytes).into_iter::<Value>();
        match values.next() {
            Some(Ok(value)) => match parse::stream_error(&value) {
                Some((message, code)) => Err(IpfsError::Daemon {
                    call,
                    daemon: self.daemon.clone(),
                    status: StatusCode::OK.as_u16(),
                    message,
                    code,
                }),
                None => Ok(value),
            },
            Some(Err(e)) => Err(self.malformed(call, format!("invalid JSON: {e}"))),
            None => Err(self.malformed(call, "empty answer".to_owned())),
        }
    }

    /// Waits for a throttle slot when the daemon has failed too often in a row.
    async fn throttle_if_failing(&self) {
        if self.failures.load(Ordering::Relaxed) <= FAILED_REQUESTS_THRESHOLD {
            return;
        }
        // The lock serialises throttled requests, so each waits for its own 1 s slot.
        let mut last = self.throttle.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep_until(at + THROTTLE_INTERVAL).await;
        }
        *last = Some(Instant::now());
    }

    /// Consecutive transport failures so far (0 after any answer).
    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// An error for an answer we cannot use.
    pub(crate) fn malformed(&self, call: &'static str, detail: String) -> IpfsError {
        IpfsError::Malformed { call, daemon: self.daemon.clone(), detail }
    }

    /// An error for a connection that broke while reading an answer.
    pub(crate) fn broken(&self, call: &'static str, err: &hyper::Error) -> IpfsError {
        IpfsError::Unreachable {
            call,
            daemon: self.daemon.clone(),
            reason: format!("connection broke while reading the answer: {}", error_chain(err)),
        }
    }

    /// An error for a call that ran out of time.
    pub(crate) fn timeout(&self, call: &'static str, timeout: Duration) -> IpfsError {
        IpfsError::Timeout { call, daemon: self.daemon.clone(), timeout }
    }

    /// Runs `fut` with a deadline, mapping expiry to [`IpfsError::Timeout`].
    pub(crate) async fn with_timeout<T>(
        &self,
        call: &'static str,
        timeout: Duration,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(timeout, fut).await.unwrap_or_else(|_| Err(self.timeout(call, timeout)))
    }
}

/// Reads a body up to `limit` bytes, dropping the rest.
async fn read_limited(mut body: Incoming, limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if let Ok(data) = frame.into_data() {
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
            if out.len() >= limit {
                break;
            }
        }
    }
    Some(out)
}

/// Kubo reports errors that happen after a streamed answer started in the `X-Stream-Error` trailer.
fn stream_error_trailer(trailers: &http::HeaderMap) -> Option<String> {
    let value = trailers.get("x-stream-error")?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// An error with its causes, `outer: inner: root` (hyper's own Display hides the root cause).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads a streamed answer one JSON value at a time (NDJSON, or one big object), so that a
/// listing of millions of pins is never held in memory whole.
pub(crate) struct JsonLines {
    body: Incoming,
    buf: BytesMut,
    /// Bytes of `buf` already known to hold no newline.
    scanned: usize,
    done: bool,
    call: &'static str,
    daemon: String,
}

impl JsonLines {
    /// Wraps a successful response.
    pub(crate) fn new(call: &'static str, daemon: &str, response: Response<Incoming>) -> JsonLines {
        JsonLines {
            body: response.into_body(),
            buf: BytesMut::new(),
            scanned: 0,
            done: false,
            call,
            daemon: daemon.to_owned(),
        }
    }

    /// The next JSON value, None at the end. A Kubo error object in the stream or an
    /// `X-Stream-Error` trailer becomes [`IpfsError::Daemon`].
    pub(crate) async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            // Parse only when a newline (value terminator in Kubo's and js-ipfs's output) arrived
            // or the body ended, so one large value is not re-parsed for every chunk.
            let has_newline = self.buf[self.scanned..].contains(&b'\n');
            if has_newline || self.done {
                let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
                match values.next() {
                    Some(Ok(value)) => {
                        let used = values.byte_offset();
                        self.buf.advance(used);
                        self.scanned = 0;
                        if let Some((message, code)) = parse::stream_error(&value) {
                            return Err(self.daemon_error(message, code));
                        }
                        return Ok(Some(value));
                    }
                    Some(Err(e)) if e.is_eof() && !self.done => {
                        self.scanned = self.buf.len();
                    }
                    Some(Err(e)) => {
                        return Err(IpfsError::Malformed {
                            call: self.call,
                            daemon: self.daemon.clone(),
                            detail: format!("invalid JSON in the answer: {e}"),
                        });
                    }
                    None => {
                        // Only whitespace left.
                        self.buf.clear();
                        self.scanned = 0;
                        if self.done {
                            return Ok(None);
                        }
                    }
                }
            }
            match self.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buf.extend_from_slice(&data),
                    Err(frame) => {
                        if let Some(message) = frame.trailers_ref().and_then(stream_error_trailer) {
                            return Err(self.daemon_error(message, None));
                        }
                    }
                },
                Some(Err(e)) => {
                    return Err(IpfsError::Unreachable {
                        call: self.call,
                        daemon: self.daemon.clone(),
                        reason: format!("connection broke while reading the answer: {}", error_chain(&e)),
                    });
                }
                None => self.done = true,
            }
        }
    }

    fn daemon_error(&self, message: String, code: Option<i64>) -> IpfsError {
        IpfsError::Daemon {
            call: self.call,
            daemon: self.daemon.clone(),
            status: StatusCode::OK.as_u16(),
            message,
            code,
        }
    }
}

/// Connects every request to the configured daemon, whatever the URL says (for a unix socket
/// the URL carries a nominal host).
#[derive(Clone)]
pub(crate) struct DaemonConnector {
    addr: Arc<DaemonAddr>,
}

impl tower_service::Service<Uri> for DaemonConnector {
    type Response = DaemonIo;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<DaemonIo>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let addr = self.addr.clone();
        Box::pin(async move {
            match &*addr {
                DaemonAddr::Tcp { host, port } => {
                    let stream = TcpStream::connect((host.as_str(), *port)).await?;
                    // Requests are small and latency-bound; don't let Nagle hold them back.
                    stream.set_nodelay(true)?;
                    Ok(DaemonIo::Tcp(TokioIo::new(stream)))
                }
                DaemonAddr::Unix(path) => Ok(DaemonIo::Unix(TokioIo::new(UnixStream::connect(path).await?))),
            }
        })
    }
}

/// A connection to the daemon, over TCP or a unix socket.
pub(crate) enum DaemonIo {
    Tcp(TokioIo<TcpStream>),
    Unix(TokioIo<UnixStream>),
}

impl Connection for DaemonIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for DaemonIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DaemonIo::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            DaemonIo::Unix(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for DaemonIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DaemonIo::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            DaemonIo::Unix(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DaemonIo::Tcp(io) => Pin::new(io).poll_flush(cx),
            DaemonIo::Unix(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DaemonIo::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            DaemonIo::Unix(io) => Pin::new(io).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            DaemonIo::Tcp(io) => io.is_write_vectored(),
            DaemonIo::Unix(io) => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DaemonIo::Tcp(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            DaemonIo::Unix(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }
}
